//! podman 5.4 (trixie) and 5.8 (sid), run as root from the engine roots with runc: CDI devices
//! from a spec written by the real `amdgpu-cdi generate` (`--device amd.com/gpu=N`, `all`), the
//! shipped precreate hook selecting GPUs by `AMD_VISIBLE_DEVICES`, and the shipped prestart hook
//! from `--hooks-dir`. Both hooks discover the example host themselves (`--sysfs-root`,
//! `--dev-root`), so GPU 1 is renderD131 on every path.

use crate::gpu_root::{self, GpuRoot, probe_sees};
use crate::roots::EngineRoot;
use crate::support;

/// Asserts the container started with `args` sees exactly `renders` (plus kfd).
fn assert_sees(gpu: &GpuRoot, args: &[&str], renders: &[&str]) {
    let (ok, stdout, stderr) = gpu.podman_run(args);
    assert!(ok, "podman run {args:?} failed:\n{stdout}{stderr}");
    assert_eq!(stdout, probe_sees(renders), "podman run {args:?}");
}

/// Writes the shipped hooks.d file `name` into `<scratch>/hooks.d`, pointed at the binary under
/// test and the example host; returns the hooks dir.
pub(crate) fn hooks_dir(gpu: &GpuRoot, name: &str) -> String {
    let shipped = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("packaging/hooks.d")
            .join(name),
    )
    .expect("shipped hooks.d file");
    let mut hook: serde_json::Value = serde_json::from_str(&shipped).expect("hooks.d JSON");
    hook["hook"]["path"] = support::bin("amdgpu-cdi").display().to_string().into();
    let settings = gpu.dir().join("hook.toml");
    std::fs::write(&settings, "").expect("empty hook settings");
    let args = hook["hook"]["args"].as_array_mut().expect("args");
    for arg in [
        "--config".to_string(),
        settings.display().to_string(),
        "--sysfs-root".to_string(),
        gpu_root::SYSFS.to_string(),
        "--dev-root".to_string(),
        gpu.dev_root.display().to_string(),
    ] {
        args.push(arg.into());
    }
    let dir = gpu.dir().join(format!("hooks.d-{name}"));
    std::fs::create_dir_all(&dir).expect("hooks dir");
    std::fs::write(dir.join(name), hook.to_string()).expect("write hooks.d file");
    dir.display().to_string()
}

fn podman_gives_gpus(test: &str, suite: &str, podman: &str) {
    let Some(root) = EngineRoot::open(test, suite) else {
        return;
    };
    assert_eq!(root.version("podman"), podman, "the {suite} root's podman");
    let gpu = GpuRoot::enter(&root);
    gpu.generate("/var/run/cdi/amd.com-gpu.yaml");
    let renders = gpu_root::RENDER_OF_INDEX;

    // CDI.
    assert_sees(&gpu, &["--device", "amd.com/gpu=1"], &[renders[1]]);
    assert_sees(&gpu, &["--device", "amd.com/gpu=3"], &[renders[3]]);
    let mut all = renders;
    all.sort_unstable();
    assert_sees(&gpu, &["--device", "amd.com/gpu=all"], &all);
    let (ok, stdout, stderr) = gpu.podman_run(&["--device", "amd.com/gpu=7"]);
    assert!(!ok, "an unknown CDI device started a container: {stdout}");
    assert!(stderr.contains("amd.com/gpu=7"), "{stderr}");

    // The precreate hook (podman's own stage) with AMD_VISIBLE_DEVICES.
    let precreate = hooks_dir(&gpu, "amdgpu-cdi-precreate.json");
    let with_hook = |value: &str| {
        vec![
            "--hooks-dir".to_string(),
            precreate.clone(),
            "-e".to_string(),
            format!("AMD_VISIBLE_DEVICES={value}"),
        ]
    };
    let args = with_hook("1");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_sees(&gpu, &args, &[renders[1]]);
    let args = with_hook("0,2");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut two = [renders[0], renders[2]];
    two.sort_unstable();
    assert_sees(&gpu, &args, &two);
    let args = with_hook("7");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (ok, stdout, stderr) = gpu.podman_run(&args);
    assert!(!ok, "AMD_VISIBLE_DEVICES=7 started a container: {stdout}");
    assert!(stderr.contains("no GPU matches \"7\""), "{stderr}");

    // The prestart hook from --hooks-dir.
    let prestart = hooks_dir(&gpu, "amdgpu-cdi-prestart.json");
    assert_sees(
        &gpu,
        &["--hooks-dir", &prestart, "-e", "AMD_VISIBLE_DEVICES=1"],
        &[renders[1]],
    );
}

#[test]
fn podman_5_4_gives_gpus_through_cdi_and_both_hooks() {
    podman_gives_gpus(
        "podman_5_4_gives_gpus_through_cdi_and_both_hooks",
        "trixie",
        "5.4.2",
    );
}

#[test]
fn podman_5_8_gives_gpus_through_cdi_and_both_hooks() {
    podman_gives_gpus(
        "podman_5_8_gives_gpus_through_cdi_and_both_hooks",
        "sid",
        "5.8.6",
    );
}
