//! Error lines in the formats container engines read back from a runtime's `--log` file (runc's
//! logrus `json` and `text` formats), and the operator's append-only detail log. Writing a log
//! never fails the caller: a hook or wrapper must still print its one stderr line and exit.
//!
//! Each message is one line: the detail log escapes it with [`cdi::text::escape`], and the
//! engine's formats quote it (JSON, logrus `%q`), so a request value holding a newline cannot
//! forge a second log line. The detail log (`log-file`, a path from the
//! settings file that root writes to) is opened only as a regular file, never through a symbolic
//! link, and never in a directory that other users could plant files in: see [`DetailLog::new`].
//! The engine's `--log` is the engine's choice and is opened as runc opens it, but without
//! blocking on a FIFO that nobody reads.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use cdi::text::{escape, file_type};
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat};
use nix::sys::stat::{Mode, SFlag, fstat, fstatat};

/// The `--log-format` of runc and compatible runtimes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// logrus text: `time="..." level=error msg="..."` (runc's default).
    #[default]
    Text,
    /// logrus JSON: `{"level":"error","msg":"...","time":"..."}`.
    Json,
}

impl LogFormat {
    /// Parses a `--log-format` value; anything but `json` is text, as runc falls back.
    pub fn from_flag(value: &str) -> Self {
        if value == "json" {
            Self::Json
        } else {
            Self::Text
        }
    }
}

/// Formats `time` as RFC 3339 in UTC with second precision, e.g. `2026-11-24T00:04:08Z`.
pub fn rfc3339(time: SystemTime) -> String {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let month = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// One engine log line (without the newline) at `level` in `format`.
pub fn engine_line(format: LogFormat, level: &str, msg: &str, time: SystemTime) -> String {
    let time = rfc3339(time);
    match format {
        LogFormat::Json => {
            serde_json::json!({"level": level, "msg": msg, "time": time}).to_string()
        }
        LogFormat::Text => format!("time={} level={level} msg={}", quote(&time), quote(msg)),
    }
}

/// Quotes a logrus text value the way Go's `%q` does for the characters that occur in messages.
fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Appends an error line in the engine's format to the engine's `--log` file, if it gave one.
/// The engine chose the path, so it is opened as runc opens it (symbolic links followed, created
/// 0644 if missing), except that a FIFO nobody reads is skipped instead of blocking; errors are
/// ignored.
pub fn engine_error(log: Option<&Path>, format: LogFormat, msg: &str) {
    let Some(path) = log else { return };
    let line = engine_line(format, "error", msg, SystemTime::now());
    if let Ok(mut file) = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o644)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(path)
    {
        let _ = file.write_all(format!("{line}\n").as_bytes());
    }
}

/// Why the detail log is not written. The caller reports it once on stderr and carries on.
#[derive(Debug, thiserror::Error)]
pub enum LogFileError {
    /// The path has no file name.
    #[error("cannot write the detail log {}: it names no file", path.display())]
    NoFileName {
        /// The configured path.
        path: PathBuf,
    },
    /// Other users could create or replace files in the log's directory.
    #[error(
        "refusing to write the detail log {}: its directory is writable by {} without the sticky \
         bit (mode {mode:04o}; use a directory only root can write to)",
        path.display(),
        if mode & 0o002 != 0 { "others" } else { "its group" }
    )]
    UnsafeDirectory {
        /// The configured path.
        path: PathBuf,
        /// The directory's permission bits.
        mode: u32,
    },
    /// The path is a symbolic link.
    #[error(
        "refusing to write the detail log {}: it is a symbolic link (the log is never written \
         through a link; name the real file)",
        path.display()
    )]
    Symlink {
        /// The configured path.
        path: PathBuf,
    },
    /// The path is not a regular file.
    #[error("refusing to write the detail log {}: it is {kind}, not a regular file", path.display())]
    NotRegular {
        /// The configured path.
        path: PathBuf,
        /// What it is, e.g. `a FIFO`.
        kind: &'static str,
    },
    /// Opening failed for another reason (missing directory, permissions).
    #[error("cannot write the detail log {}: {source}", path.display())]
    Open {
        /// The configured path.
        path: PathBuf,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
}

/// Opens the detail log for appending: the directory must not be writable by group or others
/// unless it has the sticky bit; the file is created 0600 if missing, and must be a regular file.
/// An existing entry is inspected before it is opened (a device or FIFO is never opened), and the
/// open uses `O_NOFOLLOW | O_APPEND | O_NONBLOCK | O_NOCTTY | O_CLOEXEC` relative to the
/// directory, then checks what it opened.
fn open_detail_log(path: &Path) -> Result<File, LogFileError> {
    let fail = |source: Errno| LogFileError::Open {
        path: path.to_path_buf(),
        source: source.into(),
    };
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(LogFileError::NoFileName {
            path: path.to_path_buf(),
        });
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let dir_fd = cdi::write::open_dir(dir).map_err(|source| LogFileError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    let dir_mode = fstat(dir_fd.as_fd()).map_err(fail)?.st_mode;
    if dir_mode & 0o022 != 0 && !Mode::from_bits_truncate(dir_mode).contains(Mode::S_ISVTX) {
        return Err(LogFileError::UnsafeDirectory {
            path: path.to_path_buf(),
            mode: dir_mode & 0o7777,
        });
    }
    let not_regular = |mode: u32| {
        if mode & SFlag::S_IFMT.bits() == SFlag::S_IFLNK.bits() {
            LogFileError::Symlink {
                path: path.to_path_buf(),
            }
        } else {
            LogFileError::NotRegular {
                path: path.to_path_buf(),
                kind: file_type(mode),
            }
        }
    };
    match fstatat(dir_fd.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) if st.st_mode & SFlag::S_IFMT.bits() != SFlag::S_IFREG.bits() => {
            return Err(not_regular(st.st_mode));
        }
        Ok(_) | Err(Errno::ENOENT) => {}
        Err(errno) => return Err(fail(errno)),
    }
    let fd = openat(
        dir_fd.as_fd(),
        name,
        OFlag::O_WRONLY
            | OFlag::O_APPEND
            | OFlag::O_CREAT
            | OFlag::O_NOFOLLOW
            | OFlag::O_NONBLOCK
            | OFlag::O_NOCTTY
            | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o600),
    )
    .map_err(|errno| match errno {
        // Replaced between the check and the open.
        Errno::ELOOP => LogFileError::Symlink {
            path: path.to_path_buf(),
        },
        Errno::ENXIO => not_regular(SFlag::S_IFIFO.bits()),
        Errno::EISDIR => not_regular(SFlag::S_IFDIR.bits()),
        errno => fail(errno),
    })?;
    let mode = fstat(fd.as_fd()).map_err(fail)?.st_mode;
    if mode & SFlag::S_IFMT.bits() != SFlag::S_IFREG.bits() {
        return Err(not_regular(mode));
    }
    Ok(File::from(fd))
}

/// The operator's detail log (`log-file` in the configuration): timestamped lines, best effort.
#[derive(Debug, Default)]
pub struct DetailLog {
    file: Option<File>,
    problem: Option<LogFileError>,
    component: &'static str,
}

impl DetailLog {
    /// A log appending to `path` (nothing when `None`), tagging lines with `component`. The file
    /// is opened now: only as a regular file (created 0600), never through a symbolic link, with
    /// `O_NOFOLLOW | O_APPEND | O_NONBLOCK | O_CLOEXEC`, and not in a directory group or others
    /// can write to without the sticky bit. When that fails the log writes nothing and
    /// [`DetailLog::problem`] says why, for the caller to report once.
    pub fn new(path: Option<PathBuf>, component: &'static str) -> Self {
        let (file, problem) = match path.as_deref().map(open_detail_log) {
            None => (None, None),
            Some(Ok(file)) => (Some(file), None),
            Some(Err(problem)) => (None, Some(problem)),
        };
        Self {
            file,
            problem,
            component,
        }
    }

    /// Why the configured log cannot be written, if it cannot.
    pub fn problem(&self) -> Option<&LogFileError> {
        self.problem.as_ref()
    }

    /// Appends `time level component[pid]: msg`, with `msg` escaped, in one `write`.
    pub fn write(&self, level: &str, msg: &str) {
        if let Some(mut file) = self.file.as_ref() {
            let line = format!(
                "{} {level} {}[{}]: {}\n",
                rfc3339(SystemTime::now()),
                self.component,
                std::process::id(),
                escape(msg)
            );
            let _ = file.write_all(line.as_bytes());
        }
    }

    /// Appends an `info` line.
    pub fn info(&self, msg: &str) {
        self.write("info", msg);
    }

    /// Appends a `warning` line.
    pub fn warn(&self, msg: &str) {
        self.write("warning", msg);
    }

    /// Appends an `error` line.
    pub fn error(&self, msg: &str) {
        self.write("error", msg);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_709_210_096); // leap-year February
        assert_eq!(rfc3339(t), "2024-02-29T12:34:56Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_795_478_648);
        assert_eq!(rfc3339(t), "2026-11-24T00:04:08Z");
    }

    #[test]
    fn json_lines_match_runc() {
        let line = engine_line(LogFormat::Json, "error", "no \"GPU\" 9", UNIX_EPOCH);
        assert_eq!(
            line,
            r#"{"level":"error","msg":"no \"GPU\" 9","time":"1970-01-01T00:00:00Z"}"#
        );
    }

    #[test]
    fn text_lines_match_logrus() {
        let line = engine_line(LogFormat::Text, "error", "bad \"x\"\nnext", UNIX_EPOCH);
        assert_eq!(
            line,
            r#"time="1970-01-01T00:00:00Z" level=error msg="bad \"x\"\nnext""#
        );
    }

    #[test]
    fn engine_error_appends_and_never_fails() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("log.json");
        engine_error(Some(&log), LogFormat::Json, "one");
        engine_error(Some(&log), LogFormat::Json, "two");
        engine_error(
            Some(&dir.path().join("missing/dir/log")),
            LogFormat::Text,
            "lost",
        );
        let text = std::fs::read_to_string(&log).expect("log written");
        assert_eq!(text.lines().count(), 2);
        assert!(
            text.lines()
                .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok())
        );
    }

    fn read(path: &Path) -> String {
        std::fs::read_to_string(path).expect("log written")
    }

    #[test]
    fn detail_log_lines_escape_forged_newlines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("detail.log");
        let log = DetailLog::new(Some(path.clone()), "prestart");
        assert!(log.problem().is_none());
        log.error(
            "AMD_VISIBLE_DEVICES=1\n2026-01-01T00:00:00Z info prestart[1]: FORGED\r\u{1b}[2K",
        );
        let text = read(&path);
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(
            text.contains(
                " error prestart[",
            ) && text.ends_with(
                "]: AMD_VISIBLE_DEVICES=1\\n2026-01-01T00:00:00Z info prestart[1]: FORGED\\r\\u{1b}[2K\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn engine_lines_stay_one_line_in_both_formats() {
        let msg = "a\nb\r\u{1b}c";
        let json = engine_line(LogFormat::Json, "error", msg, UNIX_EPOCH);
        assert_eq!(json.lines().count(), 1);
        let value: serde_json::Value = serde_json::from_str(&json).expect("json");
        assert_eq!(value["msg"], msg);
        let text = engine_line(LogFormat::Text, "error", msg, UNIX_EPOCH);
        assert_eq!(
            text,
            r#"time="1970-01-01T00:00:00Z" level=error msg="a\nb\r\u001bc""#
        );
    }

    #[test]
    fn detail_log_is_never_written_through_a_symlink() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("target");
        std::fs::write(&target, "precious\n").expect("target");
        let path = dir.path().join("detail.log");
        std::os::unix::fs::symlink(&target, &path).expect("symlink");
        let log = DetailLog::new(Some(path.clone()), "prestart");
        log.error("appended?");
        assert_eq!(read(&target), "precious\n");
        assert_eq!(
            log.problem().map(ToString::to_string),
            Some(format!(
                "refusing to write the detail log {}: it is a symbolic link (the log is never \
                 written through a link; name the real file)",
                path.display()
            ))
        );
        // A dangling link is refused too, and nothing is created at its target.
        let dangling = dir.path().join("dangling.log");
        std::os::unix::fs::symlink(dir.path().join("created"), &dangling).expect("symlink");
        let log = DetailLog::new(Some(dangling), "prestart");
        log.error("x");
        assert!(matches!(log.problem(), Some(LogFileError::Symlink { .. })));
        assert!(!dir.path().join("created").exists());
    }

    #[test]
    fn detail_log_refuses_fifos_without_blocking_and_directories() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fifo = dir.path().join("fifo.log");
        nix::unistd::mkfifo(&fifo, Mode::from_bits_truncate(0o600)).expect("mkfifo");
        let log = DetailLog::new(Some(fifo.clone()), "prestart");
        log.error("x");
        assert_eq!(
            log.problem().map(ToString::to_string),
            Some(format!(
                "refusing to write the detail log {}: it is a FIFO, not a regular file",
                fifo.display()
            ))
        );
        let log = DetailLog::new(Some(dir.path().to_path_buf()), "prestart");
        assert!(
            matches!(
                log.problem(),
                Some(LogFileError::NotRegular {
                    kind: "a directory",
                    ..
                })
            ),
            "{:?}",
            log.problem()
        );
        let log = DetailLog::new(Some(PathBuf::from("/dev/null")), "prestart");
        assert!(
            matches!(
                log.problem(),
                Some(LogFileError::NotRegular {
                    kind: "a character device",
                    ..
                })
            ),
            "{:?}",
            log.problem()
        );
    }

    #[test]
    fn detail_log_refuses_a_directory_others_can_write_without_the_sticky_bit() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("detail.log");
        for (mode, refused) in [
            (0o777, true),
            (0o775, true),
            (0o757, true),
            (0o1777, false),
            (0o755, false),
            (0o700, false),
        ] {
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(mode))
                .expect("chmod");
            let log = DetailLog::new(Some(path.clone()), "prestart");
            log.info("line");
            assert_eq!(
                matches!(log.problem(), Some(LogFileError::UnsafeDirectory { .. })),
                refused,
                "{mode:o}: {:?}",
                log.problem()
            );
        }
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))
            .expect("chmod");
        let log = DetailLog::new(Some(path.clone()), "prestart");
        assert_eq!(
            log.problem().map(ToString::to_string),
            Some(format!(
                "refusing to write the detail log {}: its directory is writable by others without \
                 the sticky bit (mode 0777; use a directory only root can write to)",
                path.display()
            ))
        );
        // Three lines from the safe modes, none from the refused ones; new files are 0600.
        assert_eq!(read(&path).lines().count(), 3);
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_missing_directory_is_a_problem_not_a_failure() {
        let log = DetailLog::new(Some(PathBuf::from("/nonexistent/dir/detail.log")), "x");
        log.error("lost");
        assert_eq!(
            log.problem().map(ToString::to_string),
            Some(
                "cannot write the detail log /nonexistent/dir/detail.log: No such file or \
                 directory (os error 2)"
                    .to_owned()
            )
        );
        assert!(DetailLog::new(None, "x").problem().is_none());
    }
}
