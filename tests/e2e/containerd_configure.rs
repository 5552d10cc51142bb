//! containerd 1.6 started on a `config.toml` written by `amdgpu-cdi configure containerd` on top
//! of a full existing config (`containerd config default` with its own root, state and socket).
//!
//! `ctr` cannot select the runtime entry `configure` adds: the `runtimes` table belongs to the CRI
//! plugin and is only consulted for CRI requests (a Kubernetes RuntimeClass handler, or the CRI
//! default runtime), while `ctr` calls containerd's container and task services directly and takes
//! the shim (`--runtime io.containerd.runc.v2`) and its options (`--runc-binary`) from its own
//! command line; `--runtime amd` is not even a valid shim name. So this test checks the two halves
//! of the real path a CRI client takes:
//! 1. containerd loaded the config: `containerd config dump` shows the `amd` entry with
//!    `runtime_type = "io.containerd.runc.v2"`, `options.BinaryName` = the wrapper, and
//!    `default_runtime_name = "amd"`, and the CRI plugin started (`ctr plugins ls`);
//! 2. the runc v2 shim running that `BinaryName` (read back from the dump) gives a container the
//!    requested GPU: `ctr run --runtime io.containerd.runc.v2 --runc-binary <BinaryName>`.
//!
//! containerd 1.6 has no CDI support: it accepts `enable_cdi`/`cdi_spec_dirs` but ignores them
//! (they are absent from its dump); 1.7+ reads them.

use std::fs;
use std::path::Path;
use std::process::Command;

use crate::support::{self, Containerd, bin, busybox_rootfs, fake_gpu_nodes, find_tool, output};

/// `containerd config default` moved into `dir`, with a comment on top.
fn existing_config(dir: &Path, containerd: &Path) -> String {
    let (ok, default, stderr) = output(Command::new(containerd).args(["config", "default"]));
    assert!(ok, "containerd config default: {stderr}");
    let mut text = default;
    for (path, name) in [
        ("/var/lib/containerd", "root"),
        ("/run/containerd", "state"),
        ("/run/containerd/containerd.sock", "c.sock"),
        ("/opt/containerd", "opt"),
    ] {
        text = text.replace(
            &format!("\"{path}\""),
            &format!("\"{}\"", dir.join(name).display()),
        );
    }
    format!("# containerd for the amdgpu-cdi end-to-end test\n{text}")
}

/// The value of `key = "..."` on the first line after `table` in a `config dump`.
fn dumped(dump: &str, table: &str, key: &str) -> Option<String> {
    let start = dump.find(&format!("[{table}]"))?;
    let prefix = format!("{key} = ");
    dump[start..]
        .lines()
        .skip(1)
        .take_while(|l| !l.trim_start().starts_with('['))
        .find_map(|l| {
            l.trim()
                .strip_prefix(&prefix)
                .map(|v| v.trim_matches('"').to_string())
        })
}

#[test]
fn containerd_loads_the_configured_runtime_and_its_binary_runs_a_gpu_container() {
    let name = "containerd_loads_the_configured_runtime_and_its_binary_runs_a_gpu_container";
    if !support::prerequisites(name, &["containerd", "ctr", "runc"]) {
        return;
    }
    let containerd = find_tool("containerd").expect("containerd");
    let tmp = support::short_tempdir("acc");
    let dir = tmp.path();
    let config = dir.join("config.toml");
    let original = existing_config(dir, &containerd);
    fs::write(&config, &original).expect("write config.toml");

    let dev_root = fake_gpu_nodes(&dir.join("host"), 1);
    let (spec_dir, wrapper_config) = support::wrapper_settings_cdi(dir, &dev_root);

    let (ok, stdout, stderr) = output(
        Command::new(bin("amdgpu-cdi"))
            .args([
                "configure",
                "containerd",
                "--set-as-default",
                "--cdi-spec-dir",
            ])
            .arg(&spec_dir)
            .arg("--config")
            .arg(&config),
    );
    assert!(ok, "configure containerd failed: {stderr}");
    assert!(
        stdout.contains("systemctl restart containerd"),
        "restart hint: {stdout}"
    );
    let written = fs::read_to_string(&config).expect("config.toml");
    assert!(
        written.starts_with("# containerd for the amdgpu-cdi end-to-end test\n"),
        "comment"
    );
    assert!(
        written.contains("    enable_cdi = true\n"),
        "enable_cdi in the CRI table"
    );

    // 1. containerd reads the file: the dump holds our entry.
    let (ok, dump, stderr) = output(
        Command::new(&containerd)
            .arg("--config")
            .arg(&config)
            .args(["config", "dump"]),
    );
    assert!(ok, "containerd config dump: {stderr}");
    let cri = "plugins.\"io.containerd.grpc.v1.cri\".containerd";
    let wrapper = bin("amdgpu-container-runtime").display().to_string();
    assert_eq!(
        dumped(&dump, &format!("{cri}.runtimes.amd"), "runtime_type").as_deref(),
        Some("io.containerd.runc.v2")
    );
    let binary = dumped(&dump, &format!("{cri}.runtimes.amd.options"), "BinaryName");
    assert_eq!(
        binary.as_deref(),
        Some(wrapper.as_str()),
        "BinaryName in the dump"
    );
    assert_eq!(
        dumped(&dump, cri, "default_runtime_name").as_deref(),
        Some("amd")
    );

    let daemon = Containerd::start(dir, &config, &dir.join("c.sock"), &wrapper_config);
    let (ok, plugins, _) = output(daemon.ctr().args(["plugins", "ls"]));
    let cri_line = plugins
        .lines()
        .find(|l| l.contains("io.containerd.grpc.v1") && l.contains(" cri "));
    assert!(
        ok && cri_line.is_some_and(|l| l.trim_end().ends_with("ok")),
        "CRI plugin up: {plugins}"
    );

    // ctr cannot name the CRI entry: `amd` is not a shim.
    let rootfs = busybox_rootfs(dir);
    let (ok, _, _) = output(
        daemon
            .ctr()
            .args(["run", "--rm", "--runtime", "amd", "--rootfs"])
            .arg(&rootfs)
            .args(["t0", "/bin/true"]),
    );
    assert!(
        !ok,
        "ctr selecting the CRI runtime entry by name was expected to fail"
    );

    // 2. The runc v2 shim with the configured BinaryName injects the requested GPU.
    let binary = binary.expect("BinaryName");
    let (ok, stdout, stderr) = output(
        daemon
            .ctr()
            .args([
                "run",
                "--rm",
                "--runtime",
                "io.containerd.runc.v2",
                "--runc-binary",
                &binary,
            ])
            .args([
                "--env",
                "AMD_VISIBLE_DEVICES=0",
                "--env",
                "PATH=/bin",
                "--rootfs",
            ])
            .arg(&rootfs)
            .args(["t1", "/bin/sh", "-c"])
            .arg(support::CDI_GPU_0_PROBE),
    );
    assert!(ok, "GPU container failed: {stdout}{stderr}");
    support::assert_cdi_gpu_0_injected(&stdout, dir);
    drop(daemon);

    // --remove gives back the original file.
    let (ok, _, stderr) = output(
        Command::new(bin("amdgpu-cdi"))
            .args(["configure", "containerd", "--remove", "--config"])
            .arg(&config),
    );
    assert!(ok, "configure --remove: {stderr}");
    assert_eq!(fs::read_to_string(&config).expect("config.toml"), original);
}
