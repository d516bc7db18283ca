//! Calendar time without a time library: seconds since the Unix epoch as a UTC date and time
//! (proleptic Gregorian), for the `current_time` tool and chat templates' `strftime_now`.

use std::time::{SystemTime, UNIX_EPOCH};

/// A UTC date and time, to the second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UtcDateTime {
    /// The year.
    pub year: i64,
    /// 1 to 12.
    pub month: u32,
    /// 1 to 31.
    pub day: u32,
    /// 0 to 23.
    pub hour: u32,
    /// 0 to 59.
    pub minute: u32,
    /// 0 to 59.
    pub second: u32,
    /// 1 to 366.
    pub day_of_year: u32,
    /// 0 = Sunday … 6 = Saturday.
    pub weekday: u32,
}

impl UtcDateTime {
    /// `secs` after 1970-01-01T00:00:00Z.
    pub fn from_unix(secs: u64) -> Self {
        let days = (secs / 86_400) as i64;
        let rem = secs % 86_400;
        // Howard Hinnant's civil_from_days.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
        const CUMULATIVE: [i64; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
        let day_of_year = CUMULATIVE[(month - 1) as usize] + day + i64::from(leap && month > 2);
        Self {
            year,
            month: month as u32,
            day: day as u32,
            hour: (rem / 3600) as u32,
            minute: (rem / 60 % 60) as u32,
            second: (rem % 60) as u32,
            day_of_year: day_of_year as u32,
            // 1970-01-01 was a Thursday.
            weekday: (days + 4).rem_euclid(7) as u32,
        }
    }

    /// Now (the epoch when the clock is before it).
    pub fn now() -> Self {
        Self::from_unix(SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()))
    }

    /// `YYYY-MM-DDTHH:MM:SSZ`.
    pub fn iso8601(&self) -> String {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants() {
        assert_eq!(UtcDateTime::from_unix(0).iso8601(), "1970-01-01T00:00:00Z");
        let t = UtcDateTime::from_unix(951_827_696); // 2000-02-29T12:34:56Z
        assert_eq!(t.iso8601(), "2000-02-29T12:34:56Z");
        assert_eq!((t.day_of_year, t.weekday), (60, 2));
        let t = UtcDateTime::from_unix(1_796_169_600); // 2026-12-02T00:00:00Z
        assert_eq!((t.year, t.month, t.day, t.weekday, t.day_of_year), (2026, 12, 2, 3, 336));
    }
}
