//! Outlook's Autodiscover (the "POX" form: an XML request POSTed to
//! `/autodiscover/autodiscover.xml`, the `outlook` response schema), read without I/O: the
//! request for an address, and the POP3 server its answer names. Exchange, many hosting
//! panels (cPanel, Plesk) and postie's own `[autoconfig]` answer it.

use super::{LoginName, OAuth, ServerChoice};
use crate::target::{Target, TlsMode};

/// The request body for `address`.
pub fn request(address: &str) -> String {
    let address = address
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n\
         <Autodiscover xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006\">\n\
         \x20 <Request>\n\
         \x20   <EMailAddress>{address}</EMailAddress>\n\
         \x20   <AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema>\n\
         \x20 </Request>\n\
         </Autodiscover>\n"
    )
}

/// The first POP3 `Protocol` of an answer that is reached over TLS (implicit first, in the
/// answer's order), or `None` with the reason when there is none.
pub fn pop3_server(xml: &str) -> Result<ServerChoice, String> {
    let document =
        roxmltree::Document::parse(xml).map_err(|e| format!("not an XML document: {e}"))?;
    let root = document.root_element();
    if root.tag_name().name() != "Autodiscover" {
        return Err(format!(
            "not an Autodiscover answer (its root is <{}>)",
            root.tag_name().name()
        ));
    }
    if let Some(error) = root
        .descendants()
        .find(|n| n.tag_name().name() == "Error")
        .and_then(|n| child_text(n, "Message"))
    {
        return Err(format!("the server answered with an error: {error}"));
    }
    let mut skipped = Vec::new();
    let mut choices: Vec<ServerChoice> = Vec::new();
    for protocol in root
        .descendants()
        .filter(|n| n.tag_name().name() == "Protocol")
        .filter(|n| child_text(*n, "Type").is_some_and(|t| t.eq_ignore_ascii_case("POP3")))
    {
        match read_protocol(protocol) {
            Ok(choice) => choices.push(choice),
            Err(why) => skipped.push(why),
        }
    }
    choices.sort_by_key(|choice| choice.target.tls != TlsMode::Implicit);
    choices.into_iter().next().ok_or_else(|| {
        if skipped.is_empty() {
            "the answer names no POP3 server".to_owned()
        } else {
            format!("no usable POP3 server: {}", skipped.join("; "))
        }
    })
}

fn child_text<'a>(node: roxmltree::Node<'a, '_>, name: &str) -> Option<&'a str> {
    node.children()
        .find(|n| n.tag_name().name() == name)
        .and_then(|n| n.text())
        .map(str::trim)
        .filter(|text| !text.is_empty())
}

/// `Encryption` says which TLS (`SSL`: implicit, `TLS`: STLS, `None`); older answers give
/// only `SSL` on or off, which on port 110 can only mean STLS.
fn read_protocol(node: roxmltree::Node) -> Result<ServerChoice, String> {
    let host = child_text(node, "Server").ok_or("a POP3 entry without <Server>")?;
    let port = match child_text(node, "Port") {
        Some(port) => Some(
            port.parse::<u16>()
                .ok()
                .filter(|&p| p != 0)
                .ok_or_else(|| format!("{host}: <Port> {port:?} is not a port number"))?,
        ),
        None => None,
    };
    let ssl_on = child_text(node, "SSL").is_none_or(|ssl| ssl.eq_ignore_ascii_case("on"));
    let tls = match child_text(node, "Encryption") {
        Some(e) if e.eq_ignore_ascii_case("SSL") => TlsMode::Implicit,
        Some(e) if e.eq_ignore_ascii_case("TLS") => TlsMode::Starttls,
        Some(e) if e.eq_ignore_ascii_case("Auto") && ssl_on => TlsMode::Implicit,
        Some(_) => return Err(format!("{host}: a POP3 server without TLS (skipped)")),
        None if !ssl_on => return Err(format!("{host}: a POP3 server without TLS (skipped)")),
        None if port == Some(110) => TlsMode::Starttls,
        None => TlsMode::Implicit,
    };
    let target = Target::parse(host, tls).map_err(|e| format!("<Server>: {e}"))?;
    let target = Target {
        port: port.unwrap_or(tls.default_port()),
        ..target
    };
    let user = match child_text(node, "LoginName") {
        Some(login) => LoginName::Known(login.to_owned()),
        None => LoginName::AddressThenLocalPart,
    };
    Ok(ServerChoice {
        target,
        user,
        oauth: OAuth::No,
        note: None,
        sign_in: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What Exchange and hosting panels answer, abridged: an IMAP entry, a plain POP3 one
    /// and a POP3 one over STLS, in that order.
    const ANSWER: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006">
  <Response xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a">
    <Account>
      <AccountType>email</AccountType>
      <Action>settings</Action>
      <Protocol><Type>IMAP</Type><Server>imap.example.org</Server><Port>993</Port><SSL>on</SSL></Protocol>
      <Protocol><Type>POP3</Type><Server>pop.example.org</Server><Port>110</Port><SSL>off</SSL></Protocol>
      <Protocol><Type>POP3</Type><Server>pop.example.org</Server><Port>110</Port><LoginName>alice@example.org</LoginName><SSL>on</SSL><Encryption>TLS</Encryption></Protocol>
      <Protocol><Type>POP3</Type><Server>pop.example.org</Server><Port>995</Port><SSL>on</SSL></Protocol>
    </Account>
  </Response>
</Autodiscover>"#;

    #[test]
    fn implicit_tls_first_and_never_a_plain_server() {
        let choice = pop3_server(ANSWER).unwrap();
        assert_eq!(choice.target.to_string(), "pop.example.org:995");
        assert_eq!(choice.target.tls, TlsMode::Implicit);
        assert_eq!(choice.user, LoginName::AddressThenLocalPart);

        let only_stls = ANSWER.replace(
            "<Port>995</Port><SSL>on</SSL>",
            "<Port>995</Port><SSL>off</SSL>",
        );
        let choice = pop3_server(&only_stls).unwrap();
        assert_eq!(choice.target.tls, TlsMode::Starttls);
        assert_eq!(choice.user, LoginName::Known("alice@example.org".into()));
    }

    #[test]
    fn errors_and_other_documents_say_why() {
        let error = r#"<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"><Response><Error><ErrorCode>600</ErrorCode><Message>Invalid Request</Message></Error></Response></Autodiscover>"#;
        assert!(pop3_server(error).unwrap_err().contains("Invalid Request"));
        assert!(pop3_server("<clientConfig/>")
            .unwrap_err()
            .contains("not an Autodiscover"));
        assert!(pop3_server("not xml").is_err());
        let plain_only = ANSWER
            .replace(
                "<Encryption>TLS</Encryption>",
                "<Encryption>None</Encryption>",
            )
            .replace(
                "<Port>995</Port><SSL>on</SSL>",
                "<Port>995</Port><SSL>off</SSL>",
            );
        assert!(pop3_server(&plain_only)
            .unwrap_err()
            .contains("without TLS"));
        assert!(
            request("a<b@example.org").contains("<EMailAddress>a&lt;b@example.org</EMailAddress>")
        );
    }
}
