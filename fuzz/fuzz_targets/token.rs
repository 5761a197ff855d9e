//! Token parsing: the Authorization header and every reported alert entry go
//! through it before anything touches the database.
#![no_main]

use leakguard::token::{PublicToken, TOKEN_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(candidate) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(token) = PublicToken::parse(candidate) {
        assert_eq!(token.expose(), candidate);
        assert_eq!(candidate.len(), TOKEN_LEN);
        assert_eq!(token.hash().len(), 64);
        assert!(candidate.ends_with(token.hint()));
    }
});
