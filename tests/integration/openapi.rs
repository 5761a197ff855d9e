//! `GET /openapi.json` is the contract: it documents exactly the routes the
//! server answers, and what it says of them (statuses, media types,
//! required and unknown body fields) is what the server does. schemathesis
//! checks the same from outside (tests/contract); these tests say it in
//! the suite, on both backends.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use crate::api_helpers::*;
use crate::support::{json, TestApp};

const HTTP_METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

async fn document(app: &TestApp) -> Value {
    let res = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    json(res).await
}

/// Every documented (METHOD, path), and each path's methods.
fn documented(doc: &Value) -> BTreeMap<String, BTreeSet<String>> {
    doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .map(|(path, item)| {
            let methods = item
                .as_object()
                .unwrap()
                .keys()
                .filter(|k| HTTP_METHODS.contains(&k.as_str()))
                .map(|m| m.to_uppercase())
                .collect();
            (path.clone(), methods)
        })
        .collect()
}

fn concrete(path: &str) -> String {
    path.replace("{id}", "no-such-id")
        .replace("{writeKey}", "no-such-key")
}

/// Whether the server routed the request to a handler, rather than to its
/// catch-all "no such endpoint" or a 405.
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
    if res.status() == 405 {
        return false;
    }
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
    let doc = document(&app).await;
    assert_eq!(doc["openapi"], "3.1.0");

    let served: BTreeSet<(String, String)> = leakguard::startup::routes()
        .into_iter()
        .map(|(method, path)| (method.to_string(), path.to_string()))
        .collect();
    let documented = documented(&doc);
    let listed: BTreeSet<(String, String)> = documented
        .iter()
        .flat_map(|(path, methods)| methods.iter().map(move |m| (m.clone(), path.clone())))
        .collect();
    assert_eq!(served, listed);

    // The running server agrees, path by path: each documented method is
    // routed, and every other method answers 405 naming exactly those.
    for (path, methods) in &documented {
        let url = concrete(path);
        for method in methods {
            assert!(
                is_routed(&app, method, &url, &ws.owner_token).await,
                "{method} {path} is documented but the server does not route it"
            );
        }
        for method in ["GET", "PUT", "POST", "PATCH", "DELETE", "OPTIONS", "TRACE"] {
            if methods.contains(method) {
                continue;
            }
            let res = app
                .client
                .request(method.parse().unwrap(), app.url(&url))
                .bearer_auth(&ws.owner_token)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 405, "{method} {path}");
            let allow: BTreeSet<String> = res.headers()["allow"]
                .to_str()
                .unwrap()
                .split(", ")
                .map(str::to_string)
                .collect();
            assert_eq!(&allow, methods, "Allow of {path}");
            let body = json(res).await;
            assert_eq!(body["errors"][0]["type"], "method-not-allowed");
        }
    }
    assert!(
        !is_routed(&app, "GET", "/not-a-route", &ws.owner_token).await,
        "the probe must be able to tell"
    );
    for path in ["/not-a-route", "/sources/x/y", "/catalog", "/sources/"] {
        let res = app.get(path, &ws.owner_token).await;
        assert_eq!(res.status(), 404, "{path}");
        assert_eq!(json(res).await["errors"][0]["message"], "no such endpoint");
    }
}

#[tokio::test]
async fn the_document_describes_auth_statuses_and_media_types() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
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
        "Errors",
    ] {
        assert!(
            doc["components"]["schemas"][schema].is_object(),
            "schema {schema}"
        );
    }
    let source = &doc["components"]["schemas"]["Source"];
    assert_eq!(source["additionalProperties"], false);
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
        assert!(source["properties"][field].is_object(), "Source.{field}");
    }
    // The partner endpoint and the probes take no token.
    assert_eq!(
        doc["paths"]["/secret-scanning/github"]["post"]["security"],
        json!([])
    );
    // What the alert endpoint decides before reading a body, and while it
    // does: a deadline (408), a byte budget or a key not yet fetched (503,
    // with Retry-After).
    let alert = &doc["paths"]["/secret-scanning/github"]["post"]["responses"];
    for status in ["200", "401", "408", "413", "422", "503"] {
        assert!(
            alert[status].is_object(),
            "the alert endpoint documents {status}"
        );
    }
    assert_eq!(alert["503"]["headers"]["Retry-After"]["required"], true);
    // /readyz says when its shared probe ran; /metrics is elsewhere when
    // LEAKGUARD_METRICS_BIND is set.
    let readiness = doc["paths"]["/readyz"]["get"]["responses"]["200"]["content"]
        ["application/json"]["schema"]["$ref"]
        .as_str()
        .unwrap();
    let readiness = &doc["components"]["schemas"][readiness.rsplit('/').next().unwrap()];
    assert!(readiness["required"]
        .as_array()
        .unwrap()
        .contains(&json!("checkedAt")));
    assert!(doc["paths"]["/metrics"]["get"]["responses"]["404"].is_object());

    let public_api: BTreeSet<String> = leakguard::api::endpoints()
        .iter()
        .map(|e| format!("{} {}", e.method.as_str().to_lowercase(), e.path))
        .collect();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let what = format!("{method} {path}");
            let responses = op["responses"].as_object().unwrap();
            assert!(op["operationId"].is_string(), "{what}");
            if !public_api.contains(&what) {
                continue;
            }
            for status in ["401", "406", "429", "503"] {
                assert!(responses.contains_key(status), "{what} documents {status}");
            }
            for (status, response) in responses {
                let media: BTreeSet<&str> = response["content"]
                    .as_object()
                    .unwrap()
                    .keys()
                    .map(String::as_str)
                    .collect();
                if status == "406" {
                    assert_eq!(media, BTreeSet::from(["application/json"]), "{what}");
                } else {
                    assert_eq!(media.len(), 4, "{what} {status}: {media:?}");
                    assert!(media.contains("application/vnd.segment.v1+json"));
                }
                if status.starts_with('4') || status.starts_with('5') {
                    assert_eq!(
                        response["content"]["application/json"]["schema"]["$ref"],
                        "#/components/schemas/Errors",
                        "{what} {status}"
                    );
                }
                let headers = &response["headers"];
                match status.as_str() {
                    "401" | "406" => assert!(headers.is_null(), "{what} {status}"),
                    // 429 also comes to an address that failed to
                    // authenticate too often, before its token is read.
                    "404" | "429" | "503" => {
                        assert_eq!(headers["X-RateLimit-Remaining"]["required"], false)
                    }
                    _ => assert_eq!(
                        headers["X-RateLimit-Remaining"]["required"], true,
                        "{what} {status}"
                    ),
                }
                if status == "429" || status == "503" {
                    assert_eq!(headers["Retry-After"]["required"], true, "{what}");
                }
            }
            if path.contains('{') {
                assert!(responses.contains_key("404"), "{what}");
            }
            if op["requestBody"].is_object() {
                for status in ["400", "408", "413", "415", "422"] {
                    assert!(responses.contains_key(status), "{what} documents {status}");
                }
            }
        }
    }
    // Pagination bounds. `pagination.count` is an undocumented alias.
    let params = doc["paths"]["/sources"]["get"]["parameters"]
        .as_array()
        .unwrap();
    let names: Vec<&str> = params.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["pagination[count]", "pagination[cursor]"]);
    assert_eq!(params[0]["schema"]["minimum"], 1);
    assert_eq!(params[0]["schema"]["maximum"], 1000);
}

/// The schema of a body, with its `$ref` resolved.
fn body_schema<'a>(doc: &'a Value, op: &Value) -> &'a Value {
    let reference = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        .as_str()
        .expect("a named body schema");
    &doc["components"]["schemas"][reference.rsplit('/').next().unwrap()]
}

/// What the server does with a body is what the document says of it: an
/// empty one is refused for exactly the required fields (or, for an
/// update, for having none), and an unknown field is refused.
#[tokio::test]
async fn required_and_unknown_body_fields_are_as_documented() {
    let app = TestApp::spawn().await;
    let ws = app.workspace("Acme", "owner@acme.test").await;
    let owner = &ws.owner_token;
    let source = create_source(&app, owner, "web").await;
    let source_id = source["id"].as_str().unwrap();
    let destination = create_destination(&app, owner, source_id).await;
    let (_, token_id) = app.mint(&ws, "ci", "member").await;
    let res = app
        .post(
            "/users",
            owner,
            &json!({ "email": "dev@acme.test", "role": "member" }),
        )
        .await;
    let user = json(res).await["data"]["user"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let oauth = crate::oauth_helpers::register(
        &app,
        &ws,
        "Bot",
        &["public_api:read"],
        crate::oauth_helpers::Signer::rsa(),
    )
    .await;
    let warehouse = create_warehouse(&app, owner).await;
    let plan = create_tracking_plan(&app, owner, "Plan").await;
    // The id for `{id}`, by the path's first segment.
    let ids = [
        ("/sources/", source_id.to_string()),
        ("/destinations/", destination["id"].as_str().unwrap().into()),
        ("/warehouses/", warehouse["id"].as_str().unwrap().into()),
        ("/tracking-plans/", plan["id"].as_str().unwrap().into()),
        ("/tokens/", token_id),
        ("/users/", user),
        ("/oauth-apps/", oauth.app_id.clone()),
    ];
    let doc = document(&app).await;
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            // The alert's body and the token endpoint's form are no
            // Public API bodies (scanning.rs and oauth.rs test them).
            if !op["requestBody"].is_object()
                || path == "/secret-scanning/github"
                || path == "/oauth2/token"
            {
                continue;
            }
            // A body whose settings depend on its kind is one variant per
            // kind: each is closed, and what all require is required.
            let schema = body_schema(&doc, op);
            let variants: Vec<&Value> = match schema["oneOf"].as_array() {
                Some(refs) => refs
                    .iter()
                    .map(|r| {
                        let name = r["$ref"].as_str().unwrap().rsplit('/').next().unwrap();
                        &doc["components"]["schemas"][name]
                    })
                    .collect(),
                None => vec![schema],
            };
            for variant in &variants {
                assert_eq!(variant["additionalProperties"], false, "{method} {path}");
            }
            let url = match ids.iter().find(|(p, _)| path.starts_with(p)) {
                Some((_, id)) => path.replace("{id}", id),
                None => path.clone(),
            };
            let send = |body: Value| {
                app.client
                    .request(method.to_uppercase().parse().unwrap(), app.url(&url))
                    .bearer_auth(owner)
                    .json(&body)
                    .send()
            };
            let res = send(json!({})).await.unwrap();
            assert_eq!(res.status(), 422, "{method} {path} {{}}");
            let errors = errors_by_field(&json(res).await);
            let required_of = |v: &Value| -> BTreeSet<String> {
                v["required"]
                    .as_array()
                    .map(|r| r.iter().map(|f| f.as_str().unwrap().to_string()).collect())
                    .unwrap_or_default()
            };
            let required = variants
                .iter()
                .map(|v| required_of(v))
                .reduce(|a, b| a.intersection(&b).cloned().collect())
                .unwrap_or_default();
            if required.is_empty() {
                // An update of nothing: the schema asks for some field.
                assert_eq!(schema["minProperties"], 1, "{method} {path}");
                assert!(schema["not"].is_object(), "{method} {path}");
                assert_eq!(
                    errors.keys().collect::<Vec<_>>(),
                    ["body"],
                    "{method} {path}"
                );
            } else {
                let missing: BTreeSet<String> = errors
                    .iter()
                    .filter(|(_, message)| message.starts_with("is required"))
                    .map(|(field, _)| field.clone())
                    .collect();
                assert_eq!(missing, required, "{method} {path}");
            }
            let res = send(json!({ "zzUnknown": 1 })).await.unwrap();
            assert_eq!(res.status(), 422, "{method} {path}");
            let errors = errors_by_field(&json(res).await);
            assert!(
                errors["zzUnknown"].starts_with("unknown field"),
                "{method} {path}: {errors:?}"
            );
            checked += 1;
        }
    }
    assert_eq!(
        checked, 22,
        "POST and PATCH of sources, destinations, warehouses, tracking plans, users and OAuth \
         apps; POST and PUT of a source's labels; POST /warehouses/validation; PUT and PATCH of \
         rules; POST of a plan's sources; POST /labels; POST /tokens, /token-revocations, \
         /oauth-apps/{{id}}/keys"
    );
}
