//! Thunderbird's autoconfig document (config-v1.1.xml), read without I/O: the POP3
//! `incomingServer`s it lists, in its order, with `%EMAILADDRESS%`-style placeholders of the
//! user name filled in. IMAP and SMTP entries are not postie's business and are skipped.

use super::{LoginName, OAuth, ServerChoice};
use crate::target::{Target, TlsMode};

/// The POP3 servers a document offers, in the document's order; servers without TLS are left
/// out (postie would send the password in the clear), and so are entries it cannot read,
/// each with the reason in the second list.
pub fn pop3_servers(xml: &str, address: &str) -> Result<(Vec<ServerChoice>, Vec<String>), String> {
    let document =
        roxmltree::Document::parse(xml).map_err(|e| format!("not an XML document: {e}"))?;
    let root = document.root_element();
    if root.tag_name().name() != "clientConfig" {
        return Err(format!(
            "not an autoconfig document (its root is <{}>, not <clientConfig>)",
            root.tag_name().name()
        ));
    }
    let mut servers = Vec::new();
    let mut skipped = Vec::new();
    let providers = root.children().filter(|n| n.has_tag_name("emailProvider"));
    for server in providers
        .flat_map(|p| p.children())
        .filter(|n| n.has_tag_name("incomingServer") && n.attribute("type") == Some("pop3"))
    {
        match read_server(server, address) {
            Ok(Some(choice)) => servers.push(choice),
            Ok(None) => skipped.push("a POP3 server without TLS (skipped)".to_owned()),
            Err(why) => skipped.push(why),
        }
    }
    Ok((servers, skipped))
}

fn text<'a>(node: roxmltree::Node<'a, '_>, name: &str) -> Option<&'a str> {
    node.children()
        .find(|n| n.has_tag_name(name))
        .and_then(|n| n.text())
        .map(str::trim)
}

fn read_server(node: roxmltree::Node, address: &str) -> Result<Option<ServerChoice>, String> {
    let host = text(node, "hostname").ok_or("a POP3 server without <hostname>")?;
    let tls = match text(node, "socketType") {
        Some("SSL") => TlsMode::Implicit,
        Some("STARTTLS") => TlsMode::Starttls,
        _ => return Ok(None),
    };
    let port = match text(node, "port") {
        Some(port) => port
            .parse::<u16>()
            .ok()
            .filter(|&p| p != 0)
            .ok_or_else(|| format!("{host}: <port> {port:?} is not a port number"))?,
        None => tls.default_port(),
    };
    let host = fill_placeholders(host, address);
    let target = Target::parse(&host, tls).map_err(|e| format!("<hostname>: {e}"))?;
    let target = Target { port, ..target };
    let methods: Vec<&str> = node
        .children()
        .filter(|n| n.has_tag_name("authentication"))
        .filter_map(|n| n.text())
        .map(str::trim)
        .collect();
    let oauth = if !methods.is_empty() && methods.iter().all(|m| *m == "OAuth2") {
        OAuth::Required
    } else if methods.contains(&"OAuth2") {
        OAuth::Optional
    } else {
        OAuth::No
    };
    let user = match text(node, "username") {
        Some(user) => LoginName::Known(fill_placeholders(user, address)),
        None => LoginName::AddressThenLocalPart,
    };
    Ok(Some(ServerChoice {
        target,
        user,
        oauth,
        // Autoconfig documents name no OAuth issuer; the provider table may.
        sign_in: None,
        note: None,
    }))
}

/// `%EMAILADDRESS%`, `%EMAILLOCALPART%` and `%EMAILDOMAIN%`, as Thunderbird fills them in.
fn fill_placeholders(text: &str, address: &str) -> String {
    let (local, domain) = address.rsplit_once('@').unwrap_or((address, ""));
    text.replace("%EMAILADDRESS%", address)
        .replace("%EMAILLOCALPART%", local)
        .replace("%EMAILDOMAIN%", domain)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOCUMENT: &str = r#"<?xml version="1.0"?>
<clientConfig version="1.1">
  <emailProvider id="example.org">
    <domain>example.org</domain>
    <incomingServer type="imap">
      <hostname>imap.example.org</hostname><port>993</port><socketType>SSL</socketType>
    </incomingServer>
    <incomingServer type="pop3">
      <hostname>pop.example.org</hostname><port>110</port><socketType>plain</socketType>
    </incomingServer>
    <incomingServer type="pop3">
      <hostname>pop.%EMAILDOMAIN%</hostname><port>1995</port><socketType>SSL</socketType>
      <username>%EMAILLOCALPART%</username>
      <authentication>password-cleartext</authentication>
      <authentication>OAuth2</authentication>
    </incomingServer>
    <incomingServer type="pop3">
      <hostname>pop.example.org</hostname><port>nine</port><socketType>STARTTLS</socketType>
    </incomingServer>
  </emailProvider>
</clientConfig>"#;

    #[test]
    fn pop3_servers_with_tls_in_order_with_placeholders_filled() {
        let (servers, skipped) = pop3_servers(DOCUMENT, "alice@example.org").unwrap();
        assert_eq!(servers.len(), 1, "{servers:?}");
        let server = &servers[0];
        assert_eq!(server.target.host, "pop.example.org");
        assert_eq!(server.target.port, 1995);
        assert_eq!(server.target.tls, TlsMode::Implicit);
        assert_eq!(server.user, LoginName::Known("alice".into()));
        assert_eq!(server.oauth, OAuth::Optional);
        assert_eq!(skipped.len(), 2, "{skipped:?}");
        assert!(skipped[1].contains("nine"), "{skipped:?}");
    }

    #[test]
    fn other_documents_are_refused_with_a_reason() {
        assert!(pop3_servers("<html></html>", "a@b.c")
            .unwrap_err()
            .contains("<html>"));
        assert!(pop3_servers("not xml <", "a@b.c")
            .unwrap_err()
            .contains("XML"));
    }

    #[test]
    fn oauth_only_servers_require_oauth() {
        let xml = r#"<clientConfig><emailProvider><incomingServer type="pop3">
            <hostname>pop.example.org</hostname><socketType>SSL</socketType>
            <authentication>OAuth2</authentication></incomingServer></emailProvider></clientConfig>"#;
        let (servers, _) = pop3_servers(xml, "a@example.org").unwrap();
        assert_eq!(servers[0].oauth, OAuth::Required);
        assert_eq!(servers[0].target.port, 995);
        assert_eq!(servers[0].user, LoginName::AddressThenLocalPart);
    }
}
