//! Public API tokens: `sgp_` + 58 random base62 characters + a 6-character
//! base62 CRC32 checksum. The checksum lets the scanner discard look-alikes
//! without a database round trip; the plaintext is never stored, only its
//! SHA-256 and a four-character hint.

use std::fmt;

use ring::rand::{SecureRandom, SystemRandom};

use crate::audit::{Actor, NewEvent};
use crate::db::{self, tokens::Token, Change};
use crate::domain::{Name, Role, TokenHash, TokenId, WorkspaceId};
use crate::id::BASE62;

pub const PREFIX: &str = "sgp_";
const RANDOM_LEN: usize = 58;
const CHECKSUM_LEN: usize = 6;
pub const TOKEN_LEN: usize = PREFIX.len() + RANDOM_LEN + CHECKSUM_LEN;
/// The regular expression to register with GitHub.
pub const TOKEN_REGEX: &str = r"\bsgp_[A-Za-z0-9]{64}\b";
/// The secret type name registered with GitHub's partner program.
pub const TOKEN_TYPE: &str = "leakguard_public_api_token";

/// A token that has the right shape and a valid checksum. It may still be
/// unknown or revoked: that is the database's question.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicToken(String);

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenFormatError {
    #[error("the token does not start with sgp_")]
    Prefix,
    #[error("the token must be sgp_ followed by 64 letters and digits")]
    Shape,
    #[error("the token's checksum does not match")]
    Checksum,
}

impl PublicToken {
    /// A fresh token from the operating system's CSPRNG.
    pub fn generate() -> PublicToken {
        let rng = SystemRandom::new();
        let mut body = String::with_capacity(TOKEN_LEN);
        body.push_str(PREFIX);
        let mut buf = [0u8; 64];
        while body.len() < PREFIX.len() + RANDOM_LEN {
            rng.fill(&mut buf).expect("the system CSPRNG failed");
            // 248 = 4 * 62: rejecting bytes above it keeps every character
            // equally likely.
            for b in buf.iter().filter(|b| **b < 248) {
                if body.len() == PREFIX.len() + RANDOM_LEN {
                    break;
                }
                body.push(BASE62[(*b % 62) as usize] as char);
            }
        }
        body.push_str(&checksum(&body));
        PublicToken(body)
    }

    pub fn parse(candidate: &str) -> Result<PublicToken, TokenFormatError> {
        if !candidate.starts_with(PREFIX) {
            return Err(TokenFormatError::Prefix);
        }
        if candidate.len() != TOKEN_LEN
            || !candidate[PREFIX.len()..]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric())
        {
            return Err(TokenFormatError::Shape);
        }
        let (body, sum) = candidate.split_at(TOKEN_LEN - CHECKSUM_LEN);
        if checksum(body) != sum {
            return Err(TokenFormatError::Checksum);
        }
        Ok(PublicToken(candidate.to_string()))
    }

    /// SHA-256 of the whole token: what the database keys on.
    pub fn hash(&self) -> TokenHash {
        TokenHash::of(&self.0)
    }

    /// The last four characters, shown to owners to tell tokens apart.
    pub fn hint(&self) -> &str {
        &self.0[TOKEN_LEN - 4..]
    }

    /// The plaintext, for the one response that hands it to its owner.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PublicToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicToken(…{})", self.hint())
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    // Into a buffer, not `hex::encode`, which builds the String a char at
    // a time: that was 4% of a 10,000-token alert.
    let mut out = [0u8; 64];
    hex::encode_to_slice(digest, &mut out).expect("64 hex digits for 32 bytes");
    String::from_utf8(out.to_vec()).expect("hex digits are ASCII")
}

/// The 6-character base62 CRC32 of everything before it. Public so that
/// tests can build tokens that are well-formed but were never issued.
pub fn checksum(body: &str) -> String {
    let mut n = crc32fast::hash(body.as_bytes());
    let mut out = [b'0'; CHECKSUM_LEN];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    String::from_utf8(out.to_vec()).expect("base62 is ASCII")
}

/// A token just minted: the plaintext exists only here, for the one answer
/// that hands it over.
pub struct MintedToken {
    pub secret: PublicToken,
    pub token: Token,
}

/// Mints a token of `workspace_id` as part of `change`, with its audit
/// event.
pub async fn mint(
    change: &mut Change,
    workspace_id: &WorkspaceId,
    name: Name,
    role: Role,
    actor: &Actor,
) -> db::Result<MintedToken> {
    let secret = PublicToken::generate();
    let token = Token {
        id: TokenId::generate(),
        workspace_id: workspace_id.clone(),
        name,
        role,
        token_hash: secret.hash(),
        hint: secret.hint().to_string(),
        created_at: crate::time::Timestamp(change.at()),
        created_by: actor.id.clone(),
        last_used_at: None,
        revoked_at: None,
        revoked_reason: None,
        revoked_alert_id: None,
    };
    db::tokens::insert(change, &token).await?;
    change.record_in(
        workspace_id.as_str(),
        NewEvent {
            event_type: "Token Created",
            actor: actor.clone(),
            resource_id: token.id.to_string(),
            resource_type: "token",
            resource_name: token.name.to_string(),
            details: serde_json::json!({ "role": role }),
        },
    )?;
    Ok(MintedToken { secret, token })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_parse_and_differ() {
        let a = PublicToken::generate();
        let b = PublicToken::generate();
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), 68);
        assert_eq!(PublicToken::parse(a.expose()).unwrap(), a);
        assert_eq!(a.hash().as_str().len(), 64);
        assert_eq!(a.hint(), &a.expose()[64..]);
    }

    #[test]
    fn rejects_bad_checksum_shape_and_prefix() {
        let t = PublicToken::generate();
        let mut chars: Vec<char> = t.expose().chars().collect();
        chars[10] = if chars[10] == 'a' { 'b' } else { 'a' };
        let flipped: String = chars.into_iter().collect();
        assert_eq!(
            PublicToken::parse(&flipped),
            Err(TokenFormatError::Checksum)
        );
        assert_eq!(
            PublicToken::parse(&t.expose()[..67]),
            Err(TokenFormatError::Shape)
        );
        assert_eq!(
            PublicToken::parse(&t.expose().replace("sgp_", "sgx_")),
            Err(TokenFormatError::Prefix)
        );
        assert_eq!(
            PublicToken::parse(&format!("sgp_{}", "é".repeat(32))),
            Err(TokenFormatError::Shape)
        );
    }

    #[test]
    fn debug_never_shows_the_token() {
        let t = PublicToken::generate();
        assert!(!format!("{t:?}").contains(&t.expose()[4..20]));
    }

    #[test]
    fn checksum_is_a_fixed_function_of_prefix_and_random_part() {
        // CRC32 (IEEE) of "sgp_" + 58 zeros is 0x9705bc48, "2lTILY" in
        // base62; computed independently (Python's zlib.crc32), so the token
        // format cannot drift without this test noticing.
        let body = format!("sgp_{}", "0".repeat(58));
        assert_eq!(checksum(&body), "2lTILY");
        assert!(PublicToken::parse(&format!("{body}2lTILY")).is_ok());
        assert_eq!(
            PublicToken::parse(&format!("{body}2lTILZ")),
            Err(TokenFormatError::Checksum)
        );
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Everything before the checksum: the prefix and 58 base62 characters.
        fn body() -> impl Strategy<Value = String> {
            "[0-9A-Za-z]{58}".prop_map(|random| format!("{PREFIX}{random}"))
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn a_well_formed_token_round_trips(body in body()) {
                let token = format!("{body}{}", checksum(&body));
                let parsed = PublicToken::parse(&token).unwrap();
                prop_assert_eq!(parsed.expose(), token.as_str());
                prop_assert_eq!(parsed.hint(), &token[TOKEN_LEN - 4..]);
                prop_assert_eq!(parsed.hash().to_string(), sha256_hex(token.as_bytes()));
                prop_assert_eq!(PublicToken::parse(parsed.expose()), Ok(parsed));
            }

            #[test]
            fn parsing_any_text_never_panics_and_keeps_it_verbatim(text in any::<String>()) {
                if let Ok(token) = PublicToken::parse(&text) {
                    prop_assert_eq!(token.expose(), text.as_str());
                }
            }
        }

        proptest! {
            // Each case tries all 4,000-odd single-character changes.
            #![proptest_config(ProptestConfig::with_cases(32))]

            #[test]
            fn the_checksum_refuses_every_single_character_change(body in body()) {
                let token = format!("{body}{}", checksum(&body));
                for position in PREFIX.len()..TOKEN_LEN {
                    for &replacement in BASE62 {
                        let mut changed = token.clone().into_bytes();
                        if changed[position] == replacement {
                            continue;
                        }
                        changed[position] = replacement;
                        let changed = String::from_utf8(changed).unwrap();
                        prop_assert_eq!(
                            PublicToken::parse(&changed),
                            Err(TokenFormatError::Checksum),
                            "position {}", position
                        );
                    }
                }
            }
        }
    }
}
