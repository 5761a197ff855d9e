//! Typed resource ids: a source id cannot be passed where a token id is
//! expected. Ids are opaque base62 (`crate::id::new_id`); one that could not
//! have been issued parses as an error, which the API answers with 404.

use serde::Serialize;

use super::Parse;

/// Longest id accepted; issued ids are 24 characters.
const MAX_ID: usize = 64;

/// What an id looks like, as the OpenAPI document declares it. An id of
/// any other shape could not have been issued (the API answers 404).
pub const ID_PATTERN: &str = "^[A-Za-z0-9_-]{1,64}$";

/// The schema of every id.
pub fn id_schema() -> serde_json::Value {
    serde_json::json!({ "type": "string", "pattern": ID_PATTERN })
}

macro_rules! id_type {
    ($($(#[$doc:meta])* $name:ident;)*) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
                serde_json::from_value(id_schema()).expect("a valid schema")
            }
        }

        impl utoipa::ToSchema for $name {}

        impl $name {
            /// A new random id.
            pub fn generate() -> $name {
                $name(crate::id::new_id())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl Parse for $name {
            fn parse(text: &str) -> Result<$name, String> {
                let ok = !text.is_empty()
                    && text.len() <= MAX_ID
                    && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
                if ok {
                    Ok($name(text.to_string()))
                } else {
                    Err("is not an id this API issued".to_string())
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl crate::db::ToArg for $name {
            fn to_arg(&self) -> crate::db::Arg<'_> {
                crate::db::Arg::Text(&self.0)
            }
        }
    )*};
}

id_type! {
    WorkspaceId;
    UserId;
    TokenId;
    SourceId;
    DestinationId;
    AuditEventId;
    AlertId;
    /// An OAuth app: the `sub` of its client assertions.
    OAuthAppId;
    /// One of an OAuth app's public keys: the `kid` of the assertions it
    /// verifies.
    OAuthKeyId;
    WarehouseId;
    TrackingPlanId;
    LabelId;
}
