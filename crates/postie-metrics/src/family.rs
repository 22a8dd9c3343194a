//! Counters and gauges, alone or in families keyed by label values.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::RwLock;

use crate::text;

/// Whether a family's values only grow (counter) or go up and down (gauge).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

/// A counter without labels.
#[derive(Debug)]
pub struct Counter {
    name: &'static str,
    help: &'static str,
    value: AtomicU64,
}

impl Counter {
    pub const fn new(name: &'static str, help: &'static str) -> Self {
        Counter {
            name,
            help,
            value: AtomicU64::new(0),
        }
    }

    pub fn add(&self, n: u64) {
        self.value.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.value.load(Ordering::Relaxed)
    }

    pub(crate) fn render(&self, out: &mut String) {
        text::header(out, self.name, self.help, "counter");
        text::sample(out, self.name, &[], &[], self.get().to_string());
    }
}

/// A gauge without labels, set to what was last measured.
#[derive(Debug)]
pub struct Gauge {
    name: &'static str,
    help: &'static str,
    value: AtomicI64,
}

impl Gauge {
    pub const fn new(name: &'static str, help: &'static str) -> Self {
        Gauge {
            name,
            help,
            value: AtomicI64::new(0),
        }
    }

    pub fn set(&self, n: i64) {
        self.value.store(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> i64 {
        self.value.load(Ordering::Relaxed)
    }

    pub(crate) fn render(&self, out: &mut String) {
        text::header(out, self.name, self.help, "gauge");
        text::sample(out, self.name, &[], &[], self.get().to_string());
    }
}

/// Values keyed by `L` label values. A series appears on first use; label values are
/// `'static`, so only the program's own fixed sets can create series.
#[derive(Debug)]
pub struct Family<const L: usize> {
    name: &'static str,
    help: &'static str,
    kind: Kind,
    labels: [&'static str; L],
    series: RwLock<Vec<([&'static str; L], AtomicI64)>>,
}

impl<const L: usize> Family<L> {
    pub const fn new(
        name: &'static str,
        help: &'static str,
        kind: Kind,
        labels: [&'static str; L],
    ) -> Self {
        Family {
            name,
            help,
            kind,
            labels,
            series: RwLock::new(Vec::new()),
        }
    }

    pub fn inc(&self, values: [&'static str; L]) {
        self.add(values, 1);
    }

    /// Gauges only: one less.
    pub fn dec(&self, values: [&'static str; L]) {
        debug_assert_eq!(self.kind, Kind::Gauge);
        self.add(values, -1);
    }

    pub fn add(&self, values: [&'static str; L], n: i64) {
        {
            let series = self.series.read().unwrap_or_else(|e| e.into_inner());
            if let Some((_, value)) = series.iter().find(|(v, _)| *v == values) {
                value.fetch_add(n, Ordering::Relaxed);
                return;
            }
        }
        let mut series = self.series.write().unwrap_or_else(|e| e.into_inner());
        // Another thread may have added it between the two locks.
        match series.iter().find(|(v, _)| *v == values) {
            Some((_, value)) => {
                value.fetch_add(n, Ordering::Relaxed);
            }
            None => series.push((values, AtomicI64::new(n))),
        }
    }

    /// The current value of one series (0 if it never moved).
    pub fn get(&self, values: [&'static str; L]) -> i64 {
        let series = self.series.read().unwrap_or_else(|e| e.into_inner());
        series
            .iter()
            .find(|(v, _)| *v == values)
            .map_or(0, |(_, value)| value.load(Ordering::Relaxed))
    }

    pub(crate) fn render(&self, out: &mut String) {
        let kind = match self.kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        text::header(out, self.name, self.help, kind);
        let series = self.series.read().unwrap_or_else(|e| e.into_inner());
        let mut sorted: Vec<_> = series
            .iter()
            .map(|(values, value)| (*values, value.load(Ordering::Relaxed)))
            .collect();
        sorted.sort();
        for (values, value) in sorted {
            text::sample(out, self.name, &self.labels, &values, value.to_string());
        }
    }
}
