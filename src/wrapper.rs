//! The orchestration of `amdgpu-container-runtime`, the runc-compatible wrapper: on `create` (and
//! `run`, which creates too) it injects the requested GPUs into `<bundle>/config.json`
//! atomically, then execs the configured low-level runtime with the original arguments. Every other
//! subcommand goes straight to the runtime. Errors reach the engine through runc's `--log` file in
//! the engine's `--log-format`, and stderr.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use amdgpu_cdi_oci::bundle;
use amdgpu_cdi_oci::log::{DetailLog, engine_error};
use amdgpu_cdi_oci::runtime_args::{self, Invocation};

use crate::error_text::error_line;
use crate::inject::{self, Outcome};
use crate::paths::WRAPPER_NAME;
use crate::settings::{Overrides, Settings};

/// Why the wrapper could not hand over to the runtime.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The configuration is invalid.
    #[error(transparent)]
    Settings(#[from] crate::settings::SettingsError),
    /// The bundle's config could not be read or written.
    #[error(transparent)]
    Bundle(#[from] amdgpu_cdi_oci::bundle::BundleError),
    /// The requested GPUs could not be injected.
    #[error(transparent)]
    Inject(#[from] Box<inject::InjectError>),
    /// An argument contains a NUL byte and cannot be passed on.
    #[error("argument {0:?} contains a NUL byte")]
    NulArgument(String),
    /// `execv` failed.
    #[error("cannot execute the runtime {path}")]
    Exec {
        /// The runtime.
        path: PathBuf,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
}

/// Edits the bundle when `invocation` creates a container. Returns what was done.
pub fn prepare(
    invocation: &Invocation,
    settings: &Settings,
    log: &DetailLog,
) -> Result<Option<Outcome>, RuntimeError> {
    let Some(bundle_dir) = &invocation.bundle else {
        return Ok(None);
    };
    // One open directory for the read and the rewrite: see `bundle::Bundle`.
    let bundle = bundle::Bundle::open(bundle_dir)?;
    let bytes = bundle.read_config()?;
    let Some(mut config) = inject::parse_if_requesting(&bytes, &bundle.config_path())? else {
        return Ok(Some(Outcome::Unchanged(crate::request::NOTHING_REQUESTED)));
    };
    let outcome = inject::inject(&mut config, settings, log).map_err(Box::new)?;
    if let Outcome::Injected(_) = &outcome {
        bundle.write_config(&config)?;
    }
    Ok(Some(outcome))
}

/// Replaces this process with `runtime`, passing `args` (without argv0) unchanged. The runtime
/// starts as an engine would start it: Rust ignores `SIGPIPE` in every program it builds, and
/// an ignored signal survives `execve`, so the exec restores its default (and an empty signal
/// mask) first.
pub fn exec(runtime: &Path, args: &[OsString]) -> RuntimeError {
    if let Some(arg) = args.iter().find(|arg| arg.as_bytes().contains(&0)) {
        return RuntimeError::NulArgument(arg.to_string_lossy().into_owned());
    }
    let source = std::process::Command::new(runtime).args(args).exec();
    RuntimeError::Exec {
        path: runtime.to_path_buf(),
        source,
    }
}

/// `amdgpu-container-runtime <version>` on stdout, for `--version`: the wrapper's line comes first
/// and the runtime, exec'd next, adds its own (`runc version ...`). The line has no word
/// "version" because Docker reads a runtime's version from the last line holding that word, which
/// stays the runtime's. It is written before the settings are read, so it shows even when they
/// are broken; a closed stdout is no reason to fail.
fn print_version() {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{WRAPPER_NAME} {}", env!("CARGO_PKG_VERSION"));
    let _ = stdout.flush();
}

/// The whole wrapper: `args` is the full argv, `config_env` the value of `AMDGPU_CDI_CONFIG`.
/// Returns only on error (after reporting it), with the exit code to use.
pub fn main(args: &[OsString], config_env: Option<OsString>) -> std::process::ExitCode {
    let args = args.get(1..).unwrap_or_default();
    let invocation = runtime_args::parse(args);
    if invocation.global.version {
        print_version();
    }
    let report = |log: &DetailLog, err: &RuntimeError| {
        let msg = format!("{WRAPPER_NAME}: {}", error_line(err));
        log.error(&msg);
        engine_error(
            invocation.global.log.as_deref(),
            invocation.global.log_format,
            &msg,
        );
        eprintln!("{msg}");
        std::process::ExitCode::from(1)
    };
    let settings = match Settings::load(&Overrides::default(), config_env) {
        Ok(settings) => settings,
        Err(err) => return report(&DetailLog::default(), &err.into()),
    };
    let log = DetailLog::new(settings.log_file.clone(), WRAPPER_NAME);
    if let Some(problem) = log.problem() {
        eprintln!("{WRAPPER_NAME}: warning: {}", error_line(problem));
    }
    match prepare(&invocation, &settings, &log) {
        Ok(Some(Outcome::Injected(names))) => log.info(&format!(
            "{}: injected amd.com/gpu={}",
            invocation
                .bundle
                .as_deref()
                .unwrap_or(Path::new("."))
                .display(),
            names.join(",")
        )),
        Ok(_) => {}
        Err(err) => return report(&log, &err),
    }
    let runtime = match settings.runtime_path() {
        Ok(runtime) => runtime,
        Err(err) => return report(&log, &err.into()),
    };
    let err = exec(&runtime, args);
    report(&log, &err)
}
