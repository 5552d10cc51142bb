//! Error lines in the formats container engines read back from a runtime's `--log` file (runc's
//! logrus `json` and `text` formats), and a best-effort append-only detail log. Writing a log never
//! fails the caller: a hook or wrapper must still print its one stderr line and exit.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

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

/// Appends `line` and a newline to `path`, creating it 0600 if needed; errors are ignored.
pub fn append_line(path: &Path, line: &str) {
    use std::os::unix::fs::OpenOptionsExt;
    if let Ok(mut file) = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
    {
        let _ = file.write_all(format!("{line}\n").as_bytes());
    }
}

/// Appends an error line in the engine's format to the engine's `--log` file, if it gave one.
pub fn engine_error(log: Option<&Path>, format: LogFormat, msg: &str) {
    if let Some(path) = log {
        append_line(path, &engine_line(format, "error", msg, SystemTime::now()));
    }
}

/// The operator's detail log (`log-file` in the configuration): timestamped lines, best effort.
#[derive(Debug, Clone, Default)]
pub struct DetailLog {
    path: Option<std::path::PathBuf>,
    component: &'static str,
}

impl DetailLog {
    /// A log writing to `path` (nothing when `None`), tagging lines with `component`.
    pub fn new(path: Option<std::path::PathBuf>, component: &'static str) -> Self {
        Self { path, component }
    }

    /// Appends `time level component: msg`.
    pub fn write(&self, level: &str, msg: &str) {
        if let Some(path) = &self.path {
            let line = format!(
                "{} {level} {}[{}]: {msg}",
                rfc3339(SystemTime::now()),
                self.component,
                std::process::id()
            );
            append_line(path, &line);
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
}
