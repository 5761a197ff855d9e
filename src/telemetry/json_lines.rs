//! JSON log lines, one object per event:
//! `{"timestamp","level", <the event's fields>, "target", "span": {"name", <its fields>}}`.
//!
//! tracing-subscriber's JSON formatter stores each span's fields as JSON
//! text and parses that text again for every line it prints, and builds a
//! map per event; with an access line per request that was the larger
//! part of a request's cost. Here the span's fields are stored once as
//! JSON members and spliced into each line as they are, and the event's
//! fields are written straight into the line.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

use crate::time::{now_micros, write_rfc3339, Precision};

/// The event format.
pub struct JsonLines;

/// The span-field format: `"name":value` members, comma-separated, without
/// braces, ready to be spliced into a line.
pub struct JsonMembers;

impl<'writer> FormatFields<'writer> for JsonMembers {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> fmt::Result {
        let mut members = Members::default();
        fields.record(&mut members);
        writer.write_str(&members.text)
    }

    fn add_fields(
        &self,
        current: &'writer mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        let mut members = Members::default();
        fields.record(&mut members);
        if !current.fields.is_empty() && !members.text.is_empty() {
            current.fields.push(',');
        }
        current.fields.push_str(&members.text);
        Ok(())
    }
}

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut line = String::with_capacity(256);
        line.push_str("{\"timestamp\":\"");
        write_rfc3339(&mut line, now_micros(), Precision::Micros)?;
        line.push_str("\",\"level\":\"");
        line.push_str(meta.level().as_str());
        line.push('"');
        let mut members = Members::default();
        event.record(&mut members);
        if !members.text.is_empty() {
            line.push(',');
            line.push_str(&members.text);
        }
        line.push_str(",\"target\":");
        push_json_string(&mut line, meta.target());
        if let Some(span) = ctx.lookup_current() {
            line.push_str(",\"span\":{\"name\":");
            push_json_string(&mut line, span.name());
            let extensions = span.extensions();
            if let Some(fields) = extensions.get::<FormattedFields<N>>() {
                if !fields.fields.is_empty() {
                    line.push(',');
                    line.push_str(&fields.fields);
                }
            }
            line.push('}');
        }
        line.push_str("}\n");
        writer.write_str(&line)
    }
}

/// Fields written as JSON members.
#[derive(Default)]
struct Members {
    text: String,
}

impl Members {
    fn name(&mut self, field: &Field) {
        if !self.text.is_empty() {
            self.text.push(',');
        }
        push_json_string(&mut self.text, field.name());
        self.text.push(':');
    }
}

impl Visit for Members {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.name(field);
        push_json_string(&mut self.text, value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.name(field);
        let _ = write!(self.text, "{value}");
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.name(field);
        let _ = write!(self.text, "{value}");
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.name(field);
        if value.is_finite() {
            let _ = write!(self.text, "{value}");
        } else {
            self.text.push_str("null");
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.name(field);
        self.text.push_str(if value { "true" } else { "false" });
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.name(field);
        // Written straight into the line, and escaped only if it must be
        // (messages and ids rarely need it).
        self.text.push('"');
        let start = self.text.len();
        let _ = write!(self.text, "{value:?}");
        if needs_escaping(&self.text[start..]) {
            let raw = self.text.split_off(start);
            self.text.pop();
            push_json_string(&mut self.text, &raw);
        } else {
            self.text.push('"');
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.name(field);
        push_json_string(&mut self.text, &value.to_string());
    }
}

/// What JSON requires escaped (as serde_json escapes it): quotes,
/// backslashes and control characters.
fn needs_escaping(value: &str) -> bool {
    value.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20)
}

fn push_json_string(out: &mut String, value: &str) {
    if needs_escaping(value) {
        let escaped = serde_json::to_string(value).unwrap_or_else(|_| "\"\"".into());
        out.push_str(&escaped);
    } else {
        out.push('"');
        out.push_str(value);
        out.push('"');
    }
}

#[cfg(test)]
mod tests {
    use test_support::output::Captured;
    use tracing_subscriber::prelude::*;

    use super::*;

    #[test]
    fn lines_are_json_objects_with_the_span() {
        let captured = Captured::default();
        let sink = captured.clone();
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .event_format(JsonLines)
                .fmt_fields(JsonMembers)
                .with_writer(move || sink.clone()),
        );
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("HTTP request", method = "GET", request_id = %"r-1");
            let _in = span.enter();
            tracing::info!(
                status = 200u64,
                elapsed_ms = 1.5,
                quote = "a\"b\n",
                shown = ?"tab\there",
                "request completed"
            );
        });
        tracing::subscriber::with_default(
            tracing_subscriber::registry().with(
                tracing_subscriber::fmt::layer()
                    .event_format(JsonLines)
                    .fmt_fields(JsonMembers)
                    .with_writer({
                        let sink = captured.clone();
                        move || sink.clone()
                    }),
            ),
            || tracing::warn!(ok = true, "outside any span"),
        );
        let text = String::from_utf8(captured.bytes()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert_eq!(lines[0]["message"], "request completed");
        assert_eq!(lines[0]["level"], "INFO");
        assert_eq!(lines[0]["status"], 200);
        assert_eq!(lines[0]["elapsed_ms"], 1.5);
        assert_eq!(lines[0]["quote"], "a\"b\n");
        // Debug of a str quotes and escapes it; the line escapes that again.
        assert_eq!(lines[0]["shown"], "\"tab\\there\"");
        assert_eq!(lines[0]["span"]["name"], "HTTP request");
        assert_eq!(lines[0]["span"]["request_id"], "r-1");
        assert_eq!(lines[0]["span"]["method"], "GET");
        assert!(lines[0]["timestamp"].as_str().unwrap().ends_with('Z'));
        assert_eq!(lines[1]["ok"], true);
        assert!(lines[1].get("span").is_none());
    }
}
