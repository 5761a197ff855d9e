//! The happy path of every Public API endpoint, and what each returns.

use serde_json::{json, Value};

use crate::api_helpers::*;
use crate::support::{json, TestApp};

#[tokio::test]
async fn a_new_user_walks_through_the_api() {
    let app = TestApp::spawn().await;
    let ws = app.workspace("Acme", "owner@acme.test").await;
    let owner = &ws.owner_token;

    let data = get_data(&app, "/", owner).await;
    assert_eq!(data["workspace"]["id"], ws.id.as_str());
    assert_eq!(data["workspace"]["name"], "Acme");
    assert_eq!(data["workspace"]["slug"], "acme");

    let source = create_source(&app, owner, "web").await;
    let destination = create_destination(&app, owner, source["id"].as_str().unwrap()).await;
    let (member, _) = app.mint(&ws, "ci", "member").await;
    let res = app.get("/tokens", &member).await;
    assert_eq!(res.status(), 403);

    let types: Vec<String> = audit_events(&app, owner, "")
        .await
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        types,
        [
            "Token Created",
            "Destination Created",
            "Source Created",
            "Token Created",
            "User Added"
        ]
    );

    let other = app.workspace("Other", "owner@other.test").await;
    for list in ["/sources", "/destinations"] {
        let data = get_data(&app, list, &other.owner_token).await;
        let key = &list[1..];
        assert_eq!(data[key], json!([]), "{list}");
    }
    for path in [
        format!("/sources/{}", source["id"].as_str().unwrap()),
        format!("/destinations/{}", destination["id"].as_str().unwrap()),
    ] {
        assert_eq!(app.get(&path, &other.owner_token).await.status(), 404);
    }
    assert_eq!(audit_events(&app, &other.owner_token, "").await.len(), 2);
}

#[tokio::test]
async fn sources_crud() {
    let app = TestApp::spawn().await;
    let ws = app.workspace("Acme", "owner@acme.test").await;
    let (member, _) = app.mint(&ws, "ci", "member").await;
    create_label(&app, &member, "env", "prod").await;

    // A URL that carries credentials is a secret, wherever it is.
    let res = app
        .post(
            "/sources",
            &member,
            &json!({
                "slug": "web-site",
                "name": "Web site",
                "enabled": false,
                "metadataId": source_kind(),
                "settings": {
                    "trackPageViews": false,
                    "allowedDomains": ["acme.test", "https://u:wk_live_123@acme.test/"]
                },
                "labels": [{ "key": "env", "value": "prod" }]
            }),
        )
        .await;
    assert_eq!(res.status(), 201);
    assert_eq!(
        res.headers()["content-type"],
        "application/vnd.segment.v1+json"
    );
    let created = json(res).await;
    let source = &created["data"]["source"];
    let id = source["id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 24);
    assert_eq!(source["slug"], "web-site");
    assert_eq!(source["name"], "Web site");
    assert_eq!(source["enabled"], false);
    assert_eq!(source["workspaceId"], ws.id.as_str());
    assert_eq!(source["labels"], json!([{ "key": "env", "value": "prod" }]));
    assert_eq!(
        source["settings"],
        json!({ "trackPageViews": false, "allowedDomains": ["acme.test", "••••"] })
    );
    assert_eq!(source["metadata"]["id"], source_kind());
    assert_eq!(source["metadata"]["slug"], "javascript");
    assert!(source["createdAt"].as_str().unwrap().ends_with('Z'));
    assert_eq!(source["createdAt"], source["updatedAt"]);
    assert!(!created.to_string().contains("wk_live_123"));

    // The name defaults to the slug.
    let second = create_source(&app, &member, "api").await;
    assert_eq!(second["name"], "api");

    let got = get_data(&app, &format!("/sources/{id}"), &member).await;
    assert_eq!(got["source"], *source);

    let list = get_data(&app, "/sources", &member).await;
    let slugs: Vec<&str> = list["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["slug"].as_str().unwrap())
        .collect();
    assert_eq!(slugs, ["web-site", "api"]);
    assert_eq!(list["pagination"]["totalEntries"], 2);
    assert_eq!(list["pagination"]["current"], "MA==");
    assert_eq!(list["pagination"]["next"], Value::Null);
    assert_eq!(list["pagination"]["previous"], Value::Null);

    let res = app
        .patch(
            &format!("/sources/{id}"),
            &member,
            &json!({
                "slug": "website",
                "name": "Website",
                "enabled": true,
                "settings": { "allowedDomains": ["acme.example", "••••"] },
                "labels": []
            }),
        )
        .await;
    assert_eq!(res.status(), 200);
    let patched = json(res).await["data"]["source"].clone();
    assert_eq!(patched["slug"], "website");
    assert_eq!(patched["name"], "Website");
    assert_eq!(patched["enabled"], true);
    assert_eq!(patched["labels"], json!([]));
    assert_eq!(
        patched["settings"],
        json!({ "trackPageViews": false, "allowedDomains": ["acme.example", "••••"] })
    );
    assert_eq!(patched["createdAt"], source["createdAt"]);
    // The echoed mask kept the stored secret.
    let stored = app
        .count(&format!(
            "SELECT COUNT(*) FROM sources WHERE id = '{id}' AND settings LIKE '%wk_live_123%'"
        ))
        .await;
    assert_eq!(stored, 1);

    let res = app.delete(&format!("/sources/{id}"), &member).await;
    assert_eq!(res.status(), 200);
    assert_eq!(json(res).await, json!({ "data": { "status": "SUCCESS" } }));
    assert_eq!(
        app.get(&format!("/sources/{id}"), &member).await.status(),
        404
    );
    assert_eq!(
        app.delete(&format!("/sources/{id}"), &member)
            .await
            .status(),
        404
    );
}

#[tokio::test]
async fn destinations_crud_never_show_secrets() {
    let app = TestApp::spawn().await;
    let ws = app.workspace("Acme", "owner@acme.test").await;
    let (member, _) = app.mint(&ws, "ci", "member").await;
    let source = create_source(&app, &member, "web").await;
    let source_id = source["id"].as_str().unwrap();

    // Secret by the catalog's option type (sharedSecret, Slack's
    // webhookUrl) and by carrying credentials (a URL with a password).
    let secrets = ["pw-0001", "key-0002", "sec-0004"];
    let res = app
        .post(
            "/destinations",
            &member,
            &json!({
                "sourceId": source_id,
                "metadataId": destination_kind(),
                "name": "Hooks",
                "enabled": true,
                "settings": {
                    "url": format!("https://me:{}@hooks.example/in", secrets[0]),
                    "sharedSecret": secrets[2]
                }
            }),
        )
        .await;
    assert_eq!(res.status(), 201);
    let body = json(res).await;
    let destination = body["data"]["destination"].clone();
    let id = destination["id"].as_str().unwrap().to_string();
    assert_eq!(
        destination["settings"],
        json!({ "url": "••••", "sharedSecret": "••••" })
    );
    assert_eq!(destination["name"], "Hooks");
    assert_eq!(destination["enabled"], true);
    assert_eq!(destination["sourceId"], source_id);
    assert_eq!(destination["workspaceId"], ws.id.as_str());
    assert_eq!(destination["metadata"]["id"], destination_kind());

    let slack = leakguard::api::catalog::DESTINATIONS
        .iter()
        .find(|e| e.slug == "slack")
        .unwrap();
    let res = app
        .post(
            "/destinations",
            &member,
            &json!({
                "sourceId": source_id, "metadataId": slack.id,
                "settings": {
                    "webhookUrl": format!("https://hooks.slack.test/services/T0/B0/{}", secrets[1]),
                    "channel": "#alerts"
                }
            }),
        )
        .await;
    assert_eq!(res.status(), 201);
    let slack_body = json(res).await;
    assert_eq!(
        slack_body["data"]["destination"]["settings"],
        json!({ "webhookUrl": "••••", "channel": "#alerts" })
    );

    // Defaults: the catalog name, disabled; a plain URL is shown.
    let res = app
        .post(
            "/destinations",
            &member,
            &json!({
                "sourceId": source_id, "metadataId": destination_kind(),
                "settings": { "url": "https://hooks.example/plain" }
            }),
        )
        .await;
    assert_eq!(res.status(), 201);
    let plain = json(res).await["data"]["destination"].clone();
    assert_eq!(plain["name"], "Webhooks");
    assert_eq!(plain["enabled"], false);
    assert_eq!(
        plain["settings"],
        json!({ "url": "https://hooks.example/plain" })
    );

    let got = get_data(&app, &format!("/destinations/{id}"), &member).await;
    assert_eq!(got["destination"], destination);
    let list = get_data(&app, "/destinations", &member).await;
    assert_eq!(list["destinations"][0], destination);
    assert_eq!(list["pagination"]["totalEntries"], 3);

    // Read everything the API answers about them, and the audit trail, as
    // a read-only token: no secret anywhere.
    let (reader, _) = app.mint(&ws, "reader", "read_only").await;
    let mut seen = body.to_string() + &slack_body.to_string() + &got.to_string();
    seen += &get_data(&app, "/destinations", &reader).await.to_string();
    seen += &json!(audit_events(&app, &ws.owner_token, "").await).to_string();

    // GET, change one thing, send everything back: secrets survive.
    let settings = destination["settings"].clone();
    let res = app
        .patch(
            &format!("/destinations/{id}"),
            &member,
            &json!({ "settings": settings, "name": "Hooks v2", "enabled": false }),
        )
        .await;
    assert_eq!(res.status(), 200);
    let patched = json(res).await;
    seen += &patched.to_string();
    let patched = &patched["data"]["destination"];
    assert_eq!(patched["name"], "Hooks v2");
    assert_eq!(patched["enabled"], false);
    for secret in [secrets[0], secrets[2]] {
        let stored = app
            .count(&format!(
                "SELECT COUNT(*) FROM destinations WHERE id = '{id}' AND settings LIKE '%{secret}%'"
            ))
            .await;
        assert_eq!(stored, 1, "{secret} is still stored");
    }

    // Merge: one key changes, null removes an optional one, the rest stay.
    let res = app
        .patch(
            &format!("/destinations/{id}"),
            &member,
            &json!({ "settings": { "url": "https://hooks.example/v2", "sharedSecret": null } }),
        )
        .await;
    assert_eq!(res.status(), 200);
    let patched = json(res).await;
    seen += &patched.to_string();
    let settings = &patched["data"]["destination"]["settings"];
    assert_eq!(settings, &json!({ "url": "https://hooks.example/v2" }));
    seen += &json!(audit_events(&app, &ws.owner_token, "").await).to_string();
    for secret in secrets {
        assert!(!seen.contains(secret), "{secret} was shown");
    }

    let res = app.delete(&format!("/destinations/{id}"), &member).await;
    assert_eq!(res.status(), 200);
    assert_eq!(json(res).await, json!({ "data": { "status": "SUCCESS" } }));
    assert_eq!(
        app.get(&format!("/destinations/{id}"), &member)
            .await
            .status(),
        404
    );
}

#[tokio::test]
async fn a_source_with_destinations_cannot_be_deleted() {
    let app = TestApp::spawn().await;
    let ws = app.workspace("Acme", "owner@acme.test").await;
    let owner = &ws.owner_token;
    let source = create_source(&app, owner, "web").await;
    let source_id = source["id"].as_str().unwrap();
    let destination = create_destination(&app, owner, source_id).await;
    let events = audit_count(&app).await;

    let res = app.delete(&format!("/sources/{source_id}"), owner).await;
    assert_eq!(res.status(), 409);
    let message = error_message(&json(res).await);
    assert!(
        message.contains("1 destination(s); delete them first"),
        "{message}"
    );
    assert_eq!(audit_count(&app).await, events, "a refusal is not audited");
    assert_eq!(
        app.get(&format!("/sources/{source_id}"), owner)
            .await
            .status(),
        200
    );

    let path = format!("/destinations/{}", destination["id"].as_str().unwrap());
    assert_eq!(app.delete(&path, owner).await.status(), 200);
    assert_eq!(
        app.delete(&format!("/sources/{source_id}"), owner)
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn catalog() {
    let app = TestApp::spawn().await;
    let ws = app.workspace("Acme", "owner@acme.test").await;
    let (read_only, _) = app.mint(&ws, "dashboards", "read_only").await;

    let data = get_data(&app, "/catalog/sources", &read_only).await;
    let entries = data["sourcesCatalog"].as_array().unwrap();
    assert_eq!(entries.len(), 12);
    assert_eq!(data["pagination"]["totalEntries"], entries.len());
    let js = entries.iter().find(|e| e["slug"] == "javascript").unwrap();
    for field in ["id", "name", "slug", "description"] {
        assert!(js[field].as_str().is_some_and(|v| !v.is_empty()), "{field}");
    }
    assert!(js["categories"].is_array());
    // Options in the shape of Segment's IntegrationOptionBeta.
    let options = js["options"].as_array().unwrap();
    assert!(!options.is_empty());
    for option in options {
        assert!(
            option["name"].is_string() && option["type"].is_string(),
            "{option}"
        );
        assert!(option["required"].is_boolean(), "{option}");
    }
    let id = js["id"].as_str().unwrap();
    let one = get_data(&app, &format!("/catalog/sources/{id}"), &read_only).await;
    assert_eq!(one["sourceMetadata"], *js);

    let data = get_data(&app, "/catalog/destinations", &read_only).await;
    let entries = data["destinationsCatalog"].as_array().unwrap();
    assert_eq!(entries.len(), 12);
    let webhooks = entries.iter().find(|e| e["slug"] == "webhooks").unwrap();
    let option_names: Vec<&str> = webhooks["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(option_names, ["url", "sharedSecret"]);
    // A source or destination returns its catalog entry whole.
    let source = create_source(&app, &ws.owner_token, "web").await;
    assert_eq!(source["metadata"]["id"], source_kind());
    let listed = &data["destinationsCatalog"];
    let destination =
        create_destination(&app, &ws.owner_token, source["id"].as_str().unwrap()).await;
    let entry = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == destination_kind())
        .unwrap();
    assert_eq!(destination["metadata"], *entry);
    let id = entries[0]["id"].as_str().unwrap();
    let one = get_data(&app, &format!("/catalog/destinations/{id}"), &read_only).await;
    assert_eq!(one["destinationMetadata"], entries[0]);

    // A source kind is not a destination kind, and unknown ids are 404.
    let source_kind = source_kind();
    for path in [
        format!("/catalog/destinations/{source_kind}"),
        "/catalog/sources/nope".to_string(),
    ] {
        let res = app.get(&path, &read_only).await;
        assert_eq!(res.status(), 404, "{path}");
    }
}

#[tokio::test]
async fn tokens_crud_and_last_used() {
    let app = TestApp::spawn().await;
    let ws = app.workspace("Acme", "owner@acme.test").await;
    let owner = &ws.owner_token;

    let res = app
        .post("/tokens", owner, &json!({ "name": "ci", "role": "member" }))
        .await;
    assert_eq!(res.status(), 201);
    let created = json(res).await;
    let secret = created["data"]["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("sgp_"));
    let token = &created["data"]["token"];
    let id = token["id"].as_str().unwrap().to_string();
    assert_eq!(token["name"], "ci");
    assert_eq!(token["role"], "member");
    assert_eq!(token["lastUsedAt"], Value::Null);
    assert_eq!(token["revokedAt"], Value::Null);
    assert!(secret.ends_with(token["hint"].as_str().unwrap()));

    let list = get_data(&app, "/tokens", owner).await;
    let text = list.to_string();
    assert!(!text.contains(&secret), "the list shows no secret");
    assert!(!text.contains("hash"), "the list shows no hash: {text}");
    let listed = list["tokens"].as_array().unwrap();
    assert_eq!(listed.len(), 2);
    let listed = listed.iter().find(|t| t["id"] == id.as_str()).unwrap();
    assert_eq!(listed["lastUsedAt"], Value::Null);

    // Using the token shows up at once, without waiting for the flush.
    assert_eq!(app.get("/sources", &secret).await.status(), 200);
    let got = get_data(&app, &format!("/tokens/{id}"), owner).await;
    assert!(got["token"]["lastUsedAt"].as_str().is_some());
    assert!(!got.to_string().contains(&secret));
    let list = get_data(&app, "/tokens", owner).await;
    let listed = list["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id.as_str())
        .unwrap()
        .clone();
    assert!(listed["lastUsedAt"].as_str().is_some());

    let res = app.delete(&format!("/tokens/{id}"), owner).await;
    assert_eq!(res.status(), 200);
    assert_eq!(json(res).await, json!({ "data": { "status": "SUCCESS" } }));
    let got = get_data(&app, &format!("/tokens/{id}"), owner).await;
    assert!(got["token"]["revokedAt"].as_str().is_some());
    assert_eq!(got["token"]["revokedReason"], "revoked_by_owner");
    assert_eq!(app.get("/sources", &secret).await.status(), 401);
}

#[tokio::test]
async fn users_crud() {
    let app = TestApp::spawn().await;
    let ws = app.workspace("Acme", "owner@acme.test").await;
    let owner = &ws.owner_token;

    let res = app
        .post(
            "/users",
            owner,
            &json!({ "email": "Dev@Acme.test", "name": "Dev", "role": "member" }),
        )
        .await;
    assert_eq!(res.status(), 201);
    let user = json(res).await["data"]["user"].clone();
    let id = user["id"].as_str().unwrap().to_string();
    assert_eq!(user["email"], "dev@acme.test");
    assert_eq!(user["role"], "member");

    let list = get_data(&app, "/users", owner).await;
    let emails: Vec<&str> = list["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["email"].as_str().unwrap())
        .collect();
    assert_eq!(emails, ["owner@acme.test", "dev@acme.test"]);

    let got = get_data(&app, &format!("/users/{id}"), owner).await;
    assert_eq!(got["user"], user);

    let res = app
        .patch(&format!("/users/{id}"), owner, &json!({ "role": "owner" }))
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(json(res).await["data"]["user"]["role"], "owner");

    let res = app.delete(&format!("/users/{id}"), owner).await;
    assert_eq!(res.status(), 200);
    assert_eq!(json(res).await, json!({ "data": { "status": "SUCCESS" } }));
    assert_eq!(app.get(&format!("/users/{id}"), owner).await.status(), 404);
}

/// A row's settings cannot grow without bound: keys the kind does not have
/// are refused, and stored settings past the caps (written before the
/// catalog was enforced) take no more. Before, 150 PATCHes of 1 MB of new
/// keys each grew one row past 150 MB.
#[tokio::test]
async fn settings_cannot_grow_a_row_without_bound() {
    let app = TestApp::spawn_with(&[("RATE_LIMIT_BURST", "1000")]).await;
    let ws = app.workspace("Acme", "owner@acme.test").await;
    let owner = &ws.owner_token;
    let source = create_source(&app, owner, "web").await;
    let path = format!("/sources/{}", source["id"].as_str().unwrap());
    let size = || app.count("SELECT SUM(LENGTH(settings)) AS n FROM sources");
    let before = size().await;
    for i in 0..150 {
        let body = json!({ "settings": { format!("k{i}"): "x".repeat(4000) } });
        let res = app.patch(&path, owner, &body).await;
        assert_eq!(res.status(), 422, "PATCH {i}");
    }
    assert_eq!(size().await, before);

    // A row from before the caps: any settings change must bring it under
    // them, and may do so by removing what the catalog does not know.
    let legacy = json!({ "legacy": "y".repeat(70 * 1024) }).to_string();
    app.test_db
        .execute(&format!("UPDATE sources SET settings = '{legacy}'"))
        .await
        .unwrap();
    let res = app
        .patch(
            &path,
            owner,
            &json!({ "settings": { "trackPageViews": true } }),
        )
        .await;
    assert_eq!(res.status(), 422);
    assert!(errors_by_field(&json(res).await)["settings"].contains("at most 65536"));
    let res = app
        .patch(
            &path,
            owner,
            &json!({ "settings": { "trackPageViews": true, "legacy": null } }),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        json(res).await["data"]["source"]["settings"],
        json!({ "trackPageViews": true })
    );
    // Other fields can still change without touching the settings.
    let res = app.patch(&path, owner, &json!({ "name": "Web" })).await;
    assert_eq!(res.status(), 200);
}

/// Issue 17, finding 7. Token uses are written to `last_used_at` in
/// periodic flushes. When the database refused a write, the flush used to
/// drop every use it had not written yet; now they wait for the next
/// flush. The database's refusal is a trigger made for the test.
#[tokio::test]
async fn token_uses_a_flush_could_not_write_are_written_by_the_next() {
    let app = TestApp::spawn().await;
    let ws = app.workspace("Acme", "owner@acme.test").await;
    let mut tokens = vec![ws.owner_token.clone()];
    for name in ["a", "b"] {
        tokens.push(app.mint(&ws, name, "member").await.0);
    }
    // Minting used the owner token: write that use first.
    app.state.last_used.flush(&app.db).await.unwrap();
    const WRITTEN: &str = "SELECT COUNT(*) FROM tokens WHERE last_used_at IS NOT NULL";
    assert_eq!(app.count(WRITTEN).await, 1);
    execute_all(
        &app,
        if test_support::db::is_postgres() {
            &[
                "CREATE FUNCTION refuse_last_used() RETURNS trigger AS $$
                 BEGIN RAISE EXCEPTION 'injected failure'; END; $$ LANGUAGE plpgsql",
                "CREATE TRIGGER refuse_last_used BEFORE UPDATE OF last_used_at ON tokens
                 FOR EACH ROW EXECUTE FUNCTION refuse_last_used()",
            ]
        } else {
            &[
                "CREATE TRIGGER refuse_last_used BEFORE UPDATE OF last_used_at ON tokens
               BEGIN SELECT RAISE(ABORT, 'injected failure'); END",
            ]
        },
    )
    .await;
    for token in &tokens {
        assert_eq!(app.get("/", token).await.status(), 200);
    }
    let failed = app.state.last_used.flush(&app.db).await;
    assert!(failed.is_err(), "{failed:?}");
    assert_eq!(app.count(WRITTEN).await, 1);

    let drop_trigger = if test_support::db::is_postgres() {
        "DROP TRIGGER refuse_last_used ON tokens"
    } else {
        "DROP TRIGGER refuse_last_used"
    };
    execute_all(&app, &[drop_trigger]).await;
    let written = app.state.last_used.flush(&app.db).await.unwrap();
    assert_eq!(written, tokens.len(), "every use the failed flush kept");
    assert_eq!(app.count(WRITTEN).await, tokens.len() as i64);
}

async fn execute_all(app: &TestApp, statements: &[&str]) {
    for sql in statements {
        app.test_db.execute(sql).await.unwrap();
    }
}
