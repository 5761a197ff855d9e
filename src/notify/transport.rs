//! Where mail goes: an SMTP server (`LEAKGUARD_SMTP_URL`) or, when none is
//! configured, a directory of .eml files for local runs.

use std::path::PathBuf;
use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::ExposeSecret;

use crate::config::Settings;
use crate::db::outbox::ClaimedMessage;

pub enum Transport {
    /// lettre's own timeout bounds only the TCP connect (lettre issue
    /// #1027), so each whole conversation is bounded by `timeout` here. The
    /// transport is built without lettre's pool: a conversation abandoned
    /// at its deadline must close its connection, not go back to a pool
    /// with a reply still in flight.
    Smtp {
        client: AsyncSmtpTransport<Tokio1Executor>,
        timeout: Duration,
    },
    Directory(PathBuf),
}

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Retrying cannot help (an address that does not parse).
    #[error("{0}")]
    Permanent(String),
    #[error("{0}")]
    Transient(String),
}

impl Transport {
    pub fn from_settings(settings: &Settings) -> anyhow::Result<Transport> {
        let Some(url) = &settings.smtp_url else {
            return Ok(Transport::Directory(settings.mail_dir.clone()));
        };
        let url = url::Url::parse(url.expose_secret())?;
        let host = url
            .host_str()
            .ok_or_else(|| anyhow::anyhow!("LEAKGUARD_SMTP_URL has no host"))?
            .to_string();
        let tls_params = TlsParameters::new(host.clone())?;
        let (tls, default_port) = match url.scheme() {
            "smtps" => (Tls::Wrapper(tls_params), 465),
            // STARTTLS when the server offers it, only where plain text
            // cannot be read on the way: mail catchers on this machine
            // offer none. Elsewhere a server that does not offer it (or a
            // network that strips the offer) is refused rather than sent
            // the credentials and the mail in clear.
            _ if plaintext_allowed(&host, settings.smtp_allow_plaintext) => {
                (Tls::Opportunistic(tls_params), 25)
            }
            _ => (Tls::Required(tls_params), 25),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&host)
            .port(url.port().unwrap_or(default_port))
            .tls(tls)
            .timeout(Some(settings.smtp_timeout));
        let user = settings
            .smtp_username
            .clone()
            .or_else(|| (!url.username().is_empty()).then(|| percent_decode(url.username())));
        let password = settings
            .smtp_password
            .as_ref()
            .map(|p| p.expose_secret().to_string())
            .or_else(|| url.password().map(percent_decode));
        if let (Some(user), Some(password)) = (user, password) {
            builder = builder.credentials(Credentials::new(user, password));
        }
        Ok(Transport::Smtp {
            client: builder.build(),
            timeout: settings.smtp_timeout,
        })
    }

    /// For the start-up log line.
    pub fn describe(&self) -> String {
        match self {
            Transport::Smtp { .. } => "SMTP".to_string(),
            Transport::Directory(dir) => format!(
                "no LEAKGUARD_SMTP_URL set: emails are written as .eml files to {}",
                dir.display()
            ),
        }
    }

    pub async fn send(&self, from: &Mailbox, message: &ClaimedMessage) -> Result<(), SendError> {
        let to: Mailbox = message
            .recipient
            .parse()
            .map_err(|e| SendError::Permanent(format!("bad recipient address: {e}")))?;
        let email = Message::builder()
            .from(from.clone())
            .to(to)
            .subject(&message.subject)
            .message_id(Some(message.message_id.clone()))
            .date_now()
            .multipart(MultiPart::alternative_plain_html(
                message.body_text.clone(),
                message.body_html.clone(),
            ))
            .map_err(|e| SendError::Permanent(format!("cannot build the message: {e}")))?;
        match self {
            Transport::Smtp { client, timeout } => {
                match tokio::time::timeout(*timeout, client.send(email)).await {
                    Ok(sent) => sent
                        .map(|_| ())
                        .map_err(|e| SendError::Transient(smtp_error_text(&e))),
                    Err(_) => Err(SendError::Transient(format!(
                        "SMTP timeout: no complete answer within {timeout:?}"
                    ))),
                }
            }
            Transport::Directory(dir) => {
                tokio::fs::create_dir_all(dir)
                    .await
                    .map_err(|e| SendError::Transient(format!("{}: {e}", dir.display())))?;
                let path = dir.join(format!(
                    "{}-{}.eml",
                    chrono::Utc::now().format("%Y%m%dT%H%M%S%.6fZ"),
                    message.id
                ));
                tokio::fs::write(&path, email.formatted())
                    .await
                    .map_err(|e| SendError::Transient(format!("{}: {e}", path.display())))
            }
        }
    }
}

/// lettre's errors can quote the server's reply, which may echo the
/// recipient; keep the status and the kind only. Client errors are
/// lettre's own words (a server without STARTTLS, say), so they are kept.
fn smtp_error_text(e: &lettre::transport::smtp::Error) -> String {
    if e.is_client() {
        return format!("SMTP {e}");
    }
    let kind = if e.is_permanent() {
        "permanent SMTP error"
    } else if e.is_transient() {
        "transient SMTP error"
    } else if e.is_timeout() {
        "SMTP timeout"
    } else if e.is_tls() {
        "SMTP TLS error"
    } else {
        "SMTP connection error"
    };
    match e.status() {
        Some(code) => format!("{kind} {code}"),
        None => kind.to_string(),
    }
}

/// Whether `smtp://host` may fall back to plain text: on this machine
/// (`localhost`, a loopback address), or where the operator said so with
/// `LEAKGUARD_SMTP_ALLOW_PLAINTEXT`.
pub fn plaintext_allowed(host: &str, allowed_by_operator: bool) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    allowed_by_operator
        || host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}
