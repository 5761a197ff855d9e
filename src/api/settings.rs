//! The `settings` object of sources and destinations: stored as given, shown
//! with every secret masked, and updated by merging. A setting is secret
//! when its key says so (`apiKey`, `password`, `clientSecret`, `token`…).

use serde::Serializer;
use serde_json::{Map, Value};

use super::error::FieldError;

/// What the value of a secret setting is shown as.
pub const MASK: &str = "••••";

/// Words that mark a key as holding a secret, compared case-insensitively.
/// Over-matching (`keyboardLayout`) only masks a harmless value; missing a
/// secret would hand it to every read-only token.
const SECRET_WORDS: &[&str] = &["password", "token", "key", "secret"];

pub fn is_secret(key: &str) -> bool {
    let key = key.to_lowercase();
    SECRET_WORDS.iter().any(|w| key.contains(w))
}

/// A copy fit to show: the value under every secret key, at any depth, is
/// replaced by [`MASK`] (null stays null: "not set" reveals nothing).
pub fn masked(settings: &Value) -> Value {
    match settings {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let shown = if is_secret(k) && !v.is_null() {
                        Value::String(MASK.to_string())
                    } else {
                        masked(v)
                    };
                    (k.clone(), shown)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(masked).collect()),
        other => other.clone(),
    }
}

/// `#[serde(serialize_with)]` for settings fields: a resource can then only
/// ever be serialised with its secrets masked.
pub fn serialize_masked<S: Serializer>(settings: &Value, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_some(&masked(settings))
}

/// The settings of a new resource: a mask cannot stand for a secret, as
/// none is stored yet.
pub fn for_create(given: Map<String, Value>, errors: &mut Vec<FieldError>) -> Map<String, Value> {
    let mut settings = Value::Object(given);
    unmask(&mut settings, None, "settings", errors);
    match settings {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// The settings after a PATCH: each top-level key given replaces the stored
/// one and `null` removes it, so a client can change one setting without
/// resending (or knowing) the others.
pub fn merge(stored: &Value, patch: Map<String, Value>, errors: &mut Vec<FieldError>) -> Value {
    let mut patch = Value::Object(patch);
    unmask(&mut patch, Some(stored), "settings", errors);
    let mut merged = stored.as_object().cloned().unwrap_or_default();
    if let Value::Object(patch) = patch {
        for (key, value) in patch {
            if value.is_null() {
                merged.remove(&key);
            } else {
                merged.insert(key, value);
            }
        }
    }
    Value::Object(merged)
}

/// Puts the stored secret back wherever a client sent [`MASK`] for it (it
/// read the resource, edited another setting and sent everything back), so
/// that a secret is never overwritten by its own mask. A mask with no
/// stored secret behind it is refused rather than stored as the secret.
fn unmask(value: &mut Value, stored: Option<&Value>, path: &str, errors: &mut Vec<FieldError>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                let old = stored.and_then(|s| s.get(key.as_str()));
                let here = format!("{path}.{key}");
                if is_secret(key) && v.as_str() == Some(MASK) {
                    match old {
                        Some(old) if !old.is_null() => *v = old.clone(),
                        _ => errors.push(FieldError::new(
                            &here,
                            "is the mask of a secret that is not stored; send the value itself",
                        )),
                    }
                } else {
                    unmask(v, old, &here, errors);
                }
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter_mut().enumerate() {
                let old = stored.and_then(|s| s.get(i));
                unmask(v, old, &format!("{path}[{i}]"), errors);
            }
        }
        _ => {}
    }
}

/// The top-level keys whose values differ: what an audit event may say
/// about a settings change without repeating any value.
pub fn changed_keys(before: &Value, after: &Value) -> Vec<String> {
    let empty = Map::new();
    let before = before.as_object().unwrap_or(&empty);
    let after = after.as_object().unwrap_or(&empty);
    let mut keys: Vec<String> = before
        .keys()
        .chain(after.keys())
        .filter(|k| before.get(*k) != after.get(*k))
        .cloned()
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secrets_are_masked_at_any_depth() {
        let stored = json!({
            "apiKey": "k1", "Password": "p", "region": "eu", "accessTOKEN": "t",
            "nested": {"clientSecret": "s", "url": "https://x"},
            "list": [{"privateKey": {"pem": "..."}}],
            "unsetToken": null
        });
        assert_eq!(
            masked(&stored),
            json!({
                "apiKey": MASK, "Password": MASK, "region": "eu", "accessTOKEN": MASK,
                "nested": {"clientSecret": MASK, "url": "https://x"},
                "list": [{"privateKey": MASK}],
                "unsetToken": null
            })
        );
    }

    #[test]
    fn merge_keeps_secrets_behind_echoed_masks() {
        let stored = json!({"apiKey": "k1", "region": "eu", "nested": {"secret": "s"}});
        let mut errors = Vec::new();
        let mut patch = masked(&stored).as_object().unwrap().clone();
        patch.insert("region".into(), json!("us"));
        let merged = merge(&stored, patch, &mut errors);
        assert!(errors.is_empty());
        assert_eq!(
            merged,
            json!({"apiKey": "k1", "region": "us", "nested": {"secret": "s"}})
        );

        let patch = json!({"region": null, "newToken": MASK});
        let merged = merge(&stored, patch.as_object().unwrap().clone(), &mut errors);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].field.as_deref(), Some("settings.newToken"));
        assert!(merged.get("region").is_none());
    }

    #[test]
    fn changed_keys_name_no_values() {
        let before = json!({"a": 1, "b": 2, "c": 3});
        let after = json!({"a": 1, "b": 5, "d": 4});
        assert_eq!(changed_keys(&before, &after), vec!["b", "c", "d"]);
    }
}
