//! The authorization code grant with PKCE and a loopback redirect (RFC 7636, RFC 8252): postie
//! listens on 127.0.0.1 at a port of the system's choosing, the user signs in in a browser at
//! the address postie shows, and the provider redirects the browser back to that port with the
//! code, which postie exchanges, with the PKCE verifier, for the tokens.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::http::{FormAnswer, Http};
use super::tokens::Grant;
use super::{OAuthError, SignInSettings};

/// How long the browser gets to send its request once connected.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest request head read from the browser.
const MAX_HEAD: u64 = 16 * 1024;

/// What the provider's redirect brought back.
#[derive(Debug, PartialEq, Eq)]
enum Redirect {
    Code(String),
    Refused { error: String, description: String },
}

fn random_text() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Signs in `account`; `show` gets the address to open in a browser.
pub fn sign_in(
    settings: &SignInSettings,
    account: &str,
    show: &mut dyn FnMut(&str),
) -> Result<Grant, OAuthError> {
    let http = Http::new()?;
    let endpoints = settings.endpoints(&http)?;
    let local = |what: &'static str| {
        move |source| OAuthError::Local {
            what,
            path: "127.0.0.1".into(),
            source,
        }
    };
    let listener = TcpListener::bind(("127.0.0.1", 0)).map_err(local("listen on"))?;
    let port = listener.local_addr().map_err(local("listen on"))?.port();
    let redirect_uri = format!("http://127.0.0.1:{port}/callback");
    let verifier = random_text();
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let state = random_text();
    let mut params = vec![
        ("response_type", "code"),
        ("client_id", settings.client_id.as_str()),
        ("redirect_uri", redirect_uri.as_str()),
        ("scope", settings.scopes()),
        ("state", state.as_str()),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    params.extend(settings.provider.authorization_extras());
    let url = reqwest::Url::parse_with_params(&endpoints.authorization, &params).map_err(|e| {
        OAuthError::BadAnswer {
            what: "the authorization endpoint".into(),
            reason: format!("{:?} is not a URL ({e})", endpoints.authorization),
        }
    })?;
    show(url.as_str());

    let code = loop {
        let (stream, _) = listener.accept().map_err(local("accept on"))?;
        match answer_browser(stream, &state) {
            Some(Redirect::Code(code)) => break code,
            Some(Redirect::Refused { error, description }) => {
                return Err(OAuthError::SignInRefused {
                    account: account.into(),
                    error,
                    description,
                })
            }
            None => {}
        }
    };

    let mut form = vec![
        ("grant_type", "authorization_code".to_owned()),
        ("code", code),
        ("redirect_uri", redirect_uri),
        ("code_verifier", verifier),
    ];
    form.extend(settings.client_fields()?);
    let what = format!("the token request at {}", endpoints.token);
    match http.post_form(&endpoints.token, &form, &what)? {
        FormAnswer::Granted(json) => Grant::from_json(&json, &what),
        FormAnswer::Refused { error, description } => Err(OAuthError::SignInRefused {
            account: account.into(),
            error,
            description,
        }),
    }
}

/// Reads one request from the browser and answers it: the redirect carrying our `state`, or
/// `None` for anything else (a favicon, a stray or forged request), answered and ignored.
fn answer_browser(stream: TcpStream, state: &str) -> Option<Redirect> {
    let _ = stream.set_read_timeout(Some(REQUEST_TIMEOUT));
    let _ = stream.set_write_timeout(Some(REQUEST_TIMEOUT));
    let mut reader = BufReader::new((&stream).take(MAX_HEAD));
    let mut request_line = String::new();
    reader.read_line(&mut request_line).ok()?;
    // The rest of the head is read so that the browser sees its request taken whole.
    let mut line = String::new();
    while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
        line.clear();
    }
    let target = request_line.split(' ').nth(1).unwrap_or("/");
    let url = reqwest::Url::parse(&format!("http://127.0.0.1{target}")).ok();
    let outcome = url.filter(|u| u.path() == "/callback").and_then(|url| {
        let value = |key: &str| {
            url.query_pairs()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.into_owned())
        };
        if value("state").as_deref() != Some(state) {
            return None;
        }
        match (value("code"), value("error")) {
            (Some(code), None) => Some(Redirect::Code(code)),
            (_, Some(error)) => Some(Redirect::Refused {
                error,
                description: value("error_description")
                    .map_or_else(String::new, |d| format!(": {d}")),
            }),
            (None, None) => None,
        }
    });
    let (status, page) = match &outcome {
        Some(Redirect::Code(_)) => (
            "200 OK",
            "Signed in: postie has what it needs. You can close this window.",
        ),
        Some(Redirect::Refused { .. }) => (
            "200 OK",
            "The sign-in was refused; postie says why in the terminal.",
        ),
        None => ("404 Not Found", "Nothing here."),
    };
    let body = format!("<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>postie</title></head><body><p>{page}</p></body></html>\n");
    let _ = write!(
        &stream,
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// Sends `request` to a loopback listener and returns what `answer_browser` made of it,
    /// with the status line the browser saw.
    fn browse(request: &str) -> (Option<Redirect>, String) {
        let listener = TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let address = listener.local_addr().unwrap();
        let request = request.to_owned();
        let browser = std::thread::spawn(move || {
            let mut stream = TcpStream::connect(address).unwrap();
            stream.write_all(request.as_bytes()).unwrap();
            let mut answer = String::new();
            stream.read_to_string(&mut answer).unwrap();
            answer.lines().next().unwrap_or_default().to_owned()
        });
        let (stream, _) = listener.accept().unwrap();
        let outcome = answer_browser(stream, "the-state");
        (outcome, browser.join().unwrap())
    }

    #[test]
    fn only_the_redirect_with_our_state_counts() {
        let (outcome, status) =
            browse("GET /callback?code=abc&state=the-state HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(outcome, Some(Redirect::Code("abc".into())));
        assert_eq!(status, "HTTP/1.1 200 OK");

        let (outcome, _) = browse(
            "GET /callback?error=access_denied&error_description=no&state=the-state HTTP/1.1\r\n\r\n",
        );
        assert_eq!(
            outcome,
            Some(Redirect::Refused {
                error: "access_denied".into(),
                description: ": no".into()
            })
        );

        // A forged redirect (another state), a favicon, garbage: answered, ignored.
        for request in [
            "GET /callback?code=evil&state=other HTTP/1.1\r\n\r\n",
            "GET /favicon.ico HTTP/1.1\r\n\r\n",
            "\u{1}\u{2} nonsense\r\n\r\n",
        ] {
            let (outcome, status) = browse(request);
            assert_eq!(outcome, None, "{request:?}");
            assert_eq!(status, "HTTP/1.1 404 Not Found", "{request:?}");
        }
    }
}
