//! Getting from a fresh connection to a logged-in session: greeting, CAPA, STLS, the choice of
//! a login mechanism, the login, and CAPA again (RFC 2449 asks clients to re-read it after
//! STLS and after login, because it changes).

use base64::Engine as _;
use postie_proto::client::{
    AuthFailure, ClientEvent, Greeting, SaslClient, Sent, ServerCapabilities, Status,
};
use postie_types::{Secret, UserName};

use rand::RngCore;

use crate::config::AuthChoice;
use crate::conn::Connection;
use crate::error::FetchError;
use crate::target::TlsMode;

/// What a login needs to know about the account.
pub struct LoginSpec<'a> {
    pub user: &'a UserName,
    /// The password, or the OAuth token for OAuth mechanisms.
    pub secret: &'a Secret,
    pub sasl_initial_response: bool,
}

/// The capabilities at each stage of a session, as far as the server answered CAPA.
#[derive(Debug, Clone, Default)]
pub struct Stages {
    pub before_tls: Option<ServerCapabilities>,
    pub after_tls: Option<ServerCapabilities>,
    pub after_login: Option<ServerCapabilities>,
}

impl Stages {
    /// The latest answer.
    pub fn current(&self) -> Option<&ServerCapabilities> {
        self.after_login
            .as_ref()
            .or(self.after_tls.as_ref())
            .or(self.before_tls.as_ref())
    }
}

fn unexpected(conn: &Connection, event: ClientEvent) -> FetchError {
    FetchError::Protocol {
        host: conn.target().host.clone(),
        source: postie_proto::client::ClientError::Unsolicited(format!("{event:?}")),
    }
}

pub fn greeting(conn: &mut Connection) -> Result<Greeting, FetchError> {
    match conn.event("waiting for the greeting")? {
        ClientEvent::Greeting(Ok(greeting)) => Ok(greeting),
        ClientEvent::Greeting(Err(status)) => Err(FetchError::Refused {
            host: conn.target().host.clone(),
            status: Box::new(status),
        }),
        other => Err(unexpected(conn, other)),
    }
}

/// CAPA; `None` when the server does not know it (an RFC 1939-only server).
pub fn capa(conn: &mut Connection) -> Result<Option<ServerCapabilities>, FetchError> {
    conn.session.capa();
    match conn.event("reading CAPA")? {
        ClientEvent::Capabilities(Ok(capa)) => Ok(Some(capa)),
        ClientEvent::Capabilities(Err(_)) => Ok(None),
        other => Err(unexpected(conn, other)),
    }
}

/// A single-line reply to the command just sent.
pub fn reply(conn: &mut Connection, during: &'static str) -> Result<(Sent, Status), FetchError> {
    match conn.event(during)? {
        ClientEvent::Reply { command, status } => Ok((command, status)),
        other => Err(unexpected(conn, other)),
    }
}

/// STLS and the handshake.
pub fn starttls(conn: &mut Connection) -> Result<(), FetchError> {
    conn.session.stls();
    let (_, status) = reply(conn, "STLS")?;
    if !status.ok {
        return Err(FetchError::Tls {
            host: conn.target().host.clone(),
            reason: format!(
                "the server refused STLS ({status}); it may offer implicit TLS on port 995 instead (tls = \"implicit\")"
            ),
        });
    }
    conn.handshake()?;
    conn.session.tls_started();
    Ok(())
}

/// Greeting, CAPA, STLS where asked for, CAPA again: ready for a login.
pub fn prepare(conn: &mut Connection) -> Result<(Greeting, Stages), FetchError> {
    let greeting = greeting(conn)?;
    let mut stages = Stages {
        before_tls: capa(conn)?,
        ..Stages::default()
    };
    if conn.target().tls == TlsMode::Starttls {
        if let Some(capa) = &stages.before_tls {
            if !capa.stls {
                return Err(FetchError::Tls {
                    host: conn.target().host.clone(),
                    reason: "the server does not offer STLS on this port; use tls = \"implicit\" (port 995), or tls = \"none\" if you must".into(),
                });
            }
        }
        starttls(conn)?;
        stages.after_tls = capa(conn)?;
    }
    Ok((greeting, stages))
}

/// How the login will be done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    User,
    Apop,
    Plain,
    Login,
    Scram,
    Xoauth2,
    Oauthbearer,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::User => "USER/PASS",
            Method::Apop => "APOP",
            Method::Plain => "PLAIN",
            Method::Login => "LOGIN",
            Method::Scram => "SCRAM-SHA-256",
            Method::Xoauth2 => "XOAUTH2",
            Method::Oauthbearer => "OAUTHBEARER",
        }
    }
}

/// Picks the mechanism. `plaintext_ok`: the connection is encrypted, or the account said
/// tls = "none" and so accepted that the password crosses the network readable.
pub fn choose(
    choice: AuthChoice,
    capa: Option<&ServerCapabilities>,
    greeting: &Greeting,
    plaintext_ok: bool,
    oauth: bool,
) -> Result<Method, FetchError> {
    let offers = |m: &str| capa.is_some_and(|c| c.has_sasl(m));
    let method = match choice {
        AuthChoice::User => Method::User,
        AuthChoice::Apop => Method::Apop,
        AuthChoice::Plain => Method::Plain,
        AuthChoice::Login => Method::Login,
        AuthChoice::ScramSha256 => Method::Scram,
        AuthChoice::Xoauth2 => Method::Xoauth2,
        AuthChoice::Oauthbearer => Method::Oauthbearer,
        AuthChoice::Auto if oauth => {
            if offers("OAUTHBEARER") {
                Method::Oauthbearer
            } else {
                Method::Xoauth2
            }
        }
        // Over TLS, PLAIN and USER work whatever scheme the server stores passwords in;
        // SCRAM needs SCRAM or cleartext entries, so it is only the first choice without TLS.
        AuthChoice::Auto if plaintext_ok && offers("PLAIN") => Method::Plain,
        AuthChoice::Auto if plaintext_ok && capa.is_none_or(|c| c.user) => Method::User,
        AuthChoice::Auto if offers("SCRAM-SHA-256") => Method::Scram,
        AuthChoice::Auto if greeting.apop_timestamp.is_some() => Method::Apop,
        AuthChoice::Auto if plaintext_ok => Method::User,
        AuthChoice::Auto => {
            return Err(FetchError::NoMechanism(
                "refusing to send the password unencrypted: the server offers neither SCRAM-SHA-256 nor APOP before TLS; use tls = \"implicit\" or \"starttls\"".into(),
            ))
        }
    };
    if !plaintext_ok && matches!(method, Method::User | Method::Plain | Method::Login) {
        return Err(FetchError::NoMechanism(format!(
            "refusing {} on an unencrypted connection: use TLS, or set tls = \"none\" to accept the risk",
            method.name()
        )));
    }
    if method == Method::Apop && greeting.apop_timestamp.is_none() {
        return Err(FetchError::NoMechanism(
            "auth = \"apop\", but the server's greeting has no APOP timestamp: it does not offer APOP; use auth = \"auto\"".into(),
        ));
    }
    Ok(method)
}

/// Logs in with `method`.
pub fn login(
    conn: &mut Connection,
    method: Method,
    spec: &LoginSpec<'_>,
) -> Result<(), FetchError> {
    let refused = |conn: &Connection, status: Status, hint: String| FetchError::Auth {
        host: conn.target().host.clone(),
        user: spec.user.to_string(),
        mechanism: method.name().into(),
        status: Box::new(status),
        hint,
    };
    let hint = |status: &Status| -> String {
        let text = status.text.to_ascii_lowercase();
        if text.contains("plaintext") || text.contains("tls") || text.contains("ssl") {
            "; the server wants TLS first: use tls = \"implicit\" or \"starttls\"".into()
        } else if status.is_temporary() {
            "; a temporary refusal: try again later".into()
        } else {
            "; check the user name and the password (or token)".into()
        }
    };
    match method {
        Method::User => {
            conn.session.user(spec.user);
            let (_, status) = reply(conn, "USER")?;
            if !status.ok {
                let h = hint(&status);
                return Err(refused(conn, status, h));
            }
            conn.session
                .pass(spec.secret)
                .map_err(|source| FetchError::Protocol {
                    host: conn.target().host.clone(),
                    source,
                })?;
            let (_, status) = reply(conn, "PASS")?;
            if !status.ok {
                let h = hint(&status);
                return Err(refused(conn, status, h));
            }
        }
        Method::Apop => {
            conn.session
                .apop(spec.user, spec.secret)
                .map_err(|source| FetchError::Protocol {
                    host: conn.target().host.clone(),
                    source,
                })?;
            let (_, status) = reply(conn, "APOP")?;
            if !status.ok {
                let h = hint(&status);
                return Err(refused(conn, status, h));
            }
        }
        _ => {
            let user = spec.user.as_str();
            let target = conn.target().clone();
            let client = match method {
                Method::Plain => SaslClient::plain(user, spec.secret),
                Method::Login => SaslClient::login(user, spec.secret),
                Method::Scram => SaslClient::scram_sha256(user, spec.secret, &client_nonce()),
                Method::Xoauth2 => SaslClient::xoauth2(user, spec.secret),
                _ => SaslClient::oauthbearer(user, spec.secret, &target.host, target.port),
            };
            conn.session.auth(client, spec.sasl_initial_response);
            match conn.event("AUTH")? {
                ClientEvent::Authenticated(Ok(_)) => {}
                ClientEvent::Authenticated(Err(AuthFailure::Refused(status))) => {
                    let h = hint(&status);
                    return Err(refused(conn, status, h));
                }
                ClientEvent::Authenticated(Err(AuthFailure::Mechanism { error, status })) => {
                    return Err(refused(conn, status, format!("; {error}")));
                }
                other => return Err(unexpected(conn, other)),
            }
        }
    }
    Ok(())
}

/// 24 random bytes in base64: printable, no commas, as SCRAM nonces must be.
fn client_nonce() -> String {
    let mut bytes = [0u8; 24];
    rand::thread_rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn greeting(apop: bool) -> Greeting {
        let text = if apop { "+OK hi <1.2@h>" } else { "+OK hi" };
        let status = Status::parse(text.as_bytes()).unwrap();
        Greeting {
            apop_timestamp: apop.then(|| "<1.2@h>".into()),
            status,
        }
    }

    #[test]
    fn auto_never_sends_passwords_in_the_clear() {
        let mut capa = ServerCapabilities {
            sasl: vec!["PLAIN".into(), "SCRAM-SHA-256".into()],
            ..ServerCapabilities::default()
        };
        let auto = AuthChoice::Auto;
        assert_eq!(
            choose(auto, Some(&capa), &greeting(false), true, false).unwrap(),
            Method::Plain
        );
        assert_eq!(
            choose(auto, Some(&capa), &greeting(true), false, false).unwrap(),
            Method::Scram
        );
        capa.sasl = vec!["SCRAM-SHA-256".into()];
        assert_eq!(
            choose(auto, Some(&capa), &greeting(false), true, false).unwrap(),
            Method::Scram
        );
        assert_eq!(
            choose(auto, None, &greeting(false), true, false).unwrap(),
            Method::User
        );
        assert_eq!(
            choose(auto, None, &greeting(true), false, false).unwrap(),
            Method::Apop
        );
        assert!(choose(auto, None, &greeting(false), false, false).is_err());
        assert!(choose(AuthChoice::Plain, None, &greeting(false), false, false).is_err());
        assert!(choose(AuthChoice::Apop, None, &greeting(false), true, false).is_err());
        assert_eq!(
            choose(auto, None, &greeting(false), true, true).unwrap(),
            Method::Xoauth2
        );
    }
}
