//! A moment as a UTC calendar date and time, and the forms postie writes it in: RFC 5322
//! (trace headers), asctime (mbox `From ` lines) and a short form for people. UTC only,
//! so no time zone database is needed; Howard Hinnant's days-to-civil algorithm.

use std::time::{SystemTime, UNIX_EPOCH};

const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UtcTime {
    pub year: u64,
    /// 1 to 12.
    pub month: u64,
    pub day: u64,
    pub hour: u64,
    pub minute: u64,
    pub second: u64,
    /// Days since 1970-01-01 (a Thursday), for the weekday.
    days: u64,
}

impl UtcTime {
    /// Seconds since the epoch.
    pub fn from_unix(secs: u64) -> UtcTime {
        let days = secs / 86_400;
        let rest = secs % 86_400;
        let z = days + 719_468;
        let era = z / 146_097;
        let doe = z % 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        UtcTime {
            year: yoe + era * 400 + u64::from(month <= 2),
            month,
            day: doy - (153 * mp + 2) / 5 + 1,
            hour: rest / 3600,
            minute: rest % 3600 / 60,
            second: rest % 60,
            days,
        }
    }

    /// A time before the epoch is taken as the epoch.
    pub fn from_system(when: SystemTime) -> UtcTime {
        UtcTime::from_unix(when.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()))
    }

    fn weekday(&self) -> &'static str {
        WEEKDAYS[(self.days % 7) as usize]
    }

    fn month_name(&self) -> &'static str {
        MONTHS[(self.month - 1) as usize]
    }

    /// `Fri, 27 Nov 2026 09:00:00 +0000`.
    pub fn rfc5322(&self) -> String {
        format!(
            "{}, {} {} {} {:02}:{:02}:{:02} +0000",
            self.weekday(),
            self.day,
            self.month_name(),
            self.year,
            self.hour,
            self.minute,
            self.second
        )
    }

    /// `Fri Nov 27 00:20:09 2026`, the date of an mbox `From ` line.
    pub fn asctime(&self) -> String {
        format!(
            "{} {} {:2} {:02}:{:02}:{:02} {}",
            self.weekday(),
            self.month_name(),
            self.day,
            self.hour,
            self.minute,
            self.second,
            self.year
        )
    }

    /// `2026-12-04 21:19 UTC`.
    pub fn short(&self) -> String {
        format!(
            "{:04}-{:02}-{:02} {:02}:{:02} UTC",
            self.year, self.month, self.day, self.hour, self.minute
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates_in_each_form() {
        let epoch = UtcTime::from_unix(0);
        assert_eq!(epoch.rfc5322(), "Thu, 1 Jan 1970 00:00:00 +0000");
        assert_eq!(epoch.asctime(), "Thu Jan  1 00:00:00 1970");
        assert_eq!(epoch.short(), "1970-01-01 00:00 UTC");
        let leap = UtcTime::from_unix(951_782_400);
        assert_eq!(leap.rfc5322(), "Tue, 29 Feb 2000 00:00:00 +0000");
        assert_eq!(leap.asctime(), "Tue Feb 29 00:00:00 2000");
        assert_eq!(
            UtcTime::from_unix(1_795_770_000).rfc5322(),
            "Fri, 27 Nov 2026 09:00:00 +0000"
        );
        assert_eq!(
            UtcTime::from_unix(1_796_419_140).short(),
            "2026-12-04 21:19 UTC"
        );
    }
}
