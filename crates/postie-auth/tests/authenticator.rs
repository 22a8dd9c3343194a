mod support;

use postie_auth::{hash_password, Scheme, Verdict};
use support::authenticator;

fn accepted(user: &str) -> Verdict {
    Verdict::Accepted {
        app_password: None,
        user: user.to_string(),
    }
}

#[test]
fn user_pass() {
    let ssha = hash_password(b"s3cret", Scheme::Ssha512).unwrap();
    let fixture = authenticator(&format!(
        "# test users\nalice:{ssha}\nbob:{{PLAIN}}hunter2::::/home/bob\n"
    ));
    let auth = &fixture.auth;
    assert_eq!(
        auth.verify_password("alice", b"s3cret").unwrap(),
        accepted("alice")
    );
    assert_eq!(
        auth.verify_password("bob", b"hunter2").unwrap(),
        accepted("bob")
    );
    assert_eq!(
        auth.verify_password("alice", b"hunter2").unwrap(),
        Verdict::Rejected
    );
    assert_eq!(
        auth.verify_password("ALICE", b"s3cret").unwrap(),
        Verdict::Rejected
    );
    assert_eq!(
        auth.verify_password("nobody", b"x").unwrap(),
        Verdict::Rejected
    );
    assert_eq!(auth.verify_password("", b"").unwrap(), Verdict::Rejected);
}

#[test]
fn apop_needs_a_cleartext_password() {
    let sha = hash_password(b"tanstaaf", Scheme::Sha256Crypt).unwrap();
    let fixture = authenticator(&format!("mrose:{{PLAIN}}tanstaaf\nhashed:{sha}\n"));
    let auth = &fixture.auth;
    let timestamp = b"<1896.697170952@dbc.mtview.ca.us>";
    let digest = b"c4c9334bac560ecc979e58001b3e22fb";
    assert_eq!(
        auth.verify_apop("mrose", timestamp, digest).unwrap(),
        accepted("mrose")
    );
    assert_eq!(
        auth.verify_apop("mrose", b"<other@host>", digest).unwrap(),
        Verdict::Rejected
    );
    assert_eq!(
        auth.verify_apop("hashed", timestamp, digest).unwrap(),
        Verdict::Rejected
    );
    assert_eq!(
        auth.verify_apop("nobody", timestamp, digest).unwrap(),
        Verdict::Rejected
    );
    assert_eq!(
        auth.verify_apop("mrose", timestamp, b"nothex").unwrap(),
        Verdict::Rejected
    );
    assert!(auth.apop_available());
}
