//! Reads request bodies field by field, collecting every problem so that a
//! 422 lists them all at once. Values with rules parse into their domain
//! types here, at the edge.

use serde_json::{Map, Value};

use super::catalog::CatalogEntry;
use super::error::{ApiError, FieldError};
use crate::domain::{Description, Label, Parse};

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

    /// As `settings_for_create`, for resources whose every kind has
    /// required settings (Segment's SDK always sends them): absent is a
    /// problem of its own.
    pub fn required_settings(
        &mut self,
        name: &str,
        entry: Option<&CatalogEntry>,
    ) -> Option<Map<String, Value>> {
        if self.object.get(name).is_none_or(Value::is_null) {
            self.fail(name, "is required");
            return None;
        }
        self.settings_for_create(name, entry)
    }

    /// The settings of a new resource of kind `entry`, checked against its
    /// options (`settings::for_create`); unchecked when the kind is not
    /// known (its own field has failed).
    pub fn settings_for_create(
        &mut self,
        name: &str,
        entry: Option<&CatalogEntry>,
    ) -> Option<Map<String, Value>> {
        // Absent, the settings are empty, which a kind with required
        // options refuses.
        let absent = self.object.get(name).is_none_or(Value::is_null);
        let given = if absent {
            Map::new()
        } else {
            self.object(name)?
        };
        match entry {
            Some(entry) => Some(super::settings::for_create(entry, given, &mut self.errors)),
            None => {
                // Still listed: masks where secrets go, which need no kind.
                super::settings::masks_without_secret(&given, &mut self.errors);
                Some(given)
            }
        }
    }

    /// Segment's labels: `[{"key": "...", "value": "..."}]`, at most
    /// `MAX_LABELS` of them. A label may come with the `description` that
    /// `GET /labels` shows; a resource carries the workspace's label, so it
    /// is not kept.
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
            match Label::read(item) {
                Ok((label, _description)) => out.push(label),
                Err(message) => self.fail(&format!("{name}[{i}]"), message),
            }
        }
        Some(out)
    }

    /// A JSON array, its items unread.
    pub fn array(&mut self, name: &str) -> Option<Vec<Value>> {
        match self.value(name, false)? {
            Value::Array(items) => Some(items.clone()),
            _ => {
                self.fail(name, "must be a list");
                None
            }
        }
    }

    /// One label with its description (required).
    pub fn label(&mut self, name: &str) -> Option<(Label, Option<Description>)> {
        let item = self.value(name, true)?;
        Label::read(item).map_err(|m| self.fail(name, m)).ok()
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
