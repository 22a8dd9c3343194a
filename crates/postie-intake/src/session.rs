//! One LMTP or SMTP connection: pumps bytes between the socket and the sans-IO session,
//! spools message bodies, and runs recipient checks and deliveries on blocking threads.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use postie_auth::UserDb;
use postie_net::Conn;
use postie_proto::smtp::{DeliveryError, Envelope, Event, Role, SmtpOptions, SmtpSession};
use postie_store::{MailStore, Quota};
use postie_types::limits::{MAX_BAD_COMMANDS, SMTP_READ_CHUNK};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::delivery::Resolved;
use crate::recipient::Door;
use crate::shared::Shared;
use crate::spool::{Spool, Spooled};
use crate::trace::{trace_headers, uses_crlf, Received};

/// Why a session ended early: the connection is gone or unusable.
struct Disconnected;

/// The body of the message being received.
enum Body {
    None,
    Spooling(Spool),
}

struct Session<S, U> {
    shared: Arc<Shared<S, U>>,
    role: Role,
    peer: Option<IpAddr>,
    core: SmtpSession,
    body: Body,
    /// The quotas of the users accepted at RCPT since the last delivery, by user: the delivery
    /// uses what RCPT looked up instead of asking the user database again. At most one entry
    /// per local user, however often a client repeats RCPT and RSET.
    accepted: HashMap<String, Quota>,
    id: String,
    delivered: u64,
}

pub(crate) async fn run<S: MailStore, U: UserDb>(
    mut conn: Conn,
    role: Role,
    peer: Option<IpAddr>,
    shared: Arc<Shared<S, U>>,
    mut stop: watch::Receiver<bool>,
) {
    let config = &shared.config;
    let options = SmtpOptions {
        role,
        hostname: config.hostname.clone(),
        max_message_size: match role {
            Role::Lmtp => config.lmtp_max_message_size,
            Role::Smtp => config.smtp_max_message_size,
        },
        starttls_available: role == Role::Smtp && shared.acceptor.is_some(),
        secure: false,
        max_recipients: config.max_recipients,
        max_bad_commands: MAX_BAD_COMMANDS,
    };
    let mut session = Session {
        core: SmtpSession::new(options),
        shared: Arc::clone(&shared),
        role,
        peer,
        body: Body::None,
        accepted: HashMap::new(),
        id: session_id(),
        delivered: 0,
    };
    let started = Instant::now();
    let outcome = session.pump(&mut conn, &mut stop).await;
    let _ = conn.shutdown().await;
    info!(
        id = %session.id,
        peer = %peer.map_or_else(|| "local".to_owned(), |ip| ip.to_string()),
        protocol = ?role,
        tls = session.core.is_secure(),
        delivered = session.delivered,
        duration_ms = started.elapsed().as_millis() as u64,
        complete = outcome.is_ok(),
        "intake session ended"
    );
}

impl<S: MailStore, U: UserDb> Session<S, U> {
    async fn pump(
        &mut self,
        conn: &mut Conn,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<(), Disconnected> {
        let mut buffer = vec![0u8; SMTP_READ_CHUNK];
        loop {
            match self.core.next() {
                Event::NeedInput => {
                    flush(conn, self.core.output(), self.shared.config.command_timeout).await?;
                    let timeout = if self.core.in_data() {
                        self.shared.config.data_timeout
                    } else {
                        self.shared.config.command_timeout
                    };
                    tokio::select! {
                        read = tokio::time::timeout(timeout, conn.read(&mut buffer)) => match read {
                            Ok(Ok(0)) | Ok(Err(_)) => return Err(Disconnected),
                            Ok(Ok(n)) => self.core.feed(&buffer[..n]),
                            Err(_) => self.core.abort("Timeout, closing the connection"),
                        },
                        _ = stop.changed() => self.core.abort("Server shutting down, try again later"),
                    }
                }
                Event::StartTls => {
                    flush(conn, self.core.output(), self.shared.config.command_timeout).await?;
                    self.start_tls(conn).await?;
                }
                Event::CheckRecipient {
                    address,
                    declared_size,
                } => self.check_recipient(address, declared_size).await,
                Event::MessageStart => {
                    let dir = self.shared.config.spool_dir.clone();
                    self.body = Body::Spooling(Spool::new(dir));
                }
                Event::MessageData(piece) => {
                    if let Body::Spooling(spool) = &mut self.body {
                        spool.write(&piece).await;
                    }
                }
                Event::MessageDiscarded => self.body = Body::None,
                Event::Deliver(envelope) => self.deliver(envelope).await,
                Event::Close => {
                    flush(conn, self.core.output(), self.shared.config.command_timeout).await?;
                    return Ok(());
                }
            }
        }
    }

    async fn check_recipient(&mut self, address: Vec<u8>, declared_size: Option<u64>) {
        let door = match self.role {
            Role::Lmtp => Door::Lmtp,
            Role::Smtp => Door::Smtp,
        };
        let checked = self
            .shared
            .deliverer
            .resolve(&address, door, declared_size)
            .await;
        match checked {
            Ok(resolved) => {
                self.accepted.insert(resolved.user.clone(), resolved.quota);
                self.core.recipient_accepted(resolved.user);
            }
            Err(error) => self.core.recipient_rejected(error),
        }
    }

    async fn deliver(&mut self, envelope: Envelope) {
        let count = envelope.recipients.len();
        let spooled = match std::mem::replace(&mut self.body, Body::None) {
            Body::Spooling(spool) => spool.finish().await.map_err(|error| {
                warn!(id = %self.id, %error, "spooling the message to a file failed");
            }),
            Body::None => Err(()),
        };
        let Ok(spooled) = spooled else {
            self.core
                .delivered(vec![Err(DeliveryError::Temporary); count]);
            return;
        };
        let received = Received {
            helo: envelope.helo.clone(),
            peer: self.peer,
            by: self.shared.config.hostname.clone(),
            with: protocol_name(self.role, &envelope),
            id: self.id.clone(),
            when: SystemTime::now(),
        };
        let accepted = std::mem::take(&mut self.accepted);
        let results = deliver_all(
            &self.shared.deliverer,
            &envelope,
            &received,
            &accepted,
            spooled,
        )
        .await;
        self.delivered += results.iter().filter(|r| r.is_ok()).count() as u64;
        self.core.delivered(results);
    }

    async fn start_tls(&mut self, conn: &mut Conn) -> Result<(), Disconnected> {
        let Some(acceptor) = self.shared.acceptor.clone() else {
            return Err(Disconnected);
        };
        let limit = self.shared.config.tls_handshake_timeout;
        match conn.start_tls(&acceptor, limit, "smtp").await {
            Ok(()) => {
                self.core.tls_started();
                Ok(())
            }
            Err(error) => {
                info!(id = %self.id, %error, "STARTTLS failed");
                Err(Disconnected)
            }
        }
    }
}

/// Each recipient's copy: its own trace headers on top of the shared body, checked against the
/// quota RCPT found.
async fn deliver_all<S: MailStore, U: UserDb>(
    deliverer: &Arc<crate::Deliverer<S, U>>,
    envelope: &Envelope,
    received: &Received,
    accepted: &HashMap<String, Quota>,
    spooled: Spooled,
) -> Vec<Result<(), DeliveryError>> {
    // A few kilobytes from the page cache: the spool was just written.
    let crlf = match spooled.head(8192) {
        Ok(head) => uses_crlf(&head),
        Err(_) => true,
    };
    let mut to_deliver = Vec::new();
    let mut results: Vec<Option<Result<(), DeliveryError>>> = Vec::new();
    for recipient in &envelope.recipients {
        // Every recipient in an envelope was accepted by this session's RCPT; one that was
        // not would be the core's mistake, answered with a retry rather than no quota.
        let Some(&quota) = accepted.get(&recipient.user) else {
            warn!(user = %recipient.user, "a recipient without its RCPT lookup");
            results.push(Some(Err(DeliveryError::Temporary)));
            continue;
        };
        let headers = trace_headers(&envelope.from, &recipient.address, Some(received), crlf);
        let resolved = Resolved {
            user: recipient.user.clone(),
            quota,
        };
        to_deliver.push((resolved, headers));
        results.push(None);
    }
    let mut delivered = deliverer
        .deliver(Arc::new(spooled), to_deliver)
        .await
        .into_iter();
    results
        .into_iter()
        .map(|result| match result {
            Some(refused) => refused,
            None => delivered.next().unwrap_or(Err(DeliveryError::Temporary)),
        })
        .collect()
}

/// The `with` of the Received header (RFC 3848; RFC 6531 for SMTPUTF8, whose names drop the E).
fn protocol_name(role: Role, envelope: &Envelope) -> String {
    let base = match (role, envelope.params.smtputf8) {
        (Role::Lmtp, false) => "LMTP",
        (Role::Lmtp, true) => "UTF8LMTP",
        (Role::Smtp, true) => "UTF8SMTP",
        (Role::Smtp, false) if envelope.extended => "ESMTP",
        (Role::Smtp, false) => "SMTP",
    };
    let tls = if envelope.secure { "S" } else { "" };
    format!("{base}{tls}")
}

/// A short id that ties log lines and `Received` headers together.
fn session_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{micros:x}.{:x}.{n:x}", std::process::id())
}

async fn flush(conn: &mut Conn, output: &mut Vec<u8>, limit: Duration) -> Result<(), Disconnected> {
    postie_net::write_within(conn, output, limit)
        .await
        .map_err(|_| Disconnected)
}
