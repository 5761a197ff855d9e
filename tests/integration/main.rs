//! Black-box tests: real HTTP, real database (SQLite by default, PostgreSQL
//! when LEAKGUARD_TEST_DATABASE_URL is set).

mod api_audit;
mod api_conventions;
mod api_helpers;
mod api_isolation;
mod api_labels;
mod api_pagination;
mod api_roles;
mod api_tracking_plans;
mod api_warehouses;
mod api_write_keys;
mod binary;
mod browser;
mod console;
mod console_helpers;
mod email;
mod faults;
mod freshness;
mod hostile_api;
mod hostile_cases;
mod hostile_webhook;
mod leak_response;
mod oauth;
mod oauth_helpers;
mod openapi;
mod public_api;
mod scanning;
mod security;
mod slow_bodies;
mod smtp_server;
mod soak;
mod support;
