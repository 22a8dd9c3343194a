//! A real OpenID provider on loopback for the OAuth tests: the npm package oidc-provider
//! (installed by `npm ci` into tests/oidc/ when node_modules is missing), run by node over
//! HTTPS with a certificate made here. Tokens come from its token endpoint with the client
//! credentials grant, fetched by curl; postie fetch's sign-in tests log in on its pages as the
//! user (`act_as_user`). A provider that cannot start fails the test.
#![allow(dead_code)] // each test file uses a different part

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::Duration;

/// How long node gets to start the provider on a loaded machine.
const START_TIMEOUT: Duration = Duration::from_secs(120);

static NPM_CI: Mutex<bool> = Mutex::new(false);

fn oidc_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oidc")
}

/// `npm ci` once, if the packages are not installed yet.
fn install_packages() {
    let mut done = NPM_CI.lock().unwrap_or_else(|e| e.into_inner());
    if *done || oidc_dir().join("node_modules/oidc-provider").is_dir() {
        *done = true;
        return;
    }
    let output = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(oidc_dir())
        .output()
        .expect("npm runs (Node.js 20 and npm are needed for the OAuth tests)");
    assert!(
        output.status.success(),
        "npm ci in {} failed:\n{}",
        oidc_dir().display(),
        String::from_utf8_lossy(&output.stderr)
    );
    *done = true;
}

/// oidc-provider running on a loopback port, with its folder (certificate, signing keys).
pub struct OidcProvider {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl OidcProvider {
    /// A provider with a new signing key on a free port.
    pub fn start() -> OidcProvider {
        install_packages();
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["127.0.0.1".into()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        std::fs::write(dir.path().join("cert.pem"), cert.pem()).unwrap();
        std::fs::write(dir.path().join("key.pem"), key.serialize_pem()).unwrap();
        let mut provider = OidcProvider {
            child: None,
            port: crate::fetch_support::free_port(),
            dir,
        };
        provider.spawn("keys-1.json");
        provider
    }

    /// Stops the provider and starts it again on the same port with a new signing key, the
    /// old one no longer published: a key rotation.
    pub fn rotate_keys(&mut self) {
        self.stop();
        self.spawn("keys-2.json");
    }

    fn spawn(&mut self, keys_file: &str) {
        let path = |name: &str| self.dir.path().join(name);
        let mut child = Command::new("node")
            .arg(oidc_dir().join("provider.mjs"))
            .arg(self.port.to_string())
            .arg(path("cert.pem"))
            .arg(path("key.pem"))
            .arg(path(keys_file))
            .current_dir(oidc_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("node runs (Node.js 20 is needed for the OAuth tests)");
        let stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let (ready, wait) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                match line {
                    Ok(line) if line == "ready" => {
                        let _ = ready.send(());
                    }
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
        });
        if wait.recv_timeout(START_TIMEOUT).is_err() {
            let _ = child.kill();
            let _ = child.wait();
            let mut errors = String::new();
            let _ = stderr.read_to_string(&mut errors);
            panic!("the OpenID provider did not start:\n{errors}");
        }
        // Node's warnings go to stderr; drained so that the pipe never fills.
        std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
        self.child = Some(child);
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn issuer(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// The provider's certificate, which postie's `ca_file` names.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    /// The curl command line that gets `client` an access token for `resource`, printing the
    /// token alone (usable as postie fetch's oauth_token_command).
    pub fn token_command(&self, client: &str, resource: &str) -> String {
        format!(
            "curl -sS --fail --cacert {ca} -u {client}:{client}-secret \
             -d grant_type=client_credentials -d resource={resource} {issuer}/token \
             | python3 -c 'import json, sys; print(json.load(sys.stdin)[\"access_token\"])'",
            ca = self.ca_file().display(),
            issuer = self.issuer(),
        )
    }

    /// An access token for `client` and `resource`, from the token endpoint.
    pub fn token(&self, client: &str, resource: &str) -> String {
        let output = Command::new("sh")
            .args(["-c", &self.token_command(client, resource)])
            .output()
            .expect("sh runs");
        assert!(
            output.status.success(),
            "no token from the provider: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    }

    /// Plays the person at the browser (tests/oidc/user.py): opens `url`, types `user_code`
    /// where the device flow asks for it, logs in and consents, and follows the redirects to
    /// the end. Returns the last URL it reached.
    pub fn act_as_user(&self, url: &str, user_code: Option<&str>) -> String {
        let output = Command::new("python3")
            .arg(oidc_dir().join("user.py"))
            .arg(self.ca_file())
            .arg(url)
            .args(user_code)
            .output()
            .expect("python3 runs");
        assert!(
            output.status.success(),
            "the sign-in as a user failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let stdout = String::from_utf8(output.stdout).unwrap();
        stdout.lines().next().unwrap_or_default().to_owned()
    }

    /// Completes the sign-in a spawned `postie fetch login` or `postie fetch add` (stderr
    /// piped) asks for, as the user: reads the address (and the device code) it shows, signs
    /// in with them, and waits for it to end well. Returns what it wrote to stderr.
    pub fn complete_sign_in(&self, mut child: Child, device: bool) -> String {
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut shown = String::new();
        let mut next = |shown: &mut String| {
            let line = lines
                .next()
                .unwrap_or_else(|| panic!("postie ended before the sign-in:\n{shown}"))
                .unwrap();
            shown.push_str(&line);
            shown.push('\n');
            line
        };
        let mut address = None;
        let mut code = None;
        while address.is_none() || (device && code.is_none()) {
            let line = next(&mut shown);
            if line.contains("open this address") {
                address = Some(next(&mut shown).trim().to_owned());
            } else if line.contains("enter the code") {
                code = Some(next(&mut shown).trim().to_owned());
            }
        }
        let reached = self.act_as_user(&address.unwrap(), code.as_deref());
        if !device {
            assert!(
                reached.starts_with("http://127.0.0.1:") && reached.contains("/callback?code="),
                "the browser ended at {reached}"
            );
        }
        for line in lines.map_while(Result::ok) {
            shown.push_str(&line);
            shown.push('\n');
        }
        let status = child.wait().unwrap();
        assert!(status.success(), "{status}:\n{shown}");
        shown
    }

    /// Revokes `token` (a refresh token of the public client `client`) at the provider.
    pub fn revoke(&self, client: &str, token: &str) {
        let output = Command::new("curl")
            .args(["-sS", "--fail", "--cacert"])
            .arg(self.ca_file())
            .args(["-d", &format!("client_id={client}")])
            .args(["-d", &format!("token={token}")])
            .args(["-d", "token_type_hint=refresh_token"])
            .arg(format!("{}/token/revocation", self.issuer()))
            .output()
            .expect("curl runs");
        assert!(
            output.status.success(),
            "revocation failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// The `[oauth]` section for a postie that accepts this provider's JWTs for urn:postie.
    pub fn oauth_section(&self, extra: &str) -> String {
        format!(
            "[oauth]\nissuer = \"{}\"\naudience = \"urn:postie\"\nca_file = \"{}\"\n{extra}\n",
            self.issuer(),
            self.ca_file().display()
        )
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        self.stop();
    }
}
