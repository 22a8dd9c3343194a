//! Histograms of durations with fixed buckets.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::text;

/// Counts of observations per bucket (upper bounds in seconds), their sum and number.
#[derive(Debug)]
pub struct Histogram<const B: usize> {
    name: &'static str,
    help: &'static str,
    bounds: [f64; B],
    counts: [AtomicU64; B],
    /// Observations above the last bound.
    overflow: AtomicU64,
    sum_micros: AtomicU64,
}

impl<const B: usize> Histogram<B> {
    /// `bounds` in seconds, ascending.
    pub const fn new(name: &'static str, help: &'static str, bounds: [f64; B]) -> Self {
        Histogram {
            name,
            help,
            bounds,
            counts: [const { AtomicU64::new(0) }; B],
            overflow: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, duration: Duration) {
        let seconds = duration.as_secs_f64();
        match self.bounds.iter().position(|&bound| seconds <= bound) {
            Some(i) => self.counts[i].fetch_add(1, Ordering::Relaxed),
            None => self.overflow.fetch_add(1, Ordering::Relaxed),
        };
        let micros = u64::try_from(duration.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// How many observations were made.
    pub fn count(&self) -> u64 {
        self.counts
            .iter()
            .chain([&self.overflow])
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }

    pub(crate) fn render(&self, out: &mut String) {
        text::header(out, self.name, self.help, "histogram");
        let bucket = format!("{}_bucket", self.name);
        let mut cumulative = 0;
        for (bound, count) in self.bounds.iter().zip(&self.counts) {
            cumulative += count.load(Ordering::Relaxed);
            let le = bound.to_string();
            text::sample(out, &bucket, &["le"], &[&le], cumulative.to_string());
        }
        cumulative += self.overflow.load(Ordering::Relaxed);
        text::sample(out, &bucket, &["le"], &["+Inf"], cumulative.to_string());
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        text::sample(
            out,
            &format!("{}_sum", self.name),
            &[],
            &[],
            sum.to_string(),
        );
        text::sample(
            out,
            &format!("{}_count", self.name),
            &[],
            &[],
            cumulative.to_string(),
        );
    }
}
