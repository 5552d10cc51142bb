//! Differential tests against the reference Go library, in the three releases Debian ships:
//! 0.5.2 (Debian 12's, the release podman 4.3 embeds), 0.8.0 (the trixie engine root's, which
//! its containerd 1.7 and podman 5.4 are built against) and 1.0.1 (the sid engine root's). The
//! small programs in `tests/go/` judge the spec corpus and inject devices with each release, and
//! our verdicts and `amdgpu-cdi inject` output must agree.
//!
//! The Go programs are built offline (GOPATH mode) once per test process into cargo's target
//! tmpdir: against the host's library with the host's Go, and against each root's library with
//! that root's Go (built by `scripts/build-engine-roots`; no privileges needed). A missing
//! toolchain, library or root skips that release with a reason, except under `CI=true`, where it
//! fails.
//!
//! Where a release's verdict on a corpus file differs from ours, the corpus records it
//! (`GO-VERDICTS`); other known, deliberate differences are normalised explicitly (see each
//! helper); anything else is a failure.

#[path = "../e2e/roots.rs"]
mod roots;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use cdi::version::Version;
use serde_json::Value;

use crate::support::{amdgpu_cdi, repo_root};
use roots::{EngineRoot, GoToolchain};

/// Debian 12's Go CDI library: its package and where its source lives.
const HOST_CDI_PACKAGE: &str =
    "golang-github-container-orchestrated-devices-container-device-interface-dev";
const HOST_GOPATH: &str = "/usr/share/gocode";
const HOST_CDI: &str =
    "/usr/share/gocode/src/github.com/container-orchestrated-devices/container-device-interface";
/// Where releases from 0.7 on live in a GOPATH (they need `-tags cncf`, see tests/go).
const CNCF_CDI: &str = "src/tags.cncf.io/container-device-interface";

/// The Go programs built against one release of the CDI library.
struct GoLibrary {
    /// The library release, e.g. `0.8.0`.
    release: String,
    /// The newest spec version it accepts (its `specs-go` `CurrentVersion`); it refuses newer.
    newest_spec: Version,
    validate: PathBuf,
    inject: PathBuf,
}

/// Every library release the tests compare against; a missing one is skipped with a reason, or
/// fails the test under `CI=true`.
fn go_libraries(test: &str) -> Vec<&'static GoLibrary> {
    static LIBRARIES: OnceLock<Vec<Result<GoLibrary, String>>> = OnceLock::new();
    let built = LIBRARIES.get_or_init(|| {
        vec![
            build_host_library(),
            build_root_library("trixie"),
            build_root_library("sid"),
        ]
    });
    let mut libraries = Vec::new();
    for library in built {
        match library {
            Ok(library) => libraries.push(library),
            Err(reason) => roots::unavailable(test, reason),
        }
    }
    libraries
}

/// The `CurrentVersion` a library's `specs-go` declares.
fn newest_spec_version(library: &Path) -> Result<Version, String> {
    for file in ["specs-go/config.go", "specs-go/version.go"] {
        let Ok(text) = std::fs::read_to_string(library.join(file)) else {
            continue;
        };
        if let Some(line) = text.lines().find(|l| l.contains("CurrentVersion = \"")) {
            let version = line.split('"').nth(1).unwrap_or_default();
            return version
                .parse()
                .map_err(|e| format!("{}: CurrentVersion {version:?}: {e}", library.display()));
        }
    }
    Err(format!(
        "no CurrentVersion in {}/specs-go",
        library.display()
    ))
}

/// Builds both programs with `toolchain` into `out_dir`.
fn build_programs(
    toolchain: &GoToolchain,
    tags: &[&str],
    out_dir: &Path,
) -> Result<(PathBuf, PathBuf), String> {
    std::fs::create_dir_all(out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
    let build = |name: &str| -> Result<PathBuf, String> {
        let binary = out_dir.join(name);
        roots::go_build(
            toolchain,
            &repo_root().join("tests/go").join(name),
            tags,
            &binary,
        )?;
        Ok(binary)
    };
    Ok((build("cdi-validate")?, build("cdi-inject")?))
}

fn build_host_library() -> Result<GoLibrary, String> {
    let go = ["/usr/bin/go", "/usr/lib/go/bin/go", "/usr/local/go/bin/go"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .ok_or("needs the go toolchain (apt-get install golang-go)")?;
    if !Path::new(HOST_CDI).is_dir() {
        return Err(format!(
            "needs the Go CDI library (apt-get install {HOST_CDI_PACKAGE})"
        ));
    }
    let version = Command::new("dpkg-query")
        .args(["-W", "-f=${Version}", HOST_CDI_PACKAGE])
        .output()
        .map_err(|e| format!("cannot run dpkg-query: {e}"))?;
    let release: String = String::from_utf8_lossy(&version.stdout)
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let out_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("go-differential/host");
    let toolchain = GoToolchain {
        go,
        goroot: None,
        gopath: PathBuf::from(HOST_GOPATH),
        cache: out_dir.join("cache"),
    };
    let (validate, inject) = build_programs(&toolchain, &[], &out_dir)?;
    Ok(GoLibrary {
        release,
        newest_spec: newest_spec_version(Path::new(HOST_CDI))?,
        validate,
        inject,
    })
}

fn build_root_library(suite: &str) -> Result<GoLibrary, String> {
    let test = format!("differential against the {suite} root's CDI library");
    let root = EngineRoot::find(&test, suite)
        .ok_or_else(|| format!("needs the {suite} engine root (scripts/build-engine-roots)"))?;
    let out_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("go-differential")
        .join(suite);
    let build = |name: &str| -> Result<PathBuf, String> {
        let binary = out_dir.join(name);
        root.go_build(&repo_root().join("tests/go").join(name), &["cncf"], &binary)?;
        Ok(binary)
    };
    std::fs::create_dir_all(&out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
    Ok(GoLibrary {
        release: root.version("cdi").to_string(),
        newest_spec: newest_spec_version(&root.dir().join("usr/share/gocode").join(CNCF_CDI))?,
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

/// The corpus's record of each Go release's verdict where it differs from ours (`GO-VERDICTS`):
/// file name -> release -> valid.
fn recorded_go_verdicts() -> BTreeMap<String, BTreeMap<String, bool>> {
    let path = repo_root().join("cdi/tests/fixtures/corpus/GO-VERDICTS");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut recorded = BTreeMap::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let file = fields.next().expect("a file name").to_string();
        let verdicts = fields
            .map(|field| {
                let (release, verdict) = field
                    .split_once('=')
                    .unwrap_or_else(|| panic!("GO-VERDICTS: want <release>=valid|invalid: {line}"));
                let valid = match verdict {
                    "valid" => true,
                    "invalid" => false,
                    other => panic!("GO-VERDICTS: unknown verdict {other}: {line}"),
                };
                (release.to_string(), valid)
            })
            .collect();
        assert!(
            recorded.insert(file.clone(), verdicts).is_none(),
            "GO-VERDICTS lists {file} twice"
        );
    }
    recorded
}

/// `(valid, reason)` per file from `cdi-validate`.
fn go_verdicts(library: &GoLibrary, files: &[&Path]) -> HashMap<PathBuf, (bool, String)> {
    let output = Command::new(&library.validate)
        .args(files)
        .output()
        .expect("run cdi-validate");
    assert!(
        output.status.success(),
        "cdi-validate ({}) failed: {}",
        library.release,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| {
            let mut parts = line.splitn(3, '\t');
            let path = PathBuf::from(parts.next().expect("path"));
            let valid = parts.next() == Some("valid");
            (path, (valid, parts.next().unwrap_or("").to_string()))
        })
        .collect()
}

/// Each release judges every file as we do, except that it refuses spec versions newer than its
/// own, and where the corpus records its verdict (`GO-VERDICTS`); every recorded verdict is
/// still what the release says, and still differs from ours.
#[test]
fn verdicts_agree_with_the_go_library() {
    let libraries = go_libraries("verdicts_agree_with_the_go_library");
    let files = spec_files();
    let recorded = recorded_go_verdicts();
    let paths: Vec<&Path> = files.iter().map(|(p, _)| p.as_path()).collect();
    let mut disagreements = Vec::new();
    for library in &libraries {
        let go = go_verdicts(library, &paths);
        for (file, _) in &files {
            let (go_valid, go_reason) = go.get(file).cloned().expect("a Go verdict for every file");
            let ours = cdi::registry::load_checked(file).is_ok();
            let name = file.file_name().expect("name").to_string_lossy();
            let recorded = recorded
                .get(name.as_ref())
                .filter(|_| file.starts_with(repo_root().join("cdi/tests/fixtures/corpus")))
                .and_then(|r| r.get(&library.release));
            let too_new = declared_version(file)
                .and_then(|v| v.parse::<Version>().ok())
                .is_some_and(|v| v > library.newest_spec);
            let expected = match recorded {
                Some(&valid) => {
                    if valid == ours {
                        disagreements.push(format!(
                            "{}: GO-VERDICTS records {} for {}, which is our verdict too",
                            file.display(),
                            if valid { "valid" } else { "invalid" },
                            library.release
                        ));
                    }
                    valid
                }
                None if too_new => false,
                None => ours,
            };
            if go_valid != expected {
                disagreements.push(format!(
                    "{}: Go {} says {}, expected {} (ours: {})",
                    file.display(),
                    library.release,
                    if go_valid {
                        "valid".to_string()
                    } else {
                        format!("invalid ({go_reason})")
                    },
                    if expected { "valid" } else { "invalid" },
                    if ours { "valid" } else { "invalid" },
                ));
            }
        }
    }
    assert!(
        disagreements.is_empty(),
        "verdicts differ:\n{}",
        disagreements.join("\n")
    );
}

/// Runs both injectors (Go: `library`'s); `Ok(config)` or `Err(stderr)`.
fn inject_both(
    library: &GoLibrary,
    dirs: &[&str],
    config: &str,
    devices: &[&str],
) -> (Result<Value, String>, Result<Value, String>) {
    let root = repo_root();
    let mut go = Command::new(&library.inject);
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

/// Go's environment with the last value of each key at its first position: every Go release
/// (0.5.2, 0.8.0, 1.0.1) keys the config's own entries by the whole `K=V` string, so a CDI entry
/// for a key the config already has is appended instead of replacing it. We replace (last writer
/// wins).
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
fn assert_same_injection(library: &GoLibrary, case: &str, ours: &Value, go: &Value) {
    // linux.devices: Go (0.5.2, 0.8.0, 1.0.1) leaves fileMode unset unless the spec sets it; we copy the host
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

    // linux.resources.devices: Go (0.5.2, 0.8.0, 1.0.1) appends a rule again for a node it
    // already allowed.
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

    // mounts: when CDI adds mounts, we sort stably by depth, as 1.0.1 does; 0.5.2 and 0.8.0
    // break ties by destination. Without CDI mounts neither sorts.
    if library.release.starts_with("0.") && ours["mounts"] != go["mounts"] {
        let our_mounts = ours["mounts"].as_array().cloned().unwrap_or_default();
        let sorted = our_mounts.windows(2).all(|w| depth(&w[0]) <= depth(&w[1]));
        assert!(sorted, "{case}: mounts sorted by depth");
        let mut resorted = our_mounts;
        resorted.sort_by(|a, b| {
            (depth(a), a["destination"].as_str()).cmp(&(depth(b), b["destination"].as_str()))
        });
        assert_eq!(Value::Array(resorted), go["mounts"], "{case}: mounts");
    } else {
        assert_eq!(ours["mounts"], go["mounts"], "{case}: mounts");
    }
    assert_eq!(ours["hooks"], go["hooks"], "{case}: hooks");
}

#[test]
fn inject_matches_the_go_library() {
    let libraries = go_libraries("inject_matches_the_go_library");
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
    for library in &libraries {
        for (case, dirs, config, devices) in cases {
            let case = format!("{case} (Go {})", library.release);
            let (ours, go) = inject_both(library, dirs, config, devices);
            let ours = ours.unwrap_or_else(|e| panic!("{case}: amdgpu-cdi inject failed: {e}"));
            let go = go.unwrap_or_else(|e| panic!("{case}: Go injection failed: {e}"));
            assert_same_injection(library, &case, &ours, &go);
        }
    }
}

#[test]
fn inject_fails_where_the_go_library_fails() {
    let libraries = go_libraries("inject_fails_where_the_go_library_fails");
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
    for library in &libraries {
        for (case, dirs, devices) in cases {
            let (ours, go) = inject_both(library, dirs, config, devices);
            assert!(ours.is_err(), "{case}: amdgpu-cdi inject succeeded");
            assert!(
                go.is_err(),
                "{case}: Go {} injection succeeded",
                library.release
            );
        }
    }
}

/// A config's own variable overridden by a device: we replace it, every Go release appends.
#[test]
fn env_override_is_a_documented_difference() {
    let libraries = go_libraries("env_override_is_a_documented_difference");
    for library in libraries {
        // config-user.json sets EXAMPLE_MODE=base; device 0 sets EXAMPLE_MODE=zero.
        let (ours, go) = inject_both(
            library,
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
            ["EXAMPLE_MODE=base", "EXAMPLE_MODE=zero"],
            "Go {}",
            library.release
        );
    }
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

    let libraries = go_libraries("specs_we_write_read_back_identically_in_go");
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

    let paths: Vec<&Path> = written.iter().map(PathBuf::as_path).collect();
    for library in &libraries {
        let verdicts = go_verdicts(library, &paths);
        assert!(
            verdicts.values().all(|(valid, _)| *valid) && verdicts.len() == 2,
            "Go {}: {verdicts:?}",
            library.release
        );
        for (format, path) in ["yaml", "json"].iter().zip(&written) {
            let case = format!("{format} (Go {})", library.release);
            let dir = path.parent().expect("dir").display().to_string();
            let device = format!("test.com/{format}=on");
            let (ours, go) = inject_both(
                library,
                &[&dir],
                "tests/fixtures/oci/config.json",
                &[&device],
            );
            let (ours, go) = (ours.expect("ours"), go.expect("go"));
            assert_same_injection(library, &case, &ours, &go);
            let args = &go["hooks"]["createContainer"][0]["args"];
            assert_eq!(
                args,
                &serde_json::json!(TRICKY),
                "{case}: Go read the hook args back unchanged"
            );
        }
    }
}

/// Every spec `generate` writes for the example hosts loads in every Go release that accepts its
/// cdiVersion, and is refused by the older ones: default options, every 0.5.0-level option
/// together (all naming strategies, card nodes, pinned numbers, a dev root), annotations (0.6.0)
/// and additional GIDs (0.7.0).
#[test]
fn generated_specs_load_in_the_go_library() {
    let libraries = go_libraries("generated_specs_load_in_the_go_library");
    let out = tempfile::tempdir().expect("tempdir");
    // `--additional-gids` reads the nodes' group: regular files in a group other than root's
    // stand in for them (generate warns that they are not character devices).
    let dev_root = out.path().join("host");
    std::fs::create_dir_all(dev_root.join("dev/dri")).expect("fake dev");
    let nodes = ["kfd".to_string(), "dxg".to_string()]
        .into_iter()
        .chain((128..512).map(|minor| format!("dri/renderD{minor}")));
    for node in nodes {
        let path = dev_root.join("dev").join(node);
        std::fs::write(&path, "").expect("fake node");
        if nix::unistd::getegid().as_raw() == 0 {
            nix::unistd::chown(&path, None, Some(nix::unistd::Gid::from_raw(44)))
                .expect("chgrp fake node");
        }
    }
    let dev_root_arg = format!("--dev-root={}", dev_root.display());
    let hosts = repo_root().join("examples/hosts");
    let mut specs = Vec::new();
    let mut names: Vec<String> = std::fs::read_dir(&hosts)
        .expect("examples/hosts")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|name| hosts.join(name).join("sys").is_dir() && name != "no-amd")
        .collect();
    names.sort();
    assert!(names.len() >= 8, "example hosts: {names:?}");
    let variants: [&[&str]; 4] = [
        &[],
        &[
            "--device-name-strategy=index",
            "--device-name-strategy=uuid",
            "--device-name-strategy=pci",
            "--include-card-nodes",
            "--pin-device-numbers",
            "--dev-root=/run/host",
        ],
        &["--annotations", "--device-name-strategy=pci"],
        &["--annotations", "--additional-gids", &dev_root_arg],
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
    let paths: Vec<&Path> = specs.iter().map(PathBuf::as_path).collect();
    let mut wrong = Vec::new();
    let mut versions = std::collections::BTreeSet::new();
    for library in &libraries {
        let verdicts = go_verdicts(library, &paths);
        assert_eq!(verdicts.len(), specs.len(), "Go {}", library.release);
        for spec in &specs {
            let version: Version = declared_version(spec)
                .and_then(|v| v.parse().ok())
                .expect("generate declares a cdiVersion");
            versions.insert(version);
            let (valid, reason) = &verdicts[spec];
            if *valid != (version <= library.newest_spec) {
                wrong.push(format!(
                    "{} (cdiVersion {version}): Go {} says {}",
                    spec.display(),
                    library.release,
                    if *valid {
                        "valid".to_string()
                    } else {
                        format!("invalid ({reason})")
                    }
                ));
            }
        }
    }
    assert!(
        versions.len() >= 3,
        "the variants cover several cdiVersions: {versions:?}"
    );
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
