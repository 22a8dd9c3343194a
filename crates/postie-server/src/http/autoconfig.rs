//! Thunderbird's autoconfig file (config-v1.1.xml), as Thunderbird's readFromXML reads it:
//! `incomingServer type="pop3"` with hostname, port, socketType (SSL, STARTTLS),
//! authentication and username, and the `pop3` leave-on-server settings.

use std::fmt::Write;

use super::settings::{MailSettings, Security, UsernameForm};
use super::xml::escape;

/// The file for `domain` (from the `emailaddress` query parameter, or the first served
/// domain); Thunderbird fills the `%EMAIL…%` placeholders itself.
pub(crate) fn render(settings: &MailSettings, domain: &str) -> String {
    let mut xml = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<clientConfig version=\"1.1\">\n",
    );
    let domain = escape(domain);
    let _ = writeln!(xml, "  <emailProvider id=\"{domain}\">");
    let _ = writeln!(xml, "    <domain>{domain}</domain>");
    let _ = writeln!(
        xml,
        "    <displayName>{}</displayName>",
        escape(&settings.display_name)
    );
    let _ = writeln!(xml, "    <displayShortName>{domain}</displayShortName>");
    let username = match settings.username {
        UsernameForm::LocalPart => "%EMAILLOCALPART%",
        UsernameForm::Address => "%EMAILADDRESS%",
    };
    for (port, security) in settings.endpoints() {
        let socket_type = match security {
            Security::Tls => "SSL",
            Security::StartTls => "STARTTLS",
        };
        let _ = writeln!(xml, "    <incomingServer type=\"pop3\">");
        server_fields(&mut xml, &settings.host, port, socket_type, username);
        let _ = writeln!(xml, "      <pop3>");
        let _ = writeln!(
            xml,
            "        <leaveMessagesOnServer>{}</leaveMessagesOnServer>",
            settings.leave_on_server
        );
        if let (true, Some(days)) = (settings.leave_on_server, settings.leave_on_server_days) {
            let _ = writeln!(
                xml,
                "        <daysToLeaveMessagesOnServer>{days}</daysToLeaveMessagesOnServer>"
            );
        }
        let _ = writeln!(xml, "        <downloadOnBiff>true</downloadOnBiff>");
        let _ = writeln!(xml, "      </pop3>");
        let _ = writeln!(xml, "    </incomingServer>");
    }
    if let Some((host, port)) = &settings.smtp {
        let socket_type = if *port == 465 { "SSL" } else { "STARTTLS" };
        let _ = writeln!(xml, "    <outgoingServer type=\"smtp\">");
        server_fields(&mut xml, host, *port, socket_type, username);
        let _ = writeln!(xml, "    </outgoingServer>");
    }
    xml.push_str("  </emailProvider>\n</clientConfig>\n");
    xml
}

/// The fields an incoming and an outgoing server have alike.
fn server_fields(xml: &mut String, host: &str, port: u16, socket_type: &str, username: &str) {
    let _ = writeln!(xml, "      <hostname>{}</hostname>", escape(host));
    let _ = writeln!(xml, "      <port>{port}</port>");
    let _ = writeln!(xml, "      <socketType>{socket_type}</socketType>");
    let _ = writeln!(
        xml,
        "      <authentication>password-cleartext</authentication>"
    );
    let _ = writeln!(xml, "      <username>{username}</username>");
}
