//! What leakguard's tests and its benchmark share, outside the product
//! crate: servers that stand in for the outside world and databases of
//! their own for each test.

pub mod db;
pub mod http;
pub mod keys;
pub mod smtp;
