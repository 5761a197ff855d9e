//! JSON log lines, one object per event:
//! `{"timestamp","level", <the event's fields>, "target", "span": {"name", <its fields>}}`.
//!
//! tracing-subscriber's JSON formatter stores each span's fields as JSON
//! text and parses that text again for every line it prints, and builds a
//! map per event; with an access line per request that was the larger
//! part of a request's cost. Here the span's fields are stored once as
//! JSON members and spliced into each line as they are, and the event's
//! fields are written straight into the line.

use std::fmt::{self, Write};

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
        fields.record(&mut Members::new(&mut writer, true));
        Ok(())
    }

    fn add_fields(
        &self,
        current: &'writer mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        let first = current.fields.is_empty();
        fields.record(&mut Members::new(&mut current.fields, first));
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
        let line = &mut writer;
        line.write_str("{\"timestamp\":\"")?;
        write_rfc3339(line, now_micros(), Precision::Micros)?;
        line.write_str("\",\"level\":\"")?;
        line.write_str(meta.level().as_str())?;
        line.write_char('"')?;
        event.record(&mut Members::new(line, false));
        line.write_str(",\"target\":")?;
        push_json_string(line, meta.target())?;
        if let Some(span) = ctx.lookup_current() {
            line.write_str(",\"span\":{\"name\":")?;
            push_json_string(line, span.name())?;
            let extensions = span.extensions();
            if let Some(fields) = extensions.get::<FormattedFields<N>>() {
                if !fields.fields.is_empty() {
                    line.write_char(',')?;
                    line.write_str(&fields.fields)?;
                }
            }
            line.write_char('}')?;
        }
        line.write_str("}\n")
    }
}

/// Fields written as JSON members straight into the output, numbers as
/// serde_json writes them (itoa, ryu). `Visit` cannot return an error: the
/// outputs are Strings, and a failing one fails the formatter's next write.
struct Members<'a, W: Write> {
    out: &'a mut W,
    first: bool,
}

impl<'a, W: Write> Members<'a, W> {
    /// `first`: nothing is written before these members, so the first
    /// one needs no comma.
    fn new(out: &'a mut W, first: bool) -> Self {
        Members { out, first }
    }

    fn name(&mut self, field: &Field) {
        if !std::mem::take(&mut self.first) {
            let _ = self.out.write_char(',');
        }
        let _ = push_json_string(self.out, field.name());
        let _ = self.out.write_char(':');
    }
}

impl<W: Write> Visit for Members<'_, W> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.name(field);
        let _ = push_json_string(self.out, value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.name(field);
        let _ = self.out.write_str(itoa::Buffer::new().format(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.name(field);
        let _ = self.out.write_str(itoa::Buffer::new().format(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.name(field);
        let _ = match value.is_finite() {
            true => self.out.write_str(ryu::Buffer::new().format_finite(value)),
            false => self.out.write_str("null"),
        };
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.name(field);
        let _ = self.out.write_str(if value { "true" } else { "false" });
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.name(field);
        let _ = self.out.write_char('"');
        let _ = write!(Escaped(self.out), "{value:?}");
        let _ = self.out.write_char('"');
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.name(field);
        let _ = push_json_string(self.out, &value.to_string());
    }
}

/// A JSON string's contents, escaped as serde_json escapes them, as they
/// are written: no String of its own, whatever the pieces.
struct Escaped<'a, W: Write>(&'a mut W);

impl<W: Write> Write for Escaped<'_, W> {
    fn write_str(&mut self, piece: &str) -> fmt::Result {
        let mut plain = 0;
        for (at, &byte) in piece.as_bytes().iter().enumerate() {
            if !ESCAPED[byte as usize] {
                continue;
            }
            self.0.write_str(&piece[plain..at])?;
            plain = at + 1;
            match byte {
                b'"' => self.0.write_str("\\\""),
                b'\\' => self.0.write_str("\\\\"),
                b'\n' => self.0.write_str("\\n"),
                b'\r' => self.0.write_str("\\r"),
                b'\t' => self.0.write_str("\\t"),
                0x08 => self.0.write_str("\\b"),
                0x0c => self.0.write_str("\\f"),
                _ => write!(self.0, "\\u{byte:04x}"),
            }?;
        }
        self.0.write_str(&piece[plain..])
    }
}

/// The bytes JSON requires escaped: quotes, backslashes and control
/// characters. A table, because every byte of every log line is looked up.
const ESCAPED: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 0x20 {
        table[byte] = true;
        byte += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

fn push_json_string(out: &mut impl Write, value: &str) -> fmt::Result {
    out.write_char('"')?;
    Escaped(out).write_str(value)?;
    out.write_char('"')
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use test_support::output::Captured;
    use tracing_subscriber::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn strings_are_escaped_as_serde_json_escapes_them(text in "(?s).{0,40}", cut in 0usize..40) {
            let mut whole = String::new();
            push_json_string(&mut whole, &text).unwrap();
            prop_assert_eq!(&whole, &serde_json::to_string(&text).unwrap());
            // Written in two pieces, as a Debug impl may write it.
            let cut = (0..=cut.min(text.len())).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
            let mut pieces = String::new();
            write!(Escaped(&mut pieces), "{}{}", &text[..cut], &text[cut..]).unwrap();
            prop_assert_eq!(format!("\"{pieces}\""), whole);
        }
    }

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
