//! One poll of one account and what follows it, the same for a one-shot run and the daemon:
//! the fetch, its report, the status record, and the hooks. A one-shot run polls every
//! account at once, each on its own thread with its own timeout, so a server that hangs
//! delays no other account.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::Account;
use crate::engine::{self, RunOptions, Summary};
use crate::error::{ExitStatus, FetchError};
use crate::hooks::{self, HookEvent, HOOK_TIMEOUT};
use crate::progress::ProgressMode;
use crate::status::AccountStatus;

/// Where the results of polls go: the binary writes them as text or JSON log lines.
pub trait Report: Send + Sync {
    /// The result of one account's fetch.
    fn outcome(&self, account: &Account, result: &Result<Summary, FetchError>);
    /// Anything else worth a line: warnings, hooks that failed, signals, re-read
    /// configurations; `account` when it concerns one.
    fn note(&self, account: Option<&str>, message: &str);
}

/// What a poll leaves for the scheduler.
#[derive(Debug, Clone, Copy)]
pub struct Polled {
    pub exit_status: ExitStatus,
    /// Failed polls in a row, this one included: the backoff.
    pub consecutive_failures: u32,
    /// The server's LOGIN-DELAY, when the poll got that far: the next poll waits at least
    /// this long.
    pub login_delay: Option<Duration>,
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Fetches `account` once, records the result in its status file, and runs its hooks.
/// `interval` is when the daemon polls it again (`None` for a one-shot run).
pub fn poll(
    account: &Account,
    options: &RunOptions,
    interval: Option<Duration>,
    report: &dyn Report,
) -> Polled {
    for warning in engine::warnings(account) {
        report.note(Some(&account.name), &format!("warning: {warning}"));
    }
    let result = crate::drain::fetch(account, options);
    report.outcome(account, &result);
    let exit_status = match &result {
        Ok(summary) if summary.problems.is_empty() => ExitStatus::Ok,
        Ok(_) => ExitStatus::TempFail,
        Err(error) => error.exit_status(),
    };

    let mut status = AccountStatus::load(&options.state_dir, &account.name).unwrap_or_else(|e| {
        report.note(
            Some(&account.name),
            &format!("{e}; starting its counts again"),
        );
        AccountStatus::new(&account.name)
    });
    let failures_before = status.consecutive_failures;
    let error_before = status.last_error.clone().unwrap_or_default();
    let now = unix_now();
    match &result {
        Ok(summary) => status.record_success(now, summary, interval),
        Err(error) => status.record_failure(now, &error.to_string(), interval),
    }
    if let Err(error) = status.save(&options.state_dir) {
        report.note(Some(&account.name), &error.to_string());
    }

    let mut events = Vec::new();
    let error_text = result.as_ref().err().map(ToString::to_string);
    match &result {
        Ok(summary) => {
            if failures_before > 0 {
                events.push(HookEvent::Recovery {
                    error: &error_before,
                    failures: failures_before,
                });
            }
            let messages = summary.fetched + summary.headers_only;
            if messages > 0 {
                events.push(HookEvent::NewMail {
                    messages,
                    bytes: summary.bytes,
                    subjects: &summary.subjects,
                });
            }
        }
        Err(_) if status.consecutive_failures == 1 => events.push(HookEvent::Failure {
            error: error_text.as_deref().unwrap_or_default(),
            exit_status: exit_status.code(),
        }),
        Err(_) => {}
    }
    for event in &events {
        if let Err(error) = hooks::run(&account.hooks, &account.name, event, HOOK_TIMEOUT) {
            report.note(Some(&account.name), &error.to_string());
        }
    }
    Polled {
        exit_status,
        consecutive_failures: status.consecutive_failures,
        login_delay: result.as_ref().ok().and_then(|s| s.login_delay),
    }
}

/// Polls every account once, all at the same time; the first failure's status, in the
/// accounts' order.
pub fn poll_all(accounts: &[Account], options: &RunOptions, report: &dyn Report) -> ExitStatus {
    let options = parallel_options(options, accounts.len());
    let results: Vec<Polled> = std::thread::scope(|scope| {
        let running: Vec<_> = accounts
            .iter()
            .map(|account| scope.spawn(|| poll(account, &options, None, report)))
            .collect();
        running
            .into_iter()
            .map(|thread| {
                thread.join().unwrap_or(Polled {
                    exit_status: ExitStatus::IoError,
                    consecutive_failures: 0,
                    login_delay: None,
                })
            })
            .collect()
    });
    results
        .iter()
        .map(|polled| polled.exit_status)
        .find(|status| *status != ExitStatus::Ok)
        .unwrap_or(ExitStatus::Ok)
}

/// Progress bars of accounts fetched at the same time would draw over each other: several
/// accounts log lines instead.
pub fn parallel_options(options: &RunOptions, accounts: usize) -> RunOptions {
    let mut options = options.clone();
    if accounts > 1 && options.progress == ProgressMode::Bar {
        options.progress = ProgressMode::Log;
    }
    options
}
