//! SIGHUP: a certificate swapped on disk is presented by the next TLS handshake while open
//! sessions go on; a broken one keeps the old in use and says why; POP3 settings change for
//! new sessions, with the connection maximum kept under the open-file limit.

mod common;

use std::io::Read;
use std::net::TcpStream;

use common::{write_certificate, Client, ServerBuilder, TestServer};

#[test]
fn sighup_swaps_the_certificate_for_new_handshakes_only() {
    let server = TestServer::start();
    let old_pem = server.cert_pem.clone();
    let mut open = server.tls_client();
    open.login("alice", "wonderland");

    // certbot's way: new files written elsewhere and moved into place.
    let staging = tempfile::tempdir().unwrap();
    let new_pem = write_certificate(staging.path());
    for name in ["cert.pem", "key.pem"] {
        std::fs::copy(staging.path().join(name), server.dir.path().join(name)).unwrap();
    }
    server.reload();
    server.wait_for_log("reloaded the TLS certificate", 1);

    let mut fresh = Client::implicit_tls(server.tls, &new_pem);
    assert!(
        fresh.greeting.starts_with("+OK"),
        "the new certificate is presented"
    );
    fresh.login("bob", "pass word with spaces");
    let stale = Client::implicit_tls(server.tls, &old_pem);
    assert!(
        stale.greeting.is_empty(),
        "the old certificate is still presented"
    );
    let upgraded = server.plain_client().stls(&new_pem);
    drop(upgraded);
    assert!(
        open.command("STAT").starts_with("+OK"),
        "the open session goes on"
    );

    // A broken key: the certificate in use stays, and the log says why.
    std::fs::write(
        server.dir.path().join("key.pem"),
        "-----BEGIN PRIVATE KEY-----\nbroken\n",
    )
    .unwrap();
    server.reload();
    let log = server.wait_for_log("kept the TLS certificate in use", 1);
    assert!(log.contains("key.pem"), "{log}");
    let mut after = Client::implicit_tls(server.tls, &new_pem);
    assert!(after.greeting.starts_with("+OK"));
    assert!(after.command("QUIT").starts_with("+OK"));
    assert!(open.command("QUIT").starts_with("+OK"));
}

#[test]
fn sighup_applies_pop3_settings_to_new_sessions() {
    let server = TestServer::start();
    let mut before = server.tls_client();
    let capa = |client: &mut Client| {
        assert!(client.command("CAPA").starts_with("+OK"));
        String::from_utf8(client.body()).unwrap()
    };
    assert!(!capa(&mut before).contains("LOGIN-DELAY"));
    let config = server.dir.path().join("postie.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("[pop3]\n", "[pop3]\nlogin_delay_secs = 900\n"),
    )
    .unwrap();
    server.reload();
    server.wait_for_log("reloaded the POP3 settings", 1);
    let mut after = server.tls_client();
    assert!(capa(&mut after).contains("LOGIN-DELAY 900"));
    assert!(
        !capa(&mut before).contains("LOGIN-DELAY"),
        "open sessions keep their settings"
    );

    // A configuration with an error keeps the settings in use.
    std::fs::write(&config, "[pop3]\nlisen = 1\n").unwrap();
    server.reload();
    let log = server.wait_for_log("kept the settings in use", 1);
    assert!(log.contains("lisen"), "{log}");
    let mut still = server.tls_client();
    assert!(capa(&mut still).contains("LOGIN-DELAY 900"));
}

#[test]
fn sighup_keeps_max_connections_under_the_open_file_limit() {
    let builder = ServerBuilder::new().pop3("max_connections = 50\nmax_connections_per_ip = 1000");
    // 700 descriptors, of which postie keeps 512 for listeners and files: 188 sessions.
    // SAFETY: only setrlimit, async-signal-safe, between fork and exec.
    let builder = unsafe {
        builder.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 700,
                rlim_max: 700,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    };
    let server = builder.start();
    let config_path = server.config_path();
    let text = std::fs::read_to_string(&config_path).unwrap();
    std::fs::write(
        &config_path,
        text.replace("max_connections = 50", "max_connections = 100000"),
    )
    .unwrap();
    server.reload();
    let log = server.wait_for_log("reloaded the POP3 settings", 1);
    assert!(
        log.contains("max_connections is above what the open-file limit allows"),
        "{log}"
    );
    // Above the maximum, a connection is told why instead of failing at accept.
    let held: Vec<Client> = (0..188).map(|_| Client::plain(server.plain)).collect();
    assert!(held.iter().all(|client| client.greeting.starts_with("+OK")));
    let mut extra = TcpStream::connect(server.plain).unwrap();
    extra
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let mut answer = String::new();
    extra.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("-ERR [SYS/TEMP]"), "{answer:?}");
}
