//! One client connection: pumps bytes between the socket and the sans-IO session, and calls
//! the services it asks for: password checks on blocking threads, the store through its
//! async contract.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use postie_auth::{
    AppPasswordUse, AuthError, LoginName, Mechanism, SaslExchange, SaslStep, UserDb, Verdict,
};
use postie_metrics::METRICS;
use postie_proto::{
    BodyTransfer, Credentials, ErrorKind, Event, MessageEntry, ServerOptions, ServerSession,
    WrongState,
};
use postie_store::View;
use postie_store::{MailStore, Maildrop, MessageBody, StoreError, Update};
use postie_types::limits::{
    IDLE_BUFFER, MAX_AUTH_FAILURES, MAX_BAD_COMMANDS, MAX_SNAPSHOT_MESSAGES, RETR_CHUNK,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use tracing::{error, info, warn};

use postie_net::Conn;

use crate::login_policy::LoginRecordsError;
use crate::recent_sessions::RecentSession;
use crate::shared::Shared;

mod bearer;

/// Counters for the session's log line (Dovecot's pop3_logout_format: top, retr, del).
#[derive(Debug, Default)]
struct Stats {
    retr: u64,
    retr_bytes: u64,
    top: u64,
    top_bytes: u64,
    deleted: usize,
    deleted_bytes: u64,
}

/// Why a session ended early: the connection is gone or unusable.
struct Disconnected;

struct Session<S: MailStore, U> {
    shared: Arc<Shared<S, U>>,
    peer: SocketAddr,
    core: ServerSession,
    maildrop: Option<S::Maildrop>,
    user: Option<String>,
    /// The label of the app password that logged in, for the session's log line.
    app_password: Option<String>,
    sasl: Option<SaslExchange>,
    /// An OAUTHBEARER or XOAUTH2 exchange waiting for the client's next line.
    bearer: Option<bearer::BearerWait>,
    /// A refused token's error status, sent instead of `-ERR` once the brake has held it.
    bearer_status: Option<Vec<u8>>,
    /// The login mechanism being tried, for the login counter.
    mechanism: &'static str,
    /// Messages retrieved, to be marked seen at QUIT with the deletions, as Dovecot does (a
    /// store trip per RETR cost a tenth of RETR throughput); a session that ends without
    /// QUIT changes nothing.
    retrieved: Vec<usize>,
    stats: Stats,
}

pub(crate) async fn run<S: MailStore, U: UserDb>(
    mut conn: Conn,
    peer: SocketAddr,
    shared: Arc<Shared<S, U>>,
    mut stop: watch::Receiver<bool>,
) {
    let secure = conn.is_tls();
    let config = &shared.config;
    let options = ServerOptions {
        greeting: format!("{} postie POP3 server ready.", config.hostname),
        apop_timestamp: config.apop.then(|| apop_timestamp(&config.hostname)),
        capabilities: shared.capabilities.clone(),
        stls_available: shared.acceptor.is_some(),
        secure,
        plaintext_allowed_insecure: config.allow_plaintext_auth || peer.ip().is_loopback(),
        max_auth_failures: MAX_AUTH_FAILURES,
        max_bad_commands: MAX_BAD_COMMANDS,
    };
    let mut session = Session {
        core: ServerSession::new(options),
        shared: Arc::clone(&shared),
        peer,
        maildrop: None,
        user: None,
        app_password: None,
        sasl: None,
        bearer: None,
        bearer_status: None,
        mechanism: "USER",
        retrieved: Vec::new(),
        stats: Stats::default(),
    };
    let started = Instant::now();
    let outcome = session.pump(&mut conn, &mut stop).await;
    let _ = conn.shutdown().await;
    let Session {
        user,
        app_password,
        stats,
        core,
        mechanism,
        ..
    } = session;
    info!(
        %peer,
        user = user.as_deref().unwrap_or("-"),
        app_password = app_password.as_deref().unwrap_or("-"),
        tls = core.is_secure(),
        retr = stats.retr,
        retr_bytes = stats.retr_bytes,
        top = stats.top,
        top_bytes = stats.top_bytes,
        deleted = stats.deleted,
        deleted_bytes = stats.deleted_bytes,
        duration_ms = started.elapsed().as_millis() as u64,
        complete = outcome.is_ok(),
        "session ended"
    );
    if let Some(user) = &user {
        let over = match core.is_secure() {
            true => format!("POP3 {mechanism} over TLS"),
            false => format!("POP3 {mechanism}"),
        };
        let recent = RecentSession {
            ended: SystemTime::now(),
            from: peer.ip(),
            app_password,
            over,
            retrieved: stats.retr,
            deleted: stats.deleted,
        };
        shared.recent_sessions.record(user, recent);
    }
    for (verb, count) in core.commands().iter() {
        METRICS
            .commands
            .add([verb], i64::try_from(count).unwrap_or(i64::MAX));
    }
}

impl<S: MailStore, U: UserDb> Session<S, U> {
    async fn pump(
        &mut self,
        conn: &mut Conn,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<(), Disconnected> {
        let mut buffer = vec![0u8; 4096];
        // tokio's clock, which tests can pause, rather than std's.
        let login_deadline = tokio::time::Instant::now() + self.shared.config.login_timeout;
        loop {
            match self.core.next() {
                Event::NeedInput => {
                    flush(conn, self.core.output(), self.shared.config.idle_timeout).await?;
                    // Waiting for the client from here on: give back what a RETR or LIST grew.
                    let output = self.core.output();
                    if output.capacity() > IDLE_BUFFER {
                        output.shrink_to(IDLE_BUFFER / 4);
                    }
                    // Before login the timeout is a deadline for the whole login, not per read:
                    // a client trickling a byte at a time (slowloris) must not hold its
                    // connection for ever.
                    let timeout = if self.core.is_authenticated() {
                        self.shared.config.idle_timeout
                    } else {
                        login_deadline.saturating_duration_since(tokio::time::Instant::now())
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
                } if bearer::named(&mechanism) => {
                    self.bearer_start(&mechanism, initial_response).await
                }
                Event::SaslResponse(response) if self.bearer.is_some() => {
                    self.bearer_response(response).await
                }
                Event::SaslStart {
                    mechanism,
                    initial_response,
                } => match mechanism.parse::<Mechanism>() {
                    Ok(mechanism) => {
                        self.bearer = None;
                        self.mechanism = mechanism.as_str();
                        let exchange = self.shared.auth.sasl(mechanism);
                        self.sasl_step(exchange, initial_response).await;
                    }
                    Err(_) => {
                        self.answer(|core| core.login_rejected(ErrorKind::Permanent));
                    }
                },
                Event::SaslResponse(response) => match self.sasl.take() {
                    Some(exchange) => self.sasl_step(exchange, Some(response)).await,
                    None => {
                        self.answer(|core| core.login_rejected(ErrorKind::Temporary));
                    }
                },
                Event::StartTls => {
                    flush(conn, self.core.output(), self.shared.config.idle_timeout).await?;
                    self.start_tls(conn).await?;
                }
                Event::Retrieve { index, top_lines } => {
                    self.retrieve(conn, index, top_lines).await?
                }
                Event::Update { deleted } => self.update(deleted).await,
                Event::Close => {
                    flush(conn, self.core.output(), self.shared.config.idle_timeout).await?;
                    return Ok(());
                }
            }
        }
    }

    async fn authenticate(&mut self, credentials: Credentials) {
        self.mechanism = match credentials {
            Credentials::User { .. } => "USER",
            Credentials::Apop { .. } => "APOP",
        };
        let claimed = match &credentials {
            Credentials::User { user, .. } | Credentials::Apop { user, .. } => {
                user.as_str().to_owned()
            }
        };
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
        self.finish_login(verdict, Some(claimed)).await;
    }

    async fn sasl_step(&mut self, mut exchange: SaslExchange, input: Option<Vec<u8>>) {
        let auth = Arc::clone(&self.shared.auth);
        let result = blocking(move || {
            let step = exchange.step(&auth, input.as_deref());
            Ok((exchange, step))
        })
        .await;
        let (exchange, step) = match result {
            Err(error) => return self.finish_login(Err(error), None).await,
            Ok(done) => done,
        };
        let claimed = exchange.claimed_user().map(str::to_owned);
        match step {
            Err(error) => self.finish_login(Err(error), claimed).await,
            Ok(SaslStep::Challenge(challenge)) => {
                self.sasl = Some(exchange);
                self.answer(|core| core.sasl_challenge(&challenge));
            }
            Ok(SaslStep::Accepted { user, app_password }) => {
                let verdict = Verdict::Accepted { user, app_password };
                self.finish_login(Ok(verdict), claimed).await
            }
            Ok(SaslStep::AppPasswordRequired { user }) => {
                let verdict = Verdict::AppPasswordRequired { user };
                self.finish_login(Ok(verdict), claimed).await
            }
            Ok(SaslStep::Rejected) => self.finish_login(Ok(Verdict::Rejected), claimed).await,
        }
    }

    /// Answers a login attempt for the `claimed` user name, after the brute-force brake's
    /// delay, which holds right and wrong passwords alike: it depends on the failures counted
    /// and on whether the user logged in from this network before, never on the password. A
    /// failure is counted before the wait, so parallel guesses see each other at once.
    /// Records that cannot be reached answer every attempt with a temporary failure: the
    /// brake cannot be skipped, and the answer tells nothing of the password.
    async fn finish_login(&mut self, verdict: Result<Verdict, AuthError>, claimed: Option<String>) {
        // `recent:alice` is alice: her failures and known networks are counted under her
        // name, whatever view she asks for.
        let login = claimed.as_deref().map(LoginName::parse);
        let counted_as = login.map(|login| login.user);
        let settings = &self.shared.config.brake;
        let network = settings.network_of(self.peer.ip());
        let trusted = settings.trusted_networks.contains(self.peer.ip());
        let records = Arc::clone(&self.shared.login_records);
        // The account's own password where app passwords are required counts as a failure:
        // a right password must not be usable to guess faster than a wrong one.
        let history = match &verdict {
            Ok(Verdict::Rejected | Verdict::AppPasswordRequired { .. }) => {
                self.shared.brake.failed(Instant::now());
                records.record_failure(network, counted_as).await
            }
            _ => records.history(network, counted_as).await,
        };
        let history = match history {
            Ok(history) => history,
            Err(error) => return self.records_unavailable(&error),
        };
        let delay = self
            .shared
            .brake
            .delay(history, trusted, settings, Instant::now());
        if !delay.is_zero() {
            METRICS.auth_delays.add(1);
            METRICS
                .auth_delay_ms
                .add(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX));
            tokio::time::sleep(delay).await;
        }
        let (user, app_password) = match verdict {
            Ok(Verdict::Accepted { user, app_password }) => (user, app_password),
            Ok(Verdict::AppPasswordRequired { user }) => {
                METRICS
                    .logins
                    .inc(["app_password_required", self.mechanism]);
                info!(
                    peer = %self.peer,
                    %user,
                    delay_ms = delay.as_millis() as u64,
                    "account password refused: this user logs in with app passwords only"
                );
                self.answer(|core| core.login_rejected(ErrorKind::AppPasswordRequired));
                return;
            }
            Ok(Verdict::Rejected) => {
                METRICS.logins.inc(["rejected", self.mechanism]);
                info!(
                    peer = %self.peer,
                    user = claimed.as_deref().unwrap_or("-"),
                    delay_ms = delay.as_millis() as u64,
                    "authentication failed"
                );
                self.answer_rejected();
                return;
            }
            Err(error) => {
                METRICS.logins.inc(["error", self.mechanism]);
                warn!(peer = %self.peer, %error, "authentication could not be checked");
                self.answer(|core| core.login_rejected(ErrorKind::Temporary));
                return;
            }
        };
        // Under the name the client gave, which its next attempts will give and under which
        // its failures were counted.
        let known_as = counted_as.unwrap_or(&user);
        if let Err(error) = records.record_success(network, known_as).await {
            return self.records_unavailable(&error);
        }
        if let Some(delay) = self.shared.config.login_delay {
            match records.try_login(&user, delay).await {
                Ok(true) => {}
                Ok(false) => {
                    METRICS.logins.inc(["login_delay", self.mechanism]);
                    self.answer(|core| core.login_rejected(ErrorKind::LoginDelay));
                    return;
                }
                Err(error) => return self.records_unavailable(&error),
            }
        }
        let exclusive = self.shared.config.lock_session;
        let view = match login.is_some_and(|login| login.recent) {
            true => View::Recent,
            false => View::Normal,
        };
        match self.shared.store.open(&user, exclusive, view).await {
            Ok(maildrop) => {
                let entries = snapshot_entries(maildrop.messages());
                METRICS.logins.inc(["ok", self.mechanism]);
                info!(
                    peer = %self.peer,
                    %user,
                    app_password = app_password.as_deref().unwrap_or("-"),
                    messages = entries.len(),
                    delay_ms = delay.as_millis() as u64,
                    known_network = history.known_network,
                    recent = view == View::Recent,
                    "logged in"
                );
                self.answer(|core| core.login_accepted(entries));
                self.maildrop = Some(maildrop);
                if let Some(label) = &app_password {
                    self.record_app_password_use(&user, label);
                }
                self.user = Some(user);
                self.app_password = app_password;
            }
            Err(error) => {
                METRICS.logins.inc(["maildrop_unavailable", self.mechanism]);
                if !matches!(error, StoreError::InUse) {
                    warn!(%user, %error, "cannot open maildrop");
                }
                self.answer(|core| core.login_rejected(store_error_kind(&error)));
            }
        }
    }

    /// Writes down when, from where and over what the app password logged in, off the
    /// session's path: a login does not wait for it, and one that cannot be written is only
    /// logged.
    fn record_app_password_use(&self, user: &str, label: &str) {
        let usage = AppPasswordUse {
            at: SystemTime::now(),
            from: self.peer.ip(),
            over: match self.core.is_secure() {
                true => format!("POP3 {} over TLS", self.mechanism),
                false => format!("POP3 {}", self.mechanism),
            },
        };
        let auth = Arc::clone(&self.shared.auth);
        let (user, label) = (user.to_owned(), label.to_owned());
        tokio::task::spawn_blocking(move || {
            if let Err(error) = auth.db().record_app_password_use(&user, &label, &usage) {
                warn!(%user, app_password = label, %error, "the app password's last use could not be recorded");
            }
        });
    }

    fn records_unavailable(&mut self, error: &LoginRecordsError) {
        METRICS.logins.inc(["error", self.mechanism]);
        warn!(peer = %self.peer, %error, "the login records could not be reached");
        self.answer(|core| core.login_rejected(ErrorKind::Temporary));
    }

    async fn start_tls(&mut self, conn: &mut Conn) -> Result<(), Disconnected> {
        let Some(acceptor) = self.shared.acceptor.clone() else {
            return Err(Disconnected);
        };
        let limit = self.shared.config.tls_handshake_timeout;
        match conn.start_tls(&acceptor, limit, "pop3").await {
            Ok(()) => {
                self.answer(ServerSession::tls_started);
                Ok(())
            }
            Err(error) => {
                info!(peer = %self.peer, %error, "STLS failed");
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
        let started = Instant::now();
        let Some(maildrop) = self.maildrop.as_mut() else {
            self.answer(|core| core.message_failed(ErrorKind::Temporary));
            return Ok(());
        };
        let mut reader = match maildrop.open_message(index).await {
            Ok(reader) => reader,
            Err(error) => {
                warn!(user = self.user.as_deref().unwrap_or("-"), %error, "cannot read message");
                self.answer(|core| core.message_failed(store_error_kind(&error)));
                return Ok(());
            }
        };
        // A message stored in its wire form but for known dot lines goes out as it is stored:
        // by sendfile on plain TCP, copied straight into TLS otherwise; the core still decides
        // (RETR, the size it announced) and writes the status line and the terminator.
        let wire = reader.wire_file();
        let transfer = match wire {
            Some(wire) => self.answer(|core| {
                core.message_opened_in_wire_form(wire.len, wire.stuffing.len() as u64)
            }),
            None => self
                .answer(ServerSession::message_opened)
                .map(|()| BodyTransfer::Encode),
        };
        let sent = match (transfer, wire) {
            (None, _) => return Ok(()),
            (Some(BodyTransfer::AsStored { octets }), Some(wire)) => {
                let idle = self.shared.config.idle_timeout;
                flush(conn, self.core.output(), idle).await?;
                let path = if conn.is_kernel_tls() {
                    "ktls"
                } else if conn.sends_files_zero_copy() {
                    "sendfile"
                } else {
                    "copy"
                };
                if let Err(error) = conn.send_file(wire.file, octets, wire.stuffing, idle).await {
                    // The status line is out already: the only honest end is to disconnect.
                    warn!(user = self.user.as_deref().unwrap_or("-"), %error, "message send failed mid-transfer");
                    return Err(Disconnected);
                }
                METRICS.bytes_sent.add(octets + wire.stuffing.len() as u64);
                METRICS.bodies_sent.inc([path]);
                match self.answer(ServerSession::message_end) {
                    Some(sent) => sent,
                    None => return Ok(()),
                }
            }
            (Some(_), _) => {
                METRICS.bodies_sent.inc(["encoder"]);
                match self.encode_body(conn, &mut reader).await? {
                    Some(sent) => sent,
                    None => return Ok(()),
                }
            }
        };
        if top_lines.is_some() {
            self.stats.top += 1;
            self.stats.top_bytes += sent;
            return Ok(());
        }
        METRICS.retr_duration.observe(started.elapsed());
        self.stats.retr += 1;
        self.stats.retr_bytes += sent;
        self.retrieved.push(index);
        Ok(())
    }

    /// Reads the open message in chunks through the core's encoder into the output, flushing
    /// as it grows; the octets of the body sent, or `None` when the core refused a completion.
    async fn encode_body(
        &mut self,
        conn: &mut Conn,
        reader: &mut impl MessageBody,
    ) -> Result<Option<u64>, Disconnected> {
        let mut chunk = vec![0u8; RETR_CHUNK];
        loop {
            let n = match read_chunk(reader, &mut chunk).await {
                Ok(0) => break,
                Ok(n) => n,
                Err(error) => {
                    // The status line is out already: the only honest end is to disconnect.
                    warn!(user = self.user.as_deref().unwrap_or("-"), %error, "message read failed mid-transfer");
                    return Err(Disconnected);
                }
            };
            let Some(wanted) = self.answer(|core| core.message_chunk(&chunk[..n])) else {
                return Ok(None);
            };
            // A short chunk means read_chunk met the end of the file.
            if !wanted || n < chunk.len() {
                break;
            }
            if self.core.output().len() >= RETR_CHUNK {
                flush(conn, self.core.output(), self.shared.config.idle_timeout).await?;
            }
        }
        Ok(self.answer(ServerSession::message_end))
    }

    async fn update(&mut self, deleted: Vec<usize>) {
        let Some(maildrop) = self.maildrop.take() else {
            self.answer(|core| core.updated(Ok(())));
            return;
        };
        let count = deleted.len();
        let messages = maildrop.messages();
        let bytes = deleted
            .iter()
            .filter_map(|&i| messages.get(i))
            .map(|m| m.size)
            .sum();
        let update = Update {
            deleted,
            retrieved: std::mem::take(&mut self.retrieved),
            policy: self.shared.config.deleted,
        };
        match maildrop.quit(update).await {
            Ok(()) => {
                self.stats.deleted = count;
                self.stats.deleted_bytes = bytes;
                self.answer(|core| core.updated(Ok(())));
            }
            Err(error) => {
                warn!(user = self.user.as_deref().unwrap_or("-"), %error, "deleting messages failed");
                self.answer(|core| core.updated(Err(store_error_kind(&error))));
            }
        }
    }

    /// Gives the core a completion. One it refuses is a defect of this shell: it is logged,
    /// and the session ends rather than wait for an answer that will not come.
    fn answer<T>(
        &mut self,
        completion: impl FnOnce(&mut ServerSession) -> Result<T, WrongState>,
    ) -> Option<T> {
        match completion(&mut self.core) {
            Ok(value) => Some(value),
            Err(wrong) => {
                error!(peer = %self.peer, error = %wrong, "completion out of turn");
                self.core
                    .abort("Internal server error, closing the connection.");
                None
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

/// The session's view of the snapshot: at most [`MAX_SNAPSHOT_MESSAGES`], the oldest; the
/// rest wait for a session after the client has made room.
fn snapshot_entries(messages: &[postie_store::MessageInfo]) -> Vec<MessageEntry> {
    messages
        .iter()
        .take(MAX_SNAPSHOT_MESSAGES)
        .map(|m| MessageEntry {
            size: m.size,
            uidl: m.uidl.clone(),
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

/// Fills `chunk` as far as the message allows, so small reads do not mean small writes.
async fn read_chunk(body: &mut impl MessageBody, chunk: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < chunk.len() {
        match body.read(&mut chunk[filled..]).await? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

async fn flush(conn: &mut Conn, output: &mut Vec<u8>, limit: Duration) -> Result<(), Disconnected> {
    let len = output.len();
    postie_net::write_within(conn, output, limit)
        .await
        .map_err(|_| Disconnected)?;
    METRICS.bytes_sent.add(len as u64);
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
