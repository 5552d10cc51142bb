//! Entry points of the fuzz targets, one `pub fn` per target taking the raw input. The cargo-fuzz
//! targets (`fuzz/fuzz_targets/*.rs`) and the corpus replay test of the workspace
//! (`tests/cli/fuzz_replay.rs`) both compile this file, so CI replays exactly what was fuzzed.
//! A finding is a panic: either a bug in the code under test or a broken invariant asserted here.
//! Each entry point returns whether the input was accepted all the way (so the replay test can
//! check that the good seeds reach the deep code).

#![allow(dead_code, unreachable_pub)]

use std::io;
use std::path::{Path, PathBuf};

use amdgpu_cdi::discover::{DiscoverOptions, RealSysfs, SysfsReader};
use amdgpu_cdi::settings::{DeviceSource, Settings};
use amdgpu_cdi_oci::log::DetailLog;
use cdi::codec::{self, Format};

/// The repository root (this file is compiled both from the root package and from `fuzz/`).
fn repo() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    if dir.join("fuzz").is_dir() {
        dir.to_path_buf()
    } else {
        dir.parent().expect("fuzz/ has a parent").to_path_buf()
    }
}

/// CDI spec parsing and validation, both formats. Invariant: a spec we parsed, written back out
/// by `cdi::codec`, parses again to the same spec.
pub fn cdi_spec(data: &[u8]) -> bool {
    let mut accepted = false;
    for format in [Format::Json, Format::Yaml] {
        if let Ok(spec) = codec::parse(data, format) {
            let _problems = cdi::validate::validate(&spec);
            let text = codec::to_string(&spec, format);
            let again = codec::parse(text.as_bytes(), format)
                .unwrap_or_else(|err| panic!("written spec does not parse: {err}\n{text}"));
            assert_eq!(again, spec, "round trip changed the spec:\n{text}");
            accepted = true;
        }
    }
    accepted
}

/// Settings of the precreate hook: GPUs from the fixture CDI spec (nodes backed by /dev/null).
fn hook_settings() -> Settings {
    Settings {
        device_source: DeviceSource::Cdi,
        spec_dirs: vec![repo().join("tests/fixtures/requests/cdi")],
        ..Settings::default()
    }
}

/// Runs the precreate hook in-process on `config` bytes. Invariant: what it prints is a JSON
/// object whenever the input was one.
fn precreate(config: &[u8]) -> bool {
    let log = DetailLog::new(None, "fuzz");
    let mut out = Vec::new();
    let result = amdgpu_cdi::inject::precreate::run(config, &mut out, &hook_settings(), &log);
    if result.is_ok() {
        let printed: serde_json::Value = serde_json::from_slice(&out)
            .unwrap_or_else(|err| panic!("the hook printed invalid JSON: {err}"));
        assert!(printed.is_object(), "the hook printed a non-object");
    }
    matches!(
        result,
        Ok(amdgpu_cdi::inject::precreate::PrecreateOutcome::Done(
            amdgpu_cdi::inject::Outcome::Injected(_)
        ))
    )
}

/// The `AMD_VISIBLE_DEVICES` grammar: the value alone, then as a request resolved by the
/// precreate hook against the fixture GPUs.
pub fn visible_devices(data: &[u8]) -> bool {
    let Ok(value) = std::str::from_utf8(data) else {
        return false;
    };
    let selection = amdgpu_cdi::request::grammar::parse(value);
    let config = serde_json::json!({
        "ociVersion": "1.0.2",
        "process": {"args": ["sh"], "env": [format!("AMD_VISIBLE_DEVICES={value}")]},
        "root": {"path": "rootfs"},
    });
    let injected = precreate(serde_json::to_string(&config).expect("render").as_bytes());
    selection.is_ok() && injected
}

/// OCI input of the hooks: the container state (prestart) and the config (precreate, the
/// wrapper's bundle) from the same bytes. Invariant: a config the strict reader accepts is the
/// value a plain `serde_json` parse gives.
pub fn oci_hook_input(data: &[u8]) -> bool {
    let state = amdgpu_cdi_oci::state::State::from_slice(data, "stdin");
    let config = amdgpu_cdi_oci::bundle::parse_config(data, Path::new("config.json"));
    if let Ok(strict) = &config {
        let plain: serde_json::Value = serde_json::from_slice(data)
            .unwrap_or_else(|err| panic!("accepted by the strict reader only: {err}"));
        assert_eq!(strict, &plain, "the strict reader built another value");
    }
    let injected = precreate(data);
    state.is_ok() || (config.is_ok() && injected)
}

/// The three-GPU sysfs fixture with GPU node 1's `properties` replaced by the fuzz input.
struct FuzzedProperties<'a> {
    node: PathBuf,
    data: &'a [u8],
}

impl SysfsReader for FuzzedProperties<'_> {
    fn read_to_string(&self, path: &Path) -> io::Result<String> {
        if path == self.node {
            return String::from_utf8(self.data.to_vec())
                .map_err(|err| io::Error::new(io::ErrorKind::InvalidData, err));
        }
        RealSysfs.read_to_string(path)
    }
}

/// KFD `properties` parsing through discovery. Invariant: a host that was discovered gives a
/// spec that `generate` writes without validation problems.
pub fn kfd_properties(data: &[u8]) -> bool {
    let host_dir = repo().join("tests/fixtures/hosts/three-gpus");
    let options = DiscoverOptions {
        sysfs_root: host_dir.join("sys"),
        dev_root: host_dir.clone(),
    };
    let reader = FuzzedProperties {
        node: options
            .sysfs_root
            .join("class/kfd/kfd/topology/nodes/1/properties"),
        data,
    };
    let Ok(discovery) = amdgpu_cdi::discover::discover_with(&options, &reader) else {
        return false;
    };
    let generate_options = amdgpu_cdi::generate::GenerateOptions::default();
    if let Ok(spec) = amdgpu_cdi::generate::generate(&discovery.host, &generate_options) {
        let problems = cdi::validate::validate(&spec);
        assert!(
            problems.is_empty(),
            "generated spec is invalid: {problems:?}"
        );
        return true;
    }
    false
}
