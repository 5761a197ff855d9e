//! The alert GitHub posts and the feedback we answer with.

use serde::{Deserialize, Serialize};

/// One reported match. GitHub may leave `url` empty, omit `source` or send
/// one we have never seen, and vary the case of `type`: all are accepted.
#[derive(Debug, Deserialize, PartialEq)]
pub struct ReportedToken {
    pub token: String,
    #[serde(rename = "type", default)]
    pub token_type: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub source: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = FeedbackLabel)]
pub enum Label {
    TruePositive,
    FalsePositive,
}

/// One entry of the feedback array: `token_raw` for our tokens (GitHub sent
/// it to us), `token_hash` for anything else.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Feedback {
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub token_raw: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
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
    // A well-formed alert parses straight into its entries. Anything else
    // takes the general path below, which names the offending element.
    let mut reported = match serde_json::from_slice::<Vec<Entry>>(body) {
        Ok(entries) => entries.into_iter().map(|e| e.0).collect(),
        Err(_) => parse_value_by_value(body)?,
    };
    for entry in &mut reported {
        for text in [&mut entry.token_type, &mut entry.url, &mut entry.source]
            .into_iter()
            .flatten()
        {
            text.retain(|c| !c.is_control());
        }
    }
    Ok(reported)
}

/// Through `serde_json::Value`: one tree per element, so about twice the
/// allocations of the direct path, but it can say which element is wrong.
fn parse_value_by_value(body: &[u8]) -> Result<Vec<ReportedToken>, String> {
    let values: Vec<serde_json::Value> = serde_json::from_slice(body)
        .map_err(|e| format!("the alert must be a JSON array of objects: {e}"))?;
    values
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            if !v.get("token").is_some_and(|t| t.is_string()) {
                return Err(format!("element {i} has no string \"token\""));
            }
            serde_json::from_value(v).map_err(|e| format!("element {i}: {e}"))
        })
        .collect()
}

/// One element on the direct path: a JSON object only (serde's derived
/// impl would also take an array of the fields in order, which the
/// general path refuses), with a string `token`, at most one of each
/// field; other fields are read and dropped.
struct Entry(ReportedToken);

impl<'de> Deserialize<'de> for Entry {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Entry, D::Error> {
        deserializer.deserialize_map(EntryVisitor)
    }
}

struct EntryVisitor;

impl<'de> serde::de::Visitor<'de> for EntryVisitor {
    type Value = Entry;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an object with a string \"token\"")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Entry, A::Error> {
        use serde::de::Error;
        let mut token: Option<String> = None;
        let mut fields: [Option<Option<String>>; 3] = [None, None, None];
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let slot = match key.as_ref() {
                "token" => {
                    if token.replace(map.next_value()?).is_some() {
                        return Err(A::Error::duplicate_field("token"));
                    }
                    continue;
                }
                "type" => &mut fields[0],
                "url" => &mut fields[1],
                "source" => &mut fields[2],
                _ => {
                    // Read as a value, not skipped: the general path
                    // refuses deep nesting and numbers out of range there.
                    map.next_value::<serde_json::Value>()?;
                    continue;
                }
            };
            if slot.replace(map.next_value()?).is_some() {
                return Err(A::Error::custom(format!("duplicate field `{key}`")));
            }
        }
        let [token_type, url, source] = fields.map(Option::flatten);
        Ok(Entry(ReportedToken {
            token: token.ok_or_else(|| A::Error::missing_field("token"))?,
            token_type,
            url,
            source,
        }))
    }
}

#[cfg(test)]
mod properties {
    use super::{parse, parse_value_by_value, Entry};
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

    /// Arrays of objects with GitHub's field names, mostly with string
    /// values: the shape that takes the direct path.
    fn entries() -> impl Strategy<Value = Value> {
        let field = prop_oneof![
            4 => Just("token".to_string()),
            2 => Just("type".to_string()),
            2 => Just("url".to_string()),
            2 => Just("source".to_string()),
            1 => any::<String>(),
        ];
        let value = prop_oneof![
            6 => any::<String>().prop_map(Value::from),
            1 => Just(Value::Null),
            1 => any::<i64>().prop_map(Value::from),
            1 => json(),
        ];
        proptest::collection::vec(
            proptest::collection::vec((field, value), 0..6)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
            0..6,
        )
        .prop_map(Value::from)
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

        /// The direct path may refuse what the general one takes (it then
        /// falls back), but what it takes, it reads the same.
        #[test]
        fn the_direct_path_agrees_with_the_general_one(value in prop_oneof![json(), entries()]) {
            let body = serde_json::to_vec(&value).unwrap();
            if let Ok(entries) = serde_json::from_slice::<Vec<Entry>>(&body) {
                let direct: Vec<_> = entries.into_iter().map(|e| e.0).collect();
                prop_assert_eq!(Ok(direct), parse_value_by_value(&body));
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
