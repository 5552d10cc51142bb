//! Parsing of a runc command line, as engines call the runtime wrapper: runc's global flags
//! (`--root`, `--log`, `--log-format`, `--debug`, `--systemd-cgroup`, `--rootless`, `--criu`), the
//! subcommand, and the bundle of `create`/`run`. Parsing never fails: whatever the wrapper does not
//! understand is passed to the real runtime untouched, which then reports it as runc would.
//!
//! runc parses flags with Go's `flag` package through urfave/cli: `-flag` and `--flag` are the
//! same, values come as `--flag value` or `--flag=value`, global flags end at the subcommand, and
//! subcommand flags may follow positional arguments until a `--`.

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;

use crate::log::LogFormat;

/// Global flags that take a value: runc's, plus crun's `--log-level` and `--cgroup-manager`.
const GLOBAL_VALUE_FLAGS: &[&str] = &[
    "log",
    "log-format",
    "root",
    "criu",
    "rootless",
    "log-level",
    "cgroup-manager",
];

/// Flags of `create` and `run` that take a value (besides `bundle`/`b`).
const CREATE_VALUE_FLAGS: &[&str] = &["bundle", "b", "console-socket", "pid-file", "preserve-fds"];

/// The global options the wrapper needs from a runc command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GlobalOptions {
    /// `--root`: the runtime's state directory.
    pub root: Option<PathBuf>,
    /// `--log`: the file the engine reads errors back from.
    pub log: Option<PathBuf>,
    /// `--log-format`: `text` (default) or `json`.
    pub log_format: LogFormat,
    /// `--debug`.
    pub debug: bool,
    /// `--systemd-cgroup`.
    pub systemd_cgroup: bool,
    /// `--rootless` value (`true`, `false` or `auto`).
    pub rootless: Option<String>,
    /// `--criu` path.
    pub criu: Option<PathBuf>,
    /// `--version` or `-v`: the runtime prints its version and runs nothing.
    pub version: bool,
}

/// What a runc command line asks for, as far as the wrapper is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// The global options.
    pub global: GlobalOptions,
    /// The subcommand, e.g. `create`; `None` for `runc --version` and the like.
    pub subcommand: Option<String>,
    /// For `create` and `run`: the bundle directory (`.` when not given, as runc defaults to the
    /// current directory). `None` for every other subcommand.
    pub bundle: Option<PathBuf>,
}

impl Invocation {
    /// True when this command creates a container from a bundle, so the wrapper edits its config.
    pub fn creates_container(&self) -> bool {
        self.bundle.is_some()
    }
}

/// A flag argument split into its name (without dashes) and an inline `=value`.
fn split_flag(arg: &OsStr) -> Option<(String, Option<OsString>)> {
    let text = arg.to_str()?;
    let name = text.strip_prefix("--").or_else(|| text.strip_prefix('-'))?;
    if name.is_empty() || name.starts_with('-') {
        return None;
    }
    match name.split_once('=') {
        Some((name, value)) => Some((name.to_string(), Some(OsString::from(value)))),
        None => Some((name.to_string(), None)),
    }
}

/// Parses runc's argv without the program name.
pub fn parse(args: &[OsString]) -> Invocation {
    let mut global = GlobalOptions::default();
    let mut rest = args.iter();
    let mut subcommand = None;
    while let Some(arg) = rest.next() {
        if arg == "--" {
            subcommand = rest.next().and_then(|a| a.to_str()).map(str::to_string);
            break;
        }
        let Some((name, inline)) = split_flag(arg) else {
            subcommand = arg.to_str().map(str::to_string);
            break;
        };
        let value = if GLOBAL_VALUE_FLAGS.contains(&name.as_str()) {
            inline.or_else(|| rest.next().cloned())
        } else {
            inline
        };
        let text = value.as_ref().and_then(|v| v.to_str()).map(str::to_string);
        match name.as_str() {
            "root" => global.root = value.map(PathBuf::from),
            "log" => {
                global.log = value
                    .map(PathBuf::from)
                    .filter(|p| !p.as_os_str().is_empty())
            }
            "log-format" => global.log_format = LogFormat::from_flag(text.as_deref().unwrap_or("")),
            "criu" => global.criu = value.map(PathBuf::from),
            "rootless" => global.rootless = text,
            "debug" => global.debug = text.as_deref() != Some("false"),
            "systemd-cgroup" => global.systemd_cgroup = text.as_deref() != Some("false"),
            "version" | "v" => global.version = text.as_deref() != Some("false"),
            _ => {}
        }
    }
    let bundle = match subcommand.as_deref() {
        Some("create" | "run") => Some(create_bundle(rest.as_slice())),
        _ => None,
    };
    Invocation {
        global,
        subcommand,
        bundle,
    }
}

/// Finds `--bundle`/`-b` among the arguments of `create`/`run`; `.` when absent.
fn create_bundle(args: &[OsString]) -> PathBuf {
    let mut bundle = None;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        if arg == "--" {
            break;
        }
        let Some((name, inline)) = split_flag(arg) else {
            continue;
        };
        if !CREATE_VALUE_FLAGS.contains(&name.as_str()) {
            continue;
        }
        let value = inline.or_else(|| rest.next().cloned());
        if name == "bundle" || name == "b" {
            bundle = value;
        }
    }
    bundle
        .filter(|b| !b.is_empty())
        .map_or_else(|| PathBuf::from("."), PathBuf::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(line: &str) -> Vec<OsString> {
        line.split_whitespace().map(OsString::from).collect()
    }

    /// Every runc 1.1 subcommand, with typical arguments as engines pass them.
    const PASS_THROUGH: &[&str] = &[
        "checkpoint --image-path /ckpt --leave-running c1",
        "delete --force c1",
        "events --interval 5s --stats c1",
        "exec --process /run/p.json --detach --pid-file /run/pid c1",
        "exec -t c1 sh -c --bundle",
        "init",
        "kill --all c1 KILL",
        "list --format json",
        "pause c1",
        "ps --format json c1",
        "restore --bundle /b --image-path /ckpt c1",
        "resume c1",
        "spec --bundle /b --rootless",
        "start c1",
        "state c1",
        "update --memory 1g c1",
        "features",
        "help create",
    ];

    #[test]
    fn every_other_subcommand_passes_through() {
        for line in PASS_THROUGH {
            let full = format!("--root /run/runc --log /l.json --log-format json {line}");
            let inv = parse(&argv(&full));
            assert!(!inv.creates_container(), "{line}");
            let expected = line.split_whitespace().next().map(str::to_string);
            assert_eq!(inv.subcommand, expected, "{line}");
            assert_eq!(
                inv.global.log.as_deref(),
                Some(std::path::Path::new("/l.json"))
            );
        }
    }

    #[test]
    fn create_finds_the_bundle_in_every_spelling() {
        for line in [
            "create --bundle /b c1",
            "create --bundle=/b c1",
            "create -b /b c1",
            "create -b=/b c1",
            "create -bundle /b c1",
            "create --console-socket /s --pid-file /p -b /b c1",
            "create c1 --bundle /b",
            "create --pid-file -b --bundle /b c1",
            "run --detach -b /b c1",
        ] {
            let inv = parse(&argv(line));
            assert_eq!(inv.bundle, Some(PathBuf::from("/b")), "{line}");
        }
    }

    #[test]
    fn create_without_bundle_means_the_current_directory() {
        let inv = parse(&argv("create --pid-file /p c1"));
        assert_eq!(inv.bundle, Some(PathBuf::from(".")));
        let inv = parse(&argv("create c1 -- --bundle /b"));
        assert_eq!(inv.bundle, Some(PathBuf::from(".")));
    }

    #[test]
    fn global_flags_as_containerd_and_docker_pass_them() {
        let inv = parse(&argv(
            "--root /run/containerd/runc/moby --log /run/x/log.json --log-format json \
             --systemd-cgroup create --bundle /run/x c1",
        ));
        assert_eq!(
            inv.global.root,
            Some(PathBuf::from("/run/containerd/runc/moby"))
        );
        assert_eq!(inv.global.log_format, LogFormat::Json);
        assert!(inv.global.systemd_cgroup);
        assert!(!inv.global.debug);
        assert_eq!(inv.subcommand.as_deref(), Some("create"));
        assert_eq!(inv.bundle, Some(PathBuf::from("/run/x")));
    }

    #[test]
    fn single_dash_and_inline_global_values() {
        let inv = parse(&argv(
            "-root=/r -log /l -log-format=text --debug --rootless=auto --criu /usr/sbin/criu state c1",
        ));
        assert_eq!(inv.global.root, Some(PathBuf::from("/r")));
        assert_eq!(inv.global.log, Some(PathBuf::from("/l")));
        assert_eq!(inv.global.log_format, LogFormat::Text);
        assert!(inv.global.debug);
        assert_eq!(inv.global.rootless.as_deref(), Some("auto"));
        assert_eq!(inv.global.criu, Some(PathBuf::from("/usr/sbin/criu")));
        assert_eq!(inv.subcommand.as_deref(), Some("state"));
    }

    #[test]
    fn crun_value_flags_do_not_hide_the_subcommand() {
        let inv = parse(&argv(
            "--log-level error --cgroup-manager cgroupfs --root /r create -b /b c1",
        ));
        assert_eq!(inv.subcommand.as_deref(), Some("create"));
        assert_eq!(inv.bundle, Some(PathBuf::from("/b")));
    }

    #[test]
    fn no_subcommand() {
        for line in ["--version", "-v", "--help", ""] {
            let inv = parse(&argv(line));
            assert_eq!(inv.subcommand, None, "{line}");
            assert!(!inv.creates_container());
        }
    }

    #[test]
    fn version_flags() {
        for (line, asked) in [
            ("--version", true),
            ("-v", true),
            ("-version", true),
            ("--debug --version", true),
            ("--version=false", false),
            ("--help", false),
            ("state v", false),
            ("create --bundle /b -v c1", false),
        ] {
            assert_eq!(parse(&argv(line)).global.version, asked, "{line}");
        }
    }

    #[test]
    fn non_utf8_arguments_do_not_panic() {
        use std::os::unix::ffi::OsStringExt;
        let odd = OsString::from_vec(vec![0xff, 0xfe]);
        let inv = parse(&[OsString::from("create"), OsString::from("-b"), odd.clone()]);
        assert_eq!(inv.bundle, Some(PathBuf::from(odd.clone())));
        let inv = parse(&[odd]);
        assert_eq!(inv.subcommand, None);
    }
}
