//! `postie fetch login` and fetches of signed-in accounts, against a real OpenID provider
//! (oidc-provider on loopback, oauth_support) and a real `postie serve` whose `[oauth]`
//! checks the tokens: the device grant and the browser's loopback redirect completed by the
//! test as the user (tests/oidc/user.py), mail fetched end to end, access tokens renewed
//! across runs with no new login (the "-short" client's tokens live 2 seconds, inside the
//! renewal margin, so every run renews; the other client's tokens are cached), and a revoked
//! sign-in exiting 77 with the way out.

mod common;
mod fetch_support;
mod oauth_support;

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use common::{ServerBuilder, TestServer, BIN};
use fetch_support::{maildir_contents, sample_messages, sorted, FetchEnv, Run};
use oauth_support::OidcProvider;

fn server(provider: &OidcProvider) -> TestServer {
    ServerBuilder::new()
        .sections(&provider.oauth_section(""))
        .start()
}

/// An account signing in at the provider as `client`, fetching from `server`.
fn account_env(provider: &OidcProvider, server: &TestServer, client: &str) -> FetchEnv {
    let env = FetchEnv::new();
    server.write_cert(&env.path("ca.pem"));
    env.config(&format!(
        "[accounts.work]\nserver = \"127.0.0.1:{}\"\ntls = \"implicit\"\nca_file = \"ca.pem\"\n\
         user = \"alice@example.org\"\ndeliver_to = \"maildir:Mail\"\n\
         oauth_issuer = \"{}\"\noauth_client_id = \"{client}\"\n",
        server.tls.port(),
        provider.issuer()
    ));
    env
}

/// `postie fetch ARGS`, trusting the provider's certificate as the system's.
fn run(env: &FetchEnv, provider: &OidcProvider, args: &[&str]) -> Run {
    let output = env
        .command(args)
        .env("SSL_CERT_FILE", provider.ca_file())
        .output()
        .unwrap();
    fetch_support::run_from(output)
}

/// `postie fetch login work [--device]`, with the test as the user: reads what postie shows,
/// signs in at the provider with it, and waits for the login to end well.
fn login(env: &FetchEnv, provider: &OidcProvider, device: bool) {
    let mut args = vec!["login", "work"];
    if device {
        args.push("--device");
    }
    let child = env
        .command(&args)
        .env("SSL_CERT_FILE", provider.ca_file())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    provider.complete_sign_in(child, device);
}

fn refresh_token(env: &FetchEnv) -> String {
    std::fs::read_to_string(env.path("state/work.oauth-refresh-token")).unwrap()
}

#[test]
fn device_sign_in_fetches_and_renews_its_tokens_across_runs() {
    let provider = OidcProvider::start();
    let server = server(&provider);
    let first = sample_messages(2, 500);
    for m in &first {
        server.add_message("alice", m);
    }
    let env = account_env(&provider, &server, "alice-fetch-short");

    // Before any sign-in, a fetch says what to do.
    let before = run(&env, &provider, &[]);
    assert_eq!(before.code, 77, "{}", before.stderr);
    assert!(
        before.stderr.contains("run `postie fetch login work`"),
        "{}",
        before.stderr
    );

    login(&env, &provider, true);
    for file in ["work.oauth-refresh-token", "work.oauth-access-token.json"] {
        let mode = std::fs::metadata(env.path(&format!("state/{file}")))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{file}");
    }
    let signed_in = refresh_token(&env);

    let fetched = run(&env, &provider, &[]);
    assert_eq!(fetched.code, 0, "{}\n{}", fetched.stdout, fetched.stderr);
    assert_eq!(maildir_contents(&env.path("Mail")), sorted(first.clone()));
    // The access token lives less than the renewal margin, so the fetch renewed it, and the
    // provider rotated the refresh token, which postie kept.
    let renewed = refresh_token(&env);
    assert_ne!(renewed, signed_in);

    let second = sample_messages(1, 800);
    server.add_message("alice", &second[0]);
    let fetched = run(&env, &provider, &[]);
    assert_eq!(fetched.code, 0, "{}\n{}", fetched.stdout, fetched.stderr);
    let mut all = first;
    all.extend(second);
    assert_eq!(maildir_contents(&env.path("Mail")), sorted(all));
    assert_ne!(refresh_token(&env), renewed);
    assert!(server.message_files("alice").is_empty());
}

#[test]
fn browser_sign_in_follows_the_loopback_redirect_and_caches_the_access_token() {
    let provider = OidcProvider::start();
    let server = server(&provider);
    let messages = sample_messages(3, 1000);
    for m in &messages {
        server.add_message("alice", m);
    }
    let env = account_env(&provider, &server, "alice-fetch");
    login(&env, &provider, false);
    let cache = env.path("state/work.oauth-access-token.json");
    let signed_in = std::fs::read(&cache).unwrap();

    let fetched = run(&env, &provider, &[]);
    assert_eq!(fetched.code, 0, "{}\n{}", fetched.stdout, fetched.stderr);
    assert_eq!(maildir_contents(&env.path("Mail")), sorted(messages));
    // Ten minutes of life left: the sign-in's access token was used as it was.
    assert_eq!(std::fs::read(&cache).unwrap(), signed_in);

    // `postie probe NAME` logs in with the same token, choosing the mechanism from CAPA.
    let probe = Command::new(BIN)
        .args(["probe", "work", "--config"])
        .arg(env.path("fetch.toml"))
        .env("SSL_CERT_FILE", provider.ca_file())
        .output()
        .unwrap();
    let probe = fetch_support::run_from(probe);
    assert_eq!(probe.code, 0, "{}\n{}", probe.stdout, probe.stderr);
    assert!(
        probe.stdout.contains("logged in as alice@example.org")
            && probe.stdout.contains("OAUTHBEARER"),
        "{}",
        probe.stdout
    );
}

#[test]
fn a_revoked_sign_in_exits_77_and_asks_for_a_new_login() {
    let provider = OidcProvider::start();
    let server = server(&provider);
    server.add_message("alice", &sample_messages(1, 100)[0]);
    let env = account_env(&provider, &server, "alice-fetch-short");
    login(&env, &provider, false);
    provider.revoke("alice-fetch-short", &refresh_token(&env));

    let refused = run(&env, &provider, &[]);
    assert_eq!(refused.code, 77, "{}\n{}", refused.stdout, refused.stderr);
    assert!(
        refused.stderr.contains("invalid_grant")
            && refused
                .stderr
                .contains("run `postie fetch login work` again"),
        "{}",
        refused.stderr
    );
    assert_eq!(server.message_files("alice").len(), 1);

    // A new sign-in puts it right.
    login(&env, &provider, false);
    let fetched = run(&env, &provider, &[]);
    assert_eq!(fetched.code, 0, "{}\n{}", fetched.stdout, fetched.stderr);
    assert!(server.message_files("alice").is_empty());
}

#[test]
fn runs_at_once_renew_one_at_a_time_and_keep_the_sign_in() {
    let provider = OidcProvider::start();
    let server = server(&provider);
    server.add_message("alice", &sample_messages(1, 100)[0]);
    let env = account_env(&provider, &server, "alice-fetch-short");
    login(&env, &provider, false);

    // Each --list renews the 2-second token with the rotating refresh token; were two to
    // present the same one, the provider would take it for a stolen token and revoke the grant.
    let runs: Vec<_> = (0..4)
        .map(|_| {
            env.command(&["--list"])
                .env("SSL_CERT_FILE", provider.ca_file())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for run in runs {
        let run = fetch_support::run_from(run.wait_with_output().unwrap());
        assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    }
    let fetched = run(&env, &provider, &[]);
    assert_eq!(fetched.code, 0, "{}\n{}", fetched.stdout, fetched.stderr);
    assert!(server.message_files("alice").is_empty());
}

#[test]
fn a_token_store_command_keeps_the_refresh_token_in_a_keyring() {
    let provider = OidcProvider::start();
    let server = server(&provider);
    server.add_message("alice", &sample_messages(1, 100)[0]);
    let env = account_env(&provider, &server, "alice-fetch-short");
    // A keyring of one file, outside the state folder.
    let keyring = env.path("keyring");
    std::fs::write(
        env.path("keyring.sh"),
        format!(
            "case \"$1\" in\n  get) cat {k} 2>/dev/null || true ;;\n  store) cat > {k} ;;\nesac\n",
            k = keyring.display()
        ),
    )
    .unwrap();
    let config = std::fs::read_to_string(env.path("fetch.toml")).unwrap();
    std::fs::write(
        env.path("fetch.toml"),
        format!(
            "{config}oauth_token_store_command = \"sh {}\"\n",
            env.path("keyring.sh").display()
        ),
    )
    .unwrap();

    login(&env, &provider, false);
    let signed_in = std::fs::read_to_string(&keyring).unwrap();
    assert!(!signed_in.trim().is_empty());
    assert!(!env.path("state/work.oauth-refresh-token").exists());

    let fetched = run(&env, &provider, &[]);
    assert_eq!(fetched.code, 0, "{}\n{}", fetched.stdout, fetched.stderr);
    assert!(server.message_files("alice").is_empty());
    // Renewed through the keyring, which now holds the rotated token.
    assert_ne!(std::fs::read_to_string(&keyring).unwrap(), signed_in);
}
