//! Opaque identifiers and the base62 alphabet shared with tokens.

use rand::Rng;

pub const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A new opaque resource id: 24 base62 characters (~142 bits), so ids are
/// neither guessable nor meaningful.
pub fn new_id() -> String {
    random_base62(24)
}

/// `len` random base62 characters from the thread's CSPRNG.
pub fn random_base62(len: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| BASE62[rng.gen_range(0..62)] as char)
        .collect()
}
