//! `postie check-config`: the configuration and everything it points to, each finding
//! printed with what to do about it. Nothing is changed.

mod database;
mod files;
mod listeners;
mod report;
mod tls;

use std::process::ExitCode;

use crate::cli::CheckConfigArgs;
use crate::privileges::{self, SystemUser};
use postie::config::Config;
use report::Report;

pub fn run(args: CheckConfigArgs) -> ExitCode {
    let mut report = Report::default();
    match Config::load_without_tls(&args.config) {
        Ok(config) => {
            report.ok(format!(
                "{}: the configuration parses",
                config.path.display()
            ));
            let user = service_user(&config, &mut report);
            tls::check(&config, user.as_ref(), &mut report);
            files::check(&config, user.as_ref(), &mut report);
            database::check(&config, &mut report);
            listeners::check(&config, &mut report);
        }
        Err(error) => report.error(
            format!("{error:#}"),
            "correct the configuration file; every key is described in the README",
        ),
    }
    report.finish()
}

/// The user `serve` will run as, from `user = …` or whoever runs this check.
fn service_user(config: &Config, report: &mut Report) -> Option<SystemUser> {
    match config.user.as_deref() {
        Some(name) => match privileges::lookup(name) {
            Ok(Some(user)) => {
                report.ok(format!(
                    "user = {name:?}: serve runs as uid {} gid {} after binding its ports",
                    user.uid, user.gid
                ));
                Some(user)
            }
            Ok(None) => {
                report.error(
                    format!("user = {name:?}: no such user"),
                    format!("create it: useradd --system --home-dir /var/lib/postie --shell /usr/sbin/nologin {name}"),
                );
                None
            }
            Err(error) => {
                report.error(
                    format!("user = {name:?}: {error:#}"),
                    "check the system's user database",
                );
                None
            }
        },
        None => {
            if privileges::is_root() {
                report.warning(
                    "no user = …: serve started as root refuses to run unless given --allow-root",
                    "add user = \"postie\" so that postie drops root after binding its ports",
                );
            }
            None
        }
    }
}
