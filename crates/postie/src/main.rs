//! The `postie` command: wires configuration to services to shells, and nothing else.

mod cli;
mod config;
mod deliver;
mod demo;
mod fetch;
mod hostname;
mod probe;
mod serve;
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
