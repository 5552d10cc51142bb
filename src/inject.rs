//! The injection shared by the OCI hooks and the runtime wrapper: read the requests of an OCI
//! config, find the requested devices (live discovery, or the CDI spec dirs), apply their CDI
//! edits through the `cdi` crate, and mark the config so a second pass changes nothing.
//! [`select`] stops before applying, for hooks that create the nodes themselves.

pub mod precreate;
pub mod prestart;

use std::path::Path;

use amdgpu_cdi_oci::bundle::{self, BundleError};
use amdgpu_cdi_oci::log::DetailLog;
use cdi::edits::{EditError, apply_many_on};
use cdi::host::{HostFs, LiveHostFs};
use cdi::registry::Registry;
use cdi::spec::{ContainerEdits, Spec};
use serde_json::{Map, Value};

use crate::discover::wsl::{WslOptions, discover_wsl, looks_like_wsl};
use crate::discover::{DiscoverOptions, Host, discover_for_injection};
use crate::generate::wsl::generate_wsl;
use crate::generate::{GenerateOptions, generate};
use crate::naming::KIND;
use crate::naming::{NameStrategy, device_names};
use crate::request::grammar::{self, Selector};
use crate::request::resolve::{Candidate, Candidates};
use crate::request::{self, INJECTED_ANNOTATION, RequestError, Requests};
use crate::settings::{DeviceSource, Settings};

/// What an injection did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The config is unchanged, for the given reason.
    Unchanged(&'static str),
    /// These CDI devices (`amd.com/gpu=<name>`) were injected.
    Injected(Vec<String>),
}

/// Why an injection failed. The config is unchanged whenever one of these is returned.
#[derive(Debug, thiserror::Error)]
pub enum InjectError {
    /// A request is invalid or names a device that does not exist.
    #[error(transparent)]
    Request(#[from] RequestError),
    /// Live discovery failed.
    #[error(transparent)]
    Discover(#[from] crate::discover::DiscoverError),
    /// WSL2 discovery failed.
    #[error(transparent)]
    Wsl(#[from] crate::discover::wsl::WslError),
    /// No CDI spec could be generated for the discovered GPUs.
    #[error("cannot describe the discovered GPUs as CDI devices: {0}")]
    Generate(#[from] crate::generate::GenerateError),
    /// A resolved device vanished from the CDI registry (cannot happen with one registry).
    #[error("CDI device {KIND}={0} is not in the spec dirs")]
    Vanished(String),
    /// Applying the devices' CDI edits failed.
    #[error("cannot inject CDI devices {}", names.iter().map(|n| format!("{KIND}={n}")).collect::<Vec<_>>().join(", "))]
    Edit {
        /// The requested names.
        names: Vec<String>,
        /// The failure.
        #[source]
        source: EditError,
    },
    /// The config's `annotations` is not an object.
    #[error("cannot mark the OCI config as injected: annotations is not an object")]
    Annotations,
}

/// The devices requests are resolved against, and how to inject them.
#[derive(Debug)]
enum DeviceSet {
    /// The GPUs of live discovery, named by index. Their CDI spec is generated for the selected
    /// GPUs only (the index names and the spec-level `/dev/kfd` edit do not depend on the others).
    /// `named`: the inventory has every CDI name of each GPU, not only its index.
    Discovered {
        host: Host,
        inventory: Candidates,
        named: bool,
    },
    /// A WSL2 host's devices (`0` for a single adapter, else `all`), from the spec `generate`
    /// writes for it.
    Wsl {
        spec: Box<Spec>,
        inventory: Candidates,
    },
    /// The `amd.com/gpu` devices of the CDI spec dirs.
    Registry {
        registry: Registry,
        inventory: Candidates,
    },
}

impl DeviceSet {
    /// Loads the devices. `named`: discovered GPUs answer to every CDI name, not only their index.
    fn load(settings: &Settings, log: &DetailLog, named: bool) -> Result<Self, InjectError> {
        match settings.device_source {
            DeviceSource::Discover => {
                let options = DiscoverOptions {
                    sysfs_root: settings.sysfs_root.clone(),
                    dev_root: settings.dev_root.clone(),
                };
                // A WSL2 host is looked for only when there is no KFD, so a KFD host's hooks
                // make no system call for it.
                let mut host = match discover_for_injection(&options) {
                    Ok(host) => host,
                    Err(err) if err.is_no_kfd() && looks_like_wsl(&options) => {
                        return Self::load_wsl(&options, settings);
                    }
                    Err(err) => return Err(err.into()),
                };
                if settings.exclude_integrated {
                    host = host.without_integrated();
                }
                let strategies: &[NameStrategy] = if named {
                    &NameStrategy::ALL
                } else {
                    &[NameStrategy::Index]
                };
                let inventory = host_inventory(&host, strategies);
                Ok(Self::Discovered {
                    host,
                    inventory,
                    named,
                })
            }
            DeviceSource::Cdi => {
                let registry = Registry::load(&settings.spec_dirs);
                for err in registry.errors() {
                    log.warn(&format!("skipping CDI spec: {err}"));
                }
                let inventory = registry_inventory(&registry);
                Ok(Self::Registry {
                    registry,
                    inventory,
                })
            }
        }
    }

    /// The devices of a WSL2 host: its spec as `generate` writes it (index names and `all`), a
    /// candidate per device but `all`, or `all` itself when `/dev/dxg` serves several adapters.
    fn load_wsl(options: &DiscoverOptions, settings: &Settings) -> Result<Self, InjectError> {
        let wsl = WslOptions {
            lib_root: settings.wsl_lib_root.clone(),
            ..WslOptions::default()
        };
        let host = discover_wsl(options, &wsl)?.host;
        let spec = generate_wsl(
            &host,
            &GenerateOptions {
                strategies: vec![NameStrategy::Index],
                dev_root: settings.dev_root.clone(),
                ..GenerateOptions::default()
            },
        )?;
        let inventory = named_candidates(spec.devices.iter().map(|d| d.name.as_str()));
        Ok(Self::Wsl {
            spec: Box::new(spec),
            inventory,
        })
    }

    fn inventory(&self) -> &Candidates {
        match self {
            Self::Discovered { inventory, .. }
            | Self::Wsl { inventory, .. }
            | Self::Registry { inventory, .. } => inventory,
        }
    }

    /// Resolves `requests`. When discovered GPUs were loaded without their names and a request
    /// fails, it is resolved again against every name so that the error lists them.
    fn resolve(&self, requests: &Requests) -> Result<Vec<String>, RequestError> {
        match (requests.resolve(self.inventory()), self) {
            (Err(_), Self::Discovered { host, named, .. }) if !named => {
                requests.resolve(&host_inventory(host, &NameStrategy::ALL))
            }
            (result, _) => result,
        }
    }

    /// The edits of the named devices in application order: each spec's own edits once, before
    /// its first device, then the device's (the reference library's order).
    fn edits(
        &self,
        names: &[String],
        settings: &Settings,
    ) -> Result<Vec<ContainerEdits>, InjectError> {
        let mut edits = Vec::with_capacity(names.len() + 1);
        match self {
            Self::Discovered { host, .. } => {
                spec_edits(&selected_spec(host, names, settings)?, names, &mut edits)?;
            }
            Self::Wsl { spec, .. } => spec_edits(spec, names, &mut edits)?,
            Self::Registry { registry, .. } => {
                let mut seen_specs = Vec::new();
                for name in names {
                    let entry = registry
                        .device(&format!("{KIND}={name}"))
                        .ok_or_else(|| InjectError::Vanished(name.clone()))?;
                    if !seen_specs.contains(&&entry.file.path) {
                        seen_specs.push(&entry.file.path);
                        edits.push(entry.file.spec.container_edits.clone());
                    }
                    edits.push(entry.device.container_edits.clone());
                }
            }
        }
        Ok(edits)
    }
}

/// Appends the edits of one spec for `names`: the spec's own, then each named device's.
fn spec_edits(
    spec: &Spec,
    names: &[String],
    edits: &mut Vec<ContainerEdits>,
) -> Result<(), InjectError> {
    edits.push(spec.container_edits.clone());
    for name in names {
        let device = spec
            .devices
            .iter()
            .find(|d| d.name == *name)
            .ok_or_else(|| InjectError::Vanished(name.clone()))?;
        edits.push(device.container_edits.clone());
    }
    Ok(())
}

/// The CDI spec of the GPUs of `host` whose index names are in `names`, as `generate` writes it
/// for the whole host (index names, no `all` device).
fn selected_spec(host: &Host, names: &[String], settings: &Settings) -> Result<Spec, InjectError> {
    let indices: Vec<usize> = names.iter().filter_map(|name| name.parse().ok()).collect();
    let selected = Host {
        kfd: host.kfd.clone(),
        gpus: host
            .gpus
            .iter()
            .filter(|gpu| indices.contains(&gpu.index))
            .cloned()
            .collect(),
    };
    Ok(generate(&selected, &injection_options(settings))?)
}

/// How injection generates a spec: index names, no `all` device, nodes under the dev root.
fn injection_options(settings: &Settings) -> GenerateOptions {
    GenerateOptions {
        strategies: vec![NameStrategy::Index],
        all_device: false,
        dev_root: settings.dev_root.clone(),
        ..GenerateOptions::default()
    }
}

/// The inventory of a discovered host, in amdgpu-cdi's order. Each candidate answers to the names
/// of `strategies`, the index name (the one injected) first: resolving indices, ranges, ids and
/// PCI addresses needs no names, and formatting three names for each of 64 partitions is a
/// visible part of a hook's run, so they are made only when a request or an error needs them.
fn host_inventory(host: &Host, strategies: &[NameStrategy]) -> Candidates {
    Candidates {
        candidates: host
            .gpus
            .iter()
            .map(|gpu| Candidate {
                name: gpu.index.to_string(),
                index: Some(gpu.index),
                unique_id: gpu.unique_id,
                pci_address: Some(gpu.pci_address),
                names: device_names(gpu, strategies),
            })
            .collect(),
    }
}

/// The inventory of a registry: its `amd.com/gpu` devices, as [`named_candidates`].
fn registry_inventory(registry: &Registry) -> Candidates {
    let prefix = format!("{KIND}=");
    named_candidates(
        registry
            .devices()
            .filter_map(|entry| entry.name.strip_prefix(&prefix)),
    )
}

/// One candidate per device name except `all`, with the index, unique id or PCI address the
/// name spells (names are all a spec tells about a device), indices first and in order; `all`
/// itself when it is the only device (a WSL2 host whose /dev/dxg serves several adapters).
fn named_candidates<'a>(names: impl Iterator<Item = &'a str>) -> Candidates {
    let named = |name: &str| Candidate {
        name: name.to_string(),
        index: None,
        unique_id: None,
        pci_address: None,
        names: vec![name.to_string()],
    };
    let mut has_all = false;
    let mut candidates: Vec<Candidate> = names
        .filter(|name| {
            let all = *name == "all";
            has_all |= all;
            !all
        })
        .map(|name| {
            let mut candidate = named(name);
            match grammar::parse_entry(strip_partition_suffix(name)) {
                Ok(Selector::Index(i)) => candidate.index = Some(i),
                Ok(Selector::UniqueId(id)) => candidate.unique_id = Some(id),
                Ok(Selector::Pci(pci)) => candidate.pci_address = pci.address(),
                _ => {}
            }
            candidate
        })
        .collect();
    candidates.sort_by_key(|c| (c.index.is_none(), c.index));
    if candidates.is_empty() && has_all {
        candidates.push(named("all"));
    }
    Candidates { candidates }
}

/// `GPU-1a2b-p3` -> `GPU-1a2b`: partition names of the uuid and pci strategies.
fn strip_partition_suffix(name: &str) -> &str {
    match name.rsplit_once("-p") {
        Some((base, k)) if !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit()) => base,
        _ => name,
    }
}

/// The devices a config asks for, resolved: their CDI names (without `amd.com/gpu=`) and the CDI
/// edits to apply, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selected {
    /// The CDI device names.
    pub names: Vec<String>,
    /// Their edits (spec-level edits first), as an engine would apply them.
    pub edits: Vec<ContainerEdits>,
}

/// What [`select`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nothing to do, for the given reason.
    Nothing(&'static str),
    /// These devices are requested.
    Devices(Selected),
}

/// The config in `bytes` when it may request a GPU. `None` when its bytes cannot hold a request
/// ([`request::cannot_request`]), after checking that they are a JSON object, so a broken config
/// is still refused with the message a parse gives.
pub fn parse_if_requesting(bytes: &[u8], path: &Path) -> Result<Option<Value>, BundleError> {
    if request::cannot_request(bytes) {
        bundle::check_config(bytes, path)?;
        return Ok(None);
    }
    bundle::parse_config(bytes, path).map(Some)
}

/// Resolves what `config` asks for against the configured device source. Fails when any request
/// cannot be met in full.
pub fn select(
    config: &Value,
    settings: &Settings,
    log: &DetailLog,
) -> Result<Decision, InjectError> {
    if request::already_injected(config) {
        return Ok(Decision::Nothing("already injected"));
    }
    let requests = request::read_requests(config, &settings.request_options())?;
    for name in &requests.ignored {
        log.warn(&format!(
            "ignoring {name} of an unprivileged container (accept-env-from-unprivileged)"
        ));
    }
    if requests.is_empty() {
        return Ok(Decision::Nothing(request::NOTHING_REQUESTED));
    }
    let devices = DeviceSet::load(settings, log, requests.names_cdi_devices())?;
    let names = devices.resolve(&requests)?;
    let edits = devices.edits(&names, settings)?;
    Ok(Decision::Devices(Selected { names, edits }))
}

/// Injects the GPUs `config` asks for. Leaves it unchanged when nothing is requested or it was
/// already injected; fails (config unchanged) when any request cannot be met in full.
pub fn inject(
    config: &mut Value,
    settings: &Settings,
    log: &DetailLog,
) -> Result<Outcome, InjectError> {
    inject_on(config, settings, log, &LiveHostFs)
}

/// [`inject`], looking at `host` for the device nodes whose type and numbers the spec leaves to
/// the host node.
pub fn inject_on(
    config: &mut Value,
    settings: &Settings,
    log: &DetailLog,
    host: &impl HostFs,
) -> Result<Outcome, InjectError> {
    let selected = match select(config, settings, log)? {
        Decision::Nothing(reason) => return Ok(Outcome::Unchanged(reason)),
        Decision::Devices(selected) => selected,
    };
    // `apply_many_on` changes nothing when it fails, and marking cannot fail once the annotations
    // are known to be an object (or absent), so the config needs no copy.
    if !config
        .get("annotations")
        .is_none_or(serde_json::Value::is_object)
    {
        return Err(InjectError::Annotations);
    }
    let refs: Vec<&ContainerEdits> = selected.edits.iter().collect();
    apply_many_on(config, &refs, host).map_err(|source| InjectError::Edit {
        names: selected.names.clone(),
        source,
    })?;
    mark(config, &selected.names)?;
    Ok(Outcome::Injected(selected.names))
}

fn mark(config: &mut Value, names: &[String]) -> Result<(), InjectError> {
    let root = config.as_object_mut().ok_or(InjectError::Annotations)?;
    let annotations = root
        .entry("annotations")
        .or_insert_with(|| Value::Object(Map::new()))
        .as_object_mut()
        .ok_or(InjectError::Annotations)?;
    annotations.insert(
        INJECTED_ANNOTATION.to_string(),
        Value::String(names.join(",")),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn partition_suffixes_are_stripped_only_when_numeric() {
        assert_eq!(strip_partition_suffix("GPU-1a2b-p3"), "GPU-1a2b");
        assert_eq!(strip_partition_suffix("0000:c3:00.0-p12"), "0000:c3:00.0");
        assert_eq!(strip_partition_suffix("gpu-pod"), "gpu-pod");
        assert_eq!(strip_partition_suffix("x-p"), "x-p");
    }

    #[test]
    fn a_marked_config_is_left_alone_and_an_unrequesting_one_too() {
        let settings = Settings {
            sysfs_root: "/nonexistent".into(),
            ..Settings::default()
        };
        let log = DetailLog::default();
        let mut marked = json!({"process": {"env": ["AMD_VISIBLE_DEVICES=all"]},
                                "annotations": {INJECTED_ANNOTATION: "0"}});
        let before = marked.clone();
        assert_eq!(
            inject(&mut marked, &settings, &log).expect("no work"),
            Outcome::Unchanged("already injected")
        );
        assert_eq!(marked, before);
        let mut plain = json!({"process": {"env": ["AMD_VISIBLE_DEVICES=void"]}});
        assert_eq!(
            inject(&mut plain, &settings, &log).expect("no work"),
            Outcome::Unchanged("no GPU requested")
        );
    }

    /// With `device-source = "cdi"`, a spec whose only device is `all` (WSL2 with several
    /// adapters) serves `AMD_VISIBLE_DEVICES=all`: its edits are applied.
    #[test]
    fn a_spec_with_only_the_all_device_serves_all() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("amd.com-gpu.yaml"),
            "cdiVersion: \"0.5.0\"\nkind: \"amd.com/gpu\"\ndevices:\n- name: \"all\"\n  \
             containerEdits:\n    env:\n    - \"HSA_ENABLE_DXG_DETECTION=1\"\n",
        )
        .expect("spec");
        let settings = Settings {
            device_source: DeviceSource::Cdi,
            spec_dirs: vec![dir.path().to_path_buf()],
            ..Settings::default()
        };
        let mut config = json!({"process": {"env": ["AMD_VISIBLE_DEVICES=all"]}});
        inject(&mut config, &settings, &DetailLog::default()).expect("injected");
        let env = config["process"]["env"].as_array().expect("env");
        assert!(
            env.iter().any(|e| e == "HSA_ENABLE_DXG_DETECTION=1"),
            "{config}"
        );
    }

    /// The edits of the selected GPUs' own spec equal those of the whole host's spec, on every
    /// example host: a GPU alone, the first and last together, and all of them.
    #[test]
    fn selected_specs_carry_the_whole_host_specs_edits() {
        let hosts = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/hosts");
        let mut checked = 0;
        for entry in std::fs::read_dir(&hosts).expect("examples/hosts") {
            let sysfs_root = entry.expect("entry").path().join("sys");
            if !sysfs_root.is_dir() {
                continue;
            }
            let settings = Settings {
                sysfs_root: sysfs_root.clone(),
                dev_root: "/nonexistent".into(),
                ..Settings::default()
            };
            // Hosts without GPUs (no-amd) have nothing to select.
            let Ok(host) = discover_for_injection(&DiscoverOptions {
                sysfs_root: settings.sysfs_root.clone(),
                dev_root: settings.dev_root.clone(),
            }) else {
                continue;
            };
            let whole = generate(&host, &injection_options(&settings)).expect("whole spec");
            let set = DeviceSet::Discovered {
                inventory: host_inventory(&host, &NameStrategy::ALL),
                host: host.clone(),
                named: true,
            };
            let last = host.gpus.len() - 1;
            let mut picks: Vec<Vec<usize>> = (0..=last).map(|i| vec![i]).collect();
            picks.push(vec![0, last]);
            picks.push((0..=last).collect());
            for pick in picks {
                let names: Vec<String> = pick.iter().map(ToString::to_string).collect();
                let mut expected = vec![whole.container_edits.clone()];
                expected.extend(names.iter().map(|name| {
                    let device = whole.devices.iter().find(|d| d.name == *name);
                    device.expect("named device").container_edits.clone()
                }));
                let edits = set.edits(&names, &settings).expect("edits");
                assert_eq!(edits, expected, "{} {names:?}", sysfs_root.display());
                checked += 1;
            }
        }
        assert!(checked > 20, "only {checked} selections checked");
    }

    /// Under WSL2 `AMD_VISIBLE_DEVICES=all` (and `0`, with one adapter) injects the edits of the
    /// spec `generate` writes for the host: `/dev/dxg`, the DXCore mount and the variable.
    #[test]
    fn wsl_requests_inject_the_generated_wsl_spec() {
        let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/hosts/wsl2");
        let settings = Settings {
            sysfs_root: example.join("sys"),
            dev_root: "/nonexistent".into(),
            wsl_lib_root: example.join("usr/lib/wsl"),
            ..Settings::default()
        };
        let log = DetailLog::default();
        let request =
            |value: &str| json!({"process": {"env": [format!("AMD_VISIBLE_DEVICES={value}")]}});
        let host = discover_wsl(
            &DiscoverOptions {
                sysfs_root: settings.sysfs_root.clone(),
                dev_root: settings.dev_root.clone(),
            },
            &WslOptions {
                lib_root: settings.wsl_lib_root.clone(),
                ..WslOptions::default()
            },
        )
        .expect("wsl host")
        .host;
        let generated = generate_wsl(
            &host,
            &GenerateOptions {
                dev_root: settings.dev_root.clone(),
                ..GenerateOptions::default()
            },
        )
        .expect("spec");
        let zero = generated.devices.iter().find(|d| d.name == "0").expect("0");
        for value in ["all", "0"] {
            let Decision::Devices(selected) =
                select(&request(value), &settings, &log).expect("selects")
            else {
                panic!("nothing selected for {value}");
            };
            assert_eq!(selected.names, ["0"]);
            assert_eq!(
                selected.edits,
                [
                    generated.container_edits.clone(),
                    zero.container_edits.clone()
                ]
            );
        }
        let err = select(&request("1"), &settings, &log).expect_err("one adapter");
        assert!(err.to_string().contains("no GPU matches \"1\""), "{err}");
    }

    /// Settings that discover the three-GPU fixture host, whose device nodes are not there.
    fn three_gpus() -> Settings {
        Settings {
            sysfs_root: std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/hosts/three-gpus/sys"),
            dev_root: "/nonexistent".into(),
            ..Settings::default()
        }
    }

    /// Requests by index resolve without the GPUs' other names; a failing one still lists them
    /// all, and a request by CDI name finds the GPU by any of its names.
    #[test]
    fn names_are_made_when_a_request_or_its_error_needs_them() {
        let settings = three_gpus();
        let log = DetailLog::default();
        let request =
            |value: &str| json!({"process": {"env": [format!("AMD_VISIBLE_DEVICES={value}")]}});
        let Decision::Devices(by_index) = select(&request("1"), &settings, &log).expect("gpu 1")
        else {
            panic!("nothing selected");
        };
        assert_eq!(by_index.names, ["1"]);

        let err = select(&request("7"), &settings, &log).expect_err("no gpu 7");
        let message = err.to_string();
        assert!(message.contains("no GPU matches \"7\""), "{message}");
        assert!(
            message.contains("CDI names amd.com/gpu=0 amd.com/gpu=GPU-"),
            "{message}"
        );
        assert!(message.contains("amd.com/gpu=0000:"), "{message}");

        let host = discover_for_injection(&DiscoverOptions {
            sysfs_root: settings.sysfs_root.clone(),
            dev_root: settings.dev_root.clone(),
        })
        .expect("three GPUs");
        let pci_name = format!("amd.com/gpu={}", host.gpus[2].pci_address);
        let Decision::Devices(by_name) = select(&request(&pci_name), &settings, &log).expect("pci")
        else {
            panic!("nothing selected");
        };
        assert_eq!(by_name.names, ["2"]);
        assert_eq!(by_name.edits, by_index_edits(&settings, "2"));
    }

    fn by_index_edits(settings: &Settings, index: &str) -> Vec<ContainerEdits> {
        let config = json!({"process": {"env": [format!("AMD_VISIBLE_DEVICES={index}")]}});
        match select(&config, settings, &DetailLog::default()).expect("by index") {
            Decision::Devices(selected) => selected.edits,
            Decision::Nothing(reason) => panic!("{reason}"),
        }
    }

    #[test]
    fn annotations_that_are_not_an_object_fail_without_touching_the_config() {
        let settings = three_gpus();
        let mut config = json!({"process": {"env": ["AMD_VISIBLE_DEVICES=0"]},
                                "annotations": ["not", "an", "object"]});
        let before = config.clone();
        let err = inject(&mut config, &settings, &DetailLog::default()).expect_err("array");
        assert!(matches!(err, InjectError::Annotations), "{err}");
        assert_eq!(config, before);
    }

    #[test]
    fn discovery_failure_fails_a_request_without_touching_the_config() {
        let settings = Settings {
            sysfs_root: "/nonexistent".into(),
            ..Settings::default()
        };
        let mut config = json!({"process": {"env": ["AMD_VISIBLE_DEVICES=0"]}});
        let before = config.clone();
        let err = inject(&mut config, &settings, &DetailLog::default()).expect_err("no GPUs");
        assert!(err.to_string().starts_with("no AMD GPU found"), "{err}");
        assert_eq!(config, before);
    }

    /// Requests resolved against live discovery of the 64-partition example host (MI300X in CPX
    /// mode): PCI addresses select all partitions of a GPU, unique ids every device reporting
    /// them, CDI names exactly one. The host's device nodes are answered by a fake (every path a
    /// character device), so no node is created and no root is needed.
    mod requests {
        use std::path::{Path, PathBuf};

        use cdi::host::HostNode;
        use nix::errno::Errno;
        use serde_json::json;

        use super::*;

        /// Every path is a character device: `/dev/zero`'s numbers for `kfd`, `/dev/null`'s
        /// for the rest.
        struct CharDevices;

        impl HostFs for CharDevices {
            fn lstat(&self, path: &Path) -> Result<HostNode, Errno> {
                self.stat(path)
            }

            fn stat(&self, path: &Path) -> Result<HostNode, Errno> {
                let minor = if path.ends_with("kfd") { 5 } else { 3 };
                Ok(HostNode::char_device(1, minor))
            }
        }

        /// Injects `AMD_VISIBLE_DEVICES=value` on the example `host`, with `settings`' other
        /// fields as given; returns the injected device paths (without /dev/kfd and `/dev/dri/`)
        /// or the error line the precreate hook refuses the container with.
        fn inject_on_host(
            host: &str,
            value: &str,
            settings: Settings,
        ) -> Result<Vec<String>, String> {
            let settings = Settings {
                sysfs_root: PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                    .join("examples/hosts")
                    .join(host)
                    .join("sys"),
                dev_root: "/nonexistent/dev-root".into(),
                ..settings
            };
            let mut config = json!({
                "ociVersion": "1.0.2",
                "process": {"env": [format!("AMD_VISIBLE_DEVICES={value}")]},
            });
            inject_on(&mut config, &settings, &DetailLog::default(), &CharDevices)
                .map_err(|err| crate::error_text::error_line(&err))?;
            let devices = config["linux"]["devices"].as_array().expect("devices");
            assert_eq!(devices[0]["path"], "/dev/kfd");
            Ok(devices[1..]
                .iter()
                .map(|d| {
                    d["path"]
                        .as_str()
                        .expect("path")
                        .trim_start_matches("/dev/dri/")
                        .to_string()
                })
                .collect())
        }

        /// [`inject_on_host`] on the 64-partition MI300X host with default settings.
        fn inject(value: &str) -> Result<Vec<String>, String> {
            inject_on_host("mi300x-cpx", value, Settings::default())
        }

        fn renders(minors: std::ops::RangeInclusive<u32>) -> Vec<String> {
            minors.map(|m| format!("renderD{m}")).collect()
        }

        /// Issue 17: with `exclude-integrated`, the hooks number GPUs as `generate
        /// --exclude-integrated` does: the workstation's iGPU (renderD129) is neither in `all`
        /// nor index 1, and index 0 stays the discrete GPU.
        #[test]
        fn exclude_integrated_leaves_the_igpu_out_of_all_and_the_indices() {
            let on_workstation = |value: &str, exclude_integrated: bool| {
                let settings = Settings {
                    exclude_integrated,
                    ..Settings::default()
                };
                inject_on_host("workstation", value, settings)
            };
            let only_discrete = Ok(vec!["renderD128".to_string()]);
            assert_eq!(
                on_workstation("all", false),
                Ok(vec!["renderD128".to_string(), "renderD129".to_string()])
            );
            assert_eq!(on_workstation("all", true), only_discrete);
            assert_eq!(on_workstation("0", true), only_discrete);
            let refused = on_workstation("1", true).expect_err("index 1 is gone");
            assert!(refused.contains('1'), "{refused}");
        }

        #[test]
        fn each_request_form_selects_its_partitions() {
            let cases = [
                (
                    "a PCI address selects every partition of the GPU",
                    "05:00.0",
                    renders(129..=136),
                ),
                (
                    "a range and a CDI partition name",
                    "0-1, amd.com/gpu=GPU-2bad31ea63d9d207-p1, 0",
                    vec![
                        "renderD129".into(),
                        "renderD130".into(),
                        "renderD139".into(),
                    ],
                ),
                (
                    "a shared unique id selects all partitions reporting it",
                    "GPU-2bad31ea63d9d207",
                    renders(138..=145),
                ),
            ];
            for (what, value, want) in cases {
                assert_eq!(inject(value), Ok(want), "{what}: {value}");
            }
        }

        #[test]
        fn an_index_past_the_last_partition_is_refused() {
            let result = inject("63,64");
            let message = result.expect_err("no GPU 64");
            assert!(
                message.starts_with(
                    "AMD_VISIBLE_DEVICES: no GPU matches \"64\" (valid: all, none, void, indices 0-63"
                ),
                "{message}"
            );
        }
    }
}
