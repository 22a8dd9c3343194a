//! The tokens of a signed-in account, in its state folder: the refresh token
//! (`NAME.oauth-refresh-token`) and the last access token with its expiry
//! (`NAME.oauth-access-token.json`), both mode 0600 and replaced atomically. A fetch takes the
//! cached access token while it has more than [`REFRESH_MARGIN`] left, and otherwise renews
//! it with the refresh token, keeping the new refresh token a rotating provider hands out.
//! With `oauth_token_store_command`, the refresh token goes to that command (a keyring)
//! instead of the file. Renewals of one account are one at a time (a flock on `NAME.oauth-lock`): with rotating
//! refresh tokens, a second process presenting the token the first just used would look like
//! a stolen token, and the provider would revoke the sign-in.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use postie_types::Secret;

use super::http::{FormAnswer, Http};
use super::{OAuthError, SignInSettings};

/// How long before its expiry an access token is renewed: a login must not start with a
/// token that runs out while the server checks it.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// A token endpoint's grant (RFC 6749 section 5.1).
#[derive(Debug)]
pub struct Grant {
    pub access_token: String,
    /// Seconds the access token lives, when the provider says.
    pub expires_in: Option<u64>,
    pub refresh_token: Option<String>,
}

impl Grant {
    pub(crate) fn from_json(value: &serde_json::Value, what: &str) -> Result<Grant, OAuthError> {
        let access_token = value
            .get("access_token")
            .and_then(|v| v.as_str())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| OAuthError::BadAnswer {
                what: what.into(),
                reason: "it holds no access_token".into(),
            })?;
        Ok(Grant {
            access_token: access_token.to_owned(),
            expires_in: value.get("expires_in").and_then(|v| v.as_u64()),
            refresh_token: value
                .get("refresh_token")
                .and_then(|v| v.as_str())
                .map(str::to_owned),
        })
    }
}

/// Where one account's tokens live.
#[derive(Debug, Clone)]
pub struct TokenStore {
    dir: PathBuf,
    account: String,
    /// `oauth_token_store_command`, which keeps the refresh token instead of the file.
    command: Option<String>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct CachedAccess {
    access_token: String,
    /// Seconds since the epoch.
    expires_at: u64,
}

impl TokenStore {
    /// The store of `account`, whose state folder is `state_dir`.
    pub fn for_sign_in(state_dir: &Path, account: &str, settings: &SignInSettings) -> TokenStore {
        TokenStore {
            dir: state_dir.to_owned(),
            account: account.to_owned(),
            command: settings.token_store_command.clone(),
        }
    }

    pub fn refresh_token_path(&self) -> PathBuf {
        self.dir
            .join(format!("{}.oauth-refresh-token", self.account))
    }

    pub fn access_token_path(&self) -> PathBuf {
        self.dir
            .join(format!("{}.oauth-access-token.json", self.account))
    }

    /// Keeps what a sign-in or a refresh granted, at `now` (seconds since the epoch). A grant
    /// without a refresh token keeps the one stored (providers that do not rotate).
    pub fn save(&self, grant: &Grant, now: u64) -> Result<(), OAuthError> {
        match (&grant.refresh_token, &self.command) {
            (Some(refresh), Some(command)) => store_with_command(command, refresh)?,
            (Some(refresh), None) => write_private(&self.refresh_token_path(), refresh.as_bytes())?,
            (None, _) => {}
        }
        match grant.expires_in {
            Some(lifetime) => {
                let cached = CachedAccess {
                    access_token: grant.access_token.clone(),
                    expires_at: now.saturating_add(lifetime),
                };
                let json = serde_json::to_vec(&cached).expect("plain strings and numbers");
                write_private(&self.access_token_path(), &json)
            }
            // No lifetime given: never cached, renewed at every fetch.
            None => remove(&self.access_token_path()),
        }
    }

    fn refresh_token(&self) -> Result<Option<String>, OAuthError> {
        if let Some(command) = &self.command {
            return get_with_command(command);
        }
        let path = self.refresh_token_path();
        match std::fs::read_to_string(&path) {
            Ok(text) if !text.trim().is_empty() => Ok(Some(text.trim().to_owned())),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(OAuthError::Local {
                what: "read",
                path,
                source,
            }),
        }
    }

    /// Waits for the account's renewal lock; held until the file is dropped.
    fn lock(&self) -> Result<std::fs::File, OAuthError> {
        let path = self.dir.join(format!("{}.oauth-lock", self.account));
        let local = |what, source| OAuthError::Local {
            what,
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(&self.dir).map_err(|e| local("create the folder of", e))?;
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| local("open", e))?;
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&file), libc::LOCK_EX) } != 0 {
            return Err(local("lock", std::io::Error::last_os_error()));
        }
        Ok(file)
    }

    /// The cached access token, if it lives past the margin. A damaged cache is no cache.
    fn cached(&self, now: u64) -> Option<String> {
        let text = std::fs::read(self.access_token_path()).ok()?;
        let cached: CachedAccess = serde_json::from_slice(&text).ok()?;
        (cached.expires_at > now.saturating_add(REFRESH_MARGIN.as_secs()))
            .then_some(cached.access_token)
    }
}

/// An access token for the account at `now`: the cached one, or a renewed one.
pub fn access_token(
    settings: &SignInSettings,
    store: &TokenStore,
    now: u64,
) -> Result<Secret, OAuthError> {
    if let Some(token) = store.cached(now) {
        return Ok(Secret::new(token.into_bytes()));
    }
    let _renewing = store.lock()?;
    // Another run may have renewed it while this one waited.
    if let Some(token) = store.cached(now) {
        return Ok(Secret::new(token.into_bytes()));
    }
    let Some(refresh_token) = store.refresh_token()? else {
        return Err(OAuthError::NotSignedIn {
            account: store.account.clone(),
        });
    };
    let http = Http::new()?;
    let endpoints = settings.endpoints(&http)?;
    let mut form = vec![
        ("grant_type", "refresh_token".to_owned()),
        ("refresh_token", refresh_token),
    ];
    form.extend(settings.client_fields()?);
    let what = format!("the refresh at {}", endpoints.token);
    match http.post_form(&endpoints.token, &form, &what)? {
        FormAnswer::Granted(json) => {
            let grant = Grant::from_json(&json, &what)?;
            store.save(&grant, now)?;
            Ok(Secret::new(grant.access_token.into_bytes()))
        }
        FormAnswer::Refused { error, description } => Err(OAuthError::RefreshRefused {
            account: store.account.clone(),
            error,
            description,
        }),
    }
}

/// `COMMAND get`: the refresh token it prints, `None` when it prints nothing (none stored).
fn get_with_command(command: &str) -> Result<Option<String>, OAuthError> {
    let output = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{command} get"))
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| command_failed(command, "get", e.to_string()))?;
    if !output.status.success() {
        let reason = format!(
            "it failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
        return Err(command_failed(command, "get", reason));
    }
    let text = String::from_utf8(output.stdout)
        .map_err(|_| command_failed(command, "get", "it printed something not UTF-8".into()))?;
    let token = text.lines().next().unwrap_or("").trim();
    Ok((!token.is_empty()).then(|| token.to_owned()))
}

/// `COMMAND store`, the token on its standard input.
fn store_with_command(command: &str, token: &str) -> Result<(), OAuthError> {
    let mut child = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{command} store"))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| command_failed(command, "store", e.to_string()))?;
    let written = child
        .stdin
        .take()
        .map(|mut stdin| stdin.write_all(format!("{token}\n").as_bytes()));
    let output = child
        .wait_with_output()
        .map_err(|e| command_failed(command, "store", e.to_string()))?;
    if !output.status.success() || !matches!(written, Some(Ok(()))) {
        let reason = format!(
            "it failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
        return Err(command_failed(command, "store", reason));
    }
    Ok(())
}

fn command_failed(command: &str, action: &str, reason: String) -> OAuthError {
    OAuthError::Settings(format!(
        "oauth_token_store_command {command:?} ({action}): {reason}; check the command, then run `postie fetch login` again if the token was lost"
    ))
}

/// Writes `bytes` to a temporary file of mode 0600 beside `path`, then renames it over
/// `path`: a reader sees the old token or the new one, and no one else can read either.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), OAuthError> {
    let local = |what: &'static str, path: &Path| {
        let path = path.to_owned();
        move |source| OAuthError::Local { what, path, source }
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(local("create", dir))?;
    }
    let temporary = path.with_extension(format!("tmp{}", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)
        .map_err(local("create", &temporary))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(local("write", &temporary))?;
    std::fs::rename(&temporary, path).map_err(local("replace", path))
}

fn remove(path: &Path) -> Result<(), OAuthError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(OAuthError::Local {
            what: "remove",
            path: path.to_owned(),
            source: e,
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn tokens_are_private_and_the_cache_ends_before_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let settings = SignInSettings {
            provider: super::super::OAuthProvider::Issuer("https://id.example.org".into()),
            client_id: "id".into(),
            client_secret_file: None,
            scopes: None,
            token_store_command: None,
        };
        let store = TokenStore::for_sign_in(&dir.path().join("state"), "work", &settings);
        let grant = Grant {
            access_token: "access-1".into(),
            expires_in: Some(600),
            refresh_token: Some("refresh-1".into()),
        };
        store.save(&grant, 1000).unwrap();
        for path in [store.refresh_token_path(), store.access_token_path()] {
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{}", path.display());
        }
        assert_eq!(store.cached(1000).as_deref(), Some("access-1"));
        // Within the margin of its expiry, the token is renewed rather than used.
        assert_eq!(store.cached(1600 - REFRESH_MARGIN.as_secs()), None);

        // A grant without a refresh token keeps the stored one; without a lifetime, no cache.
        let grant = Grant {
            access_token: "access-2".into(),
            expires_in: None,
            refresh_token: None,
        };
        store.save(&grant, 2000).unwrap();
        assert_eq!(store.refresh_token().unwrap().as_deref(), Some("refresh-1"));
        assert_eq!(store.cached(2000), None);
    }

    #[test]
    fn a_token_store_command_keeps_the_refresh_token_instead_of_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("keyring.sh");
        std::fs::write(
            &script,
            "k=\"$(dirname \"$0\")/keyring\"\ncase \"$1\" in\n  get) cat \"$k\" 2>/dev/null || true ;;\n  store) cat > \"$k\" ;;\n  *) exit 2 ;;\nesac\n",
        )
        .unwrap();
        let settings = |command: &str| SignInSettings {
            provider: super::super::OAuthProvider::Issuer("https://id.example.org".into()),
            client_id: "id".into(),
            client_secret_file: None,
            scopes: None,
            token_store_command: Some(command.into()),
        };
        let kept = settings(&format!("sh {}", script.display()));
        let store = TokenStore::for_sign_in(&dir.path().join("state"), "work", &kept);
        assert_eq!(store.refresh_token().unwrap(), None);
        let grant = Grant {
            access_token: "access".into(),
            expires_in: Some(600),
            refresh_token: Some("refresh".into()),
        };
        store.save(&grant, 1000).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("keyring")).unwrap(),
            "refresh\n"
        );
        assert!(!store.refresh_token_path().exists());
        assert_eq!(store.refresh_token().unwrap().as_deref(), Some("refresh"));

        let broken = settings("echo locked >&2; false");
        let store = TokenStore::for_sign_in(&dir.path().join("state"), "work", &broken);
        let error = store.refresh_token().unwrap_err().to_string();
        assert!(
            error.contains("locked") && error.contains("(get)"),
            "{error}"
        );
        assert!(store.save(&grant, 1000).is_err());
    }
}
