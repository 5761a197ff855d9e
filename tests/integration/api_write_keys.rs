//! Segment-style write keys: one per new source, more with
//! `POST /sources/{id}/writekey`, removed with
//! `DELETE /sources/{id}/writekey/{writeKey}`, each change audited.

use serde_json::{json, Value};

use crate::api_helpers::*;
use crate::support::{json, TestApp};

fn write_keys(source: &Value) -> Vec<String> {
    source["writeKeys"]
        .as_array()
        .unwrap_or_else(|| panic!("no writeKeys: {source}"))
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect()
}

fn is_write_key(key: &str) -> bool {
    key.len() == 32 && key.bytes().all(|b| b.is_ascii_alphanumeric())
}

#[tokio::test]
async fn write_keys_are_made_added_and_removed() {
    let app = TestApp::spawn().await;
    let ws = app.workspace("Acme", "owner@acme.test").await;
    let (member, _) = app.mint(&ws, "ci", "member").await;

    let web = create_source(&app, &member, "web").await;
    let api = create_source(&app, &member, "api").await;
    let first = write_keys(&web);
    assert_eq!(first.len(), 1, "a new source has one write key");
    assert!(is_write_key(&first[0]), "{}", first[0]);
    assert_ne!(first, write_keys(&api), "every source has its own key");
    let web_id = web["id"].as_str().unwrap();

    // Adding keeps the old key (so senders can move over) and returns the
    // source as GET shows it.
    let res = app
        .client
        .post(app.url(&format!("/sources/{web_id}/writekey")))
        .bearer_auth(&member)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let added = json(res).await["data"]["source"].clone();
    let keys = write_keys(&added);
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0], first[0]);
    assert!(is_write_key(&keys[1]) && keys[1] != keys[0]);
    let got = get_data(&app, &format!("/sources/{web_id}"), &member).await;
    assert_eq!(got["source"], added);
    let listed = get_data(&app, "/sources", &member).await;
    assert_eq!(listed["sources"][0], added);

    // Removing the old one.
    let res = app
        .delete(&format!("/sources/{web_id}/writekey/{}", keys[0]), &member)
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(json(res).await, json!({ "data": { "status": "SUCCESS" } }));
    let got = get_data(&app, &format!("/sources/{web_id}"), &member).await;
    assert_eq!(write_keys(&got["source"]), vec![keys[1].clone()]);

    // The audit trail says what happened, by key hint only.
    let events = audit_events(&app, &ws.owner_token, &format!("resourceId={web_id}")).await;
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        ["Source Modified", "Source Modified", "Source Created"],
        "newest first"
    );
    let hint = |k: &str| format!("…{}", &k[28..]);
    assert_eq!(
        events[0]["details"]["changes"]["writeKeys"],
        json!({ "removed": hint(&keys[0]) })
    );
    assert_eq!(
        events[1]["details"]["changes"]["writeKeys"],
        json!({ "added": hint(&keys[1]) })
    );
    let trail = json!(audit_events(&app, &ws.owner_token, "").await).to_string();
    for key in keys.iter().chain(&first).chain(&write_keys(&api)) {
        assert!(
            !trail.contains(key.as_str()),
            "the trail repeats a write key"
        );
    }
}

#[tokio::test]
async fn bad_write_key_calls_change_nothing() {
    let app = TestApp::spawn().await;
    let ws = app.workspace("Acme", "owner@acme.test").await;
    let owner = &ws.owner_token;
    let web = create_source(&app, owner, "web").await;
    let api = create_source(&app, owner, "api").await;
    let web_id = web["id"].as_str().unwrap();
    let api_key = &write_keys(&api)[0];
    let before = audit_count(&app).await;

    // Another source's key, and a key that never existed, are both "not
    // found" on this source.
    for key in [api_key.as_str(), "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"] {
        let res = app
            .delete(&format!("/sources/{web_id}/writekey/{key}"), owner)
            .await;
        assert_eq!(res.status(), 404);
        assert_eq!(error_message(&json(res).await), "write key not found");
    }
    // Keys are not set through PATCH.
    let res = app
        .patch(
            &format!("/sources/{web_id}"),
            owner,
            &json!({ "writeKeys": ["mine"] }),
        )
        .await;
    assert_eq!(res.status(), 422);
    assert!(errors_by_field(&json(res).await).contains_key("writeKeys"));
    assert_eq!(audit_count(&app).await, before);

    // Ten at most; the eleventh is refused and nothing changes.
    for _ in 1..10 {
        let res = app
            .post(&format!("/sources/{web_id}/writekey"), owner, &json!({}))
            .await;
        assert_eq!(res.status(), 201);
    }
    let full = get_data(&app, &format!("/sources/{web_id}"), owner).await;
    assert_eq!(write_keys(&full["source"]).len(), 10);
    let before = audit_count(&app).await;
    let res = app
        .post(&format!("/sources/{web_id}/writekey"), owner, &json!({}))
        .await;
    assert_eq!(res.status(), 409);
    assert!(error_message(&json(res).await).contains("already has 10 write keys"));
    assert_eq!(
        get_data(&app, &format!("/sources/{web_id}"), owner).await,
        full
    );
    assert_eq!(audit_count(&app).await, before);
    assert_eq!(
        write_keys(
            &get_data(
                &app,
                &format!("/sources/{}", api["id"].as_str().unwrap()),
                owner
            )
            .await["source"]
        ),
        vec![api_key.clone()]
    );
}
