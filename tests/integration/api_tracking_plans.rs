//! Tracking plans as Segment's `TrackingPlansApi` calls them: plans, their
//! rules (each a JSON Schema, checked as one) and the sources that follow
//! them.

use serde_json::{json, Value};

use crate::api_helpers::*;
use crate::support::{json, TestApp};

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

async fn put(app: &TestApp, path: &str, token: &str, body: &Value) -> reqwest::Response {
    app.client
        .put(app.url(path))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap()
}

fn rule(kind: &str, key: Option<&str>, version: i64, schema: Value) -> Value {
    let mut rule = json!({ "type": kind, "version": version, "jsonSchema": schema });
    if let Some(key) = key {
        rule["key"] = key.into();
    }
    rule
}

/// `(type, key, version)` of each rule of the plan, in order.
async fn rule_ids(app: &TestApp, plan: &str, token: &str) -> Vec<(String, String, i64)> {
    let data = get_data(app, &format!("/tracking-plans/{plan}/rules"), token).await;
    data["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["type"].as_str().unwrap().to_string(),
                r["key"].as_str().unwrap_or("").to_string(),
                r["version"].as_i64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn plans_are_created_listed_by_type_renamed_and_deleted() {
    let app = TestApp::spawn().await;
    let ws = app.workspace("Acme", "owner@acme.test").await;
    let (member, _) = app.mint(&ws, "ci", "member").await;
    let (reader, _) = app.mint(&ws, "reader", "read_only").await;

    let res = app
        .post(
            "/tracking-plans",
            &member,
            &json!({ "name": "Web Events", "description": "What the site sends", "type": "LIVE" }),
        )
        .await;
    assert_eq!(res.status(), 201);
    let plan = json(res).await["data"]["trackingPlan"].clone();
    assert_eq!(plan["slug"], "web-events");
    assert_eq!(plan["type"], "LIVE");
    assert_eq!(plan["description"], "What the site sends");
    let template = create_tracking_plan(&app, &member, "Template").await;
    let res = app
        .post(
            "/tracking-plans",
            &member,
            &json!({ "name": "", "type": "LIVELY" }),
        )
        .await;
    assert_eq!(res.status(), 422);
    let errors = errors_by_field(&json(res).await);
    assert!(errors["type"].contains("must be one of ENGAGE, LIVE"));
    assert!(errors.contains_key("name"));

    let res = app
        .post(
            "/tracking-plans",
            &member,
            &json!({ "name": "Lib", "type": "RULE_LIBRARY" }),
        )
        .await;
    assert_eq!(res.status(), 201);
    let live = get_data(&app, "/tracking-plans?type=LIVE", &reader).await;
    let names: Vec<&str> = live["trackingPlans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Web Events", "Template"]);
    assert_eq!(live["pagination"]["totalEntries"], 2);
    assert_eq!(
        get_data(&app, "/tracking-plans", &reader).await["pagination"]["totalEntries"],
        3
    );
    assert_eq!(
        app.get("/tracking-plans?type=live", &reader).await.status(),
        422
    );

    let path = format!("/tracking-plans/{}", id(&plan));
    let res = app
        .patch(&path, &member, &json!({ "name": "Site Events" }))
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(json(res).await, json!({ "data": { "status": "SUCCESS" } }));
    let got = get_data(&app, &path, &reader).await["trackingPlan"].clone();
    assert_eq!(
        (got["name"].as_str(), got["slug"].as_str()),
        (Some("Site Events"), Some("site-events"))
    );
    assert_eq!(got["createdAt"], plan["createdAt"]);

    assert_eq!(app.delete(&path, &member).await.status(), 200);
    assert_eq!(app.get(&path, &reader).await.status(), 404);
    assert_eq!(
        app.get(&format!("/tracking-plans/{}", id(&template)), &reader)
            .await
            .status(),
        200
    );
    let trail = audit_events(&app, &ws.owner_token, &format!("resourceId={}", id(&plan))).await;
    let types: Vec<&str> = trail.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "Tracking Plan Deleted",
            "Tracking Plan Modified",
            "Tracking Plan Created"
        ]
    );
    assert_eq!(trail[0]["resourceType"], "tracking_plan");
}

#[tokio::test]
async fn rules_are_replaced_upserted_paged_and_removed() {
    let app = TestApp::spawn().await;
    let ws = app.workspace("Acme", "owner@acme.test").await;
    let owner = &ws.owner_token;
    let plan = id(&create_tracking_plan(&app, owner, "Plan").await);
    let rules_path = format!("/tracking-plans/{plan}/rules");
    let order = json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "properties": { "properties": { "type": "object", "required": ["total"] } }
    });
    let res = put(
        &app,
        &rules_path,
        owner,
        &json!({ "rules": [
            rule("TRACK", Some("Order Completed"), 1, order.clone()),
            rule("IDENTIFY", None, 1, json!({ "type": "object" })),
            rule("TRACK", Some("Order Completed"), 2, json!(true)),
        ] }),
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        rule_ids(&app, &plan, owner).await,
        [
            ("TRACK".into(), "Order Completed".into(), 1),
            ("IDENTIFY".into(), "".into(), 1),
            ("TRACK".into(), "Order Completed".into(), 2)
        ]
    );
    let first = get_data(&app, &format!("{rules_path}?pagination[count]=1"), owner).await;
    assert_eq!(first["rules"][0]["jsonSchema"], order);
    assert_eq!(first["rules"][0]["key"], "Order Completed");
    assert_eq!(first["pagination"]["totalEntries"], 3);
    let next = first["pagination"]["next"].as_str().unwrap();
    let second = get_data(
        &app,
        &format!("{rules_path}?pagination[count]=1&pagination[cursor]={next}"),
        owner,
    )
    .await;
    assert_eq!(second["rules"][0]["type"], "IDENTIFY");
    assert!(
        second["rules"][0].get("key").is_none(),
        "no key, none shown"
    );

    // Upsert: one renamed and changed, one added.
    let res = app
        .patch(
            &rules_path,
            owner,
            &json!({ "rules": [
                { "type": "TRACK", "key": "Order Completed", "newKey": "Order Done",
                  "version": 2, "jsonSchema": { "type": "object" } },
                rule("PAGE", Some("Home"), 1, json!({ "type": "object" })),
            ] }),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        rule_ids(&app, &plan, owner).await,
        [
            ("TRACK".into(), "Order Completed".into(), 1),
            ("IDENTIFY".into(), "".into(), 1),
            ("TRACK".into(), "Order Done".into(), 2),
            ("PAGE".into(), "Home".into(), 1)
        ]
    );
    // A rename onto a rule the plan has is refused.
    let res = app
        .patch(
            &rules_path,
            owner,
            &json!({ "rules": [{ "type": "TRACK", "key": "Order Done", "newKey": "Order Completed",
                                  "version": 1, "jsonSchema": true }] }),
        )
        .await;
    assert_eq!(res.status(), 422);
    assert!(errors_by_field(&json(res).await).contains_key("rules[0].newKey"));

    // Removal, as a JSON array and as Segment's SDK sends it; a rule the
    // plan does not have is ignored.
    let gone = json!([{ "type": "IDENTIFY", "version": 1 }, { "type": "SCREEN", "version": 9 }]);
    let encoded: String =
        url::form_urlencoded::byte_serialize(gone.to_string().as_bytes()).collect();
    let res = app
        .delete(&format!("{rules_path}?rules={encoded}"), owner)
        .await;
    assert_eq!(res.status(), 200);
    let res = app
        .delete(
            &format!(
                "{rules_path}?rules%5B0%5D%5Btype%5D=TRACK&rules%5B0%5D%5Bkey%5D=Order%20Done&rules%5B0%5D%5Bversion%5D=2"
            ),
            owner,
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        rule_ids(&app, &plan, owner).await,
        [
            ("TRACK".into(), "Order Completed".into(), 1),
            ("PAGE".into(), "Home".into(), 1)
        ]
    );
    assert_eq!(
        app.delete(&rules_path, owner).await.status(),
        422,
        "no rules named"
    );

    let trail = audit_events(&app, owner, &format!("resourceId={plan}")).await;
    let removed = &trail[0]["details"]["changes"]["rules"]["removed"];
    assert_eq!(removed, &json!(["TRACK Order Done v2"]));
    assert_eq!(
        trail[2]["details"]["changes"]["rules"]["added"],
        json!(["PAGE Home v1"])
    );
}

/// A rule's `jsonSchema` must be a JSON Schema: each way it can fail is
/// listed at once, and nothing is stored.
#[tokio::test]
async fn rules_must_be_json_schemas() {
    let app = TestApp::spawn().await;
    let ws = app.workspace("Acme", "owner@acme.test").await;
    let owner = &ws.owner_token;
    let plan = id(&create_tracking_plan(&app, owner, "Plan").await);
    let rules_path = format!("/tracking-plans/{plan}/rules");
    let res = put(
        &app,
        &rules_path,
        owner,
        &json!({ "rules": [rule("IDENTIFY", None, 1, json!({}))] }),
    )
    .await;
    assert_eq!(res.status(), 200);
    let events = audit_count(&app).await;

    let huge = json!({ "description": "x".repeat(40 * 1024) });
    let res = put(
        &app,
        &rules_path,
        owner,
        &json!({ "rules": [
            rule("TRACK", Some("a"), 1, json!({ "type": "objekt" })),
            rule("TRACK", Some("b"), 1, json!({ "pattern": "((" })),
            rule("TRACK", Some("c"), 1, json!({ "$ref": "https://schemas.example/remote.json" })),
            rule("TRACK", Some("d"), 1, json!("a string")),
            rule("TRACK", Some("e"), 1, huge),
            rule("TRACK", Some("f"), 1, json!({ "minLength": -1 })),
            rule("TRACK", Some("a"), 2, Value::Null),
            rule("GOAL", Some("g"), 0, json!(true)),
            rule("TRACK", Some("ok"), 1, json!({ "type": "object" })),
            rule("TRACK", Some("ok"), 1, json!(true)),
        ] }),
    )
    .await;
    assert_eq!(res.status(), 422);
    let errors = errors_by_field(&json(res).await);
    for (field, says) in [
        ("rules[0].jsonSchema", "is not a valid JSON Schema"),
        ("rules[1].jsonSchema", "cannot be used as a JSON Schema"),
        ("rules[2].jsonSchema", "cannot be used as a JSON Schema"),
        ("rules[3].jsonSchema", "must be a JSON Schema"),
        ("rules[4].jsonSchema", "at most 32768"),
        ("rules[5].jsonSchema", "is not a valid JSON Schema"),
        ("rules[6].jsonSchema", "is required"),
        ("rules[7].type", "must be one of COMMON"),
        ("rules[7].version", "1 to 1000000"),
        ("rules[9]", "names TRACK ok v1 twice"),
    ] {
        assert!(
            errors.get(field).is_some_and(|m| m.contains(says)),
            "{field}: {says} in {errors:?}"
        );
    }
    assert_eq!(errors.len(), 10, "{errors:?}");
    assert_eq!(
        rule_ids(&app, &plan, owner).await,
        [("IDENTIFY".into(), "".into(), 1)]
    );
    assert_eq!(audit_count(&app).await, events);
}

#[tokio::test]
async fn a_source_follows_at_most_one_plan() {
    let app = TestApp::spawn().await;
    let ws = app.workspace("Acme", "owner@acme.test").await;
    let owner = &ws.owner_token;
    let web = id(&create_source(&app, owner, "web").await);
    let ios = id(&create_source(&app, owner, "ios").await);
    let plan = id(&create_tracking_plan(&app, owner, "Plan").await);
    let other = id(&create_tracking_plan(&app, owner, "Other").await);
    let sources = format!("/tracking-plans/{plan}/sources");

    for source in [&web, &ios, &web] {
        let res = app
            .post(&sources, owner, &json!({ "sourceId": source }))
            .await;
        assert_eq!(res.status(), 200);
        assert_eq!(json(res).await, json!({ "data": { "status": "SUCCESS" } }));
    }
    let res = app
        .post(
            &format!("/tracking-plans/{other}/sources"),
            owner,
            &json!({ "sourceId": web }),
        )
        .await;
    assert_eq!(res.status(), 409);
    assert!(error_message(&json(res).await).contains(&plan));
    let res = app
        .post(
            &sources,
            owner,
            &json!({ "sourceId": "AAAAAAAAAAAAAAAAAAAAAAAA" }),
        )
        .await;
    assert_eq!(res.status(), 422);

    let listed = get_data(&app, &sources, owner).await;
    let ids: Vec<&str> = listed["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [web.as_str(), ios.as_str()]);

    let res = app
        .delete(&format!("{sources}?sourceId={ios}"), owner)
        .await;
    assert_eq!(res.status(), 200);
    let res = app
        .delete(&format!("{sources}?sourceId={ios}"), owner)
        .await;
    assert_eq!(res.status(), 404);
    assert_eq!(
        app.delete(&sources, owner).await.status(),
        422,
        "no sourceId"
    );

    // Segment audits these on the source.
    let trail = audit_events(&app, owner, &format!("resourceId={ios}")).await;
    assert_eq!(trail[0]["type"], "Source Modified");
    assert_eq!(
        trail[0]["details"]["changes"]["trackingPlanId"],
        json!({ "from": plan, "to": null })
    );

    // A deleted plan lets its sources go: web may follow another.
    assert_eq!(
        app.delete(&format!("/tracking-plans/{plan}"), owner)
            .await
            .status(),
        200
    );
    let res = app
        .post(
            &format!("/tracking-plans/{other}/sources"),
            owner,
            &json!({ "sourceId": web }),
        )
        .await;
    assert_eq!(res.status(), 200);
}
