//! Issue 12, item 2: the writers never replace a device node. As root, `generate --output
//! /dev/null` used to turn the host's `/dev/null` into a regular file and `configure docker
//! --config <char device>` left a 0666 `daemon.json` in its place. These tests make their own
//! device nodes in a temp dir (never the real `/dev`) and check that `generate`, `configure` and
//! the runtime wrapper refuse them, directly and behind a symlink, with one line and without
//! touching them. Also as root: a symlink that belongs to another user is not followed.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{self, bin, output};

/// `amdgpu-cdi generate` for the three-GPU sysfs fixture (no device nodes), writing `output`.
fn generate(output: &Path) -> Command {
    let mut cmd = Command::new(bin("amdgpu-cdi"));
    cmd.args(["generate", "--dev-root", "/nonexistent", "--sysfs-root"])
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hosts/three-gpus/sys"))
        .arg("--output")
        .arg(output);
    cmd
}

/// (file type, device number, permission bits) of a node, to compare before and after.
fn identity(path: &Path) -> (bool, bool, u64, u32) {
    let meta = fs::symlink_metadata(path).expect("lstat");
    let kind = meta.file_type();
    (
        kind.is_char_device(),
        kind.is_block_device(),
        meta.rdev(),
        meta.mode() & 0o7777,
    )
}

/// Runs a command that must fail with exactly one stderr line starting with `prefix`.
fn refused(cmd: &mut Command, prefix: &str) {
    let (ok, stdout, stderr) = output(cmd);
    assert!(!ok, "{cmd:?} succeeded: {stdout}");
    assert!(
        stderr.starts_with(prefix) && stderr.lines().count() == 1,
        "{cmd:?}: expected one line starting with {prefix:?}, got {stderr:?}"
    );
}

#[test]
fn device_nodes_are_never_replaced_by_the_writers() {
    use nix::sys::stat::{Mode, SFlag, makedev, mknod};
    let Some(tmp) = support::scratch_dir("device_nodes_are_never_replaced_by_the_writers", &[])
    else {
        return;
    };
    let dir = tmp.path();
    let null = dir.join("null");
    support::char_device(&null, 1, 3);
    let block = dir.join("loop.yaml");
    mknod(
        &block,
        SFlag::S_IFBLK,
        Mode::from_bits_truncate(0o660),
        makedev(7, 0),
    )
    .expect("mknod");
    let link = dir.join("out.yaml");
    std::os::unix::fs::symlink(&null, &link).expect("symlink");
    let before = [identity(&null), identity(&block)];

    refused(
        &mut generate(&null),
        &format!(
            "amdgpu-cdi: cannot write {}: it is a character device, not a regular file",
            null.display()
        ),
    );
    refused(
        &mut generate(&block),
        &format!(
            "amdgpu-cdi: cannot write {}: it is a block device, not a regular file",
            block.display()
        ),
    );
    refused(
        &mut generate(&link),
        &format!(
            "amdgpu-cdi: cannot write {}: it leads to {}, a character device, not a regular file",
            link.display(),
            null.display()
        ),
    );
    for (engine, config) in [("docker", &null), ("containerd", &block), ("docker", &link)] {
        refused(
            Command::new(bin("amdgpu-cdi"))
                .args([
                    "configure",
                    engine,
                    "--runtime-path",
                    "/usr/bin/true",
                    "--config",
                ])
                .arg(config),
            &format!("amdgpu-cdi: cannot write {}: it ", config.display()),
        );
    }

    // The wrapper: a bundle whose config.json is a device node.
    let bundle = dir.join("bundle");
    fs::create_dir(&bundle).expect("bundle");
    support::char_device(&bundle.join("config.json"), 1, 3);
    let settings = dir.join("amdgpu-cdi.toml");
    fs::write(&settings, "runtime = \"/bin/true\"\n").expect("settings");
    refused(
        Command::new(bin("amdgpu-container-runtime"))
            .env("AMDGPU_CDI_CONFIG", &settings)
            .args(["create", "--bundle"])
            .arg(&bundle)
            .arg("c1"),
        &format!(
            "amdgpu-container-runtime: cannot read {}: it is a character device, not a regular file",
            bundle.join("config.json").display()
        ),
    );

    assert_eq!(
        [identity(&null), identity(&block)],
        before,
        "nodes untouched"
    );
    assert!(
        fs::symlink_metadata(&link).expect("lstat").is_symlink(),
        "link kept"
    );
    assert!(
        identity(&bundle.join("config.json")).0,
        "bundle node untouched"
    );
    assert_eq!(
        crate::files::names(dir),
        ["amdgpu-cdi.toml", "bundle", "loop.yaml", "null", "out.yaml"]
    );
}

#[test]
fn root_does_not_follow_another_users_symlink() {
    let Some(tmp) = support::scratch_dir("root_does_not_follow_another_users_symlink", &[]) else {
        return;
    };
    let dir = tmp.path();
    let precious = dir.join("shadow");
    fs::write(&precious, "root:secret\n").expect("write");
    let link = dir.join("amd.com-gpu.yaml");
    std::os::unix::fs::symlink(&precious, &link).expect("symlink");
    std::os::unix::fs::lchown(&link, Some(65534), Some(65534)).expect("lchown");
    refused(
        &mut generate(&link),
        &format!(
            "amdgpu-cdi: cannot write {0}: {0} is a symbolic link owned by uid 65534, neither the \
             caller nor root",
            link.display()
        ),
    );
    assert_eq!(
        fs::read_to_string(&precious).expect("read"),
        "root:secret\n"
    );
    assert!(fs::symlink_metadata(&link).expect("lstat").is_symlink());
}
