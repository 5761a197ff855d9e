//! The rows of the hostile-input tables (hostile_api.rs,
//! hostile_webhook.rs): requests written byte by byte with
//! test_support's raw HTTP client.

use test_support::http::RawRequest;

/// One row of a hostile-input table: a request and the answer it must get.
pub struct Case {
    pub name: &'static str,
    pub request: RawRequest,
    pub status: u16,
    /// Part of one of the answer's `errors[].message`s; unused for 2xx.
    pub message: &'static str,
}

pub fn case(name: &'static str, request: RawRequest, status: u16, message: &'static str) -> Case {
    Case {
        name,
        request,
        status,
        message,
    }
}
