//! The one rule for tests that need what a machine may lack (root, an engine, python3, a cgroup2
//! hierarchy): under `CI=true` a missing prerequisite fails the test; elsewhere the test prints
//! `SKIPPED <test>: <reason>` and returns. Included with `#[path]` by every test crate and by the
//! `cdi` crate's unit tests, so it depends on nothing but std and nix.

#![allow(dead_code, unreachable_pub)]

/// True when running under CI, where every prerequisite must be present.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Fails under CI, else prints why `test` skips (the caller then returns).
pub fn unavailable(test: &str, reason: &str) {
    assert!(!in_ci(), "{test}: {reason} (CI=true: tests must not skip)");
    eprintln!("SKIPPED {test}: {reason}");
}

/// True when this process is root; otherwise [`unavailable`] with `why` (what root is needed
/// for) and false.
#[must_use]
pub fn as_root(test: &str, why: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    unavailable(test, &format!("needs root {why}"));
    false
}
