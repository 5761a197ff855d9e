//! leakguard: a Public API token issuer with GitHub secret scanning built in.
//! `main.rs` only parses the command line; everything else lives here so
//! that tests can drive it.

pub mod api;
pub mod audit;
pub mod cli;
pub mod client;
pub mod config;
pub mod console;
pub mod db;
pub mod domain;
pub mod id;
pub mod incident;
pub mod metrics;
pub mod middleware;
pub mod notify;
pub mod onboarding;
pub mod operations;
pub mod pem;
pub mod revocation;
pub mod scanning;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod time;
pub mod tls;
pub mod token;
pub mod token_lookup;
