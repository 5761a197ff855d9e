//! Labels as Segment's `LabelsApi` and `SourcesApi` call them: the
//! workspace's labels, and the labels a source carries, which must be the
//! workspace's.

use serde_json::{json, Value};

use crate::api_helpers::*;
use crate::support::{json, TestApp};

async fn put(app: &TestApp, path: &str, token: &str, body: &Value) -> reqwest::Response {
    app.client
        .put(app.url(path))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn labels_are_the_workspaces_and_sources_carry_only_those() {
    let app = TestApp::spawn().await;
    let ws = app.workspace("Acme", "owner@acme.test").await;
    let (member, _) = app.mint(&ws, "ci", "member").await;
    let (reader, _) = app.mint(&ws, "reader", "read_only").await;

    let res = app
        .post(
            "/labels",
            &member,
            &json!({ "label": { "key": "env", "value": "prod", "description": "Live traffic" } }),
        )
        .await;
    assert_eq!(res.status(), 201);
    assert_eq!(
        json(res).await,
        json!({ "data": { "label": { "key": "env", "value": "prod", "description": "Live traffic" } } })
    );
    // A value with a slash is addressed percent-encoded.
    create_label(&app, &member, "team", "growth/web").await;
    let res = app
        .post(
            "/labels",
            &member,
            &json!({ "label": { "key": "env", "value": "prod" } }),
        )
        .await;
    assert_eq!(res.status(), 409);
    let res = app
        .post(
            "/labels",
            &member,
            &json!({ "label": { "key": "", "value": "x", "color": 1 } }),
        )
        .await;
    assert_eq!(res.status(), 422);
    // A control character could never be named in /labels/{key}/{value}:
    // such a label would be one nobody could delete.
    for (key, value) in [("ë,\u{9f}", "0"), ("env", "a\u{1a}")] {
        let res = app
            .post(
                "/labels",
                &member,
                &json!({ "label": { "key": key, "value": value } }),
            )
            .await;
        assert_eq!(res.status(), 422);
        let body = json(res).await;
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("control characters"),
            "{body}"
        );
    }
    assert_eq!(
        app.post(
            "/labels",
            &reader,
            &json!({ "label": { "key": "a", "value": "b" } })
        )
        .await
        .status(),
        403
    );

    let listed = get_data(&app, "/labels", &reader).await;
    assert_eq!(
        listed,
        json!({ "labels": [
            { "key": "env", "value": "prod", "description": "Live traffic" },
            { "key": "team", "value": "growth/web", "description": "" }
        ] })
    );

    // A source may only carry labels of its workspace, however it gets them.
    let res = app
        .post(
            "/sources",
            &member,
            &json!({ "slug": "web", "enabled": true, "metadataId": source_kind(),
                     "labels": [{ "key": "env", "value": "dev" }] }),
        )
        .await;
    assert_eq!(res.status(), 422);
    assert!(errors_by_field(&json(res).await)["labels[0]"].contains("POST /labels"));
    let web = create_source(&app, &member, "web").await;
    let api = create_source(&app, &member, "api").await;
    let labels_of = |source: &Value| format!("/sources/{}/labels", source["id"].as_str().unwrap());

    // As Segment's SDK sends them: a LabelV1 with its description.
    let res = app
        .post(
            &labels_of(&web),
            &member,
            &json!({ "labels": [{ "key": "env", "value": "prod", "description": "Live traffic" }] }),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        json(res).await,
        json!({ "data": { "labels": [{ "key": "env", "value": "prod" }] } })
    );
    let res = app
        .post(
            &labels_of(&web),
            &member,
            &json!({ "labels": [{ "key": "team", "value": "growth/web" }, { "key": "env", "value": "prod" }] }),
        )
        .await;
    assert_eq!(
        json(res).await["data"]["labels"],
        json!([{ "key": "env", "value": "prod" }, { "key": "team", "value": "growth/web" }])
    );
    let res = app
        .post(
            &labels_of(&web),
            &member,
            &json!({ "labels": [{ "key": "nope", "value": "x" }] }),
        )
        .await;
    assert_eq!(res.status(), 422);
    let res = put(
        &app,
        &labels_of(&api),
        &member,
        &json!({ "labels": [{ "key": "team", "value": "growth/web" }] }),
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        get_data(
            &app,
            &format!("/sources/{}", api["id"].as_str().unwrap()),
            &reader
        )
        .await["source"]["labels"],
        json!([{ "key": "team", "value": "growth/web" }])
    );

    // Deleting a label takes it off every source, each change audited.
    let events = audit_count(&app).await;
    let res = app.delete("/labels/team/growth%2Fweb", &member).await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        audit_count(&app).await,
        events + 3,
        "two sources and the label"
    );
    for source in [&web, &api] {
        let got = get_data(
            &app,
            &format!("/sources/{}", source["id"].as_str().unwrap()),
            &reader,
        )
        .await;
        let labels = got["source"]["labels"].as_array().unwrap().clone();
        assert!(!labels.iter().any(|l| l["key"] == "team"), "{labels:?}");
    }
    assert_eq!(
        app.delete("/labels/team/growth%2Fweb", &member)
            .await
            .status(),
        404
    );
    let trail = audit_events(&app, &ws.owner_token, "resourceType=label").await;
    let types: Vec<&str> = trail.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["Label Deleted", "Label Created", "Label Created"]);
    assert_eq!(trail[0]["resourceName"], "team:growth/web");
}

/// Sources labelled before labels were the workspace's own keep them: the
/// migration makes each label they carry one of the workspace's.
#[tokio::test]
async fn labels_sources_already_carry_become_the_workspaces() {
    let app = TestApp::spawn().await;
    let ws = app.workspace("Acme", "owner@acme.test").await;
    create_source(&app, &ws.owner_token, "web").await;
    create_source(&app, &ws.owner_token, "api").await;
    // The database as the version before migration 30 left it.
    for sql in [
        "DROP TABLE labels",
        "DROP TABLE tracking_plan_sources",
        "DROP TABLE tracking_plan_rules",
        "DROP TABLE tracking_plans",
        "DROP TABLE warehouse_sources",
        "DROP TABLE warehouses",
        "DELETE FROM _sqlx_migrations WHERE version = 30",
        r#"UPDATE sources SET labels = '[{"key":"env","value":"prod"},{"key":"tier","value":"1"}]' WHERE slug = 'web'"#,
        r#"UPDATE sources SET labels = '[{"key":"env","value":"prod"}]' WHERE slug = 'api'"#,
    ] {
        app.test_db.execute(sql).await.unwrap();
    }
    let app = app.restart().await;
    let labels = get_data(&app, "/labels", &ws.owner_token).await["labels"].clone();
    let mut pairs: Vec<(String, String)> = labels
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["key"].as_str().unwrap().into(),
                l["value"].as_str().unwrap().into(),
            )
        })
        .collect();
    pairs.sort();
    assert_eq!(
        pairs,
        [("env".into(), "prod".into()), ("tier".into(), "1".into())]
    );
    // They are real labels: a source can be given them, and they can go.
    let api = get_data(&app, "/sources", &ws.owner_token).await["sources"][1]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let res = app
        .post(
            &format!("/sources/{api}/labels"),
            &ws.owner_token,
            &json!({ "labels": [{ "key": "tier", "value": "1" }] }),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        app.delete("/labels/env/prod", &ws.owner_token)
            .await
            .status(),
        200
    );
}
