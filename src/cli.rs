//! Command-line definitions (clap) and their dispatch. Logic lives in the library modules.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

pub mod check;
pub mod configure;
pub mod device_plugin;
pub mod docs;
pub mod doctor;
pub mod generate;
pub mod gpus;
pub mod hook;
pub mod inject;
pub mod list;
pub mod validate;

/// Give containers AMD GPUs through the Container Device Interface.
#[derive(Debug, Parser)]
#[command(name = "amdgpu-cdi", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Parses the process's command line; see [`Cli::parse_args`].
    pub fn from_env() -> Self {
        Self::parse_args(std::env::args_os().collect())
    }

    /// Parses a command line (`args[0]` is the program). Building the definition of every
    /// subcommand costs about a third of a millisecond, which is most of the work of a hook
    /// (run for every container) and of `inject` and `validate` (run by scripts, and measured
    /// against the reference Go library). So these subcommands are first parsed by their own
    /// parser alone. Anything that parser does not accept (including `--help`, `--version` and
    /// every error) goes to the full parser, so output and errors stay the same.
    pub fn parse_args(args: Vec<OsString>) -> Self {
        match parse_alone(args.get(1..).unwrap_or_default()) {
            Some(command) => Self { command },
            None => Self::try_parse_from(args)
                .unwrap_or_else(|err| without_hidden_suggestions(err, &Self::command()).exit()),
        }
    }
}

/// `err` without the hidden subcommands (`generate-docs`) among its "similar subcommand" tips and
/// listed subcommands: clap suggests hidden subcommands too (clap-rs/clap#4853), and a command
/// kept out of `--help` must not be offered to someone who mistyped `generate`.
fn without_hidden_suggestions(err: clap::Error, cli: &clap::Command) -> clap::Error {
    use clap::error::{ContextKind, ContextValue};
    let mut hidden = Vec::new();
    hidden_names(cli, &mut hidden);
    let is_hidden = |name: &String| hidden.contains(&name.as_str());
    let listed = [
        ContextKind::SuggestedSubcommand,
        ContextKind::ValidSubcommand,
    ];
    let touched = err.context().any(|(kind, value)| {
        listed.contains(&kind)
            && matches!(value, ContextValue::Strings(names) if names.iter().any(is_hidden))
    });
    if !touched {
        return err;
    }
    // clap's context cannot lose an entry, so the error is rebuilt with the same kind and the
    // remaining context; an emptied suggestion list is left out, so no tip is printed.
    let mut rebuilt = clap::Error::new(err.kind()).with_cmd(cli);
    for (kind, value) in err.context() {
        let value = match value {
            ContextValue::Strings(names) if listed.contains(&kind) => {
                let kept: Vec<String> = names.iter().filter(|n| !is_hidden(n)).cloned().collect();
                if kept.is_empty() {
                    continue;
                }
                ContextValue::Strings(kept)
            }
            other => other.clone(),
        };
        rebuilt.insert(kind, value);
    }
    rebuilt
}

/// The names and aliases of every hidden subcommand under `cmd`, at any depth.
fn hidden_names<'a>(cmd: &'a clap::Command, names: &mut Vec<&'a str>) {
    for sub in cmd.get_subcommands() {
        if sub.is_hide_set() {
            names.push(sub.get_name());
            names.extend(sub.get_all_aliases());
        }
        hidden_names(sub, names);
    }
}

/// Parses `args` (the subcommand's name first) with the parser of that subcommand alone, for the
/// subcommands [`Cli::parse_args`] parses so; `None` for the others and whatever it refuses.
fn parse_alone(args: &[OsString]) -> Option<Command> {
    match args.first().and_then(|name| name.to_str()) {
        Some("hook") => parse_one("hook", args).map(Command::Hook),
        Some("inject") => parse_one("inject", args).map(Command::Inject),
        Some("validate") => parse_one("validate", args).map(Command::Validate),
        _ => None,
    }
}

/// Parses `args` (the subcommand's name first) with the parser of one subcommand only.
fn parse_one<A: clap::Args>(name: &'static str, args: &[OsString]) -> Option<A> {
    let parser = A::augment_args(clap::Command::new(name));
    let matches = parser.try_get_matches_from(args).ok()?;
    A::from_arg_matches(&matches).ok()
}

/// The subcommands, in the order `--help`, the man page and the completions list them: what users
/// type first, then `inject` (a check of what an engine would do), then `hook`, which engines run.
/// clap cannot give subcommands their own help headings, so the plumbing is last and says so.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show the host's AMD GPUs and partitions with their CDI names.
    Gpus(gpus::GpusArgs),
    /// Discover the host's AMD GPUs and write their CDI spec.
    Generate(generate::GenerateArgs),
    /// Compare a spec on disk with what `generate` writes now (exit 0 current, 1 stale, 2 error).
    ///
    /// Exits 0 when the spec is current, 1 when it is stale or missing (printing a unified diff
    /// from the file to the spec generated now), 2 on error: a spec file that cannot be read or
    /// parsed is an error naming the file and the line. The spec is compared with what `generate`
    /// writes now with the options recorded on its first line; the content options given here
    /// apply only to a spec that records none.
    Check(check::CheckArgs),
    /// List every CDI device the spec directories provide, with its file.
    List(list::ListArgs),
    /// Check CDI spec files; print every problem and exit 1 if there is any.
    Validate(validate::ValidateArgs),
    /// Check everything containers need to get AMD GPUs, with a fix for every failure.
    Doctor(doctor::DoctorArgs),
    /// Set up docker, containerd, crio or podman for AMD GPUs (non-destructive, undoable).
    Configure(configure::ConfigureArgs),
    /// Run the kubelet device plugin: advertise GPUs and partitions, hand them out as CDI devices.
    ///
    /// Registers one resource per partition mode (or `amd.com/gpu`) with the kubelet, writes the
    /// CDI spec the allocated names resolve against, follows device and partition changes and
    /// kubelet restarts. Runs until SIGTERM. See docs/kubernetes.md.
    DevicePlugin(device_plugin::DevicePluginArgs),
    /// Print an OCI runtime config with CDI devices injected, as an engine would.
    Inject(inject::InjectArgs),
    /// Plumbing: an OCI hook stage, run by engines from hooks.d files and CDI specs.
    Hook(hook::HookArgs),
    /// Write man pages and shell completions (used by packaging).
    #[command(hide = true)]
    GenerateDocs(docs::GenerateDocsArgs),
}

/// A root directory given on the command line that must be absolute.
///
/// The rule for paths on the command line: a path whose value leaves the command must be
/// absolute, and a relative one is refused with this error rather than made absolute, so that
/// what ends up elsewhere is exactly what the user typed. That is `--dev-root` on every command
/// (its one job is to be the prefix of the host paths written into specs, which engines resolve
/// from their own working directory) and every root a hook takes (an engine runs hooks in its own
/// working directory); the configuration file refuses relative roots for the same reason, and
/// `configure` its `--runtime-path` and `--cdi-spec-dir`. Paths that only the running command
/// reads or writes for the user who typed them (`--output`, `--config` files, `--sysfs-root` of
/// `generate`, `check`, `gpus` and `doctor`, `--spec-dir` of `list`, `validate` and `inject`,
/// `doctor --root`) are relative to the current directory, as any command-line path is.
#[derive(Debug, thiserror::Error)]
#[error("{option} {} is not absolute ({why})", path.display())]
pub struct RelativeRoot {
    /// The option.
    pub option: &'static str,
    /// The value given.
    pub path: PathBuf,
    /// Why it must be absolute.
    pub why: &'static str,
}

/// Why `--dev-root` must be absolute.
pub const DEV_ROOT_REASON: &str = "specs name the device nodes under it, and engines resolve a relative path from their own \
     directory";

/// Why the roots a hook takes must be absolute.
pub const HOOK_ROOT_REASON: &str =
    "the engine runs the hook from its own directory, not from yours";

/// `path`, when it is absolute; the one check behind [`RelativeRoot`].
pub fn absolute_root<'a>(
    option: &'static str,
    path: &'a Path,
    why: &'static str,
) -> Result<&'a Path, RelativeRoot> {
    if path.is_absolute() {
        Ok(path)
    } else {
        Err(RelativeRoot {
            option,
            path: path.to_path_buf(),
            why,
        })
    }
}

/// A spec directory named on the command line that does not exist, most often a typo: an
/// error, where the default directories being absent only means nothing is installed there.
#[derive(Debug, thiserror::Error)]
#[error("spec directory {} does not exist", path.display())]
pub struct MissingSpecDir {
    /// The directory given.
    pub path: PathBuf,
}

/// Fails on the first of `dirs` (given with `--spec-dir`) that does not exist. Any other problem
/// with a directory (not a directory, unreadable) is left to the registry, which reports it.
pub fn named_spec_dirs_exist(dirs: &[PathBuf]) -> Result<(), MissingSpecDir> {
    match dirs.iter().find(|dir| {
        std::fs::metadata(dir).is_err_and(|err| err.kind() == std::io::ErrorKind::NotFound)
    }) {
        Some(dir) => Err(MissingSpecDir { path: dir.clone() }),
        None => Ok(()),
    }
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Hook(args) => hook::run(args),
        Command::Validate(args) => validate::run(args),
        Command::List(args) => list::run(args),
        Command::Inject(args) => inject::run(args),
        Command::Generate(args) => generate::run(args),
        Command::Gpus(args) => gpus::run(args),
        Command::Check(args) => check::run(&args),
        Command::Doctor(args) => doctor::run(&args),
        Command::GenerateDocs(args) => docs::run(&args),
        Command::Configure(args) => configure::run(&args),
        Command::DevicePlugin(args) => device_plugin::run(&args),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn argv(line: &str) -> Vec<OsString> {
        line.split_whitespace().map(OsString::from).collect()
    }

    /// What the one-subcommand parser alone makes of `args`, as the full parser's type.
    fn alone(args: &[OsString]) -> Option<Cli> {
        parse_alone(&args[1..]).map(|command| Cli { command })
    }

    /// The one-subcommand parsers take exactly what the full parser takes, with the same result,
    /// and leave everything else (help, version, errors) to it.
    #[test]
    fn parsing_one_subcommand_alone_equals_the_full_parser() {
        let accepted = [
            "amdgpu-cdi hook precreate",
            "amdgpu-cdi hook precreate --config /c.toml --sysfs-root /s --dev-root /d",
            "amdgpu-cdi hook --config /c.toml precreate --dev-root=/d",
            "amdgpu-cdi hook prestart",
            "amdgpu-cdi hook createRuntime --sysfs-root /s",
            "amdgpu-cdi hook create-runtime",
            "amdgpu-cdi hook poststop extra -x --y",
            "amdgpu-cdi hook precreate --unknown-to-us",
            "amdgpu-cdi inject --config - amd.com/gpu=0",
            "amdgpu-cdi inject --spec-dir /a --spec-dir=/b --config c.json v.com/c=1 v.com/c=2",
            "amdgpu-cdi inject v.com/c=1 --config c.json",
            "amdgpu-cdi validate",
            "amdgpu-cdi validate a.yaml b.json --spec-dir /etc/cdi",
        ];
        for line in accepted {
            let args = argv(line);
            let full = format!("{:?}", Cli::try_parse_from(&args).expect(line));
            let alone = alone(&args).map(|cli| format!("{cli:?}"));
            assert_eq!(alone.as_deref(), Some(full.as_str()), "{line}");
            assert_eq!(format!("{:?}", Cli::parse_args(args)), full, "{line}");
        }
        let refused = [
            "amdgpu-cdi hook",
            "amdgpu-cdi hook --help",
            "amdgpu-cdi hook --bogus precreate",
            "amdgpu-cdi inject",
            "amdgpu-cdi inject --config c.json",
            "amdgpu-cdi inject --help",
            "amdgpu-cdi inject --version",
            "amdgpu-cdi validate --spec-dir",
            "amdgpu-cdi validate -h",
        ];
        for line in refused {
            let args = argv(line);
            assert!(alone(&args).is_none(), "{line} must go to the full parser");
            assert!(Cli::try_parse_from(&args).is_err(), "{line}");
        }
    }
}
