//! Text values with rules: names, slugs, email addresses, token hashes.
//! Each rule is also written as the JSON Schema pattern the OpenAPI
//! document declares (ECMA-262, which Python's `re` and Rust's `regex`
//! read alike here); the tests hold each parser and its pattern equal.

use serde::Serialize;
use serde_json::json;
use utoipa::openapi::{RefOr, Schema};

use super::Parse;

/// Longest name, in characters.
pub const MAX_NAME: usize = 200;

/// The characters `str::trim` removes (Unicode White_Space), and the
/// control characters (`char::is_control`), as the insides of a regex
/// character class.
macro_rules! space {
    () => {
        r"\t\n\x0B\x0C\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000"
    };
}
macro_rules! control {
    () => {
        r"\x00-\x1F\x7F-\x9F"
    };
}

/// A name: 1 to 200 characters once trimmed, none of them a control
/// character. Space around it is allowed and dropped.
pub const NAME_PATTERN: &str = concat!(
    "^[",
    space!(),
    "]*",
    "[^",
    space!(),
    control!(),
    "]",
    "(?:[^",
    control!(),
    "]{0,198}[^",
    space!(),
    control!(),
    "])?",
    "[",
    space!(),
    "]*$"
);

/// A label's key or value: no control characters.
pub const LABEL_PATTERN: &str = concat!("^[^", control!(), "]*$");

/// A slug: 1 to 100 lower-case letters, digits, `-` and `_`, the first a
/// letter or digit, once trimmed.
pub const SLUG_PATTERN: &str = concat!(
    "^[",
    space!(),
    "]*",
    "[a-z0-9][a-z0-9_-]{0,99}",
    "[",
    space!(),
    "]*$"
);

/// The characters of an email address's local part (RFC 5322 `atext`,
/// ASCII only).
macro_rules! atext {
    () => {
        r"A-Za-z0-9!#$%&'*+/=?^_`{|}~-"
    };
}
macro_rules! label {
    () => {
        r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    };
}

/// An email address, once trimmed: a dot-atom local part of at most 64
/// characters, `@`, and a domain of letters, digits and hyphens; at most
/// 254 characters in all. Each pattern says one of these; a valid address
/// matches all three.
pub const EMAIL_PATTERNS: [&str; 3] = [
    concat!(
        "^[",
        space!(),
        "]*",
        "[",
        atext!(),
        "]+(?:\\.[",
        atext!(),
        "]+)*",
        "@",
        label!(),
        "(?:\\.",
        label!(),
        ")*",
        "[",
        space!(),
        "]*$"
    ),
    // Not anchored at the end: the first @ is at most 64 characters in.
    concat!("^[", space!(), "]*[^@]{1,64}@"),
    concat!(
        "^[",
        space!(),
        "]*[^",
        space!(),
        "]{1,254}[",
        space!(),
        "]*$"
    ),
];

const MAX_LOCAL_PART: usize = 64;
const MAX_EMAIL: usize = 254;

/// Trimmed, non-empty, at most `max` characters, no control characters.
fn plain_text(text: &str, max: usize) -> Result<&str, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        Err("must not be empty".into())
    } else if trimmed.chars().count() > max {
        Err(format!("must be at most {max} characters"))
    } else if trimmed.chars().any(char::is_control) {
        Err("must not contain control characters".into())
    } else {
        Ok(trimmed)
    }
}

macro_rules! text_type {
    ($($(#[$doc:meta])* $name:ident;)*) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
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

text_type! {
    /// A display name: of a workspace, a user, a token, a source.
    Name;
    /// Lower-case letters, digits, `-` and `_`, starting with a letter or
    /// digit: a name that can go in a URL.
    Slug;
    /// An email address, lower-cased.
    Email;
    /// The SHA-256 of a token's plaintext, as 64 lower-case hex digits: all
    /// that is stored of a token.
    TokenHash;
    /// Free text about something (a tracking plan, a label): at most
    /// `MAX_DESCRIPTION` characters, kept as given.
    Description;
}

impl Parse for Name {
    fn parse(text: &str) -> Result<Name, String> {
        plain_text(text, MAX_NAME).map(|t| Name(t.to_string()))
    }
}

impl Name {
    /// `base` with `suffix` appended, shortened to fit.
    pub fn with_suffix(&self, suffix: &str) -> Name {
        let keep = MAX_NAME.saturating_sub(suffix.chars().count());
        let mut name: String = self.0.chars().take(keep).collect();
        name.push_str(suffix);
        Name(name)
    }
}

impl Parse for Slug {
    fn parse(text: &str) -> Result<Slug, String> {
        let value = plain_text(text, 100)?;
        let ok = value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
            && value.as_bytes()[0].is_ascii_alphanumeric();
        if ok {
            Ok(Slug(value.to_string()))
        } else {
            Err(
                "must be lower-case letters, digits, '-' or '_', starting with a letter or digit"
                    .into(),
            )
        }
    }
}

impl Slug {
    /// A slug made from any name: lower-cased, runs of other characters
    /// turned into one `-`; "workspace" when nothing is left.
    pub fn from_name(name: &str) -> Slug {
        let mut slug = String::new();
        for c in name.chars().flat_map(char::to_lowercase) {
            if c.is_ascii_alphanumeric() {
                slug.push(c);
            } else if !slug.ends_with('-') && !slug.is_empty() {
                slug.push('-');
            }
        }
        let slug = slug.trim_end_matches('-');
        if slug.is_empty() {
            Slug("workspace".into())
        } else {
            Slug(slug.chars().take(60).collect())
        }
    }

    /// A slug is always a valid name: the default name of what it names.
    pub fn to_name(&self) -> Name {
        Name(self.0.clone())
    }

    /// This slug with `-suffix`, for when the slug is taken.
    pub fn with_suffix(&self, suffix: &str) -> Slug {
        Slug(format!("{}-{suffix}", self.0))
    }
}

impl Parse for Email {
    fn parse(text: &str) -> Result<Email, String> {
        let value = plain_text(text, MAX_EMAIL)?;
        let not_an_address = || "must be an email address, such as alice@example.com".to_string();
        let (local, domain) = value.split_once('@').ok_or_else(not_an_address)?;
        let atext = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~-".contains(c);
        let label = |l: &str| {
            (1..=63).contains(&l.len())
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        let well_formed = local.chars().count() <= MAX_LOCAL_PART
            && local
                .split('.')
                .all(|a| !a.is_empty() && a.chars().all(atext))
            && domain.split('.').all(label);
        if !well_formed {
            return Err(not_an_address());
        }
        // It must also be an address the mailer can send to.
        let address: lettre::Address = value.parse().map_err(|_| not_an_address())?;
        Ok(Email(address.to_string().to_ascii_lowercase()))
    }
}

impl Email {
    /// The part before the `@`.
    pub fn local_part(&self) -> &str {
        self.0.split('@').next().unwrap_or("")
    }

    /// The name of a user who gave none: the local part (or, if that is
    /// blank, the address), which never holds a control character.
    pub fn default_name(&self) -> Name {
        let local = self.local_part().trim();
        let base = if local.is_empty() {
            self.0.as_str()
        } else {
            local
        };
        Name(base.chars().take(MAX_NAME).collect())
    }
}

/// Longest description, in characters.
pub const MAX_DESCRIPTION: usize = 1000;

/// What a description may not hold: control characters other than tab,
/// line feed and carriage return.
pub const DESCRIPTION_PATTERN: &str = r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*$";

impl Parse for Description {
    fn parse(text: &str) -> Result<Description, String> {
        if text.chars().count() > MAX_DESCRIPTION {
            Err(format!("must be at most {MAX_DESCRIPTION} characters"))
        } else if text
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
        {
            Err("must not contain control characters other than tabs and line breaks".into())
        } else {
            Ok(Description(text.to_string()))
        }
    }
}

impl Description {
    pub fn empty() -> Description {
        Description(String::new())
    }
}

impl Parse for TokenHash {
    fn parse(text: &str) -> Result<TokenHash, String> {
        if text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            Ok(TokenHash(text.to_string()))
        } else {
            Err("must be 64 lower-case hex digits".into())
        }
    }
}

impl TokenHash {
    /// The hash of a token's plaintext (`crate::token`).
    pub fn of(plaintext: &str) -> TokenHash {
        TokenHash(crate::token::sha256_hex(plaintext.as_bytes()))
    }
}

/// A string schema of `pattern`, as a named component.
fn string_schema(pattern: &str, description: &str) -> RefOr<Schema> {
    let value = json!({ "type": "string", "pattern": pattern, "description": description });
    serde_json::from_value(value).expect("a valid schema")
}

impl utoipa::PartialSchema for Name {
    fn schema() -> RefOr<Schema> {
        string_schema(
            NAME_PATTERN,
            "1 to 200 characters once trimmed, no control characters",
        )
    }
}
impl utoipa::ToSchema for Name {}

impl utoipa::PartialSchema for Slug {
    fn schema() -> RefOr<Schema> {
        string_schema(
            SLUG_PATTERN,
            "1 to 100 lower-case letters, digits, '-' or '_', starting with a letter or digit",
        )
    }
}
impl utoipa::ToSchema for Slug {}

impl utoipa::PartialSchema for Description {
    fn schema() -> RefOr<Schema> {
        let value = json!({
            "type": "string",
            "maxLength": MAX_DESCRIPTION,
            "pattern": DESCRIPTION_PATTERN,
            "description": "At most 1000 characters; no control characters but tabs and line breaks",
        });
        serde_json::from_value(value).expect("a valid schema")
    }
}
impl utoipa::ToSchema for Description {}

impl utoipa::PartialSchema for Email {
    fn schema() -> RefOr<Schema> {
        use utoipa::openapi::schema::{AllOfBuilder, ObjectBuilder, SchemaType, Type};
        let mut schema = AllOfBuilder::new()
            .schema_type(Type::String)
            .description(Some(
                "An email address (ASCII); at most 64 characters before the @, 254 in all",
            ));
        for pattern in EMAIL_PATTERNS {
            schema = schema.item(
                ObjectBuilder::new()
                    .schema_type(SchemaType::AnyValue)
                    .pattern(Some(pattern)),
            );
        }
        schema.into()
    }
}
impl utoipa::ToSchema for Email {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_refuse_control_characters() {
        assert_eq!(Name::parse("  Acme ").unwrap().as_str(), "Acme");
        assert!(Name::parse("a\u{7}b").is_err());
        assert!(Name::parse("   ").is_err());
        assert!(Name::parse(&"x".repeat(MAX_NAME + 1)).is_err());
        assert_eq!(
            Name::parse(&"x".repeat(MAX_NAME))
                .unwrap()
                .with_suffix(" (2)")
                .as_str()
                .chars()
                .count(),
            MAX_NAME
        );
    }

    #[test]
    fn labels_refuse_control_characters_as_their_documented_pattern_says() {
        let read =
            |key: &str| super::super::Label::read(&serde_json::json!({"key": key, "value": "v"}));
        assert!(read("team").is_ok());
        assert!(read("ë,\u{9f}").is_err());
        assert!(read("a\u{1a}").is_err());
        // The literal in the schema attributes of `Label` is this pattern.
        let schema =
            serde_json::to_value(<super::super::Label as utoipa::PartialSchema>::schema()).unwrap();
        for field in ["key", "value"] {
            assert_eq!(schema["properties"][field]["pattern"], LABEL_PATTERN);
        }
    }

    #[test]
    fn slugs() {
        assert!(Slug::parse("web-site_2").is_ok());
        assert!(Slug::parse("-web").is_err());
        assert!(Slug::parse("Web").is_err());
        assert_eq!(Slug::from_name("Acme Inc.").as_str(), "acme-inc");
        assert_eq!(Slug::from_name("  ***  ").as_str(), "workspace");
    }

    #[test]
    fn emails_are_lower_cased() {
        assert_eq!(
            Email::parse(" Alice@Example.COM ").unwrap().as_str(),
            "alice@example.com"
        );
        assert!(Email::parse("alice").is_err());
    }

    #[test]
    fn token_hashes() {
        let hash = TokenHash::of("sgp_x");
        assert_eq!(TokenHash::parse(hash.as_str()), Ok(hash));
        assert!(TokenHash::parse("ABC").is_err());
    }

    /// Each parser accepts exactly what its documented pattern matches:
    /// clients and schemathesis validate with the pattern, the server
    /// with the parser.
    mod patterns {
        use super::*;
        use proptest::prelude::*;
        use regex::Regex;

        /// Characters around every edge of the rules: space and control
        /// characters of both kinds, the email punctuation, non-ASCII.
        fn text(max: usize) -> impl Strategy<Value = String> {
            let chars = prop::sample::select(vec![
                'a', 'z', 'Q', '0', '9', '-', '_', '.', '@', '+', '!', '~', '{', ' ', '\t', '\n',
                '\r', '\u{0B}', '\u{85}', '\u{A0}', '\u{2003}', '\u{3000}', '\u{0}', '\u{1F}',
                '\u{7F}', '\u{9F}', 'é', '\u{FEFF}', 'ß', 'K', '/', '"',
            ]);
            prop::collection::vec(chars, 0..max).prop_map(|c| c.into_iter().collect())
        }

        fn matches_all(patterns: &[&str], s: &str) -> bool {
            patterns.iter().all(|p| Regex::new(p).unwrap().is_match(s))
        }

        fn long(s: &str, n: usize) -> String {
            s.repeat(n)
        }

        #[test]
        fn edges() {
            let name = [NAME_PATTERN];
            for (text, ok) in [
                ("a", true),
                (" \u{3000}a\t", true),
                ("", false),
                ("a\u{85}b", false),
                ("\u{85}a", true),
                (&long("x", 200), true),
                (&long("x", 201), false),
                (&format!("  {}  ", long("x", 200)), true),
            ] {
                assert_eq!(Name::parse(text).is_ok(), ok, "{text:?}");
                assert_eq!(matches_all(&name, text), ok, "{text:?}");
            }
            let local = long("a", 64);
            for (text, ok) in [
                ("a@b", true),
                (" a.b@c-d.e ", true),
                ("a..b@c", false),
                ("a@b_c", false),
                ("a@-b", false),
                (&format!("{local}@x"), true),
                (&format!("{local}a@x"), false),
                (&format!("a@{}b", long("b.", 126)), false),
                (&format!("a@{}b", long("b.", 125)), true),
            ] {
                assert_eq!(Email::parse(text).is_ok(), ok, "{text:?}");
                assert_eq!(matches_all(&EMAIL_PATTERNS, text), ok, "{text:?}");
            }
        }

        proptest! {
            #[test]
            fn names(s in text(12)) {
                prop_assert_eq!(Name::parse(&s).is_ok(), matches_all(&[NAME_PATTERN], &s), "{:?}", s);
            }

            #[test]
            fn slugs(s in text(12)) {
                prop_assert_eq!(Slug::parse(&s).is_ok(), matches_all(&[SLUG_PATTERN], &s), "{:?}", s);
            }

            #[test]
            fn emails(s in text(16)) {
                prop_assert_eq!(Email::parse(&s).is_ok(), matches_all(&EMAIL_PATTERNS, &s), "{:?}", s);
            }

            #[test]
            fn emails_of_the_right_shape(
                lead in "[ \t]{0,2}",
                local in "[a-z.+]{1,70}",
                domain in "[a-z0-9.-]{1,20}",
                trail in "[ \n]{0,2}",
            ) {
                let s = format!("{lead}{local}@{domain}{trail}");
                prop_assert_eq!(Email::parse(&s).is_ok(), matches_all(&EMAIL_PATTERNS, &s), "{:?}", s);
            }

            #[test]
            fn descriptions(s in text(12)) {
                prop_assert_eq!(Description::parse(&s).is_ok(), matches_all(&[DESCRIPTION_PATTERN], &s), "{:?}", s);
            }

            #[test]
            fn ids(s in text(8)) {
                let parsed = crate::domain::SourceId::parse(&s).is_ok();
                prop_assert_eq!(parsed, matches_all(&[crate::domain::ID_PATTERN], &s), "{:?}", s);
            }
        }
    }
}
