//! A vendor-neutral implementation of the Container Device Interface (CDI).
//!
//! The crate covers what a CDI producer and consumer need: the [`spec`] model through CDI 1.1.0,
//! strict YAML/JSON [`codec`], [`validate`] with the reference library's rules, the minimum
//! [`version`] a spec needs, qualified device [`name`]s, the spec-dir [`registry`], the atomic
//! [`write`](mod@write)r, and applying CDI [`edits`] to an OCI runtime config held as JSON.
//! [`text`] says how input is shown in messages (escaped, names truncated, file values never);
//! [`host`] is how the edits and the [`audit`] look at host paths, injectable for tests.
#![forbid(unsafe_code)]

pub mod audit;
pub mod codec;
pub mod edits;
pub mod host;
pub mod name;
pub mod registry;
pub mod spec;
pub mod text;
pub mod validate;
pub mod version;
pub mod write;

#[cfg(test)]
#[path = "../../tests/files.rs"]
mod files;
#[cfg(test)]
#[path = "../../tests/skip.rs"]
mod skip;
