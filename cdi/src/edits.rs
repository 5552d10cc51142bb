//! Applying CDI container edits to an OCI runtime config held as JSON.
//!
//! The config is edited as a [`serde_json::Value`] (with `preserve_order`), never round-tripped
//! through a typed OCI model, so fields this crate does not know and the key order survive.
//!
//! The semantics mirror the reference Go library (`pkg/cdi/container-edits.go`): the edits of
//! every requested device are concatenated (a spec's own edits once, before its first device),
//! then applied kind by kind: environment, device nodes, network devices, mounts, hooks, Intel RDT,
//! additional GIDs. A device node's host node is stat'ed (never followed through a symlink) unless
//! the spec gives a type and a non-zero major, or is a FIFO; a node without `uid`/`gid` is owned
//! by the container user when that user is not root. Deliberate differences from the Go library
//! 0.5.2:
//! - a device node whose host node was stat'ed also gets the host node's permission bits as
//!   `fileMode` when the spec leaves it unset (the engines' newer CDI code does the same);
//! - an identical `linux.resources.devices` allow rule is not added twice;
//! - mounts are sorted stably by the depth of their destination (the newer Go releases do this;
//!   0.5.2 additionally orders equal depths by destination);
//! - mounts are never given ID mappings for user namespaces (newer Go releases add them);
//! - an environment entry replaces an entry of the config with the same key (0.5.2, through
//!   runtime-tools, only replaces entries added by CDI itself and appends a second `KEY=` entry).
//!
//! Every entry point is all-or-nothing without copying the config: everything that can fail (host
//! device nodes, the shape of the config's fields, hook names) is checked first, in the order the
//! edits are applied, and only then is the config edited in place. Each edit kind has its own
//! module holding its check beside its apply: `env`, `device_nodes`, `mounts`, `hooks`
//! and `linux_extras` (network devices, Intel RDT, additional GIDs); `json_path` reaches the
//! fields. The device nodes are returned resolved ([`ResolvedNode`]), and [`resolve_nodes`] gives
//! them without editing anything, for a caller that adds them to a running container.

mod device_nodes;
mod env;
mod hooks;
mod json_path;
mod linux_extras;
mod mounts;

use serde_json::Value;

pub use device_nodes::ResolvedNode;
pub(crate) use env::env_key;

use crate::host::{HostFs, LiveHostFs};
use crate::spec::{ContainerEdits, Spec};
use crate::text::escape;

/// Why edits could not be applied. The config is unchanged whenever one of these is returned.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    /// A device name requested from a spec is not in it.
    #[error("spec {kind} has no device named {name:?}")]
    UnknownDevice {
        /// The spec's `vendor/class`.
        kind: String,
        /// The requested device name.
        name: String,
    },
    /// The host node of a device node could not be stat'ed.
    #[error(
        "cannot stat host device {} for CDI device node {}",
        escape(host_path),
        escape(path)
    )]
    StatHostDevice {
        /// The device node's path in the container.
        path: String,
        /// The host path that was stat'ed.
        host_path: String,
        /// The failure.
        #[source]
        source: nix::Error,
    },
    /// The host path is a symlink, a regular file, a directory or a socket.
    #[error(
        "host path {} of CDI device node {} is not a device node (symlinks are not followed: \
         point hostPath at the node itself)",
        escape(host_path),
        escape(path)
    )]
    NotADeviceNode {
        /// The device node's path in the container.
        path: String,
        /// The host path.
        host_path: String,
    },
    /// The spec declares a node type the host node does not have.
    #[error(
        "CDI device node {} declares type {declared:?} but host node {} has type {found:?}",
        escape(path),
        escape(host_path)
    )]
    TypeMismatch {
        /// The device node's path in the container.
        path: String,
        /// The host path.
        host_path: String,
        /// The type the spec declares.
        declared: String,
        /// The type of the host node.
        found: String,
    },
    /// A hook names an OCI stage that does not exist.
    #[error(
        "unknown hook name {name:?} (expected one of prestart, createRuntime, createContainer, \
         startContainer, poststart, poststop)"
    )]
    UnknownHook {
        /// The hook name from the spec.
        name: String,
    },
    /// The OCI config has a field of the wrong JSON type where an edit must go.
    #[error("cannot edit OCI config: {field} is not {expected}")]
    ConfigShape {
        /// The dotted path of the field, e.g. `linux.devices`.
        field: String,
        /// What it should be, e.g. `an array`.
        expected: &'static str,
    },
}

/// Applies one set of edits to `config`.
pub fn apply(config: &mut Value, edits: &ContainerEdits) -> Result<Vec<ResolvedNode>, EditError> {
    apply_many(config, &[edits])
}

/// Applies the spec-level edits of `spec` once, then the edits of each named device, in order.
///
/// Fails without touching `config` when a name is not a device of `spec`.
pub fn apply_spec_devices(
    config: &mut Value,
    spec: &Spec,
    names: &[&str],
) -> Result<Vec<ResolvedNode>, EditError> {
    let mut all = vec![&spec.container_edits];
    for name in names {
        let device = spec
            .devices
            .iter()
            .find(|d| d.name == *name)
            .ok_or_else(|| EditError::UnknownDevice {
                kind: spec.kind.clone(),
                name: (*name).to_string(),
            })?;
        all.push(&device.container_edits);
    }
    apply_many(config, &all)
}

/// Applies several sets of edits as one, looking at this machine's device nodes: see
/// [`apply_many_on`].
pub fn apply_many(
    config: &mut Value,
    edits: &[&ContainerEdits],
) -> Result<Vec<ResolvedNode>, EditError> {
    apply_many_on(config, edits, &LiveHostFs)
}

/// Applies several sets of edits as one: they are concatenated in order (the last Intel RDT
/// setting wins), then applied kind by kind like the reference library does. Returns the device
/// nodes as written to `linux.devices`, in the order of the edits.
///
/// Everything that can fail (host device nodes, the shape of the config's fields, hook names) is
/// checked before the first change, in the order the edits are applied, so a failure leaves
/// `config` as it was without a copy of it: a config is 10-30 kB, and copying it was most of the
/// work of injecting a device.
pub fn apply_many_on(
    config: &mut Value,
    edits: &[&ContainerEdits],
    host: &impl HostFs,
) -> Result<Vec<ResolvedNode>, EditError> {
    let resolved = resolve_nodes(config, edits, host)?;
    apply_resolved(config, edits, &resolved)?;
    Ok(resolved)
}

/// The device nodes [`apply_many_on`] would write, with the error it would return, changing
/// nothing: resolves the device nodes of `edits` and checks every field they will change, in
/// the order they are applied.
pub fn resolve_nodes(
    config: &Value,
    edits: &[&ContainerEdits],
    host: &impl HostFs,
) -> Result<Vec<ResolvedNode>, EditError> {
    env::check(config, edits)?;
    let resolved = device_nodes::check(config, edits, host)?;
    linux_extras::check_net_devices(config, edits)?;
    mounts::check(config, edits)?;
    hooks::check(config, edits)?;
    linux_extras::check_intel_rdt(config, edits)?;
    linux_extras::check_additional_gids(config, edits)?;
    Ok(resolved)
}

/// Applies `edits` whose device nodes [`resolve_nodes`] resolved against this same `config`: for
/// a caller that needs the nodes before deciding to edit. Nothing can fail then but a config
/// that changed in between; the errors of the field helpers are passed on rather than assumed
/// away.
pub fn apply_resolved(
    config: &mut Value,
    edits: &[&ContainerEdits],
    resolved: &[ResolvedNode],
) -> Result<(), EditError> {
    env::apply(config, edits)?;
    for node in resolved {
        device_nodes::apply(config, node)?;
    }
    linux_extras::apply_net_devices(config, edits)?;
    mounts::apply(config, edits)?;
    hooks::apply(config, edits)?;
    linux_extras::apply_intel_rdt(config, edits)?;
    linux_extras::apply_additional_gids(config, edits)?;
    Ok(())
}

#[cfg(test)]
mod tests;
