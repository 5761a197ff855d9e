//! Segment's conventions: 401/403/404/406/409/413/422/429 and their bodies,
//! media types, rate-limit headers, no CORS, and the last-owner rule.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::api_helpers::*;
use crate::support::{json, TestApp};

fn fields(body: &Value) -> BTreeSet<String> {
    errors_by_field(body).into_keys().collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// Sends a request and returns (status, body).
async fn call(app: &TestApp, method: &str, path: &str, token: &str, body: Value) -> (u16, Value) {
    let request = app
        .client
        .request(method.parse().unwrap(), app.url(path))
        .bearer_auth(token)
        .json(&body);
    let res = request.send().await.unwrap();
    (res.status().as_u16(), json(res).await)
}

#[tokio::test]
async fn every_validation_failure_is_listed_at_once_and_nothing_is_written() {
    let app = TestApp::spawn().await;
    let ws = app.workspace("Acme", "owner@acme.test").await;
    let owner = ws.owner_token.clone();
    let source = create_source(&app, &owner, "web").await;
    let source_path = format!("/sources/{}", source["id"].as_str().unwrap());
    let destination = create_destination(&app, &owner, source["id"].as_str().unwrap()).await;
    let destination_path = format!("/destinations/{}", destination["id"].as_str().unwrap());
    let user_path = format!(
        "/users/{}",
        get_data(&app, "/users", &owner).await["users"][0]["id"]
            .as_str()
            .unwrap()
    );
    let long = "x".repeat(201);
    let events = audit_count(&app).await;

    let cases: Vec<(&str, String, Value, &[&str])> = vec![
        (
            "POST",
            "/sources".into(),
            json!({}),
            &["slug", "enabled", "metadataId"],
        ),
        ("POST", "/sources".into(), json!([]), &["body"]),
        ("POST", "/sources".into(), json!("text"), &["body"]),
        (
            "POST",
            "/sources".into(),
            json!({
                "slug": "Not A Slug!", "name": "", "enabled": "yes", "metadataId": "nope",
                "settings": [1], "labels": [{ "key": "" }, { "key": "k", "value": "v" }, 3],
                "color": "red"
            }),
            &[
                "slug",
                "name",
                "enabled",
                "metadataId",
                "settings",
                "labels[0]",
                "labels[2]",
                "color",
            ],
        ),
        (
            "POST",
            "/sources".into(),
            json!({
                "slug": "-leading-dash", "name": long, "enabled": 1,
                "metadataId": destination_kind(), "labels": { "k": "v" },
                "settings": { "apiKey": "••••" }
            }),
            &[
                "slug",
                "name",
                "enabled",
                "metadataId",
                "labels",
                "settings.apiKey",
            ],
        ),
        (
            "POST",
            "/sources".into(),
            json!({
                "slug": "a".repeat(101), "name": "tab\there", "enabled": true,
                "metadataId": source_kind(), "labels": [{ "key": "k", "value": "v".repeat(101) }]
            }),
            &["slug", "name", "labels[0]"],
        ),
        ("PATCH", source_path.clone(), json!({}), &["body"]),
        (
            "PATCH",
            source_path.clone(),
            json!({ "name": null }),
            &["body"],
        ),
        (
            "PATCH",
            source_path.clone(),
            json!({ "slug": 5, "enabled": "no", "metadataId": "x", "settings": { "token": "••••" } }),
            &["slug", "enabled", "metadataId", "settings.token"],
        ),
        (
            "POST",
            "/destinations".into(),
            json!({}),
            &["sourceId", "metadataId", "settings"],
        ),
        (
            "POST",
            "/destinations".into(),
            json!({
                "sourceId": "nope", "metadataId": source_kind(), "name": 7, "enabled": 1,
                "settings": "x", "extra": true
            }),
            &[
                "sourceId",
                "metadataId",
                "name",
                "enabled",
                "settings",
                "extra",
            ],
        ),
        (
            "PATCH",
            destination_path.clone(),
            json!({ "sourceId": "other", "name": "", "settings": { "nested": { "password": "••••" } } }),
            &["sourceId", "name", "settings.nested"],
        ),
        ("PATCH", destination_path.clone(), json!({}), &["body"]),
        ("POST", "/tokens".into(), json!({}), &["name", "role"]),
        (
            "POST",
            "/tokens".into(),
            json!({ "name": "", "role": "admin", "scope": "all" }),
            &["name", "role", "scope"],
        ),
        (
            "POST",
            "/users".into(),
            json!({ "email": "not-an-email", "name": 3, "role": "boss" }),
            &["email", "name", "role"],
        ),
        ("POST", "/users".into(), json!({}), &["email", "role"]),
        ("PATCH", user_path.clone(), json!({}), &["body"]),
        (
            "PATCH",
            user_path.clone(),
            json!({ "role": "root", "email": "x@y.test" }),
            &["role", "email"],
        ),
    ];
    for (method, path, body, expected) in cases {
        let (status, answer) = call(&app, method, &path, &owner, body.clone()).await;
        assert_eq!(status, 422, "{method} {path} {body}: {answer}");
        assert_eq!(
            fields(&answer),
            set(expected),
            "{method} {path} {body}: {answer}"
        );
        for error in answer["errors"].as_array().unwrap() {
            assert_eq!(error["type"], "validation");
            assert!(!error["message"].as_str().unwrap().is_empty());
        }
    }
    assert_eq!(
        audit_count(&app).await,
        events,
        "failed requests write nothing"
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM sources").await, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM destinations").await, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM tokens").await, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 1);
    let unchanged = get_data(&app, &source_path, &owner).await;
    assert_eq!(unchanged["source"], source);

    // Broken JSON is a 400 in the same error shape.
    let res = app
        .client
        .post(app.url("/sources"))
        .bearer_auth(&owner)
        .header("content-type", "application/json")
        .body("{\"slug\":")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(json(res).await["errors"][0]["type"], "bad-request");
}

#[tokio::test]
async fn duplicate_slugs_conflict_within_a_workspace_only() {
    let app = TestApp::spawn().await;
    let ws = app.workspace("Acme", "owner@acme.test").await;
    let owner = &ws.owner_token;
    create_source(&app, owner, "web").await;
    let api = create_source(&app, owner, "api").await;
    let events = audit_count(&app).await;

    let res = app
        .post(
            "/sources",
            owner,
            &json!({ "slug": "web", "enabled": true, "metadataId": source_kind() }),
        )
        .await;
    assert_eq!(res.status(), 409);
    let body = json(res).await;
    assert_eq!(body["errors"][0]["type"], "conflict");
    assert!(error_message(&body).contains("\"web\" already exists"));

    let path = format!("/sources/{}", api["id"].as_str().unwrap());
    let res = app.patch(&path, owner, &json!({ "slug": "web" })).await;
    assert_eq!(res.status(), 409);
    assert_eq!(get_data(&app, &path, owner).await["source"]["slug"], "api");

    let res = app
        .post(
            "/users",
            owner,
            &json!({ "email": "OWNER@acme.test", "role": "member" }),
        )
        .await;
    assert_eq!(res.status(), 409);
    assert_eq!(audit_count(&app).await, events, "conflicts write nothing");

    // Another workspace may use the same slug.
    let other = app.workspace("Other", "owner@other.test").await;
    create_source(&app, &other.owner_token, "web").await;
}

#[tokio::test]
async fn oversized_bodies_get_413_and_change_nothing() {
    let app = TestApp::spawn_with(&[("MAX_BODY_BYTES", "1024")]).await;
    let ws = app.workspace("Acme", "owner@acme.test").await;
    let owner = &ws.owner_token;
    let source = create_source(&app, owner, "web").await;
    let events = audit_count(&app).await;
    let big = json!({ "allowedDomains": ["x".repeat(2000)] });
    let body =
        json!({ "slug": "big", "enabled": true, "metadataId": source_kind(), "settings": big });
    let res = app.post("/sources", owner, &body).await;
    assert_eq!(res.status(), 413);
    let answer = json(res).await;
    assert_eq!(answer["errors"][0]["type"], "payload-too-large");
    assert!(answer.get("data").is_none());
    let path = format!("/sources/{}", source["id"].as_str().unwrap());
    let res = app.patch(&path, owner, &json!({ "settings": big })).await;
    assert_eq!(res.status(), 413);
    assert_eq!(app.count("SELECT COUNT(*) FROM sources").await, 1);
    assert_eq!(audit_count(&app).await, events);
    // Just under the limit is fine.
    let fits = json!({ "settings": { "allowedDomains": vec!["x".repeat(180); 4] } });
    assert_eq!(app.patch(&path, owner, &fits).await.status(), 200);
}

#[tokio::test]
async fn accept_header_versions_and_406() {
    let app = TestApp::spawn().await;
    let ws = app.workspace("Acme", "owner@acme.test").await;
    let get = |accept: &'static str| {
        app.client
            .get(app.url("/sources"))
            .bearer_auth(&ws.owner_token)
            .header("accept", accept)
            .send()
    };
    for media in [
        "application/vnd.segment.v1+json",
        "application/vnd.segment.v1beta+json",
        "application/vnd.segment.v1alpha+json",
        "application/json",
    ] {
        let res = get(media).await.unwrap();
        assert_eq!(res.status(), 200, "{media}");
        assert_eq!(res.headers()["content-type"], media);
        assert!(json(res).await["data"]["sources"].is_array());
    }
    for (accept, media) in [
        ("*/*", "application/vnd.segment.v1+json"),
        ("application/json; charset=utf-8", "application/json"),
        (
            "text/html, application/vnd.segment.v1beta+json;q=0.9",
            "application/vnd.segment.v1beta+json",
        ),
        // A list, as Segment's SDK sends for some operations.
        (
            "application/vnd.segment.v1alpha+json,application/json",
            "application/vnd.segment.v1alpha+json",
        ),
        // Weights decide, not the order.
        (
            "application/json;q=0.2, application/vnd.segment.v1beta+json",
            "application/vnd.segment.v1beta+json",
        ),
        (
            "*/*, application/vnd.segment.v1+json;q=0",
            "application/vnd.segment.v1beta+json",
        ),
    ] {
        let res = get(accept).await.unwrap();
        assert_eq!(res.status(), 200, "{accept}");
        assert_eq!(res.headers()["content-type"], media, "{accept}");
    }
    let res = app.get("/sources", &ws.owner_token).await;
    assert_eq!(
        res.headers()["content-type"],
        "application/vnd.segment.v1+json"
    );
    for accept in [
        "text/html",
        "application/xml",
        "application/vnd.segment.v2+json",
        "application/json;q=0",
        "*/*;q=0",
    ] {
        let res = get(accept).await.unwrap();
        assert_eq!(res.status(), 406, "{accept}");
        let body = json(res).await;
        assert_eq!(body["errors"][0]["type"], "not-acceptable");
        assert!(error_message(&body).contains("application/vnd.segment.v1+json"));
    }
}

pub fn cors_headers(res: &reqwest::Response) -> Vec<String> {
    res.headers()
        .keys()
        .map(|k| k.as_str().to_string())
        .filter(|k| k.starts_with("access-control-"))
        .collect()
}

#[tokio::test]
async fn no_cors_headers_on_any_response() {
    let app = TestApp::spawn().await;
    let ws = app.workspace("Acme", "owner@acme.test").await;
    let origin = "https://attacker.example";
    for path in [
        "/",
        "/sources",
        "/sources/x",
        "/audit-events",
        "/openapi.json",
        "/healthz",
    ] {
        let preflight = app
            .client
            .request(reqwest::Method::OPTIONS, app.url(path))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
            .send()
            .await
            .unwrap();
        assert!(
            !preflight.status().is_success(),
            "OPTIONS {path} is not answered as a preflight"
        );
        assert_eq!(
            cors_headers(&preflight),
            Vec::<String>::new(),
            "OPTIONS {path}"
        );
        for token in [ws.owner_token.as_str(), "nope"] {
            let res = app
                .client
                .get(app.url(path))
                .header("origin", origin)
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            assert_eq!(cors_headers(&res), Vec::<String>::new(), "GET {path}");
        }
    }
    let res = app
        .client
        .post(app.url("/sources"))
        .header("origin", origin)
        .bearer_auth(&ws.owner_token)
        .json(&json!({ "slug": "web", "enabled": true, "metadataId": source_kind() }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(cors_headers(&res), Vec::<String>::new());
}

#[tokio::test]
async fn rate_limit_headers_and_429() {
    let app =
        TestApp::spawn_with(&[("RATE_LIMIT_BURST", "3"), ("RATE_LIMIT_PER_SECOND", "0.05")]).await;
    let ws = app.workspace("Acme", "owner@acme.test").await;
    let (member, _) = app.mint(&ws, "ci", "member").await;
    let header = |res: &reqwest::Response, name: &str| -> i64 {
        res.headers()[name].to_str().unwrap().parse().unwrap()
    };
    // Every answer to an authenticated request carries the headers,
    // whatever its status.
    for (i, path) in ["/sources", "/sources/none", "/tokens"].iter().enumerate() {
        let res = app.get(path, &member).await;
        assert_eq!(res.status(), [200, 404, 403][i], "{path}");
        assert_eq!(header(&res, "x-ratelimit-consumed"), i as i64 + 1);
        assert_eq!(header(&res, "x-ratelimit-remaining"), 2 - i as i64);
        assert!(header(&res, "x-ratelimit-reset") >= 1);
    }
    let res = app.get("/sources", &member).await;
    assert_eq!(res.status(), 429);
    let retry_after = header(&res, "retry-after");
    assert!((1..=20).contains(&retry_after), "{retry_after}");
    assert_eq!(header(&res, "x-ratelimit-remaining"), 0);
    assert!(header(&res, "x-ratelimit-reset") >= 1);
    let body = json(res).await;
    assert_eq!(body["errors"][0]["type"], "rate-limited");
    assert!(body.get("data").is_none());

    // A 429 is not a write: creating a source while limited does nothing.
    let events = audit_count(&app).await;
    let res = app
        .post(
            "/sources",
            &member,
            &json!({ "slug": "web", "enabled": true, "metadataId": source_kind() }),
        )
        .await;
    assert_eq!(res.status(), 429);
    assert_eq!(audit_count(&app).await, events);
    assert_eq!(app.count("SELECT COUNT(*) FROM sources").await, 0);

    // Buckets are per token.
    let res = app.get("/sources", &ws.owner_token).await;
    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, "x-ratelimit-remaining"), 1);
}

#[tokio::test]
async fn unauthorized_requests_say_why() {
    let app = TestApp::spawn().await;
    let ws = app.workspace("Acme", "owner@acme.test").await;
    let (revoked, revoked_id) = app.mint(&ws, "old", "member").await;
    assert_eq!(
        app.delete(&format!("/tokens/{revoked_id}"), &ws.owner_token)
            .await
            .status(),
        200
    );
    let unknown = leakguard::token::PublicToken::generate()
        .expose()
        .to_string();

    let cases: Vec<(Option<String>, &str)> = vec![
        (None, "missing Authorization header"),
        (
            Some("Basic b3duZXI6cGFzcw==".into()),
            "must be `Bearer <token>`",
        ),
        (Some("Bearer".into()), "must be `Bearer <token>`"),
        (Some("Bearer sgp_not_a_real_token".into()), "invalid token"),
        (Some(format!("Bearer {unknown}")), "unknown token"),
        (
            Some(format!("Bearer {revoked}")),
            "this token has been revoked",
        ),
    ];
    for path in ["/", "/sources", "/tokens", "/audit-events"] {
        for (header, expected) in &cases {
            let mut request = app.client.get(app.url(path));
            if let Some(h) = header {
                request = request.header("authorization", h);
            }
            let res = request.send().await.unwrap();
            assert_eq!(res.status(), 401, "{path} {header:?}");
            let body = json(res).await;
            assert_eq!(body["errors"][0]["type"], "unauthorized");
            let message = error_message(&body);
            assert!(message.contains(expected), "{path} {header:?}: {message}");
        }
    }
}

#[tokio::test]
async fn the_last_owner_can_be_neither_removed_nor_demoted() {
    let app = TestApp::spawn().await;
    let ws = app.workspace("Acme", "owner@acme.test").await;
    let owner = &ws.owner_token;
    let first = get_data(&app, "/users", owner).await["users"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let first_path = format!("/users/{first}");
    let events = audit_count(&app).await;

    let res = app.delete(&first_path, owner).await;
    assert_eq!(res.status(), 409);
    assert!(error_message(&json(res).await).contains("last owner"));
    for role in ["member", "read_only"] {
        let res = app
            .patch(&first_path, owner, &json!({ "role": role }))
            .await;
        assert_eq!(res.status(), 409, "{role}");
    }
    assert_eq!(audit_count(&app).await, events);
    // Renaming the last owner, or "changing" it to owner, is fine.
    let res = app
        .patch(
            &first_path,
            owner,
            &json!({ "role": "owner", "name": "Boss" }),
        )
        .await;
    assert_eq!(res.status(), 200);

    let res = app
        .post(
            "/users",
            owner,
            &json!({ "email": "second@acme.test", "role": "owner" }),
        )
        .await;
    let second = json(res).await["data"]["user"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let res = app
        .patch(&first_path, owner, &json!({ "role": "member" }))
        .await;
    assert_eq!(res.status(), 200);
    // Now the second is the last one.
    let second_path = format!("/users/{second}");
    assert_eq!(app.delete(&second_path, owner).await.status(), 409);
    assert_eq!(
        app.patch(&second_path, owner, &json!({ "role": "read_only" }))
            .await
            .status(),
        409
    );
    assert_eq!(app.delete(&first_path, owner).await.status(), 200);
}

#[tokio::test]
async fn errors_come_in_a_fixed_order_who_then_may_then_what() {
    let app = TestApp::spawn_with(&[("MAX_BODY_BYTES", "1024")]).await;
    let ws = app.workspace("Acme", "owner@acme.test").await;
    let (reader, _) = app.mint(&ws, "reader", "read_only").await;
    let (member, _) = app.mint(&ws, "member", "member").await;
    let send = |token: String, content_type: &'static str, body: Vec<u8>| {
        let request = app
            .client
            .post(app.url("/sources"))
            .bearer_auth(token)
            .header("Content-Type", content_type)
            .body(body);
        async move { request.send().await.unwrap() }
    };
    let broken = b"{\"slug\": ".to_vec();
    let huge = vec![b' '; 4096];
    // A role too low is told so whatever the body.
    for body in [broken.clone(), huge.clone()] {
        let res = send(reader.clone(), "application/json", body).await;
        assert_eq!(res.status(), 403);
        assert!(error_message(&json(res).await).contains("member"));
    }
    // Then the body: too large, not JSON, not sent as JSON.
    assert_eq!(
        send(member.clone(), "application/json", huge)
            .await
            .status(),
        413
    );
    let res = send(member.clone(), "application/json", broken).await;
    assert_eq!(res.status(), 400);
    assert_eq!(json(res).await["errors"][0]["type"], "bad-request");
    let res = send(member.clone(), "text/plain", b"{}".to_vec()).await;
    assert_eq!(res.status(), 415);
    let body = json(res).await;
    assert_eq!(body["errors"][0]["type"], "unsupported-media-type");
    assert!(error_message(&body).contains("application/json"));
    assert_eq!(app.count("SELECT COUNT(*) FROM sources").await, 0);
}

/// Rules the OpenAPI document states, kept by the server (schemathesis
/// found each of these answered otherwise): at most 100 labels, label
/// lengths in characters, every spelling of a pagination parameter
/// checked, email addresses of the documented form only.
#[tokio::test]
async fn the_server_keeps_the_rules_the_document_states() {
    let app = TestApp::spawn().await;
    let ws = app.workspace("Acme", "owner@acme.test").await;
    let owner = &ws.owner_token;
    let label = |key: &str, value: &str| json!({ "key": key, "value": value });
    let source = |slug: &str, labels: Vec<Value>| json!({ "slug": slug, "enabled": true, "metadataId": source_kind(), "labels": labels });

    for i in 0..100 {
        create_label(&app, owner, &format!("k{i}"), "v").await;
    }
    let many: Vec<Value> = (0..101).map(|i| label(&format!("k{i}"), "v")).collect();
    let res = app.post("/sources", owner, &source("many", many)).await;
    assert_eq!(res.status(), 422);
    assert!(errors_by_field(&json(res).await)["labels"].contains("at most 100"));
    let hundred: Vec<Value> = (0..100).map(|i| label(&format!("k{i}"), "v")).collect();
    let res = app
        .post("/sources", owner, &source("hundred", hundred))
        .await;
    assert_eq!(res.status(), 201);

    // 100 characters of two bytes each fit; 101 do not.
    let wide = "é".repeat(100);
    create_label(&app, owner, &wide, &wide).await;
    let res = app
        .post(
            "/sources",
            owner,
            &source("wide", vec![label(&wide, &wide)]),
        )
        .await;
    assert_eq!(res.status(), 201);
    let wider = "é".repeat(101);
    let res = app
        .post(
            "/sources",
            owner,
            &source("wider", vec![label("k", &wider)]),
        )
        .await;
    assert_eq!(res.status(), 422);
    assert!(errors_by_field(&json(res).await).contains_key("labels[0]"));

    // A bad value under either spelling is refused, even beside a good one.
    for query in [
        "pagination[count]=5&pagination.count=abc",
        "pagination.count=5&pagination[count]=0",
        "pagination[cursor]=MA==&pagination.cursor=!!!",
    ] {
        let res = app.get(&format!("/sources?{query}"), owner).await;
        assert_eq!(res.status(), 422, "{query}");
    }
    let res = app
        .get("/sources?pagination[count]=1&pagination.count=2", owner)
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        json(res).await["data"]["sources"].as_array().unwrap().len(),
        1
    );

    // Addresses outside the documented form, which the mail library would
    // take, are refused; the documented form with space around is taken.
    for email in [
        "dev@under_score.test",
        "dev@bücher.test",
        "\"quoted\"@acme.test",
    ] {
        let res = app
            .post(
                "/users",
                owner,
                &json!({ "email": email, "role": "member" }),
            )
            .await;
        assert_eq!(res.status(), 422, "{email}");
        assert!(
            errors_by_field(&json(res).await).contains_key("email"),
            "{email}"
        );
    }
    let res = app
        .post(
            "/users",
            owner,
            &json!({ "email": "  Dev.Ops+ci@Acme-Corp.test ", "role": "member" }),
        )
        .await;
    assert_eq!(res.status(), 201);
    assert_eq!(
        json(res).await["data"]["user"]["email"],
        "dev.ops+ci@acme-corp.test"
    );
}

#[tokio::test]
async fn a_known_path_with_another_method_is_405_with_allow() {
    let app = TestApp::spawn().await;
    let ws = app.workspace("Acme", "owner@acme.test").await;
    for (method, path, allow) in [
        ("PUT", "/sources", "GET, POST"),
        ("POST", "/sources/abc", "GET, PATCH, DELETE"),
        ("TRACE", "/tokens", "GET, POST"),
        ("GET", "/secret-scanning/github", "POST"),
    ] {
        let res = app
            .client
            .request(method.parse().unwrap(), app.url(path))
            .bearer_auth(&ws.owner_token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 405, "{method} {path}");
        assert_eq!(res.headers()["allow"], allow, "{method} {path}");
        let body = json(res).await;
        assert_eq!(body["errors"][0]["type"], "method-not-allowed", "{body}");
    }
    // An unknown path stays 404 whatever the method.
    let (status, body) = call(&app, "PUT", "/nowhere", &ws.owner_token, json!({})).await;
    assert_eq!(status, 404, "{body}");
}
