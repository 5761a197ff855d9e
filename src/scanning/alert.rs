//! The alert GitHub posts and the feedback we answer with.

use serde::{Deserialize, Serialize};

/// One reported match. GitHub may leave `url` empty, omit `source` or send
/// one we have never seen, and vary the case of `type`: all are accepted.
#[derive(Debug, Deserialize)]
pub struct ReportedToken {
    pub token: String,
    #[serde(rename = "type", default)]
    pub token_type: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub source: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Label {
    TruePositive,
    FalsePositive,
}

/// One entry of the feedback array: `token_raw` for our tokens (GitHub sent
/// it to us), `token_hash` for anything else.
#[derive(Debug, Serialize, Deserialize)]
pub struct Feedback {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_raw: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_hash: Option<String>,
    pub token_type: String,
    pub label: Label,
}

/// Parses the verified body: a JSON array of objects, each with a string
/// `token`. The error names the first offending element. Control characters
/// are dropped from where GitHub says it found a token: they mean nothing
/// there, PostgreSQL text cannot hold NUL (the revocation would fail and
/// GitHub would retry for ever), and they do not belong in an email.
pub fn parse(body: &[u8]) -> Result<Vec<ReportedToken>, String> {
    let values: Vec<serde_json::Value> = serde_json::from_slice(body)
        .map_err(|e| format!("the alert must be a JSON array of objects: {e}"))?;
    values
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            if !v.get("token").is_some_and(|t| t.is_string()) {
                return Err(format!("element {i} has no string \"token\""));
            }
            let mut reported: ReportedToken =
                serde_json::from_value(v).map_err(|e| format!("element {i}: {e}"))?;
            for text in [
                &mut reported.token_type,
                &mut reported.url,
                &mut reported.source,
            ]
            .into_iter()
            .flatten()
            {
                text.retain(|c| !c.is_control());
            }
            Ok(reported)
        })
        .collect()
}
