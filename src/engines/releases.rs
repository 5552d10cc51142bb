//! What each engine release accepts, in one place: the first release with CDI support, the first
//! release whose CDI library accepts each `cdiVersion`, CDI on by default, and the Docker releases
//! whose behaviour `doctor` explains (docs/engines.md records what the engine roots' tests saw).

use cdi::version::{
    KNOWN_VERSIONS, V0_3_0, V0_4_0, V0_5_0, V0_6_0, V0_7_0, V0_8_0, V1_0_0, V1_1_0, Version,
};

use super::Engine;

/// An engine release number `major.minor.patch` (not a `cdiVersion`, which is
/// [`cdi::version::Version`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct EngineVersion {
    /// Major release.
    pub major: u32,
    /// Minor release.
    pub minor: u32,
    /// Patch release.
    pub patch: u32,
}

impl EngineVersion {
    /// A version from its parts.
    pub const fn new(major: u32, minor: u32, patch: u32) -> EngineVersion {
        EngineVersion {
            major,
            minor,
            patch,
        }
    }

    /// Finds the first `X.Y[.Z]` token in `--version` output such as
    /// `Docker version 20.10.24+dfsg1, build 297e128` or `containerd github.com/... v1.7.2 ...`.
    pub fn find_in(output: &str) -> Option<EngineVersion> {
        output.split_whitespace().find_map(|token| {
            let token = token.strip_prefix('v').unwrap_or(token);
            let mut parts = token.split('.');
            let number = |s: Option<&str>| -> Option<u32> {
                let s = s?;
                let digits: String = s.chars().take_while(char::is_ascii_digit).collect();
                digits.parse().ok()
            };
            let major = token
                .split('.')
                .next()
                .filter(|s| s.chars().all(|c| c.is_ascii_digit()) && !s.is_empty())
                .and_then(|s| s.parse().ok())?;
            parts.next();
            let minor = number(parts.next())?;
            let patch = number(parts.next()).unwrap_or(0);
            Some(EngineVersion::new(major, minor, patch))
        })
    }
}

impl std::fmt::Display for EngineVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// dockerd skips a UTF-8 byte order mark at the start of daemon.json from this release on and
/// refuses the file before it (moby/moby#44770).
pub const DOCKER_SKIPS_BOM: EngineVersion = EngineVersion::new(23, 0, 0);

/// The first Docker with an AMD `--gpus` driver (it sets `AMD_VISIBLE_DEVICES`).
pub const DOCKER_AMD_GPUS: EngineVersion = EngineVersion::new(28, 3, 0);

/// The first Docker whose `--gpus` driver maps to `amd.com/gpu` CDI devices.
pub const DOCKER_AMD_GPUS_CDI: EngineVersion = EngineVersion::new(29, 3, 0);

/// The first containerd that reads config version 3 and assumes it when the file has no
/// `version` key (earlier releases assume 2).
pub const CONTAINERD_CONFIG_V3: EngineVersion = EngineVersion::new(2, 0, 0);

impl Engine {
    /// The first release with CDI support.
    pub fn first_cdi(self) -> EngineVersion {
        match self {
            Engine::Docker => EngineVersion::new(25, 0, 0),
            Engine::Containerd => EngineVersion::new(1, 7, 0),
            Engine::Podman => EngineVersion::new(4, 1, 0),
            Engine::Crio => EngineVersion::new(1, 24, 0),
        }
    }

    /// Whether release `version` has CDI on without a switch in its config (Docker 28.2,
    /// containerd 2.0; podman and CRI-O have no switch).
    pub fn cdi_on_by_default(self, version: EngineVersion) -> bool {
        match self {
            Engine::Docker => version >= EngineVersion::new(28, 2, 0),
            Engine::Containerd => version >= CONTAINERD_CONFIG_V3,
            Engine::Podman | Engine::Crio => true,
        }
    }

    /// The first release whose CDI library accepts `spec`; `None` when no release does (or the
    /// version is unknown).
    pub fn first_accepting(self, spec: Version) -> Option<EngineVersion> {
        /// Accepted from release `major.minor.patch` on.
        const fn v(major: u32, minor: u32, patch: u32) -> Option<EngineVersion> {
            Some(EngineVersion::new(major, minor, patch))
        }
        /// The first podman, CRI-O, containerd and Docker (in that order) accepting each version
        /// after 0.4.0, which every release with CDI accepts. 0.8.0 and 1.0.0 are library-only
        /// versions: the releases seen accepting them in the engine roots' tests
        /// (docs/engines.md); earlier releases may accept them too. CRI-O: from the 1.1.0 row.
        const FIRST: &[(Version, [Option<EngineVersion>; 4])] = &[
            (V0_5_0, [v(4, 3, 0), v(1, 25, 0), v(1, 7, 0), v(25, 0, 0)]),
            (V0_6_0, [v(4, 7, 0), v(1, 28, 0), v(1, 7, 12), v(25, 0, 0)]),
            (V0_7_0, [v(5, 1, 0), v(1, 30, 0), v(1, 7, 16), v(26, 1, 0)]),
            (V0_8_0, [v(5, 4, 0), v(1, 35, 0), v(1, 7, 24), v(28, 5, 0)]),
            (V1_0_0, [v(5, 8, 0), v(1, 35, 0), v(2, 1, 9), v(28, 5, 0)]),
            (V1_1_0, [None, v(1, 35, 0), v(2, 2, 1), v(29, 2, 0)]),
        ];
        if spec == V0_3_0 || spec == V0_4_0 {
            return Some(self.first_cdi());
        }
        let column = match self {
            Engine::Podman => 0,
            Engine::Crio => 1,
            Engine::Containerd => 2,
            Engine::Docker => 3,
        };
        FIRST
            .iter()
            .find(|(known, _)| *known == spec)
            .and_then(|(_, releases)| releases[column])
    }

    /// Whether release `version` accepts specs of version `spec`.
    pub fn accepts(self, version: EngineVersion, spec: Version) -> bool {
        self.first_accepting(spec)
            .is_some_and(|first| version >= first)
    }

    /// The newest spec version release `version` accepts; `None` when it accepts none.
    pub fn newest_accepted(self, version: EngineVersion) -> Option<Version> {
        KNOWN_VERSIONS
            .iter()
            .copied()
            .filter(|spec| self.accepts(version, *spec))
            .max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_found_in_real_version_lines() {
        let cases = [
            (
                "Docker version 20.10.24+dfsg1, build 297e128",
                EngineVersion::new(20, 10, 24),
            ),
            (
                "containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+b1",
                EngineVersion::new(1, 6, 20),
            ),
            (
                "containerd containerd.io v2.1.3 abc",
                EngineVersion::new(2, 1, 3),
            ),
            ("podman version 4.3.1", EngineVersion::new(4, 3, 1)),
            (
                "crio version 1.28.0\nVersion: 1.28.0",
                EngineVersion::new(1, 28, 0),
            ),
            ("Docker version 28.2", EngineVersion::new(28, 2, 0)),
        ];
        for (line, want) in cases {
            assert_eq!(EngineVersion::find_in(line), Some(want), "{line}");
        }
        assert_eq!(EngineVersion::find_in("no version here"), None);
    }

    #[test]
    fn acceptance_follows_the_reference_table() {
        let v = |s: &str| s.parse::<Version>().expect("valid test version");
        let e = EngineVersion::new;
        let cases = [
            (Engine::Podman, "0.5.0", Some(e(4, 3, 0))),
            (Engine::Podman, "0.6.0", Some(e(4, 7, 0))),
            (Engine::Podman, "1.1.0", None),
            (Engine::Containerd, "0.7.0", Some(e(1, 7, 16))),
            (Engine::Docker, "1.1.0", Some(e(29, 2, 0))),
        ];
        for (engine, spec, first) in cases {
            assert_eq!(engine.first_accepting(v(spec)), first, "{engine:?} {spec}");
        }
    }

    #[test]
    fn the_newest_accepted_version_is_what_the_engine_roots_showed() {
        let v = |s: &str| s.parse::<Version>().expect("valid test version");
        let e = EngineVersion::new;
        let cases = [
            (Engine::Docker, e(20, 10, 24), None),
            (Engine::Docker, e(26, 1, 5), Some(v("0.7.0"))),
            (Engine::Docker, e(28, 5, 2), Some(v("1.0.0"))),
            (Engine::Containerd, e(1, 6, 20), None),
            (Engine::Containerd, e(1, 7, 24), Some(v("0.8.0"))),
            (Engine::Containerd, e(2, 1, 9), Some(v("1.0.0"))),
            (Engine::Podman, e(4, 3, 1), Some(v("0.5.0"))),
            (Engine::Podman, e(5, 4, 2), Some(v("0.8.0"))),
            (Engine::Podman, e(5, 8, 6), Some(v("1.0.0"))),
        ];
        for (engine, version, newest) in cases {
            assert_eq!(
                engine.newest_accepted(version),
                newest,
                "{engine:?} {version}"
            );
        }
    }
}
