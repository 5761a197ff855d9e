//! The role × endpoint matrix: owner, member and read_only tokens, and
//! OAuth access tokens of each scope (acting as the role it gives), against
//! every Public API endpoint. Allowed calls succeed; the others get 403
//! naming the role they need and change nothing.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::api_helpers::*;
use crate::oauth_helpers::{self, Signer};
use crate::support::{json, TestApp, Workspace};

const ROLES: [&str; 3] = ["read_only", "member", "owner"];

/// A Public API token of each role, then an access token of each scope
/// with the role that scope gives.
const CALLERS: [(&str, &str); 5] = [
    ("read_only", "read_only"),
    ("member", "member"),
    ("owner", "owner"),
    ("public_api:read", "read_only"),
    ("public_api:read_write", "member"),
];

/// Per role, resources of its own to read, change and delete, so that one
/// role's successful DELETE cannot change what the next role sees.
struct Targets {
    source: String,
    /// The write key `source` was created with.
    write_key: String,
    doomed_source: String,
    destination: String,
    doomed_destination: String,
    /// `source` feeds it.
    warehouse: String,
    doomed_warehouse: String,
    /// `source` follows it.
    plan: String,
    doomed_plan: String,
    /// A label of the workspace, `doomed-<role>:x`.
    doomed_label: String,
    token: String,
    /// A token's plaintext, to revoke by value.
    token_secret: String,
    user: String,
    oauth_app: String,
    doomed_oauth_app: String,
    /// The first key of `oauth_app`.
    oauth_key: String,
}

async fn targets(app: &TestApp, ws: &Workspace, caller: &str) -> Targets {
    let role = caller.replace(':', "-");
    let role = role.as_str();
    let owner = &ws.owner_token;
    let source = create_source(app, owner, &format!("src-{role}")).await;
    let doomed_source = create_source(app, owner, &format!("doomed-{role}")).await;
    let id = |v: &Value| v["id"].as_str().unwrap().to_string();
    let destination = create_destination(app, owner, &id(&source)).await;
    let doomed_destination = create_destination(app, owner, &id(&source)).await;
    let warehouse = id(&create_warehouse(app, owner).await);
    let doomed_warehouse = id(&create_warehouse(app, owner).await);
    let path = format!("/warehouses/{warehouse}/connected-sources/{}", id(&source));
    assert_eq!(app.post(&path, owner, &json!(null)).await.status(), 201);
    let plan = id(&create_tracking_plan(app, owner, &format!("plan {role}")).await);
    let doomed_plan = id(&create_tracking_plan(app, owner, &format!("doomed {role}")).await);
    let path = format!("/tracking-plans/{plan}/sources");
    let res = app
        .post(&path, owner, &json!({ "sourceId": id(&source) }))
        .await;
    assert_eq!(res.status(), 200);
    let doomed_label = format!("doomed-{role}");
    create_label(app, owner, &doomed_label, "x").await;
    let (_, token) = app.mint(ws, &format!("victim-{role}"), "read_only").await;
    let (token_secret, _) = app.mint(ws, &format!("revoked-{role}"), "read_only").await;
    let scopes = ["public_api:read"];
    let oauth =
        oauth_helpers::register(app, ws, &format!("app-{role}"), &scopes, Signer::rsa()).await;
    let doomed_oauth =
        oauth_helpers::register(app, ws, &format!("doomed-{role}"), &scopes, Signer::rsa()).await;
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
        warehouse,
        doomed_warehouse,
        plan,
        doomed_plan,
        doomed_label,
        token,
        token_secret,
        user,
        oauth_app: oauth.app_id,
        doomed_oauth_app: doomed_oauth.app_id,
        oauth_key: oauth.key_id,
    }
}

/// The least role an endpoint needs and the request that exercises it.
fn case(method: &str, path: &str, role: &str, t: &Targets) -> (&'static str, String, Value) {
    let id_of = |p: &str| match (method, p) {
        ("DELETE", "/sources/{id}") => t.doomed_source.clone(),
        (_, p) if p.starts_with("/sources/{id}") => t.source.clone(),
        ("DELETE", "/destinations/{id}") => t.doomed_destination.clone(),
        (_, "/destinations/{id}") => t.destination.clone(),
        ("DELETE", "/warehouses/{id}") => t.doomed_warehouse.clone(),
        (_, p) if p.starts_with("/warehouses/{id}") => t.warehouse.clone(),
        ("DELETE", "/tracking-plans/{id}") => t.doomed_plan.clone(),
        (_, p) if p.starts_with("/tracking-plans/{id}") => t.plan.clone(),
        (_, "/tokens/{id}") => t.token.clone(),
        (_, "/users/{id}") => t.user.clone(),
        (_, "/catalog/sources/{id}") => source_kind().to_string(),
        (_, "/catalog/destinations/{id}") => destination_kind().to_string(),
        (_, "/catalog/warehouses/{id}") => snowflake_kind().to_string(),
        ("DELETE", "/oauth-apps/{id}") => t.doomed_oauth_app.clone(),
        (_, "/oauth-apps/{id}" | "/oauth-apps/{id}/keys" | "/oauth-apps/{id}/keys/{keyId}") => {
            t.oauth_app.clone()
        }
        _ => unreachable!("no id for {p}"),
    };
    let concrete = if path.starts_with("/labels/") {
        path.replace("{key}", &t.doomed_label)
            .replace("{value}", "x")
    } else if path.contains('{') {
        path.replace("{id}", &id_of(path))
            .replace("{keyId}", &t.oauth_key)
            .replace("{writeKey}", &t.write_key)
            .replace("{sourceId}", &t.source)
    } else {
        path.to_string()
    };
    let rules = json!([{ "type": "TRACK", "key": "Signed Up", "version": 1,
                         "jsonSchema": { "type": "object" } }]);
    let (least, concrete, body) = match (method, path) {
        ("GET", "/") => ("read_only", concrete, json!(null)),
        ("GET", "/tokens" | "/tokens/{id}" | "/users" | "/users/{id}" | "/audit-events") => {
            ("owner", concrete, json!(null))
        }
        ("GET", "/oauth-apps" | "/oauth-apps/{id}") => ("owner", concrete, json!(null)),
        ("GET", _) => ("read_only", concrete, json!(null)),
        ("POST", "/sources") => (
            "member",
            concrete,
            json!({ "slug": format!("new-{role}"), "enabled": true, "metadataId": source_kind() }),
        ),
        ("PATCH", "/sources/{id}") => (
            "member",
            concrete,
            json!({ "name": format!("renamed by {role}") }),
        ),
        ("POST" | "PUT", "/sources/{id}/labels") => (
            "member",
            concrete,
            json!({ "labels": [{ "key": t.doomed_label, "value": "x" }] }),
        ),
        (
            "DELETE",
            "/sources/{id}" | "/destinations/{id}" | "/warehouses/{id}" | "/tracking-plans/{id}",
        ) => ("member", concrete, json!(null)),
        ("POST", "/sources/{id}/writekey") => ("member", concrete, json!(null)),
        ("DELETE", "/sources/{id}/writekey/{writeKey}") => ("member", concrete, json!(null)),
        ("POST", "/destinations") => (
            "member",
            concrete,
            json!({ "sourceId": t.source, "metadataId": destination_kind(),
                    "settings": { "url": "https://hooks.example/in" } }),
        ),
        ("PATCH", "/destinations/{id}") => ("member", concrete, json!({ "enabled": true })),
        ("POST", "/warehouses" | "/warehouses/validation") => (
            "member",
            concrete,
            json!({ "metadataId": snowflake_kind(), "settings": snowflake_settings() }),
        ),
        ("PATCH", "/warehouses/{id}") => ("member", concrete, json!({ "enabled": false })),
        ("POST" | "DELETE", "/warehouses/{id}/connected-sources/{sourceId}") => {
            ("member", concrete, json!(null))
        }
        ("POST", "/tracking-plans") => (
            "member",
            concrete,
            json!({ "name": format!("by {role}"), "type": "LIVE" }),
        ),
        ("PATCH", "/tracking-plans/{id}") => ("member", concrete, json!({ "description": role })),
        ("PUT" | "PATCH", "/tracking-plans/{id}/rules") => {
            ("member", concrete, json!({ "rules": rules }))
        }
        ("DELETE", "/tracking-plans/{id}/rules") => (
            "member",
            format!(
                "{concrete}?rules={}",
                urlencoding(r#"[{"type":"TRACK","key":"Signed Up","version":1}]"#)
            ),
            json!(null),
        ),
        ("POST", "/tracking-plans/{id}/sources") => {
            ("member", concrete, json!({ "sourceId": t.source }))
        }
        ("DELETE", "/tracking-plans/{id}/sources") => (
            "member",
            format!("{concrete}?sourceId={}", t.source),
            json!(null),
        ),
        ("POST", "/labels") => (
            "member",
            concrete,
            json!({ "label": { "key": format!("new-{role}"), "value": "v" } }),
        ),
        ("DELETE", "/labels/{key}/{value}") => ("member", concrete, json!(null)),
        ("POST", "/tokens") => (
            "owner",
            concrete,
            json!({ "name": format!("by {role}"), "role": "member" }),
        ),
        ("DELETE", "/tokens/{id}" | "/users/{id}") => ("owner", concrete, json!(null)),
        ("POST", "/users") => (
            "owner",
            concrete,
            json!({ "email": format!("new-{role}@acme.test"), "role": "read_only" }),
        ),
        ("PATCH", "/users/{id}") => ("owner", concrete, json!({ "role": "read_only" })),
        ("POST", "/oauth-apps") => (
            "owner",
            concrete,
            json!({
                "name": format!("new by {role}"), "publicKey": Signer::p256().public_pem,
                "keyName": "k", "scopes": ["public_api:read"], "tokenExpiresIn": 86400,
            }),
        ),
        ("PATCH", "/oauth-apps/{id}") => (
            "owner",
            concrete,
            json!({ "name": format!("renamed by {role}") }),
        ),
        ("DELETE", "/oauth-apps/{id}" | "/oauth-apps/{id}/keys/{keyId}") => {
            ("owner", concrete, json!(null))
        }
        // A second key, so that the first can then be removed.
        ("POST", "/oauth-apps/{id}/keys") => (
            "owner",
            concrete,
            json!({ "publicKey": Signer::p256().public_pem, "keyName": "second" }),
        ),
        ("POST", "/token-revocations") => ("owner", concrete, json!({ "token": t.token_secret })),
        other => panic!("the role matrix does not cover {other:?}: add it"),
    };
    (least, concrete, body)
}

/// A query parameter's value, percent-encoded.
fn urlencoding(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

fn rank(role: &str) -> usize {
    ROLES.iter().position(|r| *r == role).unwrap()
}

#[tokio::test]
async fn every_endpoint_for_every_role() {
    // The owner's token sets up every caller's targets and walks every
    // endpoint itself: far past the default burst, which is not under test.
    let app = TestApp::spawn_with(&[("RATE_LIMIT_BURST", "5000")]).await;
    let ws = app.workspace("Acme", "owner@acme.test").await;
    let mut covered = BTreeSet::new();
    // DELETEs last, so that the resources other calls use still exist.
    // With the status that means success: 201 where something is created.
    let mut endpoints: Vec<(String, &str, u16)> = leakguard::api::endpoints()
        .into_iter()
        .map(|e| {
            let success = if e.doc.responses.contains_key(&201) {
                201
            } else {
                200
            };
            (e.method.to_string(), e.path, success)
        })
        .collect();
    endpoints.sort_by_key(|(m, _, _)| m == "DELETE");

    for (caller, role) in CALLERS {
        let (token, actor) = if caller == "owner" {
            let actor = format!("public-api-token/{}", ws.owner_token_id);
            (ws.owner_token.clone(), actor)
        } else if ROLES.contains(&caller) {
            let (token, id) = app.mint(&ws, &format!("{role} token"), role).await;
            (token, format!("public-api-token/{id}"))
        } else {
            let (client, token) = oauth_helpers::oauth_token(&app, &ws, caller).await;
            let actor = format!("oauth-app/{}/token/{}", client.app_id, &token[64..]);
            (token, actor)
        };
        let t = targets(&app, &ws, caller).await;
        let label = caller.replace(':', "-");
        for (method, path, success) in &endpoints {
            let (least, concrete, body) = case(method, path, &label, &t);
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
            let what = format!("{caller} {method} {path}");
            if rank(role) >= rank(least) {
                assert_eq!(status, *success, "{what}: {body}");
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
        // Nothing a read-only token did is in the audit trail (an access
        // token's issue is, as its app's doing).
        if role == "read_only" {
            let n = app
                .count(&format!(
                    "SELECT COUNT(*) FROM audit_events WHERE actor = '{actor}'
                     AND type <> 'Access Token Issued'"
                ))
                .await;
            assert_eq!(n, 0, "{caller}");
        }
    }
    let all: BTreeSet<(String, String)> = leakguard::api::endpoints()
        .into_iter()
        .map(|e| (e.method.to_string(), e.path.to_string()))
        .collect();
    assert_eq!(covered, all);
}
