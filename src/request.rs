//! Per-container GPU requests read from an OCI runtime config: the `AMD_VISIBLE_DEVICES`
//! environment variable, Kubernetes `cdi.k8s.io/<anything>` annotations naming `amd.com/gpu=...`
//! devices, and Docker Swarm `DOCKER_RESOURCE_<NAME>` variables. Environment requests from
//! unprivileged containers are subject to an [`EnvPolicy`], because in Kubernetes any pod can set
//! a variable while only the device plugin sets annotations.

pub mod grammar;
pub mod resolve;

use std::collections::HashSet;
use std::fmt;

use amdgpu_cdi_oci::oci_config::OciConfig;
use cdi::text::escape;
use serde_json::Value;

use self::grammar::{Entry, GrammarError, Selection, Selector, VALID_FORMS};
use self::resolve::{Candidates, UnknownEntry};
use crate::naming::KIND;

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
/// containers are honoured. Privileged containers (whose device cgroup allows every device, see
/// [`is_privileged`]) can open any device anyway, so their variables are always honoured.
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
            Self::Env(name) => f.write_str(&escape(name)),
            Self::Annotation(key) => write!(f, "annotation {}", escape(key)),
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
    #[error("{origin}={}: {reason} ({VALID_FORMS})", escape(value))]
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
    pub fn resolve(&self, inventory: &Candidates) -> Result<Vec<String>, RequestError> {
        let mut chosen: HashSet<String> = HashSet::new();
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
        // Taking each name out of the set as it is kept deduplicates in the same pass.
        Ok(inventory
            .candidates
            .iter()
            .filter(|c| chosen.remove(&c.name))
            .map(|c| c.name.clone())
            .collect())
    }
}

/// True when the config's annotations mark it as already injected.
pub fn already_injected(config: &Value) -> bool {
    OciConfig::new(config).has_annotation(INJECTED_ANNOTATION)
}

/// The `process.env` entries named `wanted` says, as (name, value), a later entry for a name
/// overriding an earlier one, in the order of each name's last entry. Linear in the number of
/// entries: only the few wanted names are ever compared with each other.
fn wanted_variables<'a>(
    config: OciConfig<'a>,
    wanted: impl Fn(&str) -> bool,
) -> Vec<(&'a str, &'a str)> {
    let mut vars: Vec<(&str, &str)> = Vec::new();
    for (name, value) in config.env().filter_map(|e| e.split_once('=')) {
        if wanted(name) {
            vars.retain(|(n, _)| *n != name);
            vars.push((name, value));
        }
    }
    vars
}

/// True when the container can open every device anyway: its device cgroup rules, applied in
/// order as the runtime applies them, allow every device (the wildcard allow rule of Docker's
/// and podman's `--privileged` and Kubernetes' `privileged: true`). Capabilities are not
/// considered: `CAP_SYS_ADMIN` with a deny-all device cgroup opens no device. The hooks and the
/// wrapper decide through this one function
/// ([`amdgpu_cdi_oci::oci_config::OciConfig::allows_every_device`]).
pub fn is_privileged(config: &Value) -> bool {
    OciConfig::new(config).allows_every_device()
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
    let config = OciConfig::new(config);
    KUBERNETES_ANNOTATIONS
        .iter()
        .any(|key| config.has_annotation(key))
}

/// Reads every request in `config`. Linear in the size of the config: each environment entry
/// and annotation is looked at once, and an annotation's entries are deduplicated through a set.
pub fn read_requests(config: &Value, options: &RequestOptions) -> Result<Requests, RequestError> {
    let mut found = Requests::default();
    let view = OciConfig::new(config);
    let env_allowed = is_privileged(config)
        || match options.env_policy {
            EnvPolicy::Always => true,
            EnvPolicy::Never => false,
            EnvPolicy::OutsideKubernetes => !is_kubernetes(config),
        };
    let wanted = |name: &str| {
        name == ENV_VAR
            || name
                .strip_prefix(SWARM_PREFIX)
                .is_some_and(|resource| options.swarm_resources.iter().any(|r| r == resource))
    };
    for (name, value) in wanted_variables(view, wanted) {
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
    for (key, value) in view.annotations().into_iter().flatten() {
        let (Some(_), Some(value)) = (key.strip_prefix(ANNOTATION_PREFIX), value.as_str()) else {
            continue;
        };
        let origin = Origin::Annotation(key.clone());
        let mut entries: Vec<Entry> = Vec::new();
        let mut seen: HashSet<Selector> = HashSet::new();
        for text in value.split(',').map(str::trim) {
            if !text.starts_with(KIND) || !text[KIND.len()..].starts_with('=') {
                continue; // another vendor's device: the engine's business
            }
            let selector = grammar::parse_entry(text).map_err(|reason| RequestError::Grammar {
                origin: origin.clone(),
                value: value.to_string(),
                reason,
            })?;
            if seen.insert(selector.clone()) {
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

    /// The requests in `config` under `policy`, which must be valid.
    fn requests(config: &Value, policy: EnvPolicy) -> Requests {
        read_requests(config, &options(policy)).expect("valid requests")
    }

    /// `amd.com/gpu=n0` to `amd.com/gpu=n<distinct - 1>`, twice over, comma-separated: the long
    /// value of issue 12 item 3 (also for [`grammar`]'s tests).
    pub(super) fn every_name_twice(distinct: u32) -> String {
        (0..distinct)
            .chain(0..distinct)
            .map(|i| format!("amd.com/gpu=n{i}"))
            .collect::<Vec<_>>()
            .join(",")
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
        let found = requests(&config, EnvPolicy::Always);
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
            let found = requests(&config, EnvPolicy::Always);
            assert!(found.is_empty(), "{config}");
        }
        assert!(requests(&json!({}), EnvPolicy::Always).is_empty());
    }

    #[test]
    fn kubernetes_env_is_ignored_unless_privileged() {
        let mut config = json!({
            "process": {"env": ["AMD_VISIBLE_DEVICES=all"],
                        "capabilities": {"bounding": ["CAP_CHOWN"]}},
            "annotations": {"io.kubernetes.cri.container-type": "container"}
        });
        let found = requests(&config, EnvPolicy::OutsideKubernetes);
        assert!(found.is_empty());
        assert_eq!(found.ignored, vec!["AMD_VISIBLE_DEVICES".to_string()]);
        assert!(!requests(&config, EnvPolicy::Always).is_empty());
        // Privileged: the device cgroup allows every device (what Kubernetes writes for
        // `privileged: true`).
        config["linux"] = json!({"resources": {"devices": [{"allow": true, "access": "rwm"}]}});
        assert!(!requests(&config, EnvPolicy::Never).is_empty());
    }

    /// Issue 12 item 1: a CRI container whose bounding set merely includes `CAP_SYS_ADMIN`, with
    /// a deny-all device cgroup, was taken for privileged and got `AMD_VISIBLE_DEVICES=all`
    /// honoured under `accept-env-from-unprivileged = false`.
    #[test]
    fn cap_sys_admin_without_allow_all_device_rule_is_not_privileged() {
        let config = json!({
            "process": {"env": ["AMD_VISIBLE_DEVICES=all"],
                        "capabilities": {"bounding": ["CAP_SYS_ADMIN"], "effective": ["CAP_SYS_ADMIN"],
                                         "permitted": ["CAP_SYS_ADMIN"]}},
            "annotations": {"io.kubernetes.cri.container-type": "container"},
            "linux": {"resources": {"devices": [{"allow": false, "access": "rwm"}]}}
        });
        assert!(!is_privileged(&config));
        for policy in [EnvPolicy::Never, EnvPolicy::OutsideKubernetes] {
            let found = requests(&config, policy);
            assert!(found.is_empty(), "{policy:?}");
            assert_eq!(found.ignored, ["AMD_VISIBLE_DEVICES"]);
        }
    }

    /// The Kubernetes privileged pod (containerd's and CRI-O's `privileged: true`: a wildcard
    /// allow rule after the default deny) still gets its variable honoured, without
    /// `CAP_SYS_ADMIN` being looked at; an allow-all later narrowed by a deny does not.
    #[test]
    fn kubernetes_privileged_pod_with_allow_all_device_rule_is_honoured() {
        let mut config = json!({
            "process": {"env": ["AMD_VISIBLE_DEVICES=all"],
                        "capabilities": {"bounding": ["CAP_CHOWN"]}},
            "annotations": {"io.kubernetes.cri.container-type": "container"},
            "linux": {"resources": {"devices": [{"allow": false, "access": "rwm"},
                                                 {"allow": true, "access": "rwm"}]}}
        });
        assert!(is_privileged(&config));
        let found = requests(&config, EnvPolicy::Never);
        assert_eq!(
            selectors(&found),
            [("AMD_VISIBLE_DEVICES".to_string(), vec![Selector::All])]
        );
        config["linux"]["resources"]["devices"]
            .as_array_mut()
            .expect("rules")
            .push(json!({"allow": false, "type": "c", "major": 226, "access": "rwm"}));
        assert!(!is_privileged(&config));
        assert!(requests(&config, EnvPolicy::Never).is_empty());
    }

    /// Issue 12 item 3: the environment was parsed by retaining over every variable seen so far
    /// for each entry (100k entries: 16 s of CPU in the precreate hook). Each entry is now looked
    /// at once, and the last-wins rule works on the requested names only: with 500k variables the
    /// name test runs once per entry and the kept list never grows beyond the wanted names
    /// (before, it held all 500k).
    #[test]
    fn environment_parsing_is_linear_in_the_number_of_entries() {
        let mut env: Vec<String> = (0..500_000).map(|i| format!("VAR{i}=x")).collect();
        env.insert(10, "AMD_VISIBLE_DEVICES=0".to_string());
        env.extend((0..1000).map(|i| format!("AMD_VISIBLE_DEVICES={}", i % 2)));
        env.push("DOCKER_RESOURCE_AMD_GPU=GPU-ab12cd34ef".to_string());
        let config = json!({"process": {"env": env}});
        let calls = std::cell::Cell::new(0);
        let vars = wanted_variables(OciConfig::new(&config), |name| {
            calls.set(calls.get() + 1);
            name == ENV_VAR
        });
        assert_eq!(calls.get(), 501_002, "each entry is looked at once");
        assert_eq!(vars, [("AMD_VISIBLE_DEVICES", "1")]);
        assert!(vars.capacity() <= 4, "kept {} names", vars.capacity());
        let found = requests(&config, EnvPolicy::Always);
        assert_eq!(
            selectors(&found),
            [
                ("AMD_VISIBLE_DEVICES".to_string(), vec![Selector::Index(1)]),
                (
                    "DOCKER_RESOURCE_AMD_GPU".to_string(),
                    vec![Selector::UniqueId(0xab_12cd_34ef)]
                )
            ]
        );
    }

    /// An annotation naming many devices is deduplicated through a set (it compared each entry
    /// with every kept one: quadratic in the number of distinct names).
    #[test]
    fn a_long_annotation_is_deduplicated_in_one_pass() {
        let config = json!({"annotations": {"cdi.k8s.io/many": every_name_twice(100_000)}});
        let found = requests(&config, EnvPolicy::Always);
        let entries = &found.requests[0].entries;
        assert_eq!(entries.len(), 100_000);
        assert_eq!(entries[99_999].text, "amd.com/gpu=n99999");
    }

    #[test]
    fn podman_annotations_are_not_kubernetes() {
        let config = json!({
            "process": {"env": ["AMD_VISIBLE_DEVICES=0"]},
            "annotations": {"io.kubernetes.cri-o.TTY": "false", "io.container.manager": "libpod"}
        });
        assert!(!is_kubernetes(&config));
        let found = requests(&config, EnvPolicy::OutsideKubernetes);
        assert!(!found.is_empty());
    }

    #[test]
    fn never_ignores_env_outside_kubernetes_too() {
        let config = json!({"process": {"env": ["AMD_VISIBLE_DEVICES=0"]}});
        assert!(requests(&config, EnvPolicy::Never).is_empty());
        assert!(!requests(&config, EnvPolicy::OutsideKubernetes).is_empty());
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
