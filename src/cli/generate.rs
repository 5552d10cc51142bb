//! `amdgpu-cdi generate`: discover the host's AMD GPUs and write (or print) their CDI spec.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use cdi::codec::Format;
use cdi::version::Version;

use crate::discover::wsl::{DiscoveryMode, WSL_LIB_ROOT, WslOptions, discover_wsl, looks_like_wsl};
use crate::discover::{DiscoverOptions, RealSysfs, discover_with};
use crate::generate::{GenerateOptions, generate, missing_nodes};
use crate::naming::NameStrategy;

/// Spec serialisations on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SpecFormat {
    /// YAML (engines read `*.yaml`).
    Yaml,
    /// JSON (engines read `*.json`).
    Json,
}

impl From<SpecFormat> for Format {
    fn from(format: SpecFormat) -> Self {
        match format {
            SpecFormat::Yaml => Format::Yaml,
            SpecFormat::Json => Format::Json,
        }
    }
}

/// Device name strategies on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StrategyArg {
    /// `0`, `1`, ... in PCI address order, partitions by partition index.
    Index,
    /// `GPU-<unique id>` as ROCm shows it; partitions `GPU-<unique id>-p<k>`.
    Uuid,
    /// The PCI address, `0000:03:00.0`; partitions `0000:03:00.0-p<k>`.
    Pci,
}

impl From<StrategyArg> for NameStrategy {
    fn from(strategy: StrategyArg) -> Self {
        match strategy {
            StrategyArg::Index => NameStrategy::Index,
            StrategyArg::Uuid => NameStrategy::Uuid,
            StrategyArg::Pci => NameStrategy::Pci,
        }
    }
}

/// Where to discover GPUs: shared by every command that discovers.
#[derive(Debug, clap::Args)]
pub struct HostArgs {
    /// The sysfs tree to discover GPUs in.
    #[arg(long, value_name = "DIR", default_value = "/sys")]
    pub sysfs_root: PathBuf,
    /// The directory holding the host's `dev/`; when not `/`, device nodes get a hostPath under it.
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub dev_root: PathBuf,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub wsl: WslArgs,
}

/// Which kind of host, and where a WSL2 host's files are: shared by every command that discovers.
#[derive(Debug, clap::Args)]
pub struct WslArgs {
    /// The kind of host: `kfd` (amdgpu driver, /dev/kfd), `wsl` (WSL2, /dev/dxg), or `auto`: kfd
    /// when sysfs has class/kfd, else wsl when /dev/dxg exists (docs/wsl.md).
    #[arg(long, value_enum, value_name = "MODE", default_value_t = DiscoveryMode::Auto)]
    pub mode: DiscoveryMode,
    /// The proc tree (only read under WSL, to confirm a WSL kernel).
    #[arg(long, value_name = "DIR", default_value = "/proc")]
    pub proc_root: PathBuf,
    /// Where WSL mounts the Windows GPU libraries; WSL specs mount libdxcore.so from under it.
    #[arg(long, value_name = "DIR", default_value = WSL_LIB_ROOT)]
    pub wsl_lib_root: PathBuf,
}

impl WslArgs {
    /// The WSL discovery options these arguments name.
    pub fn wsl_options(&self) -> WslOptions {
        WslOptions {
            proc_root: self.proc_root.clone(),
            lib_root: self.wsl_lib_root.clone(),
        }
    }

    /// Whether the host under `options` is discovered as a WSL2 host.
    pub fn is_wsl(&self, options: &DiscoverOptions) -> bool {
        match self.mode {
            DiscoveryMode::Wsl => true,
            DiscoveryMode::Kfd => false,
            DiscoveryMode::Auto => looks_like_wsl(options),
        }
    }
}

/// Whether the device nodes found under `options.dev_root` say anything about the host its sysfs
/// tree describes: when `--dev-root` is given, or when both roots are this machine's. A sysfs
/// tree of another host (`--sysfs-root examples/hosts/...`) with this machine's `/dev` does not.
pub fn nodes_checked(options: &DiscoverOptions) -> bool {
    options.dev_root != Path::new("/") || options.sysfs_root == Path::new("/sys")
}

/// `paths` for a message: the first few, then how many more.
pub fn path_list(paths: &[PathBuf]) -> String {
    const SHOWN: usize = 4;
    let mut text = paths
        .iter()
        .take(SHOWN)
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    if paths.len() > SHOWN {
        text.push_str(&format!(" and {} more", paths.len() - SHOWN));
    }
    text
}

impl HostArgs {
    /// The discovery options these arguments name; a relative `--dev-root` is refused (see
    /// [`super::RelativeRoot`]).
    pub fn discover_options(&self) -> Result<DiscoverOptions, super::RelativeRoot> {
        let dev_root = super::absolute_root("--dev-root", &self.dev_root, super::DEV_ROOT_REASON)?;
        Ok(DiscoverOptions {
            sysfs_root: self.sysfs_root.clone(),
            dev_root: dev_root.to_path_buf(),
        })
    }
}

/// How devices are named: part of what the spec contains, and what `gpus` shows.
#[derive(Debug, clap::Args)]
pub struct NameArgs {
    /// How to name devices; repeat for several names per GPU [default: index, uuid].
    #[arg(long = "device-name-strategy", value_name = "STRATEGY", value_enum)]
    pub strategies: Vec<StrategyArg>,
}

impl NameArgs {
    /// The strategies named, or [`NameStrategy::DEFAULT`] when none is.
    pub fn strategies(&self) -> Vec<NameStrategy> {
        if self.strategies.is_empty() {
            NameStrategy::DEFAULT.to_vec()
        } else {
            self.strategies
                .iter()
                .copied()
                .map(NameStrategy::from)
                .collect()
        }
    }
}

/// What the spec contains: shared by `generate` and `check` (which uses them for a spec that does
/// not record the options it was generated with, see [`crate::generate::record`]).
#[derive(Debug, clap::Args)]
pub struct SpecContentArgs {
    /// The vendor part of the kind.
    #[arg(long, value_name = "VENDOR", default_value = crate::naming::VENDOR)]
    pub vendor: String,
    /// The class part of the kind.
    #[arg(long, value_name = "CLASS", default_value = crate::naming::CLASS)]
    pub class: String,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub names: NameArgs,
    /// Leave out the `all` device.
    #[arg(long)]
    pub no_all_device: bool,
    /// The cdiVersion to write: `auto` (the minimum the content needs) or X.Y.Z.
    #[arg(long, value_name = "auto|X.Y.Z", default_value = "auto")]
    pub cdi_version: String,
    /// Annotate each device with its PCI address, partition, unique id, gfx target and product
    /// (needs CDI 0.6.0: podman >= 4.7).
    #[arg(long)]
    pub annotations: bool,
    /// Add the groups of the device nodes as additionalGids, for non-root container users
    /// (needs CDI 0.7.0: podman >= 5.1).
    #[arg(long)]
    pub additional_gids: bool,
    /// Write type, major, minor and file mode of each node (stale after renumbering).
    #[arg(long)]
    pub pin_device_numbers: bool,
    /// Give each GPU its card (display) node too, not only its render node.
    #[arg(long)]
    pub include_card_nodes: bool,
    /// Leave integrated GPUs (APUs, such as a Ryzen's Radeon Graphics) out of the spec and of
    /// `all`; the other GPUs are numbered from 0.
    #[arg(long)]
    pub exclude_integrated: bool,
}

impl SpecContentArgs {
    /// The generation options these arguments name, for nodes under `dev_root`; fails on a
    /// malformed `--cdi-version`.
    pub fn generate_options(&self, dev_root: &Path) -> anyhow::Result<GenerateOptions> {
        let cdi_version = match self.cdi_version.as_str() {
            "auto" => None,
            text => Some(text.parse::<Version>().context("invalid --cdi-version")?),
        };
        Ok(GenerateOptions {
            vendor: self.vendor.clone(),
            class: self.class.clone(),
            strategies: self.names.strategies(),
            all_device: !self.no_all_device,
            cdi_version,
            annotations: self.annotations,
            additional_gids: self.additional_gids,
            pin_device_numbers: self.pin_device_numbers,
            include_card_nodes: self.include_card_nodes,
            exclude_integrated: self.exclude_integrated,
            dev_root: dev_root.to_path_buf(),
        })
    }
}

/// Arguments of `amdgpu-cdi generate`.
#[derive(Debug, clap::Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub host: HostArgs,
    /// Write the spec to FILE atomically (mode 0644) instead of standard output (`-`, the default).
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Spec format [default: from the --output extension, else yaml].
    #[arg(long, value_enum)]
    pub format: Option<SpecFormat>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub content: SpecContentArgs,
}

/// Discovers, generates and writes the spec. Nothing is written on error.
pub fn run(mut args: GenerateArgs) -> anyhow::Result<ExitCode> {
    // `-` is standard output, as for `inject --config -` (standard input).
    args.output = args.output.filter(|path| path.as_os_str() != "-");
    if let Some(path) = &args.output {
        // A device, FIFO, socket or directory there is the only error, before any other work.
        cdi::write::check_target(path)?;
    }
    let discover_options = args.host.discover_options()?;
    let options = args.content.generate_options(&discover_options.dev_root)?;
    let format = output_format(args.format, args.output.as_deref())?;
    if let Some(path) = &args.output
        && !matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("json" | "yaml")
        )
    {
        eprintln!(
            "amdgpu-cdi: warning: engines read only *.json and *.yaml spec files; {} will not be \
             loaded from a spec directory",
            path.display()
        );
    }
    let (spec, missing, what) = if args.host.wsl.is_wsl(&discover_options) {
        let discovery = discover_wsl(&discover_options, &args.host.wsl.wsl_options())?;
        for warning in &discovery.warnings {
            eprintln!("amdgpu-cdi: warning: {warning}");
        }
        let spec = crate::generate::wsl::generate_wsl(&discovery.host, &options)?;
        let missing = crate::generate::wsl::missing_paths(&discovery.host, &options);
        (spec, missing, "host paths")
    } else {
        let discovery = discover_with(&discover_options, &RealSysfs)?;
        for warning in &discovery.warnings {
            eprintln!("amdgpu-cdi: warning: {warning}");
        }
        let spec = generate(&discovery.host, &options)?;
        (
            spec,
            missing_nodes(&discovery.host, &options),
            "device nodes",
        )
    };
    let text = crate::generate::to_text(&spec, &options, format);
    match &args.output {
        Some(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create directory {}", dir.display()))?;
            }
            cdi::write::write_atomic(path, text.as_bytes(), cdi::write::SPEC_MODE)?;
        }
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(text.as_bytes())
                .context("cannot write the spec to stdout")?;
            stdout.flush().context("cannot write the spec to stdout")?;
        }
    }
    // After the write, so a failed write stays one error line.
    let missing = if nodes_checked(&discover_options) {
        missing
    } else {
        Vec::new()
    };
    if !missing.is_empty() {
        eprintln!(
            "amdgpu-cdi: warning: the spec names {what} that do not exist: {} (engines refuse \
             containers given them)",
            path_list(&missing)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `--format`, else the output file's extension, else YAML; a contradiction is an error because
/// engines pick the parser by extension.
fn output_format(format: Option<SpecFormat>, output: Option<&Path>) -> anyhow::Result<Format> {
    let implied = output.and_then(|path| match path.extension().and_then(|e| e.to_str()) {
        Some("json") => Some(Format::Json),
        Some("yaml") => Some(Format::Yaml),
        _ => None,
    });
    match (format.map(Format::from), implied, output) {
        (Some(chosen), Some(implied), Some(path)) if chosen != implied => anyhow::bail!(
            "--format {chosen} contradicts the extension of {} (engines parse .json as JSON and \
             .yaml as YAML)",
            path.display()
        ),
        (Some(chosen), _, _) => Ok(chosen),
        (None, Some(implied), _) => Ok(implied),
        (None, None, _) => Ok(Format::Yaml),
    }
}
