//! Findings, printed as they are made, and the exit status they add up to.

use std::fmt::Display;
use std::process::ExitCode;

#[derive(Debug, Default)]
pub(super) struct Report {
    errors: usize,
    warnings: usize,
}

impl Report {
    pub(super) fn ok(&mut self, what: impl Display) {
        println!("ok       {what}");
    }

    pub(super) fn warning(&mut self, what: impl Display, fix: impl Display) {
        self.warnings += 1;
        println!("warning  {what}\n         fix: {fix}");
    }

    pub(super) fn error(&mut self, what: impl Display, fix: impl Display) {
        self.errors += 1;
        println!("error    {what}\n         fix: {fix}");
    }

    pub(super) fn finish(self) -> ExitCode {
        println!("{} errors, {} warnings", self.errors, self.warnings);
        if self.errors > 0 {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        }
    }
}
