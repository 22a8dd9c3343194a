//! `postie fetch --get NAME UIDL…`: stubs replaced by their whole messages, in place.

use anyhow::{bail, Result};
use postie_fetch::{Account, ExitStatus, RunOptions};

pub fn run(account: &Account, options: &RunOptions, uidls: &[String]) -> Result<ExitStatus> {
    if uidls.is_empty() {
        bail!(
            "--get {0} needs the UIDLs of the stubs to complete (postie fetch --list {0} shows them)",
            account.name
        );
    }
    let outcome = postie_fetch::stubs::get(account, options, uidls)?;
    eprintln!(
        "postie fetch: {}: {} stubs replaced by their whole message",
        account.name, outcome.completed
    );
    for problem in &outcome.problems {
        eprintln!("postie fetch: {}: {problem}", account.name);
    }
    Ok(if outcome.problems.is_empty() {
        ExitStatus::Ok
    } else {
        ExitStatus::TempFail
    })
}
