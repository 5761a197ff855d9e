//! Reads request bodies field by field, collecting every problem so that a
//! 422 lists them all at once. Values with rules parse into their domain
//! types here, at the edge.

use serde_json::{Map, Value};

use super::error::{ApiError, FieldError};
use crate::domain::{Label, Parse};

/// The most labels a resource may have: they are stored in its row.
pub const MAX_LABELS: usize = 100;

pub struct Fields<'a> {
    object: &'a Map<String, Value>,
    pub errors: Vec<FieldError>,
}

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

    pub fn fail(&mut self, name: &str, message: impl Into<String>) {
        self.errors.push(FieldError::new(name, message));
    }

    /// The field's value; null counts as absent.
    fn value(&mut self, name: &str, required: bool) -> Option<&'a Value> {
        match self.object.get(name) {
            None | Some(Value::Null) => {
                if required {
                    self.fail(name, "is required");
                }
                None
            }
            Some(value) => Some(value),
        }
    }

    /// A string parsed into `T`.
    fn parsed<T: Parse>(&mut self, name: &str, required: bool) -> Option<T> {
        match self.value(name, required)? {
            Value::String(s) => T::parse(s).map_err(|message| self.fail(name, message)).ok(),
            _ => {
                self.fail(name, "must be a string");
                None
            }
        }
    }

    pub fn required<T: Parse>(&mut self, name: &str) -> Option<T> {
        self.parsed(name, true)
    }

    pub fn optional<T: Parse>(&mut self, name: &str) -> Option<T> {
        self.parsed(name, false)
    }

    pub fn boolean(&mut self, name: &str, required: bool) -> Option<bool> {
        match self.value(name, required)? {
            Value::Bool(b) => Some(*b),
            _ => {
                self.fail(name, "must be true or false");
                None
            }
        }
    }

    /// A whole number.
    pub fn integer(&mut self, name: &str, required: bool) -> Option<i64> {
        match self.value(name, required)? {
            Value::Number(n) if n.is_i64() => n.as_i64(),
            _ => {
                self.fail(name, "must be a whole number");
                None
            }
        }
    }

    /// An array of strings, each parsed into `T` (a problem with one is
    /// reported as `name[i]`).
    pub fn list<T: Parse>(&mut self, name: &str, required: bool) -> Option<Vec<T>> {
        let Value::Array(items) = self.value(name, required)? else {
            self.fail(name, "must be an array of strings");
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let parsed = match item {
                Value::String(s) => T::parse(s),
                _ => Err("must be a string".to_string()),
            };
            match parsed {
                Ok(value) => out.push(value),
                Err(message) => {
                    self.fail(&format!("{name}[{i}]"), message);
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }

    pub fn object(&mut self, name: &str) -> Option<Map<String, Value>> {
        match self.value(name, false)? {
            Value::Object(m) => Some(m.clone()),
            _ => {
                self.fail(name, "must be a JSON object");
                None
            }
        }
    }

    /// The settings of a new resource (`settings::for_create`).
    pub fn settings_for_create(&mut self, name: &str) -> Option<Map<String, Value>> {
        let given = self.object(name)?;
        Some(super::settings::for_create(given, &mut self.errors))
    }

    /// Segment's labels: `[{"key": "...", "value": "..."}]`, at most
    /// `MAX_LABELS` of them.
    pub fn labels(&mut self, name: &str) -> Option<Vec<Label>> {
        let Value::Array(list) = self.value(name, false)? else {
            self.fail(name, "must be an array of {key, value} objects");
            return None;
        };
        if list.len() > MAX_LABELS {
            self.fail(name, format!("must hold at most {MAX_LABELS} labels"));
            return None;
        }
        let mut out = Vec::new();
        for (i, item) in list.iter().enumerate() {
            let key = item.get("key").and_then(Value::as_str).unwrap_or("");
            let value = item.get("value").and_then(Value::as_str).unwrap_or("");
            let extra = item.as_object().is_some_and(|o| o.len() > 2);
            let fits = |s: &str| (1..=100).contains(&s.chars().count());
            if !fits(key) || !fits(value) || extra {
                self.fail(
                    &format!("{name}[{i}]"),
                    "must be {\"key\": string, \"value\": string}, each 1 to 100 characters",
                );
            } else {
                out.push(Label {
                    key: key.to_string(),
                    value: value.to_string(),
                });
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
            self.fail("body", format!("set at least one of {}", names.join(", ")));
        }
    }

    /// Every problem found, or Ok.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(self.errors))
        }
    }

    /// The 422 for a body with a missing required field (which `required`
    /// has recorded), with every other problem found.
    pub fn into_error(self) -> ApiError {
        ApiError::Validation(self.errors)
    }
}
