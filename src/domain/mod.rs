//! Values that parse once, at the edge (a request body, a command-line
//! argument, a stored row), and are trusted everywhere after: the API, the
//! CLI and the console share them, so they accept and refuse the same
//! input.

mod ids;
mod oauth;
mod public_key;
mod text;

pub use ids::*;
pub use oauth::{Scope, Scopes, TokenLifetime};
pub use public_key::{KeyAlgorithm, PublicKey};
pub use text::{Description, Email, Name, Slug, TokenHash, LABEL_PATTERN, MAX_NAME};

use serde::Serialize;

/// A type that parses from text, refusing what it cannot hold with a
/// message that completes "<field> …" (e.g. "must not be empty").
pub trait Parse: Sized {
    fn parse(text: &str) -> Result<Self, String>;
}

/// What a token or a user may do in its workspace; each role includes the
/// ones below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    ReadOnly,
    Member,
    Owner,
}

impl Role {
    /// Every role's name, as the API, the CLI and the database spell them.
    pub const NAMES: &'static [&'static str] = &["owner", "member", "read_only"];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::ReadOnly => "read_only",
            Role::Member => "member",
            Role::Owner => "owner",
        }
    }
}

impl Parse for Role {
    fn parse(text: &str) -> Result<Role, String> {
        match text {
            "read_only" => Ok(Role::ReadOnly),
            "member" => Ok(Role::Member),
            "owner" => Ok(Role::Owner),
            _ => Err(format!("must be one of {}", Role::NAMES.join(", "))),
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Role, String> {
        Role::parse(s)
    }
}

impl crate::db::ToArg for Role {
    fn to_arg(&self) -> crate::db::Arg<'_> {
        crate::db::Arg::Text(self.as_str())
    }
}

/// Segment's `{"key": …, "value": …}` label of a source.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Label {
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\x00-\x1F\x7F-\x9F]*$"
    )]
    pub key: String,
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\x00-\x1F\x7F-\x9F]*$"
    )]
    pub value: String,
}

impl Label {
    /// The longest key or value, in characters.
    pub const MAX: usize = 100;

    /// A label as a request sends it: `{"key", "value", "description"?}`,
    /// key and value 1 to 100 characters, none of them a control character
    /// (a label's key and value are also its path, `/labels/{key}/{value}`,
    /// where no id may hold one).
    pub fn read(item: &serde_json::Value) -> Result<(Label, Option<Description>), String> {
        const SHAPE: &str =
            "must be {\"key\": string, \"value\": string, \"description\"?: string}, key and value each 1 to 100 characters";
        let object = item.as_object().ok_or(SHAPE)?;
        if object
            .keys()
            .any(|k| !matches!(k.as_str(), "key" | "value" | "description"))
        {
            return Err(SHAPE.into());
        }
        let text = |field: &str| object.get(field).and_then(serde_json::Value::as_str);
        let fits = |s: &str| (1..=Label::MAX).contains(&s.chars().count());
        let (Some(key), Some(value)) = (text("key"), text("value")) else {
            return Err(SHAPE.into());
        };
        if !fits(key) || !fits(value) {
            return Err(SHAPE.into());
        }
        if key.chars().chain(value.chars()).any(char::is_control) {
            return Err("a label's key and value may not contain control characters".into());
        }
        let description = match object.get("description") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(d)) => {
                Some(Description::parse(d).map_err(|e| format!("description {e}"))?)
            }
            Some(_) => return Err(SHAPE.into()),
        };
        Ok((
            Label {
                key: key.to_string(),
                value: value.to_string(),
            },
            description,
        ))
    }
}

/// A label as requests send it: Segment's `LabelV1`, whose `description`
/// only `POST /labels` keeps.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct LabelInput {
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\x00-\x1F\x7F-\x9F]*$"
    )]
    key: String,
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\x00-\x1F\x7F-\x9F]*$"
    )]
    value: String,
    #[schema(nullable)]
    description: Option<Description>,
}
