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
pub use text::{Email, Name, Slug, TokenHash, MAX_NAME};

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
    #[schema(min_length = 1, max_length = 100)]
    pub key: String,
    #[schema(min_length = 1, max_length = 100)]
    pub value: String,
}
