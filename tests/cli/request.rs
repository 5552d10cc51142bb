//! Requests resolved against live discovery of the 64-partition example host (MI300X in CPX
//! mode): PCI addresses select all partitions of a GPU, unique ids every device reporting them,
//! CDI names exactly one. The render nodes are faked with mknod under a temp dev root, so these
//! tests need root; without it they print why they skip.

use std::fs;
use std::path::{Path, PathBuf};

use crate::support::{amdgpu_cdi, repo_root};

fn host() -> PathBuf {
    repo_root().join("examples/hosts/mi300x-cpx/sys")
}

/// A dev root with `/dev/kfd` and every render node of the example host, or `None` without root.
fn dev_root(dir: &Path) -> Option<PathBuf> {
    use nix::sys::stat::{Mode, SFlag, makedev, mknod};
    if !crate::skip::as_root("request", "to create fake device nodes") {
        return None;
    }
    let dri = dir.join("dev/dri");
    fs::create_dir_all(&dri).expect("dev/dri");
    let mode = Mode::from_bits_truncate(0o666);
    mknod(&dir.join("dev/kfd"), SFlag::S_IFCHR, mode, makedev(1, 5)).expect("mknod kfd");
    for entry in fs::read_dir(host().join("class/drm")).expect("class/drm") {
        let name = entry.expect("entry").file_name();
        if name.to_string_lossy().starts_with("renderD") {
            mknod(&dri.join(&name), SFlag::S_IFCHR, mode, makedev(1, 3)).expect("mknod render");
        }
    }
    Some(dir.to_path_buf())
}

/// Runs the precreate hook with `AMD_VISIBLE_DEVICES=value`; returns the injected device paths
/// (without /dev/kfd) or the error line.
fn inject(value: &str) -> Option<Result<Vec<String>, String>> {
    let dir = tempfile::tempdir().expect("tempdir");
    let dev = dev_root(dir.path())?;
    fs::write(dir.path().join("config.toml"), "").expect("config");
    let config = serde_json::json!({
        "ociVersion": "1.0.2",
        "process": {"env": [format!("AMD_VISIBLE_DEVICES={value}")]},
    });
    let out = amdgpu_cdi()
        .env_clear()
        .args(["hook", "precreate", "--config"])
        .arg(dir.path().join("config.toml"))
        .arg("--sysfs-root")
        .arg(host())
        .arg("--dev-root")
        .arg(&dev)
        .write_stdin(config.to_string())
        .output()
        .expect("run hook");
    assert!(out.status.success());
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    if let Some(refused) = printed["process"]["args"][0].as_str() {
        return Some(Err(refused
            .trim_start_matches("/proc/amdgpu-cdi: ")
            .to_string()));
    }
    let devices = printed["linux"]["devices"].as_array().expect("devices");
    assert_eq!(devices[0]["path"], "/dev/kfd");
    Some(Ok(devices[1..]
        .iter()
        .map(|d| {
            d["path"]
                .as_str()
                .expect("path")
                .trim_start_matches("/dev/dri/")
                .to_string()
        })
        .collect()))
}

fn renders(minors: std::ops::RangeInclusive<u32>) -> Vec<String> {
    minors.map(|m| format!("renderD{m}")).collect()
}

#[test]
fn a_pci_address_selects_every_partition_of_the_gpu() {
    let Some(result) = inject("05:00.0") else {
        return;
    };
    assert_eq!(result, Ok(renders(129..=136)));
}

#[test]
fn a_range_and_a_cdi_partition_name() {
    let Some(result) = inject("0-1, amd.com/gpu=GPU-2bad31ea63d9d207-p1, 0") else {
        return;
    };
    assert_eq!(
        result,
        Ok(vec![
            "renderD129".into(),
            "renderD130".into(),
            "renderD139".into()
        ])
    );
}

#[test]
fn a_shared_unique_id_selects_all_partitions_reporting_it() {
    let Some(result) = inject("GPU-2bad31ea63d9d207") else {
        return;
    };
    assert_eq!(result, Ok(renders(138..=145)));
}

#[test]
fn an_index_past_the_last_partition_is_refused() {
    let Some(result) = inject("63,64") else {
        return;
    };
    let message = result.expect_err("no GPU 64");
    assert!(
        message.starts_with(
            "AMD_VISIBLE_DEVICES: no GPU matches \"64\" (valid: all, none, void, indices 0-63"
        ),
        "{message}"
    );
}
