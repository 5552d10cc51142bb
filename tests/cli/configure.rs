//! Golden-file tests of `amdgpu-cdi configure` for every engine and config layout, and concurrent
//! runs on one file.
//!
//! Each directory `tests/fixtures/configure/<engine>/<case>/` holds:
//! - `input.<ext>`: the engine config before (absent: the file does not exist),
//! - `main.conf`: for crio/podman, the engine's main config next to the drop-in directory,
//! - `args`: extra arguments, whitespace separated (optional),
//! - `expected.<ext>`: the config after `configure` (byte for byte), `expected-dropin.toml` for a
//!   containerd drop-in; or `expected-error.txt`: the exact error line for a broken input.
//!
//! `@DIR@` in expected files stands for the temporary directory of the run. Every success case
//! also checks that a second run changes nothing, that `--dry-run` writes nothing, and that
//! `--remove` gives back a file equal in meaning to the input (in fact byte for byte).
//! `GOLDEN_UPDATE=1` rewrites the expected files from the current output (review the diff).

use std::fs;
use std::path::{Path, PathBuf};

use crate::files::{names, not_regular_files};
use crate::support::{amdgpu_cdi, repo_root};

const RUNTIME: &str = "/usr/bin/amdgpu-container-runtime";

fn cases(engine: &str) -> Vec<PathBuf> {
    let dir = repo_root().join("tests/fixtures/configure").join(engine);
    let mut cases: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.expect("fixture dir entry").path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    assert!(!cases.is_empty(), "no cases under {}", dir.display());
    cases
}

/// Where the case's files live inside a temp dir, per engine.
struct CaseFiles {
    /// The file `configure` edits or writes (`--config`).
    config: PathBuf,
    /// The engine's main config for drop-in engines.
    main: Option<PathBuf>,
    /// Fixture extension of the edited file.
    ext: &'static str,
}

fn layout(engine: &str, root: &Path) -> CaseFiles {
    match engine {
        "docker" => CaseFiles {
            config: root.join("daemon.json"),
            main: None,
            ext: "json",
        },
        "containerd" => CaseFiles {
            config: root.join("config.toml"),
            main: None,
            ext: "toml",
        },
        "crio" => CaseFiles {
            config: root.join("crio/crio.conf.d/99-amdgpu-cdi.conf"),
            main: Some(root.join("crio/crio.conf")),
            ext: "conf",
        },
        "podman" => CaseFiles {
            config: root.join("containers/containers.conf.d/99-amdgpu-cdi.conf"),
            main: Some(root.join("containers/containers.conf")),
            ext: "conf",
        },
        other => panic!("unknown engine {other}"),
    }
}

fn read(path: &Path) -> Option<String> {
    fs::read_to_string(path).ok()
}

fn placeholder(text: &str, root: &Path) -> String {
    text.replace(&root.display().to_string(), "@DIR@")
}

fn check_golden(expected: &Path, actual: &str, root: &Path, case: &Path) {
    let actual = placeholder(actual, root);
    if std::env::var_os("GOLDEN_UPDATE").is_some() {
        fs::write(expected, &actual).expect("update golden file");
        return;
    }
    let want = read(expected).unwrap_or_else(|| panic!("missing {}", expected.display()));
    assert_eq!(
        actual,
        want,
        "case {}: output differs from {}",
        case.display(),
        expected.display()
    );
}

fn args_of(case: &Path) -> Vec<String> {
    read(&case.join("args"))
        .map(|a| a.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

/// Sets up a case in a fresh temp dir and returns (temp dir, layout, input text).
fn prepare(engine: &str, case: &Path) -> (tempfile::TempDir, CaseFiles, Option<String>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let layout = layout(engine, dir.path());
    let input = read(&case.join(format!("input.{}", layout.ext)));
    if let Some(text) = &input {
        fs::create_dir_all(layout.config.parent().expect("parent")).expect("mkdir");
        fs::write(&layout.config, text).expect("write input");
    }
    if let (Some(main), Some(text)) = (&layout.main, read(&case.join("main.conf"))) {
        fs::create_dir_all(main.parent().expect("parent")).expect("mkdir");
        fs::write(main, text).expect("write main config");
    }
    (dir, layout, input)
}

/// `amdgpu-cdi configure <engine> --config <config> <extra>`.
fn configure(engine: &str, config: &Path, extra: &[&str]) -> assert_cmd::Command {
    let mut cmd = amdgpu_cdi();
    cmd.args(["configure", engine, "--config"])
        .arg(config)
        .args(extra);
    cmd
}

/// `amdgpu-cdi configure <engine> --config <config> <extra>`, which must succeed.
fn configure_ok(engine: &str, config: &Path, extra: &[&str]) {
    configure(engine, config, extra).assert().success();
}

/// A temp dir with the config file `name` in it, holding `text` (`None`: the file does not exist).
fn config_in_temp(name: &str, text: Option<&str>) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join(name);
    if let Some(text) = text {
        fs::write(&config, text).expect("write");
    }
    (dir, config)
}

/// A temp dir with daemon.json holding `text`, configured for docker with the wrapper.
fn configured_daemon_json(text: &str) -> (tempfile::TempDir, PathBuf) {
    let (dir, config) = config_in_temp("daemon.json", Some(text));
    configure_ok("docker", &config, &["--runtime-path", RUNTIME]);
    (dir, config)
}

/// `configure <engine> <extra>` with a config `name` that does not exist fails with the one line
/// `stderr` and writes nothing.
fn assert_refused_writing_nothing(engine: &str, name: &str, extra: &[&str], stderr: &str) {
    let (_dir, config) = config_in_temp(name, None);
    configure(engine, &config, extra)
        .assert()
        .failure()
        .stderr(stderr.to_owned());
    assert!(!config.exists());
}

/// The standard output of a `configure` run with its temp dir `dir` shown as `@DIR@`.
fn shown_stdout(out: &assert_cmd::assert::Assert, dir: &Path) -> String {
    placeholder(&String::from_utf8_lossy(&out.get_output().stdout), dir)
}

fn same_meaning(engine: &str, a: &str, b: &str) -> bool {
    if engine == "docker" {
        // dockerd 23+ skips a UTF-8 byte order mark, and so does `configure`.
        let parse = |t: &str| -> serde_json::Value {
            let t = t.strip_prefix('\u{feff}').unwrap_or(t);
            if t.trim().is_empty() {
                serde_json::json!({})
            } else {
                serde_json::from_str(t).expect("valid JSON")
            }
        };
        parse(a) == parse(b)
    } else {
        a.parse::<toml::Table>().expect("valid TOML") == b.parse::<toml::Table>().expect("valid")
    }
}

fn run_case(engine: &str, case: &Path) {
    let (dir, layout, input) = prepare(engine, case);
    let root = dir.path();
    let name = case.display();
    let case_args = args_of(case);
    let mut args = vec!["--runtime-path", RUNTIME];
    args.extend(case_args.iter().map(String::as_str));

    let error_file = case.join("expected-error.txt");
    if error_file.exists() {
        let out = configure(engine, &layout.config, &args)
            .assert()
            .failure()
            .get_output()
            .clone();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(
            stderr.lines().count(),
            1,
            "case {name}: one error line: {stderr}"
        );
        check_golden(&error_file, &stderr, root, case);
        assert_eq!(read(&layout.config), input, "case {name}: input untouched");
        return;
    }

    // --dry-run writes nothing and shows the diff.
    let out = configure(engine, &layout.config, &args)
        .arg("--dry-run")
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(
        stdout.contains("+++ "),
        "case {name}: dry run shows a diff: {stdout}"
    );
    assert_eq!(read(&layout.config), input, "case {name}: dry run wrote");

    // configure produces the golden file(s).
    configure_ok(engine, &layout.config, &args);
    let written = read(&layout.config).expect("config written");
    check_golden(
        &case.join(format!("expected.{}", layout.ext)),
        &written,
        root,
        case,
    );
    let dropin = root.join("conf.d/99-amdgpu-cdi.toml");
    let expected_dropin = case.join("expected-dropin.toml");
    if engine == "containerd" && (dropin.exists() || expected_dropin.exists()) {
        let text = read(&dropin).expect("containerd drop-in written");
        check_golden(&expected_dropin, &text, root, case);
    }

    // A second run changes nothing and says so.
    let out = configure(engine, &layout.config, &args).assert().success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(
        stdout.contains("nothing changed"),
        "case {name}: second run: {stdout}"
    );
    assert_eq!(
        read(&layout.config).as_deref(),
        Some(written.as_str()),
        "second run rewrote"
    );

    // --remove gives back the original.
    configure_ok(engine, &layout.config, &["--remove"]);
    let restored = read(&layout.config);
    match (&input, &restored) {
        (None, None) => {}
        (Some(original), Some(now)) => {
            assert!(same_meaning(engine, original, now), "case {name}: remove");
            assert_eq!(original, now, "case {name}: remove restores the bytes");
        }
        _ => panic!("case {name}: remove left {restored:?}, input was {input:?}"),
    }
    assert!(!dropin.exists(), "containerd drop-in removed");
    let leftovers: Vec<String> = walk(root)
        .into_iter()
        .map(|p| placeholder(&p.display().to_string(), root))
        .filter(|p| p.contains("amdgpu-cdi.json") || p.contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "case {name}: leftovers {leftovers:?}");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

fn run_engine(engine: &str) {
    for case in cases(engine) {
        run_case(engine, &case);
    }
}

#[test]
fn docker_golden_cases() {
    run_engine("docker");
}

#[test]
fn containerd_golden_cases() {
    run_engine("containerd");
}

#[test]
fn crio_golden_cases() {
    run_engine("crio");
}

#[test]
fn podman_golden_cases() {
    run_engine("podman");
}

#[test]
fn remove_keeps_features_cdi_that_was_on_before() {
    let (_dir, config) = configured_daemon_json("{\n  \"features\": {\"cdi\": true}\n}\n");
    configure_ok("docker", &config, &["--remove"]);
    let value: serde_json::Value =
        serde_json::from_str(&read(&config).expect("config")).expect("json");
    assert_eq!(value, serde_json::json!({"features": {"cdi": true}}));
}

#[test]
fn remove_leaves_values_the_user_changed_afterwards() {
    let (_dir, config) = configured_daemon_json("{}\n");
    let edited = read(&config)
        .expect("config")
        .replace(RUNTIME, "/opt/mine/runtime");
    fs::write(&config, edited).expect("user edit");
    // It reports the kept key.
    configure("docker", &config, &["--remove"])
        .assert()
        .success()
        .stderr(predicates::str::contains("runtimes.amd"));
    let value: serde_json::Value =
        serde_json::from_str(&read(&config).expect("config")).expect("json");
    assert_eq!(
        value,
        serde_json::json!({"runtimes": {"amd": {"path": "/opt/mine/runtime"}}})
    );
}

#[test]
fn remove_without_configure_changes_nothing() {
    let (_dir, config) = config_in_temp("daemon.json", Some("{\"debug\": true}"));
    configure("docker", &config, &["--remove"])
        .assert()
        .success()
        .stdout("nothing to remove: amdgpu-cdi has not configured docker\n");
    assert_eq!(read(&config).as_deref(), Some("{\"debug\": true}"));
}

#[test]
fn relative_runtime_path_is_refused_before_touching_anything() {
    assert_refused_writing_nothing(
        "docker",
        "daemon.json",
        &["--runtime-path", "bin/wrapper"],
        "amdgpu-cdi: --runtime-path bin/wrapper is not absolute \
             (engines run it from another directory)\n",
    );
}

#[test]
fn foreign_dropin_is_not_overwritten() {
    let (_dir, dropin) = config_in_temp("99-amdgpu-cdi.conf", Some("[engine]\n"));
    configure("podman", &dropin, &[]).assert().failure();
    assert_eq!(read(&dropin).as_deref(), Some("[engine]\n"));
}

#[test]
fn backup_keeps_the_first_original_and_the_mode() {
    use std::os::unix::fs::PermissionsExt;
    let (dir, config) = config_in_temp("daemon.json", Some("{\"debug\": true}\n"));
    fs::set_permissions(&config, fs::Permissions::from_mode(0o600)).expect("chmod");
    configure_ok("docker", &config, &["--runtime-path", RUNTIME]);
    configure_ok(
        "docker",
        &config,
        &["--runtime-path", RUNTIME, "--set-as-default"],
    );
    let backup = dir.path().join("daemon.json.amdgpu-cdi.bak");
    assert_eq!(read(&backup).as_deref(), Some("{\"debug\": true}\n"));
    let mode = fs::metadata(&config).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // The ledger keeps the value from before the first run: remove restores all of it.
    configure_ok("docker", &config, &["--remove"]);
    assert_eq!(read(&config).as_deref(), Some("{\"debug\": true}\n"));
    assert!(
        !backup.exists(),
        "a backup equal to the restored file is dropped"
    );
}

#[test]
fn help_is_stable() {
    let out = amdgpu_cdi()
        .args(["configure", "--help"])
        .assert()
        .success();
    let help = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    insta::assert_snapshot!("configure_help", help);
}

#[test]
fn dry_run_prints_a_unified_diff_and_writes_nothing() {
    let input = "{\n  \"debug\": true,\n  \"features\": {\n    \"buildkit\": true\n  }\n}\n";
    let (dir, config) = config_in_temp("daemon.json", Some(input));
    let out = configure(
        "docker",
        &config,
        &["--dry-run", "--set-as-default", "--runtime-path", RUNTIME],
    )
    .assert()
    .success();
    let stdout = shown_stdout(&out, dir.path());
    insta::assert_snapshot!("configure_dry_run_docker", stdout);
    assert_eq!(read(&config).as_deref(), Some(input));
    assert!(
        !dir.path().join("daemon.json.amdgpu-cdi.bak").exists(),
        "no backup on a dry run"
    );
}

/// Issue 14 item 9: the containerd diff shows the new runtime table at the level of its peer
/// `runc` (the file's `runtimes` level has no header), after runc's tables, with a blank line
/// before it, not indented as if nested under `runc`.
#[test]
fn dry_run_diff_of_containerd_puts_the_runtime_beside_runc() {
    let fixture = repo_root().join("tests/fixtures/configure/containerd/v2-implicit-runtimes");
    let input = read(&fixture.join("input.toml")).expect("fixture");
    let (dir, config) = config_in_temp("config.toml", Some(&input));
    let out = configure(
        "containerd",
        &config,
        &["--dry-run", "--runtime-path", RUNTIME],
    )
    .assert()
    .success();
    let stdout = shown_stdout(&out, dir.path());
    insta::assert_snapshot!("configure_dry_run_containerd", stdout);
    assert_eq!(read(&config).as_deref(), Some(input.as_str()));
}

#[test]
fn messages_of_configure_rerun_and_remove() {
    let (dir, config) = config_in_temp("config.toml", Some("version = 2\n"));
    let mut transcript = String::new();
    for extra in [&[][..], &[][..], &["--remove"][..]] {
        let mut cmd = configure("containerd", &config, extra);
        if extra.is_empty() {
            cmd.args(["--runtime-path", RUNTIME]);
        }
        let out = cmd.assert().success();
        transcript.push_str(&format!("$ configure containerd {}\n", extra.join(" ")));
        transcript.push_str(&String::from_utf8_lossy(&out.get_output().stdout));
    }
    insta::assert_snapshot!("configure_messages", placeholder(&transcript, dir.path()));
}

#[test]
fn set_as_default_is_refused_for_podman() {
    assert_refused_writing_nothing(
        "podman",
        "99-amdgpu-cdi.conf",
        &["--set-as-default"],
        "amdgpu-cdi: --set-as-default does not apply to podman (podman injects CDI devices \
             itself: podman run --device amd.com/gpu=0)\n",
    );
}

#[test]
fn symlinked_config_is_edited_through_the_link() {
    let (dir, real) = config_in_temp("real.json", Some("{}\n"));
    let link = dir.path().join("daemon.json");
    std::os::unix::fs::symlink(&real, &link).expect("symlink");
    configure_ok("docker", &link, &["--runtime-path", RUNTIME]);
    assert!(
        fs::symlink_metadata(&link)
            .expect("lstat")
            .file_type()
            .is_symlink(),
        "link kept"
    );
    assert!(
        read(&real).expect("real file").contains(RUNTIME),
        "target edited"
    );
}

#[test]
fn docker_reserved_runtime_name_is_refused() {
    assert_refused_writing_nothing(
        "docker",
        "daemon.json",
        &["--runtime-name", "runc"],
        "amdgpu-cdi: runtime name \"runc\" is reserved by Docker (dockerd would not start): \
             use another, e.g. `amd`\n",
    );
}

/// A config big enough that reading, editing and writing it takes a debug build tens of
/// milliseconds, so runs started together overlap (a registry mirror or a label per line).
fn large_config(engine: &str) -> String {
    const ENTRIES: usize = 3000;
    match engine {
        "docker" => {
            let labels: Vec<String> = (0..ENTRIES)
                .map(|i| format!("    \"rack.example/slot-{i}=gpu-node-{i}\""))
                .collect();
            format!("{{\n  \"labels\": [\n{}\n  ]\n}}\n", labels.join(",\n"))
        }
        _ => {
            let mut text = "version = 2\n".to_string();
            for i in 0..ENTRIES {
                text.push_str(&format!(
                    "\n[plugins.\"io.containerd.grpc.v1.cri\".registry.mirrors.\"r{i}.example\"]\n  endpoint = [\"https://r{i}.example\"]\n"
                ));
            }
            text
        }
    }
}

/// Starts `amdgpu-cdi configure <engine> --config <config> <extra>` without waiting for it, so
/// that several run at once.
fn start_configure(engine: &str, config: &Path, extra: &[&str]) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_amdgpu-cdi"))
        .args(["configure", engine, "--config"])
        .arg(config)
        .args(extra)
        .env_remove("AMDGPU_CDI_CONFIG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start configure")
}

/// Waits for every run of `children`, each of which must succeed (`what` names them on failure).
fn wait_for_all(children: Vec<std::process::Child>, what: &str) {
    for child in children {
        let out = child.wait_with_output().expect("wait for configure");
        assert!(
            out.status.success(),
            "{what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// One `configure <engine> --remove` gives back `original`, byte for byte, and leaves nothing
/// beside `config` (no ledger, backup or temp file); `what` names the run on failure.
fn assert_remove_restores(engine: &str, config: &Path, original: &str, what: &str) {
    configure_ok(engine, config, &["--remove"]);
    assert!(
        read(config).as_deref() == Some(original),
        "{what}: not the original after remove"
    );
    let left: Vec<PathBuf> = walk(config.parent().expect("a temp dir"))
        .into_iter()
        .filter(|p| p != config)
        .collect();
    assert!(left.is_empty(), "{what}: left behind: {left:?}");
}

/// Regression: two `configure` runs on one file at once both read the old file and the second
/// write dropped the first run's change (and its ledger entry). Now each run holds the file's lock
/// from its first read to its last write: N runs adding N runtime names end with all N in the file
/// and the ledger, and one `--remove` gives back the original bytes.
#[test]
fn concurrent_runs_on_one_config_are_serialised() {
    const RUNS: usize = 8;
    for (engine, name) in [("docker", "daemon.json"), ("containerd", "config.toml")] {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join(name);
        let original = large_config(engine);
        fs::write(&config, &original).expect("write config");
        let children = (0..RUNS)
            .map(|i| {
                let name = format!("gpu{i}");
                let extra = ["--runtime-path", RUNTIME, "--runtime-name", &name];
                start_configure(engine, &config, &extra)
            })
            .collect();
        wait_for_all(children, engine);
        let text = read(&config).expect("config");
        let runtimes: Vec<String> = (0..RUNS)
            .map(|i| format!("gpu{i}"))
            .filter(|name| match engine {
                "docker" => {
                    let value: serde_json::Value = serde_json::from_str(&text).expect("json");
                    value["runtimes"][name]["path"] == RUNTIME
                }
                _ => {
                    let table: toml::Table = text.parse().expect("toml");
                    table["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["runtimes"]
                        .get(name)
                        .is_some_and(|entry| {
                            entry["options"]["BinaryName"].as_str() == Some(RUNTIME)
                        })
                }
            })
            .collect();
        assert_eq!(
            runtimes.len(),
            RUNS,
            "{engine}: runtimes left in the file: {runtimes:?}"
        );
        let ledger = read(&dir.path().join(format!("{name}.amdgpu-cdi.json"))).expect("ledger");
        for i in 0..RUNS {
            assert!(
                ledger.contains(&format!("\"gpu{i}\"")),
                "{engine}: ledger lacks gpu{i}: {ledger}"
            );
        }
        // The ledger is consistent with the file: one --remove undoes all of it, byte for byte.
        assert_remove_restores(engine, &config, &original, engine);
    }
}

/// Concurrent `configure docker` runs (each adding its own runtime) and `--remove` runs on a
/// configured file: whatever the order, the file and its ledger agree (every runtime in the file is
/// in the ledger and the other way round), and one more `--remove` gives back the original bytes.
#[test]
fn concurrent_configure_and_remove_keep_file_and_ledger_in_step() {
    const RUNS: usize = 8;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("daemon.json");
    let original = large_config("docker");
    let ledger = dir.path().join("daemon.json.amdgpu-cdi.json");
    for round in 0..4 {
        fs::write(&config, &original).expect("write config");
        configure_ok("docker", &config, &["--runtime-path", RUNTIME]);
        let children = (0..RUNS)
            .map(|i| {
                let name = format!("gpu{i}");
                if i % 2 == 0 {
                    let extra = ["--runtime-path", RUNTIME, "--runtime-name", &name];
                    start_configure("docker", &config, &extra)
                } else {
                    start_configure("docker", &config, &["--remove"])
                }
            })
            .collect();
        wait_for_all(children, &format!("round {round}"));
        let text = read(&config).expect("config");
        let value: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
        let mut in_file: Vec<String> = value["runtimes"]
            .as_object()
            .map(|runtimes| runtimes.keys().cloned().collect())
            .unwrap_or_default();
        in_file.sort();
        let recorded: serde_json::Value = read(&ledger)
            .map(|text| serde_json::from_str(&text).expect("ledger is JSON"))
            .unwrap_or_default();
        let mut in_ledger: Vec<String> = recorded["changes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|change| match change["key"].as_array()?.as_slice() {
                [runtimes, name] if runtimes == "runtimes" => name.as_str().map(str::to_string),
                _ => None,
            })
            .collect();
        in_ledger.sort();
        assert_eq!(
            in_file, in_ledger,
            "round {round}: file and ledger disagree"
        );
        assert_remove_restores("docker", &config, &original, &format!("round {round}"));
    }
}

/// Issue 12, item 13: `--remove` restored the backup's bytes whenever the result meant the same,
/// so comments added after `configure` vanished. Now only what the ledger records goes; the
/// comment added between two runs and the one added after the last survive.
#[test]
fn remove_keeps_a_comment_added_after_configure_in_config_toml() {
    let input = fs::read_to_string(
        repo_root().join("tests/fixtures/configure/containerd/v2-comments/input.toml"),
    )
    .expect("fixture");
    let (dir, config) = config_in_temp("config.toml", Some(&input));
    configure_ok("containerd", &config, &["--runtime-path", RUNTIME]);
    let first = "# GPU nodes: amdgpu-cdi adds the `amd` runtime\n";
    let text = read(&config).expect("config");
    fs::write(&config, format!("{first}{text}")).expect("user edit");
    configure_ok(
        "containerd",
        &config,
        &["--runtime-path", RUNTIME, "--set-as-default"],
    );
    let second = "# reviewed by ops\n";
    let text = read(&config)
        .expect("config")
        .replace("[grpc]\n", &format!("[grpc]\n{second}"));
    fs::write(&config, text).expect("user edit");
    configure_ok("containerd", &config, &["--remove"]);
    let removed = read(&config).expect("config");
    assert_eq!(
        removed,
        format!(
            "{first}{}",
            input.replace("[grpc]\n", &format!("[grpc]\n{second}"))
        ),
        "only amdgpu-cdi's settings are gone"
    );
    assert!(
        dir.path().join("config.toml.amdgpu-cdi.bak").exists(),
        "the backup differs from the file now, so it is kept"
    );
}

/// The same for daemon.json, which holds no comments: a layout the user gave the file after
/// `configure` (another indentation, another key order) survives `--remove`.
#[test]
fn remove_keeps_the_layout_the_user_gave_daemon_json_after_configure() {
    let (_dir, config) = configured_daemon_json("{\"debug\": true, \"log-level\": \"warn\"}\n");
    let configured: serde_json::Value =
        serde_json::from_str(&read(&config).expect("config")).expect("json");
    let mut reordered = serde_json::Map::new();
    for key in ["log-level", "features", "runtimes", "debug"] {
        reordered.insert(key.to_string(), configured[key].clone());
    }
    let mut edited = serde_json::to_string_pretty(&reordered).expect("render");
    edited = edited.replace("\n  ", "\n\t").replace("\n    ", "\n\t\t");
    edited.push('\n');
    fs::write(&config, &edited).expect("user edit");
    configure_ok("docker", &config, &["--remove"]);
    assert_eq!(
        read(&config).as_deref(),
        Some("{\n\t\"log-level\": \"warn\",\n\t\"debug\": true\n}\n")
    );
}

/// Issue 12, item 8, for `configure`: the rewrite and the backup keep a config's permission bits
/// only, never its setuid, setgid or sticky bits.
#[test]
fn configure_keeps_permission_bits_only() {
    use std::os::unix::fs::PermissionsExt;
    let (dir, config) = config_in_temp("daemon.json", Some("{}\n"));
    fs::set_permissions(&config, fs::Permissions::from_mode(0o7755)).expect("chmod");
    configure_ok("docker", &config, &["--runtime-path", RUNTIME]);
    let mode = |path: &Path| fs::metadata(path).expect("stat").permissions().mode() & 0o7777;
    assert_eq!(mode(&config), 0o755);
    assert_eq!(mode(&dir.path().join("daemon.json.amdgpu-cdi.bak")), 0o755);
}

/// Issue 12, item 2, for `configure` (devices: tests/e2e/special_files.rs): a FIFO, socket or
/// directory as `--config`, or a symlink to one, is refused with one line and left as it is;
/// reading a FIFO does not wait for a writer.
#[test]
fn configure_refuses_a_config_that_is_not_a_regular_file() {
    let files = not_regular_files("fifo.json", "socket.toml", "dir.json");
    let (dir, fifo, socket, directory) = (&files.dir, &files.fifo, &files.socket, &files.directory);
    let link = dir.path().join("link.json");
    std::os::unix::fs::symlink(fifo, &link).expect("symlink");
    let dangling = dir.path().join("dangling.json");
    std::os::unix::fs::symlink("nowhere.json", &dangling).expect("symlink");
    let cases = [
        (
            "docker",
            fifo,
            format!(
                "cannot write {}: it is a FIFO, not a regular file",
                fifo.display()
            ),
        ),
        (
            "containerd",
            socket,
            format!(
                "cannot write {}: it is a socket, not a regular file",
                socket.display()
            ),
        ),
        (
            "docker",
            directory,
            format!(
                "cannot write {}: it is a directory, not a regular file",
                directory.display()
            ),
        ),
        (
            "docker",
            &link,
            format!(
                "cannot write {}: it leads to {}, a FIFO, not a regular file",
                link.display(),
                fifo.display()
            ),
        ),
        (
            "docker",
            &dangling,
            format!(
                "cannot write {}: it is a symbolic link to {}, which does not exist",
                dangling.display(),
                dir.path().join("nowhere.json").display()
            ),
        ),
    ];
    for (engine, config, message) in cases {
        let out = configure(engine, config, &["--runtime-path", RUNTIME])
            .timeout(std::time::Duration::from_secs(30))
            .assert()
            .code(2)
            .get_output()
            .clone();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            stderr.starts_with(&format!("amdgpu-cdi: {message}")) && stderr.lines().count() == 1,
            "{engine} {}: {stderr}",
            config.display()
        );
        // `--remove` refuses it the same way (or, without a ledger, has nothing to remove).
        let out = configure(engine, config, &["--remove"])
            .timeout(std::time::Duration::from_secs(30))
            .output()
            .expect("run");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            (out.status.code() == Some(0) && stdout.starts_with("nothing to remove"))
                || (out.status.code() == Some(2)
                    && stderr.starts_with(&format!("amdgpu-cdi: {message}"))),
            "{engine} --remove {}: {stdout}{stderr}",
            config.display()
        );
    }
    assert_eq!(
        names(dir.path()),
        [
            "dangling.json",
            "dir.json",
            "fifo.json",
            "link.json",
            "socket.toml"
        ]
    );
}
