//! How much a Maildir holds, for quota checks: the messages of new/ and cur/ and their sizes,
//! from the `,S=` of their names (written at delivery), with a stat only for names without one.

use std::io;

use super::error::{IoContext, MaildirError};
use super::layout::Layout;
use super::name;
use super::scan::scan;
use crate::Usage;

pub fn usage(layout: &Layout) -> Result<Usage, MaildirError> {
    let mut usage = Usage::default();
    for file in scan(layout)?.values() {
        let bytes = match name::size_field(&file.name, b'S') {
            Some(size) => size,
            None => {
                let path = file.path(layout);
                match std::fs::symlink_metadata(&path) {
                    Ok(meta) => meta.len(),
                    // Expunged or moved since the directory was read: it holds nothing now,
                    // or is counted under its new name by the next check.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e).ctx("stat", &path),
                }
            }
        };
        usage.bytes = usage.bytes.saturating_add(bytes);
        usage.messages += 1;
    }
    Ok(usage)
}
