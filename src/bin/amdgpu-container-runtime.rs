//! `amdgpu-container-runtime`: a runc-compatible wrapper that injects requested AMD GPUs into the
//! OCI bundle on `create`, then execs the real runtime. The logic lives in
//! `amdgpu_cdi::runtime`.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    amdgpu_cdi::wrapper::main(&args, std::env::var_os(amdgpu_cdi::settings::ENV_VAR))
}
