//! WSL2 hosts (docs/wsl.md): the exact spec `generate` writes for the `wsl2` example host, what
//! `gpus` shows, `check` against it, `--mode`, and the one-line errors.

use crate::support::{amdgpu_cdi, repo_root};
use crate::validate::render;

const SYS: &str = "examples/hosts/wsl2/sys";
const PROC: &str = "examples/hosts/wsl2/proc";

#[test]
fn spec_of_the_wsl2_host() {
    let text = render(&["generate", "--sysfs-root", SYS, "--proc-root", PROC]);
    insta::assert_snapshot!("generate-wsl2", text);
    let json = render(&[
        "generate",
        "--sysfs-root",
        SYS,
        "--proc-root",
        PROC,
        "--mode",
        "wsl",
        "--format",
        "json",
        "--dev-root",
        "/run/host",
        "--pin-device-numbers",
        "--wsl-lib-root",
        "/run/host/usr/lib/wsl",
    ]);
    insta::assert_snapshot!("generate-wsl2-json-pinned", json);
}

#[test]
fn the_wsl2_spec_is_valid_and_current() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = dir.path().join("amd.com-gpu.yaml");
    let sys = repo_root().join(SYS);
    let proc = repo_root().join(PROC);
    amdgpu_cdi()
        .arg("generate")
        .arg("--sysfs-root")
        .arg(&sys)
        .arg("--proc-root")
        .arg(&proc)
        .arg("--output")
        .arg(&spec)
        .assert()
        .success();
    amdgpu_cdi()
        .arg("validate")
        .arg("--strict")
        .arg(&spec)
        .assert()
        .success();
    let out = amdgpu_cdi()
        .arg("check")
        .arg("--sysfs-root")
        .arg(&sys)
        .arg("--proc-root")
        .arg(&proc)
        .arg("--spec")
        .arg(&spec)
        .output()
        .expect("run check");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    // The same spec is stale for a KFD host.
    let out = amdgpu_cdi()
        .arg("check")
        .arg("--sysfs-root")
        .arg(repo_root().join("examples/hosts/workstation/sys"))
        .arg("--spec")
        .arg(&spec)
        .output()
        .expect("run check");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
}

#[test]
fn gpus_on_the_wsl2_host() {
    insta::assert_snapshot!(
        "gpus-wsl2",
        render(&["gpus", "--sysfs-root", SYS, "--proc-root", PROC])
    );
    insta::assert_snapshot!(
        "gpus-wsl2-json",
        render(&[
            "gpus",
            "--sysfs-root",
            SYS,
            "--proc-root",
            PROC,
            "--format",
            "json"
        ])
    );
}

#[test]
fn wrong_modes_and_bad_roots_are_one_line_errors() {
    insta::assert_snapshot!(
        "wsl-errors",
        [
            render(&[
                "generate",
                "--sysfs-root",
                "examples/hosts/workstation/sys",
                "--dev-root",
                "/nonexistent/amdgpu-cdi-test-dev",
                "--mode",
                "wsl",
            ]),
            render(&["generate", "--sysfs-root", SYS, "--mode", "kfd"]),
            render(&[
                "generate",
                "--sysfs-root",
                SYS,
                "--proc-root",
                PROC,
                "--wsl-lib-root",
                "usr/lib/wsl",
            ]),
            render(&["gpus", "--sysfs-root", SYS, "--mode", "windows"]),
        ]
        .join("\n")
    );
}
