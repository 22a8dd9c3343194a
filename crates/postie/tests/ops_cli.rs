//! The operator's commands: check-config (each finding with its fix), dns-records,
//! completions and the manual page.

mod common;

use std::process::{Command, Output};

use common::{write_certificate, ServerBuilder, BIN};

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A test server's folder with `config_text` as its configuration.
fn prepared(config_text: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    ServerBuilder::new().write(dir.path());
    std::fs::write(dir.path().join("postie.toml"), config_text).unwrap();
    dir
}

#[test]
fn check_config_passes_a_sound_configuration() {
    let dir = prepared(
        &ServerBuilder::new()
            .sections("[http]\nlisten = [\"127.0.0.1:0\"]\n")
            .config(),
    );
    let path = dir.path().join("postie.toml");
    let out = run(&["check-config", "--config", path.to_str().unwrap()]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    for finding in [
        "the configuration parses",
        "load and belong together",
        "2 users",
        "certificate valid until",
        "0 errors",
    ] {
        assert!(text.contains(finding), "{finding:?} missing:\n{text}");
    }
}

#[test]
fn check_config_names_each_problem_with_its_fix() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_addr = busy.local_addr().unwrap();
    let text = ServerBuilder::new()
        .pop3("proxy_from = [\"0.0.0.0/0\"]")
        .pop3_listen(busy_addr, "127.0.0.1:0".parse().unwrap())
        .config()
        .replace("mail/{user}/Maildir", "/nonexistent-postie/{user}/Maildir");
    let dir = prepared(&text);
    // A key from another certificate.
    let other = tempfile::tempdir().unwrap();
    write_certificate(other.path());
    std::fs::copy(other.path().join("key.pem"), dir.path().join("key.pem")).unwrap();
    std::fs::write(dir.path().join("users"), "alice:{PLAIN}x\nbroken line\n").unwrap();
    let path = dir.path().join("postie.toml");
    let out = run(&["check-config", "--config", path.to_str().unwrap()]);
    let report = stdout(&out);
    assert!(!out.status.success(), "{report}");
    for (problem, fix) in [
        ("do not fit together", "private key"),
        ("passwd_file", "postie user add"),
        ("in use", "ss -ltnp"),
        (
            "/nonexistent-postie does not exist yet",
            "mkdir -p /nonexistent-postie/",
        ),
        ("any client may claim any address", "load balancers"),
    ] {
        let at = report
            .find(problem)
            .unwrap_or_else(|| panic!("{problem:?} missing:\n{report}"));
        let fix_line = report[at..].lines().nth(1).unwrap_or_default();
        assert!(
            fix_line.contains("fix:") && fix_line.contains(fix),
            "{problem}: {fix_line}\n{report}"
        );
    }

    let out = run(&["check-config", "--config", "/nonexistent/postie.toml"]);
    assert!(!out.status.success());
    assert!(stdout(&out).contains("/nonexistent/postie.toml"));
}

#[test]
fn check_config_finds_an_expired_certificate() {
    let dir = prepared(&ServerBuilder::new().config());
    let mut params = rcgen::CertificateParams::new(vec!["test.example".to_owned()]).unwrap();
    params.not_before = rcgen::date_time_ymd(2001, 1, 1);
    params.not_after = rcgen::date_time_ymd(2002, 1, 1);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    std::fs::write(dir.path().join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.path().join("key.pem"), key.serialize_pem()).unwrap();
    let path = dir.path().join("postie.toml");
    let out = run(&["check-config", "--config", path.to_str().unwrap()]);
    let report = stdout(&out);
    assert!(!out.status.success(), "{report}");
    assert!(
        report.contains("expired on") && report.contains("certbot renew"),
        "{report}"
    );
    assert!(
        report.contains("the certificate names test.example"),
        "{report}"
    );
}

#[test]
fn dns_records_for_the_configured_service() {
    let text = "hostname = \"mail.example.org\"\n[pop3]\nlisten = [\"0.0.0.0:110\"]\nlisten_tls = [\"0.0.0.0:995\"]\n\
                [tls]\ncert = \"cert.pem\"\nkey = \"key.pem\"\n";
    let dir = prepared(text);
    let path = dir.path().join("postie.toml");
    let out = run(&[
        "dns-records",
        "Example.org",
        "--config",
        path.to_str().unwrap(),
    ]);
    let records = stdout(&out);
    assert!(out.status.success(), "{records}");
    for record in [
        "_pop3s._tcp.example.org. 3600 IN SRV 0 1 995 mail.example.org.",
        "_pop3._tcp.example.org. 3600 IN SRV 10 1 110 mail.example.org.",
        "_imaps._tcp.example.org. 3600 IN SRV 0 0 0 .",
        "autoconfig.example.org. 3600 IN CNAME mail.example.org.",
        "autodiscover.example.org. 3600 IN CNAME mail.example.org.",
    ] {
        assert!(
            records.lines().any(|l| l == record),
            "{record:?} missing:\n{records}"
        );
    }
    let out = run(&[
        "dns-records",
        "example.org",
        "--config",
        "/nonexistent.toml",
        "--host",
        "pop.example.net",
        "--ttl",
        "60",
    ]);
    assert!(stdout(&out).contains("_pop3s._tcp.example.org. 60 IN SRV 0 1 995 pop.example.net."));
    assert!(!run(&["dns-records", "bad domain", "--host", "x"])
        .status
        .success());
}

#[test]
fn completions_and_manual_page() {
    for shell in ["bash", "zsh", "fish"] {
        let out = run(&["completions", shell]);
        assert!(out.status.success());
        let script = stdout(&out);
        assert!(
            script.contains("check-config") && script.contains("dns-records"),
            "{shell}"
        );
    }
    let out = run(&["man"]);
    assert!(out.status.success());
    let page = stdout(&out);
    assert!(page.contains(".TH postie 1"), "{page}");
    assert!(page.contains("check\\-config"), "{page}");
}
