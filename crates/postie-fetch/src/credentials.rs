//! Where a password or OAuth token comes from: the configuration, a command (`pass show
//! mail`, a token refresher) or an environment variable. Values live in [`Secret`]s.

use postie_types::Secret;
use std::process::{Command, Stdio};

use crate::error::FetchError;

#[derive(Debug, Clone)]
pub enum CredentialSource {
    Password(Secret),
    Command(String),
    Env(String),
    None,
}

impl CredentialSource {
    pub(crate) fn from_options(
        password: Option<String>,
        command: Option<String>,
        env: Option<String>,
    ) -> Result<CredentialSource, String> {
        match (password, command, env) {
            (Some(p), None, None) => Ok(CredentialSource::Password(Secret::new(p.into_bytes()))),
            (None, Some(c), None) => Ok(CredentialSource::Command(c)),
            (None, None, Some(e)) => Ok(CredentialSource::Env(e)),
            (None, None, None) => Ok(CredentialSource::None),
            _ => Err("set only one of password, password_command and password_env".into()),
        }
    }

    /// The password, running the command or reading the variable now.
    pub fn resolve(&self) -> Result<Secret, FetchError> {
        match self {
            CredentialSource::Password(secret) => Ok(secret.clone()),
            CredentialSource::Command(command) => run_secret_command(command, "password_command"),
            CredentialSource::Env(name) => std::env::var_os(name)
                .map(|v| Secret::new(std::os::unix::ffi::OsStringExt::into_vec(v)))
                .ok_or_else(|| FetchError::Secret {
                    what: format!("password_env = {name:?}"),
                    reason: format!("the environment variable {name} is not set"),
                }),
            CredentialSource::None => Err(FetchError::Secret {
                what: "password".into(),
                reason: "this account has no password source: set password, password_command or password_env".into(),
            }),
        }
    }
}

/// Runs `command` with `sh -c` and takes the first line of its output, as mutt's and msmtp's
/// `passwordeval` do; anything it prints to stderr is shown on failure.
pub fn run_secret_command(command: &str, key: &str) -> Result<Secret, FetchError> {
    let error = |reason: String| FetchError::Secret {
        what: format!("{key} {command:?}"),
        reason,
    };
    let output = Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| error(format!("cannot run sh: {e}")))?;
    if !output.status.success() {
        return Err(error(format!(
            "it failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    let mut stdout = output.stdout;
    let end = stdout
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(stdout.len());
    let mut line = stdout[..end].to_vec();
    stdout.fill(0);
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    if line.is_empty() {
        return Err(error("it printed nothing on its first line".into()));
    }
    Ok(Secret::new(line))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_and_variables() {
        let secret =
            run_secret_command("printf 'pw with spaces\\nsecond'", "password_command").unwrap();
        assert_eq!(secret.expose(), b"pw with spaces");
        let error = run_secret_command("echo nope >&2; exit 3", "password_command").unwrap_err();
        assert!(error.to_string().contains("nope"), "{error}");
        let missing = CredentialSource::Env("POSTIE_TEST_UNSET_VARIABLE".into()).resolve();
        assert!(missing.unwrap_err().to_string().contains("not set"));
    }
}
