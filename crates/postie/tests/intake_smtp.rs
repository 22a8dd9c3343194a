//! Inbound SMTP into the real `postie serve`, then POP3 out: swaks and python3 smtplib (with
//! STARTTLS), relay refusal, and commands injected before the TLS handshake.

mod common;
mod intake_support;

use std::process::Command;

use common::{crlf_form, SmtpClient};
use intake_support::{fetch_all, intake_server, require, split_trace, tricky_message};
use postie_proto::smtp::dot_stuff;

#[test]
fn swaks_smtp_with_starttls_is_byte_exact() {
    let swaks = require("swaks");
    let server = intake_server("");
    let message = b"From: swaks@example.net\r\nTo: alice@example.org\r\nSubject: swaks smtp\r\n\r\n.dot line\r\n\xc3\xa4\xc3\xb6 UTF-8\r\nend";
    let data = server.dir.path().join("message.eml");
    std::fs::write(&data, message).unwrap();
    let addr = server.smtp.unwrap();
    let output = Command::new(&swaks)
        .args([
            "--server",
            &addr.ip().to_string(),
            "--port",
            &addr.port().to_string(),
        ])
        .args([
            "--from",
            "swaks@example.net",
            "--to",
            "alice+swaks@example.org",
        ])
        .args(["--tls", "--pipeline", "--data"])
        .arg(format!("@{}", data.display()))
        .output()
        .unwrap();
    let transcript = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{transcript}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        transcript.contains("250 2.0.0 Ok: message delivered"),
        "{transcript}"
    );
    let fetched = fetch_all(&server, "alice");
    let (trace, rest) = split_trace(&fetched[0]);
    assert_eq!(rest, crlf_form(message));
    assert!(
        trace.contains("Delivered-To: alice+swaks@example.org"),
        "{trace}"
    );
    assert!(
        trace.contains("with ESMTPS"),
        "STARTTLS shows in the trace: {trace}"
    );
}

#[test]
fn python_smtplib_starttls_8bit_and_utf8() {
    let python = require("python3");
    let server = intake_server("");
    let cert = server.dir.path().join("cert.pem");
    let script = r#"
import smtplib, ssl, sys
host, port, cafile = sys.argv[1], int(sys.argv[2]), sys.argv[3]
msg = "Subject: Grüße\r\n\r\nüber 8-bit\r\n.dot\r\n".encode()
context = ssl.create_default_context(cafile=cafile)
context.check_hostname = False
with smtplib.SMTP(host, port) as smtp:
    smtp.starttls(context=context)
    smtp.ehlo()
    assert smtp.has_extn("smtputf8") and smtp.has_extn("8bitmime") and smtp.has_extn("size")
    assert not smtp.has_extn("starttls")
    refused = smtp.sendmail("jörg@example.net", ["bob@example.org"], msg,
                            mail_options=["SMTPUTF8", "BODY=8BITMIME"])
    assert refused == {}, refused
    try:
        smtp.sendmail("a@example.net", ["someone@elsewhere.example"], b"Subject: relay\r\n\r\nx\r\n")
        raise SystemExit("relayed")
    except smtplib.SMTPRecipientsRefused as e:
        code, text = e.recipients["someone@elsewhere.example"]
        assert code == 554 and text.startswith(b"5.7.1"), (code, text)
print("ok")
"#;
    let addr = server.smtp.unwrap();
    let output = Command::new(python)
        .arg("-c")
        .arg(script)
        .arg(addr.ip().to_string())
        .arg(addr.port().to_string())
        .arg(&cert)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let fetched = fetch_all(&server, "bob");
    assert_eq!(fetched.len(), 1);
    let (trace, rest) = split_trace(&fetched[0]);
    assert_eq!(
        rest,
        "Subject: Grüße\r\n\r\nüber 8-bit\r\n.dot\r\n".as_bytes()
    );
    assert!(trace.contains("Return-Path: <jörg@example.net>"), "{trace}");
    assert!(trace.contains("with UTF8SMTPS"), "{trace}");
}

#[test]
fn relay_is_refused_and_unknown_users_too() {
    let server = intake_server("");
    let mut client = SmtpClient::tcp(server.smtp.unwrap());
    assert!(
        client.greeting.text().contains("ESMTP"),
        "{:?}",
        client.greeting
    );
    let ehlo = client.command("EHLO client.example.net");
    assert!(ehlo.lines.iter().any(|l| l == "STARTTLS"), "{ehlo:?}");
    assert_eq!(client.command("LHLO x").code, 500, "LHLO is LMTP's");
    assert_eq!(client.command("MAIL FROM:<a@example.net>").code, 250);
    let relay = client.command("RCPT TO:<victim@elsewhere.example>");
    assert_eq!((relay.code, &relay.lines[0][..5]), (554, "5.7.1"));
    let unknown = client.command("RCPT TO:<ghost@example.org>");
    assert_eq!((unknown.code, &unknown.lines[0][..5]), (550, "5.1.1"));
    assert_eq!(client.command("DATA").code, 554, "no valid recipients");
    assert_eq!(client.command("RCPT TO:<ALICE@Example.ORG>").code, 250);
    assert_eq!(client.command("DATA").code, 354);
    let message = tricky_message();
    client.send(&dot_stuff(&message));
    assert_eq!(client.reply().code, 250);
    assert_eq!(client.command("QUIT").code, 221);
    let fetched = fetch_all(&server, "alice");
    assert_eq!(split_trace(&fetched[0]).1, crlf_form(&message));
}

#[test]
fn commands_pipelined_before_the_tls_handshake_are_not_run() {
    let server = intake_server("");
    let mut client = SmtpClient::tcp(server.smtp.unwrap());
    client.command("EHLO attacker");
    // A man in the middle appends commands after STARTTLS, in the clear.
    client.send(
        b"STARTTLS\r\nMAIL FROM:<evil@example.net>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\nSubject: injected\r\n\r\nx\r\n.\r\n",
    );
    let ready = client.reply();
    assert_eq!(ready.code, 220, "{ready:?}");
    let mut client = client.upgrade(&server.cert_pem);
    // Had the injected MAIL run, this would be a nested MAIL (503 5.5.1 Nested) or a 250.
    let mail = client.command("MAIL FROM:<a@example.net>");
    assert_eq!(mail.code, 503, "{mail:?}");
    assert!(
        mail.text().contains("EHLO"),
        "the session was reset: {mail:?}"
    );
    let ehlo = client.command("EHLO client");
    assert!(!ehlo.lines.iter().any(|l| l == "STARTTLS"), "{ehlo:?}");
    assert_eq!(client.command("QUIT").code, 221);
    assert!(
        server.message_files("alice").is_empty(),
        "nothing injected was delivered"
    );
}
