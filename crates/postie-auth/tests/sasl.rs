mod support;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use postie_auth::{Mechanism, SaslExchange, SaslStep};
use support::{authenticator, client_final, scram_entry, server_first_fields};

fn challenge(text: &str) -> SaslStep {
    SaslStep::Challenge(text.as_bytes().to_vec())
}

fn accepted(user: &str) -> SaslStep {
    SaslStep::Accepted {
        app_password: None,
        user: user.to_string(),
    }
}

const RFC7677_SALT: &str = "W22ZaJ0SNY7soEsUEjb6gQ==";
const RFC7677_SERVER_NONCE: &str = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";

fn rfc7677_users() -> String {
    let salt = BASE64.decode(RFC7677_SALT).unwrap();
    format!(
        "user:{}\nplain:{{PLAIN}}pencil\nargon:{{ARGON2ID}}$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$3Vd0b5iuXbr6jszsyUfdHfbvZxWxaVjCyh/0kAqO97k\n",
        scram_entry(b"pencil", &salt, 4096)
    )
}

/// RFC 7677 section 3, message for message.
#[test]
fn scram_rfc7677_example() {
    let fixture = authenticator(&rfc7677_users());
    let auth = &fixture.auth;
    let mut exchange = auth
        .sasl(Mechanism::ScramSha256)
        .with_server_nonce(RFC7677_SERVER_NONCE)
        .unwrap();
    assert_eq!(
        exchange.step(auth, None).unwrap(),
        SaslStep::Challenge(Vec::new())
    );
    assert_eq!(
        exchange
            .step(auth, Some(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"))
            .unwrap(),
        challenge(
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
        )
    );
    let client_final_message = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    // The test's own client agrees with the RFC, so the other tests can rely on it.
    assert_eq!(
        client_final(
            b"pencil",
            "n=user,r=rOprNGfwEbeRWgbNEkqO",
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
            "n,,"
        ),
        (
            client_final_message.to_string(),
            "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=".to_string()
        )
    );
    assert_eq!(
        exchange
            .step(auth, Some(client_final_message.as_bytes()))
            .unwrap(),
        challenge("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
    );
    assert_eq!(exchange.step(auth, Some(b"")).unwrap(), accepted("user"));
    assert_eq!(exchange.step(auth, Some(b"")).unwrap(), SaslStep::Rejected);
}

/// Runs a whole SCRAM exchange with the test client; the last step's result.
fn scram_login(
    fixture: &support::Fixture,
    gs2_header: &str,
    user: &str,
    password: &[u8],
) -> (SaslStep, Option<String>) {
    let auth = &fixture.auth;
    let mut exchange = auth.sasl(Mechanism::ScramSha256);
    let bare = format!("n={user},r=fyko+d2lbbFgONRv9qkxdawL");
    let SaslStep::Challenge(server_first) = exchange
        .step(auth, Some(format!("{gs2_header}{bare}").as_bytes()))
        .unwrap()
    else {
        panic!("no server-first message");
    };
    let server_first = String::from_utf8(server_first).unwrap();
    let (client_final_message, expected_v) =
        client_final(password, &bare, &server_first, gs2_header);
    match exchange
        .step(auth, Some(client_final_message.as_bytes()))
        .unwrap()
    {
        SaslStep::Challenge(v) => {
            assert_eq!(String::from_utf8(v).unwrap(), expected_v);
            (exchange.step(auth, None).unwrap(), Some(server_first))
        }
        other => (other, Some(server_first)),
    }
}

#[test]
fn scram_with_cleartext_users_and_y_flag() {
    let fixture = authenticator(&rfc7677_users());
    assert_eq!(
        scram_login(&fixture, "n,,", "plain", b"pencil").0,
        accepted("plain")
    );
    assert_eq!(
        scram_login(&fixture, "y,,", "plain", b"pencil").0,
        accepted("plain")
    );
    assert_eq!(
        scram_login(&fixture, "y,,", "user", b"pencil").0,
        accepted("user")
    );
    assert_eq!(
        scram_login(&fixture, "n,a=user,", "user", b"pencil").0,
        accepted("user")
    );
}

#[test]
fn scram_rejections_look_like_any_other_exchange() {
    let fixture = authenticator(&rfc7677_users());
    for (user, password) in [
        ("user", &b"pencil!"[..]),
        ("plain", b"Pencil"),
        ("nobody", b"pencil"),
        ("argon", b"password"),
    ] {
        let (result, server_first) = scram_login(&fixture, "n,,", user, password);
        assert_eq!(result, SaslStep::Rejected, "{user}");
        let (_, salt, iterations) = server_first_fields(&server_first.unwrap());
        assert_eq!((salt.len(), iterations), (16, 4096), "{user}");
    }
    // The decoy salt of an unknown user stays put, like a real user's.
    let first = scram_login(&fixture, "n,,", "nobody", b"x").1.unwrap();
    let second = scram_login(&fixture, "n,,", "nobody", b"x").1.unwrap();
    assert_eq!(
        server_first_fields(&first).1,
        server_first_fields(&second).1
    );
}

#[test]
fn scram_protocol_violations_are_rejected() {
    let fixture = authenticator(&rfc7677_users());
    let auth = &fixture.auth;
    let first = b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
    let good_final = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    let start = || {
        let mut exchange = auth
            .sasl(Mechanism::ScramSha256)
            .with_server_nonce(RFC7677_SERVER_NONCE)
            .unwrap();
        assert!(matches!(
            exchange.step(auth, Some(first)).unwrap(),
            SaslStep::Challenge(_)
        ));
        exchange
    };
    for bad_final in [
        // Wrong channel-binding data (claims "y,," was sent).
        good_final.replace("c=biws", "c=eSws"),
        // Nonce not the combined one.
        good_final.replace("%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0", "x"),
        good_final.replace("p=dHzb", "p=dHzc"),
        good_final.replace(",p=", ",q="),
        good_final.replace("c=biws,", ""),
        String::new(),
    ] {
        assert_eq!(
            start().step(auth, Some(bad_final.as_bytes())).unwrap(),
            SaslStep::Rejected,
            "{bad_final}"
        );
    }
    // The client must acknowledge the server's signature with an empty response.
    let mut exchange = start();
    exchange.step(auth, Some(good_final.as_bytes())).unwrap();
    assert_eq!(exchange.step(auth, Some(b"*")).unwrap(), SaslStep::Rejected);

    for bad_first in [
        &b"p=tls-server-end-point,,n=user,r=abc"[..],
        b"n,a=admin,n=user,r=abc",
        b"n,,m=x,n=user,r=abc",
        b"",
    ] {
        let mut exchange = auth.sasl(Mechanism::ScramSha256);
        assert_eq!(
            exchange.step(auth, Some(bad_first)).unwrap(),
            SaslStep::Rejected
        );
        assert_eq!(
            exchange.step(auth, Some(good_final.as_bytes())).unwrap(),
            SaslStep::Rejected
        );
    }
}

#[test]
fn plain_mechanism() {
    let fixture = authenticator("alice:{PLAIN}secret\njürgen:{PLAIN}pw\n");
    let auth = &fixture.auth;
    let run = |message: &[u8]| {
        auth.sasl(Mechanism::Plain)
            .step(auth, Some(message))
            .unwrap()
    };
    assert_eq!(run(b"\0alice\0secret"), accepted("alice"));
    assert_eq!(run(b"alice\0alice\0secret"), accepted("alice"));
    assert_eq!(run("\0jürgen\0pw".as_bytes()), accepted("jürgen"));
    for bad in [
        &b"\0alice\0wrong"[..],
        b"bob\0alice\0secret",
        b"\0Alice\0secret",
        b"\0nobody\0secret",
        b"\0alice",
        b"\0alice\0secret\0",
        b"\0\0secret",
        b"\0\xff\0secret",
        b"",
    ] {
        assert_eq!(run(bad), SaslStep::Rejected, "{bad:?}");
    }

    let mut exchange = SaslExchange::new(Mechanism::Plain);
    assert_eq!(
        exchange.step(auth, None).unwrap(),
        SaslStep::Challenge(Vec::new())
    );
    assert_eq!(
        exchange.step(auth, Some(b"\0alice\0secret")).unwrap(),
        accepted("alice")
    );
    assert_eq!(
        exchange.step(auth, Some(b"\0alice\0secret")).unwrap(),
        SaslStep::Rejected
    );
}

#[test]
fn login_mechanism() {
    let fixture = authenticator("alice:{PLAIN}secret\n");
    let auth = &fixture.auth;

    let mut exchange = auth.sasl(Mechanism::Login);
    assert_eq!(exchange.step(auth, None).unwrap(), challenge("Username:"));
    assert_eq!(
        exchange.step(auth, Some(b"alice")).unwrap(),
        challenge("Password:")
    );
    assert_eq!(
        exchange.step(auth, Some(b"secret")).unwrap(),
        accepted("alice")
    );

    // The user name as initial response.
    let mut exchange = auth.sasl(Mechanism::Login);
    assert_eq!(
        exchange.step(auth, Some(b"alice")).unwrap(),
        challenge("Password:")
    );
    assert_eq!(
        exchange.step(auth, Some(b"wrong")).unwrap(),
        SaslStep::Rejected
    );

    let mut exchange = auth.sasl(Mechanism::Login);
    exchange.step(auth, None).unwrap();
    assert_eq!(
        exchange.step(auth, Some(b"\xff")).unwrap(),
        SaslStep::Rejected
    );
    assert_eq!(
        exchange.step(auth, Some(b"secret")).unwrap(),
        SaslStep::Rejected
    );
}

#[test]
fn a_rejected_exchange_names_the_user_it_tried() {
    let fixture = authenticator("alice:{PLAIN}secret\n");
    let auth = &fixture.auth;
    let mut plain = auth.sasl(Mechanism::Plain);
    assert_eq!(plain.claimed_user(), None);
    assert_eq!(
        plain.step(auth, Some(b"\0alice\0wrong")).unwrap(),
        SaslStep::Rejected
    );
    assert_eq!(plain.claimed_user(), Some("alice"));

    let mut login = auth.sasl(Mechanism::Login);
    login.step(auth, Some(b"nobody")).unwrap();
    assert_eq!(login.step(auth, Some(b"x")).unwrap(), SaslStep::Rejected);
    assert_eq!(login.claimed_user(), Some("nobody"));

    let mut scram = auth.sasl(Mechanism::ScramSha256);
    scram.step(auth, Some(b"n,,n=alice,r=abc")).unwrap();
    assert_eq!(
        scram.step(auth, Some(b"c=biws,r=abc,p=AAAA")).unwrap(),
        SaslStep::Rejected
    );
    assert_eq!(scram.claimed_user(), Some("alice"));
}

/// SCRAM proves the account's own password: a user who requires app passwords is told so at
/// the end of a correct exchange, and a wrong proof is still a plain rejection.
#[test]
fn scram_with_app_passwords_required() {
    let salt = BASE64.decode(RFC7677_SALT).unwrap();
    let fixture = authenticator(&format!("user:{}\n", scram_entry(b"pencil", &salt, 4096)));
    postie_auth::passwd_file::require_app_passwords(&fixture.path, "user", true).unwrap();
    assert_eq!(
        scram_login(&fixture, "n,,", "user", b"pencil").0,
        SaslStep::AppPasswordRequired {
            user: "user".into()
        }
    );
    assert_eq!(
        scram_login(&fixture, "n,,", "user", b"crayon").0,
        SaslStep::Rejected
    );
}
