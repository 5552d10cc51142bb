//! Differential tests against the reference Go library (Debian's 0.5.2, the version podman 4.3
//! embeds): the small programs in `tests/go/` judge the spec corpus and inject devices with it,
//! and our verdicts and `amdgpu-cdi inject` output must agree.
//!
//! The Go programs are built offline (`GO111MODULE=off GOPATH=/usr/share/gocode`) once per test
//! run into cargo's target tmpdir. Without the toolchain or the library the tests skip with a
//! reason, except under `CI=true`, where they fail.
//!
//! Known, deliberate differences are normalised explicitly (see each helper); anything else is a
//! failure.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

use crate::support::{amdgpu_cdi, repo_root};

const GOPATH: &str = "/usr/share/gocode";
const GO_CDI: &str = "/usr/share/gocode/src/github.com/container-orchestrated-devices/container-device-interface/pkg/cdi";
/// The spec versions the Go library 0.5.2 knows; it rejects every other.
const GO_VERSIONS: &[&str] = &["0.1.0", "0.2.0", "0.3.0", "0.4.0", "0.5.0"];

/// Corpus reason keywords (see the corpus `EXPECTED`) for which Go 0.5.2 is more lenient than
/// we deliberately are: such a file may load in Go and be refused by us, never the reverse.
const GO_IS_LENIENT: &[&str] = &[
    "no-devices",
    "one-char-name",
    "negative-number",
    "version-too-low",
    "version-too-old",
    "yaml11-ambiguous",
];

struct GoTools {
    validate: PathBuf,
    inject: PathBuf,
}

/// Builds the Go programs once; `None` (after printing why) when the toolchain is missing.
fn go_tools(test: &str) -> Option<&'static GoTools> {
    static TOOLS: OnceLock<Result<GoTools, String>> = OnceLock::new();
    match TOOLS.get_or_init(build_go_tools) {
        Ok(tools) => Some(tools),
        Err(reason) => {
            let in_ci = std::env::var("CI").is_ok_and(|v| v == "true");
            assert!(
                !in_ci,
                "{test}: {reason} (CI=true: the differential test must not skip)"
            );
            eprintln!("SKIPPED {test}: {reason}");
            None
        }
    }
}

fn build_go_tools() -> Result<GoTools, String> {
    let go = ["/usr/bin/go", "/usr/lib/go/bin/go", "/usr/local/go/bin/go"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .ok_or("needs the go toolchain (apt-get install golang-go)")?;
    if !Path::new(GO_CDI).is_dir() {
        return Err("needs the Go CDI library (apt-get install \
             golang-github-container-orchestrated-devices-container-device-interface-dev)"
            .into());
    }
    let out_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("go-differential");
    let build = |name: &str| -> Result<PathBuf, String> {
        // Built under a per-process name, then renamed into place: test processes running in
        // parallel (nextest) never write a binary another one is executing.
        let binary = out_dir.join(name);
        let partial = out_dir.join(format!("{name}.{}", std::process::id()));
        let output = Command::new(&go)
            .current_dir(repo_root().join("tests/go").join(name))
            .env("GO111MODULE", "off")
            .env("GOPATH", GOPATH)
            .env("GOCACHE", out_dir.join("cache"))
            .env("GOFLAGS", "")
            .arg("build")
            .arg("-o")
            .arg(&partial)
            .arg(".")
            .output()
            .map_err(|e| format!("cannot run {}: {e}", go.display()))?;
        assert!(
            output.status.success(),
            "go build of tests/go/{name} failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        std::fs::rename(&partial, &binary)
            .map_err(|e| format!("cannot rename {} into place: {e}", partial.display()))?;
        Ok(binary)
    };
    Ok(GoTools {
        validate: build("cdi-validate")?,
        inject: build("cdi-inject")?,
    })
}

/// The corpus files with the manifest's reason keyword for invalid ones, plus the CLI spec
/// fixtures (no keyword).
fn spec_files() -> Vec<(PathBuf, Option<String>)> {
    let corpus = repo_root().join("cdi/tests/fixtures/corpus");
    let manifest = std::fs::read_to_string(corpus.join("EXPECTED"))
        .unwrap_or_else(|e| panic!("cannot read {}/EXPECTED: {e}", corpus.display()));
    let mut files: Vec<(PathBuf, Option<String>)> = manifest
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            let reason = (fields.get(1) == Some(&"invalid"))
                .then(|| fields.get(2).unwrap_or(&"").to_string());
            (corpus.join(fields[0]), reason)
        })
        .collect();
    assert!(
        files.len() >= 40,
        "the corpus manifest lists only {} files",
        files.len()
    );
    for dir in ["good", "broken", "override", "mismatch"] {
        let dir = repo_root().join("tests/fixtures/specs").join(dir);
        for entry in std::fs::read_dir(&dir).expect("fixture dir") {
            let path = entry.expect("entry").path();
            if path.is_file() {
                files.push((path, None));
            }
        }
    }
    files.sort();
    files
}

/// The `cdiVersion` a file declares, found without parsing it (broken files included).
fn declared_version(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let at = text.find("cdiVersion")? + "cdiVersion".len();
    let rest = text[at..]
        .trim_start_matches(|c: char| c == '"' || c == '\'' || c == ':' || c.is_whitespace());
    let version: String = rest
        .chars()
        .take_while(|c| !matches!(c, '"' | '\'' | ',' | '\n' | '}' | ' '))
        .collect();
    Some(version)
}

#[test]
fn verdicts_agree_with_the_go_library() {
    let Some(tools) = go_tools("verdicts_agree_with_the_go_library") else {
        return;
    };
    let files = spec_files();
    let output = Command::new(&tools.validate)
        .args(files.iter().map(|(path, _)| path))
        .output()
        .expect("run cdi-validate");
    assert!(
        output.status.success(),
        "cdi-validate failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let go: HashMap<PathBuf, (bool, String)> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| {
            let mut parts = line.splitn(3, '\t');
            let path = PathBuf::from(parts.next().expect("path"));
            let valid = parts.next() == Some("valid");
            (path, (valid, parts.next().unwrap_or("").to_string()))
        })
        .collect();

    let mut compared = 0;
    let mut disagreements = Vec::new();
    for (file, reason) in &files {
        if let Some(version) = declared_version(file)
            && !GO_VERSIONS.contains(&version.as_str())
        {
            continue;
        }
        let (go_valid, go_reason) = go.get(file).cloned().expect("a Go verdict for every file");
        let ours = cdi::registry::load_checked(file);
        compared += 1;
        if ours.is_ok() == go_valid {
            continue;
        }
        if go_valid
            && reason
                .as_deref()
                .is_some_and(|r| GO_IS_LENIENT.contains(&r))
        {
            continue;
        }
        disagreements.push(format!(
            "{}: ours {}, Go {}",
            file.display(),
            match &ours {
                Ok(_) => "valid".to_string(),
                Err(e) => format!("invalid ({e})"),
            },
            if go_valid {
                "valid".to_string()
            } else {
                format!("invalid ({go_reason})")
            }
        ));
    }
    assert!(compared >= 30, "only {compared} files were comparable");
    assert!(
        disagreements.is_empty(),
        "verdicts differ:\n{}",
        disagreements.join("\n")
    );
}

/// Runs both injectors; `Ok(config)` or `Err(stderr)`.
fn inject_both(
    dirs: &[&str],
    config: &str,
    devices: &[&str],
) -> (Result<Value, String>, Result<Value, String>) {
    let tools = go_tools("inject").expect("checked by the caller");
    let root = repo_root();
    let mut go = Command::new(&tools.inject);
    go.current_dir(&root);
    for dir in dirs {
        go.arg("-spec-dir").arg(dir);
    }
    go.arg("-config").arg(config).args(devices);
    let mut ours = amdgpu_cdi();
    ours.current_dir(&root).arg("inject");
    for dir in dirs {
        ours.arg("--spec-dir").arg(dir);
    }
    ours.arg("--config").arg(config).args(devices);
    let parse = |out: std::process::Output| {
        if out.status.success() {
            Ok(serde_json::from_slice(&out.stdout).expect("injector output is JSON"))
        } else {
            assert!(out.stdout.is_empty(), "nothing on stdout on failure");
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    };
    (
        parse(ours.output().expect("run amdgpu-cdi")),
        parse(go.output().expect("run cdi-inject")),
    )
}

/// Go's environment with the last value of each key at its first position: runtime-tools 0.5.2
/// keys the config's own entries by the whole `K=V` string, so a CDI entry for a key the config
/// already has is appended instead of replacing it. We replace (last writer wins).
fn effective_env(env: &Value) -> Vec<String> {
    let mut order = Vec::new();
    let mut values = BTreeMap::new();
    for entry in env
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        let key = entry.split_once('=').map_or(entry, |(k, _)| k).to_string();
        if values.insert(key.clone(), entry.to_string()).is_none() {
            order.push(key);
        }
    }
    order.into_iter().map(|k| values[&k].clone()).collect()
}

fn depth(mount: &Value) -> usize {
    let dest = mount["destination"].as_str().unwrap_or("");
    dest.split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .count()
        .max(usize::from(dest.starts_with('/')))
}

/// Compares the fields the issue names, after the documented normalisations.
fn assert_same_injection(case: &str, ours: &Value, go: &Value) {
    // linux.devices: Go 0.5.2 leaves fileMode unset unless the spec sets it; we copy the host
    // node's permission bits.
    let mut our_devices = ours["linux"]["devices"].clone();
    let go_devices = &go["linux"]["devices"];
    for (ours, go) in our_devices
        .as_array_mut()
        .into_iter()
        .flatten()
        .zip(go_devices.as_array().into_iter().flatten())
    {
        if go.get("fileMode").is_none()
            && let Some(mode) = ours.as_object_mut().and_then(|o| o.remove("fileMode"))
        {
            assert!(
                mode.as_u64().is_some_and(|m| m <= 0o7777),
                "{case}: fileMode {mode}"
            );
        }
    }
    assert_eq!(&our_devices, go_devices, "{case}: linux.devices");

    // linux.resources.devices: Go appends a rule again for a node it already allowed.
    let mut go_rules: Vec<Value> = Vec::new();
    for rule in go["linux"]["resources"]["devices"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if !go_rules.contains(rule) {
            go_rules.push(rule.clone());
        }
    }
    assert_eq!(
        ours["linux"]["resources"]["devices"],
        Value::Array(go_rules),
        "{case}: linux.resources.devices"
    );

    assert_eq!(
        effective_env(&ours["process"]["env"]),
        effective_env(&go["process"]["env"]),
        "{case}: process.env"
    );
    assert_eq!(
        ours["process"]["env"].as_array().map(Vec::len),
        Some(effective_env(&ours["process"]["env"]).len()),
        "{case}: we never leave two entries for one key"
    );

    // mounts: when CDI adds mounts, we sort stably by depth (newer Go releases); 0.5.2 breaks
    // ties by destination. Without CDI mounts neither sorts.
    if ours["mounts"] != go["mounts"] {
        let our_mounts = ours["mounts"].as_array().cloned().unwrap_or_default();
        let sorted = our_mounts.windows(2).all(|w| depth(&w[0]) <= depth(&w[1]));
        assert!(sorted, "{case}: mounts sorted by depth");
        let mut resorted = our_mounts;
        resorted.sort_by(|a, b| {
            (depth(a), a["destination"].as_str()).cmp(&(depth(b), b["destination"].as_str()))
        });
        assert_eq!(Value::Array(resorted), go["mounts"], "{case}: mounts");
    }

    assert_eq!(ours["hooks"], go["hooks"], "{case}: hooks");
}

#[test]
fn inject_matches_the_go_library() {
    if go_tools("inject_matches_the_go_library").is_none() {
        return;
    }
    let good = "tests/fixtures/specs/good";
    let cases: &[(&str, &[&str], &str, &[&str])] = &[
        (
            "one device",
            &[good],
            "tests/fixtures/oci/config.json",
            &["example.com/device=0"],
        ),
        (
            "every device, non-root user",
            &[good],
            "tests/fixtures/oci/config-user.json",
            &[
                "example.com/device=0",
                "example.com/device=null0",
                "test.com/dev=full",
                "example.com/device=fixed",
            ],
        ),
        (
            "later dir overrides",
            &[good, "tests/fixtures/specs/override"],
            "tests/fixtures/oci/config.json",
            &["test.com/dev=full", "example.com/device=null0"],
        ),
        (
            "broken files and conflicts are skipped",
            &["tests/fixtures/specs/broken"],
            "tests/fixtures/oci/config-user.json",
            &["test.com/dev=only-b", "test.com/dev=full"],
        ),
    ];
    for (case, dirs, config, devices) in cases {
        let (ours, go) = inject_both(dirs, config, devices);
        let ours = ours.unwrap_or_else(|e| panic!("{case}: amdgpu-cdi inject failed: {e}"));
        let go = go.unwrap_or_else(|e| panic!("{case}: Go injection failed: {e}"));
        assert_same_injection(case, &ours, &go);
    }
}

#[test]
fn inject_fails_where_the_go_library_fails() {
    if go_tools("inject_fails_where_the_go_library_fails").is_none() {
        return;
    }
    let config = "tests/fixtures/oci/config.json";
    let cases: &[(&str, &[&str], &[&str])] = &[
        (
            "unknown device",
            &["tests/fixtures/specs/good"],
            &["example.com/device=0", "example.com/device=nope"],
        ),
        (
            "same-dir conflict",
            &["tests/fixtures/specs/broken"],
            &["test.com/dev=twice"],
        ),
        (
            "invalid spec",
            &["tests/fixtures/specs/broken"],
            &["test.com/dev=x"],
        ),
        (
            "host type mismatch",
            &["tests/fixtures/specs/mismatch"],
            &["test.com/bad=block"],
        ),
        (
            "missing host node",
            &["tests/fixtures/specs/mismatch"],
            &["test.com/bad=missing"],
        ),
    ];
    for (case, dirs, devices) in cases {
        let (ours, go) = inject_both(dirs, config, devices);
        assert!(ours.is_err(), "{case}: amdgpu-cdi inject succeeded");
        assert!(go.is_err(), "{case}: Go injection succeeded");
    }
}

#[test]
fn env_override_is_a_documented_difference() {
    if go_tools("env_override_is_a_documented_difference").is_none() {
        return;
    }
    // config-user.json sets EXAMPLE_MODE=base; device 0 sets EXAMPLE_MODE=zero.
    let (ours, go) = inject_both(
        &["tests/fixtures/specs/good"],
        "tests/fixtures/oci/config-user.json",
        &["example.com/device=0"],
    );
    let mode = |config: &Value| -> Vec<String> {
        config["process"]["env"]
            .as_array()
            .expect("env")
            .iter()
            .filter_map(Value::as_str)
            .filter(|e| e.starts_with("EXAMPLE_MODE="))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(mode(&ours.expect("ours")), ["EXAMPLE_MODE=zero"]);
    assert_eq!(
        mode(&go.expect("go")),
        ["EXAMPLE_MODE=base", "EXAMPLE_MODE=zero"]
    );
}

/// Strings a YAML 1.1 reader (Go's) turns into something else unless they are quoted.
const TRICKY: &[&str] = &[
    "on",
    "off",
    "yes",
    "No",
    "y",
    "~",
    "null",
    "0755",
    "1_000",
    "0x1F",
    "1e3",
    ".inf",
    "2001-01-01",
    "a: b",
    "#x",
    "- x",
    "'",
    "\"",
];

#[test]
fn specs_we_write_read_back_identically_in_go() {
    use cdi::spec::{ContainerEdits, Device, DeviceNode, Hook, Mount, Spec};

    let Some(tools) = go_tools("specs_we_write_read_back_identically_in_go") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut written = Vec::new();
    for format in ["yaml", "json"] {
        let tricky: Vec<String> = TRICKY.iter().map(ToString::to_string).collect();
        let mut spec = Spec {
            kind: format!("test.com/{format}"),
            devices: vec![Device {
                name: "on".into(),
                container_edits: ContainerEdits {
                    env: TRICKY
                        .iter()
                        .enumerate()
                        .map(|(i, v)| format!("TRICKY_{i}={v}"))
                        .collect(),
                    device_nodes: vec![DeviceNode {
                        path: "/dev/tricky".into(),
                        host_path: Some("/dev/null".into()),
                        permissions: Some("rw".into()),
                        ..DeviceNode::default()
                    }],
                    mounts: vec![Mount {
                        host_path: "/srv/on".into(),
                        container_path: "/srv/0755".into(),
                        options: tricky.clone(),
                        kind: None,
                    }],
                    hooks: vec![Hook {
                        hook_name: "createContainer".into(),
                        path: "/usr/bin/yes".into(),
                        args: tricky,
                        env: vec!["ON=on".into()],
                        timeout: Some(7),
                    }],
                    ..ContainerEdits::default()
                },
                ..Device::default()
            }],
            ..Spec::default()
        };
        spec.cdi_version = cdi::version::minimum_required_version(&spec).to_string();
        let path = tmp
            .path()
            .join(format)
            .join(format!("test.com-{format}.{format}"));
        cdi::write::write_spec(&path, &spec).expect("write spec");
        written.push(path);
    }

    let output = Command::new(&tools.validate)
        .args(&written)
        .output()
        .expect("run cdi-validate");
    let verdicts = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(
        verdicts.lines().filter(|l| l.ends_with("\tvalid")).count(),
        2,
        "{verdicts}"
    );

    for (format, path) in ["yaml", "json"].iter().zip(&written) {
        let dir = path.parent().expect("dir").display().to_string();
        let device = format!("test.com/{format}=on");
        let (ours, go) = inject_both(&[&dir], "tests/fixtures/oci/config.json", &[&device]);
        let (ours, go) = (ours.expect("ours"), go.expect("go"));
        assert_same_injection(format, &ours, &go);
        let args = &go["hooks"]["createContainer"][0]["args"];
        assert_eq!(
            args,
            &serde_json::json!(TRICKY),
            "{format}: Go read the hook args back unchanged"
        );
    }
}

/// Every spec `generate` writes for the example hosts (default options, and every 0.5.0-level
/// option together: all naming strategies, card nodes, pinned numbers, a dev root) loads in the
/// Go library that podman 4.3 embeds.
#[test]
fn generated_specs_load_in_the_go_library() {
    let Some(tools) = go_tools("generated_specs_load_in_the_go_library") else {
        return;
    };
    let out = tempfile::tempdir().expect("tempdir");
    let hosts = repo_root().join("examples/hosts");
    let mut specs = Vec::new();
    let mut names: Vec<String> = std::fs::read_dir(&hosts)
        .expect("examples/hosts")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|name| hosts.join(name).join("sys").is_dir() && name != "no-amd")
        .collect();
    names.sort();
    assert!(names.len() >= 8, "example hosts: {names:?}");
    let variants: [&[&str]; 2] = [
        &[],
        &[
            "--device-name-strategy=index",
            "--device-name-strategy=uuid",
            "--device-name-strategy=pci",
            "--include-card-nodes",
            "--pin-device-numbers",
            "--dev-root=/run/host",
        ],
    ];
    for name in &names {
        for (i, args) in variants.iter().enumerate() {
            let spec = out.path().join(format!("{name}-{i}.yaml"));
            amdgpu_cdi()
                .arg("generate")
                .arg("--sysfs-root")
                .arg(hosts.join(name).join("sys"))
                .args(*args)
                .arg("--output")
                .arg(&spec)
                .assert()
                .success();
            specs.push(spec);
        }
    }
    let output = Command::new(&tools.validate)
        .args(&specs)
        .output()
        .expect("run cdi-validate");
    assert!(output.status.success(), "cdi-validate failed");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let invalid: Vec<&str> = stdout.lines().filter(|l| !l.ends_with("\tvalid")).collect();
    assert_eq!(stdout.lines().count(), specs.len(), "{stdout}");
    assert!(
        invalid.is_empty(),
        "Go rejects generated specs:\n{}",
        invalid.join("\n")
    );
}
