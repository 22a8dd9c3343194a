//! Commands run when something happens to an account (`on_new_mail`, `on_failure`,
//! `on_recovery`), so that a desktop notification or a mail to the user is one line of
//! configuration. Each runs through `sh -c` in its own process group with what happened in its
//! environment, and is killed with its children after [`HOOK_TIMEOUT`]: a hook that hangs
//! must not stop its account from being polled again.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long a hook may run before it is killed.
pub const HOOK_TIMEOUT: Duration = Duration::from_secs(60);

/// At most this many subjects go into POSTIE_SUBJECTS, each cut to [`SUBJECT_MAX`] octets:
/// one environment string may not exceed 128 KiB on Linux.
const SUBJECTS_MAX: usize = 100;
const SUBJECT_MAX: usize = 512;

/// The hook commands of an account (its own, else the file's).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hooks {
    pub on_new_mail: Option<String>,
    pub on_failure: Option<String>,
    pub on_recovery: Option<String>,
}

impl Hooks {
    /// These hooks, each missing one taken from `defaults`.
    pub fn or(self, defaults: &Hooks) -> Hooks {
        Hooks {
            on_new_mail: self.on_new_mail.or_else(|| defaults.on_new_mail.clone()),
            on_failure: self.on_failure.or_else(|| defaults.on_failure.clone()),
            on_recovery: self.on_recovery.or_else(|| defaults.on_recovery.clone()),
        }
    }
}

/// What happened, and so which hook runs with which environment.
#[derive(Debug)]
pub enum HookEvent<'a> {
    /// A run stored new messages (whole or headers only).
    NewMail {
        messages: u64,
        bytes: u64,
        /// Decoded Subject fields, as octets.
        subjects: &'a [Vec<u8>],
    },
    /// The first failure after a success (or ever): later failures in a row run nothing.
    Failure { error: &'a str, exit_status: u8 },
    /// The first success after failures; `error` is the last of them.
    Recovery { error: &'a str, failures: u32 },
}

impl HookEvent<'_> {
    fn key(&self) -> &'static str {
        match self {
            HookEvent::NewMail { .. } => "on_new_mail",
            HookEvent::Failure { .. } => "on_failure",
            HookEvent::Recovery { .. } => "on_recovery",
        }
    }

    fn environment(&self) -> Vec<(&'static str, OsString)> {
        match self {
            HookEvent::NewMail {
                messages,
                bytes,
                subjects,
            } => vec![
                ("POSTIE_EVENT", "new-mail".into()),
                ("POSTIE_NEW_MESSAGES", messages.to_string().into()),
                ("POSTIE_NEW_BYTES", bytes.to_string().into()),
                ("POSTIE_SUBJECTS", subject_lines(subjects)),
            ],
            HookEvent::Failure { error, exit_status } => vec![
                ("POSTIE_EVENT", "failure".into()),
                ("POSTIE_ERROR", (*error).into()),
                ("POSTIE_EXIT_STATUS", exit_status.to_string().into()),
            ],
            HookEvent::Recovery { error, failures } => vec![
                ("POSTIE_EVENT", "recovery".into()),
                ("POSTIE_ERROR", (*error).into()),
                ("POSTIE_FAILURES", failures.to_string().into()),
            ],
        }
    }
}

/// Subjects one a line; a line break inside one (there should be none after unfolding) or a
/// NUL, which the environment cannot hold, becomes a space.
fn subject_lines(subjects: &[Vec<u8>]) -> OsString {
    let mut out = Vec::new();
    for subject in subjects.iter().take(SUBJECTS_MAX) {
        if !out.is_empty() {
            out.push(b'\n');
        }
        let cut = &subject[..subject.len().min(SUBJECT_MAX)];
        out.extend(cut.iter().map(|&b| match b {
            b'\n' | b'\r' | 0 => b' ',
            other => other,
        }));
    }
    OsString::from_vec(out)
}

#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("{key} hook `{command}` could not be started: {source}; check that sh is installed")]
    Start {
        key: &'static str,
        command: String,
        source: std::io::Error,
    },
    #[error("{key} hook `{command}` failed ({status}); run it by hand to see why")]
    Failed {
        key: &'static str,
        command: String,
        status: ExitStatus,
    },
    #[error("{key} hook `{command}` ran longer than {secs} seconds and was killed; make it return sooner (end it with & to leave something running)")]
    TimedOut {
        key: &'static str,
        command: String,
        secs: u64,
    },
}

/// Runs the hook `event` calls for, if `hooks` has one, and waits for it (at most `timeout`).
pub fn run(
    hooks: &Hooks,
    account: &str,
    event: &HookEvent,
    timeout: Duration,
) -> Result<(), HookError> {
    let key = event.key();
    let command = match event {
        HookEvent::NewMail { .. } => &hooks.on_new_mail,
        HookEvent::Failure { .. } => &hooks.on_failure,
        HookEvent::Recovery { .. } => &hooks.on_recovery,
    };
    let Some(command) = command else {
        return Ok(());
    };
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(command)
        .env("POSTIE_ACCOUNT", account)
        .envs(event.environment())
        .stdin(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|source| HookError::Start {
            key,
            command: command.clone(),
            source,
        })?;
    let deadline = Instant::now() + timeout;
    loop {
        let exited = child.try_wait().map_err(|source| HookError::Start {
            key,
            command: command.clone(),
            source,
        })?;
        if let Some(status) = exited {
            if status.success() {
                return Ok(());
            }
            return Err(HookError::Failed {
                key,
                command: command.clone(),
                status,
            });
        }
        if Instant::now() >= deadline {
            // The whole group: `sh -c` may have started children of its own.
            // SAFETY: kill(2) on the process group this function created.
            unsafe { libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL) };
            let _ = child.wait();
            return Err(HookError::TimedOut {
                key,
                command: command.clone(),
                secs: timeout.as_secs(),
            });
        }
        // Polling every 50 ms costs nothing next to a fetch and needs no SIGCHLD handler.
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(event: &HookEvent) -> String {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("env");
        let hooks = Hooks {
            on_new_mail: Some(format!("env > {}", out.display())),
            on_failure: Some(format!("env > {}", out.display())),
            on_recovery: Some(format!("env > {}", out.display())),
        };
        run(&hooks, "work", event, HOOK_TIMEOUT).unwrap();
        std::fs::read_to_string(out).unwrap()
    }

    #[test]
    fn new_mail_environment() {
        let subjects = [b"caf\xc3\xa9".to_vec(), b"two\nlines".to_vec()];
        let env = env_of(&HookEvent::NewMail {
            messages: 2,
            bytes: 300,
            subjects: &subjects,
        });
        assert!(env.contains("POSTIE_ACCOUNT=work\n"), "{env}");
        assert!(env.contains("POSTIE_NEW_MESSAGES=2\n"), "{env}");
        assert!(env.contains("POSTIE_NEW_BYTES=300\n"), "{env}");
        assert!(env.contains("POSTIE_SUBJECTS=café\ntwo lines\n"), "{env}");
    }

    #[test]
    fn failure_and_recovery_environment() {
        let env = env_of(&HookEvent::Failure {
            error: "refused",
            exit_status: 69,
        });
        assert!(
            env.contains("POSTIE_ERROR=refused\n") && env.contains("POSTIE_EXIT_STATUS=69\n"),
            "{env}"
        );
        let env = env_of(&HookEvent::Recovery {
            error: "refused",
            failures: 3,
        });
        assert!(
            env.contains("POSTIE_EVENT=recovery\n") && env.contains("POSTIE_FAILURES=3\n"),
            "{env}"
        );
    }

    #[test]
    fn failing_hanging_and_missing_hooks() {
        let failing = Hooks {
            on_new_mail: Some("exit 3".into()),
            ..Hooks::default()
        };
        let event = HookEvent::NewMail {
            messages: 1,
            bytes: 1,
            subjects: &[],
        };
        let error = run(&failing, "a", &event, HOOK_TIMEOUT).unwrap_err();
        assert!(matches!(error, HookError::Failed { .. }), "{error}");
        let hanging = Hooks {
            on_new_mail: Some("sleep 600 & sleep 600".into()),
            ..Hooks::default()
        };
        let error = run(&hanging, "a", &event, Duration::from_millis(200)).unwrap_err();
        assert!(matches!(error, HookError::TimedOut { .. }), "{error}");
        run(&Hooks::default(), "a", &event, HOOK_TIMEOUT).unwrap();
    }
}
