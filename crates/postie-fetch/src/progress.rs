//! What a fetch tells the person watching: a progress bar per account (messages, bytes,
//! rate, time left) when stderr is a terminal, plain log lines otherwise.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    Bar,
    Log,
    Quiet,
}

impl ProgressMode {
    /// A bar on a terminal, log lines elsewhere.
    pub fn detect() -> ProgressMode {
        if std::io::stderr().is_terminal() {
            ProgressMode::Bar
        } else {
            ProgressMode::Log
        }
    }
}

/// Log lines come at most this often, so a big mailbox does not flood a log file.
const LOG_EVERY: Duration = Duration::from_secs(5);

pub struct Progress {
    mode: ProgressMode,
    account: String,
    bar: Option<ProgressBar>,
    messages: u64,
    total_messages: u64,
    bytes: u64,
    total_bytes: u64,
    last_log: Instant,
}

impl Progress {
    pub fn new(mode: ProgressMode, account: &str) -> Progress {
        Progress {
            mode,
            account: account.to_owned(),
            bar: None,
            messages: 0,
            total_messages: 0,
            bytes: 0,
            total_bytes: 0,
            last_log: Instant::now(),
        }
    }

    /// The run will fetch `messages` messages of `bytes` octets in all.
    pub fn start(&mut self, messages: u64, bytes: u64) {
        self.total_messages = messages;
        self.total_bytes = bytes;
        match self.mode {
            ProgressMode::Bar if messages > 0 => {
                let bar = ProgressBar::with_draw_target(Some(bytes), ProgressDrawTarget::stderr());
                bar.set_style(
                    ProgressStyle::with_template(
                        "{prefix} [{bar:30}] {msg} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec}, {eta} left",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
                );
                bar.set_prefix(self.account.clone());
                bar.set_message(format!("0/{messages}"));
                self.bar = Some(bar);
            }
            ProgressMode::Log if messages > 0 => {
                self.note(&format!("fetching {messages} messages ({bytes} octets)"));
            }
            _ => {}
        }
    }

    pub fn bytes(&mut self, n: u64) {
        self.bytes += n;
        if let Some(bar) = &self.bar {
            bar.set_position(self.bytes.min(self.total_bytes));
        }
    }

    pub fn message_done(&mut self) {
        self.messages += 1;
        if let Some(bar) = &self.bar {
            bar.set_message(format!("{}/{}", self.messages, self.total_messages));
        } else if self.mode == ProgressMode::Log && self.last_log.elapsed() >= LOG_EVERY {
            self.last_log = Instant::now();
            self.note(&format!(
                "{}/{} messages, {}/{} octets",
                self.messages, self.total_messages, self.bytes, self.total_bytes
            ));
        }
    }

    /// A line for the person, above the bar if there is one.
    pub fn note(&self, line: &str) {
        match (&self.bar, self.mode) {
            (_, ProgressMode::Quiet) => {}
            (Some(bar), _) => bar.println(format!("{}: {line}", self.account)),
            (None, _) => eprintln!("postie fetch: {}: {line}", self.account),
        }
    }

    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
