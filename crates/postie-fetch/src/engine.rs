//! One fetch of one account: connect, log in, list, decide per message, fetch in pipelined
//! batches, store, record, delete, QUIT. The order of the steps for each message is the
//! state module's; this module decides what happens to which message.

use postie_types::MsgNum;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use postie_proto::client::{ClientEvent, Greeting, ListEntry, Sent};

use sha2::{Digest, Sha256};

use crate::batch::{self, Batch, Received};
use crate::config::{Account, AuthChoice, Oversize, Retention};
use crate::conn::Connection;
use crate::credentials::run_secret_command;
use crate::dest::maildir::MAILDIR_RECEIPT;
use crate::dest::{DeliverTo, Finished};
use crate::error::FetchError;
use crate::local_deletion::LocalFiles;
use crate::login::{self, LoginSpec, Stages};
use crate::oauth;
use crate::progress::{Progress, ProgressMode};
use crate::routing::{self, Router, Sink};
use crate::server_policy::ServerPolicy;
use crate::state::{Done, Recorded, State};
use crate::stubs;
use crate::subject::HeaderCapture;
use crate::target::TlsMode;
use crate::tls::{self, Trust};
use crate::trace;

/// Commands in flight at once when the server offers PIPELINING.
const WINDOW: usize = 16;

/// Settings of one run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub state_dir: PathBuf,
    /// Seconds since the epoch: the clock of delete_after_days (the binary's hidden --now
    /// lets tests set it).
    pub now: u64,
    pub reset_state: bool,
    pub progress: ProgressMode,
}

/// What happens to one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Fetch,
    /// Over max_size: only its header (TOP n 0).
    Headers,
    /// Fetched before; delete it now.
    Delete,
    /// Fetched before and kept on the server.
    Keep,
    /// Over max_size and `oversize = "skip"` (or the server lacks TOP).
    SkipOversize,
    /// A rule sends it to each of these (none: discarded once downloaded); only its header
    /// when it is over max_size.
    Routed {
        to: Vec<DeliverTo>,
        headers_only: bool,
    },
    /// A rule leaves it on the server, unread.
    Left,
    /// A rule deletes it on the server, unread.
    DeleteUnread,
}

#[derive(Debug, Clone)]
pub struct Planned {
    pub msg: MsgNum,
    pub size: u64,
    pub key: Option<String>,
    pub action: Action,
    /// The rules that matched and why, for `--list`.
    pub because: Vec<String>,
}

/// What `--list` shows.
#[derive(Debug)]
pub struct Plan {
    pub state_path: PathBuf,
    pub state_exists: bool,
    pub has_uidl: bool,
    pub messages: Vec<Planned>,
    /// What the server announced of EXPIRE and LOGIN-DELAY.
    pub policy: ServerPolicy,
}

/// The result of a run.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    /// Messages the server listed (the last session's, after several).
    pub listed: u64,
    /// Logins in this run (more than one when a server lists a window per session).
    pub sessions: u32,
    pub fetched: u64,
    pub bytes: u64,
    pub headers_only: u64,
    pub deleted: u64,
    pub kept: u64,
    pub skipped: u64,
    /// Left on the server, unread, by a rule.
    pub left: u64,
    /// Deliveries an interrupted run had completed, found and recorded now.
    pub recovered: u64,
    /// Stubs replaced by their whole message (max_size was raised).
    pub completed: u64,
    /// Messages the server would not give (RETR -ERR) or delete: the run's exit is not 0.
    pub problems: Vec<String>,
    /// The decoded Subject of each message stored (if it has one), for the on_new_mail hook.
    pub subjects: Vec<Vec<u8>>,
    pub elapsed: Duration,
    /// The server's EXPIRE or LOGIN-DELAY against the account's settings, and copies begun
    /// by an interrupted run to a destination no rule names any more.
    pub warnings: Vec<String>,
    /// The server's LOGIN-DELAY: the daemon polls no sooner.
    pub login_delay: Option<Duration>,
}

/// Warnings to show on every run of this account.
pub fn warnings(account: &Account) -> Vec<String> {
    let mut out = Vec::new();
    if account.target.tls == TlsMode::None {
        out.push("tls = \"none\": the password and all mail cross the network unencrypted".into());
    }
    if account.trust == Trust::Insecure {
        out.push("insecure = true: the server's certificate is not checked, so anyone on the path can read and change the mail".into());
    }
    out
}

fn uses_oauth(account: &Account) -> bool {
    match account.auth {
        AuthChoice::Xoauth2 | AuthChoice::Oauthbearer => true,
        AuthChoice::Auto => {
            (account.oauth_token_command.is_some() || account.sign_in.is_some())
                && matches!(
                    account.credential,
                    crate::credentials::CredentialSource::None
                )
        }
        _ => false,
    }
}

/// Connects and logs in; a signed-in account's tokens are in `state_dir`.
pub fn connect(
    account: &Account,
    state_dir: &Path,
) -> Result<(Connection, Greeting, Stages), FetchError> {
    let (config, seen) = tls::client_config(&account.trust, false)?;
    let mut conn = Connection::open(&account.target, config, seen, account.timeout)?;
    let (greeting, mut stages) = login::prepare(&mut conn)?;
    let oauth = uses_oauth(account);
    let secret = match (&account.oauth_token_command, &account.sign_in, oauth) {
        (Some(command), _, true) => run_secret_command(command, "oauth_token_command")?,
        (None, Some(sign_in), true) => {
            let store = oauth::TokenStore::for_sign_in(state_dir, &account.name, sign_in);
            oauth::access_token(sign_in, &store, unix_now())?
        }
        _ => account.credential.resolve()?,
    };
    let plaintext_ok = conn.tls.is_some() || account.target.tls == TlsMode::None;
    let method = login::choose(
        account.auth,
        stages.current(),
        &greeting,
        plaintext_ok,
        oauth,
    )?;
    let spec = LoginSpec {
        user: &account.user,
        secret: &secret,
        sasl_initial_response: account.sasl_initial_response,
    };
    login::login(&mut conn, method, &spec)?;
    if stages.current().is_some() {
        stages.after_login = login::capa(&mut conn)?;
    }
    Ok((conn, greeting, stages))
}

/// Message numbers to UIDLs; `None` when the server has no UIDL.
type Uidls = Option<BTreeMap<MsgNum, String>>;

/// UIDL (when the server may have it) and LIST.
pub(crate) fn listing(
    conn: &mut Connection,
    stages: &Stages,
) -> Result<(Uidls, Vec<ListEntry>), FetchError> {
    let host = conn.target().host.clone();
    let uidls = if stages.current().is_none_or(|c| c.uidl) {
        conn.session.uidl();
        match conn.event("reading UIDL")? {
            ClientEvent::Uidl(Ok(entries)) => Some(
                entries
                    .into_iter()
                    .map(|e| (e.msg, e.uidl.as_str().to_owned()))
                    .collect(),
            ),
            ClientEvent::Uidl(Err(_)) => None,
            other => return Err(unexpected(&host, other)),
        }
    } else {
        None
    };
    conn.session.list();
    let list = match conn.event("reading LIST")? {
        ClientEvent::List(Ok(entries)) => entries,
        ClientEvent::List(Err(status)) => {
            return Err(FetchError::Command {
                host,
                command: "LIST",
                status: Box::new(status),
            })
        }
        other => return Err(unexpected(&host, other)),
    };
    Ok((uidls, list))
}

fn unexpected(host: &str, event: ClientEvent) -> FetchError {
    FetchError::Protocol {
        host: host.to_owned(),
        source: postie_proto::client::ClientError::Unsolicited(format!("{event:?}")),
    }
}

fn decide(
    account: &Account,
    state: &dyn Fn(&str) -> Option<Done>,
    has_top: bool,
    now: u64,
    entry: &ListEntry,
    key: Option<String>,
) -> Planned {
    let done = key.as_deref().and_then(state);
    let action = match done {
        Some(done) => match account.retention {
            Retention::Delete if !done.partial => Action::Delete,
            Retention::KeepDays(days)
                if !done.partial && now >= done.at.saturating_add(u64::from(days) * 86_400) =>
            {
                Action::Delete
            }
            _ => Action::Keep,
        },
        None if account.max_size.is_some_and(|max| entry.size > max) => match account.oversize {
            Oversize::Headers if has_top => Action::Headers,
            _ => Action::SkipOversize,
        },
        None => Action::Fetch,
    };
    Planned {
        msg: entry.msg,
        size: entry.size,
        key,
        action,
        because: Vec::new(),
    }
}

fn plan_messages(
    account: &Account,
    state: &dyn Fn(&str) -> Option<Done>,
    stages: &Stages,
    now: u64,
    uidls: &Uidls,
    list: &[ListEntry],
) -> Vec<Planned> {
    let has_top = stages.current().is_none_or(|c| c.top);
    list.iter()
        .map(|entry| {
            let key = uidls.as_ref().and_then(|u| u.get(&entry.msg).cloned());
            decide(account, state, has_top, now, entry, key)
        })
        .collect()
}

fn no_uidl_error(account: &Account) -> FetchError {
    FetchError::NoUidl(format!(
        "{}: the server does not support UIDL, so postie cannot tell which messages it fetched before; keep = true would download everything on every run. Set keep = false (fetch and delete) for this account",
        account.name
    ))
}

fn missing_state_error(
    account: &Account,
    state_path: &std::path::Path,
    count: usize,
) -> FetchError {
    FetchError::StateMissing(format!(
        "{}: there is no state file ({}): this is the first fetch, or it was lost. With keep, postie would download all {count} messages on the server again. Run the same command with --reset-state (`postie fetch {} --reset-state`) to download them all and start a new state",
        account.name,
        state_path.display(),
        account.name
    ))
}

/// `--list`: what a run would do, changing nothing (no state written, no DELE).
pub fn plan(account: &Account, opts: &RunOptions) -> Result<Plan, FetchError> {
    let recorded = State::peek(&opts.state_dir, &account.name)?;
    let (mut conn, _, stages) = connect(account, &opts.state_dir)?;
    let (uidls, list) = listing(&mut conn, &stages)?;
    let empty = Recorded::default();
    let known = recorded.as_ref().unwrap_or(&empty);
    let lookup = |key: &str| known.done.get(key).copied();
    let mut messages = plan_messages(account, &lookup, &stages, opts.now, &uidls, &list);
    if account.delete_when_deleted_locally {
        LocalFiles::scan(&account.deliver_to, !known.files.is_empty())?.apply(
            lookup,
            |key| known.files.get(key).map(String::as_str),
            &mut messages,
        );
    }
    let messages = routing::apply_rules(&mut conn, account, &stages, messages)?;
    conn.session.quit();
    let _ = login::reply(&mut conn, "QUIT");
    conn.close();
    Ok(Plan {
        state_path: State::path_for(&opts.state_dir, &account.name),
        state_exists: recorded.is_some(),
        has_uidl: uidls.is_some(),
        messages,
        policy: ServerPolicy::from_capabilities(stages.current()),
    })
}

/// The message being received.
struct Receiving {
    planned: Planned,
    incoming: Sink,
    /// The content's SHA-256, the key of a message on a server without UIDL.
    hasher: Option<Sha256>,
    bytes: u64,
    header: HeaderCapture,
}

/// Fetches one account in one session (see the drain module for a whole run).
pub fn fetch(account: &Account, opts: &RunOptions) -> Result<Summary, FetchError> {
    let started = Instant::now();
    let mut summary = Summary::default();
    let mut progress = Progress::new(opts.progress, &account.name);
    let mut state = State::open(&opts.state_dir, &account.name)?;
    // Before the destination is opened, which would create a missing Maildir.
    let local_files = account
        .delete_when_deleted_locally
        .then(|| LocalFiles::scan(&account.deliver_to, state.has_delivered_files()))
        .transpose()?;
    let mut dest = account.deliver_to.open(
        &opts.state_dir.join("spool"),
        &account.lmtp_recipient,
        opts.now,
    )?;
    let mut router = Router::new(account, opts.state_dir.join("spool"), opts.now);
    summary.warnings.extend(router.recover(&mut state)?);
    summary.recovered += stubs::recover(&mut state, account, opts.now)?;
    for (key, receipt) in state.pending_intents() {
        if dest.recover(&receipt)? {
            if let Some(name) = receipt.strip_prefix(MAILDIR_RECEIPT) {
                state.record_delivered_files([(key.as_str(), name)])?;
            }
            state.record_done(
                &key,
                Done {
                    at: opts.now,
                    partial: false,
                },
            )?;
            summary.recovered += 1;
        } else {
            state.forget_intent(&key);
        }
    }
    if opts.reset_state {
        state.compact(|_| false)?;
    }
    let state_existed = state.existed();

    let (mut conn, _, stages) = connect(account, &opts.state_dir)?;
    let policy = ServerPolicy::from_capabilities(stages.current());
    summary.warnings.extend(policy.warnings(account));
    summary.login_delay = policy.login_delay;
    let (uidls, list) = listing(&mut conn, &stages)?;
    summary.listed = list.len() as u64;
    summary.sessions = 1;
    let host = conn.target().host.clone();
    if uidls.is_none() && account.retention != Retention::Delete && !list.is_empty() {
        quit_quietly(conn);
        return Err(no_uidl_error(account));
    }
    let mut planned = {
        let lookup = |key: &str| state.done(key);
        plan_messages(account, &lookup, &stages, opts.now, &uidls, &list)
    };
    if let Some(local_files) = &local_files {
        local_files.apply(
            |key| state.done(key),
            |key| state.delivered_file(key),
            &mut planned,
        );
    }
    let planned = match routing::apply_rules(&mut conn, account, &stages, planned) {
        Ok(planned) => planned,
        Err(error) => {
            quit_quietly(conn);
            return Err(error);
        }
    };
    let to_fetch: Vec<&Planned> = planned
        .iter()
        .filter(|p| {
            matches!(
                p.action,
                Action::Fetch | Action::Headers | Action::Routed { .. }
            )
        })
        .collect();
    if !state_existed && account.retention != Retention::Delete && !to_fetch.is_empty() {
        quit_quietly(conn);
        return Err(missing_state_error(account, state.path(), to_fetch.len()));
    }
    if !state_existed {
        state.compact(|_| true)?;
        progress.note(&format!("new state file {}", state.path().display()));
    }
    progress.start(to_fetch.len() as u64, to_fetch.iter().map(|p| p.size).sum());
    for p in &planned {
        match p.action {
            Action::Keep => summary.kept += 1,
            Action::Left => summary.left += 1,
            Action::SkipOversize => {
                summary.skipped += 1;
                progress.note(&format!(
                    "message {} ({} octets) is over max_size: left on the server",
                    p.msg, p.size
                ));
            }
            _ => {}
        }
    }

    let pipelining = stages.current().is_some_and(|c| c.pipelining);
    let window = if pipelining { WINDOW } else { 1 };
    let mut queue = planned
        .iter()
        .filter(|p| {
            matches!(
                p.action,
                Action::Fetch
                    | Action::Headers
                    | Action::Delete
                    | Action::Routed { .. }
                    | Action::DeleteUnread
            )
        })
        .cloned()
        .collect::<std::collections::VecDeque<_>>();
    let delete_after_fetch = account.retention == Retention::Delete;
    let mut outstanding = 0usize;
    let mut receiving: Option<Receiving> = None;
    let mut awaiting_body: std::collections::VecDeque<Planned> = Default::default();
    let mut dele_keys: BTreeMap<MsgNum, Option<String>> = BTreeMap::new();
    let mut deleted_keys: HashSet<String> = HashSet::new();
    let mut failed_dele: HashSet<String> = HashSet::new();
    let mut batch = Batch::default();
    let mut stored: Vec<Received> = Vec::new();
    // Subjects of messages received, by key, until they are stored.
    let mut subjects: HashMap<String, Vec<u8>> = HashMap::new();
    let transferred = (|| -> Result<(), FetchError> {
        loop {
            while outstanding < window {
                let Some(next) = queue.pop_front() else { break };
                match next.action {
                    Action::Fetch
                    | Action::Routed {
                        headers_only: false,
                        ..
                    } => conn.session.retr(next.msg),
                    Action::Headers
                    | Action::Routed {
                        headers_only: true, ..
                    } => conn.session.top(next.msg, 0),
                    _ => {
                        conn.session.dele(next.msg);
                        dele_keys.insert(next.msg, next.key.clone());
                        outstanding += 1;
                        continue;
                    }
                }
                awaiting_body.push_back(next);
                outstanding += 1;
            }
            // Flush a full batch, or whenever no message is on its way (the queue has drained,
            // or only DELEs are in flight): nothing is waiting that could join the batch.
            if batch.len() >= batch::LIMIT || (awaiting_body.is_empty() && receiving.is_none()) {
                stored.extend(batch.flush(&mut state, dest.as_mut())?);
            }
            for received in stored.drain(..) {
                summary.subjects.extend(subjects.remove(&received.key));
                if received.done.partial {
                    summary.headers_only += 1;
                } else {
                    summary.fetched += 1;
                    summary.bytes += received.bytes;
                }
                // Step 5: the message is stored and journaled.
                if delete_after_fetch && !received.done.partial {
                    conn.session.dele(received.msg);
                    dele_keys.insert(received.msg, Some(received.key));
                    outstanding += 1;
                }
            }
            if outstanding == 0 {
                break;
            }
            let before = conn.received;
            let event = conn.event("fetching messages")?;
            progress.bytes(conn.received - before);
            match event {
                ClientEvent::MessageStart { msg, status, .. } => {
                    let planned = awaiting_body
                        .pop_front()
                        .filter(|p| p.msg == msg)
                        .ok_or_else(|| {
                            unexpected(
                                &host,
                                ClientEvent::MessageStart {
                                    msg,
                                    top: false,
                                    status: status.clone(),
                                },
                            )
                        })?;
                    if status.ok {
                        let stub = matches!(
                            planned.action,
                            Action::Headers
                                | Action::Routed {
                                    headers_only: true,
                                    ..
                                }
                        )
                        .then(|| {
                            stubs::marker(
                                &account.name,
                                planned.key.as_deref().unwrap_or("-"),
                                planned.size,
                            )
                        });
                        receiving = Some(Receiving {
                            hasher: planned.key.is_none().then(Sha256::new),
                            incoming: match &planned.action {
                                Action::Routed { to, .. } => Sink::Copies(router.begin(to)?),
                                _ => Sink::Account(dest.begin()?),
                            },
                            planned,
                            bytes: 0,
                            header: HeaderCapture::default(),
                        });
                        // A stub's marker first (stubs are found by it), then the trace
                        // fields; neither is part of the content a key is computed from.
                        let mut prefix = stub.unwrap_or_default();
                        if account.received_header {
                            prefix.extend(trace::fields(
                                &host,
                                &account.name,
                                receiving.as_ref().and_then(|r| r.planned.key.as_deref()),
                                opts.now,
                            ));
                        }
                        if let (Some(current), false) = (receiving.as_mut(), prefix.is_empty()) {
                            current.incoming.write_all(&prefix).map_err(|source| {
                                FetchError::Local {
                                    what: "write a message for",
                                    path: PathBuf::from(account.deliver_to.to_string()),
                                    source,
                                }
                            })?;
                        }
                    } else {
                        outstanding -= 1;
                        summary.problems.push(format!(
                            "message {msg}: the server would not send it: {status}"
                        ));
                        progress.note(&format!(
                            "message {msg}: the server would not send it: {status}"
                        ));
                    }
                }
                ClientEvent::MessageData(data) => {
                    let Some(current) = receiving.as_mut() else {
                        return Err(unexpected(&host, ClientEvent::MessageData(Vec::new())));
                    };
                    current
                        .incoming
                        .write_all(&data)
                        .map_err(|source| FetchError::Local {
                            what: "write a message for",
                            path: PathBuf::from(account.deliver_to.to_string()),
                            source,
                        })?;
                    if let Some(hasher) = &mut current.hasher {
                        hasher.update(&data);
                    }
                    current.header.push(&data);
                    current.bytes += data.len() as u64;
                }
                ClientEvent::MessageEnd { msg } => {
                    outstanding -= 1;
                    let Some(current) = receiving.take() else {
                        return Err(unexpected(&host, ClientEvent::MessageEnd { msg }));
                    };
                    let partial = matches!(
                        current.planned.action,
                        Action::Headers
                            | Action::Routed {
                                headers_only: true,
                                ..
                            }
                    );
                    let key = match &current.planned.key {
                        Some(key) => key.clone(),
                        None => format!(
                            "sha256:{}",
                            hex::encode(current.hasher.unwrap_or_default().finalize())
                        ),
                    };
                    if state.done(&key).is_some() || batch.contains(&key) {
                        // Only for servers without UIDL: the same content was delivered by an
                        // interrupted run whose deletions never happened, or is in this batch.
                        // Not again.
                        drop(current.incoming);
                    } else {
                        subjects.extend(current.header.subject().map(|s| (key.clone(), s)));
                        let received = Received {
                            msg,
                            done: Done {
                                at: opts.now,
                                partial,
                            },
                            bytes: current.bytes,
                            key,
                        };
                        match current.incoming {
                            Sink::Copies(copies) => {
                                copies.finish(
                                    &mut router,
                                    &mut state,
                                    &received.key,
                                    received.done,
                                )?;
                                stored.push(received);
                            }
                            Sink::Account(incoming) => {
                                match incoming.finish(&mut |receipt: &str| {
                                    state.record_intent(&received.key, receipt)
                                })? {
                                    Finished::Published => {
                                        state.record_done(&received.key, received.done)?;
                                        stored.push(received);
                                    }
                                    Finished::Staged(staged) => batch.push(received, staged),
                                }
                            }
                        }
                    }
                    progress.message_done();
                }
                ClientEvent::Reply {
                    command: Sent::Dele(msg),
                    status,
                } => {
                    outstanding -= 1;
                    let key = dele_keys.remove(&msg).flatten();
                    if status.ok {
                        summary.deleted += 1;
                        deleted_keys.extend(key);
                    } else {
                        failed_dele.extend(key);
                        summary.problems.push(format!(
                            "message {msg}: the server would not delete it: {status}"
                        ));
                    }
                }
                other => return Err(unexpected(&host, other)),
            }
        }
        Ok(())
    })();
    if let Err(error) = transferred {
        // Messages received whole before the failure are stored, so the next run need not
        // download them again; no DELE, the connection or the storage has failed. The
        // failure reported is the first one.
        let _ = batch.flush(&mut state, dest.as_mut());
        return Err(error);
    }

    progress.finish();

    let completed = stubs::complete_fitting(&mut conn, &mut state, account, &planned, opts.now)?;
    summary.completed = completed.completed;
    summary.problems.extend(completed.problems);

    conn.session.quit();
    let (_, status) = login::reply(&mut conn, "QUIT")?;
    conn.close();
    if status.ok {
        // The server has applied the deletions: forget those messages, and any the server
        // no longer lists. Content keys only matter until the deletions are applied.
        let listed: HashSet<&str> = uidls
            .as_ref()
            .map(|u| u.values().map(String::as_str).collect())
            .unwrap_or_default();
        state.compact(|key| {
            if key.starts_with("sha256:") {
                failed_dele.contains(key)
            } else {
                listed.contains(key) && !deleted_keys.contains(key)
            }
        })?;
    } else {
        summary.deleted = 0;
        summary.problems.push(format!(
            "the server failed to apply the deletions at QUIT ({status}); they will be retried"
        ));
    }
    summary.elapsed = started.elapsed();
    Ok(summary)
}

fn quit_quietly(mut conn: Connection) {
    conn.session.quit();
    let _ = login::reply(&mut conn, "QUIT");
    conn.close();
}

/// The real clock, for token lifetimes (`RunOptions::now` may be a test's chosen day).
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
