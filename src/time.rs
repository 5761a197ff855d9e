//! The one time representation stored everywhere: microseconds since the Unix epoch.

/// Microseconds since the Unix epoch: the one time unit stored everywhere.
pub fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// RFC 3339 with millisecond precision, as the Public API shows times.
pub fn format_micros(micros: i64) -> String {
    let mut text = String::with_capacity(24);
    write_rfc3339(&mut text, micros, Precision::Millis).expect("a String takes any text");
    text
}

/// Digits of a second's fraction that `write_rfc3339` shows (truncated).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    Millis,
    Micros,
}

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// `micros` as RFC 3339 in UTC (`2026-12-03T19:38:47.978Z`), written
/// without a String of its own: every API answer and log line shows times.
/// The same text as chrono's `to_rfc3339_opts(…, true)`, which formats the
/// years this does not (before 0 or after 9999).
pub fn write_rfc3339(
    out: &mut impl std::fmt::Write,
    micros: i64,
    precision: Precision,
) -> std::fmt::Result {
    let (year, month, day) = civil_from_days(micros.div_euclid(MICROS_PER_DAY));
    if !(0..=9999).contains(&year) {
        return out.write_str(&chrono_rfc3339(micros, precision));
    }
    let of_day = micros.rem_euclid(MICROS_PER_DAY);
    let second = of_day / 1_000_000;
    let (fraction, digits) = match precision {
        Precision::Millis => ((of_day % 1_000_000) / 1_000, 3),
        Precision::Micros => (of_day % 1_000_000, 6),
    };
    let mut text = *b"0000-00-00T00:00:00.000000Z";
    let mut put = |end: usize, width: usize, mut value: i64| {
        for slot in text[end - width..end].iter_mut().rev() {
            *slot = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    put(4, 4, year);
    put(7, 2, month);
    put(10, 2, day);
    put(13, 2, second / 3600);
    put(16, 2, second / 60 % 60);
    put(19, 2, second % 60);
    put(20 + digits, digits, fraction);
    let len = 20 + digits;
    text[len] = b'Z';
    out.write_str(std::str::from_utf8(&text[..=len]).map_err(|_| std::fmt::Error)?)
}

/// chrono's text for what `write_rfc3339` writes itself; a time outside
/// chrono's range is shown as the epoch.
fn chrono_rfc3339(micros: i64, precision: Precision) -> String {
    let seconds = match precision {
        Precision::Millis => chrono::SecondsFormat::Millis,
        Precision::Micros => chrono::SecondsFormat::Micros,
    };
    chrono::DateTime::from_timestamp_micros(micros)
        .unwrap_or_default()
        .to_rfc3339_opts(seconds, true)
}

/// (year, month, day) of a day counted from 1970-01-01, in the proleptic
/// Gregorian calendar: Howard Hinnant's `civil_from_days`
/// (https://howardhinnant.github.io/date_algorithms.html).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// An RFC 3339 time (any offset) as microseconds since the epoch.
pub fn parse_rfc3339_micros(text: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp_micros())
}

/// A stored time (microseconds since the epoch) that the API shows as
/// RFC 3339 with millisecond precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, utoipa::ToSchema)]
#[schema(value_type = String, format = DateTime)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn now() -> Timestamp {
        Timestamp(now_micros())
    }

    pub fn micros(self) -> i64 {
        self.0
    }
}

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write_rfc3339(f, self.0, Precision::Millis)
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl crate::db::ToArg for Timestamp {
    fn to_arg(&self) -> crate::db::Arg<'_> {
        crate::db::Arg::Int(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// (ours, chrono's) at each precision.
    fn both_texts(micros: i64) -> [(String, String); 2] {
        [Precision::Millis, Precision::Micros].map(|precision| {
            let mut ours = String::new();
            write_rfc3339(&mut ours, micros, precision).unwrap();
            (ours, chrono_rfc3339(micros, precision))
        })
    }

    #[test]
    fn edges_of_days_years_and_the_fast_range() {
        let edges = [
            0,
            -1,
            1,
            951_782_400_000_000 - 1, // 2000-02-28T23:59:59.999999Z
            951_868_800_000_000,     // 2000-03-01
            1_798_761_599_999_999,   // 2026-12-31T23:59:59.999999Z
            -62_167_219_200_000_000, // 0000-01-01
            -62_167_219_200_000_001, // the last microsecond of year -1
            253_402_300_799_999_999, // 9999-12-31T23:59:59.999999Z
            253_402_300_800_000_000, // +10000-01-01
            i64::MIN,
            i64::MAX,
        ];
        for micros in edges {
            for (ours, chrono) in both_texts(micros) {
                assert_eq!(ours, chrono);
            }
        }
        assert_eq!(format_micros(0), "1970-01-01T00:00:00.000Z");
    }

    proptest! {
        #[test]
        fn the_same_text_as_chrono(micros in -70_000_000_000_000_000i64..260_000_000_000_000_000) {
            for (ours, chrono) in both_texts(micros) {
                prop_assert_eq!(ours, chrono);
            }
        }
    }
}
