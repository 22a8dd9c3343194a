//! OAuth 2.0 bearer token logins (SASL OAUTHBEARER and XOAUTH2) against a real OpenID provider
//! (oidc-provider, started on loopback by oauth_support): its tokens log in to the real
//! `postie serve`; an expired token, one for another audience, one signed by a rotated-out key
//! and one of another user are refused with RFC 7628's error status, then `-ERR [AUTH]`, and
//! counted by the brake; opaque tokens log in through introspection; `postie fetch` with
//! `auth = "oauthbearer"` fetches end to end.

mod common;
mod fetch_support;
mod oauth_support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use common::{Client, ServerBuilder, TestServer};
use fetch_support::{maildir_contents, sample_messages, sorted, FetchEnv};
use oauth_support::OidcProvider;

fn server(provider: &OidcProvider, oauth_extra: &str) -> TestServer {
    ServerBuilder::new()
        .sections(&provider.oauth_section(oauth_extra))
        .start()
}

fn oauthbearer(user: &str, token: &str, port: u16) -> String {
    STANDARD.encode(format!(
        "n,a={user},\x01host=127.0.0.1\x01port={port}\x01auth=Bearer {token}\x01\x01"
    ))
}

fn xoauth2(user: &str, token: &str) -> String {
    STANDARD.encode(format!("user={user}\x01auth=Bearer {token}\x01\x01"))
}

/// AUTH in two steps: a JWT makes the command longer than POP3's 255 octets, so the message
/// goes after an empty challenge (RFC 5034 section 4), as mail clients send it. Returns the
/// answer to the message.
fn auth(client: &mut Client, mechanism: &str, message: &str) -> String {
    assert_eq!(client.command(&format!("AUTH {mechanism}")), "+ ");
    client.command(message)
}

/// AUTH OAUTHBEARER with `token` expected to be refused: the error status comes as a
/// challenge, and the dummy response gets `-ERR [AUTH]`. Returns the error status.
fn refused(client: &mut Client, token: &str, port: u16) -> serde_json::Value {
    let challenge = auth(
        client,
        "OAUTHBEARER",
        &oauthbearer("alice@example.org", token, port),
    );
    let status = challenge
        .strip_prefix("+ ")
        .unwrap_or_else(|| panic!("no error status challenge: {challenge}"));
    let status: serde_json::Value =
        serde_json::from_slice(&STANDARD.decode(status.trim_end()).unwrap()).unwrap();
    let answer = client.command("AQ==");
    assert!(answer.starts_with("-ERR [AUTH]"), "{answer}");
    status
}

fn capa_of(client: &mut Client) -> String {
    assert!(client.command("CAPA").starts_with("+OK"));
    String::from_utf8(client.body()).unwrap()
}

/// The `exp` of a JWT, without checking it.
fn expiry(token: &str) -> u64 {
    let payload = token.split('.').nth(1).unwrap();
    let claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    claims["exp"].as_u64().unwrap()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn capa_offers_the_bearer_mechanisms_only_with_oauth() {
    let provider = OidcProvider::start();
    let with = server(&provider, "");
    let capa = capa_of(&mut with.plain_client());
    let sasl = capa.lines().find(|l| l.starts_with("SASL ")).unwrap();
    assert!(
        sasl.contains(" OAUTHBEARER") && sasl.contains(" XOAUTH2"),
        "{sasl}"
    );

    let without = TestServer::start();
    let capa = capa_of(&mut without.plain_client());
    assert!(
        !capa.contains("OAUTHBEARER") && !capa.contains("XOAUTH2"),
        "{capa}"
    );
    let answer = without
        .plain_client()
        .command(&format!("AUTH XOAUTH2 {}", xoauth2("alice", "x")));
    assert!(answer.starts_with("-ERR"), "{answer}");
}

#[test]
fn tokens_from_the_provider_log_in_with_oauthbearer_and_xoauth2() {
    let provider = OidcProvider::start();
    let server = server(&provider, "");
    server.add_message("alice", b"Subject: hi\r\n\r\nfrom the test\r\n");

    let token = provider.token("alice", "urn:postie");
    let mut client = server.tls_client();
    let answer = auth(
        &mut client,
        "OAUTHBEARER",
        &oauthbearer("alice@example.org", &token, server.tls.port()),
    );
    assert!(answer.starts_with("+OK"), "{answer}");
    assert!(client.command("STAT").starts_with("+OK 1 "));
    client.command("QUIT");

    let mut client = server.tls_client();
    let answer = auth(
        &mut client,
        "XOAUTH2",
        &xoauth2("alice@example.org", &token),
    );
    assert!(answer.starts_with("+OK"), "{answer}");
    client.command("QUIT");

    // A user without a token of its own says no authzid at all.
    let mut client = server.plain_client();
    let message = STANDARD.encode(format!("n,,\x01auth=Bearer {token}\x01\x01"));
    let answer = auth(&mut client, "OAUTHBEARER", &message);
    assert!(answer.starts_with("+OK"), "{answer}");
    let log = server.wait_for_log("logged in", 3);
    assert_eq!(log.matches("user=alice").count(), 3, "{log}");
}

#[test]
fn bad_tokens_are_refused_with_the_error_status_and_counted_by_the_brake() {
    let provider = OidcProvider::start();
    let server = ServerBuilder::new()
        .sections(&provider.oauth_section("clock_skew_secs = 0"))
        .failure_delay_secs(1)
        .start();
    let port = server.plain.port();

    // A token for another audience. (A new connection for each: three failures end one.)
    let other = provider.token("alice", "urn:other");
    let status = refused(&mut server.plain_client(), &other, port);
    assert_eq!(status["status"], "invalid_token");
    assert_eq!(
        status["openid-configuration"],
        format!("{}/.well-known/openid-configuration", provider.issuer())
    );
    server.wait_for_log("it is for another audience", 1);

    // An expired one: the provider's short-lived client, used after its expiry.
    let short = provider.token("alice-short", "urn:postie");
    let exp = expiry(&short);
    while now() <= exp {
        std::thread::sleep(Duration::from_millis(100));
    }
    refused(&mut server.plain_client(), &short, port);
    server.wait_for_log("it has expired", 1);

    // Bob's token presented as alice's.
    let bob = provider.token("bob", "urn:postie");
    refused(&mut server.plain_client(), &bob, port);
    server.wait_for_log("the client logs in as", 1);

    // Not a token at all.
    refused(&mut server.plain_client(), "bm90LWEtand0", port);

    // Each was a failed login for the brake, as a wrong password is: the first is free, then
    // the delay starts at 1 s and doubles.
    let delays: Vec<u64> = (1..=4).map(|n| failure_delay_ms(&server, n)).collect();
    assert_eq!(delays, [0, 1000, 2000, 4000]);
}

#[test]
fn a_token_signed_by_a_rotated_out_key_is_refused() {
    let mut provider = OidcProvider::start();
    let server = server(&provider, "");
    let port = server.plain.port();
    let old = provider.token("alice", "urn:postie");
    let mut client = server.plain_client();
    let answer = auth(
        &mut client,
        "OAUTHBEARER",
        &oauthbearer("alice@example.org", &old, port),
    );
    assert!(answer.starts_with("+OK"), "{answer}");
    client.command("QUIT");

    provider.rotate_keys();
    // A token with the new key: postie fetches the key set again for its unknown key id.
    let new = provider.token("alice", "urn:postie");
    let mut client = server.plain_client();
    let answer = auth(
        &mut client,
        "OAUTHBEARER",
        &oauthbearer("alice@example.org", &new, port),
    );
    assert!(answer.starts_with("+OK"), "{answer}");
    client.command("QUIT");

    // The old key is gone from the set postie now holds.
    let mut client = server.plain_client();
    refused(&mut client, &old, port);
    server.wait_for_log("which the issuer does not publish", 1);
}

#[test]
fn opaque_tokens_log_in_through_introspection() {
    let provider = OidcProvider::start();
    let secret = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(secret.path(), "postie-secret\n").unwrap();
    let section = format!(
        "[oauth]\nintrospection_url = \"{issuer}/token/introspection\"\nclient_id = \"postie\"\n\
         client_secret_file = \"{secret}\"\nissuer = \"{issuer}\"\naudience = \"urn:postie-opaque\"\n\
         ca_file = \"{ca}\"\n",
        issuer = provider.issuer(),
        secret = secret.path().display(),
        ca = provider.ca_file().display(),
    );
    let server = ServerBuilder::new().sections(&section).start();
    let port = server.plain.port();

    let opaque = provider.token("alice", "urn:postie-opaque");
    assert_eq!(opaque.matches('.').count(), 0, "an opaque token: {opaque}");
    let mut client = server.plain_client();
    let answer = auth(
        &mut client,
        "OAUTHBEARER",
        &oauthbearer("alice@example.org", &opaque, port),
    );
    assert!(answer.starts_with("+OK"), "{answer}");
    client.command("QUIT");

    // A token for another audience is active, but not for postie.
    let other = provider.token("alice", "urn:other-opaque");
    refused(&mut server.plain_client(), &other, port);
    server.wait_for_log("it is for another audience", 1);
    refused(&mut server.plain_client(), "no-such-token", port);
    server.wait_for_log("not active", 1);
}

#[test]
fn postie_fetch_with_oauthbearer_fetches_end_to_end() {
    let provider = OidcProvider::start();
    let server = server(&provider, "");
    let messages = sample_messages(3, 2000);
    for m in &messages {
        server.add_message("alice", m);
    }
    let env = FetchEnv::new();
    server.write_cert(&env.path("ca.pem"));
    let command = provider.token_command("alice", "urn:postie");
    env.config(&format!(
        "[accounts.work]\nserver = \"127.0.0.1:{}\"\ntls = \"implicit\"\nca_file = \"ca.pem\"\n\
         user = \"alice@example.org\"\nauth = \"oauthbearer\"\noauth_token_command = {command:?}\n\
         deliver_to = \"maildir:Mail\"\n",
        server.tls.port()
    ));
    let run = env.fetch(&[]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(maildir_contents(&env.path("Mail")), sorted(messages));
    assert!(server.message_files("alice").is_empty());
}

/// The delay the server's log gives its `n`th failed login (from 1).
fn failure_delay_ms(server: &TestServer, n: usize) -> u64 {
    let log = server.wait_for_log("authentication failed", n);
    let line = log
        .lines()
        .filter(|line| line.contains("authentication failed"))
        .nth(n - 1)
        .unwrap();
    let at = line.find("delay_ms=").expect("the delay is logged") + "delay_ms=".len();
    line[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}
