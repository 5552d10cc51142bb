//! `amdgpu-cdi doctor`: a checklist of everything that must hold for containers to get AMD GPUs,
//! each failure with a remedy.
//!
//! Every check reads the host through [`HostRoots`], so tests point it at fixture trees. Checks
//! never abort the run: a host without GPUs, engines or specs still gets a full report.

mod access;
mod check_id;
mod engine_checks;
mod hooks;
mod host;
mod specs;
mod wsl;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::generate::GenerateOptions;

use Dependent::{EveryEngine, One};
pub use check_id::CheckId;
use check_id::EngineCheck;

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
    pub check: CheckId,
    /// How it came out.
    pub status: Status,
    /// What was found, one line.
    pub message: String,
    /// What to do about it; present for every warning and failure that is not a consequence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remedy: Option<String>,
    /// Findings of later checks that only fail because this one did (no `/dev/kfd` without
    /// KFD, no spec without GPUs), folded under it: shown indented below it, without their own
    /// remedy (fixing this one fixes them, and theirs could not work until then), and not counted
    /// in the summary.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub consequences: Vec<Finding>,
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
    /// The sections in a fixed order: driver, device nodes, specs, container access (when it
    /// has findings), engines, hooks.
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

    /// The findings that count: every section's, without the consequences folded under them.
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
                if !finding.consequences.is_empty() {
                    let _ = writeln!(out, "         because of this (not counted separately):");
                }
                for consequence in &finding.consequences {
                    let _ = writeln!(
                        out,
                        "           [{:<4}] {}",
                        consequence.status.label(),
                        consequence.message
                    );
                }
            }
            out.push('\n');
        }
        let count = |status| self.findings().filter(|f| f.status == status).count();
        let _ = writeln!(
            out,
            "{} ok, {}, {}",
            count(Status::Ok),
            plural(count(Status::Warn), "warning"),
            plural(count(Status::Fail), "failure")
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

/// `1 warning`, `2 warnings`, `0 warnings`.
fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

impl crate::engines::HostPaths for HostRoots {
    fn host(&self, path: &str) -> PathBuf {
        HostRoots::host(self, path)
    }

    fn show(&self, path: &Path) -> String {
        HostRoots::show(self, path)
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
    /// Whether `dev_root` was given rather than derived from `root`. Only a given one is passed
    /// on to the `generate` commands doctor suggests: there it is also the prefix of the host
    /// paths written into the spec, and a host inspected through `--root` names its nodes
    /// `/dev/...`.
    pub dev_root_given: bool,
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
            dev_root_given: false,
            spec_dirs: vec![root.join("etc/cdi"), root.join("var/run/cdi")],
            search_path,
        }
    }

    /// The `amdgpu-cdi generate` command writing `output` (a real path) for the GPUs doctor
    /// inspects: with the sysfs root doctor read unless it is `/sys`, and the dev root when one
    /// was given, so that the command works on the tree doctor looked at.
    pub fn generate_command(&self, output: &Path) -> String {
        let mut words = vec!["amdgpu-cdi".to_string(), "generate".to_string()];
        if self.sysfs_root != Path::new("/sys") {
            words.push("--sysfs-root".into());
            words.push(shell_word(&self.sysfs_root));
        }
        if self.dev_root_given && self.dev_root != Path::new("/") {
            words.push("--dev-root".into());
            words.push(shell_word(&self.dev_root));
        }
        words.push("--output".into());
        words.push(shell_word(output));
        words.join(" ")
    }

    /// How to write the missing spec into `dir` (a real path): enable the refresh service when
    /// its unit is installed under the root (it writes `/var/run/cdi/amd.com-gpu.yaml` at boot
    /// and whenever GPUs change), else run `generate` and install the unit to keep it current.
    pub fn write_spec_fix(&self, dir: &Path) -> String {
        let generate = self.generate_command(&dir.join(REFRESH_OUTPUT_NAME));
        let writes_refresh_output = dir == self.host("/var/run/cdi")
            && self.sysfs_root == self.root.join("sys")
            && !self.dev_root_given;
        if writes_refresh_output && self.refresh_unit().is_some() {
            format!("`systemctl enable --now {REFRESH_UNIT}` or once: `{generate}`")
        } else {
            format!(
                "`{generate}`; to keep it current across reboots and GPU changes, install the \
                 package or packaging/systemd/{REFRESH_UNIT} (docs/packaging.md)"
            )
        }
    }

    /// The refresh service's unit file, when it is installed in one of systemd's unit dirs
    /// under the root.
    pub fn refresh_unit(&self) -> Option<PathBuf> {
        UNIT_DIRS
            .iter()
            .map(|dir| self.host(dir).join(REFRESH_UNIT))
            .find(|path| path.is_file())
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

/// The unit that keeps the spec current (packaging/systemd).
const REFRESH_UNIT: &str = "amdgpu-cdi-refresh.service";

/// The file name the refresh service writes in `/var/run/cdi`.
const REFRESH_OUTPUT_NAME: &str = "amd.com-gpu.yaml";

/// Where systemd looks for system unit files, highest priority first.
const UNIT_DIRS: &[&str] = &[
    "/etc/systemd/system",
    "/run/systemd/system",
    "/usr/local/lib/systemd/system",
    "/usr/lib/systemd/system",
    "/lib/systemd/system",
];

/// `path` as one shell word: as is when it holds only characters no shell treats specially,
/// else in single quotes.
fn shell_word(path: &Path) -> String {
    let text = path.display().to_string();
    let plain = !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+:,=@%".contains(&b));
    if plain {
        text
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
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
    let mut sections = if wsl::is_wsl(roots) {
        vec![wsl::section(roots, &options.subject)]
    } else {
        vec![
            host::driver(roots),
            host::device_nodes(roots, &options.subject),
        ]
    };
    let specs = specs::scan(roots);
    sections.push(specs.section(roots, &options.generate, options.strict));
    let (mut engine_sections, engines) =
        engine_checks::sections(roots, &specs.versions(), options.version_timeout);
    let access = access::section(
        roots,
        &options.subject,
        &specs,
        &engines,
        &mut engine_sections,
    );
    sections.extend(access);
    sections.extend(engine_sections);
    sections.push(hooks::section(roots));
    fold_consequences(&mut sections);
    Report { sections }
}

/// The chain from hardware to spec: each check with the earlier checks it needs, which it cannot
/// pass while they fail.
const NEEDS: &[(Dependent, &[CheckId])] = &[
    (One(CheckId::DRIVER_MODULE), &[CheckId::DRIVER_PCI]),
    (One(CheckId::DRIVER_KFD), &[CheckId::DRIVER_MODULE]),
    (One(CheckId::DRIVER_TOPOLOGY), &[CheckId::DRIVER_MODULE]),
    (One(CheckId::DRIVER_GPUS), &[CheckId::DRIVER_MODULE]),
    (One(CheckId::DEVICES_KFD), &[CheckId::DRIVER_KFD]),
    (One(CheckId::DEVICES_RENDER), GPUS),
    (One(CheckId::SPECS_PRESENT), GPUS),
    (One(CheckId::SPECS_CURRENT), GPUS),
    (EveryEngine(EngineCheck::SPEC_VISIBLE), GPUS),
];

/// The checks that find the GPUs a render node or a spec is for.
const GPUS: &[CheckId] = &[
    CheckId::DRIVER_KFD,
    CheckId::DRIVER_TOPOLOGY,
    CheckId::DRIVER_GPUS,
];

/// The checks a line of [`NEEDS`] is about.
enum Dependent {
    /// One check.
    One(CheckId),
    /// This check in every engine section.
    EveryEngine(EngineCheck),
}

impl Dependent {
    /// True when `check` is one of the checks this stands for.
    fn covers(&self, check: CheckId) -> bool {
        match self {
            One(id) => *id == check,
            EveryEngine(engine_check) => check.engine_check() == Some(*engine_check),
        }
    }
}

/// True when a failing `check` can be a root cause: a later check needs it.
fn is_cause(check: CheckId) -> bool {
    NEEDS.iter().any(|(_, needs)| needs.contains(&check))
}

/// True when `check` cannot pass while `cause` fails: it needs `cause`, directly or through the
/// checks it needs ([`NEEDS`] has no circle).
fn follows(check: CheckId, cause: CheckId) -> bool {
    NEEDS
        .iter()
        .filter(|(dependent, _)| dependent.covers(check))
        .flat_map(|(_, needs)| needs.iter())
        .any(|&need| need == cause || follows(need, cause))
}

/// Finds the first warning or failure of a check that later checks need ([`NEEDS`]) and moves
/// every later finding that is not ok and only follows from it into its `consequences`; sections
/// left empty are dropped. One root cause at most: what follows from it may hide other causes,
/// which show once it is fixed.
fn fold_consequences(sections: &mut Vec<Section>) {
    let mut root = None;
    'find: for (s, section) in sections.iter().enumerate() {
        for (f, finding) in section.findings.iter().enumerate() {
            if finding.status >= Status::Warn && is_cause(finding.check) {
                root = Some((s, f, finding.check));
                break 'find;
            }
        }
    }
    let Some((root_section, root_index, cause)) = root else {
        return;
    };
    let root = (root_section, root_index);
    let consequences = take_consequences(sections, |place, finding| {
        place > root && finding.status != Status::Ok && follows(finding.check, cause)
    });
    sections[root_section].findings[root_index].consequences = consequences;
    sections.retain(|section| !section.findings.is_empty());
}

/// Removes the findings `folds` picks from `sections` (each judged with its place: the index of
/// its section, its index there) and returns them, in report order, as consequences to fold under
/// their cause: without their remedy, which could not work before the cause's does.
fn take_consequences(
    sections: &mut [Section],
    mut folds: impl FnMut((usize, usize), &Finding) -> bool,
) -> Vec<Finding> {
    let mut taken = Vec::new();
    for (s, section) in sections.iter_mut().enumerate() {
        let mut index = 0;
        let picked = section.findings.extract_if(.., |finding| {
            let place = (s, index);
            index += 1;
            folds(place, finding)
        });
        taken.extend(picked.map(|finding| Finding {
            remedy: None,
            ..finding
        }));
    }
    taken
}

impl Section {
    /// The section `title` with its findings.
    fn new(title: impl Into<String>, findings: Vec<Finding>) -> Section {
        Section {
            title: title.into(),
            findings,
        }
    }
}

impl Finding {
    /// A finding of `check` with nothing folded under it yet (see [`fold_consequences`]).
    fn new(check: CheckId, status: Status, message: String, remedy: Option<String>) -> Finding {
        Finding {
            check,
            status,
            message,
            remedy,
            consequences: Vec::new(),
        }
    }
}

fn ok(check: CheckId, message: impl Into<String>) -> Finding {
    Finding::new(check, Status::Ok, message.into(), None)
}

fn info(check: CheckId, message: impl Into<String>) -> Finding {
    Finding::new(check, Status::Info, message.into(), None)
}

fn warn(check: CheckId, message: impl Into<String>, remedy: impl Into<String>) -> Finding {
    Finding::new(check, Status::Warn, message.into(), Some(remedy.into()))
}

fn fail(check: CheckId, message: impl Into<String>, remedy: impl Into<String>) -> Finding {
    Finding::new(check, Status::Fail, message.into(), Some(remedy.into()))
}

#[cfg(test)]
impl HostRoots {
    /// For tests: an empty host in a new temp dir, removed when the returned dir is dropped.
    fn temp() -> (tempfile::TempDir, HostRoots) {
        let dir = tempfile::tempdir().expect("temp dir");
        let roots = HostRoots::under(dir.path(), Vec::new());
        (dir, roots)
    }

    /// For tests: writes `text` to the host file `path` (e.g. `/etc/subuid`), creating its
    /// directories, and returns its real path.
    fn write_file(&self, path: &str, text: &str) -> PathBuf {
        let real = self.host(path);
        let dir = real.parent().expect("a host file is below the root");
        std::fs::create_dir_all(dir).expect("create the file's directory");
        std::fs::write(&real, text).expect("write the file");
        real
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engines::Engine;

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
    fn generate_command_carries_the_given_roots_quoted() {
        let mut roots = HostRoots::under(Path::new("/"), vec![]);
        let output = Path::new("/var/run/cdi/amd.com-gpu.yaml");
        assert_eq!(
            roots.generate_command(output),
            "amdgpu-cdi generate --output /var/run/cdi/amd.com-gpu.yaml"
        );
        roots.sysfs_root = PathBuf::from("examples/hosts/my host/sys");
        roots.dev_root = PathBuf::from("/opt/dev");
        assert_eq!(
            roots.generate_command(output),
            "amdgpu-cdi generate --sysfs-root 'examples/hosts/my host/sys' --output \
             /var/run/cdi/amd.com-gpu.yaml",
            "a dev root that is not given is where doctor looks, not a spec prefix"
        );
        roots.dev_root_given = true;
        assert!(
            roots
                .generate_command(output)
                .contains(" --dev-root /opt/dev --output "),
        );
        assert_eq!(shell_word(Path::new("/it's")), r"'/it'\''s'");
    }

    /// Issue 14 item 5: the first failing link of the hardware chain is the root cause; what
    /// follows from it moves under it without its fix, what does not stays, and emptied sections
    /// go.
    #[test]
    fn consequences_fold_under_the_first_failing_link() {
        let mut sections = vec![
            Section::new(
                "driver",
                vec![
                    ok(
                        CheckId::DRIVER_PCI,
                        "1 AMD GPU(s) on the PCI bus: 0000:03:00.0",
                    ),
                    fail(CheckId::DRIVER_MODULE, "not loaded", "modprobe"),
                    fail(CheckId::DRIVER_KFD, "no kfd", "load it"),
                ],
            ),
            Section::new(
                "device nodes",
                vec![fail(
                    CheckId::DEVICES_KFD,
                    "/dev/kfd does not exist",
                    "udev",
                )],
            ),
            Section::new(
                "docker",
                vec![
                    ok(EngineCheck::CDI.of(Engine::Docker), "on"),
                    warn(
                        EngineCheck::SPEC_VISIBLE.of(Engine::Docker),
                        "no spec",
                        "generate",
                    ),
                    fail(
                        EngineCheck::WRAPPER.of(Engine::Docker),
                        "missing wrapper",
                        "install",
                    ),
                ],
            ),
        ];
        fold_consequences(&mut sections);
        let titles: Vec<&str> = sections.iter().map(|s| s.title.as_str()).collect();
        assert_eq!(titles, ["driver", "docker"]);
        let cause = &sections[0].findings[1];
        let folded: Vec<(CheckId, Option<&String>)> = cause
            .consequences
            .iter()
            .map(|f| (f.check, f.remedy.as_ref()))
            .collect();
        assert_eq!(
            folded,
            [
                (CheckId::DRIVER_KFD, None),
                (CheckId::DEVICES_KFD, None),
                (EngineCheck::SPEC_VISIBLE.of(Engine::Docker), None)
            ]
        );
        let report = Report { sections };
        assert!(
            report
                .to_text()
                .ends_with("\n2 ok, 0 warnings, 2 failures\n"),
            "{}",
            report.to_text()
        );
    }

    #[test]
    fn worst_status_decides_failure() {
        let mut report = Report {
            sections: vec![Section::new(
                "t",
                vec![
                    ok(CheckId::HOOKS_FILE, "fine"),
                    warn(CheckId::HOOKS_CONFIG, "meh", "do x"),
                ],
            )],
        };
        assert!(!report.has_failures());
        report.sections[0]
            .findings
            .push(fail(CheckId::HOOKS_FILE, "bad", "do y"));
        assert!(report.has_failures());
        assert!(report.to_text().ends_with("1 ok, 1 warning, 1 failure\n"));
    }
}
