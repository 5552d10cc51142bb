//! The shipped Kubernetes DaemonSet manifests (`packaging/kubernetes/`), read as the cluster
//! would read them: a Namespace, then the DaemonSet whose pod the tests check. Shared by the
//! plugin's own tests and the workspace's end-to-end tests (`#[path]`), so it depends on nothing
//! but std, serde_json and serde_saphyr.

#![allow(dead_code, unreachable_pub)]

use std::fs;
use std::path::Path;

use serde_json::Value;

/// A manifest holding a Namespace and a DaemonSet.
pub struct DaemonSet {
    /// The DaemonSet document.
    pub doc: Value,
}

impl DaemonSet {
    /// Reads the manifest at `path`; panics unless it is YAML holding a Namespace and then a
    /// DaemonSet.
    pub fn load(path: &Path) -> Self {
        let text = fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let docs: Vec<Value> = serde_saphyr::from_multiple(&text)
            .unwrap_or_else(|e| panic!("{} is not YAML: {e}", path.display()));
        let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
        assert_eq!(kinds, ["Namespace", "DaemonSet"], "{}", path.display());
        let doc = docs.into_iter().nth(1).unwrap_or_default();
        Self { doc }
    }

    /// The spec of the pod template.
    pub fn pod(&self) -> &Value {
        &self.doc["spec"]["template"]["spec"]
    }

    /// The pod's first container.
    pub fn container(&self) -> &Value {
        &self.pod()["containers"][0]
    }

    /// The container's volume mounts: the path in the container and whether it is read-only.
    pub fn mounts(&self) -> Vec<(&str, bool)> {
        items(&self.container()["volumeMounts"], |m| {
            (
                string(m, "mountPath"),
                m["readOnly"].as_bool().unwrap_or(false),
            )
        })
    }

    /// The host paths of the pod's volumes, in order.
    pub fn host_paths(&self) -> Vec<&str> {
        items(&self.pod()["volumes"], |v| string(&v["hostPath"], "path"))
    }

    /// The container's environment: names and values.
    pub fn env(&self) -> Vec<(&str, &str)> {
        items(&self.container()["env"], |e| {
            (string(e, "name"), string(e, "value"))
        })
    }
}

/// Each element of the JSON array `list`, through `item`.
fn items<'a, T>(list: &'a Value, item: impl Fn(&'a Value) -> T) -> Vec<T> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(item)
        .collect()
}

/// The string `key` of an object.
fn string<'a>(object: &'a Value, key: &str) -> &'a str {
    object[key]
        .as_str()
        .unwrap_or_else(|| panic!("no string {key} in {object}"))
}
