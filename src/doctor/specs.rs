//! Spec checks: which files in the CDI spec dirs define `amd.com/gpu` devices, whether each is
//! valid, and whether two files define the same device (engines then drop both, or one silently
//! wins).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cdi::host::{HostFs, HostNode, LiveHostFs};
use cdi::version::Version;
use nix::errno::Errno;

use crate::check::{self, Currentness};
use crate::discover;
use crate::generate::record::{self, RecordError};
use crate::generate::{self, GenerateOptions};

use super::{CheckId, HostRoots, Section, fail, info, ok, warn};

use crate::naming::KIND;

/// One file defining `amd.com/gpu` devices.
#[derive(Debug)]
pub(super) struct GpuSpecFile {
    /// Real path of the file.
    pub(super) path: PathBuf,
    /// Index of its dir in the spec dirs (higher wins).
    dir: usize,
    /// The declared version, when it parses.
    pub(super) version: Option<Version>,
    /// Device names, in file order.
    names: Vec<String>,
    /// Why the file is not usable: a parse error or validation problems.
    pub(super) invalid: Option<String>,
    /// What it gives containers that it should not ([`cdi::audit`]), for a valid file.
    dangers: Vec<cdi::audit::Warning>,
    /// The generate options recorded on its first line ([`record`]), if any.
    pub(super) recorded: Option<Result<GenerateOptions, RecordError>>,
    /// Whether it gives containers supplementary groups (`additionalGids`, at spec or device
    /// level).
    pub(super) groups: bool,
    /// The device nodes that set a `fileMode`: (container path, mode), each path once.
    pub(super) file_modes: Vec<(String, u32)>,
}

/// Everything found in the spec dirs.
#[derive(Debug, Default)]
pub(super) struct SpecScan {
    /// The `amd.com/gpu` spec files, by dir priority then name.
    pub(super) files: Vec<GpuSpecFile>,
}

/// Reads every `*.json` and `*.yaml` directly inside each spec dir, as engines do.
pub(super) fn scan(roots: &HostRoots) -> SpecScan {
    let mut scan = SpecScan::default();
    for (index, dir) in roots.spec_dirs.iter().enumerate() {
        for path in spec_files(dir) {
            // The spec-dir rule of `cdi::registry::read_entry`: only regular files and links to
            // them made by root, the reader or the target's owner; a refused entry is skipped
            // here, and `validate` names it.
            let Ok(bytes) = cdi::registry::read_entry(&path) else {
                continue;
            };
            match cdi::codec::parse(&bytes, cdi::codec::Format::from_path(&path)) {
                Ok(spec) if spec.kind == KIND => {
                    let problems = cdi::validate::validate(&spec);
                    let dangers = cdi::audit::warnings_on(&spec, &RootedHost(roots));
                    let invalid = match problems.as_slice() {
                        [] => None,
                        [one] => Some(one.to_string()),
                        [first, rest @ ..] => {
                            Some(format!("{first} (and {} more problems)", rest.len()))
                        }
                    };
                    let edits = spec.all_edits();
                    let mut groups = false;
                    let mut file_modes: Vec<(String, u32)> = Vec::new();
                    for edit in edits {
                        groups |= !edit.additional_gids.is_empty();
                        for node in &edit.device_nodes {
                            if let Some(mode) = node.file_mode
                                && !file_modes.iter().any(|(p, _)| *p == node.path)
                            {
                                file_modes.push((node.path.clone(), mode));
                            }
                        }
                    }
                    scan.files.push(GpuSpecFile {
                        path,
                        dir: index,
                        groups,
                        file_modes,
                        version: spec.cdi_version.parse().ok(),
                        names: spec.devices.into_iter().map(|d| d.name).collect(),
                        invalid,
                        dangers,
                        // The spec describes the host's own /dev, whatever root doctor inspects
                        // it through.
                        recorded: record::read(&bytes, Path::new("/")),
                    });
                }
                Ok(_) => {}
                Err(err) => {
                    // Only files that look like ours are our business; a broken file of another
                    // vendor is skipped by the engines without affecting our devices.
                    if mentions(&bytes, KIND) {
                        scan.files.push(GpuSpecFile {
                            path,
                            dir: index,
                            version: None,
                            names: Vec::new(),
                            invalid: Some(err.to_string()),
                            dangers: Vec::new(),
                            recorded: None,
                            groups: false,
                            file_modes: Vec::new(),
                        });
                    }
                }
            }
        }
    }
    scan
}

/// The spec files of `dir` as engines list them ([`cdi::registry::spec_files`]); none when it
/// cannot be listed.
pub(super) fn spec_files(dir: &Path) -> Vec<PathBuf> {
    cdi::registry::spec_files(dir).unwrap_or_default()
}

/// Whether the file `bytes` hold `text` anywhere: whose a spec is that does not parse.
pub(super) fn mentions(bytes: &[u8], text: &str) -> bool {
    bytes.windows(text.len()).any(|w| w == text.as_bytes())
}

/// The host doctor inspects, for [`cdi::audit`]: a spec's `/dev/...` paths are looked up under
/// the dev root, other host paths under the root.
struct RootedHost<'a>(&'a HostRoots);

impl RootedHost<'_> {
    /// Where a spec's host `path` is on the inspected host.
    fn locate(&self, path: &Path) -> Result<PathBuf, Errno> {
        let relative = path.strip_prefix("/").map_err(|_| Errno::ENOENT)?;
        let base = if relative.starts_with("dev") {
            &self.0.dev_root
        } else {
            &self.0.root
        };
        Ok(base.join(relative))
    }
}

impl HostFs for RootedHost<'_> {
    fn lstat(&self, path: &Path) -> Result<HostNode, Errno> {
        LiveHostFs.lstat(&self.locate(path)?)
    }

    fn stat(&self, path: &Path) -> Result<HostNode, Errno> {
        LiveHostFs.stat(&self.locate(path)?)
    }
}

impl SpecScan {
    /// The declared versions of the valid files, for the engines' version checks.
    pub(super) fn versions(&self) -> Vec<(Version, PathBuf)> {
        self.files
            .iter()
            .filter(|f| f.invalid.is_none())
            .filter_map(|f| Some((f.version?, f.path.clone())))
            .collect()
    }

    /// The specs section.
    pub(super) fn section(
        &self,
        roots: &HostRoots,
        generate: &Result<GenerateOptions, String>,
        strict: bool,
    ) -> Section {
        let mut findings = Vec::new();
        if self.files.is_empty() {
            let dirs: Vec<String> = roots.spec_dirs.iter().map(|d| roots.show(d)).collect();
            findings.push(fail(
                CheckId::SPECS_PRESENT,
                format!("no spec defines {KIND} devices in {}", dirs.join(", ")),
                roots.write_spec_fix(roots.spec_dirs.last().map_or(&roots.root, |d| d)),
            ));
        }
        for file in &self.files {
            let shown = roots.show(&file.path);
            match &file.invalid {
                Some(why) => findings.push(fail(
                    CheckId::SPECS_VALID,
                    format!("{shown} is invalid, engines skip it: {why}"),
                    format!(
                        "regenerate it with `amdgpu-cdi generate --output {shown}` or delete it"
                    ),
                )),
                None => findings.push(ok(
                    CheckId::SPECS_VALID,
                    format!(
                        "{shown} is valid: cdiVersion {}, devices {}",
                        file.version
                            .map_or_else(|| "?".to_string(), |v| v.to_string()),
                        summarize(&file.names)
                    ),
                )),
            }
            for danger in &file.dangers {
                let message = crate::error_text::plain_line(&format!("{shown}: {danger}"));
                let remedy = "remove this edit unless every container given these GPUs may have \
                              that host access (`amdgpu-cdi generate` never writes it)";
                findings.push(if strict {
                    fail(CheckId::SPECS_SAFE, message, remedy)
                } else {
                    warn(CheckId::SPECS_SAFE, message, remedy)
                });
            }
        }
        findings.extend(self.conflicts(roots));
        findings.extend(self.currentness(roots, generate));
        Section::new("cdi specs", findings)
    }

    fn conflicts(&self, roots: &HostRoots) -> Vec<super::Finding> {
        // name -> files defining it, in dir priority order.
        let mut owners: BTreeMap<&str, Vec<&GpuSpecFile>> = BTreeMap::new();
        for file in self.files.iter().filter(|f| f.invalid.is_none()) {
            for name in &file.names {
                let entry = owners.entry(name.as_str()).or_default();
                if !entry.iter().any(|f| std::ptr::eq(*f, file)) {
                    entry.push(file);
                }
            }
        }
        // Group names by the set of files defining them so one pair of files gives one finding.
        let mut by_files: BTreeMap<Vec<PathBuf>, Vec<&str>> = BTreeMap::new();
        for (name, files) in &owners {
            if files.len() > 1 {
                by_files
                    .entry(files.iter().map(|f| f.path.clone()).collect())
                    .or_default()
                    .push(name);
            }
        }
        let mut findings = Vec::new();
        for (paths, names) in by_files {
            let files: Vec<&GpuSpecFile> = paths
                .iter()
                .filter_map(|p| self.files.iter().find(|f| &f.path == p))
                .collect();
            let shown: Vec<String> = paths.iter().map(|p| roots.show(p)).collect();
            let names: Vec<String> = names.iter().map(|n| format!("{KIND}={n}")).collect();
            let same_dir = files.windows(2).any(|w| w[0].dir == w[1].dir);
            if same_dir {
                findings.push(fail(
                    CheckId::SPECS_CONFLICT,
                    format!(
                        "{} defined in {}: engines drop every device defined twice in one directory",
                        summarize(&names),
                        shown.join(" and ")
                    ),
                    "keep one of the files; for amd-ctk's /etc/cdi/amd.json: `rm /etc/cdi/amd.json` (amdgpu-cdi's spec covers the same devices)",
                ));
            } else {
                let winner = files
                    .iter()
                    .max_by_key(|f| f.dir)
                    .map(|f| roots.show(&f.path));
                findings.push(warn(
                    CheckId::SPECS_SHADOWED,
                    format!(
                        "{} defined in {}: only {} is used",
                        summarize(&names),
                        shown.join(" and "),
                        winner.unwrap_or_default()
                    ),
                    "delete the spec that is not used so the two cannot drift apart",
                ));
            }
        }
        findings
    }
}

impl SpecScan {
    /// Compares each valid spec named like the refresh service's output (`amd.com-gpu.yaml` or
    /// `.json`) with what `generate` writes now with the options recorded on its first line, or,
    /// for a spec that records none, with the refresh service's options.
    fn currentness(
        &self,
        roots: &HostRoots,
        refresh: &Result<GenerateOptions, String>,
    ) -> Vec<super::Finding> {
        let ours: Vec<&GpuSpecFile> = self
            .files
            .iter()
            .filter(|f| f.invalid.is_none())
            .filter(|f| f.path.file_stem().is_some_and(|stem| stem == "amd.com-gpu"))
            .collect();
        if ours.is_empty() {
            return Vec::new();
        }
        let mut findings = Vec::new();
        if let Err(why) = refresh {
            findings.push(fail(
                CheckId::SPECS_CURRENT,
                why.clone(),
                "fix AMDGPU_CDI_GENERATE_ARGS in /etc/default/amdgpu-cdi: amdgpu-cdi-refresh.service fails with it too",
            ));
        }
        // The spec describes the host's own /dev, whatever root doctor inspects it through.
        let host = match discover_host(roots) {
            Ok(host) => host,
            Err(err) => {
                findings.push(info(
                    CheckId::SPECS_CURRENT,
                    format!("not compared with the hardware: {err}"),
                ));
                return findings;
            }
        };
        for file in ours {
            let shown = roots.show(&file.path);
            let (options, source) = match (&file.recorded, refresh) {
                (Some(Ok(options)), _) => (options, format!("the options recorded on line 1 of {shown}")),
                (Some(Err(problem)), _) => {
                    findings.push(fail(
                        CheckId::SPECS_CURRENT,
                        format!(
                            "cannot read the generate options recorded on line 1 of {shown}: {problem}"
                        ),
                        format!(
                            "regenerate it with `amdgpu-cdi generate --output {shown}` and the options you want"
                        ),
                    ));
                    continue;
                }
                (None, Ok(options)) => (
                    options,
                    "the options of AMDGPU_CDI_GENERATE_ARGS in /etc/default/amdgpu-cdi, if any; the spec records none".to_string(),
                ),
                (None, Err(_)) => continue,
            };
            let generated = match &host {
                Discovered::Kfd(host) => generate::generate(host, options),
                Discovered::Wsl(host) => generate::wsl::generate_wsl(host, options),
            };
            let wanted = match generated {
                Ok(spec) => spec,
                Err(err) => {
                    findings.push(info(
                        CheckId::SPECS_CURRENT,
                        format!("{shown} not compared with the hardware: {err}"),
                    ));
                    continue;
                }
            };
            findings.push(match check::compare_file(&file.path, &wanted) {
                Ok(Currentness::Current) => ok(
                    CheckId::SPECS_CURRENT,
                    format!("{shown} matches the GPUs present now"),
                ),
                Ok(Currentness::Stale { .. }) => fail(
                    CheckId::SPECS_CURRENT,
                    format!(
                        "{shown} is stale: it differs from what `amdgpu-cdi generate` writes now"
                    ),
                    format!(
                        "`amdgpu-cdi generate --output {shown} {}` ({source}); `amdgpu-cdi check --spec {shown}` shows the difference",
                        record::arguments(options).join(" ")
                    ),
                ),
                Err(err) => fail(
                    CheckId::SPECS_CURRENT,
                    format!(
                        "cannot compare {shown}: {}",
                        crate::error_text::error_line(&err)
                    ),
                    "run doctor as root",
                ),
            });
        }
        findings
    }
}

/// The host a spec is compared with: KFD GPUs, or a WSL2 host (docs/wsl.md).
enum Discovered {
    Kfd(discover::Host),
    Wsl(discover::wsl::WslHost),
}

/// Discovers the host doctor inspects; the spec describes the host's own /dev, whatever root
/// doctor inspects it through.
fn discover_host(roots: &HostRoots) -> Result<Discovered, String> {
    let options = super::wsl::discover_options(roots);
    if super::wsl::is_wsl(roots) {
        discover::wsl::discover_wsl(&options, &super::wsl::spec_options(roots))
            .map(|found| Discovered::Wsl(found.host))
            .map_err(|e| e.to_string())
    } else {
        discover::discover(&options)
            .map(Discovered::Kfd)
            .map_err(|e| e.to_string())
    }
}

/// `0, 1, 2, all` for short lists, `0, 1, ... (66 names)` for long ones.
fn summarize(names: &[String]) -> String {
    const SHOWN: usize = 6;
    if names.len() <= SHOWN {
        names.join(", ")
    } else {
        format!(
            "{}, ... ({} names)",
            names[..SHOWN - 1].join(", "),
            names.len()
        )
    }
}
