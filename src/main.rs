//! The `amdgpu-cdi` command: argument parsing and error reporting only.

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = amdgpu_cdi::cli::Cli::from_env();
    match amdgpu_cdi::cli::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!(
                "amdgpu-cdi: {}",
                amdgpu_cdi::error_text::plain_line(&format!("{err:#}"))
            );
            ExitCode::from(2)
        }
    }
}
