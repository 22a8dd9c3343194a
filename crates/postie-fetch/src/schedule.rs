//! When an account is polled: its interval (`interval = "5m"`, or the daemon's `--interval`),
//! stretched by exponential backoff after consecutive failures so that a server that is down
//! is not hammered, and reset by the first success.

use std::time::Duration;

use serde::Deserialize;

/// The longest a failing account waits between polls, unless its interval is longer.
pub const BACKOFF_CAP: Duration = Duration::from_secs(3600);

/// An `interval` as written in the accounts file: seconds, or a text such as "90s", "5m",
/// "2h", "1d".
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum IntervalSetting {
    Seconds(u64),
    Text(String),
}

impl IntervalSetting {
    pub fn to_duration(&self) -> Result<Duration, String> {
        let secs = match self {
            IntervalSetting::Seconds(secs) => *secs,
            IntervalSetting::Text(text) => parse_interval(text)?,
        };
        if secs == 0 {
            return Err("interval must be at least one second".into());
        }
        Ok(Duration::from_secs(secs))
    }
}

/// "300", "300s", "5m", "2h", "1d" to seconds.
fn parse_interval(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let unit = match &text[digits..] {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => 0,
    };
    let number: Option<u64> = text[..digits].parse().ok();
    match number.and_then(|n| n.checked_mul(unit)) {
        Some(secs) if unit > 0 => Ok(secs),
        _ => Err(format!(
            "interval {text:?}: write seconds (300) or a number with s, m, h or d (\"5m\")"
        )),
    }
}

/// How long to wait before the next poll after `consecutive_failures` failures in a row:
/// the interval, doubled for each failure, at most [`BACKOFF_CAP`] (or the interval when it
/// is longer).
pub fn next_delay(interval: Duration, consecutive_failures: u32) -> Duration {
    if consecutive_failures == 0 {
        return interval;
    }
    let factor = 1u32 << consecutive_failures.min(16);
    interval
        .saturating_mul(factor)
        .min(BACKOFF_CAP.max(interval))
}

/// The interval an account is polled at: its own (or the daemon's), but never shorter than
/// the LOGIN-DELAY its server announced, as a sooner login would only be refused.
pub fn honouring_login_delay(interval: Duration, login_delay: Option<Duration>) -> Duration {
    interval.max(login_delay.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_forms() {
        for (text, secs) in [
            ("300", 300),
            ("90s", 90),
            ("5m", 300),
            ("2h", 7200),
            ("1d", 86_400),
        ] {
            assert_eq!(
                IntervalSetting::Text(text.into()).to_duration(),
                Ok(Duration::from_secs(secs)),
                "{text}"
            );
        }
        assert_eq!(
            IntervalSetting::Seconds(42).to_duration(),
            Ok(Duration::from_secs(42))
        );
        for bad in ["", "5 minutes", "m", "-5m", "0", "99999999999999999999d"] {
            assert!(
                IntervalSetting::Text(bad.into()).to_duration().is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn never_sooner_than_the_login_delay() {
        let minute = Duration::from_secs(60);
        let quarter = Duration::from_secs(900);
        assert_eq!(honouring_login_delay(minute, Some(quarter)), quarter);
        assert_eq!(honouring_login_delay(quarter, Some(minute)), quarter);
        assert_eq!(honouring_login_delay(minute, None), minute);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_resets() {
        let minute = Duration::from_secs(60);
        let delays: Vec<u64> = (0..9).map(|n| next_delay(minute, n).as_secs()).collect();
        assert_eq!(delays, [60, 120, 240, 480, 960, 1920, 3600, 3600, 3600]);
        assert_eq!(next_delay(minute, u32::MAX), BACKOFF_CAP);
        let day = Duration::from_secs(86_400);
        assert_eq!(
            next_delay(day, 3),
            day,
            "a long interval is never shortened"
        );
    }
}
