//! The id of every doctor check, each spelled once here: the finding constructors, [`NEEDS`] and
//! the tests name checks only through these constants, so a misspelt id does not compile.
//!
//! [`NEEDS`]: super::NEEDS

use std::fmt;

use serde::{Serialize, Serializer};

use crate::engines::Engine;

/// The stable id of a check, e.g. `driver.kfd`, or `docker.spec-visible` for a check in an
/// engine's section. Shown as that text in `--format json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckId {
    /// The engine whose section the check is in; none for the checks of the host.
    engine: Option<Engine>,
    /// The whole id, or for an engine's check the part after `<engine>.`.
    name: &'static str,
}

/// A check made in an engine's section: the part of its id after `<engine>.`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct EngineCheck(&'static str);

impl CheckId {
    // The driver section.
    pub(super) const DRIVER_PCI: CheckId = CheckId::host("driver.pci");
    pub(super) const DRIVER_MODULE: CheckId = CheckId::host("driver.module");
    pub(super) const DRIVER_KFD: CheckId = CheckId::host("driver.kfd");
    pub(super) const DRIVER_TOPOLOGY: CheckId = CheckId::host("driver.topology");
    pub(super) const DRIVER_GPUS: CheckId = CheckId::host("driver.gpus");

    // The device node section.
    pub(super) const DEVICES_KFD: CheckId = CheckId::host("devices.kfd");
    pub(super) const DEVICES_RENDER: CheckId = CheckId::host("devices.render");
    pub(super) const DEVICES_USER: CheckId = CheckId::host("devices.user");

    // The WSL2 section, in place of the driver and device node sections.
    pub(super) const WSL_KERNEL: CheckId = CheckId::host("wsl.kernel");
    pub(super) const WSL_ADAPTERS: CheckId = CheckId::host("wsl.adapters");
    pub(super) const WSL_DXG: CheckId = CheckId::host("wsl.dxg");
    pub(super) const WSL_DXCORE: CheckId = CheckId::host("wsl.dxcore");
    pub(super) const WSL_IMAGE: CheckId = CheckId::host("wsl.image");

    // The spec section.
    pub(super) const SPECS_PRESENT: CheckId = CheckId::host("specs.present");
    pub(super) const SPECS_VALID: CheckId = CheckId::host("specs.valid");
    pub(super) const SPECS_SAFE: CheckId = CheckId::host("specs.safe");
    pub(super) const SPECS_CONFLICT: CheckId = CheckId::host("specs.conflict");
    pub(super) const SPECS_SHADOWED: CheckId = CheckId::host("specs.shadowed");
    pub(super) const SPECS_CURRENT: CheckId = CheckId::host("specs.current");

    // The container access section.
    pub(super) const ACCESS_SELINUX: CheckId = CheckId::host("access.selinux");
    pub(super) const ACCESS_SPEC_GROUPS: CheckId = CheckId::host("access.spec-groups");
    pub(super) const ACCESS_DOCKER_FILE_MODE: CheckId = CheckId::host("access.docker-file-mode");
    pub(super) const ACCESS_ROOTLESS_GROUP: CheckId = CheckId::host("access.rootless-group");

    // The hooks and runtime wrapper section.
    pub(super) const HOOKS_FILE: CheckId = CheckId::host("hooks.file");
    pub(super) const HOOKS_CONFIG: CheckId = CheckId::host("hooks.config");

    /// The check of the host whose whole id is `id`.
    const fn host(id: &'static str) -> CheckId {
        CheckId {
            engine: None,
            name: id,
        }
    }

    /// Which engine check this is, when it is one.
    pub(super) fn engine_check(self) -> Option<EngineCheck> {
        self.engine.map(|_| EngineCheck(self.name))
    }
}

impl EngineCheck {
    pub(super) const INSTALLED: EngineCheck = EngineCheck("installed");
    pub(super) const VERSION: EngineCheck = EngineCheck("version");
    pub(super) const CONFIG: EngineCheck = EngineCheck("config");
    pub(super) const CDI: EngineCheck = EngineCheck("cdi");
    pub(super) const SPEC_DIRS: EngineCheck = EngineCheck("spec-dirs");
    pub(super) const NEWEST_SPEC_VERSION: EngineCheck = EngineCheck("newest-spec-version");
    pub(super) const SPEC_VISIBLE: EngineCheck = EngineCheck("spec-visible");
    pub(super) const SPEC_VERSION: EngineCheck = EngineCheck("spec-version");
    pub(super) const WRAPPER: EngineCheck = EngineCheck("wrapper");
    /// Docker only: what `docker run --gpus` does.
    pub(super) const GPUS: EngineCheck = EngineCheck("gpus");
    /// CRI-O only: the OCI hooks dirs it reads.
    pub(super) const HOOKS_DIRS: EngineCheck = EngineCheck("hooks-dirs");

    /// This check in `engine`'s section: `<engine>.<suffix>`.
    pub(super) fn of(self, engine: Engine) -> CheckId {
        CheckId {
            engine: Some(engine),
            name: self.0,
        }
    }
}

impl fmt::Display for CheckId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.engine {
            Some(engine) => write!(f, "{engine}.{}", self.name),
            None => f.write_str(self.name),
        }
    }
}

impl Serialize for CheckId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}
