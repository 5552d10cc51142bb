//! The `prestart` and `createRuntime` hook stages: for runtimes that read `config.json` once
//! (runc, youki) and engines whose config can no longer change (hooks.d prestart hooks, raw
//! bundles). The requests are resolved exactly like the precreate stage ([`super::select`]), the
//! device nodes of their CDI edits are resolved against the bundle's config (which is not
//! edited), and those injection would add are created in the live container by
//! [`amdgpu_cdi_oci::nodes`] (bind-mounted from the host in rootless containers).
//!
//! Only device nodes (and their cgroup rules) can be added this late: the process environment,
//! mounts and hooks of the CDI edits are fixed once the runtime has created the container, so
//! they are left out and logged (found by applying the edits to a copy of the config, made only
//! when the edits have such parts).

use std::io::Read;

use amdgpu_cdi_oci::bundle::{self, BundleError};
use amdgpu_cdi_oci::log::DetailLog;
use amdgpu_cdi_oci::nodes::{self, NodeError, NodeOptions};
use amdgpu_cdi_oci::oci_config::OciConfig;
use amdgpu_cdi_oci::state::{State, StateError};
use amdgpu_cdi_oci::syscalls::Syscalls;
use cdi::edits::{apply_resolved, resolve_nodes};
use cdi::host::LiveHostFs;
use cdi::spec::ContainerEdits;
use serde_json::Value;

use super::{Decision, InjectError, Outcome, parse_if_requesting, select};
use crate::request;
use crate::settings::Settings;

/// Why the prestart hook failed.
#[derive(Debug, thiserror::Error)]
pub enum PrestartError {
    /// The state on stdin could not be read.
    #[error(transparent)]
    State(#[from] StateError),
    /// The bundle's config could not be read.
    #[error(transparent)]
    Bundle(#[from] BundleError),
    /// The requests could not be resolved or their CDI edits applied.
    #[error(transparent)]
    Inject(#[from] InjectError),
    /// The nodes could not be added to the container.
    #[error(transparent)]
    Nodes(#[from] NodeError),
}

/// Reads the container state from `input`, resolves the requests of its bundle's config and adds
/// the requested device nodes to the container.
pub fn run<S: Syscalls>(
    input: impl Read,
    sys: &S,
    options: &NodeOptions,
    settings: &Settings,
    log: &DetailLog,
) -> Result<Outcome, PrestartError> {
    let state = State::read(input, "stdin")?;
    let (path, bytes) = bundle::read_bytes(&state.bundle)?;
    let Some(config) = parse_if_requesting(&bytes, &path)? else {
        return Ok(Outcome::Unchanged(request::NOTHING_REQUESTED));
    };
    let selected = match select(&config, settings, log)? {
        Decision::Nothing(reason) => return Ok(Outcome::Unchanged(reason)),
        Decision::Devices(selected) => selected,
    };
    let edits: Vec<&ContainerEdits> = selected.edits.iter().collect();
    let edit_error = |source| InjectError::Edit {
        names: selected.names.clone(),
        source,
    };
    let resolved = resolve_nodes(&config, &edits, &LiveHostFs).map_err(edit_error)?;
    if edits.iter().any(|e| changes_more_than_nodes(e)) {
        let mut injected = config.clone();
        apply_resolved(&mut injected, &edits, &resolved).map_err(edit_error)?;
        warn_about_late_edits(&config, &injected, log);
    }
    let devices = nodes::devices_to_add(&config, &resolved)?;
    let report = nodes::inject(sys, options, &state, &config, &devices)?;
    for (path, result) in &report.nodes {
        log.info(&format!("{}: {result:?}", path.display()));
    }
    if let Some(file) = &report.cgroup.v1_allow_file {
        log.info(&format!("allowed in {}", file.display()));
    }
    if let Some(dir) = &report.cgroup.v2_replaced {
        log.info(&format!("replaced the device program of {}", dir.display()));
    }
    if report.bind_mounted {
        log.info("rootless: bind-mounted the host nodes, device cgroup unchanged");
    }
    Ok(Outcome::Injected(selected.names))
}

/// Whether `edits` has edits [`warn_about_late_edits`] looks at; without them the config needs
/// no copy to find out.
fn changes_more_than_nodes(edits: &ContainerEdits) -> bool {
    !edits.env.is_empty()
        || !edits.mounts.is_empty()
        || !edits.hooks.is_empty()
        || !edits.additional_gids.is_empty()
}

/// Logs the parts of the CDI edits a prestart hook cannot apply.
fn warn_about_late_edits(before: &Value, after: &Value, log: &DetailLog) {
    let (before, after) = (OciConfig::new(before), OciConfig::new(after));
    for (what, changed) in [
        ("environment", before.env().ne(after.env())),
        ("mounts", before.mounts() != after.mounts()),
        ("hooks", before.hooks() != after.hooks()),
        (
            "additional groups",
            before.additional_gids().ne(after.additional_gids()),
        ),
    ] {
        if changed {
            log.warn(&format!(
                "the CDI edits change the container's {what}: a prestart hook cannot apply that (use the precreate hook or the runtime wrapper)"
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use amdgpu_cdi_oci::cgroup::CgroupRoots;
    use amdgpu_cdi_oci::nodes::Privilege;
    use amdgpu_cdi_oci::syscalls::Fake;

    /// Runs the hook on `state` as the host's root with default settings, against a recording
    /// fake it returns for the operations.
    fn run_on(state: &[u8]) -> (Result<Outcome, PrestartError>, Fake) {
        let options = NodeOptions {
            cgroup_roots: CgroupRoots::default(),
            privilege: Privilege::HostRoot,
        };
        let fake = Fake::new();
        let log = DetailLog::new(None, "hook prestart");
        let result = run(state, &fake, &options, &Settings::default(), &log);
        (result, fake)
    }

    #[test]
    fn nothing_requested_changes_nothing() {
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            tmp.path().join("config.json"),
            r#"{"ociVersion":"1.0.2","process":{"env":["PATH=/bin"]},"root":{"path":"rootfs"}}"#,
        )
        .expect("config");
        let state = format!(
            r#"{{"ociVersion":"1.0.2","id":"c","status":"created","pid":1,"bundle":"{}"}}"#,
            tmp.path().display()
        );
        let (result, fake) = run_on(state.as_bytes());
        let outcome = result.expect("run");
        assert_eq!(outcome, Outcome::Unchanged("no GPU requested"));
        assert!(fake.ops().is_empty());
    }

    #[test]
    fn unreadable_state_is_an_error() {
        let err = run_on(b"not json").0.expect_err("bad state");
        assert!(
            err.to_string()
                .contains("cannot parse the container state from stdin"),
            "{err}"
        );
    }

    #[test]
    fn missing_bundle_config_is_an_error() {
        let state = r#"{"ociVersion":"1.0.2","id":"c","status":"created","pid":1,"bundle":"/nonexistent/bundle"}"#;
        let err = run_on(state.as_bytes()).0.expect_err("no config");
        assert!(
            err.to_string().contains("/nonexistent/bundle/config.json"),
            "{err}"
        );
    }
}
