//! Placeholder: the OpenAPI document is filled in by the Public API work.

pub fn document() -> serde_json::Value {
    serde_json::json!({ "openapi": "3.1.0", "info": { "title": "leakguard", "version": env!("CARGO_PKG_VERSION") }, "paths": {} })
}
