//! GitHub's secret-scanning partner endpoint: verify the signature over the
//! raw body, then revoke every leaked token of ours in one transaction.

pub mod alert;
pub mod handler;
pub mod keys;
pub mod recorder;
pub mod signature;
pub mod simulate;

pub const KEY_ID_HEADER: &str = "Github-Public-Key-Identifier";
pub const SIGNATURE_HEADER: &str = "Github-Public-Key-Signature";
