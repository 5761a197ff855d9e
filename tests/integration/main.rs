//! Black-box tests: real HTTP, real database (SQLite by default, PostgreSQL
//! when LEAKGUARD_TEST_DATABASE_URL is set).

mod api_helpers;
mod binary;
mod public_api;
mod scanning;
mod support;
