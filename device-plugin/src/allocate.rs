//! `Allocate`: what a container needs to use the devices the kubelet allocated to it, in one
//! of three forms:
//!
//! - [`AllocationForm::Cdi`] (default): `CDIDevices` with the devices' CDI names
//!   (`amd.com/gpu=0000:05:00.0-p3`), which the kubelet passes to the runtime in the CRI
//!   (Kubernetes 1.31+, containerd 1.7+/2.x, CRI-O);
//! - [`AllocationForm::Annotations`]: the same names in the container annotation
//!   `cdi.k8s.io/amdgpu-cdi_<resource>`, for older kubelets with CDI-enabled runtimes;
//! - [`AllocationForm::DeviceSpecs`]: plain device nodes (`/dev/kfd` and the render nodes), read
//!   from the plugin's spec, for runtimes without CDI.
//!
//! Every requested id must be a healthy device of the resource; anything else fails the whole
//! request with the id named, and nothing is returned for it.

use std::collections::BTreeMap;

use amdgpu_cdi::request::ANNOTATION_PREFIX;
use cdi::spec::{DeviceNode, Spec};

use crate::api::{CdiDevice, ContainerAllocateResponse, DeviceSpec};
use crate::inventory::{Inventory, PluginDevice, short_name};

/// The plugin's name in annotation keys.
pub const PLUGIN_NAME: &str = "amdgpu-cdi";

/// What `Allocate` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllocationForm {
    /// `CDIDevices`.
    Cdi,
    /// `cdi.k8s.io/` annotations.
    Annotations,
    /// `DeviceSpecs`.
    DeviceSpecs,
}

/// Why an allocation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllocateError {
    /// The id is not a device of the resource.
    #[error("cannot allocate {id}: {resource} has no such device (it has {known})")]
    Unknown {
        /// The requested id.
        id: String,
        /// The resource.
        resource: String,
        /// How many devices the resource has, e.g. `8 devices`.
        known: String,
    },
    /// The device is advertised unhealthy.
    #[error(
        "cannot allocate {id} of {resource}: the device is unhealthy (its render node or KFD \
         node is gone, or its GPU changed partition mode)"
    )]
    Unhealthy {
        /// The requested id.
        id: String,
        /// The resource.
        resource: String,
    },
    /// The spec has no device of that name (the plugin writes both, so this is a bug or a spec
    /// replaced by another writer).
    #[error(
        "cannot allocate {id}: the CDI spec has no device {name} (another program may have \
         replaced the plugin's spec)"
    )]
    NotInSpec {
        /// The requested id.
        id: String,
        /// The CDI device name looked up.
        name: String,
    },
}

/// The annotation key for a resource: `cdi.k8s.io/amdgpu-cdi_<name>` for `amd.com/<name>`.
pub fn annotation_key(resource: &str) -> String {
    format!("{ANNOTATION_PREFIX}{PLUGIN_NAME}_{}", short_name(resource))
}

/// The response for one container of `resource` that was allocated `ids`.
pub fn container_response(
    inventory: &Inventory,
    spec: &Spec,
    resource: &str,
    ids: &[String],
    form: AllocationForm,
) -> Result<ContainerAllocateResponse, AllocateError> {
    let mut devices: Vec<&PluginDevice> = Vec::with_capacity(ids.len());
    for id in ids {
        let device = inventory
            .get(resource, id)
            .ok_or_else(|| AllocateError::Unknown {
                id: id.clone(),
                resource: resource.to_string(),
                known: match inventory.of_resource(resource).count() {
                    1 => "1 device".to_string(),
                    n => format!("{n} devices"),
                },
            })?;
        if !device.healthy {
            return Err(AllocateError::Unhealthy {
                id: id.clone(),
                resource: resource.to_string(),
            });
        }
        if !devices.iter().any(|d| d.id == device.id) {
            devices.push(device);
        }
    }
    let mut response = ContainerAllocateResponse::default();
    match form {
        AllocationForm::Cdi => {
            response.cdi_devices = devices
                .iter()
                .map(|d| CdiDevice { name: d.cdi_name() })
                .collect();
        }
        AllocationForm::Annotations => {
            let names: Vec<String> = devices.iter().map(|d| d.cdi_name()).collect();
            if !names.is_empty() {
                response.annotations =
                    BTreeMap::from([(annotation_key(resource), names.join(","))]);
            }
        }
        AllocationForm::DeviceSpecs => {
            response.devices = device_specs(spec, &devices)?;
        }
    }
    Ok(response)
}

/// The spec-wide nodes (`/dev/kfd`) and each device's nodes, as the spec names them.
fn device_specs(spec: &Spec, devices: &[&PluginDevice]) -> Result<Vec<DeviceSpec>, AllocateError> {
    if devices.is_empty() {
        return Ok(Vec::new());
    }
    let mut specs: Vec<DeviceSpec> = spec
        .container_edits
        .device_nodes
        .iter()
        .map(device_spec)
        .collect();
    for device in devices {
        let edits = spec
            .devices
            .iter()
            .find(|d| d.name == device.id)
            .ok_or_else(|| AllocateError::NotInSpec {
                id: device.id.clone(),
                name: device.cdi_name(),
            })?;
        for node in &edits.container_edits.device_nodes {
            let node = device_spec(node);
            if !specs.contains(&node) {
                specs.push(node);
            }
        }
    }
    Ok(specs)
}

fn device_spec(node: &DeviceNode) -> DeviceSpec {
    DeviceSpec {
        container_path: node.path.clone(),
        host_path: node.host_node_path().to_string(),
        // CDI's empty permissions mean `rwm`; a container has no use for mknod on its nodes.
        permissions: node
            .permissions
            .clone()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "rw".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use amdgpu_cdi::generate::{GenerateOptions, generate};
    use amdgpu_cdi::naming::NameStrategy;

    use super::*;
    use crate::inventory::ResourceStrategy;
    use crate::testing::{example, inventory};

    fn spec(host: &str, dev_root: &str) -> Spec {
        let options = GenerateOptions {
            strategies: vec![NameStrategy::Index, NameStrategy::Pci],
            dev_root: PathBuf::from(dev_root),
            ..GenerateOptions::default()
        };
        generate(&example(host), &options).expect("spec")
    }

    fn ids(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn each_form_names_the_allocated_devices() {
        let inv = inventory("mi300x-cpx", ResourceStrategy::Mixed);
        let spec = spec("mi300x-cpx", "/");
        let request = ids(&["0000:15:00.0-p2", "0000:05:00.0-p7"]);
        let resource = "amd.com/cpx_nps1";
        let cdi = container_response(&inv, &spec, resource, &request, AllocationForm::Cdi)
            .expect("allocation");
        let names: Vec<&str> = cdi.cdi_devices.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(
            names,
            ["amd.com/gpu=0000:15:00.0-p2", "amd.com/gpu=0000:05:00.0-p7"]
        );
        assert!(cdi.devices.is_empty() && cdi.annotations.is_empty() && cdi.envs.is_empty());

        let annotated =
            container_response(&inv, &spec, resource, &request, AllocationForm::Annotations)
                .expect("allocation");
        assert_eq!(
            annotated.annotations,
            BTreeMap::from([(
                "cdi.k8s.io/amdgpu-cdi_cpx_nps1".to_string(),
                "amd.com/gpu=0000:15:00.0-p2,amd.com/gpu=0000:05:00.0-p7".to_string()
            )])
        );
        assert!(annotated.cdi_devices.is_empty());

        let nodes =
            container_response(&inv, &spec, resource, &request, AllocationForm::DeviceSpecs)
                .expect("allocation");
        let paths: Vec<(&str, &str, &str)> = nodes
            .devices
            .iter()
            .map(|d| {
                (
                    d.container_path.as_str(),
                    d.host_path.as_str(),
                    d.permissions.as_str(),
                )
            })
            .collect();
        let render = |id: &str| {
            inv.get(resource, id)
                .expect("device")
                .render
                .display()
                .to_string()
        };
        let (first, second) = (render("0000:15:00.0-p2"), render("0000:05:00.0-p7"));
        assert_eq!(
            paths,
            [
                ("/dev/kfd", "/dev/kfd", "rw"),
                (first.as_str(), first.as_str(), "rw"),
                (second.as_str(), second.as_str(), "rw"),
            ]
        );
    }

    #[test]
    fn an_empty_host_path_is_the_container_path() {
        let node = DeviceNode {
            path: "/dev/dri/renderD128".into(),
            host_path: Some(String::new()),
            ..DeviceNode::default()
        };
        assert_eq!(device_spec(&node).host_path, "/dev/dri/renderD128");
    }

    #[test]
    fn device_specs_use_the_spec_host_paths_under_a_dev_root() {
        let inv = inventory("mi210x4", ResourceStrategy::Single);
        let spec = spec("mi210x4", "/host");
        let response = container_response(
            &inv,
            &spec,
            "amd.com/gpu",
            &ids(&["0000:03:00.0"]),
            AllocationForm::DeviceSpecs,
        )
        .expect("allocation");
        assert_eq!(response.devices[0].container_path, "/dev/kfd");
        assert_eq!(response.devices[0].host_path, "/host/dev/kfd");
        assert!(
            response.devices[1]
                .host_path
                .starts_with("/host/dev/dri/renderD")
        );
        assert_eq!(response.devices.len(), 2);
    }

    #[test]
    fn unknown_unhealthy_and_foreign_ids_are_refused_by_name() {
        let mut inv = inventory("mi300x-cpx", ResourceStrategy::Mixed);
        let spec = spec("mi300x-cpx", "/");
        let refuse = |inv: &Inventory, resource: &str, id: &str| {
            container_response(inv, &spec, resource, &ids(&[id]), AllocationForm::Cdi)
                .expect_err("must fail")
                .to_string()
        };
        assert_eq!(
            refuse(&inv, "amd.com/cpx_nps1", "0000:ff:00.0"),
            "cannot allocate 0000:ff:00.0: amd.com/cpx_nps1 has no such device (it has 64 \
             devices)"
        );
        assert_eq!(
            refuse(&inv, "amd.com/gpu", "0000:05:00.0-p0"),
            "cannot allocate 0000:05:00.0-p0: amd.com/gpu has no such device (it has 0 devices)"
        );
        inv.devices[3].healthy = false;
        assert!(
            refuse(&inv, "amd.com/cpx_nps1", "0000:05:00.0-p3").starts_with(
                "cannot allocate 0000:05:00.0-p3 of amd.com/cpx_nps1: the device is unhealthy"
            )
        );
    }
}
