//! `postie fetch add`: discovery against a real DNS server (dnsmasq, started here on a
//! loopback address with zones for test domains) and real `postie serve`s: autoconfig over
//! HTTPS (postie's own autoconfig route behind a TLS front), SRV records only, an MX run by a
//! provider of the table (extended by POSTIE_PROVIDERS), guessing only, and a domain where
//! nothing answers. Each found account is written to fetch.toml and then fetches mail from
//! the server with a plain `postie fetch` (a new keep account needs no --reset-state).
//! Certificates come from a CA made here, trusted through SSL_CERT_FILE. Needs root (ports
//! 53, 443, 995) as CI has; dnsmasq is installed by scripts/test.

mod common;
mod fetch_support;
mod oauth_support;

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{ServerBuilder, TestServer, BIN};
use fetch_support::{maildir_contents, FetchEnv, Run};
use oauth_support::OidcProvider;

/// A CA and a server certificate it signed for `names`: (ca PEM, cert PEM, key PEM).
fn certificates(names: &[&str]) -> (String, String, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "postie fetch add test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let params =
        rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap();
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    (ca.pem(), cert.pem(), key.serialize_pem())
}

/// A process killed when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// dnsmasq answering for `*.test` on `address`:53 with `records` (dnsmasq.conf lines), and
/// nothing else (every other name under .test does not exist).
fn dns_server(dir: &Path, address: &str, records: &str) -> Process {
    let conf = dir.join("dnsmasq.conf");
    std::fs::write(
        &conf,
        format!(
            "port=53\nlisten-address={address}\nbind-interfaces\nno-resolv\nno-hosts\n\
             no-dhcp-interface=\nlocal=/test/\nuser=root\n{records}\n"
        ),
    )
    .unwrap();
    let child = Command::new("dnsmasq")
        .arg("--keep-in-foreground")
        .arg(format!("--conf-file={}", conf.display()))
        .arg("--pid-file=")
        .stdin(Stdio::null())
        .spawn()
        .expect("dnsmasq must be installed (scripts/test installs dnsmasq-base)");
    let process = Process(child);
    wait_for_dns(address);
    std::fs::write(dir.join("resolv.conf"), format!("nameserver {address}\n")).unwrap();
    process
}

/// Asks `address` for the A record of `ready.test` until it answers at all.
fn wait_for_dns(address: &str) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut query = vec![0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in ["ready", "test"] {
        query.push(label.len() as u8);
        query.extend_from_slice(label.as_bytes());
    }
    query.extend_from_slice(&[0, 0, 1, 0, 1]);
    let server: SocketAddr = format!("{address}:53").parse().unwrap();
    let mut answer = [0u8; 512];
    for _ in 0..100 {
        let _ = socket.send_to(&query, server);
        if socket.recv_from(&mut answer).is_ok() {
            return;
        }
    }
    panic!("dnsmasq on {address}:53 never answered");
}

/// A TLS front on `listen` (port 443) for the HTTP listener at `backend`, as a reverse proxy
/// puts one before postie's autoconfig route.
fn tls_front(dir: &Path, listen: &str, backend: SocketAddr) -> Process {
    const FRONT: &str = r#"
import socket, ssl, sys, threading
cert, key, host, backend_host, backend_port = sys.argv[1:6]
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)
listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind((host, 443))
listener.listen()
print("ready", flush=True)
def pipe(a, b):
    try:
        while True:
            data = a.recv(65536)
            if not data:
                break
            b.sendall(data)
    except OSError:
        pass
    finally:
        for s in (a, b):
            try:
                s.close()
            except OSError:
                pass
while True:
    raw, _ = listener.accept()
    try:
        client = context.wrap_socket(raw, server_side=True)
    except (ssl.SSLError, OSError):
        raw.close()
        continue
    upstream = socket.create_connection((backend_host, int(backend_port)))
    threading.Thread(target=pipe, args=(client, upstream), daemon=True).start()
    threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()
"#;
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(FRONT)
        .arg(dir.join("front-cert.pem"))
        .arg(dir.join("front-key.pem"))
        .arg(listen)
        .arg(backend.ip().to_string())
        .arg(backend.port().to_string())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "ready", "the TLS front did not start");
    Process(child)
}

/// One test's world: a folder, a CA trusted through SSL_CERT_FILE, the DNS server's
/// resolv.conf.
struct World {
    env: FetchEnv,
    net: u8,
}

impl World {
    /// `net` picks this test's loopback addresses, 127.77.NET.x, apart from other tests'.
    fn new(net: u8) -> World {
        World {
            env: FetchEnv::new(),
            net,
        }
    }

    fn ip(&self, host: u8) -> String {
        format!("127.77.{}.{host}", self.net)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.env.path(name)
    }

    /// A postie server on 127.77.NET.2 (995 implicit TLS, 110 STLS) with a certificate for
    /// `names`, and alice's mail.
    fn server(&self, names: &[&str], sections: &str) -> TestServer {
        let (ca, cert, key) = certificates(names);
        std::fs::write(self.path("ca.pem"), &ca).unwrap();
        let server = ServerBuilder::new()
            .pop3_listen(
                format!("{}:110", self.ip(2)).parse().unwrap(),
                format!("{}:995", self.ip(2)).parse().unwrap(),
            )
            .certificate(&cert, &key)
            .sections(sections)
            .start();
        for n in 0..3 {
            server.add_message(
                "alice",
                format!("Subject: message {n}\n\nhello {n}\n").as_bytes(),
            );
        }
        server
    }

    /// postie with this world's DNS, CA and provider table.
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(BIN);
        if self.path("providers.toml").exists() {
            command.env("POSTIE_PROVIDERS", self.path("providers.toml"));
        }
        command
            .args(args)
            .env("HOME", self.env.dir.path())
            .env("POSTIE_RESOLV_CONF", self.path("resolv.conf"))
            .env("SSL_CERT_FILE", self.path("ca.pem"))
            .env("PW", "wonderland")
            .stdin(Stdio::null());
        command
    }

    fn postie(&self, args: &[&str]) -> Run {
        let output = self.command(args).output().unwrap();
        let run = fetch_support::run_from(output);
        eprintln!("{}{}", run.stdout, run.stderr);
        run
    }

    fn add(&self, address: &str) -> Run {
        let config = self.path("fetch.toml");
        self.postie(&[
            "fetch",
            "add",
            address,
            "--config",
            config.to_str().unwrap(),
            "--password-env",
            "PW",
            "--keep-days",
            "14",
            "--to",
            "maildir:Mail",
            "--yes",
        ])
    }

    /// `fetch add` itself fetched all three messages (the account's first fetch, with no
    /// --reset-state), and a later fetch finds nothing new: nothing twice.
    fn fetches_alices_mail(&self) {
        assert_eq!(maildir_contents(&self.path("Mail")).len(), 3);
        let config = self.path("fetch.toml");
        let run = self.postie(&["fetch", "--config", config.to_str().unwrap()]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert!(run.stderr.contains("0 fetched"), "{}", run.stderr);
        assert_eq!(maildir_contents(&self.path("Mail")).len(), 3);
    }

    fn config(&self) -> String {
        std::fs::read_to_string(self.path("fetch.toml")).unwrap()
    }
}

#[test]
fn autoconfig_over_https_from_postie_serves_own_route() {
    let world = World::new(1);
    let front = world.ip(3);
    let _dns = dns_server(
        world.env.dir.path(),
        &world.ip(1),
        &format!(
            "host-record=autoconfig.ac.test,{front}\nhost-record=pop.ac.test,{}",
            world.ip(2)
        ),
    );
    let server = world.server(
        &["pop.ac.test"],
        &format!(
            "[http]\nlisten = [\"{front}:8080\"]\n[autoconfig]\nhost = \"pop.ac.test\"\n\
             domains = [\"ac.test\"]\nusername = \"localpart\"\n"
        ),
    );
    // The front's certificate comes from another CA: both go into SSL_CERT_FILE.
    let (front_ca, front_cert, front_key) = certificates(&["autoconfig.ac.test"]);
    std::fs::write(world.path("front-cert.pem"), front_cert).unwrap();
    std::fs::write(world.path("front-key.pem"), front_key).unwrap();
    let mut cas = std::fs::read_to_string(world.path("ca.pem")).unwrap();
    cas.push_str(&front_ca);
    std::fs::write(world.path("ca.pem"), cas).unwrap();
    let _front = tls_front(world.env.dir.path(), &front, server.listener("http"));

    let run = world.add("alice@ac.test");
    assert_eq!(run.code, 0, "{}", run.stderr);
    // From nothing to fetched mail in one command.
    assert!(run.stderr.contains("alice: 3 fetched"), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("https://autoconfig.ac.test/mail/config-v1.1.xml"),
        "{}",
        run.stderr
    );
    let config = world.config();
    assert!(config.contains("server = \"pop.ac.test\""), "{config}");
    assert!(config.contains("user = \"alice\""), "{config}");
    assert!(config.contains("delete_after_days = 14"), "{config}");
    world.fetches_alices_mail();
}

#[test]
fn srv_records_only_and_the_login_falls_back_to_the_local_part() {
    let world = World::new(2);
    let _dns = dns_server(
        world.env.dir.path(),
        &world.ip(1),
        &format!(
            "host-record=pop.srv.test,{}\nsrv-host=_pop3s._tcp.srv.test,pop.srv.test,995,0,1",
            world.ip(2)
        ),
    );
    let _server = world.server(&["pop.srv.test"], "");
    let run = world.add("alice@srv.test");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("SRV _pop3s._tcp.srv.test: POP3 at pop.srv.test:995"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("testing the login as alice@srv.test"),
        "the full address is tried first: {}",
        run.stderr
    );
    let config = world.config();
    assert!(config.contains("user = \"alice\"\n"), "{config}");
    world.fetches_alices_mail();
    let fetch_toml = world.path("fetch.toml");
    let probe = world.postie(&["probe", "alice", "--config", fetch_toml.to_str().unwrap()]);
    assert_eq!(
        probe.code, 0,
        "postie probe NAME tests the account as written"
    );
    assert!(
        probe.stdout.contains("logged in as alice"),
        "{}",
        probe.stdout
    );
}

#[test]
fn an_mx_run_by_a_provider_of_the_table() {
    let world = World::new(3);
    std::fs::write(
        world.path("providers.toml"),
        "[[provider]]\nname = \"Test Provider\"\nmx = [\"provider.test\"]\n\
         server = \"pop.provider.test:995\"\nuser = \"local-part\"\noauth = \"no\"\n",
    )
    .unwrap();
    let _dns = dns_server(
        world.env.dir.path(),
        &world.ip(1),
        &format!(
            "host-record=pop.provider.test,{}\nmx-host=hosted.test,mx1.provider.test,10",
            world.ip(2)
        ),
    );
    let _server = world.server(&["pop.provider.test"], "");
    let run = world.add("alice@hosted.test");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("mx1.provider.test is Test Provider's"),
        "{}",
        run.stderr
    );
    assert!(world.config().contains("server = \"pop.provider.test\""));
    world.fetches_alices_mail();
}

#[test]
fn only_guessing_finds_the_server() {
    let world = World::new(4);
    let _dns = dns_server(
        world.env.dir.path(),
        &world.ip(1),
        &format!("host-record=pop.guess.test,{}", world.ip(2)),
    );
    let _server = world.server(&["pop.guess.test"], "");
    let fetch_toml = world.path("fetch.toml");
    let dry = world.postie(&[
        "fetch",
        "add",
        "alice@guess.test",
        "--config",
        fetch_toml.to_str().unwrap(),
        "--password-env",
        "PW",
        "--yes",
        "--dry-run",
    ]);
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    assert!(
        dry.stdout.contains("[accounts.alice]") && dry.stdout.contains("delete_after_days = 14"),
        "--dry-run prints the account with the defaults: {}",
        dry.stdout
    );
    assert!(!fetch_toml.exists(), "--dry-run writes nothing");
    let run = world.add("alice@guess.test");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("guess pop.guess.test:995 (implicit TLS): answers POP3"),
        "{}",
        run.stderr
    );
    world.fetches_alices_mail();
}

/// Outlook's Autodiscover, answered by postie's own route behind a TLS front, is where the
/// server is found; the fetch.toml it is added to keeps its comments and other account byte
/// for byte.
#[test]
fn autodiscover_from_postie_serves_own_route_into_an_existing_fetch_toml() {
    let world = World::new(8);
    let front = world.ip(3);
    let _dns = dns_server(
        world.env.dir.path(),
        &world.ip(1),
        &format!(
            "host-record=autodiscover.ad.test,{front}\nhost-record=pop.ad.test,{}",
            world.ip(2)
        ),
    );
    let server = world.server(
        &["pop.ad.test"],
        &format!(
            "[http]\nlisten = [\"{front}:8080\"]\n[autoconfig]\nhost = \"pop.ad.test\"\n\
             domains = [\"ad.test\"]\nusername = \"localpart\"\n"
        ),
    );
    let (front_ca, front_cert, front_key) = certificates(&["autodiscover.ad.test"]);
    std::fs::write(world.path("front-cert.pem"), front_cert).unwrap();
    std::fs::write(world.path("front-key.pem"), front_key).unwrap();
    let mut cas = std::fs::read_to_string(world.path("ca.pem")).unwrap();
    cas.push_str(&front_ca);
    std::fs::write(world.path("ca.pem"), cas).unwrap();
    let _front = tls_front(world.env.dir.path(), &front, server.listener("http"));
    let before = "# my accounts, by hand\n\n[accounts.work]  # the office\nserver = \"pop.work.example\"   # kept as typed\nuser = \"a\"\npassword_command = \"pass work\"\ndeliver_to = \"maildir:Work\"\n";
    std::fs::write(world.path("fetch.toml"), before).unwrap();

    let run = world.add("alice@ad.test");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains(
            "https://autodiscover.ad.test/autodiscover/autodiscover.xml: POP3 at pop.ad.test:995"
        ),
        "{}",
        run.stderr
    );
    let config = world.config();
    assert!(config.starts_with(before), "{config}");
    assert!(config.contains("server = \"pop.ad.test\""), "{config}");
    assert!(config.contains("user = \"alice\""), "{config}");
    let alice_only = world.postie(&[
        "fetch",
        "--config",
        world.path("fetch.toml").to_str().unwrap(),
        "alice",
    ]);
    assert_eq!(alice_only.code, 0, "{}", alice_only.stderr);
    assert_eq!(maildir_contents(&world.path("Mail")).len(), 3);
}

#[test]
fn nothing_answers_and_every_place_tried_is_listed() {
    let world = World::new(5);
    let _dns = dns_server(world.env.dir.path(), &world.ip(1), "");
    std::fs::write(world.path("ca.pem"), certificates(&["x.test"]).0).unwrap();
    let run = world.add("alice@nothing.test");
    assert_eq!(run.code, 69, "{}", run.stderr);
    for place in [
        "found no POP3 server for alice@nothing.test",
        "https://autoconfig.nothing.test/mail/config-v1.1.xml",
        "https://nothing.test/.well-known/autoconfig/mail/config-v1.1.xml",
        "http://autoconfig.nothing.test/mail/config-v1.1.xml",
        "the provider table: no provider for nothing.test",
        "MX records of nothing.test: none",
        "SRV _pop3s._tcp.nothing.test: none",
        "SRV _pop3._tcp.nothing.test: none",
        "https://nothing.test/autodiscover/autodiscover.xml",
        "https://autodiscover.nothing.test/autodiscover/autodiscover.xml",
        "guess pop3.nothing.test:995",
        "guess nothing.test:110",
    ] {
        assert!(run.stderr.contains(place), "{place}: {}", run.stderr);
    }
    assert!(!world.path("fetch.toml").exists());
}

#[test]
fn a_provider_that_requires_oauth_is_refused_clearly() {
    let world = World::new(6);
    let _dns = dns_server(world.env.dir.path(), &world.ip(1), "");
    std::fs::write(world.path("ca.pem"), certificates(&["x.test"]).0).unwrap();
    let run = world.add("alice@outlook.com");
    assert_eq!(run.code, 78, "{}", run.stderr);
    assert!(
        run.stderr.contains("requires OAuth sign-in")
            && run.stderr.contains("registered at Microsoft")
            && run.stderr.contains("--oauth-client-id ID"),
        "{}",
        run.stderr
    );
    assert!(!world.path("fetch.toml").exists());
}

#[test]
fn a_provider_that_requires_oauth_is_signed_in_to_by_add_and_fetches() {
    let world = World::new(7);
    let provider = OidcProvider::start();
    std::fs::write(
        world.path("providers.toml"),
        format!(
            "[[provider]]\nname = \"Test OAuth\"\ndomains = [\"oauth.test\"]\n\
             server = \"pop.oauth.test:995\"\nuser = \"local-part\"\noauth = \"required\"\n\
             oauth_issuer = \"{}\"\n",
            provider.issuer()
        ),
    )
    .unwrap();
    let _dns = dns_server(
        world.env.dir.path(),
        &world.ip(1),
        &format!("host-record=pop.oauth.test,{}", world.ip(2)),
    );
    let _server = world.server(&["pop.oauth.test"], &provider.oauth_section(""));
    // The system's trust, through SSL_CERT_FILE: the world's CA and the provider's certificate.
    let mut trusted = std::fs::read_to_string(world.path("ca.pem")).unwrap();
    trusted.push_str(&std::fs::read_to_string(provider.ca_file()).unwrap());
    std::fs::write(world.path("ca.pem"), trusted).unwrap();

    let config = world.path("fetch.toml");
    let config = config.to_str().unwrap();
    let add = |extra: &[&'static str]| {
        let mut args = vec![
            "fetch",
            "add",
            "alice@oauth.test",
            "--config",
            config,
            "--keep-days",
            "14",
            "--to",
            "maildir:Mail",
            "--yes",
        ];
        args.extend(extra);
        args
    };
    let refused = world.postie(&add(&[]));
    assert_eq!(refused.code, 78, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("--oauth-client-id ID"),
        "{}",
        refused.stderr
    );

    let child = world
        .command(&add(&["--oauth-client-id", "alice-fetch", "--device"]))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let shown = provider.complete_sign_in(child, true);
    assert!(shown.contains("postie fetch add: to sign in"), "{shown}");
    assert!(shown.contains("logged in as alice"), "{shown}");
    let written = world.config();
    assert!(
        written.contains(&format!("oauth_issuer = \"{}\"", provider.issuer()))
            && written.contains("oauth_client_id = \"alice-fetch\"")
            && !written.contains("password"),
        "{written}"
    );
    // The sign-in's tokens are where the account's fetches find them.
    world.fetches_alices_mail();
}
