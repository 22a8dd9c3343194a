//! How many commands of each verb a session has received, for the shell's counters.

use crate::verb::Verb;

/// The label of lines that did not parse as a command.
const INVALID: &str = "invalid";

/// Counts per verb, indexed by [`Verb`] (whose discriminants are its places in `Verb::ALL`),
/// and of invalid lines last; fixed size, so a session full of commands costs no memory.
#[derive(Debug, Clone, Default)]
pub struct CommandTally {
    counts: [u64; Verb::ALL.len() + 1],
}

impl CommandTally {
    pub(crate) fn record(&mut self, verb: Verb) {
        self.counts[verb as usize] += 1;
    }

    pub(crate) fn record_invalid(&mut self) {
        self.counts[Verb::ALL.len()] += 1;
    }

    /// The verbs seen and how often, by keyword, `invalid` last.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        Verb::ALL
            .iter()
            .map(|verb| verb.as_str())
            .chain([INVALID])
            .zip(self.counts)
            .filter(|(_, count)| *count > 0)
    }
}
