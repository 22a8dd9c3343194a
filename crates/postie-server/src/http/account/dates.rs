//! Times as the page shows them: `2026-12-04 21:19 UTC`.

use std::time::SystemTime;

use postie_types::UtcTime;

pub(crate) fn utc(when: SystemTime) -> String {
    UtcTime::from_system(when).short()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn known_dates() {
        assert_eq!(utc(UNIX_EPOCH), "1970-01-01 00:00 UTC");
        let when = UNIX_EPOCH + Duration::from_secs(1_796_419_140);
        assert_eq!(utc(when), "2026-12-04 21:19 UTC");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(utc(leap), "2000-02-29 00:00 UTC");
    }
}
