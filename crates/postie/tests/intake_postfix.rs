//! A real Postfix, run by the test with a throwaway configuration and queue on loopback ports,
//! relays a message to postie over LMTP; then POP3 fetches it byte for byte. Once into a
//! Maildir, once into a front end on PostgreSQL.

// The one PostgreSQL test support, shared with postie-store-pg's own tests.
#[path = "../../postie-store-pg/tests/cluster/mod.rs"]
#[allow(dead_code)]
mod cluster;
mod common;
mod intake_support;
mod pg_support;

use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{ServerBuilder, SmtpClient, TestServer};
use intake_support::{fetch_all, intake_server, require, split_trace};
use postie_proto::smtp::dot_stuff;

/// Postfix's master runs as root and drops to the `postfix` user; without root the test
/// needs password-less sudo.
fn privileged(program: &Path) -> Command {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        Command::new(program)
    } else {
        let mut command = Command::new("sudo");
        command.arg("-n").arg(program);
        command
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One Postfix instance: its own config_directory, queue_directory and data_directory.
struct Postfix {
    postfix: PathBuf,
    dir: tempfile::TempDir,
    smtp: SocketAddr,
}

impl Postfix {
    fn start(lmtp: SocketAddr) -> Postfix {
        let postfix = require("postfix");
        let dir = tempfile::tempdir().unwrap();
        // The postfix user must reach the queue below it.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let etc = dir.path().join("etc");
        let data = dir.path().join("data");
        for sub in [&etc, &data, &dir.path().join("queue")] {
            std::fs::create_dir(sub).unwrap();
        }
        let smtp = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let root = dir.path().display();
        std::fs::write(
            etc.join("main.cf"),
            format!(
                "compatibility_level = 3.6\n\
                 queue_directory = {root}/queue\n\
                 data_directory = {root}/data\n\
                 maillog_file = {root}/maillog\n\
                 maillog_file_prefixes = {root}\n\
                 mail_owner = postfix\n\
                 setgid_group = postdrop\n\
                 myhostname = mx.test.example\n\
                 mydomain = test.example\n\
                 myorigin = test.example\n\
                 mydestination = example.org\n\
                 local_recipient_maps =\n\
                 alias_maps =\n\
                 alias_database =\n\
                 local_transport = lmtp:inet:{lmtp}\n\
                 inet_interfaces = 127.0.0.1\n\
                 inet_protocols = ipv4\n\
                 mynetworks = 127.0.0.0/8\n\
                 smtputf8_enable = yes\n\
                 biff = no\n\
                 smtpd_banner = $myhostname ESMTP test instance\n"
            ),
        )
        .unwrap();
        // No chroot: the throwaway queue is not set up as a chroot jail.
        std::fs::write(
            etc.join("master.cf"),
            format!(
                "{smtp} inet n - n - - smtpd\n\
                 pickup unix n - n 60 1 pickup\n\
                 cleanup unix n - n - 0 cleanup\n\
                 qmgr unix n - n 300 1 qmgr\n\
                 rewrite unix - - n - - trivial-rewrite\n\
                 bounce unix - - n - 0 bounce\n\
                 defer unix - - n - 0 bounce\n\
                 trace unix - - n - 0 bounce\n\
                 verify unix - - n - 1 verify\n\
                 flush unix n - n 1000? 0 flush\n\
                 proxymap unix - - n - - proxymap\n\
                 smtp unix - - n - - smtp\n\
                 relay unix - - n - - smtp\n\
                 showq unix n - n - - showq\n\
                 error unix - - n - - error\n\
                 retry unix - - n - - error\n\
                 discard unix - - n - - discard\n\
                 local unix - n n - - local\n\
                 lmtp unix - - n - - lmtp\n\
                 anvil unix - - n - 1 anvil\n\
                 scache unix - - n - 1 scache\n\
                 postlog unix-dgram n - n - 1 postlogd\n"
            ),
        )
        .unwrap();
        let chown = privileged(Path::new("chown"))
            .arg("postfix:postfix")
            .arg(&data)
            .status()
            .unwrap();
        assert!(chown.success(), "chown of the data directory");
        let started = privileged(&postfix)
            .arg("-c")
            .arg(&etc)
            .arg("start")
            .output()
            .unwrap();
        let instance = Postfix { postfix, dir, smtp };
        assert!(
            started.status.success(),
            "postfix start: {}{}{}",
            String::from_utf8_lossy(&started.stdout),
            String::from_utf8_lossy(&started.stderr),
            instance.log()
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(smtp).is_err() {
            assert!(
                Instant::now() < deadline,
                "postfix smtpd never listened:\n{}",
                instance.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        instance
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("maillog")).unwrap_or_default()
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let _ = privileged(&self.postfix)
            .arg("-c")
            .arg(self.dir.path().join("etc"))
            .arg("stop")
            .output();
    }
}

#[test]
fn postfix_relays_to_postie_over_lmtp() {
    postfix_relays_to(intake_server(""));
}

#[test]
fn postfix_relays_to_postie_on_postgresql_over_lmtp() {
    let db = cluster::TestDb::new();
    let server = ServerBuilder::new()
        .lmtp("")
        .lmtp_socket()
        .smtp("")
        .mail("store = \"postgres\"")
        .sections(&format!(
            "[postgres]\nurl = \"{}\"\n",
            pg_support::url(db.config())
        ))
        .start();
    postfix_relays_to(server);
}

fn postfix_relays_to(server: TestServer) {
    let postfix = Postfix::start(server.lmtp.unwrap());
    let message = "From: sender@example.net\r\nTo: alice@example.org\r\nSubject: through Postfix\r\nMessage-ID: <postfix-test@example.net>\r\n\r\n.leading dot\r\nGrüße, 8-bit\r\nlast line\r\n".as_bytes();

    let mut client = SmtpClient::tcp(postfix.smtp);
    assert_eq!(client.command("EHLO client.example.net").code, 250);
    assert_eq!(
        client
            .command("MAIL FROM:<sender@example.net> BODY=8BITMIME")
            .code,
        250
    );
    let rcpt = client.command("RCPT TO:<alice@example.org>");
    assert_eq!(rcpt.code, 250, "{rcpt:?}\n{}", postfix.log());
    assert_eq!(client.command("DATA").code, 354);
    client.send(&dot_stuff(message));
    let queued = client.reply();
    assert_eq!(queued.code, 250, "{queued:?}");
    client.command("QUIT");

    let deadline = Instant::now() + Duration::from_secs(60);
    let fetched = loop {
        let fetched = fetch_all(&server, "alice");
        if !fetched.is_empty() {
            break fetched;
        }
        assert!(
            Instant::now() < deadline,
            "Postfix did not deliver to postie:\n{}\npostie:\n{}",
            postfix.log(),
            server.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let (trace, rest) = split_trace(&fetched[0]);
    assert!(trace.contains("Delivered-To: alice@example.org"), "{trace}");
    assert!(trace.contains("from mx.test.example"), "{trace}");
    assert!(trace.contains("with LMTP"), "{trace}");
    // Postfix adds its own Received header (and may add others) on top of the message.
    assert!(
        rest.ends_with(b"\r\n\r\n.leading dot\r\nGr\xc3\xbc\xc3\x9fe, 8-bit\r\nlast line\r\n"),
        "{}",
        String::from_utf8_lossy(&rest)
    );
    assert!(String::from_utf8_lossy(&rest).contains("Subject: through Postfix"));
    assert!(postfix.log().contains("status=sent"), "{}", postfix.log());
}
