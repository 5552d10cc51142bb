//! Per-container GPU requests read from an OCI runtime config: the `AMD_VISIBLE_DEVICES`
//! environment variable, Kubernetes `cdi.k8s.io/<anything>` annotations naming `amd.com/gpu=...`
//! devices, and Docker Swarm `DOCKER_RESOURCE_<NAME>` variables. Environment requests from
//! unprivileged containers are subject to an [`EnvPolicy`], because in Kubernetes any pod can set
//! a variable while only the device plugin sets annotations.

pub mod grammar;
pub mod resolve;

use std::fmt;

use serde_json::Value;

use self::grammar::{Entry, GrammarError, Selection, Selector, VALID_FORMS};
use self::resolve::{Inventory, UnknownEntry};

/// The environment variable naming the GPUs a container wants.
pub const ENV_VAR: &str = "AMD_VISIBLE_DEVICES";
/// The prefix of Kubernetes CDI annotations (`cdi.k8s.io/<plugin>_<id>`).
pub const ANNOTATION_PREFIX: &str = "cdi.k8s.io/";
/// The prefix of Docker Swarm generic-resource variables.
pub const SWARM_PREFIX: &str = "DOCKER_RESOURCE_";
/// The annotation amdgpu-cdi sets on a config it injected GPUs into (value: the CDI names). A
/// config carrying it is left alone, so the hook and the wrapper can both be configured.
pub const INJECTED_ANNOTATION: &str = "amd.com/gpu.injected";

/// Why a config's bytes were not parsed: [`cannot_request`] held.
pub const NOTHING_REQUESTED: &str = "no GPU requested";

/// True when the raw bytes of an OCI config cannot hold a request, so the config need not be
/// parsed: they are UTF-8 without a backslash (no JSON escape can spell a name another way), and
/// none of `AMD_VISIBLE_DEVICES`, `DOCKER_RESOURCE_` and `cdi.k8s.io/` appears in them. Most
/// containers ask for no GPU; with the wrapper as an engine's default runtime, or the hook in
/// every podman container, this skips parsing a 10-30 kB config for each of them. A false
/// `false` only costs the parse: [`read_requests`] decides.
pub fn cannot_request(raw: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(raw) else {
        return false;
    };
    !text.contains('\\')
        && ![ENV_VAR, SWARM_PREFIX, ANNOTATION_PREFIX]
            .iter()
            .any(|marker| text.contains(marker))
}

/// Whether environment requests (`AMD_VISIBLE_DEVICES`, `DOCKER_RESOURCE_*`) of unprivileged
/// containers are honoured. Privileged containers (with `CAP_SYS_ADMIN`) can open any device
/// anyway, so their variables are always honoured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EnvPolicy {
    /// Honour them from every container (plain Docker, podman, Swarm hosts).
    Always,
    /// Never: only annotations (set by a Kubernetes device plugin) and privileged containers.
    Never,
    /// Honour them unless the container is managed by Kubernetes (it has annotations only
    /// containerd's and CRI-O's CRI set), where a pod could otherwise take GPUs
    /// the device plugin never gave it.
    #[default]
    OutsideKubernetes,
}

/// What reading requests needs besides the config.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RequestOptions {
    /// The environment policy.
    pub env_policy: EnvPolicy,
    /// Swarm resource names `NAME` whose `DOCKER_RESOURCE_NAME` variables are read.
    pub swarm_resources: Vec<String>,
}

/// Where a request came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// An environment variable of `process.env`.
    Env(String),
    /// An annotation key.
    Annotation(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Env(name) => f.write_str(name),
            Self::Annotation(key) => write!(f, "annotation {key}"),
        }
    }
}

/// One source's list of entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Where it came from.
    pub origin: Origin,
    /// Its entries, deduplicated.
    pub entries: Vec<Entry>,
}

/// Every request found in a config.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Requests {
    /// Requests that select devices.
    pub requests: Vec<Request>,
    /// Environment variables that were set but ignored under the [`EnvPolicy`].
    pub ignored: Vec<String>,
}

/// Errors reading or resolving requests.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// A value does not follow the grammar.
    #[error("{origin}={value}: {reason} ({VALID_FORMS})")]
    Grammar {
        /// Where the value came from.
        origin: Origin,
        /// The value.
        value: String,
        /// What is wrong.
        reason: GrammarError,
    },
    /// An entry names no existing device.
    #[error("{origin}: {reason}")]
    Unknown {
        /// Where the entry came from.
        origin: Origin,
        /// The entry and what is valid.
        reason: UnknownEntry,
    },
}

impl Requests {
    /// True when nothing is asked for (everything unset, `void` or `none`).
    pub fn is_empty(&self) -> bool {
        self.requests.is_empty()
    }

    /// True when an entry selects a device by its CDI name (`amd.com/gpu=<name>`).
    pub fn names_cdi_devices(&self) -> bool {
        self.requests
            .iter()
            .flat_map(|request| &request.entries)
            .any(|entry| matches!(entry.selector, Selector::CdiName(_)))
    }

    /// The CDI names of the requested devices, deduplicated, in inventory order.
    pub fn resolve(&self, inventory: &Inventory) -> Result<Vec<String>, RequestError> {
        let mut chosen: Vec<String> = Vec::new();
        for request in &self.requests {
            let names =
                inventory
                    .resolve(&request.entries)
                    .map_err(|reason| RequestError::Unknown {
                        origin: request.origin.clone(),
                        reason,
                    })?;
            chosen.extend(names);
        }
        Ok(inventory
            .candidates
            .iter()
            .map(|c| &c.name)
            .filter(|n| chosen.contains(n))
            .cloned()
            .fold(Vec::new(), |mut out, n| {
                if !out.contains(&n) {
                    out.push(n);
                }
                out
            }))
    }
}

/// True when the config's annotations mark it as already injected.
pub fn already_injected(config: &Value) -> bool {
    config
        .pointer("/annotations")
        .and_then(Value::as_object)
        .is_some_and(|a| a.contains_key(INJECTED_ANNOTATION))
}

/// The `process.env` entries as (name, value), later duplicates overriding earlier ones.
fn environment(config: &Value) -> Vec<(&str, &str)> {
    let mut vars: Vec<(&str, &str)> = Vec::new();
    let entries = config
        .pointer("/process/env")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for (name, value) in entries
        .iter()
        .filter_map(Value::as_str)
        .filter_map(|e| e.split_once('='))
    {
        vars.retain(|(n, _)| *n != name);
        vars.push((name, value));
    }
    vars
}

/// True when the container holds `CAP_SYS_ADMIN` in its bounding set (Docker's and podman's
/// `--privileged`, Kubernetes' `privileged: true`).
pub fn is_privileged(config: &Value) -> bool {
    config
        .pointer("/process/capabilities/bounding")
        .and_then(Value::as_array)
        .is_some_and(|caps| caps.iter().any(|c| c.as_str() == Some("CAP_SYS_ADMIN")))
}

/// Annotations only a Kubernetes CRI sets: CRI-O's pod namespace, containerd's sandbox namespace
/// and container type. (podman sets other `io.kubernetes.cri-o.*` keys on plain containers, so a
/// prefix test would be wrong.)
pub const KUBERNETES_ANNOTATIONS: [&str; 3] = [
    "io.kubernetes.pod.namespace",
    "io.kubernetes.cri.sandbox-namespace",
    "io.kubernetes.cri.container-type",
];

/// True when a Kubernetes CRI created the container (see [`KUBERNETES_ANNOTATIONS`]).
pub fn is_kubernetes(config: &Value) -> bool {
    config
        .pointer("/annotations")
        .and_then(Value::as_object)
        .is_some_and(|a| KUBERNETES_ANNOTATIONS.iter().any(|k| a.contains_key(*k)))
}

/// Reads every request in `config`.
pub fn read_requests(config: &Value, options: &RequestOptions) -> Result<Requests, RequestError> {
    let mut found = Requests::default();
    let env_allowed = is_privileged(config)
        || match options.env_policy {
            EnvPolicy::Always => true,
            EnvPolicy::Never => false,
            EnvPolicy::OutsideKubernetes => !is_kubernetes(config),
        };
    for (name, value) in environment(config) {
        let wanted = name == ENV_VAR
            || name
                .strip_prefix(SWARM_PREFIX)
                .is_some_and(|resource| options.swarm_resources.iter().any(|r| r == resource));
        if !wanted {
            continue;
        }
        if !env_allowed {
            found.ignored.push(name.to_string());
            continue;
        }
        let origin = Origin::Env(name.to_string());
        match grammar::parse(value) {
            Ok(Selection::Devices(entries)) => found.requests.push(Request { origin, entries }),
            Ok(Selection::Void | Selection::None) => {}
            Err(reason) => {
                return Err(RequestError::Grammar {
                    origin,
                    value: value.to_string(),
                    reason,
                });
            }
        }
    }
    let annotations = config.pointer("/annotations").and_then(Value::as_object);
    for (key, value) in annotations.into_iter().flatten() {
        let (Some(_), Some(value)) = (key.strip_prefix(ANNOTATION_PREFIX), value.as_str()) else {
            continue;
        };
        let origin = Origin::Annotation(key.clone());
        let mut entries: Vec<Entry> = Vec::new();
        for text in value.split(',').map(str::trim) {
            if !text.starts_with(grammar::KIND) || !text[grammar::KIND.len()..].starts_with('=') {
                continue; // another vendor's device: the engine's business
            }
            let selector = grammar::parse_entry(text).map_err(|reason| RequestError::Grammar {
                origin: origin.clone(),
                value: value.to_string(),
                reason,
            })?;
            if !entries.iter().any(|e| e.selector == selector) {
                entries.push(Entry {
                    text: text.to_string(),
                    selector,
                });
            }
        }
        if !entries.is_empty() {
            found.requests.push(Request { origin, entries });
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::grammar::Selector;
    use super::*;

    fn options(policy: EnvPolicy) -> RequestOptions {
        RequestOptions {
            env_policy: policy,
            swarm_resources: vec!["AMD_GPU".to_string()],
        }
    }

    fn selectors(requests: &Requests) -> Vec<(String, Vec<Selector>)> {
        requests
            .requests
            .iter()
            .map(|r| {
                (
                    r.origin.to_string(),
                    r.entries.iter().map(|e| e.selector.clone()).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn reads_env_swarm_and_annotations() {
        let config = json!({
            "process": {"env": ["PATH=/bin", "AMD_VISIBLE_DEVICES=9", "AMD_VISIBLE_DEVICES=0, 1",
                                "DOCKER_RESOURCE_AMD_GPU=GPU-ab12cd34ef", "DOCKER_RESOURCE_SSD=x"]},
            "annotations": {
                "cdi.k8s.io/amd_abc": "nvidia.com/gpu=0, amd.com/gpu=2,amd.com/gpu=2",
                "other": "amd.com/gpu=3"
            }
        });
        let found = read_requests(&config, &options(EnvPolicy::Always)).expect("valid");
        assert_eq!(
            selectors(&found),
            vec![
                (
                    "AMD_VISIBLE_DEVICES".to_string(),
                    vec![Selector::Index(0), Selector::Index(1)]
                ),
                (
                    "DOCKER_RESOURCE_AMD_GPU".to_string(),
                    vec![Selector::UniqueId(0xab_12cd_34ef)]
                ),
                (
                    "annotation cdi.k8s.io/amd_abc".to_string(),
                    vec![Selector::CdiName("2".to_string())]
                ),
            ]
        );
    }

    #[test]
    fn void_none_and_unset_ask_for_nothing() {
        for env in [
            json!([]),
            json!(["AMD_VISIBLE_DEVICES=void"]),
            json!(["AMD_VISIBLE_DEVICES="]),
            json!(["AMD_VISIBLE_DEVICES=none"]),
            json!(["AMD_VISIBLE_DEVICES"]),
        ] {
            let config = json!({"process": {"env": env}});
            let found = read_requests(&config, &options(EnvPolicy::Always)).expect("valid");
            assert!(found.is_empty(), "{config}");
        }
        assert!(
            read_requests(&json!({}), &options(EnvPolicy::Always))
                .expect("ok")
                .is_empty()
        );
    }

    #[test]
    fn kubernetes_env_is_ignored_unless_privileged() {
        let mut config = json!({
            "process": {"env": ["AMD_VISIBLE_DEVICES=all"],
                        "capabilities": {"bounding": ["CAP_CHOWN"]}},
            "annotations": {"io.kubernetes.cri.container-type": "container"}
        });
        let found = read_requests(&config, &options(EnvPolicy::OutsideKubernetes)).expect("ok");
        assert!(found.is_empty());
        assert_eq!(found.ignored, vec!["AMD_VISIBLE_DEVICES".to_string()]);
        assert!(
            !read_requests(&config, &options(EnvPolicy::Always))
                .expect("ok")
                .is_empty()
        );
        config["process"]["capabilities"]["bounding"] = json!(["CAP_SYS_ADMIN"]);
        assert!(
            !read_requests(&config, &options(EnvPolicy::Never))
                .expect("ok")
                .is_empty()
        );
    }

    #[test]
    fn podman_annotations_are_not_kubernetes() {
        let config = json!({
            "process": {"env": ["AMD_VISIBLE_DEVICES=0"]},
            "annotations": {"io.kubernetes.cri-o.TTY": "false", "io.container.manager": "libpod"}
        });
        assert!(!is_kubernetes(&config));
        let found = read_requests(&config, &options(EnvPolicy::OutsideKubernetes)).expect("ok");
        assert!(!found.is_empty());
    }

    #[test]
    fn never_ignores_env_outside_kubernetes_too() {
        let config = json!({"process": {"env": ["AMD_VISIBLE_DEVICES=0"]}});
        assert!(
            read_requests(&config, &options(EnvPolicy::Never))
                .expect("ok")
                .is_empty()
        );
        assert!(
            !read_requests(&config, &options(EnvPolicy::OutsideKubernetes))
                .expect("ok")
                .is_empty()
        );
    }

    #[test]
    fn grammar_errors_name_the_origin_and_the_valid_forms() {
        let config = json!({"process": {"env": ["AMD_VISIBLE_DEVICES=0,zz"]}});
        let err = read_requests(&config, &options(EnvPolicy::Always)).expect_err("invalid");
        assert!(
            err.to_string().starts_with(
                "AMD_VISIBLE_DEVICES=0,zz: invalid entry \"zz\": not a recognised form (valid: all,"
            ),
            "{err}"
        );
        let config = json!({"annotations": {"cdi.k8s.io/x": "amd.com/gpu=-"}});
        let err = read_requests(&config, &options(EnvPolicy::Always)).expect_err("invalid");
        assert!(
            err.to_string()
                .starts_with("annotation cdi.k8s.io/x=amd.com/gpu=-: invalid")
        );
    }

    #[test]
    fn injected_marker() {
        assert!(already_injected(
            &json!({"annotations": {INJECTED_ANNOTATION: "0"}})
        ));
        assert!(!already_injected(&json!({"annotations": {}})));
    }

    #[test]
    fn configs_without_markers_cannot_request() {
        let plain = br#"{"process":{"env":["PATH=/bin","AMD_GPU=1"]},"annotations":{"a":"b"}}"#;
        assert!(cannot_request(plain));
        for marked in [
            r#"{"process":{"env":["AMD_VISIBLE_DEVICES=0"]}}"#,
            r#"{"process":{"env":["DOCKER_RESOURCE_AMD_GPU=GPU-1"]}}"#,
            r#"{"annotations":{"cdi.k8s.io/x":"amd.com/gpu=0"}}"#,
            r#"{"process":{"args":["echo","AMD_VISIBLE_DEVICES"]}}"#,
            r#"{"process":{"env":["\u0041MD_VISIBLE_DEVICES=0"]}}"#,
            r#"{"annotations":{"cdi.k8s.io\/x":"amd.com/gpu=0"}}"#,
        ] {
            assert!(!cannot_request(marked.as_bytes()), "{marked}");
        }
        assert!(!cannot_request(b"{\"a\":\"\xff\"}"), "not UTF-8");
    }

    proptest::proptest! {
        /// Whenever the bytes are judged unable to request, the parsed config requests nothing
        /// and ignores nothing: skipping the parse never drops a request. Names and values are
        /// drawn from the markers and near misses, in plain and escaped spellings.
        #[test]
        fn skipping_the_parse_never_drops_a_request(
            env in proptest::collection::vec((piece(), piece()), 0..4),
            annotations in proptest::collection::vec((piece(), piece()), 0..3),
            escape_slash in proptest::bool::ANY,
            escape_a in proptest::bool::ANY,
        ) {
            let env: Vec<String> = env.iter().map(|(name, value)| format!("{name}={value}")).collect();
            let annotations: serde_json::Map<String, Value> = annotations
                .iter()
                .map(|(key, value)| (format!("cdi.k8s.io/{key}"), Value::String(value.to_string())))
                .chain([("other".to_string(), Value::String("amd.com/gpu=0".into()))])
                .collect();
            let config = json!({"process": {"env": env}, "annotations": annotations});
            let mut text = serde_json::to_string(&config).expect("serialize");
            // Escapes JSON allows, spelling the same strings differently.
            if escape_slash {
                text = text.replace('/', r"\/");
            }
            if escape_a {
                text = text.replace('A', r"\u0041");
            }
            let parsed: Value = serde_json::from_str(&text).expect("parse");
            let found = read_requests(&parsed, &options(EnvPolicy::Always));
            if cannot_request(text.as_bytes()) {
                let found = found.expect("nothing to reject");
                proptest::prop_assert!(found.is_empty() && found.ignored.is_empty(), "{text}");
            }
        }
    }

    const PIECES_LIST: [&str; 9] = [
        "AMD_VISIBLE_DEVICES",
        "AMD_VISIBLE",
        "DOCKER_RESOURCE_AMD_GPU",
        "DOCKER_RESOURCE_",
        "amd.com/gpu=0",
        "0",
        "all",
        "x",
        "",
    ];

    fn piece() -> proptest::sample::Select<&'static str> {
        proptest::sample::select(&PIECES_LIST[..])
    }
}
