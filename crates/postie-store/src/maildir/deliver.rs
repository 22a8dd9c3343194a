//! Delivery the Maildir way: write into tmp/, make it durable, then rename into new/, so that a
//! file in new/ is always complete and a crash leaves at most a stray file in tmp/.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::durable::sync_dir_shared;
use super::error::{IoContext, MaildirError};
use super::layout::{Layout, Sub};
use super::lock;
use super::name;
use super::usage::usage;
use crate::crlf::CrlfCounter;
use crate::{MessageSource, Recipient};

/// How many times a tmp/ name already taken is retried with a fresh one; names embed pid,
/// microseconds and a counter, so a clash means another host shares the Maildir under our name.
const NAME_ATTEMPTS: usize = 8;

/// Delivers `recipient`'s copy: its headers, then `message`. With a quota, the usage check
/// and the publication happen under the maildrop's quota lock, so concurrent deliveries
/// (from any process) cannot overshoot it; without one, delivery takes no lock.
pub fn deliver(
    layout: &Layout,
    recipient: &Recipient,
    message: &dyn MessageSource,
) -> Result<(), MaildirError> {
    layout.ensure()?;
    let _quota_lock = if recipient.quota.is_unlimited() {
        None
    } else {
        let path = layout.quota_lock();
        let held = lock::lock(&path).ctx("lock", &path)?;
        let used = usage(layout)?;
        let size = recipient.headers.len() as u64 + message.len();
        if recipient.quota.exceeded_by(used, size) {
            return Err(MaildirError::OverQuota {
                user: recipient.user.clone(),
                used_bytes: used.bytes,
                used_messages: used.messages,
            });
        }
        Some(held)
    };
    let mut content = message.reader().map_err(MaildirError::Source)?;
    let mut copy = (&recipient.headers[..]).chain(&mut content);
    deliver_bytes(layout, &mut copy)
}

fn deliver_bytes(layout: &Layout, message: &mut dyn Read) -> Result<(), MaildirError> {
    let (unique, tmp_path, file) = create_tmp(layout)?;
    let result = write_and_publish(layout, &unique, &tmp_path, file, message);
    if result.is_err() {
        // Nothing half-written may stay behind; the message was not published.
        let _ = fs::remove_file(&tmp_path);
    }
    result
}

fn create_tmp(layout: &Layout) -> Result<(String, PathBuf, File), MaildirError> {
    let tmp = layout.tmp();
    let mut last_error = None;
    for _ in 0..NAME_ATTEMPTS {
        let unique = name::unique();
        let path = tmp.join(&unique);
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(file) => return Ok((unique, path, file)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last_error = Some(e),
            Err(e) => return Err(e).ctx("create", &path),
        }
    }
    let clash = last_error.unwrap_or_else(|| io::Error::from(io::ErrorKind::AlreadyExists));
    Err(clash).ctx("create", &tmp)
}

fn write_and_publish(
    layout: &Layout,
    unique: &str,
    tmp_path: &Path,
    mut file: File,
    message: &mut dyn Read,
) -> Result<(), MaildirError> {
    let mut counter = CrlfCounter::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match message.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(MaildirError::Source(e)),
        };
        counter.update(&buf[..n]);
        file.write_all(&buf[..n]).ctx("write", tmp_path)?;
    }
    file.sync_all().ctx("fsync", tmp_path)?;
    drop(file);

    let final_name = name::delivered(
        unique,
        counter.raw_size(),
        counter.crlf_size(),
        counter.form(),
    );
    let new_dir = layout.sub(Sub::New);
    let final_path = new_dir.join(final_name);
    fs::rename(tmp_path, &final_path).ctx("rename", tmp_path)?;
    // Shared with the deliveries renaming into new/ at the same time (group commit).
    if let Err(e) = sync_dir_shared(&new_dir) {
        // Not known to be durable, so not delivered: the sender will retry, and a copy left
        // here would then be a duplicate.
        let _ = fs::remove_file(&final_path);
        return Err(e);
    }
    Ok(())
}
