//! Shared harness for the command-line tests: the binaries and the fixture directories.

#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `amdgpu-cdi` as an assert_cmd command.
pub fn amdgpu_cdi() -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::new(env!("CARGO_BIN_EXE_amdgpu-cdi"));
    cmd.env_remove("AMDGPU_CDI_CONFIG");
    cmd
}
