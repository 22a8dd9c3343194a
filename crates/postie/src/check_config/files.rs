//! The passwd-file (for `[auth] users = "passwd-file"`) and the maildir template (for a Maildir store), readable and writable by the user `serve`
//! runs as.

use std::fs::Metadata;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use postie_auth::PasswdFile;

use super::report::Report;
use crate::privileges::SystemUser;
use postie::config::{Config, StoreConfig, UserSource};

pub(super) fn check(config: &Config, user: Option<&SystemUser>, report: &mut Report) {
    if let (Some(user), Ok(meta)) = (user, std::fs::metadata(&config.path)) {
        if !can_read(&meta, user) {
            report.error(
                format!(
                    "{}: user {} may not read it, so serve cannot start or reload as that user",
                    config.path.display(),
                    user.name
                ),
                format!(
                    "chgrp {} {} && chmod g+r {}",
                    user.name,
                    config.path.display(),
                    config.path.display()
                ),
            );
        }
    }
    // A database's users are counted by the database check.
    if config.users == UserSource::PasswdFile {
        passwd_file(&config.passwd_file, user, report);
    }
    match &config.store {
        StoreConfig::Maildir { template } => maildir(template, user, report),
        StoreConfig::Postgres { tls: Some(tls), .. } => ca_file(&tls.ca_file, user, report),
        StoreConfig::Postgres { tls: None, .. } => {}
    }
}

/// `[postgres] ca_file` was read to load the configuration; a reload reads it again as the
/// user serve runs as.
fn ca_file(path: &Path, user: Option<&SystemUser>, report: &mut Report) {
    let (Some(user), Ok(meta)) = (user, std::fs::metadata(path)) else {
        return;
    };
    if can_read(&meta, user) {
        report.ok(format!("[postgres] ca_file {} is readable", path.display()));
    } else {
        report.error(
            format!(
                "[postgres] ca_file {}: user {} may not read it, so a reload as that user fails",
                path.display(),
                user.name
            ),
            format!("chmod a+r {} (a CA certificate is public)", path.display()),
        );
    }
}

fn passwd_file(path: &Path, user: Option<&SystemUser>, report: &mut Report) {
    match PasswdFile::open(path).and_then(|users| users.reload()) {
        Ok(count) => report.ok(format!(
            "[auth] passwd_file {}: {count} users",
            path.display()
        )),
        Err(error) => {
            report.error(
                format!("[auth] passwd_file: {error}"),
                format!(
                    "create it or fix the line named: postie user add NAME --passwd-file {}",
                    path.display()
                ),
            );
            return;
        }
    }
    let Ok(meta) = std::fs::metadata(path) else {
        return;
    };
    if meta.permissions().mode() & 0o004 != 0 {
        report.warning(
            format!(
                "[auth] passwd_file {} is readable by every local user (password hashes)",
                path.display()
            ),
            format!("chmod o-r {}", path.display()),
        );
    }
    if let Some(user) = user {
        if !can_read(&meta, user) {
            report.error(
                format!("[auth] passwd_file {}: user {} may not read it, so changes after the start are missed", path.display(), user.name),
                format!("chgrp {} {} && chmod g+r {}", user.name, path.display(), path.display()),
            );
        }
    }
}

fn maildir(template: &str, user: Option<&SystemUser>, report: &mut Report) {
    let fixed = template.split("{user}").next().unwrap_or_default();
    if template.matches("{user}").count() > 1 {
        report.warning(
            format!("[mail] maildir = {template:?} names {{user}} more than once"),
            "name it once, as in \"/var/mail/{user}/Maildir\"",
        );
    }
    if !fixed.ends_with('/') {
        report.warning(
            format!("[mail] maildir = {template:?}: {{user}} is part of a longer folder name, so users share a parent folder with names they choose"),
            "make {user} a whole folder name, as in \"/var/mail/{user}/Maildir\"",
        );
    }
    // The deepest folder that exists before the per-user part: new maildrops are made there.
    let mut base = Path::new(fixed);
    while !base.exists() {
        match base.parent() {
            Some(parent) => base = parent,
            None => break,
        }
    }
    let Ok(meta) = std::fs::metadata(base) else {
        report.error(
            format!("[mail] maildir = {template:?}: no folder of it exists"),
            format!("create it: mkdir -p {fixed}"),
        );
        return;
    };
    if base != Path::new(fixed.trim_end_matches('/')) && !fixed.is_empty() {
        report.warning(
            format!(
                "[mail] maildir: {} does not exist yet",
                fixed.trim_end_matches('/')
            ),
            format!("create it owned by the service user: mkdir -p {fixed}"),
        );
    }
    match user {
        Some(user) if !can_write(&meta, user) => report.error(
            format!(
                "[mail] maildir: user {} may not create maildrops in {}",
                user.name,
                base.display()
            ),
            format!("chown {} {}", user.name, base.display()),
        ),
        _ => report.ok(format!(
            "[mail] maildir = {template:?}: maildrops are made in {}",
            base.display()
        )),
    }
}

/// Whether `user` may read a file, by its owner, group and mode (supplementary groups and
/// ACLs aside: a "may not" is a hint).
pub(super) fn can_read(meta: &Metadata, user: &SystemUser) -> bool {
    allowed(meta, user, 0o4)
}

fn can_write(meta: &Metadata, user: &SystemUser) -> bool {
    allowed(meta, user, 0o2) && allowed(meta, user, 0o1)
}

fn allowed(meta: &Metadata, user: &SystemUser, bit: u32) -> bool {
    let mode = meta.mode();
    if user.uid == 0 {
        return true;
    }
    if meta.uid() == user.uid {
        mode & (bit << 6) != 0
    } else if meta.gid() == user.gid {
        mode & (bit << 3) != 0
    } else {
        mode & bit != 0
    }
}
