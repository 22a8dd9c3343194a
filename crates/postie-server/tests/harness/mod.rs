//! The POP3 shell in process: sessions over in-memory streams (`tokio::io::duplex`) with a
//! `MemoryStore`, users in memory and a generated certificate, so a command or a store is
//! tested through the real shell and core without a socket or the binary. Time can be paused
//! (`#[tokio::test(start_paused = true)]`), so timeouts of minutes take no time.

use std::net::SocketAddr;
use std::sync::Arc;

use postie_auth::{AuthError, Authenticator, PasswordHash, UserDb, UserRecord};
use postie_server::{Pop3Config, Pop3Server};
use postie_store::View;
use postie_store::{Delivery, MailStore, MemoryStore, Quota, Recipient};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, DuplexStream};
use tokio::sync::watch;
use tokio_rustls::rustls;

/// The one user: `alice`, password `wonderland`.
pub const USER: &str = "alice";
pub const PASSWORD: &str = "wonderland";

struct Users;

impl UserDb for Users {
    fn lookup(&self, user: &str) -> Result<Option<UserRecord>, AuthError> {
        Ok((user == USER).then(|| {
            UserRecord::new(
                USER.to_owned(),
                PasswordHash::parse(&format!("{{PLAIN}}{PASSWORD}")).expect("a hash"),
            )
        }))
    }
}

/// A POP3 server without listeners: each [`Harness::connect`] is one session.
pub struct Harness {
    server: Pop3Server<MemoryStore, Users>,
    pub store: MemoryStore,
    stop: watch::Sender<bool>,
    roots: Arc<rustls::RootCertStore>,
}

impl Harness {
    /// Defaults as `postie serve` has them, with STLS offered.
    pub fn new() -> Harness {
        Harness::with(|_| {})
    }

    /// Defaults changed by `configure`.
    pub fn with(configure: impl FnOnce(&mut Pop3Config)) -> Harness {
        let generated =
            rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("a certificate");
        let cert = generated.cert.der().clone();
        let key =
            rustls::pki_types::PrivateKeyDer::Pkcs8(generated.key_pair.serialize_der().into());
        let tls = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .expect("a TLS configuration");
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert).expect("a root");
        let mut config = Pop3Config::new("harness.example");
        config.tls = Some(Arc::new(tls));
        configure(&mut config);
        let store = MemoryStore::new();
        let server =
            Pop3Server::new(config, store.clone(), Authenticator::new(Users)).expect("a server");
        Harness {
            server,
            store,
            stop: watch::channel(false).0,
            roots: Arc::new(roots),
        }
    }

    /// Delivers `message` to alice.
    pub async fn deliver(&self, message: &[u8]) {
        let delivery = Delivery {
            message: Arc::new(message.to_vec()),
            recipients: vec![Recipient {
                user: USER.to_owned(),
                headers: Vec::new(),
                quota: Quota::default(),
            }],
        };
        for result in self.store.deliver(delivery).await {
            result.expect("delivered");
        }
    }

    /// A new session from `peer` (a loopback address, so plaintext logins are allowed); the
    /// greeting is read.
    pub async fn connect_from(&self, peer: SocketAddr) -> Client {
        let (client, server) = tokio::io::duplex(256 * 1024);
        let session = self
            .server
            .serve_stream(server, peer, self.stop.subscribe());
        tokio::spawn(session);
        let mut client = Client::new(client, Arc::clone(&self.roots));
        let greeting = client.line().await;
        assert!(greeting.starts_with("+OK "), "{greeting}");
        client
    }

    pub async fn connect(&self) -> Client {
        self.connect_from("127.0.0.1:50000".parse().unwrap()).await
    }

    /// Tells every session that the server is shutting down.
    pub fn shut_down(&self) {
        let _ = self.stop.send(true);
    }

    /// The UIDLs in alice's maildrop now.
    pub async fn uidls(&self) -> Vec<String> {
        let drop = self
            .store
            .open(USER, false, View::Normal)
            .await
            .expect("open");
        postie_store::Maildrop::messages(&drop)
            .iter()
            .map(|m| m.uidl.to_string())
            .collect()
    }
}

type Stream = Box<dyn AsyncReadWrite>;
trait AsyncReadWrite: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> AsyncReadWrite for T {}

/// The client end of a session.
pub struct Client {
    stream: Option<BufReader<Stream>>,
    roots: Arc<rustls::RootCertStore>,
}

impl Client {
    fn new(stream: DuplexStream, roots: Arc<rustls::RootCertStore>) -> Client {
        Client {
            stream: Some(BufReader::new(Box::new(stream))),
            roots,
        }
    }

    fn stream(&mut self) -> &mut BufReader<Stream> {
        self.stream.as_mut().expect("the stream")
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        let stream = self.stream();
        stream.get_mut().write_all(bytes).await.expect("write");
        stream.get_mut().flush().await.expect("flush");
    }

    /// One line as raw bytes, CRLF included; empty at the end of the stream.
    pub async fn raw_line(&mut self) -> Vec<u8> {
        let mut line = Vec::new();
        self.stream()
            .read_until(b'\n', &mut line)
            .await
            .expect("read");
        line
    }

    /// One line without its CRLF.
    pub async fn line(&mut self) -> String {
        let line = self.raw_line().await;
        String::from_utf8(line)
            .expect("UTF-8")
            .trim_end_matches("\r\n")
            .to_owned()
    }

    pub async fn command(&mut self, command: &str) -> String {
        self.send(format!("{command}\r\n").as_bytes()).await;
        self.line().await
    }

    /// The lines of a multi-line body as sent (stuffed), up to but not including `.`.
    pub async fn multiline(&mut self) -> Vec<u8> {
        let mut body = Vec::new();
        loop {
            let line = self.raw_line().await;
            assert!(
                !line.is_empty(),
                "the stream ended inside a multi-line answer"
            );
            if line == b".\r\n" {
                return body;
            }
            body.extend_from_slice(&line);
        }
    }

    pub async fn login(&mut self) {
        assert!(self
            .command(&format!("USER {USER}"))
            .await
            .starts_with("+OK"));
        let answer = self.command(&format!("PASS {PASSWORD}")).await;
        assert!(answer.starts_with("+OK"), "{answer}");
    }

    /// Whether the server closed the session.
    pub async fn is_closed(&mut self) -> bool {
        self.raw_line().await.is_empty()
    }

    /// STLS, then the TLS handshake, trusting the harness's certificate.
    pub async fn stls(&mut self) {
        assert!(self.command("STLS").await.starts_with("+OK"));
        let plain = self.stream.take().expect("the stream");
        assert!(plain.buffer().is_empty(), "bytes after the STLS answer");
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(Arc::clone(&self.roots))
        .with_no_client_auth();
        let name = rustls::pki_types::ServerName::try_from("localhost").expect("a name");
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, plain.into_inner())
            .await
            .expect("the TLS handshake");
        self.stream = Some(BufReader::new(Box::new(tls)));
    }
}
