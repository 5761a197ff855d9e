//! The one time representation stored everywhere: microseconds since the Unix epoch.

/// Microseconds since the Unix epoch: the one time unit stored everywhere.
pub fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// RFC 3339 with millisecond precision, as the Public API shows times.
pub fn format_micros(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// An RFC 3339 time (any offset) as microseconds since the epoch.
pub fn parse_rfc3339_micros(text: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp_micros())
}
