//! `postie fetch --test-rules FILE.eml [ACCOUNT]`: which rule takes a message and why, for
//! each account (or the one named), connecting nowhere and changing nothing.

use std::path::Path;

use anyhow::{Context, Result};
use postie_fetch::rules::{self, Disposition, MessageFacts};
use postie_fetch::{Account, ExitStatus};

pub fn run(path: &Path, accounts: &[Account]) -> Result<ExitStatus> {
    let (header, size) = postie_fetch::message_file::read(path)
        .with_context(|| format!("--test-rules {}", path.display()))?;
    println!(
        "{}: {size} octets, {}",
        path.display(),
        if header.has_attachments() {
            "attachments (by its header)"
        } else {
            "no attachments (by its header)"
        }
    );
    for account in accounts {
        let verdict = rules::decide(
            &account.rules,
            &MessageFacts {
                account: &account.name,
                size,
                header: &header,
            },
        );
        let outcome = match &verdict.disposition {
            Disposition::Default => format!(
                "no rule takes it: deliver_to {} ({} rules)",
                account.deliver_to,
                account.rules.len()
            ),
            Disposition::Deliver(to) => {
                let places: Vec<String> = to.iter().map(ToString::to_string).collect();
                format!("deliver to {}", places.join(", "))
            }
            Disposition::Discard => "download and discard".into(),
            Disposition::Leave => "leave on the server, unread".into(),
            Disposition::Delete => "delete on the server, unread".into(),
        };
        println!("account {}: {outcome}", account.name);
        for reason in &verdict.because {
            println!("  {reason}");
        }
    }
    Ok(ExitStatus::Ok)
}
