//! Outlook's Autodiscover (the POX "outlook" response schema): one `Protocol` element per
//! POP3 endpoint, best first, with Type, Server, Port, LoginName, SPA, SSL, Encryption and
//! AuthRequired.

use std::fmt::Write;

use super::settings::{MailSettings, Security};
use super::xml::escape;

/// The address in an Autodiscover request body (`<EMailAddress>…</EMailAddress>`).
pub(crate) fn requested_address(body: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(body).ok()?;
    let open = "<EMailAddress>";
    let start = find_ignore_case(text, open)? + open.len();
    let length = find_ignore_case(&text[start..], "</EMailAddress>")?;
    Some(text[start..start + length].trim())
}

fn find_ignore_case(haystack: &str, needle: &str) -> Option<usize> {
    haystack
        .as_bytes()
        .windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

/// The response for a user whose login name is `login`.
pub(crate) fn render(settings: &MailSettings, login: &str) -> String {
    let mut xml = String::from(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n\
         <Autodiscover xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006\">\n\
         \x20 <Response xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a\">\n\
         \x20   <Account>\n\
         \x20     <AccountType>email</AccountType>\n\
         \x20     <Action>settings</Action>\n",
    );
    let login = escape(login);
    let host = escape(&settings.host);
    for (port, security) in settings.endpoints() {
        let encryption = match security {
            Security::Tls => "SSL",
            Security::StartTls => "TLS",
        };
        protocol(&mut xml, "POP3", &host, port, &login, encryption);
    }
    if let Some((smtp_host, port)) = &settings.smtp {
        let encryption = if *port == 465 { "SSL" } else { "TLS" };
        protocol(
            &mut xml,
            "SMTP",
            &escape(smtp_host),
            *port,
            &login,
            encryption,
        );
    }
    xml.push_str("    </Account>\n  </Response>\n</Autodiscover>\n");
    xml
}

fn protocol(xml: &mut String, kind: &str, host: &str, port: u16, login: &str, encryption: &str) {
    let _ = write!(
        xml,
        "      <Protocol>\n\
         \x20       <Type>{kind}</Type>\n\
         \x20       <Server>{host}</Server>\n\
         \x20       <Port>{port}</Port>\n\
         \x20       <LoginName>{login}</LoginName>\n\
         \x20       <DomainRequired>off</DomainRequired>\n\
         \x20       <SPA>off</SPA>\n\
         \x20       <SSL>on</SSL>\n\
         \x20       <Encryption>{encryption}</Encryption>\n\
         \x20       <AuthRequired>on</AuthRequired>\n\
         \x20     </Protocol>\n"
    );
}
