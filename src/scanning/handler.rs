//! `POST /secret-scanning/github`.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use actix_web::{web, FromRequest, HttpRequest};
use hashbrown::DefaultHashBuilder;
use serde_json::json;

use super::alert::{self, Feedback, Label};
use super::keys::KeyLookup;
use super::signature::decode_signature;
use super::{KEY_ID_HEADER, SIGNATURE_HEADER};
use crate::api::body::{declared_length, read_limited, Limits};
use crate::api::doc::{Content, Describe, OperationDoc};
use crate::api::error::ApiError;
use crate::api::single_header;
use crate::db::alerts::AlertRecord;
use crate::db::tokens::Token;
use crate::domain::TokenHash;
use crate::revocation::{self, Report};
use crate::state::AppState;
use crate::time::now_micros;
use crate::token::{sha256_hex, PublicToken};

/// The raw bytes of an alert, read only after the signature headers are
/// checked: the signature is over exactly these bytes.
pub struct SignedAlert(web::Payload);

impl FromRequest for SignedAlert {
    type Error = actix_web::Error;
    type Future = std::future::Ready<Result<SignedAlert, actix_web::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        let payload = web::Payload::from_request(req, payload).into_inner();
        std::future::ready(payload.map(SignedAlert))
    }
}

impl Describe for SignedAlert {
    fn describe(doc: &mut OperationDoc) {
        for (name, description) in [
            (KEY_ID_HEADER, "Which of GitHub's keys signed the body"),
            (
                SIGNATURE_HEADER,
                "Base64 of the DER ECDSA P-256 SHA-256 signature of the raw body",
            ),
        ] {
            doc.parameters.push(json!({
                "name": name,
                "in": "header",
                "required": true,
                "description": description,
                "schema": { "type": "string", "minLength": 1 },
            }));
        }
        let body = json!({
            "type": "array",
            "items": {
                "type": "object",
                "required": ["token"],
                "properties": {
                    "token": { "type": "string" },
                    "type": { "type": "string" },
                    "url": { "type": "string" },
                    "source": { "type": "string" },
                },
            },
        });
        doc.request_body = Some(crate::api::doc::RequestBodyDoc {
            media_type: "application/json",
            schema: body,
            fields: &[],
        });
        doc.error(400, "The body cannot be read (broken chunked framing)");
        doc.error(
            401,
            "A signature header is missing, empty, repeated or not ASCII; the signature is malformed or wrong; or the key identifier is unknown even after a refetch",
        );
        doc.error(
            408,
            "The body did not arrive within LEAKGUARD_BODY_TIMEOUT_SECS",
        );
        doc.error(413, "The body is larger than LEAKGUARD_MAX_ALERT_BYTES");
        doc.error(
            422,
            "Signed, but not a JSON array of objects with a string token",
        );
        doc.error(
            503,
            "Cannot take it now: no key set is loaded, the key identifier is not in the key \
             set fetched last and may not be refetched yet, too many alert bodies are in \
             flight (LEAKGUARD_ALERT_BODIES_MAX_BYTES), or the database is unavailable. \
             GitHub retries after Retry-After",
        );
    }
}

/// GitHub's feedback: one entry per token reported.
pub struct FeedbackList(Vec<Feedback>);

impl actix_web::Responder for FeedbackList {
    type Body = actix_web::body::BoxBody;

    fn respond_to(self, _: &HttpRequest) -> actix_web::HttpResponse {
        actix_web::HttpResponse::Ok().json(self.0)
    }
}

impl Describe for FeedbackList {
    fn describe(doc: &mut OperationDoc) {
        let item = doc.schema::<Feedback>();
        doc.answer(
            200,
            "Feedback: true_positive with token_raw for tokens of ours, false_positive with token_hash for the rest",
            Content::Json(json!({ "type": "array", "items": item })),
        );
    }
}

pub async fn github_alert(
    req: HttpRequest,
    SignedAlert(payload): SignedAlert,
    state: web::Data<AppState>,
) -> Result<FeedbackList, ApiError> {
    let started = Instant::now();
    let result = handle(&req, payload, &state).await;
    let outcome = match &result {
        Ok(_) => "processed",
        Err(ApiError::Unauthorized(_)) => "bad_signature",
        Err(ApiError::PayloadTooLarge(_)) => "too_large",
        Err(ApiError::Validation(_) | ApiError::BadRequest(_)) => "malformed",
        Err(ApiError::Unavailable(_)) => "unavailable",
        Err(ApiError::RetryLater { .. }) => "retry_later",
        Err(ApiError::RequestTimeout(_)) => "timeout",
        Err(_) => "error",
    };
    state.metrics.alerts.with_label_values(&[outcome]).inc();
    state
        .metrics
        .alert_latency
        .observe(started.elapsed().as_secs_f64());
    if let Err(e) = &result {
        tracing::warn!(outcome, error = %e, "alert rejected");
    }
    result
}

async fn handle(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
) -> Result<FeedbackList, ApiError> {
    // Header names are case-insensitive in actix's HeaderMap.
    let header = |name: &str| match single_header(req, name) {
        Ok(Some("")) => Err(ApiError::Unauthorized(format!(
            "the {name} header is empty"
        ))),
        Ok(Some(value)) => Ok(value),
        Ok(None) => Err(ApiError::Unauthorized(format!("missing {name} header"))),
        Err(message) => Err(ApiError::Unauthorized(message)),
    };
    // Everything that can be refused before the body is read is refused
    // first: a body that is never read costs no memory.
    let key_id = header(KEY_ID_HEADER)?.to_string();
    let signature = header(SIGNATURE_HEADER)?;
    let signature = decode_signature(signature).ok_or_else(|| {
        ApiError::Unauthorized(format!("{SIGNATURE_HEADER} is not standard base64"))
    })?;
    let settings = &state.settings;
    let declared = declared_length(req, settings.max_alert_bytes)?;
    let key = match state.keys.lookup(&key_id).await {
        KeyLookup::Found(key) => key,
        KeyLookup::Unknown => {
            return Err(ApiError::Unauthorized(
                "unknown key identifier: not in GitHub's key set".into(),
            ))
        }
        KeyLookup::NotYet { retry_after } => {
            return Err(ApiError::retry_later(
                "unknown key identifier: not in the key set fetched last; \
                 retry after the next fetch is allowed",
                retry_after,
            ))
        }
        KeyLookup::Unavailable => {
            return Err(ApiError::Unavailable(
                "GitHub's key set is not available yet; retry later".into(),
            ))
        }
    };
    let address = settings
        .trusted_proxies
        .address_of(req)
        .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED.into());
    let mut reservation = state.alert_bodies.reserve(address, declared.unwrap_or(0))?;
    let limits = Limits {
        max_bytes: settings.max_alert_bytes,
        timeout: settings.body_timeout,
    };
    let body = read_limited(req, payload, limits, Some(&mut reservation)).await?;

    // Verify the raw bytes before parsing anything.
    if !key.verify(&body, &signature) {
        return Err(ApiError::Unauthorized(
            "the signature does not match the body".into(),
        ));
    }
    let reported = alert::parse(&body).map_err(|message| {
        ApiError::Validation(vec![crate::api::error::FieldError::new("body", message)])
    })?;

    let client = crate::client::Client::of(req, &state.settings.trusted_proxies);
    let feedback = process(state, &key_id, reported, &client).await?;
    Ok(FeedbackList(feedback))
}

/// Classifies, looks up and revokes; returns GitHub's feedback array.
async fn process(
    state: &AppState,
    key_id: &str,
    reported: Vec<alert::ReportedToken>,
    client: &crate::client::Client,
) -> Result<Vec<Feedback>, ApiError> {
    let total = reported.len();
    // A duplicate within one batch counts once.
    let mut reported = reported;
    let first: Vec<bool> = {
        let mut seen =
            HashSet::with_capacity_and_hasher(reported.len(), DefaultHashBuilder::default());
        reported
            .iter()
            .map(|r| seen.insert(r.token.as_str()))
            .collect()
    };
    let mut first = first.into_iter();
    reported.retain(|_| first.next().unwrap_or(true));

    // Tokens with a wrong prefix or checksum are not ours: no database work.
    // The hash is also the feedback for a well-formed token that is not ours.
    let mut hashes: Vec<Option<TokenHash>> = reported
        .iter()
        .map(|r| PublicToken::parse(&r.token).ok().map(|t| t.hash()))
        .collect();
    // foldhash rather than SipHash: ten thousand 64-character keys, from a
    // body whose signature has been verified.
    let candidates: HashMap<&TokenHash, usize, DefaultHashBuilder> = hashes
        .iter()
        .enumerate()
        .filter_map(|(i, h)| h.as_ref().map(|h| (h, i)))
        .collect();
    let found = state
        .token_lookup
        .find(&candidates.keys().copied().collect::<Vec<_>>())
        .await?;

    let matches: Vec<(Token, Report)> = found
        .into_iter()
        .map(|record| {
            let r = &reported[candidates[&record.token_hash]];
            let report = Report {
                url: r.url.clone().unwrap_or_default(),
                source: r.source.clone().unwrap_or_default(),
                token_type: r.token_type.clone().unwrap_or_default(),
            };
            (record, report)
        })
        .collect();
    let ours: HashSet<usize, DefaultHashBuilder> = matches
        .iter()
        .map(|(t, _)| candidates[&t.token_hash])
        .collect();

    let leak = AlertRecord {
        id: crate::id::new_id(),
        received_at: now_micros(),
        key_identifier: key_id.to_string(),
        reported: total as i64,
        matched: matches.len() as i64,
    };
    let outcome = if matches.is_empty() {
        // Nothing of ours: the alert's record is the only change.
        state.alert_recorder.record(&leak).await?;
        revocation::LeakOutcome {
            revoked: 0,
            created_revoked: 0,
            emails_queued: 0,
        }
    } else {
        revocation::revoke_leaked(&state.db, &state.notifier, &leak, &matches, client)
            .await
            .map_err(|e| match e.downcast::<crate::db::Error>() {
                Ok(db) => ApiError::from(db),
                Err(other) => ApiError::Internal(other),
            })?
    };
    state.notifier.queued(outcome.emails_queued);
    state
        .metrics
        .tokens_revoked
        .inc_by((outcome.revoked + outcome.created_revoked) as u64);
    // Token ids (not secrets) let an operator re-apply revocations that a
    // restore from an older backup would undo; capped for huge batches.
    let token_ids: Vec<&str> = matches
        .iter()
        .take(100)
        .map(|(t, _)| t.id.as_str())
        .collect();
    // An alert that matched nothing changed nothing but its record (in the
    // alerts table) and has its access-log line: at info level it would
    // double the log of a flood of false positives.
    macro_rules! processed {
        ($level:ident) => {
            tracing::$level!(
                alert_id = %leak.id,
                reported = total,
                matched = matches.len(),
                token_ids = %token_ids.join(","),
                revoked = outcome.revoked,
                created_revoked = outcome.created_revoked,
                emails = outcome.emails_queued,
                "alert processed"
            )
        };
    }
    if matches.is_empty() {
        processed!(debug);
    } else {
        processed!(info);
    }

    let feedback: Vec<Feedback> = reported
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            let token_type = r.token_type.unwrap_or_default();
            if ours.contains(&i) {
                Feedback {
                    token_raw: Some(r.token),
                    token_hash: None,
                    token_type,
                    label: Label::TruePositive,
                }
            } else {
                Feedback {
                    token_raw: None,
                    token_hash: Some(match hashes[i].take() {
                        Some(hash) => hash.to_string(),
                        None => sha256_hex(r.token.as_bytes()),
                    }),
                    token_type,
                    label: Label::FalsePositive,
                }
            }
        })
        .collect();
    let true_positives = ours.len() as u64;
    let labels = &state.metrics.tokens_reported;
    labels
        .with_label_values(&["true_positive"])
        .inc_by(true_positives);
    labels
        .with_label_values(&["false_positive"])
        .inc_by(feedback.len() as u64 - true_positives);
    Ok(feedback)
}
