//! App passwords through the authenticator: accepted by USER/PASS, PLAIN and LOGIN with their
//! label, refused once revoked; a user who requires them has the own password refused with
//! the verdict that says so, by every mechanism that proves it.

mod support;

use std::time::SystemTime;

use md5::{Digest, Md5};
use postie_auth::passwd_file::{add_app_password, require_app_passwords, revoke_app_password};
use postie_auth::{Mechanism, NewAppPassword, SaslStep, Verdict};
use support::authenticator;

fn by_app_password(label: &str) -> Verdict {
    Verdict::Accepted {
        user: "alice".into(),
        app_password: Some(label.into()),
    }
}

#[test]
fn app_passwords_log_in_until_revoked_and_can_be_required() {
    let fixture = authenticator("alice:{PLAIN}own\nbob:{PLAIN}bobs\n");
    let auth = &fixture.auth;
    let phone = NewAppPassword::generate();
    let laptop = NewAppPassword::generate();
    add_app_password(
        &fixture.path,
        "alice",
        "phone",
        phone.digest,
        SystemTime::now(),
    )
    .unwrap();
    add_app_password(
        &fixture.path,
        "alice",
        "laptop",
        laptop.digest,
        SystemTime::now(),
    )
    .unwrap();
    let phone_password = phone.password.as_bytes();

    assert_eq!(
        auth.verify_password("alice", phone_password).unwrap(),
        by_app_password("phone")
    );
    assert_eq!(
        auth.verify_password("alice", laptop.password.as_bytes())
            .unwrap(),
        by_app_password("laptop")
    );
    // Another user's app password is not a password of bob's.
    assert_eq!(
        auth.verify_password("bob", phone_password).unwrap(),
        Verdict::Rejected
    );
    assert_eq!(
        auth.verify_password("alice", b"own").unwrap(),
        Verdict::Accepted {
            user: "alice".into(),
            app_password: None
        }
    );

    let mut plain = auth.sasl(Mechanism::Plain);
    let message = [b"\0alice\0".as_slice(), phone_password].concat();
    assert_eq!(
        plain.step(auth, Some(&message)).unwrap(),
        SaslStep::Accepted {
            user: "alice".into(),
            app_password: Some("phone".into())
        }
    );
    let mut login = auth.sasl(Mechanism::Login);
    login.step(auth, None).unwrap();
    login.step(auth, Some(b"alice")).unwrap();
    assert_eq!(
        login.step(auth, Some(phone_password)).unwrap(),
        SaslStep::Accepted {
            user: "alice".into(),
            app_password: Some("phone".into())
        }
    );

    require_app_passwords(&fixture.path, "alice", true).unwrap();
    assert_eq!(
        auth.verify_password("alice", b"own").unwrap(),
        Verdict::AppPasswordRequired {
            user: "alice".into()
        }
    );
    assert_eq!(
        auth.verify_password("alice", b"wrong").unwrap(),
        Verdict::Rejected
    );
    let timestamp = b"<1896.697170952@dbc.mtview.ca.us>";
    let digest = hex::encode(Md5::digest([timestamp.as_slice(), b"own"].concat()));
    assert_eq!(
        auth.verify_apop("alice", timestamp, digest.as_bytes())
            .unwrap(),
        Verdict::AppPasswordRequired {
            user: "alice".into()
        }
    );
    assert_eq!(
        auth.verify_password("alice", phone_password).unwrap(),
        by_app_password("phone")
    );

    revoke_app_password(&fixture.path, "alice", "phone").unwrap();
    assert_eq!(
        auth.verify_password("alice", phone_password).unwrap(),
        Verdict::Rejected
    );
    assert_eq!(
        auth.verify_password("alice", laptop.password.as_bytes())
            .unwrap(),
        by_app_password("laptop")
    );
}
