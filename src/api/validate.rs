//! Reads request bodies field by field, collecting every problem so that a
//! 422 lists them all at once.

use serde_json::{Map, Value};

use super::error::{ApiError, FieldError};

pub struct Fields<'a> {
    object: &'a Map<String, Value>,
    pub errors: Vec<FieldError>,
}

pub const MAX_NAME: usize = 200;

impl<'a> Fields<'a> {
    /// The body must be a JSON object whose keys are all in `allowed`.
    pub fn of(body: &'a Value, allowed: &[&str]) -> Result<Fields<'a>, ApiError> {
        let object = body.as_object().ok_or_else(|| {
            ApiError::Validation(vec![FieldError::new("body", "must be a JSON object")])
        })?;
        let mut errors = Vec::new();
        for key in object.keys() {
            if !allowed.contains(&key.as_str()) {
                errors.push(FieldError::new(
                    key,
                    format!("unknown field; expected one of {}", allowed.join(", ")),
                ));
            }
        }
        Ok(Fields { object, errors })
    }

    pub fn has(&self, name: &str) -> bool {
        self.object.contains_key(name)
    }

    fn fail(&mut self, name: &str, message: &str) {
        self.errors.push(FieldError::new(name, message));
    }

    /// A non-empty string of at most `max` characters.
    pub fn string(&mut self, name: &str, required: bool, max: usize) -> Option<String> {
        match self.object.get(name) {
            None | Some(Value::Null) => {
                if required {
                    self.fail(name, "is required");
                }
                None
            }
            Some(Value::String(s)) if s.trim().is_empty() => {
                self.fail(name, "must not be empty");
                None
            }
            Some(Value::String(s)) if s.chars().count() > max => {
                self.fail(name, &format!("must be at most {max} characters"));
                None
            }
            Some(Value::String(s)) if s.chars().any(char::is_control) => {
                self.fail(name, "must not contain control characters");
                None
            }
            Some(Value::String(s)) => Some(s.trim().to_string()),
            Some(_) => {
                self.fail(name, "must be a string");
                None
            }
        }
    }

    /// Lower-case letters, digits, `-` and `_`, starting with a letter or digit.
    pub fn slug(&mut self, name: &str, required: bool) -> Option<String> {
        let value = self.string(name, required, 100)?;
        let ok = value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
            && value.as_bytes()[0].is_ascii_alphanumeric();
        if !ok {
            self.fail(
                name,
                "must be lower-case letters, digits, '-' or '_', starting with a letter or digit",
            );
            return None;
        }
        Some(value)
    }

    pub fn email(&mut self, name: &str, required: bool) -> Option<String> {
        let value = self.string(name, required, 254)?;
        if value.parse::<lettre::Address>().is_err() {
            self.fail(name, "must be an email address");
            return None;
        }
        Some(value.to_ascii_lowercase())
    }

    pub fn one_of(&mut self, name: &str, required: bool, allowed: &[&str]) -> Option<String> {
        let value = self.string(name, required, 50)?;
        if !allowed.contains(&value.as_str()) {
            self.fail(name, &format!("must be one of {}", allowed.join(", ")));
            return None;
        }
        Some(value)
    }

    pub fn boolean(&mut self, name: &str, required: bool) -> Option<bool> {
        match self.object.get(name) {
            None | Some(Value::Null) => {
                if required {
                    self.fail(name, "is required");
                }
                None
            }
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => {
                self.fail(name, "must be true or false");
                None
            }
        }
    }

    pub fn object(&mut self, name: &str) -> Option<Map<String, Value>> {
        match self.object.get(name) {
            None | Some(Value::Null) => None,
            Some(Value::Object(m)) => Some(m.clone()),
            Some(_) => {
                self.fail(name, "must be a JSON object");
                None
            }
        }
    }

    /// Segment's labels: `[{"key": "...", "value": "..."}]`.
    pub fn labels(&mut self, name: &str) -> Option<Vec<Value>> {
        let list = match self.object.get(name) {
            None | Some(Value::Null) => return None,
            Some(Value::Array(list)) => list,
            Some(_) => {
                self.fail(name, "must be an array of {key, value} objects");
                return None;
            }
        };
        let mut out = Vec::new();
        for (i, item) in list.iter().enumerate() {
            let key = item.get("key").and_then(Value::as_str).unwrap_or("");
            let value = item.get("value").and_then(Value::as_str).unwrap_or("");
            let extra = item.as_object().is_some_and(|o| o.len() > 2);
            if key.is_empty() || value.is_empty() || extra || key.len() > 100 || value.len() > 100 {
                self.fail(
                    &format!("{name}[{i}]"),
                    "must be {\"key\": string, \"value\": string}, each 1 to 100 characters",
                );
            } else {
                out.push(serde_json::json!({ "key": key, "value": value }));
            }
        }
        Some(out)
    }

    /// For updates: at least one of `names` must be set (to something other
    /// than null), or the request would change nothing.
    pub fn require_any(&mut self, names: &[&str]) {
        let any = names
            .iter()
            .any(|n| self.object.get(*n).is_some_and(|v| !v.is_null()));
        if !any {
            self.fail("body", &format!("set at least one of {}", names.join(", ")));
        }
    }

    pub fn finish(self) -> Result<(), ApiError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(self.errors))
        }
    }
}
