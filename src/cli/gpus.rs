//! `amdgpu-cdi gpus`: the host's AMD GPUs and partitions as amdgpu-cdi sees and names them.
//!
//! The CDI NAMES column lists exactly the devices the spec `generate` writes with the same
//! `--device-name-strategy` options has for each GPU, so a name copied from it resolves with
//! `--device amd.com/gpu=<name>`. The GPU's other names, which only `AMD_VISIBLE_DEVICES`
//! accepts, follow with a mark and a footnote saying how to put them in the spec too.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::discover::{DiscoverOptions, Gpu, Host, RealSysfs, discover_with};
use crate::naming::{NameStrategy, device_name, device_names};

use super::generate::{NameArgs, WslArgs};
use crate::discover::wsl::{WslHost, discover_wsl};

/// Marks a name that only `AMD_VISIBLE_DEVICES` accepts.
const VARIABLE_ONLY: &str = "*";

/// Output formats of `amdgpu-cdi gpus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GpusFormat {
    /// An aligned table.
    Text,
    /// A JSON array, one object per GPU.
    Json,
}

/// Arguments of `amdgpu-cdi gpus`.
#[derive(Debug, clap::Args)]
pub struct GpusArgs {
    /// The sysfs tree to discover GPUs in.
    #[arg(long, value_name = "DIR", default_value = "/sys")]
    pub sysfs_root: PathBuf,
    /// The directory holding the host's `dev/`, to check the nodes.
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub dev_root: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = GpusFormat::Text)]
    pub format: GpusFormat,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub names: NameArgs,
    /// Show the GPUs a spec made with `generate --exclude-integrated` has: integrated GPUs left
    /// out, the others numbered from 0.
    #[arg(long)]
    pub exclude_integrated: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub wsl: WslArgs,
}

/// Prints the GPUs; warnings go to stderr.
pub fn run(args: GpusArgs) -> anyhow::Result<ExitCode> {
    super::absolute_root("--dev-root", &args.dev_root, super::DEV_ROOT_REASON)?;
    let options = DiscoverOptions {
        sysfs_root: args.sysfs_root,
        dev_root: args.dev_root,
    };
    if args.wsl.is_wsl(&options) {
        let discovery = discover_wsl(&options, &args.wsl.wsl_options())?;
        for warning in &discovery.warnings {
            eprintln!("amdgpu-cdi: warning: {warning}");
        }
        let strategies = args.names.strategies();
        let text = match args.format {
            GpusFormat::Text => wsl_table(&discovery.host, &strategies),
            GpusFormat::Json => format!(
                "{}\n",
                serde_json::to_string_pretty(&wsl_json(&discovery.host, &strategies))?
            ),
        };
        print!("{text}");
        return Ok(ExitCode::SUCCESS);
    }
    let mut discovery = discover_with(&options, &RealSysfs)?;
    for warning in &discovery.warnings {
        eprintln!("amdgpu-cdi: warning: {warning}");
    }
    if args.exclude_integrated {
        discovery.host = discovery.host.without_integrated();
    }
    let missing = missing_nodes(&discovery.host, &options);
    if !missing.is_empty() && args.format == GpusFormat::Json {
        eprintln!("amdgpu-cdi: warning: {missing}");
    }
    let strategies = args.names.strategies();
    let text = match args.format {
        GpusFormat::Text if !missing.is_empty() => {
            format!("{}note: {missing}\n", table(&discovery.host, &strategies))
        }
        GpusFormat::Text => table(&discovery.host, &strategies),
        GpusFormat::Json => format!(
            "{}\n",
            serde_json::to_string_pretty(&json(&discovery.host, &strategies))?
        ),
    };
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}

/// The nodes of the table (`/dev/kfd`, render and card nodes) missing under the dev root, as a
/// sentence; empty when all exist or the roots do not describe one host
/// ([`super::generate::nodes_checked`]).
fn missing_nodes(host: &Host, options: &DiscoverOptions) -> String {
    if !super::generate::nodes_checked(options) {
        return String::new();
    }
    let every_node = crate::generate::GenerateOptions {
        include_card_nodes: true,
        dev_root: options.dev_root.clone(),
        ..crate::generate::GenerateOptions::default()
    };
    let missing = crate::generate::missing_nodes(host, &every_node);
    if missing.is_empty() {
        return String::new();
    }
    format!(
        "device nodes that do not exist: {}",
        super::generate::path_list(&missing)
    )
}

fn node_name(path: &std::path::Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn partition_text(gpu: &Gpu) -> String {
    match (&gpu.partition, &gpu.compute_partition) {
        (Some(p), _) => format!("{} {}/{}", p.compute_mode, p.index, p.count),
        (None, Some(mode)) => mode.clone(),
        (None, None) => "-".into(),
    }
}

/// The names of `gpu` in a spec generated with `strategies`, and its other names (which only
/// `AMD_VISIBLE_DEVICES` accepts).
fn names(gpu: &Gpu, strategies: &[NameStrategy]) -> (Vec<String>, Vec<String>) {
    let in_spec = device_names(gpu, strategies);
    let others = device_names(gpu, &NameStrategy::ALL)
        .into_iter()
        .filter(|name| !in_spec.contains(name))
        .collect();
    (in_spec, others)
}

/// The text table: one row per GPU, columns aligned, product last (it has spaces); a footnote
/// when a name is marked as accepted only by `AMD_VISIBLE_DEVICES`.
pub fn table(host: &Host, strategies: &[NameStrategy]) -> String {
    let header = [
        "INDEX",
        "PCI ADDRESS",
        "PARTITION",
        "RENDER",
        "CARD",
        "NUMA",
        "UNIQUE ID",
        "CDI NAMES",
        "PRODUCT",
    ];
    let rows: Vec<[String; 9]> = host
        .gpus
        .iter()
        .map(|gpu| {
            [
                gpu.index.to_string(),
                gpu.pci_address.to_string(),
                partition_text(gpu),
                node_name(&gpu.render.path),
                gpu.card
                    .as_ref()
                    .map(|c| node_name(&c.path))
                    .unwrap_or_else(|| "-".into()),
                gpu.numa_node
                    .map(|n| n.to_string())
                    .unwrap_or_else(|| "-".into()),
                gpu.rocm_uuid().unwrap_or_else(|| "-".into()),
                {
                    let (in_spec, others) = names(gpu, strategies);
                    in_spec
                        .into_iter()
                        .chain(others.into_iter().map(|name| name + VARIABLE_ONLY))
                        .collect::<Vec<_>>()
                        .join(",")
                },
                match (&gpu.product_name, gpu.integrated) {
                    (Some(name), true) => format!("{name} (integrated)"),
                    (Some(name), false) => name.clone(),
                    (None, true) => "(integrated)".into(),
                    (None, false) => "-".into(),
                },
            ]
        })
        .collect();
    let mut out = aligned(&header, &rows);
    // The strategies that would put the marked names into the spec too.
    let missing = NameStrategy::ALL
        .into_iter()
        .filter(|s| !strategies.contains(s))
        .filter(|&s| host.gpus.iter().any(|gpu| device_name(gpu, s).is_some()));
    let wanted: Vec<String> = strategies
        .iter()
        .copied()
        .chain(missing)
        .map(|s| format!("--device-name-strategy {s}"))
        .collect();
    if wanted.len() > strategies.len() {
        let _ = writeln!(
            out,
            "\n{VARIABLE_ONLY} only AMD_VISIBLE_DEVICES accepts this name; the spec has it with \
             `generate {}` (pass the same options here)",
            wanted.join(" ")
        );
    }
    out
}

/// The JSON form: one object per GPU; `names` are the spec's devices for the GPU,
/// `variable_only_names` the names only `AMD_VISIBLE_DEVICES` accepts.
pub fn json(host: &Host, strategies: &[NameStrategy]) -> serde_json::Value {
    let gpus: Vec<serde_json::Value> = host
        .gpus
        .iter()
        .map(|gpu| {
            let (in_spec, others) = names(gpu, strategies);
            serde_json::json!({
                "index": gpu.index,
                "names": in_spec,
                "variable_only_names": others,
                "pci_address": gpu.pci_address.to_string(),
                "partition": gpu.partition.as_ref().map(|p| serde_json::json!({
                    "index": p.index,
                    "count": p.count,
                    "compute_mode": p.compute_mode,
                    "memory_mode": p.memory_mode,
                })),
                "compute_partition": gpu.compute_partition,
                "memory_partition": gpu.memory_partition,
                "render": gpu.render.path.display().to_string(),
                "card": gpu.card.as_ref().map(|c| c.path.display().to_string()),
                "unique_id": gpu.rocm_uuid(),
                "numa_node": gpu.numa_node,
                "kfd_node": gpu.kfd_node,
                "gpu_id": gpu.gpu_id,
                "device_id": format!("0x{:04x}", gpu.device_id),
                "gfx_target": gpu.gfx_target(),
                "integrated": gpu.integrated,
                "product": gpu.product_name,
            })
        })
        .collect();
    serde_json::Value::Array(gpus)
}

/// The names a WSL spec generated with `strategies` has (with its `all` device).
fn wsl_names(host: &WslHost, strategies: &[NameStrategy]) -> Vec<&'static str> {
    crate::generate::wsl::device_names(host, strategies, true).collect()
}

/// The text form under WSL2: one row for `/dev/dxg`, which serves every adapter.
pub fn wsl_table(host: &WslHost, strategies: &[NameStrategy]) -> String {
    let header = ["MODE", "NODE", "ADAPTERS", "DXCORE", "CDI NAMES"];
    let row = [
        "wsl".to_string(),
        host.dxg.path.display().to_string(),
        host.adapters.to_string(),
        host.dxcore.display().to_string(),
        wsl_names(host, strategies).join(","),
    ];
    aligned(&header, &[row])
}

/// `header` and `rows` as text lines, each column as wide as its widest cell and two spaces
/// apart; the last column is not padded (it may have spaces) and no line ends in spaces.
fn aligned<const N: usize>(header: &[&str; N], rows: &[[String; N]]) -> String {
    let mut widths = header.map(str::len);
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (i, cell) in cells.enumerate() {
            if i + 1 == N {
                text.push_str(cell);
            } else {
                let _ = write!(text, "{cell:<width$}  ", width = widths[i]);
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&mut header.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

/// The JSON form under WSL2: one object for `/dev/dxg`.
pub fn wsl_json(host: &WslHost, strategies: &[NameStrategy]) -> serde_json::Value {
    serde_json::json!([{
        "mode": "wsl",
        "names": wsl_names(host, strategies),
        "node": host.dxg.path.display().to_string(),
        "adapters": host.adapters,
        "dxcore": host.dxcore.display().to_string(),
        "dxcore_found": host.dxcore_found,
    }])
}
