//! What leakguard's tests and its benchmark share, outside the product
//! crate: servers that stand in for the outside world (SMTP, GitHub's key
//! endpoint), a database of its own for each test and a handle to look
//! into it, a raw HTTP/1.1 client, a harness for running the real
//! binary, and output captured in memory.

pub mod db;
pub mod http;
pub mod keys;
pub mod output;
pub mod process;
pub mod smtp;
