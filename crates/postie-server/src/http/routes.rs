//! What each path answers.

use super::request::{query_param, Head};
use super::settings::MailSettings;
use super::{autoconfig, autodiscover};

/// A complete response; every one closes the connection.
#[derive(Debug)]
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) content_type: &'static str,
    pub(crate) body: String,
    pub(crate) allow: Option<&'static str>,
}

impl Response {
    fn ok(content_type: &'static str, body: String) -> Self {
        Response {
            status: 200,
            content_type,
            body,
            allow: None,
        }
    }

    pub(crate) fn error(status: u16) -> Self {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: format!("{} {}\n", status, reason(status)),
            allow: None,
        }
    }

    fn method_not_allowed(allow: &'static str) -> Self {
        Response {
            allow: Some(allow),
            ..Response::error(405)
        }
    }

    /// The bytes on the wire; HEAD gets the headers alone.
    pub(crate) fn to_bytes(&self, head_only: bool) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n",
            self.status,
            reason(self.status),
            self.content_type,
            self.body.len()
        );
        if let Some(allow) = self.allow {
            out.push_str(&format!("Allow: {allow}\r\n"));
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        if !head_only {
            bytes.extend_from_slice(self.body.as_bytes());
        }
        bytes
    }
}

pub(crate) fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Error",
    }
}

const XML: &str = "application/xml; charset=utf-8";

/// Whether the request is a `/healthz` probe, which runs the server's health check first.
pub(crate) fn asks_health(head: &Head) -> bool {
    head.path == "/healthz" && matches!(head.method.as_str(), "GET" | "HEAD")
}

/// `/healthz` when the health check failed: 503, and why.
pub(crate) fn unhealthy(reason: &str) -> Response {
    Response {
        status: 503,
        content_type: "text/plain; charset=utf-8",
        body: format!("unhealthy: {}\n", reason.replace(['\r', '\n'], " ")),
        allow: None,
    }
}

pub(crate) fn respond(mail: Option<&MailSettings>, head: &Head, body: &[u8]) -> Response {
    let get = matches!(head.method.as_str(), "GET" | "HEAD");
    let path = head.path.as_str();
    match path {
        "/healthz" if get => Response::ok("text/plain; charset=utf-8", "ok\n".into()),
        "/metrics" if get => Response::ok(
            "text/plain; version=0.0.4; charset=utf-8",
            postie_metrics::render(),
        ),
        "/healthz" | "/metrics" => Response::method_not_allowed("GET, HEAD"),
        "/mail/config-v1.1.xml" | "/.well-known/autoconfig/mail/config-v1.1.xml" => {
            let Some(mail) = mail else {
                return Response::error(404);
            };
            if !get {
                return Response::method_not_allowed("GET, HEAD");
            }
            thunderbird(mail, &head.query)
        }
        _ if path.eq_ignore_ascii_case("/autodiscover/autodiscover.xml") => {
            let Some(mail) = mail else {
                return Response::error(404);
            };
            if head.method != "POST" {
                return Response::method_not_allowed("POST");
            }
            outlook(mail, body)
        }
        _ => Response::error(404),
    }
}

fn thunderbird(mail: &MailSettings, query: &str) -> Response {
    let domain = match query_param(query, "emailaddress") {
        Some(text) => match mail.address(&text) {
            Some(address) => address.domain.to_ascii_lowercase(),
            None => return Response::error(404),
        },
        None => match mail.domains.first() {
            Some(domain) => domain.clone(),
            None => mail.host.clone(),
        },
    };
    Response::ok(XML, autoconfig::render(mail, &domain))
}

fn outlook(mail: &MailSettings, body: &[u8]) -> Response {
    let Some(text) = autodiscover::requested_address(body) else {
        return Response::error(400);
    };
    match mail.address(text) {
        Some(address) => Response::ok(XML, autodiscover::render(mail, mail.login(&address))),
        None => Response::error(404),
    }
}
