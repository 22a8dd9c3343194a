//! The rate of failed logins across all users and addresses of this front end, which tells
//! password spraying (a few guesses for each of many users, from many addresses) from the
//! background of mistypes and stale passwords.

use std::sync::Mutex;
use std::time::{Duration, Instant};

const MINUTE: Duration = Duration::from_secs(60);

/// Failures counted in one-minute buckets; the rate is the current bucket plus the part of
/// the previous one that still lies within the last minute, so it neither jumps to zero at a
/// bucket's start nor needs a timestamp per failure.
#[derive(Debug)]
pub(crate) struct SprayGauge {
    buckets: Mutex<Buckets>,
}

#[derive(Debug)]
struct Buckets {
    started: Instant,
    current: u32,
    previous: u32,
}

impl Default for SprayGauge {
    fn default() -> Self {
        SprayGauge {
            buckets: Mutex::new(Buckets {
                started: Instant::now(),
                current: 0,
                previous: 0,
            }),
        }
    }
}

impl SprayGauge {
    pub(crate) fn count(&self, now: Instant) {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        buckets.advance(now);
        buckets.current = buckets.current.saturating_add(1);
    }

    /// 0 while failures come at `per_minute` or slower; above it, 1 plus the number of times
    /// the rate doubles it (2 at twice the rate, 3 at four times).
    pub(crate) fn level(&self, now: Instant, per_minute: u32) -> u32 {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        buckets.advance(now);
        let into_current = now.saturating_duration_since(buckets.started).as_secs_f64();
        let rate = f64::from(buckets.current)
            + f64::from(buckets.previous) * (1.0 - into_current / MINUTE.as_secs_f64()).max(0.0);
        let threshold = f64::from(per_minute.max(1));
        if rate <= threshold {
            return 0;
        }
        // At most 16: the delay's doublings stop there anyway.
        1 + ((rate / threshold).log2().floor() as u32).min(15)
    }
}

impl Buckets {
    fn advance(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.started);
        if elapsed < MINUTE {
            return;
        }
        self.previous = if elapsed < 2 * MINUTE {
            self.current
        } else {
            0
        };
        self.current = 0;
        let whole = elapsed.as_secs() / 60;
        self.started += MINUTE * u32::try_from(whole).unwrap_or(u32::MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_fades_over_the_following_minute() {
        let gauge = SprayGauge::default();
        let start = Instant::now();
        for _ in 0..100 {
            gauge.count(start);
        }
        assert_eq!(gauge.level(start, 100), 0);
        gauge.count(start);
        assert_eq!(gauge.level(start, 50), 2);
        assert_eq!(gauge.level(start + Duration::from_secs(61), 50), 1);
        assert_eq!(gauge.level(start + Duration::from_secs(100), 50), 0);
        assert_eq!(gauge.level(start + Duration::from_secs(600), 1), 0);
    }
}
