//! What each account's runs have done, for `postie fetch status`, the daemon's status port and
//! the backoff: one small JSON file per account in the state folder
//! (`ACCOUNT.status.json`), replaced atomically after every run, one-shot or daemon, so a
//! reader never sees half of one and the count of failures in a row survives a restart.

use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::engine::Summary;
use crate::error::{FetchError, LocalContext};
use crate::schedule;

/// One account's record. Times are seconds since the epoch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AccountStatus {
    pub account: String,
    /// Runs, successful or not.
    pub checks: u64,
    pub last_check: Option<u64>,
    pub last_success: Option<u64>,
    /// Messages (whole or headers only) and octets stored by the last run.
    pub last_run_messages: u64,
    pub last_run_bytes: u64,
    pub total_messages: u64,
    pub total_bytes: u64,
    pub consecutive_failures: u32,
    pub last_error: Option<String>,
    pub last_error_at: Option<u64>,
    /// When the daemon polls next; `None` after a one-shot run (a timer decides).
    pub next_poll: Option<u64>,
}

impl AccountStatus {
    pub fn new(account: &str) -> AccountStatus {
        AccountStatus {
            account: account.to_owned(),
            ..AccountStatus::default()
        }
    }

    pub fn path(dir: &Path, account: &str) -> PathBuf {
        dir.join(format!("{account}.status.json"))
    }

    /// The record of `account`, or a fresh one if it has never run.
    pub fn load(dir: &Path, account: &str) -> Result<AccountStatus, FetchError> {
        let path = Self::path(dir, account);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| FetchError::Local {
                what: "read the status file",
                path,
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{e}; delete it to start its counts again"),
                ),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(AccountStatus::new(account)),
            Err(e) => Err(e).local("read the status file", &path),
        }
    }

    /// Writes the record: a temporary file, fsync, rename, fsync of the folder.
    pub fn save(&self, dir: &Path) -> Result<(), FetchError> {
        let path = Self::path(dir, &self.account);
        // The process id in the name: a one-shot run refused by the daemon's lock records its
        // failure while the daemon may be recording the account's success.
        let temporary = dir.join(format!(
            ".{}.status.json.{}.tmp",
            self.account,
            std::process::id()
        ));
        let mut json = serde_json::to_vec_pretty(self).map_err(|e| FetchError::Local {
            what: "encode the status file",
            path: path.clone(),
            source: std::io::Error::other(e),
        })?;
        json.push(b'\n');
        let mut file = fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(&temporary)
            .local("create", &temporary)?;
        file.write_all(&json).local("write", &temporary)?;
        file.sync_all().local("fsync", &temporary)?;
        fs::rename(&temporary, &path).local("rename into place", &path)?;
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .local("fsync the folder of", &path)
    }

    /// A run that stored `summary` at `now`; `interval` when the daemon polls again.
    pub fn record_success(&mut self, now: u64, summary: &Summary, interval: Option<Duration>) {
        self.checks += 1;
        self.last_check = Some(now);
        self.last_success = Some(now);
        self.last_run_messages = summary.fetched + summary.headers_only;
        self.last_run_bytes = summary.bytes;
        self.total_messages += self.last_run_messages;
        self.total_bytes += summary.bytes;
        self.consecutive_failures = 0;
        self.next_poll = interval.map(|i| now.saturating_add(i.as_secs()));
    }

    /// A run that failed at `now`; the next poll backs off by the failures in a row.
    pub fn record_failure(&mut self, now: u64, error: &str, interval: Option<Duration>) {
        self.checks += 1;
        self.last_check = Some(now);
        self.last_run_messages = 0;
        self.last_run_bytes = 0;
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        self.last_error = Some(error.to_owned());
        self.last_error_at = Some(now);
        self.next_poll = interval.map(|i| {
            now.saturating_add(schedule::next_delay(i, self.consecutive_failures).as_secs())
        });
    }
}

/// The records as `postie fetch status` shows them, with times relative to `now`.
pub fn text(statuses: &[AccountStatus], now: u64) -> String {
    let mut out = String::new();
    for status in statuses {
        let _ = writeln!(out, "{}", status.account);
        let _ = writeln!(out, "  last check    {}", when(status.last_check, now));
        let _ = writeln!(out, "  last success  {}", when(status.last_success, now));
        let _ = writeln!(
            out,
            "  last run      {} messages, {} octets",
            status.last_run_messages, status.last_run_bytes
        );
        let _ = writeln!(
            out,
            "  in all        {} messages, {} octets, {} checks",
            status.total_messages, status.total_bytes, status.checks
        );
        if let Some(error) = &status.last_error {
            let _ = writeln!(
                out,
                "  last error    {} ({error})",
                when(status.last_error_at, now)
            );
        }
        if status.consecutive_failures > 0 {
            let _ = writeln!(
                out,
                "  failing       {} runs in a row",
                status.consecutive_failures
            );
        }
        let next = match status.next_poll {
            Some(_) => when(status.next_poll, now),
            None => "when the timer or the daemon runs it".to_owned(),
        };
        let _ = writeln!(out, "  next poll     {next}");
    }
    out
}

/// `Fri Dec  4 20:53:33 2026 UTC (5 min ago)`, or `never`.
fn when(time: Option<u64>, now: u64) -> String {
    let Some(time) = time else {
        return "never".to_owned();
    };
    let relative = if time <= now {
        format!("{} ago", span(now - time))
    } else {
        format!("in {}", span(time - now))
    };
    format!("{} UTC ({relative})", crate::dest::mbox::asctime(time))
}

fn span(secs: u64) -> String {
    match secs {
        0..120 => format!("{secs} s"),
        120..7200 => format!("{} min", secs / 60),
        7200..172_800 => format!("{} h", secs / 3600),
        _ => format!("{} days", secs / 86_400),
    }
}

/// The records in Prometheus' text format, one series per account.
pub fn prometheus(statuses: &[AccountStatus]) -> String {
    type Field = fn(&AccountStatus) -> Option<u64>;
    let families: [(&str, &str, &str, Field); 9] = [
        (
            "postie_fetch_checks_total",
            "counter",
            "Runs of the account, successful or not.",
            |s| Some(s.checks),
        ),
        (
            "postie_fetch_messages_total",
            "counter",
            "Messages stored, whole or headers only.",
            |s| Some(s.total_messages),
        ),
        (
            "postie_fetch_bytes_total",
            "counter",
            "Octets of the messages stored.",
            |s| Some(s.total_bytes),
        ),
        (
            "postie_fetch_last_run_messages",
            "gauge",
            "Messages stored by the last run.",
            |s| Some(s.last_run_messages),
        ),
        (
            "postie_fetch_last_run_bytes",
            "gauge",
            "Octets stored by the last run.",
            |s| Some(s.last_run_bytes),
        ),
        (
            "postie_fetch_consecutive_failures",
            "gauge",
            "Failed runs since the last success.",
            |s| Some(u64::from(s.consecutive_failures)),
        ),
        (
            "postie_fetch_last_check_timestamp_seconds",
            "gauge",
            "When the account was last run.",
            |s| s.last_check,
        ),
        (
            "postie_fetch_last_success_timestamp_seconds",
            "gauge",
            "When a run of the account last succeeded.",
            |s| s.last_success,
        ),
        (
            "postie_fetch_next_poll_timestamp_seconds",
            "gauge",
            "When the daemon polls the account next.",
            |s| s.next_poll,
        ),
    ];
    let mut out = String::new();
    for (name, kind, help, field) in families {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for status in statuses {
            if let Some(value) = field(status) {
                let _ = writeln!(
                    out,
                    "{name}{{account=\"{}\"}} {value}",
                    label(&status.account)
                );
            }
        }
    }
    out
}

/// A label value with `\`, `"` and line feeds escaped.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_a_save_and_count_runs() {
        let dir = tempfile::tempdir().unwrap();
        let mut status = AccountStatus::load(dir.path(), "work").unwrap();
        assert_eq!(status, AccountStatus::new("work"));
        let minute = Some(Duration::from_secs(60));
        status.record_failure(1000, "refused", minute);
        status.record_failure(1100, "refused", minute);
        assert_eq!(status.consecutive_failures, 2);
        assert_eq!(status.next_poll, Some(1100 + 240));
        let summary = Summary {
            fetched: 2,
            headers_only: 1,
            bytes: 500,
            ..Summary::default()
        };
        status.record_success(1200, &summary, minute);
        status.record_success(1300, &summary, None);
        status.save(dir.path()).unwrap();
        let read = AccountStatus::load(dir.path(), "work").unwrap();
        assert_eq!(read, status);
        assert_eq!(
            (read.checks, read.total_messages, read.total_bytes),
            (4, 6, 1000)
        );
        assert_eq!((read.consecutive_failures, read.next_poll), (0, None));
        assert_eq!(
            read.last_error.as_deref(),
            Some("refused"),
            "the last error stays on view"
        );

        std::fs::write(AccountStatus::path(dir.path(), "work"), "{").unwrap();
        let error = AccountStatus::load(dir.path(), "work")
            .unwrap_err()
            .to_string();
        assert!(error.contains("delete it"), "{error}");
    }

    #[test]
    fn text_for_people() {
        let mut status = AccountStatus::new("work");
        status.record_success(
            1_795_738_809,
            &Summary {
                fetched: 2,
                bytes: 90,
                ..Summary::default()
            },
            None,
        );
        status.record_failure(1_795_738_869, "refused", Some(Duration::from_secs(60)));
        let text = text(&[status], 1_795_738_879);
        for line in [
            "work\n",
            "  last success  Fri Nov 27 00:20:09 2026 UTC (70 s ago)\n",
            "  in all        2 messages, 90 octets, 2 checks\n",
            "  last error    Fri Nov 27 00:21:09 2026 UTC (10 s ago) (refused)\n",
            "  failing       1 runs in a row\n",
            "  next poll     Fri Nov 27 00:23:09 2026 UTC (in 110 s)\n",
        ] {
            assert!(text.contains(line), "{line:?} in\n{text}");
        }
    }

    #[test]
    fn prometheus_text() {
        let mut status = AccountStatus::new("a\"b");
        status.total_messages = 3;
        status.last_check = Some(7);
        let text = prometheus(&[status]);
        assert!(
            text.contains("# TYPE postie_fetch_messages_total counter\n"),
            "{text}"
        );
        assert!(
            text.contains("postie_fetch_messages_total{account=\"a\\\"b\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("postie_fetch_last_check_timestamp_seconds{account=\"a\\\"b\"} 7\n"),
            "{text}"
        );
        assert!(
            !text.contains("postie_fetch_last_success_timestamp_seconds{"),
            "{text}"
        );
    }
}
