//! The injection shared by the OCI hooks and the runtime wrapper: read the requests of an OCI
//! config, find the requested devices (live discovery, or the CDI spec dirs), apply their CDI
//! edits through the `cdi` crate, and mark the config so a second pass changes nothing.

pub mod precreate;
pub mod prestart;

use amdgpu_cdi_hooks::log::DetailLog;
use cdi::registry::Registry;
use serde_json::{Map, Value};

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
    /// Applying the CDI edits failed.
    #[error(transparent)]
    Cdi(#[from] cdi::registry::InjectError),
    /// The config's `annotations` is not an object.
    #[error("cannot mark the OCI config as injected: annotations is not an object")]
    Annotations,
}

/// The devices requests are resolved against, and how to inject them.
#[derive(Debug)]
enum DeviceSet {
    /// The `amd.com/gpu` devices of the CDI spec dirs.
    Registry {
        registry: Registry,
        inventory: Inventory,
    },
}

impl DeviceSet {
    fn load(settings: &Settings, log: &DetailLog) -> Self {
        match settings.device_source {
            DeviceSource::Discover | DeviceSource::Cdi => {
                let registry = Registry::load(&settings.spec_dirs);
                for err in registry.errors() {
                    log.warn(&format!("skipping CDI spec: {err}"));
                }
                let inventory = registry_inventory(&registry);
                Self::Registry {
                    registry,
                    inventory,
                }
            }
        }
    }

    fn inventory(&self) -> &Inventory {
        match self {
            Self::Registry { inventory, .. } => inventory,
        }
    }

    fn inject(&self, config: &mut Value, names: &[String]) -> Result<(), InjectError> {
        match self {
            Self::Registry { registry, .. } => {
                let qualified: Vec<String> = names.iter().map(|n| format!("{KIND}={n}")).collect();
                registry.inject(config, &qualified)?;
            }
        }
        Ok(())
    }
}

/// The inventory of a registry: one candidate per `amd.com/gpu` device except `all`, with the
/// index, unique id or PCI address its name spells (names are all a spec tells about a device).
fn registry_inventory(registry: &Registry) -> Inventory {
    let prefix = format!("{KIND}=");
    let candidates = registry
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
            match grammar::parse_entry(name) {
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
        .collect::<Vec<_>>();
    let mut candidates = candidates;
    candidates.sort_by_key(|c| (c.index.is_none(), c.index));
    Inventory { candidates }
}

/// Injects the GPUs `config` asks for. Leaves it unchanged when nothing is requested or it was
/// already injected; fails (config unchanged) when any request cannot be met in full.
pub fn inject(
    config: &mut Value,
    settings: &Settings,
    log: &DetailLog,
) -> Result<Outcome, InjectError> {
    if request::already_injected(config) {
        return Ok(Outcome::Unchanged("already injected"));
    }
    let requests = request::read_requests(config, &settings.request_options())?;
    for name in &requests.ignored {
        log.warn(&format!(
            "ignoring {name} of an unprivileged container (accept-env-from-unprivileged)"
        ));
    }
    if requests.is_empty() {
        return Ok(Outcome::Unchanged("no GPU requested"));
    }
    let devices = DeviceSet::load(settings, log);
    let names = requests.resolve(devices.inventory())?;
    let mut work = config.clone();
    devices.inject(&mut work, &names)?;
    mark(&mut work, &names)?;
    *config = work;
    Ok(Outcome::Injected(names))
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
