//! The client session driven through its public API: RFC 1939's example session from the
//! client's side, pipelining, STLS, SASL exchanges, long lines, and hostile input.

use postie_proto::client::{
    AuthFailure, ClientError, ClientEvent, ClientSession, SaslClient, SaslError, Sent,
};
use postie_types::{MsgNum, Secret, UserName};

use proptest::prelude::*;

fn msg(n: u32) -> MsgNum {
    MsgNum::parse(n.to_string().as_bytes()).unwrap()
}

/// Feeds `input` in one piece and collects events until the session needs more.
fn events(session: &mut ClientSession, input: &[u8]) -> Vec<ClientEvent> {
    session.feed(input);
    drain(session)
}

fn drain(session: &mut ClientSession) -> Vec<ClientEvent> {
    let mut out = Vec::new();
    loop {
        match session.next().expect("protocol error") {
            ClientEvent::NeedInput => return out,
            event => out.push(event),
        }
    }
}

fn take_output(session: &mut ClientSession) -> String {
    String::from_utf8(std::mem::take(session.output())).unwrap()
}

/// Message content events merged, so chunking does not matter to comparisons.
fn merged(events: Vec<ClientEvent>) -> Vec<ClientEvent> {
    let mut out: Vec<ClientEvent> = Vec::new();
    for event in events {
        if let (Some(ClientEvent::MessageData(previous)), ClientEvent::MessageData(more)) =
            (out.last_mut(), &event)
        {
            previous.extend_from_slice(more);
            continue;
        }
        out.push(event);
    }
    out
}

#[test]
fn rfc_1939_example_session() {
    let mut session = ClientSession::new();
    let greeting = events(
        &mut session,
        b"+OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>\r\n",
    );
    assert!(matches!(&greeting[..], [ClientEvent::Greeting(Ok(g))] if g.apop_timestamp.is_some()));
    session
        .apop(
            &UserName::parse(b"mrose").unwrap(),
            &Secret::new(b"tanstaaf".to_vec()),
        )
        .unwrap();
    session.stat();
    session.list();
    session.retr(msg(1));
    session.dele(msg(1));
    session.quit();
    assert_eq!(
        take_output(&mut session),
        "APOP mrose c4c9334bac560ecc979e58001b3e22fb\r\nSTAT\r\nLIST\r\nRETR 1\r\nDELE 1\r\nQUIT\r\n"
    );
    let got = merged(events(
        &mut session,
        b"+OK mrose's maildrop has 2 messages (320 octets)\r\n\
          +OK 2 320\r\n\
          +OK 2 messages (320 octets)\r\n1 120\r\n2 200\r\n.\r\n\
          +OK 120 octets\r\nSubject: x\r\n\r\n..dot\r\nline\r\n.\r\n\
          -ERR [SYS/TEMP] busy\r\n\
          +OK dewey POP3 server signing off\r\n",
    ));
    assert!(matches!(&got[0], ClientEvent::Reply { command: Sent::Apop, status } if status.ok));
    assert!(matches!(&got[1], ClientEvent::Stat(Ok(m)) if m.count == 2 && m.octets == 320));
    assert!(matches!(&got[2], ClientEvent::List(Ok(l)) if l.len() == 2 && l[1].size == 200));
    assert!(matches!(&got[3], ClientEvent::MessageStart { top: false, status, .. } if status.ok));
    assert_eq!(
        got[4],
        ClientEvent::MessageData(b"Subject: x\r\n\r\n.dot\r\nline\r\n".to_vec())
    );
    assert_eq!(got[5], ClientEvent::MessageEnd { msg: msg(1) });
    assert!(
        matches!(&got[6], ClientEvent::Reply { command: Sent::Dele(_), status } if status.is_temporary())
    );
    assert!(matches!(&got[7], ClientEvent::Reply { command: Sent::Quit, status } if status.ok));
    assert_eq!(got.len(), 8);
}

#[test]
fn capa_uidl_and_errors() {
    let mut session = ClientSession::new();
    events(&mut session, b"+OK hi\r\n");
    session.capa();
    session.uidl();
    session.top(msg(2), 0);
    let got = events(
        &mut session,
        b"+OK\r\nTOP\r\nUIDL\r\nSASL PLAIN SCRAM-SHA-256\r\nPIPELINING\r\n.\r\n\
          +OK\r\n1 abc\r\n2 def\r\n.\r\n-ERR no such message\r\n",
    );
    let ClientEvent::Capabilities(Ok(capa)) = &got[0] else {
        panic!("{got:?}")
    };
    assert!(capa.top && capa.uidl && capa.pipelining && capa.has_sasl("PLAIN"));
    assert!(matches!(&got[1], ClientEvent::Uidl(Ok(u)) if u[1].uidl.as_str() == "def"));
    assert!(matches!(&got[2], ClientEvent::MessageStart { top: true, status, .. } if !status.ok));
    assert_eq!(got.len(), 3);
}

#[test]
fn stls_holds_later_commands_and_drops_injected_bytes() {
    let mut session = ClientSession::new();
    events(&mut session, b"+OK hi\r\n");
    session.stls();
    session.capa();
    assert_eq!(take_output(&mut session), "STLS\r\n");
    let got = events(&mut session, b"+OK Begin TLS\r\n+OK injected\r\n");
    assert!(matches!(&got[..], [ClientEvent::Reply { command: Sent::Stls, status }] if status.ok));
    assert!(session.wants_tls());
    assert_eq!(take_output(&mut session), "");
    session.tls_started();
    assert_eq!(take_output(&mut session), "CAPA\r\n");
    let got = events(&mut session, b"+OK\r\nUSER\r\n.\r\n");
    assert!(matches!(&got[..], [ClientEvent::Capabilities(Ok(c))] if c.user && !c.stls));
}

#[test]
fn stls_refused_releases_held_commands() {
    let mut session = ClientSession::new();
    events(&mut session, b"+OK hi\r\n");
    session.stls();
    session.quit();
    take_output(&mut session);
    events(&mut session, b"-ERR no TLS here\r\n");
    assert_eq!(take_output(&mut session), "QUIT\r\n");
}

#[test]
fn scram_exchange_with_the_rfc_7677_vectors() {
    let mut session = ClientSession::new();
    events(&mut session, b"+OK hi\r\n");
    let password = Secret::new(b"pencil".to_vec());
    session.auth(
        SaslClient::scram_sha256("user", &password, "rOprNGfwEbeRWgbNEkqO"),
        true,
    );
    session.stat();
    assert_eq!(
        take_output(&mut session),
        "AUTH SCRAM-SHA-256 biwsbj11c2VyLHI9ck9wck5HZndFYmVSV2diTkVrcU8=\r\n"
    );
    let server_first = "cj1yT3ByTkdmd0ViZVJXZ2JORWtxTyVodllEcFdVYTJSYVRDQWZ1eEZJbGopaE5sRiRrMCxzPVcyMlphSjBTTlk3c29Fc1VFamI2Z1E9PSxpPTQwOTY=";
    events(&mut session, format!("+ {server_first}\r\n").as_bytes());
    assert_eq!(
        take_output(&mut session),
        "Yz1iaXdzLHI9ck9wck5HZndFYmVSV2diTkVrcU8laHZZRHBXVWEyUmFUQ0FmdXhGSWxqKWhObEYkazAscD1kSHpiWmFwV0lrNGpVaE4rVXRlOXl0YWc5empmTUhnc3FtbWl6N0FuZFZRPQ==\r\n"
    );
    events(
        &mut session,
        b"+ dj02cnJpVFJCaTIzV3BSUi93dHVwK21NaFVaVW4vZEI1bkxUSlJzamw5NUc0PQ==\r\n",
    );
    assert_eq!(take_output(&mut session), "\r\n");
    let got = events(&mut session, b"+OK logged in\r\n");
    assert!(matches!(&got[..], [ClientEvent::Authenticated(Ok(_))]));
    assert_eq!(
        take_output(&mut session),
        "STAT\r\n",
        "held until the login ended"
    );
}

#[test]
fn scram_without_server_proof_is_not_a_login() {
    let mut session = ClientSession::new();
    events(&mut session, b"+OK hi\r\n");
    let password = Secret::new(b"pencil".to_vec());
    session.auth(SaslClient::scram_sha256("user", &password, "abc"), true);
    take_output(&mut session);
    let got = events(&mut session, b"+OK trust me\r\n");
    assert!(matches!(
        &got[..],
        [ClientEvent::Authenticated(Err(AuthFailure::Mechanism {
            error: SaslError::ServerNotVerified,
            ..
        }))]
    ));
}

#[test]
fn a_bad_challenge_cancels_the_exchange() {
    let mut session = ClientSession::new();
    events(&mut session, b"+OK hi\r\n");
    session.auth(SaslClient::plain("a", &Secret::new(b"b".to_vec())), true);
    take_output(&mut session);
    events(&mut session, b"+ c29tZXRoaW5n\r\n");
    assert_eq!(take_output(&mut session), "*\r\n");
    let got = events(&mut session, b"-ERR cancelled\r\n");
    assert!(matches!(
        &got[..],
        [ClientEvent::Authenticated(Err(
            AuthFailure::Mechanism { .. }
        ))]
    ));
}

#[test]
fn long_initial_responses_wait_for_the_first_challenge() {
    let mut session = ClientSession::new();
    events(&mut session, b"+OK hi\r\n");
    let token = Secret::new(vec![b't'; 400]);
    session.auth(SaslClient::xoauth2("someone@example.com", &token), true);
    assert_eq!(take_output(&mut session), "AUTH XOAUTH2\r\n");
    events(&mut session, b"+ \r\n");
    let answer = take_output(&mut session);
    assert!(answer.len() > 500 && answer.ends_with("\r\n"));
    events(&mut session, b"+ eyJzdGF0dXMiOiI0MDEifQ==\r\n");
    assert_eq!(
        take_output(&mut session),
        "\r\n",
        "the error challenge is acknowledged"
    );
    let got = events(&mut session, b"-ERR [AUTH] invalid token\r\n");
    assert!(matches!(
        &got[..],
        [ClientEvent::Authenticated(Err(AuthFailure::Refused(s)))]
            if s.is_auth() && s.text.contains("{\"status\":\"401\"}")
    ));
}

#[test]
fn long_lines_in_bodies_arrive_whole_and_bounded() {
    let mut session = ClientSession::new();
    events(&mut session, b"+OK hi\r\n");
    session.retr(msg(1));
    let mut wire = b"+OK\r\n..".to_vec();
    wire.extend(std::iter::repeat_n(b'x', 300_000));
    wire.extend_from_slice(b"\r\n.\r\n");
    session.feed(&wire);
    let mut content = Vec::new();
    let mut ended = false;
    loop {
        match session.next().unwrap() {
            ClientEvent::MessageData(data) => {
                assert!(data.len() <= 128 * 1024);
                content.extend(data);
            }
            ClientEvent::MessageEnd { .. } => ended = true,
            ClientEvent::NeedInput => break,
            ClientEvent::MessageStart { .. } => {}
            other => panic!("{other:?}"),
        }
    }
    assert!(ended);
    assert_eq!(content.len(), 300_000 + 3);
    assert!(content.starts_with(b".x") && content.ends_with(b"x\r\n"));
}

#[test]
fn protocol_errors_are_errors() {
    let mut session = ClientSession::new();
    session.feed(b"* OK IMAP4rev1 ready\r\n");
    assert!(matches!(session.next(), Err(ClientError::Malformed { .. })));
    let mut session = ClientSession::new();
    session.feed(b"+OK hi\r\n+OK surprise\r\n");
    assert!(matches!(session.next(), Ok(ClientEvent::Greeting(Ok(_)))));
    assert!(matches!(session.next(), Err(ClientError::Unsolicited(_))));
    let mut session = ClientSession::new();
    assert!(session.pass(&Secret::new(b"a\r\nDELE 1".to_vec())).is_err());
}

/// The server bytes of a session with every kind of answer.
fn server_script() -> Vec<u8> {
    b"+OK ready <1.2@h>\r\n+OK\r\nTOP\r\nUIDL\r\n.\r\n+OK 2 10\r\n+OK\r\n1 a\r\n2 b\r\n.\r\n\
      +OK\r\nline\r\n..stuffed\r\n\r\n.\r\n+OK\r\nH: v\r\n\r\n.\r\n+OK deleted\r\n-ERR [IN-USE] x\r\n+OK bye\r\n"
        .to_vec()
}

fn script_session() -> ClientSession {
    let mut session = ClientSession::new();
    session.capa();
    session.stat();
    session.uidl();
    session.retr(msg(1));
    session.top(msg(2), 0);
    session.dele(msg(1));
    session.noop();
    session.quit();
    session
}

proptest! {
    #[test]
    fn any_split_gives_the_same_events(cuts in proptest::collection::vec(0usize..200, 0..20)) {
        let input = server_script();
        let mut whole = script_session();
        let expected = merged(events(&mut whole, &input));
        prop_assert_eq!(expected.len(), 13);
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(input.len())).collect();
        cuts.sort_unstable();
        let mut pieces = script_session();
        let mut got = Vec::new();
        let mut last = 0;
        for cut in cuts.into_iter().chain([input.len()]) {
            got.extend(events(&mut pieces, &input[last..cut]));
            last = cut;
        }
        prop_assert_eq!(merged(got), expected);
    }

    #[test]
    fn hostile_input_never_panics(input in proptest::collection::vec(prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'.'), Just(b'+'), any::<u8>()], 0..600)) {
        let mut session = script_session();
        session.auth(SaslClient::login("u", &Secret::new(b"p".to_vec())), true);
        session.feed(&input);
        for _ in 0..1000 {
            match session.next() {
                Ok(ClientEvent::NeedInput) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }
}
