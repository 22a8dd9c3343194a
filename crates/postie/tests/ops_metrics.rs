//! Observability: /metrics counters move as sessions and deliveries happen, /healthz
//! answers, the HTTP handler refuses what it does not serve, and the log has one line per
//! session (Dovecot's pop3_logout_format fields) and per delivery, in text and in JSON,
//! without secrets.

mod common;
mod ops_support;

use common::{lmtp_deliver, ServerBuilder};
use ops_support::{http, metric};

const HTTP_AND_LMTP: &str =
    "[http]\nlisten = [\"127.0.0.1:0\"]\n[lmtp]\nlisten = [\"127.0.0.1:0\"]\n";

#[test]
fn counters_move_with_sessions_and_deliveries() {
    let server = ServerBuilder::new().sections(HTTP_AND_LMTP).start();
    let lmtp = server.listener("lmtp");
    let before = |series: &str| metric(&server, series);
    let series = [
        "postie_connections_total{listener=\"pop3s\"}",
        "postie_connections_total{listener=\"lmtp\"}",
        "postie_logins_total{outcome=\"ok\",mechanism=\"USER\"}",
        "postie_logins_total{outcome=\"rejected\",mechanism=\"USER\"}",
        "postie_pop3_commands_total{verb=\"RETR\"}",
        "postie_pop3_commands_total{verb=\"DELE\"}",
        "postie_deliveries_total{outcome=\"delivered\"}",
        "postie_deliveries_total{outcome=\"unknown_user\"}",
        "postie_tls_handshakes_total{listener=\"pop3s\",result=\"ok\"}",
        "postie_pop3_session_duration_seconds_count",
        "postie_pop3_retr_duration_seconds_count",
        "postie_pop3_bytes_sent_total",
        "postie_auth_delays_total",
    ];
    let start: Vec<f64> = series.iter().map(|s| before(s)).collect();
    assert!(
        start.iter().all(|v| *v == 0.0),
        "a fresh server counts nothing: {start:?}"
    );

    let reply = lmtp_deliver(lmtp, "alice@test.example", b"Subject: metrics\r\n\r\nhello");
    assert_eq!(reply.code, 250, "{reply:?}");
    let mut client = server.tls_client();
    client.login("alice", "wonderland");
    let body = client.retr(1);
    assert!(body.ends_with(b"hello\r\n"));
    assert!(client.command("DELE 1").starts_with("+OK"));
    assert!(client.command("QUIT").starts_with("+OK"));
    let mut failing = server.tls_client();
    assert!(failing.command("USER alice").starts_with("+OK"));
    assert!(failing.command("PASS nope").starts_with("-ERR"));
    drop(failing);
    // Both POP3 sessions (the intake one logs "intake session ended id=…").
    server.wait_for_log("session ended peer=", 2);

    let after: Vec<f64> = series.iter().map(|s| before(s)).collect();
    let expected = [2.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 2.0, 2.0, 1.0];
    for ((name, value), want) in series.iter().zip(&after).zip(expected) {
        assert_eq!(*value, want, "{name}");
    }
    assert!(after[11] > body.len() as f64, "bytes sent: {}", after[11]);
    // failure_delay_secs = 0: no delay applied.
    assert_eq!(after[12], 0.0);
    assert_eq!(
        metric(&server, "postie_connections_open{listener=\"pop3s\"}"),
        0.0
    );

    // An unknown recipient is refused at RCPT: no delivery attempt is counted.
    let (status, text) = http(server.listener("http"), "GET /metrics HTTP/1.0\r\n\r\n");
    assert_eq!(status, 200);
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (name, value) = line.rsplit_once(' ').unwrap();
        assert!(value.parse::<f64>().is_ok(), "{line}");
        assert!(name.starts_with("postie_"), "{line}");
    }
    assert!(text.contains("# TYPE postie_pop3_retr_duration_seconds histogram"));
}

#[test]
fn healthz_and_refusals() {
    let server = ServerBuilder::new().sections(HTTP_AND_LMTP).start();
    let addr = server.listener("http");
    assert_eq!(
        http(addr, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"),
        (200, "ok\n".into())
    );
    assert_eq!(
        http(addr, "HEAD /healthz HTTP/1.1\r\n\r\n"),
        (200, String::new())
    );
    assert_eq!(http(addr, "GET /nothing HTTP/1.1\r\n\r\n").0, 404);
    assert_eq!(
        http(addr, "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n").0,
        405
    );
    assert_eq!(http(addr, "GET / HTTP/9.9\r\n\r\n").0, 505);
    assert_eq!(
        http(
            addr,
            "POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        .0,
        501
    );
    assert_eq!(
        http(addr, "POST /x HTTP/1.1\r\nContent-Length: 900000\r\n\r\n").0,
        413
    );
    let huge = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(9000));
    assert_eq!(http(addr, &huge).0, 431);
    assert_eq!(http(addr, "garbage\r\n\r\n").0, 400);
    // Without an [autoconfig] section autoconfig still answers from the POP3 settings.
    assert_eq!(
        http(addr, "GET /mail/config-v1.1.xml HTTP/1.1\r\n\r\n").0,
        200
    );
}

#[test]
fn one_log_line_per_session_and_per_delivery_in_json_without_secrets() {
    let mut server = ServerBuilder::new()
        .sections(HTTP_AND_LMTP)
        .serve_args(&["--allow-root", "--log-format", "json"])
        .start();
    let reply = lmtp_deliver(
        server.listener("lmtp"),
        "bob@test.example",
        b"Subject: one\r\n\r\nfirst",
    );
    assert_eq!(reply.code, 250);
    lmtp_deliver(
        server.listener("lmtp"),
        "bob@test.example",
        b"Subject: two\r\n\r\nsecond",
    );
    let mut client = server.plain_client().stls(&server.cert_pem);
    client.login("bob", "pass word with spaces");
    client.retr(1);
    assert!(client.command("TOP 2 0").starts_with("+OK"));
    client.body();
    assert!(client.command("DELE 2").starts_with("+OK"));
    assert!(client.command("QUIT").starts_with("+OK"));
    let log = server.wait_for_log("\"session ended\"", 1);
    server.stop();
    assert!(server.wait_exit(std::time::Duration::from_secs(30)));

    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let sessions: Vec<_> = lines
        .iter()
        .filter(|l| l["fields"]["message"] == "session ended")
        .collect();
    assert_eq!(sessions.len(), 1, "{log}");
    let session = &sessions[0]["fields"];
    assert_eq!(session["user"], "bob");
    assert_eq!(session["tls"], true);
    assert!(session["peer"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert_eq!(session["retr"], 1);
    assert_eq!(session["top"], 1);
    assert_eq!(session["deleted"], 1);
    assert!(session["retr_bytes"].as_u64().unwrap() > 0);
    assert!(session["top_bytes"].as_u64().unwrap() > 0);
    assert!(session["deleted_bytes"].as_u64().unwrap() > 0);
    let deliveries: Vec<_> = lines
        .iter()
        .filter(|l| l["fields"]["message"] == "delivery")
        .collect();
    assert_eq!(deliveries.len(), 2, "{log}");
    assert_eq!(deliveries[0]["fields"]["outcome"], "delivered");
    assert_eq!(deliveries[0]["fields"]["user"], "bob");
    for secret in ["pass word with spaces", "first", "second", "Subject"] {
        assert!(!log.contains(secret), "{secret:?} reached the log:\n{log}");
    }
}
