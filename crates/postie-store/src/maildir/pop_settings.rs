//! A user's POP3 settings ([`PopSettings`]) in their Maildir, `postie-pop-settings`: one
//! setting per line, `since <Unix seconds>.<microseconds>` (absent: all mail) and
//! `after-retrieval <keep|archive|trash|delete>`. Replaced whole under the index lock;
//! read at every open. A file that does not parse fails the open rather than showing mail
//! the user chose to leave behind.

use std::fs;
use std::io;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::durable::replace_file;
use super::error::MaildirError;
use super::layout::Layout;
use super::state::Locked;
use crate::{AfterRetrieval, PopSettings};

const FILE_NAME: &str = "postie-pop-settings";

pub fn read(layout: &Layout) -> Result<PopSettings, MaildirError> {
    let path = layout.root.join(FILE_NAME);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(PopSettings::default()),
        Err(e) => return Err(MaildirError::io("read", &path, e)),
    };
    let mut settings = PopSettings::default();
    for line in text.lines().filter(|line| !line.trim().is_empty()) {
        let parsed = match line.split_once(' ') {
            Some(("since", value)) => parse_time(value).map(|since| settings.since = Some(since)),
            Some(("after-retrieval", value)) => {
                AfterRetrieval::parse(value).map(|choice| settings.after_retrieval = choice)
            }
            _ => None,
        };
        if parsed.is_none() {
            let error = io::Error::new(io::ErrorKind::InvalidData, format!("bad line {line:?}"));
            return Err(MaildirError::io("parse", &path, error));
        }
    }
    Ok(settings)
}

pub fn write(layout: &Layout, settings: &PopSettings) -> Result<(), MaildirError> {
    layout.ensure()?;
    let mut text = String::new();
    if let Some(since) = settings.since {
        let since = since.duration_since(UNIX_EPOCH).unwrap_or_default();
        text.push_str(&format!(
            "since {}.{:06}\n",
            since.as_secs(),
            since.subsec_micros()
        ));
    }
    text.push_str(&format!(
        "after-retrieval {}\n",
        settings.after_retrieval.as_str()
    ));
    // The index lock makes the temporary file ours.
    let _locked = Locked::open(layout)?;
    replace_file(&layout.root.join(FILE_NAME), text.as_bytes())
}

fn parse_time(value: &str) -> Option<SystemTime> {
    let (secs, micros) = value.split_once('.')?;
    let secs: u64 = secs.parse().ok()?;
    let micros: u32 = micros.parse().ok().filter(|&m| m < 1_000_000)?;
    UNIX_EPOCH.checked_add(Duration::new(secs, micros * 1000))
}

/// When a message file arrived, from its name (`<seconds>.M<microseconds>…`, as postie,
/// Dovecot and Postfix name them); `None` for a name that does not say.
pub fn arrival(file_name: &[u8]) -> Option<SystemTime> {
    let (secs, micros) = super::name::arrival_key(file_name);
    if secs == u64::MAX {
        return None;
    }
    UNIX_EPOCH.checked_add(Duration::from_secs(secs) + Duration::from_micros(micros.min(999_999)))
}
