//! The bad input table: malformed specs, configs, container states, sysfs trees, selectors and
//! arguments fed to `amdgpu-cdi` (CLI and hooks) and `amdgpu-container-runtime`. Every row must
//! end with a non-zero exit code that is not a panic (101) or a signal, within a time limit, with
//! exactly one line on stderr that starts with the program's name (`validate` prints its problems
//! on stdout and a one-line summary on stderr). Inputs are files under
//! `tests/fixtures/bad-input/`; the huge ones and non-UTF-8 arguments are made by the test.

use std::ffi::OsString;
use std::fs;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::{copy_tree, repo_root};

/// Longest a row may run (a hang fails the row; debug builds on a loaded machine are slow).
const TIME_LIMIT: Duration = Duration::from_secs(30);

/// Which binary a row runs.
#[derive(Clone, Copy, Debug)]
enum Bin {
    Cli,
    Runtime,
}

/// One malformed input and how it is fed.
struct BadInput {
    name: &'static str,
    bin: Bin,
    /// Arguments; `{fx}` is the fixture dir, `{tmp}` the row's temp dir, `{repo}` the repo root.
    args: Vec<OsString>,
    stdin: Vec<u8>,
    /// Contents of `{tmp}/bundle/config.json`, if the row needs a bundle.
    bundle: Option<Vec<u8>>,
    /// A copy of the three-GPU sysfs fixture at `{tmp}/host/sys` with node 1's `properties`
    /// replaced by these bytes.
    properties: Option<Vec<u8>>,
    /// A precreate refusal: podman discards the hook's stderr and exit code is not shown, so the
    /// hook exits 0 with its one-line error on stderr and prints the config with the error as
    /// `process.args[0]` (the container fails to start with that message; see docs/requests.md).
    refused: bool,
}

/// `hook precreate` with the test's settings file.
const PRECREATE: &[&str] = &["hook", "precreate", "--config", "{tmp}/hook.toml"];
/// `gpus` on the test's own sysfs tree (its KFD properties replaced per case).
const GPUS_TMP_HOST: &[&str] = &["gpus", "--sysfs-root", "{tmp}/host/sys"];
/// `hook prestart` with the test's settings file.
const PRESTART: &[&str] = &["hook", "prestart", "--config", "{tmp}/hook.toml"];
/// The wrapper's `create` of the test bundle.
const CREATE: &[&str] = &["create", "--bundle", "{tmp}/bundle", "c1"];
/// The three-GPU fixture host's sysfs tree.
const THREE_GPUS_SYS: &str = "{repo}/tests/fixtures/hosts/three-gpus/sys";
/// The three-GPU fixture host's dev root.
const THREE_GPUS_DEV: &str = "{repo}/tests/fixtures/hosts/three-gpus";
/// The CDI specs the hooks and `inject` read in these rows.
const REQUEST_SPECS: &str = "{repo}/tests/fixtures/requests/cdi";

fn fx() -> PathBuf {
    repo_root().join("tests/fixtures/bad-input")
}

fn read(name: &str) -> Vec<u8> {
    fs::read(fx().join(name)).unwrap_or_else(|err| panic!("fixture {name}: {err}"))
}

/// The OCI config fixture with `AMD_VISIBLE_DEVICES` set to `value`.
fn request(value: &str) -> Vec<u8> {
    String::from_utf8(read("oci/request.json"))
        .expect("utf-8 fixture")
        .replace(
            "AMD_VISIBLE_DEVICES=REQUEST",
            &format!("AMD_VISIBLE_DEVICES={value}"),
        )
        .into_bytes()
}

/// `check` of `spec` on the three-GPU fixture host.
fn check_spec(name: &'static str, spec: &str) -> BadInput {
    case(
        name,
        Bin::Cli,
        &[
            "check",
            "--sysfs-root",
            THREE_GPUS_SYS,
            "--dev-root",
            THREE_GPUS_DEV,
            "--spec",
            spec,
        ],
    )
}

/// `validate` of `spec`.
fn validate(name: &'static str, spec: &str) -> BadInput {
    case(name, Bin::Cli, &["validate", spec])
}

/// `inject` of `device` into the OCI config `config` with the request fixtures' specs.
fn inject(name: &'static str, config: &str, device: &str) -> BadInput {
    let args = [
        "inject",
        "--config",
        config,
        "--spec-dir",
        REQUEST_SPECS,
        device,
    ];
    case(name, Bin::Cli, &args)
}

/// `generate` on the three-GPU fixture host's sysfs tree with `extra` arguments.
fn generate_three_gpus(name: &'static str, extra: &[&str]) -> BadInput {
    let mut args = vec!["generate", "--sysfs-root", THREE_GPUS_SYS];
    args.extend(extra);
    case(name, Bin::Cli, &args)
}

fn case(name: &'static str, bin: Bin, args: &[&str]) -> BadInput {
    BadInput {
        name,
        bin,
        args: args.iter().map(OsString::from).collect(),
        stdin: Vec::new(),
        bundle: None,
        properties: None,
        refused: false,
    }
}

impl BadInput {
    fn stdin(mut self, bytes: Vec<u8>) -> Self {
        self.stdin = bytes;
        self
    }

    fn bundle(mut self, config: Vec<u8>) -> Self {
        self.bundle = Some(config);
        self
    }

    fn properties(mut self, bytes: Vec<u8>) -> Self {
        self.properties = Some(bytes);
        self
    }

    fn refused(mut self) -> Self {
        self.refused = true;
        self
    }

    fn arg(mut self, arg: OsString) -> Self {
        self.args.push(arg);
        self
    }
}

/// Every row of the table.
fn table() -> Vec<BadInput> {
    use Bin::{Cli, Runtime};
    let big = "7".repeat(1 << 20);
    // The longest single argument Linux accepts is 128 KiB.
    let long_arg = "7".repeat(100_000);
    let mut non_utf8 = b"/tmp/spec-\xff\xfe".to_vec();
    non_utf8.extend_from_slice(b".yaml");
    let mut huge_yaml = b"cdiVersion: \"0.5.0\"\nkind: amd.com/gpu\ndevices:\n".to_vec();
    huge_yaml.extend(std::iter::repeat_n(b"  - name: x\n".as_slice(), 1 << 20).flatten());
    let nested = [vec![b'['; 1 << 20], vec![b']'; 1 << 20]].concat();
    vec![
        // validate: broken spec files.
        validate("validate-truncated-yaml", "{fx}/specs/truncated.yaml"),
        validate("validate-empty-file", "{fx}/specs/empty.yaml"),
        validate("validate-nul-bytes", "{fx}/specs/nul-bytes.json"),
        validate("validate-wrong-types", "{fx}/specs/wrong-types.json"),
        validate("validate-not-a-mapping", "{fx}/specs/not-a-mapping.yaml"),
        validate("validate-binary", "{fx}/specs/binary.yaml"),
        validate("validate-alias-bomb", "{fx}/specs/alias-bomb.yaml"),
        validate("validate-duplicate-key", "{fx}/specs/duplicate-key.json"),
        validate("validate-absurd-version", "{fx}/specs/absurd-version.json"),
        validate("validate-missing-file", "{fx}/specs/nonexistent.yaml"),
        case("validate-non-utf8-path", Cli, &["validate"]).arg(OsString::from_vec(non_utf8)),
        case("validate-huge-yaml", Cli, &["validate", "{tmp}/huge.yaml"]).stdin(huge_yaml),
        case(
            "validate-deep-nesting",
            Cli,
            &["validate", "{tmp}/deep.json"],
        )
        .stdin(nested.clone()),
        // inject: broken OCI configs and device names.
        inject(
            "inject-truncated-config",
            "{fx}/oci/truncated.json",
            "amd.com/gpu=0",
        ),
        inject("inject-config-not-an-object", "-", "amd.com/gpu=0")
            .stdin(read("oci/not-an-object.json")),
        inject("inject-config-nul-bytes", "-", "amd.com/gpu=0").stdin(read("oci/nul-bytes.json")),
        inject(
            "inject-config-not-utf8",
            "{fx}/oci/not-utf8.json",
            "amd.com/gpu=0",
        ),
        inject(
            "inject-huge-device-name",
            "{repo}/tests/fixtures/oci/config.json",
            &format!("amd.com/gpu={long_arg}"),
        ),
        inject(
            "inject-garbage-device-name",
            "{repo}/tests/fixtures/oci/config.json",
            "=/=\u{7f}\u{1}",
        ),
        // generate / gpus: unusable sysfs trees, outputs and options.
        case(
            "generate-missing-sysfs",
            Cli,
            &[
                "generate",
                "--sysfs-root",
                "/nonexistent/sys",
                "--output",
                "{tmp}/out.yaml",
            ],
        ),
        case(
            "generate-sysfs-is-a-file",
            Cli,
            &[
                "generate",
                "--sysfs-root",
                "{fx}/specs/empty.yaml",
                "--output",
                "{tmp}/out.yaml",
            ],
        ),
        generate_three_gpus(
            "generate-output-in-missing-dir",
            &[
                "--dev-root",
                THREE_GPUS_DEV,
                "--output",
                "{fx}/specs/empty.yaml/out.yaml",
            ],
        ),
        generate_three_gpus(
            "generate-output-is-a-directory",
            &[
                "--dev-root",
                THREE_GPUS_DEV,
                "--output",
                "{tmp}/existing.yaml",
            ],
        ),
        generate_three_gpus(
            "generate-absurd-cdi-version",
            &["--cdi-version", "99999999999999999999.0.0"],
        ),
        generate_three_gpus("generate-huge-vendor", &["--vendor", &long_arg]),
        generate_three_gpus("generate-bad-class", &["--class", "gpu/../../etc"]),
        case(
            "gpus-garbage-properties",
            Cli,
            &[
                "gpus",
                "--sysfs-root",
                "{repo}/tests/fixtures/hosts/garbage-properties/sys",
            ],
        ),
        case("gpus-properties-not-a-number", Cli, GPUS_TMP_HOST)
            .properties(read("properties/not-a-number")),
        case("gpus-properties-huge-number", Cli, GPUS_TMP_HOST)
            .properties(read("properties/huge-number")),
        case("gpus-properties-nul-bytes", Cli, GPUS_TMP_HOST)
            .properties(read("properties/nul-bytes")),
        case("gpus-properties-not-utf8", Cli, GPUS_TMP_HOST)
            .properties(read("properties/not-utf8")),
        case("gpus-properties-huge-file", Cli, GPUS_TMP_HOST)
            .properties(b"simd_count 1\n".repeat(1 << 20)),
        case(
            "check-missing-sysfs",
            Cli,
            &[
                "check",
                "--sysfs-root",
                "/nonexistent/sys",
                "--spec",
                "{fx}/specs/truncated.yaml",
            ],
        ),
        // check: spec files that are not specs are errors, not staleness.
        check_spec("check-truncated-spec", "{fx}/specs/truncated.yaml"),
        check_spec("check-empty-spec", "{fx}/specs/empty.yaml"),
        check_spec("check-binary-spec", "{fx}/specs/binary.yaml"),
        check_spec("check-not-a-mapping-spec", "{fx}/specs/not-a-mapping.yaml"),
        check_spec("check-alias-bomb-spec", "{fx}/specs/alias-bomb.yaml"),
        check_spec("check-nul-bytes-spec", "{fx}/specs/nul-bytes.json"),
        check_spec("check-wrong-types-spec", "{fx}/specs/wrong-types.json"),
        check_spec("check-duplicate-key-spec", "{fx}/specs/duplicate-key.json"),
        check_spec("check-spec-is-a-directory", "{tmp}/existing.yaml"),
        // hook precreate: the OCI config on stdin.
        case("precreate-truncated-stdin", Cli, PRECREATE).stdin(read("oci/truncated.json")),
        case("precreate-empty-stdin", Cli, PRECREATE),
        case("precreate-nul-bytes", Cli, PRECREATE).stdin(read("oci/nul-bytes.json")),
        case("precreate-not-an-object", Cli, PRECREATE).stdin(read("oci/not-an-object.json")),
        case("precreate-huge-stdin", Cli, PRECREATE).stdin(vec![b' '; 20 << 20]),
        case("precreate-deep-nesting", Cli, PRECREATE).stdin(nested),
        case("precreate-selector-overflow", Cli, PRECREATE)
            .stdin(request("99999999999999999999"))
            .refused(),
        case("precreate-selector-1mb", Cli, PRECREATE)
            .stdin(request(&big))
            .refused(),
        case("precreate-selector-huge-range", Cli, PRECREATE)
            .stdin(request("0-18446744073709551615"))
            .refused(),
        case("precreate-selector-garbage", Cli, PRECREATE)
            .stdin(request(",,-,\\u0000,GPU-"))
            .refused(),
        case(
            "precreate-broken-config-file",
            Cli,
            &["hook", "precreate", "--config", "{fx}/config/broken.toml"],
        )
        .stdin(request("0")),
        case(
            "precreate-unknown-config-key",
            Cli,
            &[
                "hook",
                "precreate",
                "--config",
                "{fx}/config/unknown-key.toml",
            ],
        )
        .stdin(request("0")),
        // hook prestart: the container state on stdin.
        case("prestart-truncated-state", Cli, PRESTART).stdin(read("state/truncated.json")),
        case("prestart-missing-bundle", Cli, PRESTART).stdin(read("state/missing-bundle.json")),
        case("prestart-garbage-bundle-config", Cli, PRESTART)
            .stdin(read("state/bundle.json"))
            .bundle(read("oci/nul-bytes.json")),
        case("prestart-absurd-pid", Cli, PRESTART)
            .stdin(read("state/absurd-pid.json"))
            .bundle(request("0")),
        // the runtime wrapper's create.
        case(
            "runtime-missing-bundle",
            Runtime,
            &["create", "--bundle", "{tmp}/nonexistent", "c1"],
        ),
        case("runtime-truncated-bundle-config", Runtime, CREATE).bundle(read("oci/truncated.json")),
        case("runtime-bundle-config-not-utf8", Runtime, CREATE).bundle(read("oci/not-utf8.json")),
        case("runtime-selector-overflow", Runtime, CREATE).bundle(request("99999999999999999999")),
        case("runtime-selector-1mb", Runtime, CREATE).bundle(request(&big)),
        case(
            "runtime-bundle-flag-without-value",
            Runtime,
            &["create", "--bundle"],
        ),
    ]
}

fn substitute(text: &str, tmp: &Path) -> String {
    text.replace("{fx}", &fx().display().to_string())
        .replace("{tmp}", &tmp.display().to_string())
        .replace("{repo}", &repo_root().display().to_string())
}

/// Runs one row; returns a description of what went wrong, if anything.
fn run(case: &BadInput) -> Option<String> {
    let dir = tempfile::tempdir().expect("tempdir");
    let tmp = dir.path();
    let hook_config = format!(
        "device-source = \"cdi\"\nspec-dirs = [\"{}\"]\nruntime = \"{}\"\nlog-file = \"{}\"\n",
        repo_root().join("tests/fixtures/requests/cdi").display(),
        repo_root()
            .join("tests/fixtures/requests/bin/record-runtime")
            .display(),
        tmp.join("detail.log").display()
    );
    fs::write(tmp.join("hook.toml"), hook_config).expect("write hook config");
    fs::create_dir(tmp.join("existing.yaml")).expect("directory named like a spec");
    // Rows that name a file under {tmp} get their generated input there, not on stdin.
    let mut stdin = case.stdin.clone();
    for (name, file) in [
        ("validate-huge-yaml", "huge.yaml"),
        ("validate-deep-nesting", "deep.json"),
    ] {
        if case.name == name {
            fs::write(tmp.join(file), std::mem::take(&mut stdin)).expect("write input");
        }
    }
    if let Ok(text) = std::str::from_utf8(&stdin) {
        stdin = substitute(text, tmp).into_bytes();
    }
    if let Some(config) = &case.bundle {
        fs::create_dir(tmp.join("bundle")).expect("bundle dir");
        fs::write(tmp.join("bundle/config.json"), config).expect("write bundle config");
    }
    if let Some(properties) = &case.properties {
        copy_tree(
            &repo_root().join("tests/fixtures/hosts/three-gpus"),
            &tmp.join("host"),
        );
        let node = tmp.join("host/sys/class/kfd/kfd/topology/nodes/1/properties");
        fs::write(node, properties).expect("write properties");
    }
    let (program, name) = match case.bin {
        Bin::Cli => (env!("CARGO_BIN_EXE_amdgpu-cdi"), "amdgpu-cdi"),
        Bin::Runtime => (
            env!("CARGO_BIN_EXE_amdgpu-container-runtime"),
            "amdgpu-container-runtime",
        ),
    };
    let args: Vec<OsString> = case
        .args
        .iter()
        .map(|arg| match arg.to_str() {
            Some(text) => OsString::from(substitute(text, tmp)),
            None => arg.clone(),
        })
        .collect();
    let output = assert_cmd::Command::new(program)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("AMDGPU_CDI_CONFIG", tmp.join("hook.toml"))
        .env("RECORD_ARGS", tmp.join("argv"))
        .current_dir(tmp)
        .args(&args)
        .write_stdin(stdin)
        .timeout(TIME_LIMIT)
        .output();
    let output = match output {
        Ok(output) => output,
        Err(err) => return Some(format!("did not finish: {err}")),
    };
    let stderr = String::from_utf8_lossy(&output.stderr);
    let mut problems = Vec::new();
    match output.status.code() {
        None => problems.push(format!("killed by a signal: {:?}", output.status)),
        Some(0) if case.refused => {
            let config: Option<serde_json::Value> = serde_json::from_slice(&output.stdout).ok();
            let args0 = config
                .as_ref()
                .and_then(|c| c["process"]["args"][0].as_str());
            if !args0.is_some_and(|arg| arg.starts_with("/proc/amdgpu-cdi: ")) {
                problems.push("refused without the error as process.args[0]".to_string());
            }
        }
        Some(_) if case.refused => problems.push("a refusal must exit 0".to_string()),
        Some(0) => problems.push("exit 0".to_string()),
        Some(101) => problems.push("exit 101 (panic)".to_string()),
        Some(_) => {}
    }
    if stderr.lines().count() != 1 || !stderr.ends_with('\n') {
        problems.push("stderr is not exactly one line".to_string());
    }
    let is_validate = case.args.first().is_some_and(|arg| arg == "validate");
    if !is_validate && !stderr.starts_with(&format!("{name}: ")) {
        problems.push(format!("stderr does not start with `{name}: `"));
    }
    let leftovers: Vec<String> = fs::read_dir(tmp)
        .expect("read temp dir")
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains(".tmp-"))
        .collect();
    if !leftovers.is_empty() {
        problems.push(format!("temporary files left behind: {leftovers:?}"));
    }
    if tmp.join("argv").exists() {
        problems.push("the runtime was executed".to_string());
    }
    if problems.is_empty() {
        return None;
    }
    let shown: String = stderr.chars().take(600).collect();
    Some(format!(
        "{}; exit {:?}; stderr: {shown:?}",
        problems.join(", "),
        output.status.code()
    ))
}

#[test]
fn every_bad_input_gives_one_line_and_a_nonzero_exit() {
    let table = table();
    assert!(table.len() >= 30, "the table has {} rows", table.len());
    let failures: Vec<String> = table
        .iter()
        .filter_map(|case| run(case).map(|problem| format!("{}: {problem}", case.name)))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        table.len(),
        failures.join("\n")
    );
}
