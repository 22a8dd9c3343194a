//! The table of large providers (`providers.toml`, built in, each entry with its source), and
//! the file `POSTIE_PROVIDERS` names, whose entries come first: which provider serves a
//! domain, or whose MX hosts a domain's mail.

use serde::Deserialize;

use super::{LoginName, OAuth, ServerChoice};
use crate::oauth::OAuthProvider;
use crate::target::{Target, TlsMode};

const BUILT_IN: &str = include_str!("providers.toml");

/// The environment variable naming a TOML file that extends the built-in provider table.
pub const PROVIDERS_VAR: &str = "POSTIE_PROVIDERS";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum UserForm {
    Address,
    LocalPart,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provider {
    pub name: String,
    #[serde(default)]
    domains: Vec<String>,
    #[serde(default)]
    mx: Vec<String>,
    server: Option<String>,
    tls: Option<TlsMode>,
    user: Option<UserForm>,
    oauth: Option<OAuth>,
    /// Where its users sign in: "google" or "microsoft" (the presets), or an issuer URL.
    oauth_provider: Option<String>,
    oauth_issuer: Option<String>,
    #[serde(default = "yes")]
    pop3: bool,
    note: Option<String>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Table {
    #[serde(default)]
    provider: Vec<Provider>,
}

/// What a provider of the table offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Offer {
    Pop3(ServerChoice),
    /// The provider has no POP3; the note says so.
    NoPop3(String),
}

impl Provider {
    fn check(&self) -> Result<(), String> {
        if self.pop3 && self.server.is_none() {
            return Err(format!(
                "provider {:?}: set server, or pop3 = false",
                self.name
            ));
        }
        self.offer_for("user@example.org").map(|_| ())
    }

    /// The settings it gives for `address`.
    pub fn offer_for(&self, address: &str) -> Result<Offer, String> {
        let note = self.note.clone();
        if !self.pop3 {
            return Ok(Offer::NoPop3(
                note.unwrap_or_else(|| format!("{} offers no POP3", self.name)),
            ));
        }
        let server = self.server.as_deref().unwrap_or_default();
        let tls = self.tls.unwrap_or(TlsMode::Implicit);
        if tls == TlsMode::None {
            return Err(format!(
                "provider {:?}: tls = \"none\" is not allowed: postie would send the password in the clear",
                self.name
            ));
        }
        let target = Target::parse(server, tls)
            .map_err(|e| format!("provider {:?}: server: {e}", self.name))?;
        let local_part = address.rsplit_once('@').map_or(address, |(local, _)| local);
        let user = match self.user.unwrap_or(UserForm::Address) {
            UserForm::Address => LoginName::Known(address.to_owned()),
            UserForm::LocalPart => LoginName::Known(local_part.to_owned()),
        };
        Ok(Offer::Pop3(ServerChoice {
            target,
            user,
            oauth: self.oauth.unwrap_or(OAuth::No),
            sign_in: self.sign_in()?,
            note,
        }))
    }

    fn sign_in(&self) -> Result<Option<OAuthProvider>, String> {
        match (&self.oauth_provider, &self.oauth_issuer) {
            (Some(_), Some(_)) => Err(format!(
                "provider {:?}: set oauth_provider or oauth_issuer, not both",
                self.name
            )),
            (Some(name), None) => OAuthProvider::preset(name)
                .map(Some)
                .map_err(|e| format!("provider {:?}: {e}", self.name)),
            (None, Some(issuer)) => Ok(Some(OAuthProvider::Issuer(issuer.clone()))),
            (None, None) => Ok(None),
        }
    }

    fn serves(&self, domain: &str) -> bool {
        self.domains.iter().any(|d| d.eq_ignore_ascii_case(domain))
    }

    fn hosts_mx(&self, mx_host: &str) -> bool {
        self.mx.iter().any(|suffix| in_family(mx_host, suffix))
    }
}

/// Whether `host` is `domain` or a name below it.
pub fn in_family(host: &str, domain: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    host == domain || host.ends_with(&format!(".{domain}"))
}

/// The providers: the `POSTIE_PROVIDERS` file's first, then the built-in ones.
#[derive(Debug)]
pub struct Providers {
    list: Vec<Provider>,
}

impl Providers {
    /// The built-in table, extended by the file `POSTIE_PROVIDERS` names.
    pub fn load() -> Result<Providers, String> {
        let mut list = Vec::new();
        if let Some(path) = std::env::var_os(PROVIDERS_VAR).filter(|p| !p.is_empty()) {
            let shown = std::path::Path::new(&path).display().to_string();
            let text = std::fs::read_to_string(&path).map_err(|e| {
                format!("{PROVIDERS_VAR}={shown}: cannot read it ({e}); fix the path or unset {PROVIDERS_VAR}")
            })?;
            list.extend(parse(&text).map_err(|e| format!("{PROVIDERS_VAR}={shown}: {e}"))?);
        }
        list.extend(parse(BUILT_IN).map_err(|e| format!("the built-in provider table: {e}"))?);
        Ok(Providers { list })
    }

    /// The provider whose mail domains include `domain`.
    pub fn for_domain(&self, domain: &str) -> Option<&Provider> {
        self.list.iter().find(|p| p.serves(domain))
    }

    /// The provider that runs the MX host `mx_host`.
    pub fn for_mx(&self, mx_host: &str) -> Option<&Provider> {
        self.list.iter().find(|p| p.hosts_mx(mx_host))
    }
}

fn parse(text: &str) -> Result<Vec<Provider>, String> {
    let table: Table = toml::from_str(text).map_err(|e| e.to_string())?;
    for provider in &table.provider {
        provider.check()?;
    }
    Ok(table.provider)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_table_reads_and_answers_by_domain_and_mx() {
        let providers = Providers {
            list: parse(BUILT_IN).unwrap(),
        };
        let gmail = providers.for_domain("GMail.com").unwrap();
        let Offer::Pop3(choice) = gmail.offer_for("a@gmail.com").unwrap() else {
            panic!("gmail has POP3");
        };
        assert_eq!(choice.target.to_string(), "pop.gmail.com:995");
        assert_eq!(choice.user, LoginName::Known("a@gmail.com".into()));
        let workspace = providers.for_mx("alt1.aspmx.l.google.com").unwrap();
        assert_eq!(workspace.name, "Google Workspace");
        let m365 = providers
            .for_mx("example-org.mail.protection.outlook.com")
            .unwrap();
        let Offer::Pop3(choice) = m365.offer_for("a@example.org").unwrap() else {
            panic!("Microsoft 365 has POP3");
        };
        assert_eq!(choice.oauth, OAuth::Required);
        assert!(matches!(
            providers
                .for_domain("icloud.com")
                .unwrap()
                .offer_for("a@icloud.com"),
            Ok(Offer::NoPop3(_))
        ));
        assert!(providers.for_mx("mx.notgoogle.com").is_none());
    }

    #[test]
    fn mistakes_in_a_table_are_named() {
        for (text, expected) in [
            ("[[provider]]\nname = \"x\"\n", "set server"),
            (
                "[[provider]]\nname = \"x\"\nserver = \"h\"\ntls = \"none\"\n",
                "clear",
            ),
            (
                "[[provider]]\nname = \"x\"\nserver = \"h\"\ncolour = 1\n",
                "colour",
            ),
        ] {
            let error = parse(text).unwrap_err();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }
}
