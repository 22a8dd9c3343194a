//! Server sessions driven through the public API with in-memory services: RFC 1939 example
//! sessions, the snapshot and deletion rules, pipelining and hostile input.

use postie_proto::{
    BodyEncoder, BodyTransfer, Capabilities, Command, Credentials, ErrorKind, Event, MessageEntry,
    Pending, ServerOptions, ServerSession, Verb, WrongState,
};
use postie_types::Uidl;
use proptest::prelude::*;

const TIMESTAMP: &str = "<1896.697170952@dbc.mtview.ca.us>";

fn options() -> ServerOptions {
    ServerOptions {
        greeting: "POP3 server ready".into(),
        apop_timestamp: Some(TIMESTAMP.into()),
        capabilities: Capabilities {
            sasl: vec!["PLAIN".into(), "SCRAM-SHA-256".into()],
            plaintext_sasl: vec!["PLAIN".into()],
            implementation: "postie-test".into(),
            login_delay_secs: None,
            expire: None,
        },
        stls_available: true,
        secure: false,
        plaintext_allowed_insecure: true,
        max_auth_failures: 3,
        max_bad_commands: 20,
    }
}

/// In-memory services: user "mrose" with password "tanstaaf" and two messages.
struct Harness {
    session: ServerSession,
    messages: Vec<Vec<u8>>,
    wire: Vec<u8>,
    committed: Option<Vec<usize>>,
    tls_started: bool,
    closed: bool,
    /// Per retrieval, the chunks handed to the session and the body bytes it says it sent.
    retrievals: Vec<(usize, u64)>,
}

impl Harness {
    fn new(options: ServerOptions) -> Self {
        let messages = vec![
            vec![b'a'; 118].into_iter().chain(*b"\r\n").collect(),
            b"Subject: two\n\n.dot\nend".to_vec(),
        ];
        let mut harness = Harness {
            session: ServerSession::new(options),
            messages,
            wire: Vec::new(),
            committed: None,
            tls_started: false,
            closed: false,
            retrievals: Vec::new(),
        };
        harness.flush();
        harness
    }

    fn flush(&mut self) {
        let output = self.session.output();
        self.wire.extend_from_slice(output);
        output.clear();
    }

    fn send(&mut self, input: &[u8]) {
        self.session.feed(input);
        self.run();
    }

    fn run(&mut self) {
        loop {
            match self.session.next() {
                Event::NeedInput => break,
                Event::Close => {
                    self.closed = true;
                    break;
                }
                Event::Authenticate(Credentials::User { user, password }) => {
                    if user.as_str() == "mrose" && password.expose() == b"tanstaaf" {
                        self.session.login_accepted(self.entries()).unwrap();
                    } else {
                        self.session
                            .login_rejected(ErrorKind::BadCredentials)
                            .unwrap();
                    }
                }
                Event::Authenticate(Credentials::Apop {
                    user,
                    timestamp,
                    digest,
                }) => {
                    assert_eq!(timestamp, TIMESTAMP);
                    if user.as_str() == "mrose" && digest == b"c4c9334bac560ecc979e58001b3e22fb" {
                        self.session.login_accepted(self.entries()).unwrap();
                    } else {
                        self.session
                            .login_rejected(ErrorKind::BadCredentials)
                            .unwrap();
                    }
                }
                Event::SaslStart {
                    initial_response: Some(response),
                    ..
                }
                | Event::SaslResponse(response) => {
                    if response == b"\0mrose\0tanstaaf" {
                        self.session.login_accepted(self.entries()).unwrap();
                    } else {
                        self.session
                            .login_rejected(ErrorKind::BadCredentials)
                            .unwrap();
                    }
                }
                Event::SaslStart {
                    initial_response: None,
                    ..
                } => self.session.sasl_challenge(b"").unwrap(),
                Event::StartTls => {
                    self.flush();
                    self.tls_started = true;
                    self.session.tls_started().unwrap();
                }
                Event::Retrieve { index, .. } => {
                    self.session.message_opened().unwrap();
                    self.flush();
                    // Small chunks, as a file would stream, until the session wants no more.
                    let mut chunks = 0;
                    for chunk in self.messages[index].chunks(7) {
                        chunks += 1;
                        if !self.session.message_chunk(chunk).unwrap() {
                            break;
                        }
                    }
                    let sent = self.session.message_end().unwrap();
                    assert_eq!(sent, self.session.output().len() as u64, "body bytes");
                    self.retrievals.push((chunks, sent));
                }
                Event::Update { deleted } => {
                    self.committed = Some(deleted);
                    self.session.updated(Ok(())).unwrap();
                }
            }
        }
        self.flush();
    }

    fn entries(&self) -> Vec<MessageEntry> {
        self.messages
            .iter()
            .enumerate()
            .map(|(i, m)| MessageEntry {
                size: BodyEncoder::crlf_size(m),
                uidl: Uidl::new(format!("uid{i}")).unwrap(),
            })
            .collect()
    }

    fn transcript(&self) -> String {
        String::from_utf8_lossy(&self.wire).into_owned()
    }
}

fn session(input: &[u8]) -> Harness {
    let mut harness = Harness::new(options());
    harness.send(input);
    harness
}

#[test]
fn rfc1939_example_session_with_apop() {
    let harness = session(
        b"APOP mrose c4c9334bac560ecc979e58001b3e22fb\r\nSTAT\r\nLIST\r\nRETR 1\r\nDELE 1\r\nRETR 2\r\nDELE 2\r\nQUIT\r\n",
    );
    let body1 = format!("{}\r\n", "a".repeat(118));
    let expected = format!(
        "+OK POP3 server ready {TIMESTAMP}\r\n\
         +OK Logged in: 2 messages (147 octets).\r\n\
         +OK 2 147\r\n\
         +OK 2 messages (147 octets)\r\n1 120\r\n2 27\r\n.\r\n\
         +OK 120 octets\r\n{body1}.\r\n\
         +OK Message 1 deleted.\r\n\
         +OK 27 octets\r\nSubject: two\r\n\r\n..dot\r\nend\r\n.\r\n\
         +OK Message 2 deleted.\r\n\
         +OK Logging out, messages deleted.\r\n"
    );
    assert_eq!(harness.transcript(), expected);
    assert_eq!(harness.committed, Some(vec![0, 1]));
    assert!(harness.closed);
}

#[test]
fn wrong_apop_digest_is_refused_with_auth_code() {
    let harness = session(b"APOP mrose 00000000000000000000000000000000\r\n");
    assert!(harness
        .transcript()
        .ends_with("-ERR [AUTH] Authentication failed.\r\n"));
}

#[test]
fn user_pass_with_spaces_in_password() {
    let mut harness = Harness::new(options());
    harness.send(b"USER mrose\r\nPASS tanstaaf\r\nSTAT\r\n");
    assert!(
        harness.transcript().contains("+OK Logged in"),
        "{}",
        harness.transcript()
    );
    let mut harness = Harness::new(options());
    harness.send(b"USER mrose\r\nPASS tans taaf\r\n");
    assert!(harness.transcript().contains("-ERR [AUTH]"));
}

#[test]
fn deleted_messages_vanish_and_rset_restores_them() {
    let harness = session(
        b"USER mrose\r\nPASS tanstaaf\r\nDELE 1\r\nSTAT\r\nLIST\r\nUIDL\r\nLIST 1\r\nRETR 1\r\nTOP 1 0\r\nDELE 1\r\nUIDL 1\r\nRSET\r\nSTAT\r\nUIDL 1\r\nQUIT\r\n",
    );
    let lines: Vec<&str> = harness
        .wire
        .split(|&b| b == b'\n')
        .map(|l| std::str::from_utf8(l).unwrap_or(""))
        .collect();
    let text = lines.join("\n");
    assert!(
        text.contains("+OK 1 27\r\n+OK 1 messages (27 octets)\r\n2 27\r\n.\r\n"),
        "{text}"
    );
    assert!(
        text.contains("+OK Unique-ID listing follows.\r\n2 uid1\r\n.\r\n"),
        "{text}"
    );
    assert_eq!(
        text.matches("-ERR Message is deleted.").count(),
        5,
        "{text}"
    );
    assert!(
        text.contains("+OK Maildrop has 2 messages (147 octets).\r\n+OK 2 147\r\n+OK 1 uid0\r\n"),
        "{text}"
    );
    assert_eq!(harness.committed, Some(vec![]), "RSET undid the deletion");
}

#[test]
fn top_and_out_of_range_numbers() {
    let harness = session(
        b"USER mrose\r\nPASS tanstaaf\r\nTOP 2 0\r\nTOP 2 1\r\nRETR 3\r\nLIST 99\r\nQUIT\r\n",
    );
    let text = harness.transcript();
    assert!(
        text.contains("+OK Top of message follows.\r\nSubject: two\r\n\r\n.\r\n"),
        "{text}"
    );
    assert!(
        text.contains("+OK Top of message follows.\r\nSubject: two\r\n\r\n..dot\r\n.\r\n"),
        "{text}"
    );
    assert_eq!(text.matches("-ERR No such message.").count(), 2);
    // In chunks of seven bytes, TOP 2 0 is done with the second ("Subject: two\n\n") and
    // TOP 2 1 with the third (".dot\nen"); each body ends with the terminator.
    assert_eq!(harness.retrievals, [(2, 19), (3, 26)]);
}

#[test]
fn commands_in_the_wrong_state() {
    let harness = session(b"STAT\r\nRETR 1\r\nNOOP\r\nPASS x\r\nUSER mrose\r\nPASS tanstaaf\r\nUSER mrose\r\nSTLS\r\nQUIT\r\n");
    let text = harness.transcript();
    assert_eq!(text.matches("-ERR Not logged in").count(), 3, "{text}");
    assert!(text.contains("-ERR Send USER first."));
    assert_eq!(text.matches("-ERR Already logged in.").count(), 2, "{text}");
    assert!(!harness.tls_started);
}

#[test]
fn a_dropped_connection_deletes_nothing() {
    let harness = session(b"USER mrose\r\nPASS tanstaaf\r\nDELE 1\r\nDELE 2\r\n");
    assert_eq!(harness.committed, None);
    assert!(!harness.closed);
}

#[test]
fn quit_before_login_commits_nothing() {
    let harness = session(b"QUIT\r\nSTAT\r\n");
    assert!(harness.transcript().ends_with("+OK Logging out.\r\n"));
    assert!(harness.closed);
    assert_eq!(harness.committed, None);
}

#[test]
fn stls_discards_pipelined_commands() {
    let mut harness = Harness::new(options());
    harness.send(b"STLS\r\nUSER mrose\r\nPASS tanstaaf\r\n");
    assert!(harness.tls_started);
    assert!(
        !harness.session.is_authenticated(),
        "injected commands must not run"
    );
    assert!(
        harness
            .transcript()
            .ends_with("+OK Begin TLS negotiation now.\r\n"),
        "{}",
        harness.transcript()
    );
    harness.send(b"CAPA\r\n");
    let text = harness.transcript();
    assert!(
        !text
            .rsplit("Capability list")
            .next()
            .unwrap()
            .contains("STLS"),
        "{text}"
    );
    harness.send(b"STLS\r\n");
    assert!(harness
        .transcript()
        .ends_with("-ERR TLS is already active.\r\n"));
}

#[test]
fn plaintext_refused_without_tls_from_remote_peers() {
    let mut opts = options();
    opts.plaintext_allowed_insecure = false;
    let mut harness = Harness::new(opts);
    harness.send(b"CAPA\r\nUSER mrose\r\nAUTH PLAIN AG1yb3NlAHRhbnN0YWFm\r\nAUTH\r\n");
    let text = harness.transcript();
    assert!(!text.contains("\r\nUSER\r\n"), "{text}");
    assert!(text.contains("SASL SCRAM-SHA-256\r\n"), "{text}");
    assert_eq!(
        text.matches("-ERR [AUTH] Plaintext authentication disallowed")
            .count(),
        2,
        "{text}"
    );
    assert!(
        text.ends_with("+OK Supported mechanisms follow.\r\nSCRAM-SHA-256\r\n.\r\n"),
        "{text}"
    );
    harness.send(b"STLS\r\n");
    harness.send(b"USER mrose\r\nPASS tanstaaf\r\n");
    assert!(harness.session.is_authenticated());
}

#[test]
fn capa_before_and_after_login() {
    let harness = session(b"CAPA\r\nUSER mrose\r\nPASS tanstaaf\r\nCAPA\r\n");
    let text = harness.transcript();
    let before = "+OK Capability list follows\r\nUSER\r\nSASL PLAIN SCRAM-SHA-256\r\nSTLS\r\nUTF8 USER\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\nIMPLEMENTATION postie-test\r\n.\r\n";
    let after = "+OK Capability list follows\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\nIMPLEMENTATION postie-test\r\n.\r\n";
    assert!(text.contains(before), "{text}");
    assert!(text.ends_with(after), "{text}");
}

#[test]
fn sasl_plain_with_continuation_and_cancel() {
    let harness = session(b"AUTH PLAIN\r\n*\r\nAUTH PLAIN\r\nAG1yb3NlAHRhbnN0YWFm\r\nSTAT\r\n");
    let text = harness.transcript();
    assert!(
        text.contains("+ \r\n-ERR Authentication cancelled.\r\n+ \r\n+OK Logged in"),
        "{text}"
    );
    assert!(text.ends_with("+OK 2 147\r\n"));
}

#[test]
fn sasl_continuation_lines_up_to_16_kib() {
    let mut input = b"AUTH PLAIN\r\n".to_vec();
    input.extend(std::iter::repeat_n(b'A', 12 * 1024));
    input.extend_from_slice(b"\r\n");
    let harness = session(&input);
    assert!(
        harness
            .transcript()
            .ends_with("-ERR [AUTH] Authentication failed.\r\n"),
        "{}",
        harness.transcript()
    );
}

#[test]
fn three_failed_logins_close_the_connection() {
    let harness = session(b"USER a\r\nPASS b\r\nUSER a\r\nPASS b\r\nUSER a\r\nPASS b\r\nUSER mrose\r\nPASS tanstaaf\r\n");
    assert!(harness.closed);
    assert!(harness
        .transcript()
        .ends_with("-ERR Too many failed logins, closing the connection.\r\n"));
}

#[test]
fn twenty_bad_commands_in_a_row_disconnect() {
    let harness = session(&b"BOGUS\r\n".repeat(19));
    assert!(!harness.closed);
    let harness = session(&b"BOGUS\r\n".repeat(25));
    assert!(harness.closed);
    assert_eq!(harness.transcript().matches("-ERR").count(), 20);
    let mut mixed = b"BOGUS\r\n".repeat(19);
    mixed.extend_from_slice(b"CAPA\r\n");
    mixed.extend(b"BOGUS\r\n".repeat(19));
    assert!(!session(&mixed).closed, "a good command resets the count");
}

/// An AUTH whose initial response makes it longer than a command line (a bearer token does)
/// is taken; any other command that long is still too long.
#[test]
fn a_long_auth_initial_response_is_taken_and_other_long_lines_are_not() {
    let mut input = b"AUTH PLAIN ".to_vec();
    input.extend(std::iter::repeat_n(b'A', 4000));
    input.extend_from_slice(b"\r\nauth plain AG1yb3NlAHRhbnN0YWFm");
    input.extend(std::iter::repeat_n(b' ', 300));
    input.extend_from_slice(b"\r\n");
    let harness = session(&input);
    let transcript = harness.transcript();
    assert!(!transcript.contains("Line too long"), "{transcript}");
    assert!(transcript.contains("-ERR [AUTH]"), "{transcript}");

    let mut noop = b"NOOP ".to_vec();
    noop.extend(std::iter::repeat_n(b'x', 300));
    noop.extend_from_slice(b"\r\n");
    assert!(session(&noop).transcript().contains("-ERR Line too long."));
    let mut long_auth = b"AUTH PLAIN ".to_vec();
    long_auth.extend(std::iter::repeat_n(b'A', 20_000));
    long_auth.extend_from_slice(b"\r\n");
    assert!(
        session(&long_auth)
            .transcript()
            .contains("-ERR Line too long."),
        "an AUTH line is still bounded, by the SASL line limit"
    );
}

#[test]
fn hostile_bytes_get_errors_not_panics() {
    let mut input = vec![0u8; 10];
    input.extend_from_slice(b"\r\n\r\n:\r\nUSER\0x\r\n");
    input.extend(std::iter::repeat_n(b'x', 1 << 20));
    input.extend_from_slice(b"\r\nCAPA\r\n");
    let harness = session(&input);
    assert!(harness.transcript().contains("-ERR Line too long."));
    assert!(
        harness.transcript().ends_with(".\r\n"),
        "CAPA still answered"
    );
}

proptest! {
    #[test]
    fn any_split_of_the_input_gives_the_same_transcript(cuts in proptest::collection::vec(0usize..200, 0..30)) {
        let input: &[u8] = b"CAPA\r\nUSER mrose\r\nPASS tanstaaf\r\nSTAT\r\nLIST\r\nUIDL\r\nTOP 2 1\r\nRETR 1\r\nDELE 2\r\nRSET\r\nDELE 1\r\nNOOP\r\nQUIT\r\n";
        let expected = session(input);
        let mut harness = Harness::new(options());
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(input.len())).collect();
        cuts.sort_unstable();
        let mut last = 0;
        for cut in cuts.into_iter().chain([input.len()]) {
            harness.send(&input[last..cut]);
            last = cut;
        }
        prop_assert_eq!(harness.transcript(), expected.transcript());
        prop_assert_eq!(harness.committed, Some(vec![0]));
    }

    #[test]
    fn random_input_never_panics(input in proptest::collection::vec(prop_oneof![Just(b'\r'), Just(b'\n'), Just(b' '), any::<u8>(), Just(b'1')], 0..400), prefix in prop_oneof![Just(&b""[..]), Just(&b"USER mrose\r\nPASS tanstaaf\r\n"[..])]) {
        let mut harness = Harness::new(options());
        harness.send(prefix);
        harness.send(&input);
    }
}

#[test]
fn commands_are_tallied_by_verb_never_by_argument() {
    let mut harness = Harness::new(options());
    harness.send(b"CAPA\r\nUSER mrose\r\nPASS tanstaaf\r\nSTAT\r\nretr 1\r\nXYZZY\r\nRETR x\r\nNOOP\r\nNOOP\r\n");
    let tally: Vec<_> = harness.session.commands().iter().collect();
    assert_eq!(
        tally,
        [
            ("USER", 1),
            ("PASS", 1),
            ("CAPA", 1),
            ("STAT", 1),
            ("RETR", 1),
            ("NOOP", 2),
            ("invalid", 2)
        ]
    );
}

#[test]
fn a_proxy_header_where_a_command_belongs_ends_the_session() {
    let mut harness = Harness::new(options());
    harness.send(b"PROXY TCP4 203.0.113.9 192.0.2.1 4000 110\r\nUSER mrose\r\n");
    let wire = String::from_utf8_lossy(&harness.wire).into_owned();
    assert!(
        wire.ends_with(
            "-ERR [SYS/PERM] A PROXY header is accepted only from the configured proxies\r\n"
        ),
        "{wire}"
    );
    assert!(harness.closed);
}

/// Sample command lines, one per verb, valid in some state.
fn sample_line(verb: Verb) -> &'static str {
    match verb {
        Verb::User => "USER mrose",
        Verb::Pass => "PASS tanstaaf",
        Verb::Apop => "APOP mrose c4c9334bac560ecc979e58001b3e22fb",
        Verb::Auth => "AUTH PLAIN",
        Verb::Capa => "CAPA",
        Verb::Stls => "STLS",
        Verb::Utf8 => "UTF8",
        Verb::Stat => "STAT",
        Verb::List => "LIST 1",
        Verb::Retr => "RETR 1",
        Verb::Dele => "DELE 1",
        Verb::Noop => "NOOP",
        Verb::Rset => "RSET",
        Verb::Top => "TOP 1 0",
        Verb::Uidl => "UIDL",
        Verb::Quit => "QUIT",
    }
}

#[test]
fn every_verb_parses_is_tallied_and_announced_in_capa() {
    let capa = session(b"CAPA\r\n").transcript();
    for &verb in Verb::ALL {
        let line = sample_line(verb);
        assert_eq!(Command::parse(line.as_bytes()).map(|c| c.verb()), Ok(verb));
        let mut session = ServerSession::new(options());
        session.feed(format!("{line}\r\n").as_bytes());
        session.next();
        let tally: Vec<_> = session.commands().iter().collect();
        assert_eq!(tally, [(verb.as_str(), 1)], "{verb}");
        if let Some(tag) = verb.capability() {
            assert!(
                capa.lines()
                    .any(|l| l == tag || l.starts_with(&format!("{tag} "))),
                "{verb} not announced in {capa}"
            );
        }
    }
}

const COMPLETIONS: [&str; 10] = [
    "login_accepted",
    "login_rejected",
    "sasl_challenge",
    "tls_started",
    "message_opened",
    "message_opened_in_wire_form",
    "message_chunk",
    "message_end",
    "message_failed",
    "updated",
];

fn complete(session: &mut ServerSession, completion: &str) -> Result<(), WrongState> {
    match completion {
        "login_accepted" => session.login_accepted(Vec::new()),
        "login_rejected" => session.login_rejected(ErrorKind::BadCredentials),
        "sasl_challenge" => session.sasl_challenge(b""),
        "tls_started" => session.tls_started(),
        "message_opened" => session.message_opened(),
        "message_opened_in_wire_form" => session.message_opened_in_wire_form(0, 0).map(drop),
        "message_chunk" => session.message_chunk(b"x\n").map(drop),
        "message_end" => session.message_end().map(drop),
        "message_failed" => session.message_failed(ErrorKind::Temporary),
        "updated" => session.updated(Ok(())),
        other => panic!("no completion {other}"),
    }
}

/// Calls every completion but `answers` and checks that each is refused, naming what the
/// session waits for, and leaves no trace in the output.
fn assert_only_answered_by(session: &mut ServerSession, pending: Pending, answers: &[&str]) {
    let output = session.output().clone();
    for completion in COMPLETIONS.into_iter().filter(|c| !answers.contains(c)) {
        let error = complete(session, completion).expect_err(completion);
        assert_eq!(error.completion, completion);
        assert_eq!(error.actual, pending, "{completion}");
        assert!(!error.expected.contains(&pending), "{completion}");
    }
    assert_eq!(
        *session.output(),
        output,
        "a refused completion writes nothing"
    );
}

#[test]
fn completions_out_of_turn_are_refused_and_change_nothing() {
    let mut session = ServerSession::new(options());
    assert_only_answered_by(&mut session, Pending::Nothing, &[]);
    assert_eq!(
        session.tls_started().unwrap_err().to_string(),
        "`tls_started` answers the TLS handshake, but the session waits for nothing"
    );

    session.feed(b"USER mrose\r\nPASS tanstaaf\r\n");
    assert!(matches!(session.next(), Event::Authenticate(_)));
    assert_only_answered_by(
        &mut session,
        Pending::Login,
        &["login_accepted", "login_rejected"],
    );
    session
        .login_accepted(Harness::new(options()).entries())
        .unwrap();

    session.feed(b"TOP 2 0\r\n");
    assert!(matches!(session.next(), Event::Retrieve { index: 1, .. }));
    assert_only_answered_by(
        &mut session,
        Pending::MessageOpen,
        &[
            "message_opened",
            "message_opened_in_wire_form",
            "message_failed",
        ],
    );
    session.message_opened().unwrap();
    assert_only_answered_by(
        &mut session,
        Pending::MessageBody,
        &["message_chunk", "message_end"],
    );
    assert!(!session.message_chunk(b"A: b\n\nbody\n").unwrap());
    session.message_end().unwrap();
    assert_only_answered_by(&mut session, Pending::Nothing, &[]);

    session.feed(b"QUIT\r\n");
    assert!(matches!(session.next(), Event::Update { .. }));
    assert_only_answered_by(&mut session, Pending::Update, &["updated"]);
    session.updated(Ok(())).unwrap();

    let mut session = ServerSession::new(options());
    session.feed(b"STLS\r\n");
    assert_eq!(session.next(), Event::StartTls);
    assert_only_answered_by(&mut session, Pending::TlsHandshake, &["tls_started"]);

    let mut session = ServerSession::new(options());
    session.feed(b"AUTH PLAIN\r\n");
    assert!(matches!(session.next(), Event::SaslStart { .. }));
    assert_only_answered_by(
        &mut session,
        Pending::SaslStep,
        &["login_accepted", "login_rejected", "sasl_challenge"],
    );
    session.sasl_challenge(b"").unwrap();
    assert_only_answered_by(&mut session, Pending::Nothing, &[]);
}

/// A message whose stored octets are its wire form but for stuffing goes out as stored for
/// RETR, the core writing the same status line and terminator as the encoder path and
/// counting the stuffed dots; TOP, and a stored length other than the size announced, go
/// through the encoder.
#[test]
fn a_message_in_wire_form_is_sent_as_stored_only_for_a_matching_retr() {
    let stored = b"Subject: one\r\n\r\n.body\r\nend\r\n".to_vec();
    let dot_line = 16;
    let size = stored.len() as u64;
    let logged_in = || {
        let mut session = ServerSession::new(options());
        session.feed(b"USER mrose\r\nPASS tanstaaf\r\n");
        assert!(matches!(session.next(), Event::Authenticate(_)));
        let entry = MessageEntry {
            size,
            uidl: Uidl::new("uid0".to_owned()).unwrap(),
        };
        session.login_accepted(vec![entry]).unwrap();
        assert_eq!(session.next(), Event::NeedInput);
        session.output().clear();
        session
    };

    // The encoder path, for the expected bytes.
    let mut encoded = logged_in();
    encoded.feed(b"RETR 1\r\n");
    assert!(matches!(encoded.next(), Event::Retrieve { index: 0, .. }));
    encoded.message_opened().unwrap();
    encoded.message_chunk(&stored).unwrap();
    let encoded_sent = encoded.message_end().unwrap();

    let mut session = logged_in();
    session.feed(b"RETR 1\r\n");
    assert!(matches!(session.next(), Event::Retrieve { index: 0, .. }));
    let transfer = session.message_opened_in_wire_form(size, 1).unwrap();
    assert_eq!(transfer, BodyTransfer::AsStored { octets: size });
    assert_only_answered_by(&mut session, Pending::MessageSentAsStored, &["message_end"]);
    let mut wire = std::mem::take(session.output());
    wire.extend_from_slice(&stored[..dot_line]);
    wire.push(b'.');
    wire.extend_from_slice(&stored[dot_line..]);
    assert_eq!(session.message_end().unwrap(), encoded_sent);
    wire.extend_from_slice(session.output());
    assert_eq!(wire, *encoded.output(), "the same bytes as the encoder's");

    for (command, stored_len) in [(&b"TOP 1 0\r\n"[..], size), (b"RETR 1\r\n", size - 1)] {
        let mut session = logged_in();
        session.feed(command);
        assert!(matches!(session.next(), Event::Retrieve { .. }));
        let transfer = session.message_opened_in_wire_form(stored_len, 0).unwrap();
        assert_eq!(transfer, BodyTransfer::Encode);
        session.message_chunk(&stored).unwrap();
        session.message_end().unwrap();
    }
}
