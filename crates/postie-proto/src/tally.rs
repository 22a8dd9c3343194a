//! How many commands of each verb a session has received, for the shell's counters.

/// Every verb a tally counts; `invalid` stands for lines that did not parse as a command.
const VERBS: [&str; 17] = [
    "USER", "PASS", "APOP", "AUTH", "CAPA", "STLS", "UTF8", "STAT", "LIST", "RETR", "DELE", "NOOP",
    "RSET", "TOP", "UIDL", "QUIT", "invalid",
];

/// Counts per verb; fixed size, so a session full of commands costs no memory.
#[derive(Debug, Clone, Default)]
pub struct CommandTally {
    counts: [u64; VERBS.len()],
}

impl CommandTally {
    pub(crate) fn record(&mut self, verb: &'static str) {
        let index = VERBS
            .iter()
            .position(|v| *v == verb)
            .unwrap_or(VERBS.len() - 1);
        self.counts[index] += 1;
    }

    pub(crate) fn record_invalid(&mut self) {
        self.counts[VERBS.len() - 1] += 1;
    }

    /// The verbs seen and how often.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        VERBS
            .iter()
            .zip(self.counts)
            .filter(|(_, count)| *count > 0)
            .map(|(verb, count)| (*verb, count))
    }
}
