//! The `postie` command: wires configuration to services to shells, and nothing else.

mod account_backend;
mod check_config;
mod cli;
mod deliver;
mod demo;
mod dns_records;
mod fetch;
mod fetch_add;
mod fetch_get;
mod fetch_login;
mod fetch_report;
mod fetch_status;
mod fetch_test_rules;
mod login_records;
mod manual;
mod open_files;
mod privileges;
mod probe;
mod reload;
mod serve;
mod store;
mod store_admin;
mod systemd;
mod user_db;
mod users;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::User(args) => users::user(args),
        Command::Pw(args) => users::pw(args),
        Command::DnsRecords(args) => dns_records::run(args),
        Command::Completions { shell } => manual::completions(shell),
        Command::Man => manual::man(),
        Command::Store(args) => store_admin::run(args),
        // Its exit status says whether any finding is an error.
        Command::CheckConfig(args) => return check_config::run(args),
        // Their exit statuses are sysexits codes (see `postie fetch --help`).
        Command::Fetch(args) => return fetch::run(args),
        Command::Probe(args) => return probe::run(args),
        // Its exit status is the sysexits code the MTA acts on.
        Command::Deliver(args) => return deliver::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("postie: {error:#}");
            ExitCode::FAILURE
        }
    }
}
