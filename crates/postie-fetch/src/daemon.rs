//! `postie fetch --daemon`: every account on its own schedule. Each account is polled at
//! start, then after its interval (its own `interval`, else `--interval`), backing off after
//! failures; each poll runs on a thread of its own, so a server that hangs delays only its
//! account. SIGUSR1 polls every account at once; SIGHUP re-reads the configuration and polls
//! every account of the new one, and a configuration that does not load is logged and the
//! running one kept.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::Account;
use crate::engine::RunOptions;
use crate::error::FetchError;
use crate::poll::{self, unix_now, Polled, Report};
use crate::schedule;
use crate::status_http::{self, StatusSource};

/// How often the scheduler looks at the clock and the signal flags.
const TICK: Duration = Duration::from_millis(200);

/// What the daemon runs, as loaded from the configuration (again on SIGHUP).
#[derive(Debug, Clone)]
pub struct Setup {
    pub accounts: Vec<Account>,
    pub options: RunOptions,
    /// The interval of accounts without their own.
    pub interval: Duration,
    pub status_listen: Option<SocketAddr>,
}

/// Loads the setup again (SIGHUP); its error is shown as it is.
pub type Load<'a> = dyn Fn() -> Result<Setup, String> + 'a;

/// One account's place in the schedule.
struct Slot {
    account: Account,
    due: Instant,
    running: bool,
}

/// Runs `setup` until the process is killed, re-reading it with `load` on SIGHUP; returns
/// only if it cannot start. `fixed_now` is the hidden --now of the tests.
pub fn run(
    mut setup: Setup,
    load: &Load,
    fixed_now: Option<u64>,
    report: Arc<dyn Report>,
) -> Result<std::convert::Infallible, FetchError> {
    crate::signals::install().map_err(|source| FetchError::Local {
        what: "install the SIGUSR1 and SIGHUP handlers of",
        path: "postie fetch --daemon".into(),
        source,
    })?;
    let source = Arc::new(Mutex::new(status_source(&setup)));
    if let Some(addr) = setup.status_listen {
        let bound = status_http::serve(addr, source.clone())?;
        report.note(
            None,
            &format!("status on http://{bound}/status and /metrics"),
        );
    }
    let mut slots = slots(&setup, BTreeMap::new());
    let (done_tx, done_rx) = mpsc::channel::<(String, Polled)>();
    loop {
        if crate::signals::take_reload() {
            match load() {
                Ok(new) => {
                    if new.status_listen != setup.status_listen {
                        report.note(None, "SIGHUP: status_listen changed; it takes effect when the daemon restarts");
                    }
                    slots = self::slots(&new, slots);
                    *source.lock().unwrap_or_else(|p| p.into_inner()) = status_source(&new);
                    report.note(None, &format!("SIGHUP: configuration re-read, {} accounts; polling them now", new.accounts.len()));
                    setup = new;
                }
                Err(error) => report.note(
                    None,
                    &format!("SIGHUP: the configuration was not re-read and the running one is kept: {error}"),
                ),
            }
        }
        if crate::signals::take_poll_now() {
            report.note(None, "SIGUSR1: polling every account now");
            for slot in slots.values_mut() {
                slot.due = Instant::now();
            }
        }
        let options = poll::parallel_options(&setup.options, slots.len());
        for slot in slots
            .values_mut()
            .filter(|s| !s.running && s.due <= Instant::now())
        {
            slot.running = true;
            let account = slot.account.clone();
            let interval = account.interval.unwrap_or(setup.interval);
            let mut options = options.clone();
            options.now = fixed_now.unwrap_or_else(unix_now);
            let thread_report = report.clone();
            let done = done_tx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("fetch {}", account.name))
                .spawn(move || {
                    let polled =
                        poll::poll(&account, &options, Some(interval), thread_report.as_ref());
                    let _ = done.send((account.name.clone(), polled));
                });
            if let Err(error) = spawned {
                slot.running = false;
                slot.due = Instant::now() + interval;
                report.note(
                    Some(&slot.account.name),
                    &format!(
                        "cannot start a thread to poll it ({error}); trying again in {} s",
                        interval.as_secs()
                    ),
                );
            }
        }
        match done_rx.recv_timeout(TICK) {
            Ok((name, polled)) => {
                // An account removed by SIGHUP while it was being polled is gone from here.
                if let Some(slot) = slots.get_mut(&name) {
                    let interval = slot.account.interval.unwrap_or(setup.interval);
                    slot.running = false;
                    slot.due = Instant::now()
                        + schedule::next_delay(interval, polled.consecutive_failures);
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            // The scheduler holds a sender itself, so the channel never closes.
            Err(mpsc::RecvTimeoutError::Disconnected) => {}
        }
    }
}

/// The schedule of `setup`'s accounts, all due now; an account still being polled keeps its
/// poll (its result is taken when it ends).
fn slots(setup: &Setup, old: BTreeMap<String, Slot>) -> BTreeMap<String, Slot> {
    setup
        .accounts
        .iter()
        .map(|account| {
            let running = old.get(&account.name).is_some_and(|s| s.running);
            let slot = Slot {
                account: account.clone(),
                due: Instant::now(),
                running,
            };
            (account.name.clone(), slot)
        })
        .collect()
}

fn status_source(setup: &Setup) -> StatusSource {
    StatusSource {
        state_dir: setup.options.state_dir.clone(),
        accounts: setup.accounts.iter().map(|a| a.name.clone()).collect(),
    }
}
