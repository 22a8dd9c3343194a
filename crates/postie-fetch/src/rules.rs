//! Rules: `[[rules]]` (every account) and `[[accounts.NAME.rules]]` (that account, tried
//! first), in order. A rule's conditions all hold or the rule is passed over; the first rule
//! that matches takes the message, unless it says `continue = true`, in which case its
//! copies are made and the next rules are tried too. Every condition needs only the header,
//! the size and the account, so the engine decides before downloading a body (TOP n 0): a
//! message deleted or left by a rule is never read.

use std::path::Path;

use regex::bytes::{Regex, RegexBuilder};
use serde::Deserialize;

use crate::dest::DeliverTo;
use crate::header::HeaderFields;

/// A rule as written in fetch.toml.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRule {
    name: Option<String>,
    header: Option<String>,
    is: Option<String>,
    contains: Option<String>,
    matches: Option<String>,
    #[serde(default)]
    case_sensitive: bool,
    larger_than: Option<u64>,
    smaller_than: Option<u64>,
    account: Option<String>,
    has_attachments: Option<bool>,
    action: RawAction,
    to: Option<OneOrMany>,
    command: Option<String>,
    #[serde(default, rename = "continue")]
    keep_going: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum RawAction {
    Deliver,
    Command,
    Discard,
    Leave,
    Delete,
    Stop,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// One validated rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Its `name`, or `#N` (its place among the rules it was written with).
    pub name: String,
    conditions: Vec<Condition>,
    action: RuleAction,
    /// `continue = true`: after its copies, try the next rules.
    keep_going: bool,
}

#[derive(Debug, Clone)]
enum Condition {
    Header { field: String, test: TextTest },
    LargerThan(u64),
    SmallerThan(u64),
    Account(String),
    HasAttachments(bool),
}

#[derive(Debug, Clone)]
enum TextTest {
    /// The needle is lower-cased already when the test ignores case.
    Is {
        needle: Vec<u8>,
        ignore_case: bool,
    },
    Contains {
        needle: Vec<u8>,
        ignore_case: bool,
    },
    Matches(Regex),
}

/// What a rule does with the message it takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleAction {
    /// Store it in each destination (a command is an `mda:` destination).
    Deliver(Vec<DeliverTo>),
    /// Download it and store it nowhere; it leaves the server as any fetched message.
    Discard,
    /// Do not download it; it stays on the server.
    Leave,
    /// Delete it on the server without downloading it.
    Delete,
    /// Try no further rules.
    Stop,
}

/// What the rules decided for one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// No rule took it: the account's `deliver_to`.
    Default,
    /// Stored in each of these, each exactly once.
    Deliver(Vec<DeliverTo>),
    Discard,
    Leave,
    Delete,
}

/// The decision and why: one line per rule that matched.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub disposition: Disposition,
    pub because: Vec<String>,
}

/// What the rules look at.
pub struct MessageFacts<'a> {
    pub account: &'a str,
    /// Octets, as LIST counts them.
    pub size: u64,
    pub header: &'a HeaderFields,
}

impl RawRule {
    /// Validates the rule written `position`th (from 1); paths are relative to `base`.
    pub(crate) fn validate(self, position: usize, base: &Path) -> Result<Rule, String> {
        let name = self.name.clone().unwrap_or_else(|| format!("#{position}"));
        let at = |message: String| format!("rule {name}: {message}");
        let mut conditions = Vec::new();
        let tests = [&self.is, &self.contains, &self.matches]
            .iter()
            .filter(|t| t.is_some())
            .count();
        match (&self.header, tests) {
            (Some(field), 1) => {
                let ignore_case = !self.case_sensitive;
                let needle = |text: &str| {
                    if ignore_case {
                        text.to_lowercase().into_bytes()
                    } else {
                        text.as_bytes().to_vec()
                    }
                };
                let test = if let Some(text) = &self.is {
                    TextTest::Is {
                        needle: needle(text),
                        ignore_case,
                    }
                } else if let Some(text) = &self.contains {
                    TextTest::Contains {
                        needle: needle(text),
                        ignore_case,
                    }
                } else {
                    let pattern = self.matches.as_deref().unwrap_or_default();
                    TextTest::Matches(
                        RegexBuilder::new(pattern)
                            .case_insensitive(ignore_case)
                            .build()
                            .map_err(|e| {
                                at(format!(
                                    "matches = {pattern:?} is no regular expression: {e}"
                                ))
                            })?,
                    )
                };
                conditions.push(Condition::Header {
                    field: field.clone(),
                    test,
                });
            }
            (Some(field), _) => {
                return Err(at(format!(
                    "header = {field:?} needs one of is, contains or matches"
                )))
            }
            (None, 0) => {}
            (None, _) => return Err(at("is, contains and matches need header = \"FIELD\"".into())),
        }
        conditions.extend(self.larger_than.map(Condition::LargerThan));
        conditions.extend(self.smaller_than.map(Condition::SmallerThan));
        conditions.extend(self.account.map(Condition::Account));
        conditions.extend(self.has_attachments.map(Condition::HasAttachments));

        if self.to.is_some() && self.action != RawAction::Deliver {
            return Err(at("to is for action = \"deliver\"".into()));
        }
        if self.command.is_some() && self.action != RawAction::Command {
            return Err(at("command is for action = \"command\"".into()));
        }
        let action = match self.action {
            RawAction::Deliver => {
                let to = match self.to {
                    Some(OneOrMany::One(one)) => vec![one],
                    Some(OneOrMany::Many(many)) if !many.is_empty() => many,
                    _ => {
                        return Err(at(
                            "action = \"deliver\" needs to = \"maildir:PATH\" (or a list of destinations)"
                                .into(),
                        ))
                    }
                };
                let mut destinations = Vec::new();
                for text in to {
                    let destination =
                        DeliverTo::parse(&text, base).map_err(|e| at(format!("to: {e}")))?;
                    if !destinations.contains(&destination) {
                        destinations.push(destination);
                    }
                }
                RuleAction::Deliver(destinations)
            }
            RawAction::Command => match self.command {
                Some(command) if !command.trim().is_empty() => {
                    RuleAction::Deliver(vec![DeliverTo::Mda(command)])
                }
                _ => return Err(at("action = \"command\" needs command = \"…\"".into())),
            },
            RawAction::Discard => RuleAction::Discard,
            RawAction::Leave => RuleAction::Leave,
            RawAction::Delete => RuleAction::Delete,
            RawAction::Stop => RuleAction::Stop,
        };
        if self.keep_going && !matches!(action, RuleAction::Deliver(_)) {
            return Err(at(
                "continue = true is for deliver and command: the other actions end the rules"
                    .into(),
            ));
        }
        Ok(Rule {
            name,
            conditions,
            action,
            keep_going: self.keep_going,
        })
    }
}

impl Rule {
    /// Every destination this rule can deliver to.
    pub fn destinations(&self) -> &[DeliverTo] {
        match &self.action {
            RuleAction::Deliver(destinations) => destinations,
            _ => &[],
        }
    }

    /// Why each condition holds, or `None` when one does not.
    fn matches(&self, facts: &MessageFacts<'_>) -> Option<Vec<String>> {
        let mut reasons = Vec::with_capacity(self.conditions.len());
        for condition in &self.conditions {
            reasons.push(condition.holds(facts)?);
        }
        if reasons.is_empty() {
            reasons.push("no conditions: every message".into());
        }
        Some(reasons)
    }
}

impl Condition {
    fn holds(&self, facts: &MessageFacts<'_>) -> Option<String> {
        match self {
            Condition::Header { field, test } => facts.header.values(field).find_map(|value| {
                test.accepts(value).then(|| {
                    format!(
                        "{field}: {:?} {}",
                        String::from_utf8_lossy(value),
                        test.describe()
                    )
                })
            }),
            Condition::LargerThan(limit) => {
                (facts.size > *limit).then(|| format!("{} octets, larger than {limit}", facts.size))
            }
            Condition::SmallerThan(limit) => (facts.size < *limit)
                .then(|| format!("{} octets, smaller than {limit}", facts.size)),
            Condition::Account(name) => (facts.account == name).then(|| format!("account {name}")),
            Condition::HasAttachments(wanted) => {
                (facts.header.has_attachments() == *wanted).then(|| {
                    if *wanted {
                        "has attachments".to_owned()
                    } else {
                        "has no attachments".to_owned()
                    }
                })
            }
        }
    }
}

impl TextTest {
    fn accepts(&self, value: &[u8]) -> bool {
        let folded = |ignore_case: bool| {
            if ignore_case {
                String::from_utf8_lossy(value).to_lowercase().into_bytes()
            } else {
                value.to_vec()
            }
        };
        match self {
            TextTest::Is {
                needle,
                ignore_case,
            } => folded(*ignore_case) == *needle,
            TextTest::Contains {
                needle,
                ignore_case,
            } => {
                let hay = folded(*ignore_case);
                needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle.as_slice())
            }
            TextTest::Matches(regex) => regex.is_match(value),
        }
    }

    fn describe(&self) -> String {
        match self {
            TextTest::Is { needle, .. } => format!("is {:?}", String::from_utf8_lossy(needle)),
            TextTest::Contains { needle, .. } => {
                format!("contains {:?}", String::from_utf8_lossy(needle))
            }
            TextTest::Matches(regex) => format!("matches /{}/", regex.as_str()),
        }
    }
}

/// Tries `rules` in order on one message.
pub fn decide(rules: &[Rule], facts: &MessageFacts<'_>) -> Verdict {
    let mut copies: Vec<DeliverTo> = Vec::new();
    let mut taken = false;
    let mut because = Vec::new();
    for rule in rules {
        let Some(reasons) = rule.matches(facts) else {
            continue;
        };
        because.push(format!("rule {}: {}", rule.name, reasons.join("; ")));
        let ending = match &rule.action {
            RuleAction::Deliver(destinations) => {
                for destination in destinations {
                    if !copies.contains(destination) {
                        copies.push(destination.clone());
                    }
                }
                taken = true;
                if rule.keep_going {
                    continue;
                }
                break;
            }
            RuleAction::Stop => break,
            RuleAction::Discard => Disposition::Discard,
            RuleAction::Leave => Disposition::Leave,
            RuleAction::Delete => Disposition::Delete,
        };
        return Verdict {
            disposition: ending,
            because,
        };
    }
    Verdict {
        disposition: if taken {
            Disposition::Deliver(copies)
        } else {
            Disposition::Default
        },
        because,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(text: &str) -> Result<Vec<Rule>, String> {
        #[derive(Deserialize)]
        struct Wrapper {
            rules: Vec<RawRule>,
        }
        let wrapper: Wrapper = toml::from_str(text).map_err(|e| e.to_string())?;
        wrapper
            .rules
            .into_iter()
            .enumerate()
            .map(|(i, raw)| raw.validate(i + 1, Path::new("/m")))
            .collect()
    }

    fn verdict(rules: &[Rule], account: &str, size: u64, header: &[u8]) -> Verdict {
        let header = HeaderFields::parse(header);
        decide(
            rules,
            &MessageFacts {
                account,
                size,
                header: &header,
            },
        )
    }

    #[test]
    fn the_first_matching_rule_takes_the_message() {
        let rules = rules(
            r#"
[[rules]]
name = "spam"
header = "X-Spam-Flag"
is = "yes"
action = "delete"
[[rules]]
header = "Subject"
matches = "^\\[rust(-lang)?\\]"
action = "deliver"
to = "maildir++:lists/.Rust"
[[rules]]
larger_than = 1000
account = "work"
action = "leave"
[[rules]]
header = "List-Id"
contains = "ANNOUNCE"
case_sensitive = true
action = "discard"
"#,
        )
        .unwrap();
        let v = verdict(
            &rules,
            "home",
            10,
            b"X-Spam-Flag: YES\nSubject: [rust] x\n\n",
        );
        assert_eq!(v.disposition, Disposition::Delete);
        assert_eq!(v.because, ["rule spam: X-Spam-Flag: \"YES\" is \"yes\""]);
        let v = verdict(
            &rules,
            "home",
            5000,
            b"Subject: =?utf-8?Q?[Rust-lang]_caf=C3=A9?=\n\n",
        );
        assert_eq!(
            v.disposition,
            Disposition::Deliver(vec![DeliverTo::MaildirFolder("/m/lists/.Rust".into())])
        );
        assert_eq!(
            verdict(&rules, "home", 5000, b"Subject: hi\n\n").disposition,
            Disposition::Default
        );
        assert_eq!(
            verdict(&rules, "work", 5000, b"Subject: hi\n\n").disposition,
            Disposition::Leave
        );
        assert_eq!(
            verdict(&rules, "work", 5, b"List-Id: <announce.x>\n\n").disposition,
            Disposition::Default
        );
        assert_eq!(
            verdict(&rules, "work", 5, b"List-Id: <ANNOUNCE.x>\n\n").disposition,
            Disposition::Discard
        );
    }

    #[test]
    fn continue_makes_copies_and_stop_ends_the_rules() {
        let rules = rules(
            r#"
[[rules]]
has_attachments = true
action = "deliver"
to = ["maildir:/a", "mbox:/b"]
continue = true
[[rules]]
smaller_than = 100
action = "command"
command = "notify"
continue = true
[[rules]]
header = "From"
contains = "boss"
action = "stop"
[[rules]]
action = "deliver"
to = "maildir:/a"
"#,
        )
        .unwrap();
        let v = verdict(
            &rules,
            "a",
            50,
            b"Content-Type: multipart/mixed; b=1\nFrom: Boss <b@x>\n\n",
        );
        assert_eq!(
            v.disposition,
            Disposition::Deliver(vec![
                DeliverTo::Maildir("/a".into()),
                DeliverTo::Mbox("/b".into()),
                DeliverTo::Mda("notify".into())
            ])
        );
        assert_eq!(v.because.len(), 3);
        let v = verdict(&rules, "a", 500, b"From: boss\n\n");
        assert_eq!(
            v.disposition,
            Disposition::Default,
            "stop with nothing taken: deliver_to"
        );
        let v = verdict(&rules, "a", 500, b"From: x\n\n");
        assert_eq!(
            v.disposition,
            Disposition::Deliver(vec![DeliverTo::Maildir("/a".into())])
        );
    }

    #[test]
    fn mistakes_are_named() {
        for (text, expected) in [
            (
                "[[rules]]\nheader = \"Subject\"\naction = \"leave\"\n",
                "needs one of is",
            ),
            ("[[rules]]\nis = \"x\"\naction = \"leave\"\n", "need header"),
            (
                "[[rules]]\nheader = \"S\"\nmatches = \"(\"\naction = \"leave\"\n",
                "no regular expression",
            ),
            ("[[rules]]\naction = \"deliver\"\n", "needs to ="),
            (
                "[[rules]]\naction = \"leave\"\nto = \"maildir:/x\"\n",
                "to is for",
            ),
            ("[[rules]]\naction = \"command\"\n", "needs command"),
            (
                "[[rules]]\naction = \"delete\"\ncontinue = true\n",
                "continue = true is for",
            ),
            (
                "[[rules]]\naction = \"deliver\"\nto = \"maildir++:/x/Lists\"\n",
                "begin with '.'",
            ),
            ("[[rules]]\naction = \"fly\"\n", "unknown variant"),
            ("[[rules]]\naction = \"leave\"\nsize = 3\n", "unknown field"),
        ] {
            let error = rules(text).unwrap_err();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }
}
