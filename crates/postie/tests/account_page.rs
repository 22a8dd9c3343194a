//! The account page (`/account/`) of the real `postie serve`, over real HTTP on loopback:
//! sign-in, its brake shared with POP3, no user enumeration, CSRF tokens, cookie flags,
//! security headers, sessions confined to their user and ended by a password change, the
//! refusal of plain HTTP from elsewhere, and settings made on the page holding in real
//! POP3 sessions; two-step sign-in on both user databases (a passwd-file, PostgreSQL 15).

#[path = "../../postie-store-pg/tests/cluster/mod.rs"]
#[allow(dead_code)]
mod cluster;
mod common;
mod pg_support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::{lmtp_deliver, ServerBuilder, TestServer};
use pg_support::url;

const HTTP: &str = "[http]\nlisten = [\"127.0.0.1:0\"]\n";

/// One HTTP answer.
#[derive(Debug)]
struct Answer {
    status: u16,
    /// Lowercased names.
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn cookies(&self) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == "set-cookie")
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The value of the cookie `name` this answer sets.
    fn cookie(&self, name: &str) -> Option<String> {
        self.cookies().into_iter().find_map(|c| {
            let (pair, _) = c.split_once(';').unwrap_or((c, ""));
            let (n, v) = pair.split_once('=')?;
            (n == name && !v.is_empty()).then(|| v.to_owned())
        })
    }

    /// The value of the hidden input `name` in the page.
    fn field(&self, name: &str) -> String {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self
            .body
            .find(&marker)
            .unwrap_or_else(|| panic!("no {name} in {}", self.body))
            + marker.len();
        let end = self.body[start..].find('"').unwrap() + start;
        self.body[start..end].to_owned()
    }
}

fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Answer {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut text = format!("{method} {path} HTTP/1.1\r\nHost: mail.example\r\n");
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    if method == "POST" {
        text.push_str(&format!(
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    text.push_str("\r\n");
    text.push_str(body);
    stream.write_all(text.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Answer {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// Form encoding of `pairs`.
fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            let v: String = v
                .bytes()
                .map(|b| match b {
                    b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                        (b as char).to_string()
                    }
                    b' ' => "+".into(),
                    _ => format!("%{b:02X}"),
                })
                .collect();
            format!("{k}={v}")
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// A browser signed in (or trying to): its session cookie and the page's CSRF token.
struct Browser {
    addr: SocketAddr,
    session: Option<String>,
}

impl Browser {
    fn new(server: &TestServer) -> Browser {
        Browser {
            addr: server.listener("http"),
            session: None,
        }
    }

    /// Posts the sign-in form as a browser would: the form's page first, then the post.
    fn try_sign_in(&mut self, user: &str, password: &str) -> Answer {
        let page = request(self.addr, "GET", "/account/", &[], "");
        assert_eq!(page.status, 200, "{page:?}");
        let token = page
            .cookie("postie-sign-in")
            .expect("a sign-in token cookie");
        assert_eq!(page.field("token"), token);
        let cookie = format!("postie-sign-in={token}");
        let answer = request(
            self.addr,
            "POST",
            "/account/sign-in",
            &[("Cookie", &cookie)],
            &form(&[("token", &token), ("user", user), ("password", password)]),
        );
        if let Some(session) = answer.cookie("postie-session") {
            self.session = Some(session);
        }
        answer
    }

    fn sign_in(&mut self, user: &str, password: &str) {
        let answer = self.try_sign_in(user, password);
        assert_eq!(answer.status, 303, "{answer:?}");
        assert!(self.session.is_some());
    }

    fn cookie(&self) -> String {
        format!("postie-session={}", self.session.as_deref().unwrap_or(""))
    }

    fn get(&self) -> Answer {
        request(
            self.addr,
            "GET",
            "/account/",
            &[("Cookie", &self.cookie())],
            "",
        )
    }

    fn csrf(&self) -> String {
        let page = self.get();
        assert!(page.body.contains("Signed in as"), "{page:?}");
        page.field("csrf")
    }

    fn post(&self, path: &str, pairs: &[(&str, &str)]) -> Answer {
        request(
            self.addr,
            "POST",
            path,
            &[("Cookie", &self.cookie())],
            &form(pairs),
        )
    }
}

#[test]
fn sign_in_cookie_flags_and_security_headers() {
    let server = ServerBuilder::new().sections(HTTP).start();
    let mut browser = Browser::new(&server);
    let first = request(browser.addr, "GET", "/account/", &[], "");
    for (name, value) in [
        ("content-security-policy", "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("cache-control", "no-store"),
        ("x-frame-options", "DENY"),
    ] {
        assert_eq!(first.header(name), Some(value), "{name}: {first:?}");
    }
    assert!(first.body.contains("<meta name=\"viewport\""));
    assert!(!first.body.contains("<script") && !first.body.contains("style="));
    assert!(first.body.contains("<label for=\"password\">"));
    let css = request(browser.addr, "GET", "/account/style.css", &[], "");
    assert_eq!(css.status, 200);
    assert_eq!(css.header("content-type"), Some("text/css; charset=utf-8"));

    let answer = browser.try_sign_in("alice", "wonderland");
    assert_eq!(answer.status, 303, "{answer:?}");
    assert_eq!(answer.header("location"), Some("/account/"));
    let set = answer
        .cookies()
        .into_iter()
        .find(|c| c.starts_with("postie-session="))
        .unwrap()
        .to_owned();
    assert!(
        set.contains("; HttpOnly") && set.contains("; SameSite=Strict") && set.contains("; Path=/"),
        "{set}"
    );
    assert!(
        set.contains("; Max-Age=28800"),
        "eight hours at most: {set}"
    );
    assert!(
        !set.contains("Secure"),
        "plain HTTP on loopback cannot keep a Secure cookie: {set}"
    );
    let id = browser.session.clone().unwrap();
    assert_eq!(id.len(), 64, "256 random bits in hex");
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));

    let page = browser.get();
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("Signed in as <strong>alice</strong>"),
        "{}",
        page.body
    );
    for section in [
        "POP download",
        "App passwords",
        "Set up your mail client",
        "Sign out",
    ] {
        assert!(page.body.contains(section), "{section}");
    }
    assert!(
        page.body.contains(&format!("Port {}", server.tls.port())),
        "{}",
        page.body
    );

    // Signing out ends the session on the server: the old cookie opens nothing.
    let csrf = page.field("csrf");
    let out = browser.post("/account/sign-out", &[("csrf", &csrf)]);
    assert_eq!(out.status, 303);
    assert!(out
        .cookies()
        .iter()
        .any(|c| c.starts_with("postie-session=;") && c.contains("Max-Age=0")));
    let after = browser.get();
    assert!(after.body.contains("Sign in") && !after.body.contains("Signed in as"));

    // An app password does not open the page.
    let mut other = Browser::new(&server);
    other.sign_in("alice", "wonderland");
    let csrf = other.csrf();
    let made = other.post(
        "/account/app-passwords",
        &[("csrf", &csrf), ("label", "phone")],
    );
    let letters = made
        .body
        .split("<output id=\"new-app-password\">")
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(
        Browser::new(&server).try_sign_in("alice", &letters).status,
        401
    );
}

#[test]
fn forms_need_their_token() {
    let server = ServerBuilder::new().sections(HTTP).start();
    let mut browser = Browser::new(&server);
    // The sign-in form's token must match its cookie.
    let page = request(browser.addr, "GET", "/account/", &[], "");
    let token = page.cookie("postie-sign-in").unwrap();
    let forged = request(
        browser.addr,
        "POST",
        "/account/sign-in",
        &[("Cookie", "postie-sign-in=0000")],
        &form(&[
            ("token", &token),
            ("user", "alice"),
            ("password", "wonderland"),
        ]),
    );
    assert_eq!(forged.status, 403);
    assert!(forged.cookie("postie-session").is_none());

    browser.sign_in("alice", "wonderland");
    let csrf = browser.csrf();
    let without = browser.post(
        "/account/pop-settings",
        &[("window", "from-now-on"), ("after_retrieval", "delete")],
    );
    assert!(without.status >= 400 && without.status < 500, "{without:?}");
    let wrong = browser.post(
        "/account/pop-settings",
        &[
            ("csrf", &"0".repeat(64)),
            ("window", "from-now-on"),
            ("after_retrieval", "delete"),
        ],
    );
    assert_eq!(wrong.status, 403, "{wrong:?}");
    let made = browser.post(
        "/account/app-passwords",
        &[("csrf", "nope"), ("label", "phone")],
    );
    assert_eq!(made.status, 403);
    let page = browser.get();
    assert!(
        page.body.contains("value=\"keep\" checked"),
        "nothing changed: {}",
        page.body
    );
    assert!(page.body.contains("You have no app passwords"));

    let right = browser.post(
        "/account/pop-settings",
        &[
            ("csrf", &csrf),
            ("window", "all"),
            ("after_retrieval", "delete"),
        ],
    );
    assert_eq!(right.status, 200);
    assert!(
        right.body.contains("value=\"delete\" checked"),
        "{}",
        right.body
    );
}

#[test]
fn unknown_users_and_wrong_passwords_answer_alike() {
    let server = ServerBuilder::new().sections(HTTP).start();
    let strip = |answer: Answer| {
        let token = answer.field("token");
        (answer.status, answer.body.replace(&token, "TOKEN"))
    };
    let wrong = strip(Browser::new(&server).try_sign_in("alice", "not her password"));
    let unknown = strip(Browser::new(&server).try_sign_in("mallory", "not her password"));
    assert_eq!(wrong.0, 401);
    assert_eq!(wrong, unknown);
    assert!(wrong.1.contains("The user name or the password is wrong."));
}

#[test]
fn page_failures_brake_pop3_logins_too() {
    let server = ServerBuilder::new()
        .sections(HTTP)
        .failure_delay_ms(50)
        .start();
    for _ in 0..2 {
        assert_eq!(
            Browser::new(&server).try_sign_in("alice", "guess").status,
            401
        );
    }
    // A POP3 guess from the same address now waits for the page's two failures as well.
    let mut client = server.plain_client();
    client.command("USER bob");
    assert!(client.command("PASS guess").starts_with("-ERR"));
    let log = server.wait_for_log("authentication failed", 1);
    let line = log
        .lines()
        .find(|l| l.contains("authentication failed"))
        .unwrap();
    assert!(
        line.contains("delay_ms=100"),
        "two earlier failures double the 50 ms base: {line}"
    );
    // And the page's sign-in waits for POP3's failures: the right password still works.
    Browser::new(&server).sign_in("alice", "wonderland");
}

#[test]
fn a_session_reaches_only_its_own_user() {
    let server = ServerBuilder::new().sections(HTTP).start();
    let mut alice = Browser::new(&server);
    alice.sign_in("alice", "wonderland");
    let mut bob = Browser::new(&server);
    bob.sign_in("bob", "pass word with spaces");
    let alice_csrf = alice.csrf();
    let made = alice.post(
        "/account/app-passwords",
        &[("csrf", &alice_csrf), ("label", "alice's phone")],
    );
    assert_eq!(made.status, 200);

    let bobs = bob.get();
    assert!(bobs.body.contains("Signed in as <strong>bob</strong>"));
    assert!(!bobs.body.contains("alice"), "{}", bobs.body);
    // Bob's session with alice's token is refused; with his own it acts on bob only.
    let crossed = bob.post(
        "/account/app-passwords/revoke",
        &[("csrf", &alice_csrf), ("label", "alice's phone")],
    );
    assert_eq!(crossed.status, 403);
    let bob_csrf = bob.csrf();
    let revoke = bob.post(
        "/account/app-passwords/revoke",
        &[("csrf", &bob_csrf), ("label", "alice's phone")],
    );
    assert!(
        revoke.body.contains("has no app password"),
        "{}",
        revoke.body
    );
    assert!(
        alice.get().body.contains("alice&#x27;s phone"),
        "alice's app password stays"
    );

    // A password change ends alice's sessions.
    let users = server.dir.path().join("users");
    let text = std::fs::read_to_string(&users).unwrap();
    std::fs::write(
        &users,
        text.replace("{PLAIN}wonderland", "{PLAIN}looking glass"),
    )
    .unwrap();
    let page = alice.get();
    assert!(!page.body.contains("Signed in as"), "{}", page.body);
    assert!(bob.get().body.contains("Signed in as <strong>bob</strong>"));
}

#[test]
fn plain_http_from_elsewhere_is_refused() {
    let trusted = format!("{HTTP}trusted_proxies = [\"127.0.0.1\"]\n");
    let proxied = ServerBuilder::new().sections(&trusted).start();
    let addr = proxied.listener("http");
    let plain = request(
        addr,
        "GET",
        "/account/",
        &[
            ("X-Forwarded-Proto", "http"),
            ("X-Forwarded-For", "203.0.113.9"),
        ],
        "",
    );
    assert_eq!(plain.status, 403, "{plain:?}");
    assert!(plain.body.contains("HTTPS"));
    assert!(plain.cookies().is_empty());
    let https = request(
        addr,
        "GET",
        "/account/",
        &[
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-For", "203.0.113.9"),
        ],
        "",
    );
    assert_eq!(https.status, 200);
    let set = https.cookies()[0];
    assert!(
        set.starts_with("__Host-postie-sign-in=") && set.contains("; Secure"),
        "{set}"
    );
    // Everything else on the listener is unaffected.
    assert_eq!(request(addr, "GET", "/healthz", &[], "").status, 200);

    // Without trusted_proxies, forwarding headers mean a proxy nobody vouched for.
    let direct = ServerBuilder::new().sections(HTTP).start();
    let addr = direct.listener("http");
    let untrusted = request(
        addr,
        "GET",
        "/account/",
        &[("X-Forwarded-Proto", "https")],
        "",
    );
    assert_eq!(untrusted.status, 403);
    assert!(untrusted.body.contains("proxy"));
}

fn deliver(server: &TestServer, subject: &str) {
    let message = format!("Subject: {subject}\r\n\r\n{subject}\r\n");
    let reply = lmtp_deliver(server.lmtp.unwrap(), "alice", message.as_bytes());
    assert_eq!(reply.code, 250, "{reply:?}");
    // Arrival times are kept to the microsecond; a step keeps "before" and "after" apart.
    std::thread::sleep(Duration::from_millis(20));
}

/// The account page once it shows `needle`: what the server records after a session (the
/// last use, the session's end) lands a moment after the client saw its answer.
/// Table cells' `data-label` attributes (the column names a phone shows) are left out.
fn wait_for_page(browser: &Browser, needle: &str) -> Answer {
    let plain = |mut page: Answer| {
        while let Some(start) = page.body.find(" data-label=\"") {
            let end = start + 13 + page.body[start + 13..].find('"').unwrap() + 1;
            page.body.replace_range(start..end, "");
        }
        page
    };
    let mut page = plain(browser.get());
    for _ in 0..300 {
        if page.body.contains(needle) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        page = plain(browser.get());
    }
    assert!(page.body.contains(needle), "no {needle:?} in {}", page.body);
    page
}

fn stat(server: &TestServer, password: &str) -> usize {
    let mut client = server.tls_client();
    client.login("alice", password);
    let count = client
        .command("STAT")
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    client.command("QUIT");
    count
}

#[test]
fn settings_made_on_the_page_hold_over_pop3() {
    let server = ServerBuilder::new().sections(HTTP).lmtp("").start();
    let mut alice = Browser::new(&server);
    alice.sign_in("alice", "wonderland");

    // An app password made on the page logs in; revoked, it does not.
    let csrf = alice.csrf();
    let made = alice.post(
        "/account/app-passwords",
        &[("csrf", &csrf), ("label", "laptop")],
    );
    assert!(made.body.contains("It is shown this once"));
    let letters = made
        .body
        .split("<output id=\"new-app-password\">")
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(letters.len(), 16);
    assert_eq!(stat(&server, &letters), 0);
    // "Test the login" says what POP3 answers each password.
    for (password, answer) in [
        (
            letters.as_str(),
            "POP3 accepts this password: it is your app password \u{201c}laptop\u{201d}.",
        ),
        (
            "wonderland",
            "POP3 accepts this password: it is your account password.",
        ),
        (
            "not mine",
            "POP3 would refuse this password: it is none of yours.",
        ),
    ] {
        let tested = alice.post(
            "/account/test-login",
            &[("csrf", &csrf), ("password", password)],
        );
        assert!(tested.body.contains(answer), "{answer}: {}", tested.body);
    }
    // The last use is written after the login, off the session's path: wait for it.
    let listed = wait_for_page(&alice, "from 127.0.0.1 over POP3 USER over TLS");
    assert!(!listed.body.contains(&letters), "shown once only");
    let revoked = alice.post(
        "/account/app-passwords/revoke",
        &[("csrf", &csrf), ("label", "laptop")],
    );
    assert!(revoked.body.contains("The app password is revoked."));
    let mut client = server.tls_client();
    client.command("USER alice");
    assert!(client
        .command(&format!("PASS {letters}"))
        .starts_with("-ERR"));

    // From now on: older mail leaves the listing.
    deliver(&server, "old");
    assert_eq!(stat(&server, "wonderland"), 1);
    let saved = alice.post(
        "/account/pop-settings",
        &[
            ("csrf", &csrf),
            ("window", "from-now-on"),
            ("after_retrieval", "archive"),
        ],
    );
    assert!(saved.body.contains("Your POP settings are saved."));
    assert_eq!(stat(&server, "wonderland"), 0);
    deliver(&server, "new one");
    deliver(&server, "new two");
    assert_eq!(stat(&server, "wonderland"), 2);

    // Archive: what a session retrieved is no longer listed.
    let mut client = server.tls_client();
    client.login("alice", "wonderland");
    client.retr(1);
    assert!(client.command("QUIT").starts_with("+OK"));
    assert_eq!(stat(&server, "wonderland"), 1);

    // Recent activity lists the sessions: where from, with what, what they downloaded.
    let page = wait_for_page(
        &alice,
        "account password (POP3 USER over TLS)</td><td>1</td><td>0</td>",
    );
    assert!(
        page.body.contains("<td>127.0.0.1</td><td>app password laptop (POP3 USER over TLS)</td><td>0</td><td>0</td>"),
        "{}",
        page.body
    );

    // "Keep the date" leaves the window alone; "all" brings the old mail back.
    let kept = alice.post(
        "/account/pop-settings",
        &[
            ("csrf", &csrf),
            ("window", "keep"),
            ("after_retrieval", "keep"),
        ],
    );
    assert!(kept.body.contains("value=\"keep\" checked"));
    assert_eq!(stat(&server, "wonderland"), 1);
    alice.post(
        "/account/pop-settings",
        &[
            ("csrf", &csrf),
            ("window", "all"),
            ("after_retrieval", "keep"),
        ],
    );
    assert_eq!(
        stat(&server, "wonderland"),
        2,
        "the old message and the unretrieved new one"
    );
}

/// The TOTP code an authenticator app shows now for the base32 `secret`, computed by
/// Python's standard library, independently of postie's RFC 6238 code.
fn authenticator_code(secret: &str) -> String {
    const TOTP: &str = "import base64, hashlib, hmac, struct, sys, time\n\
        s = sys.argv[1]; key = base64.b32decode(s + '=' * (-len(s) % 8))\n\
        mac = hmac.new(key, struct.pack('>Q', int(time.time()) // 30), hashlib.sha1).digest()\n\
        o = mac[19] & 15\n\
        print('%06d' % ((struct.unpack('>I', mac[o:o + 4])[0] & 0x7fffffff) % 1000000))\n";
    let output = std::process::Command::new("python3")
        .args(["-c", TOTP, secret])
        .output()
        .expect("python3 (scripts/test installs it)");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    let from = text
        .find(start)
        .unwrap_or_else(|| panic!("no {start} in {text}"))
        + start.len();
    &text[from..from + text[from..].find(end).unwrap()]
}

fn pop3_password_answer(server: &TestServer, user: &str, password: &str) -> String {
    let mut client = server.tls_client();
    client.command(&format!("USER {user}"));
    client.command(&format!("PASS {password}"))
}

#[test]
fn two_step_sign_in_with_totp_and_recovery_codes() {
    let server = ServerBuilder::new().sections(HTTP).start();
    two_step_flow(&server, "alice", "wonderland");
    let stored = std::fs::read_to_string(server.dir.path().join("users.two-step")).unwrap();
    assert!(!stored.contains("alice"), "{stored}");
}

#[test]
fn two_step_sign_in_on_postgresql() {
    let db = cluster::TestDb::new();
    let server = ServerBuilder::new()
        .auth("users = \"postgres\"")
        .mail("store = \"postgres\"")
        .sections(&format!(
            "{HTTP}[postgres]\nurl = \"{}\"\npool_size = 4\n",
            url(db.config())
        ))
        .start();
    let mut add = std::process::Command::new(common::BIN)
        .args(["user", "add", "carol", "--password-stdin", "--config"])
        .arg(server.config_path())
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    add.stdin
        .take()
        .unwrap()
        .write_all(b"carol's secret\n")
        .unwrap();
    assert!(add.wait().unwrap().success());
    two_step_flow(&server, "carol", "carol's secret");
}

/// Turning two-step sign-in on, signing in with a code and with a recovery code (each once),
/// POP3 taking app passwords only meanwhile, and turning it off.
fn two_step_flow(server: &TestServer, user: &str, password: &str) {
    let mut alice = Browser::new(server);
    alice.sign_in(user, password);
    let csrf = alice.csrf();
    let shown = alice.post("/account/two-step/start", &[("csrf", &csrf)]);
    assert!(shown.body.contains("<svg"), "a QR code: {}", shown.body);
    let secret = between(&shown.body, "<code id=\"two-step-secret\">", "<").to_owned();
    assert_eq!(secret.len(), 32, "160 bits in base32");
    let wrong = alice.post(
        "/account/two-step/confirm",
        &[("csrf", &csrf), ("code", "000000x")],
    );
    assert!(wrong.body.contains("does not match"));
    assert!(
        pop3_password_answer(server, user, password).starts_with("+OK"),
        "not on yet"
    );

    let code = authenticator_code(&secret);
    let on = alice.post(
        "/account/two-step/confirm",
        &[("csrf", &csrf), ("code", &code)],
    );
    let codes: Vec<String> = between(&on.body, "<ul id=\"recovery-codes\">", "</ul>")
        .split("<output>")
        .skip(1)
        .map(|item| item.split('<').next().unwrap().to_owned())
        .collect();
    assert_eq!(codes.len(), 10, "{}", on.body);
    assert!(on.body.contains("POP3 clients must use app passwords"));
    // The account password no longer logs in over POP3; app passwords do.
    let refused = pop3_password_answer(server, user, password);
    assert!(refused.starts_with("-ERR [AUTH]"), "{refused}");
    let tested = alice.post(
        "/account/test-login",
        &[("csrf", &csrf), ("password", password)],
    );
    assert!(
        tested.body.contains("POP3 takes app passwords only"),
        "{}",
        tested.body
    );
    assert!(
        !alice.get().body.contains(&codes[0]),
        "recovery codes are shown once"
    );

    // Signing in now takes a code after the password.
    let mut phone = Browser::new(server);
    phone.sign_in(user, password);
    let half = phone.get();
    assert!(half.body.contains("Two-step sign-in") && !half.body.contains("Signed in as"));
    let half_csrf = half.field("csrf");
    // The half-signed session opens nothing else.
    let early = phone.post(
        "/account/app-passwords",
        &[("csrf", &half_csrf), ("label", "x")],
    );
    assert_eq!(early.status, 401);
    let reused = phone.post(
        "/account/two-step",
        &[("csrf", &half_csrf), ("code", &code)],
    );
    assert_eq!(reused.status, 401, "the code that turned it on was used");
    let half_id = phone.session.clone().unwrap();
    let recovered = phone.post(
        "/account/two-step",
        &[("csrf", &half_csrf), ("code", &codes[3])],
    );
    assert_eq!(recovered.status, 303, "{recovered:?}");
    let full_id = recovered.cookie("postie-session").unwrap();
    assert_ne!(full_id, half_id, "a new session id once signed in");
    phone.session = Some(full_id);
    assert!(phone
        .get()
        .body
        .contains(&format!("Signed in as <strong>{user}</strong>")));

    let mut again = Browser::new(server);
    again.sign_in(user, password);
    let again_csrf = again.get().field("csrf");
    let spent = again.post(
        "/account/two-step",
        &[("csrf", &again_csrf), ("code", &codes[3])],
    );
    assert_eq!(spent.status, 401, "a recovery code signs in once");

    // Off: POP3 takes the account password again.
    let phone_csrf = phone.csrf();
    let off = phone.post("/account/two-step/off", &[("csrf", &phone_csrf)]);
    assert!(off.body.contains("Two-step sign-in is off"));
    assert!(pop3_password_answer(server, user, password).starts_with("+OK"));
}
