//! The hooks and wrapper section: the configuration file the hooks and the wrapper read, our
//! hooks.d files and whether the binaries they run exist.

use std::fs;
use std::path::Path;

use super::{CheckId, Finding, HostRoots, Section, fail, info, ok};
use crate::engines::dir_files;
use crate::paths::HOOKS_DIRS;

/// The hooks and wrapper section: the configuration file they read, our hooks.d files and whether
/// their binaries exist.
pub(super) fn section(roots: &HostRoots) -> Section {
    let mut findings = vec![settings_finding(roots)];
    for dir in HOOKS_DIRS {
        for file in dir_files(&roots.host(dir), "json") {
            let shown = roots.show(&file);
            let Ok(text) = fs::read_to_string(&file) else {
                continue;
            };
            let json: serde_json::Value = match serde_json::from_str(&text) {
                Ok(json) => json,
                Err(e) => {
                    if text.contains("amdgpu-cdi") {
                        findings.push(fail(
                            CheckId::HOOKS_FILE,
                            format!("cannot parse {shown}: {e}"),
                            "reinstall amdgpu-cdi; podman and CRI-O refuse every container while a hooks.d file is broken",
                        ));
                    }
                    continue;
                }
            };
            let Some(path) = json.pointer("/hook/path").and_then(|v| v.as_str()) else {
                continue;
            };
            if !path.contains("amdgpu-cdi") {
                continue;
            }
            let stages: Vec<&str> = json
                .get("stages")
                .and_then(|v| v.as_array())
                .map(|a| a.iter().filter_map(|s| s.as_str()).collect())
                .unwrap_or_default();
            if roots.host(path).is_file() {
                findings.push(ok(
                    CheckId::HOOKS_FILE,
                    format!("{shown}: {} hook {path}", stages.join(", ")),
                ));
            } else {
                findings.push(fail(
                    CheckId::HOOKS_FILE,
                    format!("{shown} runs {path}, which does not exist"),
                    format!(
                        "reinstall amdgpu-cdi or delete {shown}; podman fails every container while a hook binary is missing"
                    ),
                ));
            }
        }
    }
    if !findings.iter().any(|f| f.check == CheckId::HOOKS_FILE) {
        findings.push(info(
            CheckId::HOOKS_FILE,
            "no amdgpu-cdi OCI hook is installed (only needed for AMD_VISIBLE_DEVICES with podman or CRI-O)",
        ));
    }
    Section::new("hooks and runtime wrapper", findings)
}

/// The configuration file the hooks and the wrapper read: valid, and its runtime present.
fn settings_finding(roots: &HostRoots) -> Finding {
    let shown = crate::settings::DEFAULT_PATH;
    let path = roots.host(shown);
    let Ok(text) = fs::read_to_string(&path) else {
        return info(
            CheckId::HOOKS_CONFIG,
            format!("{shown} does not exist: the hooks and the runtime wrapper use their defaults"),
        );
    };
    match crate::settings::Settings::from_toml(&text, Path::new(shown)) {
        Err(err) => fail(
            CheckId::HOOKS_CONFIG,
            err.to_string(),
            format!("fix {shown}: the hooks and the runtime wrapper refuse to run with it"),
        ),
        Ok(settings) => match settings.runtime {
            Some(runtime) if !roots.host(&runtime.to_string_lossy()).is_file() => fail(
                CheckId::HOOKS_CONFIG,
                format!(
                    "{shown} sets runtime {}, which does not exist",
                    runtime.display()
                ),
                "install that runtime or point `runtime` at an installed one (runc, crun, youki)",
            ),
            _ => ok(CheckId::HOOKS_CONFIG, format!("{shown} is valid")),
        },
    }
}
