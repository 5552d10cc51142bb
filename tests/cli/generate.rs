//! `amdgpu-cdi generate` on the example hosts: the exact spec for each (insta snapshots), that
//! every spec passes `cdi::validate`, the options, and the one-line errors with their exit codes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::files::{names, not_regular_files};
use crate::support::{
    amdgpu_cdi, copy_tree, host_sysfs, json_of_host, on_sysfs, repo_root, run_ok, stdout_of,
};

/// Every example host with AMD GPUs.
pub(crate) const HOSTS: &[&str] = &[
    "workstation",
    "mi210x4",
    "mi300x-cpx",
    "mi300x-cpx-dot",
    "mi300x-spx",
    "mi300a-tpx",
    "mi308x-two-domains",
    "old-kernel",
    "nvidia-mixed",
    "multi-domain",
];

/// A dev root that exists nowhere, so discovery never sees this machine's /dev.
const NO_DEV: &str = "/nonexistent/amdgpu-cdi-test-dev";

/// Runs `generate` on an example host with extra arguments; returns stdout, asserting success.
fn generate(host: &str, args: &[&str]) -> String {
    stdout_of(on_sysfs("generate", host_sysfs(host)).args(args))
}

/// Runs `generate` for `host` with `dir` as the working directory (relative outputs land there);
/// returns its output, asserting success.
fn generate_in(dir: &Path, host: &str, args: &[&str]) -> Output {
    run_ok(
        on_sysfs("generate", host_sysfs(host))
            .current_dir(dir)
            .args(args),
    )
}

/// Runs `generate` for the workstation in a new temp dir (see [`generate_in`]).
fn generate_in_temp(args: &[&str]) -> (tempfile::TempDir, Output) {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = generate_in(dir.path(), "workstation", args);
    (dir, out)
}

fn assert_valid(text: &str, format: cdi::codec::Format) -> cdi::spec::Spec {
    let spec = cdi::codec::parse(text.as_bytes(), format).expect("generated spec parses");
    let problems = cdi::validate::validate(&spec);
    assert!(
        problems.is_empty(),
        "generated spec is invalid: {problems:?}\n{text}"
    );
    spec
}

#[test]
fn spec_of_every_example_host() {
    for host in HOSTS {
        let text = generate(host, &["--dev-root", "/"]);
        let spec = assert_valid(&text, cdi::codec::Format::Yaml);
        assert_eq!(spec.cdi_version, "0.5.0", "{host}: defaults need 0.5.0");
        insta::assert_snapshot!(format!("generate-{host}"), text);
    }
}

#[test]
fn every_option_combination_validates() {
    let variants: &[&[&str]] = &[
        &[
            "--device-name-strategy",
            "uuid",
            "--device-name-strategy",
            "pci",
            "--device-name-strategy",
            "index",
        ],
        &["--annotations", "--include-card-nodes"],
        &["--pin-device-numbers", "--no-all-device"],
        &["--dev-root", NO_DEV, "--device-name-strategy", "pci"],
    ];
    for host in HOSTS {
        for args in variants {
            let text = generate(host, args);
            assert_valid(&text, cdi::codec::Format::Yaml);
        }
    }
}

#[test]
fn names_by_uuid_and_pci_for_partitions() {
    let text = generate(
        "mi300x-cpx",
        &[
            "--device-name-strategy",
            "uuid",
            "--device-name-strategy",
            "pci",
            "--no-all-device",
        ],
    );
    insta::assert_snapshot!("generate-mi300x-cpx-uuid-pci", text);
}

#[test]
fn annotations_and_card_nodes() {
    let text = generate("workstation", &["--annotations", "--include-card-nodes"]);
    let spec = assert_valid(&text, cdi::codec::Format::Yaml);
    assert_eq!(spec.cdi_version, "0.6.0");
    insta::assert_snapshot!("generate-workstation-annotations-cards", text);
}

#[test]
fn pinned_numbers_with_a_dev_root_as_json() {
    let text = generate(
        "mi210x4",
        &[
            "--pin-device-numbers",
            "--dev-root",
            NO_DEV,
            "--format",
            "json",
        ],
    );
    assert_valid(&text, cdi::codec::Format::Json);
    insta::assert_snapshot!("generate-mi210x4-pinned-json", text);
}

#[test]
fn additional_gids_come_from_the_nodes_under_the_dev_root() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dri = dir.path().join("dev/dri");
    std::fs::create_dir_all(&dri).expect("dev/dri");
    // Regular files stand in for the nodes: only their group matters here.
    for name in ["dev/kfd", "dev/dri/renderD128", "dev/dri/renderD129"] {
        std::fs::write(dir.path().join(name), "").expect("node");
    }
    let chown = |path: &str, gid: u32| {
        nix::unistd::chown(
            &dir.path().join(path),
            None,
            Some(nix::unistd::Gid::from_raw(gid)),
        )
    };
    if !crate::skip::as_root("additional_gids", "to chown device nodes") {
        return;
    }
    chown("dev/kfd", 992).expect("chown");
    chown("dev/dri/renderD128", 992).expect("chown");
    chown("dev/dri/renderD129", 44).expect("chown");
    let root = dir.path().to_str().expect("utf-8 temp path");
    let text = generate("workstation", &["--additional-gids", "--dev-root", root]);
    let spec = assert_valid(&text, cdi::codec::Format::Yaml);
    assert_eq!(spec.cdi_version, "0.7.0");
    assert_eq!(spec.container_edits.additional_gids, [44, 992]);
}

#[test]
fn output_file_is_written_in_the_format_of_its_extension() {
    let (dir, out) = generate_in_temp(&["--output", "cdi/amd.com-gpu.json"]);
    let path = dir.path().join("cdi/amd.com-gpu.json");
    assert!(out.stdout.is_empty(), "nothing on stdout with --output");
    let text = std::fs::read_to_string(&path).expect("spec written");
    assert!(text.starts_with('{'), "json by extension: {text}");
    assert_valid(&text, cdi::codec::Format::Json);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode, 0o644);
    let leftovers = names(&dir.path().join("cdi"));
    assert_eq!(leftovers.len(), 1, "no temp files left: {leftovers:?}");
}

/// Issue 12, item 2 (device nodes as root: tests/e2e/special_files.rs): `--output` renamed over
/// whatever was there. A FIFO, a socket, a directory and a symlink to this process's stdout (a
/// pipe here) are refused with one line, before discovery, and left as they are.
#[test]
fn output_that_is_not_a_regular_file_is_refused_and_left_untouched() {
    use std::os::unix::fs::FileTypeExt;
    let files = not_regular_files("fifo.yaml", "socket.yaml", "dir.yaml");
    let dir = &files.dir;
    std::os::unix::fs::symlink("/proc/self/fd/1", dir.path().join("stdout.yaml")).expect("ln");
    let cases = [
        (
            "fifo.yaml",
            "it is a FIFO, not a regular file (it was left as it is)",
        ),
        (
            "socket.yaml",
            "it is a socket, not a regular file (it was left as it is)",
        ),
        (
            "dir.yaml",
            "it is a directory, not a regular file (it was left as it is)",
        ),
        (
            "stdout.yaml",
            "it is a symbolic link to /proc/self/fd/pipe:[",
        ),
    ];
    for (name, problem) in cases {
        let out = on_sysfs("generate", host_sysfs("workstation"))
            .current_dir(dir.path())
            .args(["--output", name])
            .output()
            .expect("run amdgpu-cdi generate");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
        assert!(out.stdout.is_empty(), "{name}: nothing on stdout");
        assert!(
            stderr.starts_with(&format!("amdgpu-cdi: cannot write {name}: {problem}"))
                && stderr.lines().count() == 1,
            "{name}: {stderr}"
        );
    }
    let meta = |name: &str| std::fs::symlink_metadata(dir.path().join(name)).expect("lstat");
    assert!(meta("fifo.yaml").file_type().is_fifo());
    assert!(meta("socket.yaml").file_type().is_socket());
    assert!(meta("dir.yaml").is_dir());
    assert!(meta("stdout.yaml").is_symlink());
    assert_eq!(
        std::fs::read_dir(dir.path()).expect("list").count(),
        4,
        "nothing added"
    );
}

/// A symlinked `--output` (a spec kept by configuration management) is written at its target,
/// atomically in the target's directory; the link stays.
#[test]
fn output_through_a_symlink_is_written_at_its_target() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("managed")).expect("mkdir");
    std::fs::write(dir.path().join("managed/amd.com-gpu.yaml"), "old").expect("write");
    std::os::unix::fs::symlink(
        "managed/amd.com-gpu.yaml",
        dir.path().join("amd.com-gpu.yaml"),
    )
    .expect("symlink");
    generate_in(dir.path(), "workstation", &["--output", "amd.com-gpu.yaml"]);
    let link = std::fs::symlink_metadata(dir.path().join("amd.com-gpu.yaml")).expect("lstat");
    assert!(link.is_symlink(), "the link stays");
    let text =
        std::fs::read_to_string(dir.path().join("managed/amd.com-gpu.yaml")).expect("target");
    assert_eq!(text, generate("workstation", &[]));
    assert_eq!(
        names(&dir.path().join("managed")),
        ["amd.com-gpu.yaml"],
        "no temp file left"
    );
}

#[test]
fn output_dash_is_standard_output() {
    let (dir, out) = generate_in_temp(&["--output", "-"]);
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    assert_eq!(stdout, generate("workstation", &[]));
    let files = names(dir.path());
    assert!(files.is_empty(), "no file named -: {files:?}");
}

/// Runs `generate` in `dir` with a relative sysfs root so messages do not depend on the checkout.
fn failing(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = amdgpu_cdi()
        .current_dir(dir)
        .arg("generate")
        .args(args)
        .output()
        .expect("run");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn errors_are_one_line_with_exit_code_2() {
    let hosts = repo_root().join("examples/hosts");
    let fixtures = repo_root().join("tests/fixtures/hosts");
    let cases: &[(&Path, &str, &[&str], &str)] = &[
        (
            &hosts,
            "no-amd",
            &[],
            "amdgpu-cdi: no AMD GPU on this machine: no-amd/sys/bus/pci/devices has no AMD \
             (vendor 0x1002) display controller or accelerator (to try amdgpu-cdi without one, \
             pass --sysfs-root examples/hosts/<name>/sys from the source tree)\n",
        ),
        (
            &fixtures,
            "no-driver",
            &[],
            "amdgpu-cdi: no usable AMD GPU: 0000:03:00.0 found, but no-driver/sys/class/kfd does \
             not exist (the amdgpu driver is not loaded or not bound: try `modprobe amdgpu` and \
             see `dmesg | grep amdgpu`)\n",
        ),
        (
            &fixtures,
            "no-gpu-nodes",
            &[],
            "amdgpu-cdi: no AMD GPU found: the KFD topology in \
             no-gpu-nodes/sys/class/kfd/kfd/topology/nodes lists no GPU (is the amdgpu driver \
             bound to a GPU? see `dmesg | grep amdgpu`)\n",
        ),
        (
            &fixtures,
            "garbage-properties",
            &[],
            "amdgpu-cdi: cannot parse \
             garbage-properties/sys/class/kfd/kfd/topology/nodes/1/properties line 2: expected \
             `key <decimal>`, found \"vendor_id 0x1002\" (is this a KFD topology node?)\n",
        ),
        (
            &fixtures,
            "missing-render",
            &[],
            "amdgpu-cdi: KFD node 2 uses render minor 140, but \
             missing-render/sys/class/drm/renderD140 does not exist (was the GPU removed or its \
             driver reloaded?)\n",
        ),
        (
            &hosts,
            "workstation",
            &["--annotations", "--cdi-version", "0.5.0"],
            "amdgpu-cdi: cdiVersion 0.5.0 cannot hold this spec: annotations needs 0.6.0 or newer\n",
        ),
        (
            &hosts,
            "workstation",
            &["--cdi-version", "0.9.0"],
            "amdgpu-cdi: unknown CDI version 0.9.0 (expected auto or one of 0.3.0 ... 1.1.0)\n",
        ),
        (
            &hosts,
            "workstation",
            &["--format", "json", "--output", "spec.yaml"],
            "amdgpu-cdi: --format json contradicts the extension of spec.yaml (engines parse .json \
             as JSON and .yaml as YAML)\n",
        ),
        (
            &hosts,
            "workstation",
            &["--device-name-strategy", "uuid"],
            "amdgpu-cdi: GPU 1 (0000:11:00.0) has no unique id, so the uuid strategy cannot name \
             it (add --device-name-strategy index or pci)\n",
        ),
        (
            &hosts,
            "workstation",
            &["--vendor", "a"],
            "amdgpu-cdi: invalid vendor \"a\": must be at least 2 characters (released CDI \
             libraries crash on one)\n",
        ),
    ];
    for (dir, host, args, expected) in cases {
        let sysfs = format!("{host}/sys");
        let mut all_args = vec!["--sysfs-root", sysfs.as_str()];
        all_args.extend_from_slice(args);
        let (code, stdout, stderr) = failing(dir, &all_args);
        assert_eq!(
            (code, stdout.as_str(), stderr.as_str()),
            (2, "", *expected),
            "{host} {args:?}"
        );
    }
}

#[test]
fn unreadable_topology_is_an_error_naming_the_node() {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_tree(&host_sysfs("workstation"), &dir.path().join("sys"));
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let properties = dir
        .path()
        .join("sys/devices/virtual/kfd/kfd/topology/nodes/2/properties");
    std::fs::set_permissions(&properties, std::fs::Permissions::from_mode(0o000)).expect("chmod");

    // Root ignores file modes: drop to nobody for the run, with a copy of the binary nobody can
    // reach (the checkout may live under a private home directory).
    let binary = dir.path().join("amdgpu-cdi");
    std::fs::copy(env!("CARGO_BIN_EXE_amdgpu-cdi"), &binary).expect("copy binary");
    let mut cmd = if nix::unistd::geteuid().is_root() {
        let mut cmd = Command::new("setpriv");
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&binary);
        cmd
    } else {
        Command::new(&binary)
    };
    let out = cmd
        .current_dir(dir.path())
        .args(["generate", "--sysfs-root", "sys"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "", "no partial spec");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "amdgpu-cdi: cannot read sys/class/kfd/kfd/topology/nodes/2/properties: permission \
         denied (is this running inside a restricted container?)\n"
    );
}

/// Every file and symlink under `root`, with its content or target, relative to `root`.
fn tree(root: &Path) -> Vec<(PathBuf, String)> {
    let mut entries = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir") {
            let path = entry.expect("entry").path();
            let relative = path.strip_prefix(root).expect("under root").to_path_buf();
            let meta = std::fs::symlink_metadata(&path).expect("lstat");
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&path).expect("readlink");
                entries.push((relative, format!("-> {}", target.display())));
            } else if meta.is_dir() {
                stack.push(path);
            } else {
                entries.push((relative, std::fs::read_to_string(&path).expect("read")));
            }
        }
    }
    entries.sort();
    entries
}

#[test]
fn example_trees_match_their_generator() {
    let Some(python) = ["/usr/bin/python3", "/usr/local/bin/python3"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.is_file())
    else {
        crate::skip::unavailable("example_trees_match_their_generator", "needs python3");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let status = Command::new(python)
        .arg(repo_root().join("examples/hosts/make-hosts.py"))
        .arg("--out")
        .arg(dir.path())
        .status()
        .expect("run make-hosts.py");
    assert!(status.success());
    // examples/hosts is the generator's alone; tests/fixtures/hosts also holds other fixtures,
    // so there only the hosts the generator writes are compared.
    for (sub, only_generated) in [("examples/hosts", false), ("tests/fixtures/hosts", true)] {
        let generated = tree(&dir.path().join(sub));
        let host_of = |path: &Path| path.components().next().map(|c| c.as_os_str().to_owned());
        let hosts: Vec<_> = generated
            .iter()
            .filter_map(|(path, _)| host_of(path))
            .collect();
        let mut committed = tree(&repo_root().join(sub));
        committed.retain(|(path, _)| path.components().count() > 1);
        if only_generated {
            committed.retain(|(path, _)| host_of(path).is_some_and(|h| hosts.contains(&h)));
        }
        assert!(
            generated == committed,
            "{sub} differs from what examples/hosts/make-hosts.py writes; rerun it and commit"
        );
    }
}

#[test]
fn an_extension_engines_ignore_is_a_warning() {
    let (dir, out) = generate_in_temp(&["--output", "amd.com-gpu.yml"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "amdgpu-cdi: warning: engines read only *.json and *.yaml spec files; amd.com-gpu.yml \
         will not be loaded from a spec directory\n"
    );
    let text = std::fs::read_to_string(dir.path().join("amd.com-gpu.yml")).expect("written");
    assert_valid(&text, cdi::codec::Format::Yaml);
}

#[test]
fn help_texts() {
    for command in ["generate", "gpus"] {
        let text = stdout_of(amdgpu_cdi().args([command, "--help"]));
        insta::assert_snapshot!(format!("help-{command}"), text);
    }
}

#[test]
fn amdgpu_cdi_validate_accepts_every_generated_spec() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut files = Vec::new();
    for host in HOSTS {
        for (suffix, args) in [
            ("yaml", &[][..]),
            (
                "json",
                &[
                    "--device-name-strategy",
                    "uuid",
                    "--device-name-strategy",
                    "pci",
                    "--annotations",
                ][..],
            ),
        ] {
            let path = dir.path().join(format!("{host}.{suffix}"));
            run_ok(
                on_sysfs("generate", host_sysfs(host))
                    .args(args)
                    .arg("--output")
                    .arg(&path),
            );
            files.push(path);
        }
    }
    run_ok(amdgpu_cdi().arg("validate").args(&files));
}

/// Issue 14 item 9: a spec whose nodes do not exist under `--dev-root` is still written (exit 0,
/// standard output the spec alone), with one warning line naming the nodes.
#[test]
fn nodes_missing_under_the_dev_root_are_named_and_the_spec_still_written() {
    let dev = tempfile::tempdir().expect("tempdir");
    let root = dev.path().to_str().expect("utf-8 temp dir");
    let out = generate_in(dev.path(), "workstation", &["--dev-root", root]);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "amdgpu-cdi: warning: the spec names device nodes that do not exist: {root}/dev/kfd, \
             {root}/dev/dri/renderD128, {root}/dev/dri/renderD129 (engines refuse containers \
             given them)\n"
        )
    );
    let spec = assert_valid(
        &String::from_utf8(out.stdout).expect("utf-8"),
        cdi::codec::Format::Yaml,
    );
    assert_eq!(
        spec.container_edits.device_nodes[0].host_path.as_deref(),
        Some(format!("{root}/dev/kfd").as_str())
    );
    let file = dev.path().join("amd.com-gpu.yaml");
    let out = generate_in(
        dev.path(),
        "workstation",
        &["--dev-root", root, "--output", "amd.com-gpu.yaml"],
    );
    assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1);
    assert!(file.exists(), "spec written despite the warning");
}

/// The nodes of another host's sysfs tree are not looked for in this machine's `/dev`, and many
/// missing nodes are counted rather than all listed.
#[test]
fn missing_nodes_are_checked_only_where_they_mean_something() {
    let out = generate_in(&repo_root(), "mi300x-cpx", &[]);
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = generate_in(&repo_root(), "mi300x-cpx", &["--dev-root", NO_DEV]);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "amdgpu-cdi: warning: the spec names device nodes that do not exist: {NO_DEV}/dev/kfd, \
             {NO_DEV}/dev/dri/renderD129, {NO_DEV}/dev/dri/renderD130, \
             {NO_DEV}/dev/dri/renderD131 and 61 more (engines refuse containers given them)\n"
        )
    );
}

/// Issue 17: integrated GPUs are in the spec by default (ROCm lists them too, and an APU such as
/// the MI300A is the compute device); `--exclude-integrated` leaves them out, numbers the rest
/// from 0, records the choice for `check`, and refuses a host with only integrated GPUs.
#[test]
fn integrated_gpus_are_in_by_default_and_left_out_on_request() {
    let names = |extra: &[&str]| -> Vec<String> {
        let mut args = vec!["--dev-root", "/nonexistent"];
        args.extend(extra);
        json_of_host("generate", "workstation", &args)["devices"]
            .as_array()
            .expect("devices")
            .iter()
            .map(|d| {
                format!(
                    "{}={}",
                    d["name"].as_str().expect("name"),
                    d["containerEdits"]["deviceNodes"][0]["path"]
                        .as_str()
                        .unwrap_or("(spec-wide)")
                )
            })
            .collect()
    };
    assert_eq!(
        names(&["--device-name-strategy", "index"]),
        [
            "0=/dev/dri/renderD128",
            "1=/dev/dri/renderD129",
            "all=/dev/dri/renderD128"
        ]
    );
    assert_eq!(
        names(&["--device-name-strategy", "index", "--exclude-integrated"]),
        ["0=/dev/dri/renderD128", "all=/dev/dri/renderD128"]
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let spec = dir.path().join("amd.com-gpu.yaml");
    let generate = |extra: &[&str]| {
        on_sysfs("generate", host_sysfs(extra[0]))
            .args(["--dev-root", "/nonexistent", "--output"])
            .arg(&spec)
            .args(&extra[1..])
            .output()
            .expect("run generate")
    };
    assert!(
        generate(&["workstation", "--exclude-integrated"])
            .status
            .success()
    );
    let text = std::fs::read_to_string(&spec).expect("spec");
    assert!(
        text.starts_with(
            "# generated by: amdgpu-cdi generate --device-name-strategy index \
             --device-name-strategy uuid --exclude-integrated\n"
        ),
        "{text}"
    );
    on_sysfs("check", host_sysfs("workstation"))
        .arg("--spec")
        .arg(&spec)
        .args(["--dev-root", "/nonexistent"])
        .assert()
        .code(0);

    let out = generate(&["mi300a-tpx", "--exclude-integrated"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "amdgpu-cdi: every GPU here is integrated (an APU), so --exclude-integrated leaves none \
         for the spec (drop the option)\n"
    );
}
