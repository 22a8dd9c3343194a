//! The daemon's status on a local HTTP port (`[daemon] status_listen`): `GET /status` (JSON,
//! the records of `postie fetch status --json`) and `GET /metrics` (Prometheus text). One
//! thread answers one connection at a time, with a bounded request and timeouts, and only
//! on a loopback address: the status names the accounts and their errors and asks for no
//! password.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::error::FetchError;
use crate::status::{self, AccountStatus};

/// The longest request read; a GET needs a few hundred octets.
const REQUEST_MAX: usize = 8 * 1024;
/// How long a client may take to send its request or read the answer.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

/// What the port shows: the accounts of the configuration now running and their folder.
#[derive(Debug, Clone, Default)]
pub struct StatusSource {
    pub state_dir: PathBuf,
    pub accounts: Vec<String>,
}

impl StatusSource {
    /// Each account's record; a record that cannot be read shows as its error.
    pub fn records(&self) -> Vec<AccountStatus> {
        self.accounts
            .iter()
            .map(|name| {
                AccountStatus::load(&self.state_dir, name).unwrap_or_else(|e| AccountStatus {
                    last_error: Some(e.to_string()),
                    ..AccountStatus::new(name)
                })
            })
            .collect()
    }
}

/// Binds `addr` and answers on a thread of its own for the life of the process.
pub fn serve(addr: SocketAddr, source: Arc<Mutex<StatusSource>>) -> Result<SocketAddr, FetchError> {
    if !addr.ip().is_loopback() {
        return Err(FetchError::Usage(format!(
            "[daemon] status_listen = \"{addr}\": the status port has no authentication, so it listens only on loopback (127.0.0.1 or ::1); put a reverse proxy in front of it to reach it from elsewhere"
        )));
    }
    let listener = TcpListener::bind(addr).map_err(|source| FetchError::Local {
        what: "listen for the status on",
        path: PathBuf::from(addr.to_string()),
        source,
    })?;
    let bound = listener.local_addr().unwrap_or(addr);
    std::thread::Builder::new()
        .name("status-http".into())
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                let _ = answer(stream, &source);
            }
        })
        .map_err(|source| FetchError::Local {
            what: "start the status thread for",
            path: PathBuf::from(addr.to_string()),
            source,
        })?;
    Ok(bound)
}

fn answer(mut stream: TcpStream, source: &Mutex<StatusSource>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
    stream.set_write_timeout(Some(CLIENT_TIMEOUT))?;
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && !request.windows(2).any(|w| w == b"\n\n")
    {
        if request.len() >= REQUEST_MAX {
            return respond(
                &mut stream,
                "431 Request Header Fields Too Large",
                "text/plain",
                b"request too large\n",
            );
        }
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        request.extend_from_slice(&buf[..n]);
    }
    let line = request.split(|&b| b == b'\n').next().unwrap_or_default();
    let mut words = line.trim_ascii().split(|&b| b == b' ');
    let (method, target) = (
        words.next().unwrap_or_default(),
        words.next().unwrap_or_default(),
    );
    if method != b"GET" {
        return respond(
            &mut stream,
            "405 Method Not Allowed",
            "text/plain",
            b"only GET\n",
        );
    }
    let path = target.split(|&b| b == b'?').next().unwrap_or_default();
    let records = match source.lock() {
        Ok(source) => source.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    }
    .records();
    match path {
        b"/status" => {
            let mut json = serde_json::to_vec_pretty(&records).map_err(std::io::Error::other)?;
            json.push(b'\n');
            respond(&mut stream, "200 OK", "application/json", &json)
        }
        b"/metrics" => respond(
            &mut stream,
            "200 OK",
            "text/plain; version=0.0.4",
            status::prometheus(&records).as_bytes(),
        ),
        _ => respond(
            &mut stream,
            "404 Not Found",
            "text/plain",
            b"try /status or /metrics\n",
        ),
    }
}

fn respond(stream: &mut TcpStream, status: &str, kind: &str, body: &[u8]) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    stream.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_addresses() {
        let source = Arc::new(Mutex::new(StatusSource::default()));
        let error = serve("0.0.0.0:0".parse().unwrap(), source.clone()).unwrap_err();
        assert!(error.to_string().contains("only on loopback"), "{error}");
        let bound = serve("127.0.0.1:0".parse().unwrap(), source).unwrap();
        let mut stream = TcpStream::connect(bound).unwrap();
        stream.write_all(b"POST /status HTTP/1.1\r\n\r\n").unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 405 "), "{answer}");
        let mut stream = TcpStream::connect(bound).unwrap();
        stream.write_all(&[b'x'; REQUEST_MAX]).unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");
    }
}
