//! `postie fetch add`'s discovery: from a mail address to the POP3 server, its TLS mode and
//! login name, looking where Thunderbird looks and beyond, in this order:
//! 1. the domain's autoconfig document over HTTPS (`autoconfig.D`, then `D/.well-known`),
//!    then over plain HTTP (settings only, always shown for confirmation);
//! 2. the built-in provider table ([`providers`]), by the address's domain;
//! 3. the domain's MX hosts, when a provider of the table runs them (Google Workspace,
//!    Microsoft 365, …);
//! 4. RFC 6186/8314 SRV records (`_pop3s._tcp.D`, `_pop3._tcp.D`);
//! 5. Outlook's Autodiscover over HTTPS (`D/autodiscover/autodiscover.xml`, then
//!    `autodiscover.D`), [`autodiscover`];
//! 6. guessing `pop3.D`, `pop.D`, `mail.D` and `D` on 995, then 110 with STLS ([`guess`]).
//!
//! Every step is reported as it runs ([`Step`]), so the user sees where postie looked and
//! why each place gave nothing. A server named by a document or a DNS record outside the
//! domain's own names is returned with a [`Found::caution`] for the user to confirm, since
//! anyone who can answer for the domain's DNS or plain HTTP could point the user elsewhere.

pub mod autoconfig;
pub mod autodiscover;
mod guess;
mod http;
pub mod providers;

use serde::Deserialize;

use crate::oauth::OAuthProvider;
use crate::resolver::{DnsClient, ResolverError};
use crate::target::{Target, TlsMode};
use providers::{in_family, Offer, Providers};

/// The login name a source gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginName {
    Known(String),
    /// The source does not say (SRV, guessing): the login test tries the full address, then
    /// the local part.
    AddressThenLocalPart,
}

/// Whether the server takes passwords or only OAuth tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OAuth {
    /// Only OAuth: no password login.
    Required,
    /// OAuth or a password (often an app password).
    Optional,
    No,
}

/// A POP3 server as a source describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerChoice {
    pub target: Target,
    pub user: LoginName,
    pub oauth: OAuth,
    /// Where to sign in, when the source says (the provider table's oauth_provider or
    /// oauth_issuer).
    pub sign_in: Option<OAuthProvider>,
    /// What the user should know (turn POP on, use an app password).
    pub note: Option<String>,
}

/// What discovery settled on.
#[derive(Debug, Clone)]
pub struct Found {
    pub choice: ServerChoice,
    /// Where it came from, for the user.
    pub source: String,
    /// Why the user should look before trusting it, if they should.
    pub caution: Option<String>,
}

/// One place discovery looked, and what it found there or why not.
#[derive(Debug, Clone)]
pub struct Step {
    pub place: String,
    pub outcome: String,
}

/// A mail address, split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailAddress {
    pub local: String,
    pub domain: String,
}

impl MailAddress {
    pub fn parse(text: &str) -> Result<MailAddress, DiscoverError> {
        let bad = |why: &str| DiscoverError::BadAddress(text.to_owned(), why.to_owned());
        let (local, domain) = text.rsplit_once('@').ok_or_else(|| bad("no '@'"))?;
        if local.is_empty()
            || local
                .bytes()
                .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            return Err(bad("the part before '@' is empty or holds spaces"));
        }
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if !domain.contains('.') || !domain.split('.').all(label_ok) {
            return Err(bad(
                "the part after '@' is not a domain name like example.org",
            ));
        }
        Ok(MailAddress {
            local: local.to_owned(),
            domain,
        })
    }

    pub fn full(&self) -> String {
        format!("{}@{}", self.local, self.domain)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    #[error("{0:?} is not a mail address ({1}); give one like alice@example.org")]
    BadAddress(String, String),
    #[error(transparent)]
    Resolver(#[from] ResolverError),
    #[error("{0}")]
    Providers(String),
    #[error("{provider} serves {address}, but: {note}")]
    NoPop3 {
        provider: String,
        address: String,
        note: String,
    },
    #[error("found no POP3 server for {address}; postie looked at:\n{tried}\nIf you know the server, add the account by hand (see `postie fetch --help`), or test it with `postie probe pop3s://HOST`")]
    NothingFound { address: String, tried: String },
}

/// Runs the steps in order until one names a POP3 server; `show` sees each step as it ends.
pub fn discover(
    address: &MailAddress,
    show: &mut dyn FnMut(&Step),
) -> Result<Found, DiscoverError> {
    let providers = Providers::load().map_err(DiscoverError::Providers)?;
    let dns = DnsClient::from_environment()?;
    let mut steps: Vec<Step> = Vec::new();
    let mut report = |place: String, outcome: String| {
        let step = Step { place, outcome };
        show(&step);
        steps.push(step);
    };
    let domain = &address.domain;
    let full = address.full();
    let query = format!(
        "emailaddress={}",
        full.replace('%', "%25").replace('@', "%40")
    );

    let documents = [
        (
            format!("autoconfig.{domain}"),
            format!("https://autoconfig.{domain}/mail/config-v1.1.xml?{query}"),
            false,
        ),
        (
            domain.clone(),
            format!("https://{domain}/.well-known/autoconfig/mail/config-v1.1.xml?{query}"),
            false,
        ),
        (
            format!("autoconfig.{domain}"),
            format!("http://autoconfig.{domain}/mail/config-v1.1.xml?{query}"),
            true,
        ),
    ];
    for (host, url, plain_http) in documents {
        let text = match http::get(&dns, &host, &url) {
            Ok(text) => text,
            Err(why) => {
                report(url, why);
                continue;
            }
        };
        match autoconfig::pop3_servers(&text, &full) {
            Ok((servers, skipped)) => match servers.into_iter().next() {
                Some(choice) => {
                    report(
                        url.clone(),
                        format!(
                            "POP3 at {} ({})",
                            choice.target,
                            tls_name(choice.target.tls)
                        ),
                    );
                    let mut caution =
                        outside(&choice.target.host, domain, "the autoconfig document");
                    if plain_http {
                        caution = Some(format!(
                            "the autoconfig document came over plain HTTP, which anyone on the network path can change{}",
                            caution.map(|c| format!("; {c}")).unwrap_or_default()
                        ));
                    }
                    return Ok(Found {
                        choice,
                        source: format!("the autoconfig document {url}"),
                        caution,
                    });
                }
                None if skipped.is_empty() => {
                    report(url, "the document lists no POP3 server".into())
                }
                None => report(
                    url,
                    format!("no usable POP3 server: {}", skipped.join("; ")),
                ),
            },
            Err(why) => report(url, why),
        }
    }

    let offer = |provider: &providers::Provider| {
        provider.offer_for(&full).map_err(DiscoverError::Providers)
    };
    let table = "the provider table";
    match providers.for_domain(domain) {
        Some(provider) => match offer(provider)? {
            Offer::Pop3(choice) => {
                report(
                    table.into(),
                    format!("{}: POP3 at {}", provider.name, choice.target),
                );
                return Ok(Found {
                    choice,
                    source: format!("postie's provider table ({})", provider.name),
                    caution: None,
                });
            }
            Offer::NoPop3(note) => {
                report(table.into(), format!("{}: no POP3", provider.name));
                return Err(DiscoverError::NoPop3 {
                    provider: provider.name.clone(),
                    address: full,
                    note,
                });
            }
        },
        None => report(table.into(), format!("no provider for {domain}")),
    }

    let mx_place = format!("MX records of {domain}");
    match dns.mx(domain) {
        Ok(hosts) if hosts.is_empty() => report(mx_place, "none".into()),
        Ok(hosts) => {
            match hosts
                .iter()
                .find_map(|h| providers.for_mx(h).map(|p| (h, p)))
            {
                Some((host, provider)) => match offer(provider)? {
                    Offer::Pop3(choice) => {
                        report(
                            mx_place,
                            format!("{host} is {}'s: POP3 at {}", provider.name, choice.target),
                        );
                        return Ok(Found {
                            choice,
                            source: format!("the MX host {host}, run by {}", provider.name),
                            caution: None,
                        });
                    }
                    Offer::NoPop3(note) => {
                        report(
                            mx_place,
                            format!("{host} is {}'s, which has no POP3", provider.name),
                        );
                        return Err(DiscoverError::NoPop3 {
                            provider: provider.name.clone(),
                            address: full,
                            note,
                        });
                    }
                },
                None => report(
                    mx_place,
                    format!("{}: no provider of the table", hosts.join(", ")),
                ),
            }
        }
        Err(why) => report(mx_place, why),
    }

    for (service, tls) in [
        ("_pop3s._tcp", TlsMode::Implicit),
        ("_pop3._tcp", TlsMode::Starttls),
    ] {
        let name = format!("{service}.{domain}");
        match dns.srv(&name) {
            Ok(records) => match records.into_iter().next() {
                Some((host, port)) => {
                    let target = Target { host, port, tls };
                    report(
                        format!("SRV {name}"),
                        format!("POP3 at {target} ({})", tls_name(tls)),
                    );
                    let caution = outside(&target.host, domain, "the SRV record");
                    return Ok(Found {
                        choice: ServerChoice {
                            target,
                            user: LoginName::AddressThenLocalPart,
                            oauth: OAuth::No,
                            sign_in: None,
                            note: None,
                        },
                        source: format!("the DNS record SRV {name}"),
                        caution,
                    });
                }
                None => report(format!("SRV {name}"), "none".into()),
            },
            Err(why) => report(format!("SRV {name}"), why),
        }
    }

    for host in [domain.clone(), format!("autodiscover.{domain}")] {
        let url = format!("https://{host}/autodiscover/autodiscover.xml");
        let answer = http::post_xml(&dns, &host, &url, autodiscover::request(&full))
            .and_then(|text| autodiscover::pop3_server(&text));
        match answer {
            Ok(choice) => {
                report(
                    url.clone(),
                    format!(
                        "POP3 at {} ({})",
                        choice.target,
                        tls_name(choice.target.tls)
                    ),
                );
                let caution = outside(&choice.target.host, domain, "the Autodiscover answer");
                return Ok(Found {
                    choice,
                    source: format!("the Autodiscover answer of {url}"),
                    caution,
                });
            }
            Err(why) => report(url, why),
        }
    }

    let (found, tried) = guess::first_answering(domain);
    for (target, why) in tried {
        report(format!("guess {target} ({})", tls_name(target.tls)), why);
    }
    if let Some(choice) = found {
        report(
            format!("guess {} ({})", choice.target, tls_name(choice.target.tls)),
            "answers POP3 over TLS".into(),
        );
        return Ok(Found {
            source: format!("a guess: {} answers POP3", choice.target),
            choice,
            caution: None,
        });
    }
    let tried = steps
        .iter()
        .map(|s| format!("  {}: {}", s.place, s.outcome))
        .collect::<Vec<_>>()
        .join("\n");
    Err(DiscoverError::NothingFound {
        address: full,
        tried,
    })
}

pub fn tls_name(tls: TlsMode) -> &'static str {
    match tls {
        TlsMode::Implicit => "implicit TLS",
        TlsMode::Starttls => "STLS",
        TlsMode::None => "no TLS",
    }
}

fn outside(host: &str, domain: &str, what: &str) -> Option<String> {
    (!in_family(host, domain)).then(|| {
        format!("{what} names {host}, which is not a name under {domain}: make sure it is your mail provider's server")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        let a = MailAddress::parse("Alice.B@Example.ORG").unwrap();
        assert_eq!(
            (a.local.as_str(), a.domain.as_str()),
            ("Alice.B", "example.org")
        );
        for bad in [
            "alice",
            "@example.org",
            "alice@",
            "alice@localhost",
            "a b@example.org",
            "a@exa_mple.org",
        ] {
            assert!(MailAddress::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn guesses_prefer_implicit_tls() {
        let guesses = guess::candidates("example.org");
        assert_eq!(guesses[0].to_string(), "pop3.example.org:995");
        assert_eq!(guesses[3].to_string(), "example.org:995");
        assert_eq!(guesses[4].to_string(), "pop3.example.org:110");
        assert_eq!(guesses[4].tls, TlsMode::Starttls);
    }
}
