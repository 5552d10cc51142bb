//! `amdgpu-container-runtime` with a recording fake runtime: `create` rewrites the bundle's
//! config and execs the runtime with the original argv; other subcommands pass straight through;
//! errors go to the engine's `--log` in its `--log-format` and to stderr.

use std::fs;
use std::path::PathBuf;

use crate::support::repo_root;

fn fixture(name: &str) -> PathBuf {
    repo_root().join("tests/fixtures/requests").join(name)
}

struct WrapperSetup {
    dir: tempfile::TempDir,
}

impl WrapperSetup {
    /// A temp dir with `config.toml` (CDI fixture specs, the recording runtime) and a bundle whose
    /// config requests `request`.
    fn new(request: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = format!(
            "runtime = \"{}\"\ndevice-source = \"cdi\"\nspec-dirs = [\"{}\"]\n",
            fixture("bin/record-runtime").display(),
            fixture("cdi").display()
        );
        fs::write(dir.path().join("config.toml"), config).expect("write config");
        let bundle = dir.path().join("bundle");
        fs::create_dir(&bundle).expect("bundle dir");
        let oci = fs::read_to_string(fixture("config-request.json"))
            .expect("fixture")
            .replace(
                "AMD_VISIBLE_DEVICES=REQUEST",
                &format!("AMD_VISIBLE_DEVICES={request}"),
            );
        fs::write(bundle.join("config.json"), oci).expect("write bundle config");
        Self { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn bundle_config(&self) -> String {
        fs::read_to_string(self.path("bundle/config.json")).expect("bundle config")
    }

    fn wrapper(&self, args: &[&str]) -> assert_cmd::Command {
        let mut cmd = assert_cmd::Command::new(env!("CARGO_BIN_EXE_amdgpu-container-runtime"));
        cmd.env_clear()
            .env("AMDGPU_CDI_CONFIG", self.path("config.toml"))
            .env("RECORD_ARGS", self.path("argv"))
            .current_dir(self.dir.path())
            .args(args);
        cmd
    }

    fn recorded_argv(&self) -> Option<Vec<String>> {
        let text = fs::read_to_string(self.path("argv")).ok()?;
        Some(text.lines().map(str::to_string).collect())
    }
}

fn expected_argv(args: &[&str]) -> Vec<String> {
    std::iter::once(fixture("bin/record-runtime").display().to_string())
        .chain(args.iter().map(ToString::to_string))
        .collect()
}

#[test]
fn create_injects_then_execs_with_the_original_argv() {
    let setup = WrapperSetup::new("1");
    let log = setup.path("log.json");
    let args = [
        "--root",
        "/run/runc-test",
        "--log",
        log.to_str().expect("utf-8"),
        "--log-format",
        "json",
        "create",
        "--bundle",
        "bundle",
        "--pid-file",
        "/run/pid",
        "c1",
    ];
    setup.wrapper(&args).assert().success();
    assert_eq!(setup.recorded_argv(), Some(expected_argv(&args)));
    let config: serde_json::Value = serde_json::from_str(&setup.bundle_config()).expect("json");
    assert_eq!(config["annotations"]["amd.com/gpu.injected"], "1");
    let paths: Vec<&str> = config["linux"]["devices"]
        .as_array()
        .expect("devices")
        .iter()
        .filter_map(|d| d["path"].as_str())
        .collect();
    assert_eq!(paths, ["/dev/kfd", "/dev/dri/renderD129"]);
    assert_eq!(
        config["x-unknown-field"]["kept"], true,
        "unknown fields survive"
    );
    assert!(!log.exists(), "no error logged");
}

#[test]
fn the_default_bundle_is_the_current_directory() {
    let setup = WrapperSetup::new("0");
    let mut cmd = setup.wrapper(&["create", "c1"]);
    cmd.current_dir(setup.path("bundle"));
    cmd.assert().success();
    assert!(
        setup
            .bundle_config()
            .contains("\"amd.com/gpu.injected\":\"0\"")
    );
}

#[test]
fn other_subcommands_pass_straight_through() {
    for line in [
        "start c1",
        "state c1",
        "delete --force c1",
        "kill c1 9",
        "exec --process /p.json c1",
        "spec --bundle bundle",
        "restore --bundle bundle c1",
        "--version",
    ] {
        let setup = WrapperSetup::new("0,1");
        let before = setup.bundle_config();
        let args: Vec<&str> = line.split(' ').collect();
        setup.wrapper(&args).assert().success();
        assert_eq!(setup.recorded_argv(), Some(expected_argv(&args)), "{line}");
        assert_eq!(setup.bundle_config(), before, "{line}: config untouched");
    }
}

/// Issue 14 item 9: `--version` names the wrapper first, then lets the runtime print its own
/// (whose line stays the last with the word "version", the one Docker reads).
#[test]
fn version_prints_the_wrappers_then_the_runtimes() {
    for flag in ["--version", "-v"] {
        let setup = WrapperSetup::new("0");
        setup
            .wrapper(&[flag])
            .env("RECORD_STDOUT", "runc version 1.1.12")
            .assert()
            .success()
            .stdout(format!(
                "amdgpu-container-runtime {}\nrunc version 1.1.12\n",
                env!("CARGO_PKG_VERSION")
            ));
        assert_eq!(
            setup.recorded_argv(),
            Some(expected_argv(&[flag])),
            "{flag}"
        );
    }
}

/// A broken configuration does not hide the wrapper's version; the error follows it.
#[test]
fn version_comes_before_a_settings_error() {
    let setup = WrapperSetup::new("0");
    fs::write(setup.path("config.toml"), "runtime = 3\n").expect("write config");
    let out = setup.wrapper(&["--version"]).assert().code(1);
    assert_eq!(
        String::from_utf8_lossy(&out.get_output().stdout),
        format!("amdgpu-container-runtime {}\n", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(setup.recorded_argv(), None, "the runtime never ran");
}

#[test]
fn the_runtime_exit_code_is_the_wrappers() {
    let setup = WrapperSetup::new("void");
    setup
        .wrapper(&["create", "-b", "bundle", "c1"])
        .env("RECORD_EXIT", "3")
        .assert()
        .code(3);
}

fn error_case(format: &str) -> (WrapperSetup, String, String) {
    let setup = WrapperSetup::new("0,9");
    let before = setup.bundle_config();
    let log = setup.path("engine.log");
    let out = setup
        .wrapper(&[
            "--log",
            log.to_str().expect("utf-8"),
            "--log-format",
            format,
            "create",
            "-b",
            "bundle",
            "c1",
        ])
        .assert()
        .code(1)
        .get_output()
        .clone();
    assert_eq!(setup.recorded_argv(), None, "the runtime never ran");
    assert_eq!(setup.bundle_config(), before, "config untouched");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let logged = fs::read_to_string(&log).expect("engine log written");
    (setup, stderr, logged)
}

#[test]
fn errors_reach_the_engine_log_as_json() {
    let (_setup, stderr, logged) = error_case("json");
    insta::assert_snapshot!("runtime_error_stderr", stderr);
    let line: serde_json::Value = serde_json::from_str(logged.trim_end()).expect("one JSON line");
    assert_eq!(line["level"], "error");
    assert_eq!(line["msg"].as_str(), Some(stderr.trim_end()));
    let time = line["time"].as_str().expect("time");
    assert!(time.len() == 20 && time.ends_with('Z'), "{time}");
}

#[test]
fn errors_reach_the_engine_log_as_text() {
    let (_setup, stderr, logged) = error_case("text");
    assert!(logged.starts_with("time=\""), "{logged}");
    assert!(logged.contains(
        " level=error msg=\"amdgpu-container-runtime: AMD_VISIBLE_DEVICES: no GPU matches \\\"9\\\""
    ));
    assert!(stderr.starts_with("amdgpu-container-runtime: "));
}

/// Issue 12 item 6: a config that runc's Go decoder reads differently from an exact reader
/// (`devices` allow-all, `DEVICES` deny-all) is refused before anything is written or run.
#[test]
fn a_key_differing_from_an_oci_field_only_in_case_is_refused() {
    let setup = WrapperSetup::new("void");
    let variant = fs::read_to_string(fixture("config-case-variant.json")).expect("fixture");
    fs::write(setup.path("bundle/config.json"), &variant).expect("write bundle config");
    setup
        .wrapper(&["create", "-b", "bundle", "c1"])
        .assert()
        .code(1)
        .stderr(predicates::str::contains(
            "config.json as an OCI runtime config: key \"DEVICES\" in linux.resources is the \
             OCI field \"devices\" spelled in another case",
        ));
    assert_eq!(setup.recorded_argv(), None, "the runtime never ran");
    assert_eq!(setup.bundle_config(), variant, "config untouched");
}

#[test]
fn a_missing_runtime_is_reported() {
    let setup = WrapperSetup::new("void");
    fs::write(
        setup.path("config.toml"),
        "runtime = \"/nonexistent/runc\"\n",
    )
    .expect("write");
    setup
        .wrapper(&["state", "c1"])
        .assert()
        .code(1)
        .stderr(predicates::str::starts_with(
            "amdgpu-container-runtime: cannot execute the runtime /nonexistent/runc: no such \
             file or directory",
        ));
}

/// The runtime starts with the signal state an engine would give it: Rust programs ignore
/// SIGPIPE, and an ignored signal would otherwise survive the exec into the runtime.
#[test]
fn the_runtime_gets_default_signal_handling() {
    let setup = WrapperSetup::new("void");
    let runtime = setup.path("signals-runtime");
    crate::files::executable(
        &runtime,
        "#!/bin/sh\nexec grep -E '^Sig(Ign|Blk):' /proc/self/status > \"$RECORD_ARGS\"\n",
    );
    let config = format!("runtime = \"{}\"\n", runtime.display());
    fs::write(setup.path("config.toml"), config).expect("write config");
    setup.wrapper(&["state", "c1"]).assert().success();
    let recorded = setup.recorded_argv().expect("the runtime ran");
    let mask = |name: &str| {
        let line = recorded.iter().find(|l| l.starts_with(name)).expect(name);
        u64::from_str_radix(line[name.len()..].trim(), 16).expect("hex mask")
    };
    const SIGPIPE_BIT: u64 = 1 << (13 - 1);
    assert_eq!(
        mask("SigIgn:") & SIGPIPE_BIT,
        0,
        "SIGPIPE ignored: {recorded:?}"
    );
    assert_eq!(mask("SigBlk:"), 0, "signals blocked: {recorded:?}");
}

/// Issue 12 item 5, for the wrapper: a `log-file` that is a symlink is not written through; the
/// wrapper says so once on stderr and still injects and execs the runtime.
#[test]
fn log_file_symlink_is_refused_and_the_container_still_starts() {
    let setup = WrapperSetup::new("1");
    let target = setup.path("crontab");
    fs::write(&target, "# precious\n").expect("target");
    let link = setup.path("detail.log");
    std::os::unix::fs::symlink(&target, &link).expect("symlink");
    let mut config = fs::read_to_string(setup.path("config.toml")).expect("config");
    config.push_str(&format!("log-file = \"{}\"\n", link.display()));
    fs::write(setup.path("config.toml"), config).expect("config");
    let args = ["create", "--bundle", "bundle", "c1"];
    setup.wrapper(&args).assert().success().stderr(format!(
        "amdgpu-container-runtime: warning: refusing to write the detail log {}: it is a \
         symbolic link (the log is never written through a link; name the real file)\n",
        link.display()
    ));
    assert_eq!(setup.recorded_argv(), Some(expected_argv(&args)));
    assert_eq!(fs::read_to_string(&target).expect("target"), "# precious\n");
}
