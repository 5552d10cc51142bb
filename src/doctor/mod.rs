//! `amdgpu-cdi doctor`: a checklist of everything that must hold for containers to get AMD GPUs,
//! each failure with a remedy.
//!
//! Every check reads the host through [`HostRoots`], so tests point it at fixture trees. Checks
//! never abort the run: a host without GPUs, engines or specs still gets a full report.

mod engines;
mod host;
mod specs;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::generate::GenerateOptions;

pub use engines::{Engine, EngineVersion};

/// How one check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The check passed.
    Ok,
    /// Information, neither good nor bad (for example an engine that is not installed).
    Info,
    /// Something works but is fragile or surprising.
    Warn,
    /// Containers will not get GPUs this way until it is fixed.
    Fail,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Info => "info",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
        }
    }
}

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Stable identifier of the check, e.g. `driver.kfd`.
    pub check: String,
    /// How it came out.
    pub status: Status,
    /// What was found, one line.
    pub message: String,
    /// What to do about it; present for every warning and failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remedy: Option<String>,
}

/// A group of findings about one subject (the driver, the spec files, one engine).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Section {
    /// Title of the subject, e.g. `docker`.
    pub title: String,
    /// The findings, in check order.
    pub findings: Vec<Finding>,
}

/// The whole checklist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The sections in a fixed order: driver, device nodes, specs, engines, hooks.
    pub sections: Vec<Section>,
}

impl Report {
    /// The worst status of any finding.
    pub fn worst(&self) -> Status {
        self.findings()
            .map(|f| f.status)
            .max()
            .unwrap_or(Status::Ok)
    }

    /// True when at least one check failed.
    pub fn has_failures(&self) -> bool {
        self.worst() == Status::Fail
    }

    fn findings(&self) -> impl Iterator<Item = &Finding> {
        self.sections.iter().flat_map(|s| s.findings.iter())
    }

    /// Renders the report for a terminal.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for section in &self.sections {
            let _ = writeln!(out, "{}", section.title);
            for finding in &section.findings {
                let _ = writeln!(out, "  [{:<4}] {}", finding.status.label(), finding.message);
                if let Some(remedy) = &finding.remedy {
                    let _ = writeln!(out, "         fix: {remedy}");
                }
            }
            out.push('\n');
        }
        let count = |status| self.findings().filter(|f| f.status == status).count();
        let _ = writeln!(
            out,
            "{} ok, {} warnings, {} failures",
            count(Status::Ok),
            count(Status::Warn),
            count(Status::Fail)
        );
        out
    }

    /// Renders the report as pretty-printed JSON.
    pub fn to_json(&self) -> String {
        let mut json = serde_json::to_string_pretty(self)
            .expect("a report holds only strings and enums, which always serialize");
        json.push('\n');
        json
    }
}

/// Where doctor looks. All paths are real paths on the machine running doctor; [`HostRoots::show`]
/// turns them back into the host paths users know (`/etc/cdi/amd.json`) for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRoots {
    /// The root of the host file system: configuration files and hooks dirs are read below it.
    pub root: PathBuf,
    /// The sysfs mount, normally `<root>/sys`.
    pub sysfs_root: PathBuf,
    /// The directory holding `dev/`, normally `<root>`.
    pub dev_root: PathBuf,
    /// CDI spec dirs, lowest priority first.
    pub spec_dirs: Vec<PathBuf>,
    /// Directories searched for engine binaries and for the runtime wrapper.
    pub search_path: Vec<PathBuf>,
}

impl HostRoots {
    /// The roots of a host mounted at `root`, with the default spec dirs and `search_path`.
    pub fn under(root: &Path, search_path: Vec<PathBuf>) -> HostRoots {
        HostRoots {
            root: root.to_path_buf(),
            sysfs_root: root.join("sys"),
            dev_root: root.to_path_buf(),
            spec_dirs: vec![root.join("etc/cdi"), root.join("var/run/cdi")],
            search_path,
        }
    }

    /// The real path of a host path such as `/etc/docker/daemon.json`.
    pub fn host(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }

    /// A real path shown as the host path it stands for.
    pub fn show(&self, path: &Path) -> String {
        for (root, prefix) in [
            (&self.sysfs_root, "/sys"),
            (&self.dev_root, ""),
            (&self.root, ""),
        ] {
            if root.as_os_str() == "/" {
                continue;
            }
            if let Ok(rest) = path.strip_prefix(root) {
                return format!("{prefix}/{}", rest.display());
            }
        }
        path.display().to_string()
    }
}

/// Whose access to the device nodes is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// The process running doctor (its uid and supplementary groups).
    Invoker,
    /// A named user, looked up in `<root>/etc/passwd` and `<root>/etc/group`.
    User(String),
}

/// Everything doctor needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoctorOptions {
    /// Where to look.
    pub roots: HostRoots,
    /// Whose device access to check.
    pub subject: Subject,
    /// Upper bound for each `<engine> --version` run.
    pub version_timeout: Duration,
    /// The generate options the refresh service uses (from `/etc/default/amdgpu-cdi`), to judge
    /// whether `amd.com-gpu.yaml` is current; an error says why they are unusable.
    pub generate: Result<GenerateOptions, String>,
    /// Report dangerous specs ([`cdi::audit`]) as failures rather than warnings.
    pub strict: bool,
}

/// Runs every check and returns the report.
pub fn run(options: &DoctorOptions) -> Report {
    let roots = &options.roots;
    let mut sections = vec![
        host::driver(roots),
        host::device_nodes(roots, &options.subject),
    ];
    let specs = specs::scan(roots);
    sections.push(specs.section(roots, &options.generate, options.strict));
    sections.extend(engines::sections(
        roots,
        &specs.versions(),
        options.version_timeout,
    ));
    Report { sections }
}

fn ok(check: &str, message: impl Into<String>) -> Finding {
    Finding {
        check: check.to_string(),
        status: Status::Ok,
        message: message.into(),
        remedy: None,
    }
}

fn info(check: &str, message: impl Into<String>) -> Finding {
    Finding {
        check: check.to_string(),
        status: Status::Info,
        message: message.into(),
        remedy: None,
    }
}

fn warn(check: &str, message: impl Into<String>, remedy: impl Into<String>) -> Finding {
    Finding {
        check: check.to_string(),
        status: Status::Warn,
        message: message.into(),
        remedy: Some(remedy.into()),
    }
}

fn fail(check: &str, message: impl Into<String>, remedy: impl Into<String>) -> Finding {
    Finding {
        check: check.to_string(),
        status: Status::Fail,
        message: message.into(),
        remedy: Some(remedy.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn show_maps_real_paths_back_to_host_paths() {
        let roots = HostRoots::under(Path::new("/tmp/fx"), vec![]);
        assert_eq!(
            roots.show(Path::new("/tmp/fx/etc/cdi/a.yaml")),
            "/etc/cdi/a.yaml"
        );
        assert_eq!(roots.show(Path::new("/tmp/fx/sys/module")), "/sys/module");
        assert_eq!(roots.show(Path::new("/elsewhere/x")), "/elsewhere/x");
        let real = HostRoots::under(Path::new("/"), vec![]);
        assert_eq!(real.show(Path::new("/etc/cdi")), "/etc/cdi");
    }

    #[test]
    fn worst_status_decides_failure() {
        let mut report = Report {
            sections: vec![Section {
                title: "t".into(),
                findings: vec![ok("a", "fine"), warn("b", "meh", "do x")],
            }],
        };
        assert!(!report.has_failures());
        report.sections[0].findings.push(fail("c", "bad", "do y"));
        assert!(report.has_failures());
        assert!(report.to_text().ends_with("1 ok, 1 warnings, 1 failures\n"));
    }
}
