//! Applying the rules during a fetch: each new message's header is read first (TOP n 0,
//! pipelined), the rules decide, and only then is a body downloaded, so a message the rules
//! delete or leave is never read. A message the rules send elsewhere is written to every
//! destination as it arrives ([`Copies`]); then each copy goes through the journal's steps
//! on its own (intent, publish, `copied`), and `done` follows the last, so a crash between
//! copies resumes with only the copies not yet made.

use std::collections::{BTreeMap, VecDeque};
use std::io::{self, Write};
use std::path::PathBuf;

use postie_proto::client::ClientEvent;
use postie_types::MsgNum;
use sha2::{Digest, Sha256};

use crate::config::Account;
use crate::conn::Connection;
use crate::dest::{DeliverTo, Destination, Finished, Incoming};
use crate::engine::{Action, Planned};
use crate::error::FetchError;
use crate::header::HeaderFields;
use crate::login::Stages;
use crate::rules::{self, Disposition, MessageFacts};
use crate::state::{Done, State};
use crate::subject::HeaderCapture;

/// The journal's name for a destination: a digest of how it is written, short and free of
/// spaces whatever the path or command.
pub fn destination_id(destination: &DeliverTo) -> String {
    hex::encode(&Sha256::digest(destination.to_string().as_bytes())[..8])
}

/// Reads the header of each message in `msgs` (TOP n 0), `window` commands in flight; a
/// message whose TOP the server refuses has none.
fn read_headers(
    conn: &mut Connection,
    msgs: &[MsgNum],
    window: usize,
) -> Result<BTreeMap<MsgNum, HeaderFields>, FetchError> {
    let host = conn.target().host.clone();
    let unexpected = |event: ClientEvent| FetchError::Protocol {
        host: host.clone(),
        source: postie_proto::client::ClientError::Unsolicited(format!("{event:?}")),
    };
    let mut headers = BTreeMap::new();
    let mut to_send: VecDeque<MsgNum> = msgs.iter().copied().collect();
    let mut in_flight = 0usize;
    let mut capture: Option<(MsgNum, HeaderCapture)> = None;
    loop {
        while in_flight < window {
            let Some(msg) = to_send.pop_front() else {
                break;
            };
            conn.session.top(msg, 0);
            in_flight += 1;
        }
        if in_flight == 0 {
            return Ok(headers);
        }
        match conn.event("reading headers for the rules")? {
            ClientEvent::MessageStart { msg, status, .. } => {
                if status.ok {
                    capture = Some((msg, HeaderCapture::default()));
                } else {
                    in_flight -= 1;
                }
            }
            ClientEvent::MessageData(data) => match capture.as_mut() {
                Some((_, header)) => header.push(&data),
                None => return Err(unexpected(ClientEvent::MessageData(Vec::new()))),
            },
            ClientEvent::MessageEnd { msg } => {
                in_flight -= 1;
                let Some((started, header)) = capture.take().filter(|(m, _)| *m == msg) else {
                    return Err(unexpected(ClientEvent::MessageEnd { msg }));
                };
                headers.insert(started, HeaderFields::parse(header.header()));
            }
            other => return Err(unexpected(other)),
        }
    }
}

/// Decides each new message by the account's rules, reading the headers it needs first.
/// Messages fetched before keep their action; a message whose header the server would not
/// give goes to `deliver_to`, as if no rule took it.
pub fn apply_rules(
    conn: &mut Connection,
    account: &Account,
    stages: &Stages,
    mut planned: Vec<Planned>,
) -> Result<Vec<Planned>, FetchError> {
    let undecided = |p: &Planned| {
        matches!(
            p.action,
            Action::Fetch | Action::Headers | Action::SkipOversize
        )
    };
    let msgs: Vec<MsgNum> = planned
        .iter()
        .filter(|p| undecided(p))
        .map(|p| p.msg)
        .collect();
    if account.rules.is_empty() || msgs.is_empty() {
        return Ok(planned);
    }
    let capabilities = stages.current();
    if capabilities.is_some_and(|c| !c.top) {
        return Err(FetchError::Usage(format!(
            "{}: {} does not offer TOP, which the rules need to read a header before downloading the message; remove the rules that apply to this account, or fetch it with another server",
            account.name,
            conn.target().host
        )));
    }
    let window = if capabilities.is_some_and(|c| c.pipelining) {
        16
    } else {
        1
    };
    let headers = read_headers(conn, &msgs, window)?;
    for p in planned.iter_mut().filter(|p| undecided(p)) {
        let Some(header) = headers.get(&p.msg) else {
            continue;
        };
        let verdict = rules::decide(
            &account.rules,
            &MessageFacts {
                account: &account.name,
                size: p.size,
                header,
            },
        );
        let headers_only = p.action == Action::Headers;
        let skipped = p.action == Action::SkipOversize;
        p.action = match verdict.disposition {
            Disposition::Delete => Action::DeleteUnread,
            Disposition::Leave => Action::Left,
            _ if skipped => Action::SkipOversize,
            Disposition::Default => p.action.clone(),
            Disposition::Discard => Action::Routed {
                to: Vec::new(),
                headers_only,
            },
            Disposition::Deliver(to) => Action::Routed { to, headers_only },
        };
        p.because = verdict.because;
    }
    Ok(planned)
}

/// A destination the rules name: its journal id, its setting, and once needed, itself.
type Named = (String, DeliverTo, Option<Box<dyn Destination>>);

/// The destinations the rules name, opened when first needed.
pub struct Router {
    destinations: Vec<Named>,
    spool_dir: PathBuf,
    recipient: String,
    now: u64,
}

impl Router {
    pub fn new(account: &Account, spool_dir: PathBuf, now: u64) -> Router {
        let mut destinations: Vec<Named> = Vec::new();
        for destination in account.rules.iter().flat_map(|r| r.destinations()) {
            if !destinations.iter().any(|(_, d, _)| d == destination) {
                destinations.push((destination_id(destination), destination.clone(), None));
            }
        }
        Router {
            destinations,
            spool_dir,
            recipient: account.lmtp_recipient.clone(),
            now,
        }
    }

    fn open(&mut self, id: &str) -> Result<Option<&mut (dyn Destination + 'static)>, FetchError> {
        let Some((_, deliver_to, opened)) = self.destinations.iter_mut().find(|(i, ..)| i == id)
        else {
            return Ok(None);
        };
        if opened.is_none() {
            *opened = Some(deliver_to.open(&self.spool_dir, &self.recipient, self.now)?);
        }
        Ok(opened.as_deref_mut())
    }

    /// Resolves the copies an interrupted run had begun: each one the destination has is
    /// recorded as made; the others are forgotten, to be made again. A copy to a destination
    /// no rule names any more is forgotten too (no copy will go there again, so none can be
    /// made twice) and returned as a note, since it may or may not have arrived.
    pub fn recover(&mut self, state: &mut State) -> Result<Vec<String>, FetchError> {
        let mut unknown = Vec::new();
        for intent in state.pending_copy_intents() {
            match self.open(&intent.destination)? {
                Some(destination) => {
                    if destination.recover(&intent.receipt)? {
                        state.record_copied(&intent.key, &intent.destination)?;
                    } else {
                        state.forget_copy_intent(&intent.key, &intent.destination);
                    }
                }
                None => {
                    state.forget_copy_intent(&intent.key, &intent.destination);
                    unknown.push(format!(
                        "message {}: a copy begun by an interrupted run went to a destination no rule names now; it may or may not be there (journal receipt {})",
                        intent.key, intent.receipt
                    ));
                }
            }
        }
        Ok(unknown)
    }

    /// Starts a message for each of `to`.
    pub fn begin(&mut self, to: &[DeliverTo]) -> Result<Copies, FetchError> {
        let mut parts = Vec::with_capacity(to.len());
        for deliver_to in to {
            let id = destination_id(deliver_to);
            if let Some(destination) = self.open(&id)? {
                parts.push((id, destination.begin()?));
            }
        }
        Ok(Copies { parts })
    }
}

/// One message on its way to several destinations.
pub struct Copies {
    parts: Vec<(String, Box<dyn Incoming>)>,
}

impl Copies {
    /// Publishes each copy not made before (a run killed between copies made some), each
    /// through the journal's steps, then records the message done.
    pub fn finish(
        self,
        router: &mut Router,
        state: &mut State,
        key: &str,
        done: Done,
    ) -> Result<(), FetchError> {
        for (id, incoming) in self.parts {
            if state.copied(key).contains(&id) {
                continue;
            }
            let finished = incoming
                .finish(&mut |receipt: &str| state.record_copy_intent(key, &id, receipt))?;
            if let Finished::Staged(staged) = finished {
                let Some(destination) = router.open(&id)? else {
                    continue;
                };
                destination.sync_staged()?;
                state.record_copy_intent(key, &id, staged.receipt())?;
                staged.publish()?;
                destination.sync()?;
            }
            state.record_copied(key, &id)?;
        }
        state.record_done(key, done)
    }
}

impl Write for Copies {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        for (_, incoming) in &mut self.parts {
            incoming.write_all(buf)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        for (_, incoming) in &mut self.parts {
            incoming.flush()?;
        }
        Ok(())
    }
}

/// Where a message being received goes: the account's destination (through the batch) or
/// the copies the rules chose.
pub enum Sink {
    Account(Box<dyn Incoming>),
    Copies(Copies),
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sink::Account(incoming) => incoming.write(buf),
            Sink::Copies(copies) => copies.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Account(incoming) => incoming.flush(),
            Sink::Copies(copies) => copies.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FetchConfig;

    fn account(dir: &std::path::Path, rules: &str) -> Account {
        let path = dir.join("fetch.toml");
        std::fs::write(
            &path,
            format!(
                "{rules}\n[accounts.a]\nserver = \"h\"\nuser = \"u\"\npassword = \"p\"\ndeliver_to = \"maildir:Mail\"\n"
            ),
        )
        .unwrap();
        FetchConfig::load(&path).unwrap().accounts.remove(0)
    }

    #[test]
    fn interrupted_copies_are_recovered_or_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let account = account(
            dir.path(),
            "[[rules]]\naction = \"deliver\"\nto = [\"maildir:A\", \"maildir:B\"]\n",
        );
        let [a, b] = [
            DeliverTo::Maildir(dir.path().join("A")),
            DeliverTo::Maildir(dir.path().join("B")),
        ];
        let mut router = Router::new(&account, dir.path().join("spool"), 0);
        let mut state = State::open(&dir.path().join("state"), "a").unwrap();
        // A copy to A whose file was published, one to B that never was, one to a
        // destination the rules no longer name.
        let mut copies = router.begin(std::slice::from_ref(&a)).unwrap();
        copies.write_all(b"Subject: x\r\n\r\nbody\r\n").unwrap();
        let (id, incoming) = copies.parts.pop().unwrap();
        let Finished::Staged(staged) = incoming.finish(&mut |_: &str| Ok(())).unwrap() else {
            panic!("a Maildir stages");
        };
        state
            .record_copy_intent("u1", &id, staged.receipt())
            .unwrap();
        staged.publish().unwrap();
        state
            .record_copy_intent("u1", &destination_id(&b), "maildir 1.never")
            .unwrap();
        state
            .record_copy_intent("u1", "0011223344556677", "maildir 2.gone")
            .unwrap();
        let notes = router.recover(&mut state).unwrap();
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].contains("no rule names now"));
        assert_eq!(state.copied("u1"), [destination_id(&a)]);
        assert!(state.pending_copy_intents().is_empty());
    }
}
