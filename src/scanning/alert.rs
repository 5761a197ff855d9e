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

#[cfg(test)]
mod properties {
    use super::parse;
    use proptest::prelude::*;
    use serde_json::Value;

    /// Any JSON value, nested a few levels.
    fn json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            any::<String>().prop_map(Value::from),
            Just(Value::from("token")),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::from),
                proptest::collection::btree_map(
                    prop_oneof![
                        Just("token".to_string()),
                        Just("url".to_string()),
                        any::<String>()
                    ],
                    inner,
                    0..6
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn the_parser_never_panics_on_bytes(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse(&body);
        }

        #[test]
        fn the_parser_never_panics_on_json_and_keeps_every_entry(value in json()) {
            let body = serde_json::to_vec(&value).unwrap();
            if let Ok(reported) = parse(&body) {
                prop_assert_eq!(Some(reported.len()), value.as_array().map(Vec::len));
            }
        }

        #[test]
        fn the_parser_never_panics_on_a_mutated_alert(at in any::<prop::sample::Index>(), byte in any::<u8>()) {
            let mut body = crate::scanning::simulate::alert_body(
                &["sgp_x", "t"], "leakguard_public_api_token", "https://github.com/o/r", "commit",
            );
            let i = at.index(body.len());
            body[i] = byte;
            let _ = parse(&body);
        }
    }
}
