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
    /// Polled before: --reset-state applies to an account's first poll only, or every poll
    /// would download the whole mailbox again.
    polled: bool,
}

/// Runs `setup` until the process is killed, re-reading it with `load` on SIGHUP; returns
/// only if it cannot start. `fixed_now` is the hidden --now of the tests.
pub fn run(
    setup: Setup,
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
    let (done_tx, done_rx) = mpsc::channel::<(String, Polled)>();
    let mut scheduler = Scheduler {
        slots: slots(&setup, BTreeMap::new()),
        setup,
        source,
        report,
        done_tx,
        fixed_now,
    };
    loop {
        if crate::signals::take_reload() {
            scheduler.reload(load);
        }
        if crate::signals::take_poll_now() {
            scheduler
                .report
                .note(None, "SIGUSR1: polling every account now");
            for slot in scheduler.slots.values_mut() {
                slot.due = Instant::now();
            }
        }
        scheduler.start_due_polls();
        // The scheduler holds a sender itself, so the channel never closes: an error is the
        // tick passing.
        if let Ok((name, polled)) = done_rx.recv_timeout(TICK) {
            scheduler.finished(&name, polled);
        }
    }
}

struct Scheduler {
    setup: Setup,
    slots: BTreeMap<String, Slot>,
    /// What the status port shows, changed by SIGHUP.
    source: Arc<Mutex<StatusSource>>,
    report: Arc<dyn Report>,
    done_tx: mpsc::Sender<(String, Polled)>,
    fixed_now: Option<u64>,
}

impl Scheduler {
    fn reload(&mut self, load: &Load) {
        let new = match load() {
            Ok(new) => new,
            Err(error) => {
                self.report.note(
                    None,
                    &format!(
                        "SIGHUP: the configuration was not re-read and the running one is kept: {error}"
                    ),
                );
                return;
            }
        };
        if new.status_listen != self.setup.status_listen {
            self.report.note(
                None,
                "SIGHUP: status_listen changed; it takes effect when the daemon restarts",
            );
        }
        self.slots = slots(&new, std::mem::take(&mut self.slots));
        *self.source.lock().unwrap_or_else(|p| p.into_inner()) = status_source(&new);
        self.report.note(
            None,
            &format!(
                "SIGHUP: configuration re-read, {} accounts; polling them now",
                new.accounts.len()
            ),
        );
        self.setup = new;
    }

    /// Starts a thread for each account due and not being polled.
    fn start_due_polls(&mut self) {
        let options = poll::parallel_options(&self.setup.options, self.slots.len());
        for slot in self
            .slots
            .values_mut()
            .filter(|s| !s.running && s.due <= Instant::now())
        {
            let account = slot.account.clone();
            let interval = account.interval.unwrap_or(self.setup.interval);
            let mut options = options.clone();
            options.now = self.fixed_now.unwrap_or_else(unix_now);
            options.reset_state &= !slot.polled;
            let report = self.report.clone();
            let done = self.done_tx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("fetch {}", account.name))
                .spawn(move || {
                    let polled = poll::poll(&account, &options, Some(interval), report.as_ref());
                    let _ = done.send((account.name.clone(), polled));
                });
            match spawned {
                Ok(_) => {
                    slot.running = true;
                    slot.polled = true;
                }
                Err(error) => {
                    slot.due = Instant::now() + interval;
                    self.report.note(
                        Some(&slot.account.name),
                        &format!(
                            "cannot start a thread to poll it ({error}); trying again in {} s",
                            interval.as_secs()
                        ),
                    );
                }
            }
        }
    }

    /// A poll has ended: the account is due again after its interval or its backoff.
    fn finished(&mut self, name: &str, polled: Polled) {
        // An account removed by SIGHUP while it was being polled is gone from here.
        if let Some(slot) = self.slots.get_mut(name) {
            let interval = schedule::honouring_login_delay(
                slot.account.interval.unwrap_or(self.setup.interval),
                polled.login_delay,
            );
            slot.running = false;
            slot.due = Instant::now() + schedule::next_delay(interval, polled.consecutive_failures);
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
            let before = old.get(&account.name);
            let slot = Slot {
                account: account.clone(),
                due: Instant::now(),
                running: before.is_some_and(|s| s.running),
                polled: before.is_some_and(|s| s.polled),
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
