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
pub mod oauth;
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

// A request allocates many small, short-lived values on its worker thread;
// mimalloc's thread-local free lists serve them for much less CPU than
// glibc's malloc (docs/BENCHMARKS.md). Declared here, in the library, so the
// service, the CLI and the benchmark's server all run on it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
