//! What an OAuth app may be granted: scopes, and how long its access
//! tokens live.

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::json;
use utoipa::openapi::{RefOr, Schema};

use super::{Parse, Role};

/// What an access token may do in its workspace. `public_api:read_write`
/// is Segment's Public API scope; `public_api:read` is its read-only
/// counterpart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, utoipa::ToSchema)]
pub enum Scope {
    #[serde(rename = "public_api:read")]
    PublicApiRead,
    #[serde(rename = "public_api:read_write")]
    PublicApiReadWrite,
}

impl Scope {
    pub const ALL: [Scope; 2] = [Scope::PublicApiReadWrite, Scope::PublicApiRead];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::PublicApiRead => "public_api:read",
            Scope::PublicApiReadWrite => "public_api:read_write",
        }
    }

    /// The role an access token of this scope acts with.
    pub fn role(self) -> Role {
        match self {
            Scope::PublicApiRead => Role::ReadOnly,
            Scope::PublicApiReadWrite => Role::Member,
        }
    }
}

impl Parse for Scope {
    fn parse(text: &str) -> Result<Scope, String> {
        Scope::ALL
            .into_iter()
            .find(|s| s.as_str() == text)
            .ok_or_else(|| {
                let names: Vec<&str> = Scope::ALL.iter().map(|s| s.as_str()).collect();
                format!("must be one of {}", names.join(", "))
            })
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of at least one scope. OAuth writes it as scope names separated
/// by spaces (RFC 6749 section 3.3), which is also how it is stored; the
/// API writes it as a JSON array.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scopes {
    set: BTreeSet<Scope>,
    /// The names separated by spaces, in a fixed order.
    text: String,
}

impl Scopes {
    /// A list in which no scope appears twice.
    pub fn from_list(list: Vec<Scope>) -> Result<Scopes, String> {
        let count = list.len();
        let set: BTreeSet<Scope> = list.into_iter().collect();
        if set.is_empty() {
            Err("must name at least one scope".into())
        } else if set.len() != count {
            Err("must not name a scope twice".into())
        } else {
            let names: Vec<&str> = set.iter().map(|s| s.as_str()).collect();
            let text = names.join(" ");
            Ok(Scopes { set, text })
        }
    }

    /// The role of an access token of these scopes: the highest they give.
    pub fn role(&self) -> Role {
        self.set
            .iter()
            .map(|s| s.role())
            .max()
            .unwrap_or(Role::ReadOnly)
    }

    /// Whether every scope of `other` is one of these.
    pub fn contains_all(&self, other: &Scopes) -> bool {
        other.set.is_subset(&self.set)
    }

    pub fn iter(&self) -> impl Iterator<Item = Scope> + '_ {
        self.set.iter().copied()
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// `public_api:read public_api:read_write`: OAuth's form.
impl std::fmt::Display for Scopes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// Scope names separated by single spaces, as OAuth's `scope` parameter
/// and the database write them.
impl Parse for Scopes {
    fn parse(text: &str) -> Result<Scopes, String> {
        let list = text
            .split(' ')
            .map(|name| {
                Scope::parse(name).map_err(|_| {
                    let names: Vec<&str> = Scope::ALL.iter().map(|s| s.as_str()).collect();
                    format!(
                        "must be scope names separated by spaces, each one of {}",
                        names.join(", ")
                    )
                })
            })
            .collect::<Result<Vec<Scope>, String>>()?;
        Scopes::from_list(list)
    }
}

impl Serialize for Scopes {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.set.iter())
    }
}

impl utoipa::PartialSchema for Scopes {
    fn schema() -> RefOr<Schema> {
        let names: Vec<&str> = Scope::ALL.iter().map(|s| s.as_str()).collect();
        serde_json::from_value(json!({
            "type": "array",
            "items": { "type": "string", "enum": names },
            "minItems": 1,
            "maxItems": names.len(),
            "uniqueItems": true,
            "description": "`public_api:read_write` acts as the member role, `public_api:read` as read_only",
        }))
        .expect("a valid schema")
    }
}
impl utoipa::ToSchema for Scopes {}

impl crate::db::ToArg for Scopes {
    fn to_arg(&self) -> crate::db::Arg<'_> {
        crate::db::Arg::Text(&self.text)
    }
}

/// How long an app's access tokens live: the periods Segment offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct TokenLifetime(i64);

const DAY: i64 = 24 * 3600;

impl TokenLifetime {
    /// 1, 2 or 3 days; 1, 2 or 3 weeks; 30 days; in seconds.
    pub const ALLOWED_SECS: [i64; 7] =
        [DAY, 2 * DAY, 3 * DAY, 7 * DAY, 14 * DAY, 21 * DAY, 30 * DAY];

    pub fn from_secs(secs: i64) -> Result<TokenLifetime, String> {
        if TokenLifetime::ALLOWED_SECS.contains(&secs) {
            Ok(TokenLifetime(secs))
        } else {
            Err(format!(
                "must be one of {} seconds (1, 2 or 3 days; 1, 2 or 3 weeks; 30 days)",
                TokenLifetime::ALLOWED_SECS
                    .map(|s| s.to_string())
                    .join(", ")
            ))
        }
    }

    pub fn secs(self) -> i64 {
        self.0
    }

    pub fn micros(self) -> i64 {
        self.0 * 1_000_000
    }
}

impl Parse for TokenLifetime {
    fn parse(text: &str) -> Result<TokenLifetime, String> {
        let secs = text
            .parse::<i64>()
            .map_err(|_| "must be a whole number of seconds".to_string())?;
        TokenLifetime::from_secs(secs)
    }
}

impl utoipa::PartialSchema for TokenLifetime {
    fn schema() -> RefOr<Schema> {
        serde_json::from_value(json!({
            "type": "integer",
            "enum": TokenLifetime::ALLOWED_SECS,
            "description": "Seconds: 1, 2 or 3 days; 1, 2 or 3 weeks; or 30 days",
        }))
        .expect("a valid schema")
    }
}
impl utoipa::ToSchema for TokenLifetime {}

impl crate::db::ToArg for TokenLifetime {
    fn to_arg(&self) -> crate::db::Arg<'_> {
        crate::db::Arg::Int(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_as_oauth_writes_them() {
        let both = Scopes::parse("public_api:read_write public_api:read").unwrap();
        assert_eq!(both.to_string(), "public_api:read public_api:read_write");
        assert_eq!(both.role(), Role::Member);
        let read = Scopes::parse("public_api:read").unwrap();
        assert_eq!(read.role(), Role::ReadOnly);
        assert!(both.contains_all(&read));
        assert!(!read.contains_all(&both));
        for bad in [
            "",
            " ",
            "public_api:read  public_api:read_write",
            "public_api:admin",
            "public_api:read public_api:read",
        ] {
            assert!(Scopes::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn lifetimes_are_segments_periods() {
        assert_eq!(TokenLifetime::from_secs(86_400).unwrap().secs(), 86_400);
        assert_eq!(TokenLifetime::parse("2592000").unwrap().secs(), 30 * DAY);
        assert!(TokenLifetime::from_secs(3600).is_err());
        assert!(TokenLifetime::parse("1d").is_err());
    }
}
