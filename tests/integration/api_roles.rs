//! The role × endpoint matrix: owner, member and read_only tokens against
//! every Public API endpoint. Allowed calls succeed; the others get 403
//! naming the role they need and change nothing.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::api_helpers::*;
use crate::support::{json, TestApp, Workspace};

const ROLES: [&str; 3] = ["read_only", "member", "owner"];

/// Per role, resources of its own to read, change and delete, so that one
/// role's successful DELETE cannot change what the next role sees.
struct Targets {
    source: String,
    /// The write key `source` was created with.
    write_key: String,
    doomed_source: String,
    destination: String,
    doomed_destination: String,
    token: String,
    user: String,
}

async fn targets(app: &TestApp, ws: &Workspace, role: &str) -> Targets {
    let owner = &ws.owner_token;
    let source = create_source(app, owner, &format!("src-{role}")).await;
    let doomed_source = create_source(app, owner, &format!("doomed-{role}")).await;
    let id = |v: &Value| v["id"].as_str().unwrap().to_string();
    let destination = create_destination(app, owner, &id(&source)).await;
    let doomed_destination = create_destination(app, owner, &id(&source)).await;
    let (_, token) = app.mint(ws, &format!("victim-{role}"), "read_only").await;
    let res = app
        .post(
            "/users",
            owner,
            &json!({ "email": format!("user-{role}@acme.test"), "role": "member" }),
        )
        .await;
    assert_eq!(res.status(), 201);
    let user = json(res).await["data"]["user"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    Targets {
        source: id(&source),
        write_key: source["writeKeys"][0].as_str().unwrap().to_string(),
        doomed_source: id(&doomed_source),
        destination: id(&destination),
        doomed_destination: id(&doomed_destination),
        token,
        user,
    }
}

/// The least role an endpoint needs, and the request that exercises it.
fn case(method: &str, path: &str, role: &str, t: &Targets) -> (&'static str, String, Value) {
    let id_of = |p: &str| match (method, p) {
        ("DELETE", "/sources/{id}") => t.doomed_source.clone(),
        (_, "/sources/{id}" | "/sources/{id}/writekey" | "/sources/{id}/writekey/{writeKey}") => {
            t.source.clone()
        }
        ("DELETE", "/destinations/{id}") => t.doomed_destination.clone(),
        (_, "/destinations/{id}") => t.destination.clone(),
        (_, "/tokens/{id}") => t.token.clone(),
        (_, "/users/{id}") => t.user.clone(),
        (_, "/catalog/sources/{id}") => source_kind().to_string(),
        (_, "/catalog/destinations/{id}") => destination_kind().to_string(),
        _ => unreachable!("no id for {p}"),
    };
    let concrete = if path.contains("{id}") {
        path.replace("{id}", &id_of(path))
            .replace("{writeKey}", &t.write_key)
    } else {
        path.to_string()
    };
    let (least, body) = match (method, path) {
        ("GET", "/") => ("read_only", json!(null)),
        ("GET", "/sources" | "/sources/{id}" | "/destinations" | "/destinations/{id}") => {
            ("read_only", json!(null))
        }
        ("GET", p) if p.starts_with("/catalog/") => ("read_only", json!(null)),
        ("POST", "/sources") => (
            "member",
            json!({ "slug": format!("new-{role}"), "enabled": true, "metadataId": source_kind() }),
        ),
        ("PATCH", "/sources/{id}") => ("member", json!({ "name": format!("renamed by {role}") })),
        ("DELETE", "/sources/{id}" | "/destinations/{id}") => ("member", json!(null)),
        ("POST", "/sources/{id}/writekey") => ("member", json!(null)),
        ("DELETE", "/sources/{id}/writekey/{writeKey}") => ("member", json!(null)),
        ("POST", "/destinations") => (
            "member",
            json!({ "sourceId": t.source, "metadataId": destination_kind() }),
        ),
        ("PATCH", "/destinations/{id}") => ("member", json!({ "enabled": true })),
        ("GET", "/tokens" | "/tokens/{id}" | "/users" | "/users/{id}" | "/audit-events") => {
            ("owner", json!(null))
        }
        ("POST", "/tokens") => (
            "owner",
            json!({ "name": format!("by {role}"), "role": "member" }),
        ),
        ("DELETE", "/tokens/{id}" | "/users/{id}") => ("owner", json!(null)),
        ("POST", "/users") => (
            "owner",
            json!({ "email": format!("new-{role}@acme.test"), "role": "read_only" }),
        ),
        ("PATCH", "/users/{id}") => ("owner", json!({ "role": "read_only" })),
        other => panic!("the role matrix does not cover {other:?}: add it"),
    };
    (least, concrete, body)
}

fn rank(role: &str) -> usize {
    ROLES.iter().position(|r| *r == role).unwrap()
}

#[tokio::test]
async fn every_endpoint_for_every_role() {
    let app = TestApp::spawn().await;
    let ws = app.workspace("Acme", "owner@acme.test").await;
    let mut covered = BTreeSet::new();
    // DELETEs last, so that the resources other calls use still exist.
    let mut endpoints: Vec<(String, &str)> = leakguard::api::endpoints()
        .into_iter()
        .map(|e| (e.method.to_string(), e.path))
        .collect();
    endpoints.sort_by_key(|(m, _)| m == "DELETE");

    for role in ROLES {
        let (token, token_id) = if role == "owner" {
            (ws.owner_token.clone(), ws.owner_token_id.clone())
        } else {
            app.mint(&ws, &format!("{role} token"), role).await
        };
        let t = targets(&app, &ws, role).await;
        for (method, path) in &endpoints {
            let (least, concrete, body) = case(method, path, role, &t);
            covered.insert((method.clone(), path.to_string()));
            let request = app
                .client
                .request(method.parse().unwrap(), app.url(&concrete))
                .bearer_auth(&token);
            let request = if body.is_null() {
                request
            } else {
                request.json(&body)
            };
            let events_before = audit_count(&app).await;
            let res = request.send().await.unwrap();
            let status = res.status().as_u16();
            let body = json(res).await;
            let what = format!("{role} {method} {path}");
            if rank(role) >= rank(least) {
                let expected = if method == "POST" { 201 } else { 200 };
                assert_eq!(status, expected, "{what}: {body}");
                assert!(body["data"].is_object(), "{what}: {body}");
            } else {
                assert_eq!(status, 403, "{what}: {body}");
                let message = error_message(&body);
                assert!(
                    message.contains(&format!("the {least} role"))
                        && message.contains(&format!("this token has {role}")),
                    "{what}: {message}"
                );
                assert_eq!(body["errors"][0]["type"], "forbidden");
                assert_eq!(
                    audit_count(&app).await,
                    events_before,
                    "{what}: a refused call is not audited"
                );
            }
        }
        // Nothing a read-only token did is in the audit trail.
        if role == "read_only" {
            let actor = format!("public-api-token/{token_id}");
            let n = app
                .count(&format!(
                    "SELECT COUNT(*) FROM audit_events WHERE actor = '{actor}'"
                ))
                .await;
            assert_eq!(n, 0);
        }
    }
    let all: BTreeSet<(String, String)> = leakguard::api::endpoints()
        .into_iter()
        .map(|e| (e.method.to_string(), e.path.to_string()))
        .collect();
    assert_eq!(covered, all);
}
