//! One client connection: pumps bytes between the socket and the sans-IO session, and runs
//! the services it asks for on blocking threads.

use std::io::Read;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use postie_auth::{AuthError, Mechanism, SaslExchange, SaslStep, UserDb, Verdict};
use postie_proto::{
    BodyEncoder, Credentials, ErrorKind, Event, MessageEntry, ServerOptions, ServerSession, Uidl,
};
use postie_store::{MailStore, Maildrop, StoreError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::conn::Conn;
use crate::listener::Shared;

/// Output is written once this much is buffered while a message streams.
const WRITE_THRESHOLD: usize = 64 * 1024;
/// Bytes read from a message file per blocking call.
const READ_CHUNK: usize = 128 * 1024;
/// Buffers bigger than this are given back after use, so idle sessions stay small.
const KEEP_CAPACITY: usize = 16 * 1024;

/// Counters for the session's log line.
#[derive(Debug, Default)]
struct Stats {
    retr: u64,
    retr_bytes: u64,
    top: u64,
    deleted: usize,
}

/// Why a session ended early: the connection is gone or unusable.
struct Disconnected;

struct Session<S: MailStore, U> {
    shared: Arc<Shared<S, U>>,
    peer: SocketAddr,
    core: ServerSession,
    maildrop: Option<S::Maildrop>,
    user: Option<String>,
    sasl: Option<SaslExchange>,
    stats: Stats,
}

pub(crate) async fn run<S: MailStore, U: UserDb>(
    mut conn: Conn,
    peer: SocketAddr,
    shared: Arc<Shared<S, U>>,
    mut stop: watch::Receiver<bool>,
) {
    let secure = matches!(conn, Conn::Tls(_));
    let config = &shared.config;
    let options = ServerOptions {
        greeting: format!("{} postie POP3 server ready.", config.hostname),
        apop_timestamp: config.apop.then(|| apop_timestamp(&config.hostname)),
        capabilities: shared.capabilities.clone(),
        stls_available: shared.acceptor.is_some(),
        secure,
        plaintext_allowed_insecure: config.allow_plaintext_auth || peer.ip().is_loopback(),
        max_auth_failures: 3,
        max_bad_commands: 20,
    };
    let mut session = Session {
        core: ServerSession::new(options),
        shared: Arc::clone(&shared),
        peer,
        maildrop: None,
        user: None,
        sasl: None,
        stats: Stats::default(),
    };
    let started = Instant::now();
    let outcome = session.pump(&mut conn, &mut stop).await;
    let _ = conn.shutdown().await;
    let Session {
        user, stats, core, ..
    } = session;
    info!(
        %peer,
        user = user.as_deref().unwrap_or("-"),
        tls = core.is_secure(),
        retr = stats.retr,
        retr_bytes = stats.retr_bytes,
        top = stats.top,
        deleted = stats.deleted,
        duration_ms = started.elapsed().as_millis() as u64,
        complete = outcome.is_ok(),
        "session ended"
    );
}

impl<S: MailStore, U: UserDb> Session<S, U> {
    async fn pump(
        &mut self,
        conn: &mut Conn,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<(), Disconnected> {
        let mut buffer = vec![0u8; 4096];
        loop {
            match self.core.next() {
                Event::NeedInput => {
                    flush(conn, self.core.output()).await?;
                    // Waiting for the client from here on: give back what a RETR or LIST grew.
                    let output = self.core.output();
                    if output.capacity() > KEEP_CAPACITY {
                        output.shrink_to(KEEP_CAPACITY / 4);
                    }
                    let timeout = if self.core.is_authenticated() {
                        self.shared.config.idle_timeout
                    } else {
                        self.shared.config.login_timeout
                    };
                    tokio::select! {
                        read = tokio::time::timeout(timeout, conn.read(&mut buffer)) => match read {
                            Ok(Ok(0)) | Ok(Err(_)) => return Err(Disconnected),
                            Ok(Ok(n)) => self.core.feed(&buffer[..n]),
                            // RFC 1939 section 3: an autologout does not enter the UPDATE state.
                            Err(_) => self.core.abort("Idle timeout, closing the connection."),
                        },
                        _ = stop.changed() => self.core.abort("Server shutting down, closing the connection."),
                    }
                }
                Event::Authenticate(credentials) => self.authenticate(credentials).await,
                Event::SaslStart {
                    mechanism,
                    initial_response,
                } => match mechanism.parse::<Mechanism>() {
                    Ok(mechanism) => {
                        let exchange = self.shared.auth.sasl(mechanism);
                        self.sasl_step(exchange, initial_response).await;
                    }
                    Err(_) => self.core.login_rejected(ErrorKind::Permanent),
                },
                Event::SaslResponse(response) => match self.sasl.take() {
                    Some(exchange) => self.sasl_step(exchange, Some(response)).await,
                    None => self.core.login_rejected(ErrorKind::Temporary),
                },
                Event::StartTls => {
                    flush(conn, self.core.output()).await?;
                    self.start_tls(conn).await?;
                }
                Event::Retrieve { index, top_lines } => {
                    self.retrieve(conn, index, top_lines).await?
                }
                Event::Update { deleted } => self.update(deleted).await,
                Event::Close => {
                    flush(conn, self.core.output()).await?;
                    return Ok(());
                }
            }
        }
    }

    async fn authenticate(&mut self, credentials: Credentials) {
        let auth = Arc::clone(&self.shared.auth);
        let verdict = blocking(move || match credentials {
            Credentials::User { user, password } => {
                auth.verify_password(user.as_str(), password.expose())
            }
            Credentials::Apop {
                user,
                timestamp,
                digest,
            } => auth.verify_apop(user.as_str(), timestamp.as_bytes(), &digest),
        })
        .await;
        self.finish_login(verdict).await;
    }

    async fn sasl_step(&mut self, mut exchange: SaslExchange, input: Option<Vec<u8>>) {
        let auth = Arc::clone(&self.shared.auth);
        let result = blocking(move || {
            let step = exchange.step(&auth, input.as_deref());
            Ok((exchange, step))
        })
        .await;
        match result {
            Err(error) => self.finish_login(Err(error)).await,
            Ok((_, Err(error))) => self.finish_login(Err(error)).await,
            Ok((exchange, Ok(SaslStep::Challenge(challenge)))) => {
                self.sasl = Some(exchange);
                self.core.sasl_challenge(&challenge);
            }
            Ok((_, Ok(SaslStep::Accepted { user }))) => {
                self.finish_login(Ok(Verdict::Accepted { user })).await
            }
            Ok((_, Ok(SaslStep::Rejected))) => self.finish_login(Ok(Verdict::Rejected)).await,
        }
    }

    async fn finish_login(&mut self, verdict: Result<Verdict, AuthError>) {
        let user = match verdict {
            Ok(Verdict::Accepted { user }) => user,
            Ok(Verdict::Rejected) => {
                let delay = self.shared.failures.failed(self.peer.ip(), Instant::now());
                info!(peer = %self.peer, delay_ms = delay.as_millis() as u64, "authentication failed");
                tokio::time::sleep(delay).await;
                self.core.login_rejected(ErrorKind::BadCredentials);
                return;
            }
            Err(error) => {
                warn!(peer = %self.peer, %error, "authentication could not be checked");
                self.core.login_rejected(ErrorKind::Temporary);
                return;
            }
        };
        if let Some(delay) = self.shared.config.login_delay {
            if !self
                .shared
                .login_times
                .try_login(&user, delay, Instant::now())
            {
                self.core.login_rejected(ErrorKind::LoginDelay);
                return;
            }
        }
        let store = Arc::clone(&self.shared.store);
        let exclusive = self.shared.config.lock_session;
        let name = user.clone();
        let opened = blocking(move || Ok(store.open(&name, exclusive))).await;
        match opened {
            Ok(Ok(maildrop)) => match snapshot_entries(maildrop.messages()) {
                Ok(entries) => {
                    info!(peer = %self.peer, %user, messages = entries.len(), "logged in");
                    self.core.login_accepted(entries);
                    self.maildrop = Some(maildrop);
                    self.user = Some(user);
                }
                Err(problem) => {
                    warn!(%user, %problem, "maildrop holds an invalid UIDL");
                    self.core.login_rejected(ErrorKind::Permanent);
                }
            },
            Ok(Err(error)) => {
                if !matches!(error, StoreError::InUse) {
                    warn!(%user, %error, "cannot open maildrop");
                }
                self.core.login_rejected(store_error_kind(&error));
            }
            Err(error) => {
                warn!(%user, %error, "cannot open maildrop");
                self.core.login_rejected(ErrorKind::Temporary);
            }
        }
    }

    async fn start_tls(&mut self, conn: &mut Conn) -> Result<(), Disconnected> {
        let Some(acceptor) = self.shared.acceptor.clone() else {
            return Err(Disconnected);
        };
        // The plain stream moves into the handshake; a placeholder never used holds its place.
        let plain = std::mem::replace(conn, Conn::Closed);
        let Conn::Plain(tcp) = plain else {
            return Err(Disconnected);
        };
        match tokio::time::timeout(
            self.shared.config.tls_handshake_timeout,
            acceptor.accept(tcp),
        )
        .await
        {
            Ok(Ok(tls)) => {
                *conn = Conn::Tls(Box::new(tls));
                self.core.tls_started();
                Ok(())
            }
            Ok(Err(error)) => {
                info!(peer = %self.peer, %error, "STLS handshake failed");
                Err(Disconnected)
            }
            Err(_) => {
                info!(peer = %self.peer, "STLS handshake timed out");
                Err(Disconnected)
            }
        }
    }

    async fn retrieve(
        &mut self,
        conn: &mut Conn,
        index: usize,
        top_lines: Option<u64>,
    ) -> Result<(), Disconnected> {
        let Some(mut maildrop) = self.maildrop.take() else {
            self.core.message_failed(ErrorKind::Temporary);
            return Ok(());
        };
        let (maildrop_back, opened) = blocking_infallible(move || {
            let opened = maildrop.open_message(index);
            (maildrop, opened)
        })
        .await?;
        self.maildrop = Some(maildrop_back);
        let mut reader = match opened {
            Ok(reader) => reader,
            Err(error) => {
                warn!(user = self.user.as_deref().unwrap_or("-"), %error, "cannot read message");
                self.core.message_failed(store_error_kind(&error));
                return Ok(());
            }
        };
        self.core.message_opened();
        let mut encoder = top_lines.map_or_else(BodyEncoder::whole, BodyEncoder::top);
        let mut chunk = vec![0u8; READ_CHUNK];
        let mut sent = 0u64;
        loop {
            let (back_reader, back_chunk, read) = blocking_infallible(move || {
                let read = read_chunk(&mut reader, &mut chunk);
                (reader, chunk, read)
            })
            .await?;
            reader = back_reader;
            chunk = back_chunk;
            let n = match read {
                Ok(0) => break,
                Ok(n) => n,
                Err(error) => {
                    // The status line is out already: the only honest end is to disconnect.
                    warn!(user = self.user.as_deref().unwrap_or("-"), %error, "message read failed mid-transfer");
                    return Err(Disconnected);
                }
            };
            sent += n as u64;
            encoder.encode(&chunk[..n], self.core.output());
            if encoder.is_done() {
                break;
            }
            if self.core.output().len() >= WRITE_THRESHOLD {
                flush(conn, self.core.output()).await?;
            }
        }
        encoder.finish(self.core.output());
        self.core.message_sent();
        if top_lines.is_some() {
            self.stats.top += 1;
            return Ok(());
        }
        self.stats.retr += 1;
        self.stats.retr_bytes += sent;
        if let Some(mut maildrop) = self.maildrop.take() {
            let (maildrop, seen) = blocking_infallible(move || {
                let seen = maildrop.mark_seen(index);
                (maildrop, seen)
            })
            .await?;
            if let Err(error) = seen {
                warn!(user = self.user.as_deref().unwrap_or("-"), %error, "cannot set the Seen flag");
            }
            self.maildrop = Some(maildrop);
        }
        Ok(())
    }

    async fn update(&mut self, deleted: Vec<usize>) {
        let Some(maildrop) = self.maildrop.take() else {
            self.core.updated(Ok(()));
            return;
        };
        let policy = self.shared.config.deleted;
        let count = deleted.len();
        let committed = blocking(move || Ok(maildrop.commit(&deleted, policy))).await;
        match committed {
            Ok(Ok(())) => {
                self.stats.deleted = count;
                self.core.updated(Ok(()));
            }
            Ok(Err(error)) => {
                warn!(user = self.user.as_deref().unwrap_or("-"), %error, "deleting messages failed");
                self.core.updated(Err(store_error_kind(&error)));
            }
            Err(error) => {
                warn!(user = self.user.as_deref().unwrap_or("-"), %error, "deleting messages failed");
                self.core.updated(Err(ErrorKind::Temporary));
            }
        }
    }
}

/// The one mapping from storage failures to wire answers.
fn store_error_kind(error: &StoreError) -> ErrorKind {
    match error {
        StoreError::InUse => ErrorKind::InUse,
        StoreError::Permanent(_) => ErrorKind::Permanent,
        StoreError::Vanished(_) | StoreError::Temporary(_) | StoreError::OverQuota(_) => {
            ErrorKind::Temporary
        }
    }
}

fn snapshot_entries(messages: &[postie_store::MessageInfo]) -> Result<Vec<MessageEntry>, String> {
    messages
        .iter()
        .map(|m| {
            Uidl::new(m.uidl.clone())
                .map(|uidl| MessageEntry { size: m.size, uidl })
                .map_err(|e| e.to_string())
        })
        .collect()
}

/// An RFC 1939 timestamp: unique per greeting, so an APOP digest cannot be replayed.
fn apop_timestamp(hostname: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "<{}.{}.{:08x}@{}>",
        std::process::id(),
        nanos,
        rand_u32(),
        hostname
    )
}

fn rand_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    // RandomState is seeded from the OS per instance; enough to make timestamps unguessable.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64),
    );
    hasher.finish() as u32
}

/// Fills `chunk` as far as the reader allows, so small reads do not mean small writes.
fn read_chunk(reader: &mut Box<dyn Read + Send>, chunk: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < chunk.len() {
        match reader.read(&mut chunk[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}

async fn flush(conn: &mut Conn, output: &mut Vec<u8>) -> Result<(), Disconnected> {
    if !output.is_empty() {
        conn.write_all(output).await.map_err(|_| Disconnected)?;
        conn.flush().await.map_err(|_| Disconnected)?;
        output.clear();
    }
    Ok(())
}

/// Runs a blocking service call off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, AuthError> + Send + 'static,
) -> Result<T, AuthError> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| Err(AuthError::Internal(e.to_string())))
}

async fn blocking_infallible<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Disconnected> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|_| Disconnected)
}
