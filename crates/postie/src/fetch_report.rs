//! How `postie fetch` tells what happened: each account's summary line and the notes of the
//! daemon (warnings, hooks that failed, signals), as `postie fetch: …` lines on standard
//! error, or with `--log-format json` as JSON lines, the way `postie serve` logs.

use postie_fetch::poll::Report;
use postie_fetch::{Account, FetchError, Summary};

use crate::cli::LogFormat;

pub struct FetchReport {
    pub format: LogFormat,
}

/// `work: 3 fetched (1500 octets), 3 deleted, 0 kept in 0.2 s`.
fn summary_line(account: &Account, summary: &Summary) -> String {
    let mut line = format!(
        "{}: {} fetched ({} octets), {} deleted, {} kept",
        account.name, summary.fetched, summary.bytes, summary.deleted, summary.kept
    );
    if summary.headers_only > 0 {
        line.push_str(&format!(
            ", {} headers only (over max_size)",
            summary.headers_only
        ));
    }
    if summary.skipped > 0 {
        line.push_str(&format!(", {} skipped (over max_size)", summary.skipped));
    }
    if summary.completed > 0 {
        line.push_str(&format!(
            ", {} stubs replaced by the whole message",
            summary.completed
        ));
    }
    if summary.left > 0 {
        line.push_str(&format!(", {} left unread by a rule", summary.left));
    }
    if summary.recovered > 0 {
        line.push_str(&format!(
            ", {} completed from an interrupted run",
            summary.recovered
        ));
    }
    if summary.sessions > 1 {
        line.push_str(&format!(", {} sessions", summary.sessions));
    }
    line.push_str(&format!(" in {:.1} s", summary.elapsed.as_secs_f64()));
    line
}

impl Report for FetchReport {
    fn outcome(&self, account: &Account, result: &Result<Summary, FetchError>) {
        match (result, self.format) {
            (Ok(summary), LogFormat::Text) => {
                eprintln!("postie fetch: {}", summary_line(account, summary));
                for problem in &summary.problems {
                    eprintln!("postie fetch: {}: {problem}", account.name);
                }
                for warning in &summary.warnings {
                    eprintln!("postie fetch: {}: warning: {warning}", account.name);
                }
            }
            (Ok(summary), LogFormat::Json) => {
                tracing::info!(
                    account = %account.name,
                    fetched = summary.fetched,
                    bytes = summary.bytes,
                    deleted = summary.deleted,
                    kept = summary.kept,
                    headers_only = summary.headers_only,
                    "{}",
                    summary_line(account, summary)
                );
                for warning in &summary.warnings {
                    tracing::warn!(account = %account.name, "warning: {warning}");
                }
                for problem in &summary.problems {
                    tracing::warn!(account = %account.name, "{problem}");
                }
            }
            (Err(error), LogFormat::Text) => eprintln!("postie fetch: {}: {error}", account.name),
            (Err(error), LogFormat::Json) => tracing::warn!(
                account = %account.name,
                exit_status = error.exit_status().code(),
                "{error}"
            ),
        }
    }

    fn note(&self, account: Option<&str>, message: &str) {
        match (account, self.format) {
            (Some(account), LogFormat::Text) => eprintln!("postie fetch: {account}: {message}"),
            (None, LogFormat::Text) => eprintln!("postie fetch: {message}"),
            (Some(account), LogFormat::Json) => tracing::info!(account, "{message}"),
            (None, LogFormat::Json) => tracing::info!("{message}"),
        }
    }
}
