//! Small helpers shared by the Public API tests.

#![allow(dead_code)]

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::support::{json, TestApp};

/// Catalog ids, as `GET /catalog/sources` and `/catalog/destinations` list them.
pub fn source_kind() -> &'static str {
    &leakguard::api::catalog::SOURCES[0].id
}
pub fn destination_kind() -> &'static str {
    &leakguard::api::catalog::DESTINATIONS[0].id
}

/// The Snowflake entry of `GET /catalog/warehouses`, and settings it takes.
pub fn snowflake_kind() -> &'static str {
    &leakguard::api::catalog::WAREHOUSES
        .iter()
        .find(|e| e.slug == "snowflake")
        .unwrap()
        .id
}
pub fn snowflake_settings() -> Value {
    json!({
        "account": "xy12345.us-east-1", "warehouse": "loading", "database": "events",
        "username": "segment", "password": "hunter2"
    })
}

/// Creates a warehouse (asserting 201) and returns it.
pub async fn create_warehouse(app: &TestApp, token: &str) -> Value {
    let res = app
        .post(
            "/warehouses",
            token,
            &json!({ "metadataId": snowflake_kind(), "settings": snowflake_settings() }),
        )
        .await;
    assert_eq!(res.status(), 201, "creating a warehouse");
    json(res).await["data"]["warehouse"].clone()
}

/// Creates a tracking plan (asserting 201) and returns it.
pub async fn create_tracking_plan(app: &TestApp, token: &str, name: &str) -> Value {
    let res = app
        .post(
            "/tracking-plans",
            token,
            &json!({ "name": name, "type": "LIVE" }),
        )
        .await;
    assert_eq!(res.status(), 201, "creating a tracking plan");
    json(res).await["data"]["trackingPlan"].clone()
}

/// Creates a label of the workspace (asserting 201).
pub async fn create_label(app: &TestApp, token: &str, key: &str, value: &str) {
    let res = app
        .post(
            "/labels",
            token,
            &json!({ "label": { "key": key, "value": value } }),
        )
        .await;
    assert_eq!(res.status(), 201, "creating label {key}:{value}");
}

/// Creates a source (asserting 201) and returns it.
pub async fn create_source(app: &TestApp, token: &str, slug: &str) -> Value {
    let res = app
        .post(
            "/sources",
            token,
            &json!({ "slug": slug, "enabled": true, "metadataId": source_kind() }),
        )
        .await;
    assert_eq!(res.status(), 201, "creating source {slug}");
    json(res).await["data"]["source"].clone()
}

/// Creates a destination of `source_id` (asserting 201) and returns it.
pub async fn create_destination(app: &TestApp, token: &str, source_id: &str) -> Value {
    let res = app
        .post(
            "/destinations",
            token,
            &json!({
                "sourceId": source_id,
                "metadataId": destination_kind(),
                "settings": { "url": "https://hooks.example/in", "sharedSecret": "hunter2" }
            }),
        )
        .await;
    assert_eq!(res.status(), 201, "creating a destination");
    json(res).await["data"]["destination"].clone()
}

/// `GET path` with the token, asserting 200; returns `data`.
pub async fn get_data(app: &TestApp, path: &str, token: &str) -> Value {
    let res = app.get(path, token).await;
    let status = res.status();
    let body = json(res).await;
    assert_eq!(status, 200, "GET {path}: {body}");
    body["data"].clone()
}

/// The audit events a query returns (owner token), newest first.
pub async fn audit_events(app: &TestApp, token: &str, query: &str) -> Vec<Value> {
    let data = get_data(app, &format!("/audit-events?{query}"), token).await;
    data["events"].as_array().unwrap().clone()
}

/// `errors[].field → message` of a 4xx body; asserts there is no `data`.
pub fn errors_by_field(body: &Value) -> BTreeMap<String, String> {
    assert!(
        body.get("data").is_none(),
        "errors and data together: {body}"
    );
    body["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors array: {body}"))
        .iter()
        .map(|e| {
            (
                e["field"].as_str().unwrap_or("").to_string(),
                e["message"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The single error message of a 4xx body.
pub fn error_message(body: &Value) -> String {
    assert!(
        body.get("data").is_none(),
        "errors and data together: {body}"
    );
    let errors = body["errors"].as_array().expect("an errors array");
    assert_eq!(errors.len(), 1, "{body}");
    errors[0]["message"].as_str().unwrap().to_string()
}

pub async fn audit_count(app: &TestApp) -> i64 {
    app.count("SELECT COUNT(*) FROM audit_events").await
}
