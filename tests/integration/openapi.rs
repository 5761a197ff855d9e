//! `GET /openapi.json` documents exactly the routes the server answers.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::support::{json, TestApp};

const HTTP_METHODS: &[&str] = &["get", "put", "post", "delete", "options", "head", "patch"];

fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .filter(|k| HTTP_METHODS.contains(&k.as_str()))
                .map(move |m| (m.to_uppercase(), path.clone()))
        })
        .collect()
}

/// Whether the server routed the request somewhere, rather than to its
/// catch-all "no such endpoint".
async fn is_routed(app: &TestApp, method: &str, path: &str, token: &str) -> bool {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let res = app
        .client
        .request(method, app.url(path))
        .bearer_auth(token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    if res.status() != 404 {
        return true;
    }
    let body: Value = res.json().await.unwrap();
    body["errors"][0]["message"] != "no such endpoint"
}

#[tokio::test]
async fn the_document_lists_every_route_and_only_routes() {
    let app = TestApp::spawn().await;
    let ws = app.workspace("Acme", "owner@acme.test").await;
    let res = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let doc = json(res).await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));

    let served: BTreeSet<(String, String)> = leakguard::startup::routes()
        .into_iter()
        .map(|(method, path)| (method.to_string(), path.to_string()))
        .collect();
    let documented = documented(&doc);
    let undocumented: Vec<_> = served.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from /openapi.json: {undocumented:?}"
    );
    let phantom: Vec<_> = documented.difference(&served).collect();
    assert!(phantom.is_empty(), "documented but not routed: {phantom:?}");

    // `startup::routes()` is what the router is built from; check that the
    // running server agrees, path by path.
    for (method, path) in &documented {
        let concrete = path.replace("{id}", "no-such-id");
        assert!(
            is_routed(&app, method, &concrete, &ws.owner_token).await,
            "{method} {path} is documented but the server does not route it"
        );
    }
    assert!(
        !is_routed(&app, "GET", "/not-a-route", &ws.owner_token).await,
        "the probe must be able to tell"
    );
}

#[tokio::test]
async fn the_document_describes_auth_and_resources() {
    let app = TestApp::spawn().await;
    let doc = json(
        app.client
            .get(app.url("/openapi.json"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let scheme = &doc["components"]["securitySchemes"]["bearer"];
    assert_eq!(scheme["type"], "http");
    assert_eq!(scheme["scheme"], "bearer");
    assert_eq!(doc["security"], json!([{ "bearer": [] }]));
    for schema in [
        "Source",
        "Destination",
        "CatalogEntry",
        "AuditEvent",
        "TokenView",
        "User",
    ] {
        assert!(
            doc["components"]["schemas"][schema].is_object(),
            "schema {schema}"
        );
    }
    let source = &doc["components"]["schemas"]["Source"]["properties"];
    for field in [
        "id",
        "slug",
        "name",
        "workspaceId",
        "enabled",
        "settings",
        "labels",
        "metadata",
    ] {
        assert!(source[field].is_object(), "Source.{field}");
    }
    // The partner endpoint and the probes take no token.
    assert_eq!(
        doc["paths"]["/secret-scanning/github"]["post"]["security"],
        json!([{}])
    );
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            assert!(
                op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                "{method} {path} documents its responses"
            );
        }
    }
}
