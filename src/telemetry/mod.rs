//! Logging set-up and the helpers that keep secrets and addresses out of logs.

mod json_lines;
mod log_writer;

use tracing_subscriber::{filter::Targets, fmt, prelude::*};

use crate::config::LogFormat;

const DEFAULT_LEVELS: &str = "info,sqlx=warn,actix_server=warn";

/// Installs the global subscriber; `RUST_LOG` overrides the default levels.
/// It takes `level` and `target=level` directives, comma-separated (the
/// `Targets` syntax: no span or field filters, which would cost a regex
/// engine in every build for a feature nobody here uses).
///
/// Lines go to stderr through `log_writer`, which never drops one: keep
/// the returned guard until the end, it writes what is left.
pub fn init(format: LogFormat) -> log_writer::FlushGuard {
    let (writer, guard) = log_writer::BufferedLog::new(std::io::stderr());
    let from_env = std::env::var("RUST_LOG")
        .ok()
        .map(|text| text.parse::<Targets>().map_err(|e| (text, e)));
    let filter = match &from_env {
        Some(Ok(filter)) => filter.clone(),
        _ => DEFAULT_LEVELS.parse().expect("the default levels parse"),
    };
    let registry = tracing_subscriber::registry().with(filter);
    let result = match format {
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .event_format(json_lines::JsonLines)
                    .fmt_fields(json_lines::JsonMembers)
                    .with_writer(writer),
            )
            .try_init(),
        LogFormat::Pretty => registry.with(fmt::layer().with_writer(writer)).try_init(),
    };
    // A second init (tests build many applications) is harmless.
    let _ = result;
    if let Some(Err((text, e))) = from_env {
        tracing::warn!("RUST_LOG={text:?} is not `level` or `target=level` directives ({e}); using {DEFAULT_LEVELS}");
    }
    guard
}

/// `alice@example.com` → `a***@example.com`.
pub fn mask_email(address: &str) -> String {
    match address.split_once('@') {
        Some((local, domain)) => {
            let first = local.chars().next().unwrap_or('*');
            format!("{first}***@{domain}")
        }
        None => "***".to_string(),
    }
}

/// Drops the password from a URL so it can be logged or printed.
pub fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut url) => {
            if url.password().is_some() {
                let _ = url.set_password(Some("***"));
            }
            url.to_string()
        }
        Err(_) => "<unparseable url>".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks() {
        assert_eq!(mask_email("alice@example.com"), "a***@example.com");
        assert_eq!(mask_email("nonsense"), "***");
        assert_eq!(
            redact_url("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
    }
}
