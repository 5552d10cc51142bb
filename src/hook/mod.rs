//! The injection shared by the OCI hooks and the runtime wrapper: read the requests of an OCI
//! config, find the requested devices (live discovery, or the CDI spec dirs), apply their CDI
//! edits through the `cdi` crate, and mark the config so a second pass changes nothing.
//! [`select`] stops before applying, for hooks that create the nodes themselves.

pub mod precreate;
pub mod prestart;

use amdgpu_cdi_hooks::log::DetailLog;
use cdi::edits::{EditError, apply_many};
use cdi::registry::Registry;
use cdi::spec::{ContainerEdits, Spec};
use serde_json::{Map, Value};

use crate::discover::{DiscoverOptions, Host, discover};
use crate::generate::{GenerateOptions, generate};
use crate::naming::{NameStrategy, device_names};
use crate::request::grammar::{self, KIND, Selector};
use crate::request::resolve::{Candidate, Inventory};
use crate::request::{self, INJECTED_ANNOTATION, RequestError};
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
    /// A spec generated from live discovery, named by index.
    Generated {
        spec: Box<Spec>,
        inventory: Inventory,
    },
    /// The `amd.com/gpu` devices of the CDI spec dirs.
    Registry {
        registry: Registry,
        inventory: Inventory,
    },
}

impl DeviceSet {
    fn load(settings: &Settings, log: &DetailLog) -> Result<Self, InjectError> {
        match settings.device_source {
            DeviceSource::Discover => {
                let host = discover(&DiscoverOptions {
                    sysfs_root: settings.sysfs_root.clone(),
                    dev_root: settings.dev_root.clone(),
                })?;
                let spec = generate(
                    &host,
                    &GenerateOptions {
                        strategies: vec![NameStrategy::Index],
                        all_device: false,
                        dev_root: settings.dev_root.clone(),
                        ..GenerateOptions::default()
                    },
                )?;
                let inventory = host_inventory(&host);
                Ok(Self::Generated {
                    spec: Box::new(spec),
                    inventory,
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

    fn inventory(&self) -> &Inventory {
        match self {
            Self::Generated { inventory, .. } | Self::Registry { inventory, .. } => inventory,
        }
    }

    /// The edits of the named devices in application order: each spec's own edits once, before
    /// its first device, then the device's (the reference library's order).
    fn edits(&self, names: &[String]) -> Result<Vec<ContainerEdits>, InjectError> {
        let mut edits = Vec::with_capacity(names.len() + 1);
        match self {
            Self::Generated { spec, .. } => {
                edits.push(spec.container_edits.clone());
                for name in names {
                    let device = spec
                        .devices
                        .iter()
                        .find(|d| d.name == *name)
                        .ok_or_else(|| InjectError::Vanished(name.clone()))?;
                    edits.push(device.container_edits.clone());
                }
            }
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

/// Every name a discovered GPU answers to: the generated index name first (the one injected),
/// then its unique-id and PCI names.
const ALL_STRATEGIES: [NameStrategy; 3] =
    [NameStrategy::Index, NameStrategy::Uuid, NameStrategy::Pci];

/// The inventory of a discovered host, in amdgpu-cdi's order.
fn host_inventory(host: &Host) -> Inventory {
    Inventory {
        candidates: host
            .gpus
            .iter()
            .map(|gpu| Candidate {
                name: gpu.index.to_string(),
                index: Some(gpu.index),
                unique_id: gpu.unique_id,
                pci_address: Some(gpu.pci_address),
                names: device_names(gpu, &ALL_STRATEGIES),
            })
            .collect(),
    }
}

/// The inventory of a registry: one candidate per `amd.com/gpu` device except `all`, with the
/// index, unique id or PCI address its name spells (names are all a spec tells about a device).
fn registry_inventory(registry: &Registry) -> Inventory {
    let prefix = format!("{KIND}=");
    let mut candidates: Vec<Candidate> = registry
        .devices()
        .filter_map(|entry| entry.name.strip_prefix(&prefix))
        .filter(|name| *name != "all")
        .map(|name| {
            let mut candidate = Candidate {
                name: name.to_string(),
                index: None,
                unique_id: None,
                pci_address: None,
                names: vec![name.to_string()],
            };
            match grammar::parse_entry(strip_partition_suffix(name)) {
                Ok(Selector::Index(i)) => candidate.index = Some(i),
                Ok(Selector::UniqueId(id)) => candidate.unique_id = Some(id),
                Ok(Selector::Pci(pci)) => {
                    candidate.pci_address = pci.domain.map(|domain| crate::discover::PciAddress {
                        domain,
                        bus: pci.bus,
                        device: pci.device,
                        function: pci.function,
                    });
                }
                _ => {}
            }
            candidate
        })
        .collect();
    candidates.sort_by_key(|c| (c.index.is_none(), c.index));
    Inventory { candidates }
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
pub enum Selection {
    /// Nothing to do, for the given reason.
    Nothing(&'static str),
    /// These devices are requested.
    Devices(Selected),
}

/// Resolves what `config` asks for against the configured device source. Fails when any request
/// cannot be met in full.
pub fn select(
    config: &Value,
    settings: &Settings,
    log: &DetailLog,
) -> Result<Selection, InjectError> {
    if request::already_injected(config) {
        return Ok(Selection::Nothing("already injected"));
    }
    let requests = request::read_requests(config, &settings.request_options())?;
    for name in &requests.ignored {
        log.warn(&format!(
            "ignoring {name} of an unprivileged container (accept-env-from-unprivileged)"
        ));
    }
    if requests.is_empty() {
        return Ok(Selection::Nothing("no GPU requested"));
    }
    let devices = DeviceSet::load(settings, log)?;
    let names = requests.resolve(devices.inventory())?;
    let edits = devices.edits(&names)?;
    Ok(Selection::Devices(Selected { names, edits }))
}

/// Injects the GPUs `config` asks for. Leaves it unchanged when nothing is requested or it was
/// already injected; fails (config unchanged) when any request cannot be met in full.
pub fn inject(
    config: &mut Value,
    settings: &Settings,
    log: &DetailLog,
) -> Result<Outcome, InjectError> {
    let selected = match select(config, settings, log)? {
        Selection::Nothing(reason) => return Ok(Outcome::Unchanged(reason)),
        Selection::Devices(selected) => selected,
    };
    let mut work = config.clone();
    let refs: Vec<&ContainerEdits> = selected.edits.iter().collect();
    apply_many(&mut work, &refs).map_err(|source| InjectError::Edit {
        names: selected.names.clone(),
        source,
    })?;
    mark(&mut work, &selected.names)?;
    *config = work;
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
}
