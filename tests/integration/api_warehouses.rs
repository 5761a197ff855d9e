//! Warehouses as Segment's `WarehousesApi` and `CatalogApi` call them: the
//! catalog, CRUD, settings checked against the catalog, the connection
//! state, validation, and the sources connected to each.

use serde_json::{json, Value};

use crate::api_helpers::*;
use crate::support::{json, TestApp};

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn the_catalog_has_the_big_four_with_their_options() {
    let app = TestApp::spawn().await;
    let ws = app.workspace("Acme", "owner@acme.test").await;
    let (reader, _) = app.mint(&ws, "reader", "read_only").await;
    let data = get_data(&app, "/catalog/warehouses", &reader).await;
    let entries = data["warehousesCatalog"].as_array().unwrap();
    let slugs: Vec<&str> = entries
        .iter()
        .map(|e| e["slug"].as_str().unwrap())
        .collect();
    for slug in ["postgres", "snowflake", "bigquery", "redshift"] {
        assert!(slugs.contains(&slug), "{slug} in {slugs:?}");
    }
    assert_eq!(data["pagination"]["totalEntries"], entries.len());
    let bigquery = entries.iter().find(|e| e["slug"] == "bigquery").unwrap();
    let credentials = bigquery["options"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "credentials")
        .unwrap();
    assert_eq!(credentials["type"], "password");
    assert_eq!(credentials["required"], true);
    let one = get_data(
        &app,
        &format!("/catalog/warehouses/{}", id(bigquery)),
        &reader,
    )
    .await;
    assert_eq!(one["warehouseMetadata"], *bigquery);
    let res = app.get("/catalog/warehouses/nope", &reader).await;
    assert_eq!(res.status(), 404);
}

#[tokio::test]
async fn warehouses_crud_with_settings_from_the_catalog() {
    let app = TestApp::spawn().await;
    let ws = app.workspace("Acme", "owner@acme.test").await;
    let (member, _) = app.mint(&ws, "ci", "member").await;
    let (reader, _) = app.mint(&ws, "reader", "read_only").await;

    // Every problem at once, and nothing is stored.
    let events = audit_count(&app).await;
    let res = app
        .post(
            "/warehouses",
            &member,
            &json!({
                "metadataId": snowflake_kind(),
                "settings": { "account": 7, "password": "••••", "schema": "x" }
            }),
        )
        .await;
    assert_eq!(res.status(), 422);
    let errors = errors_by_field(&json(res).await);
    assert_eq!(
        errors.keys().collect::<Vec<_>>(),
        [
            "settings.account",
            "settings.database",
            "settings.password",
            "settings.schema",
            "settings.username",
            "settings.warehouse"
        ],
        "{errors:?}"
    );
    assert!(errors["settings.schema"].contains("is not a setting of Snowflake"));
    assert_eq!(app.count("SELECT COUNT(*) FROM warehouses").await, 0);
    assert_eq!(audit_count(&app).await, events);

    let res = app
        .post(
            "/warehouses",
            &member,
            &json!({ "metadataId": snowflake_kind(), "name": "Analytics", "settings": snowflake_settings() }),
        )
        .await;
    assert_eq!(res.status(), 201);
    let warehouse = json(res).await["data"]["warehouse"].clone();
    let path = format!("/warehouses/{}", id(&warehouse));
    assert_eq!(warehouse["name"], "Analytics");
    assert_eq!(warehouse["enabled"], true, "Segment's default");
    assert_eq!(warehouse["workspaceId"], ws.id.as_str());
    assert_eq!(warehouse["metadata"]["slug"], "snowflake");
    assert_eq!(warehouse["settings"]["password"], "••••");
    assert_eq!(warehouse["settings"]["account"], "xy12345.us-east-1");

    let got = get_data(&app, &path, &reader).await;
    assert_eq!(got["warehouse"], warehouse);
    let list = get_data(&app, "/warehouses?pagination[count]=1", &reader).await;
    assert_eq!(list["warehouses"][0], warehouse);
    assert_eq!(list["pagination"]["totalEntries"], 1);
    assert!(!format!("{got}{list}").contains("hunter2"));

    // Merge: the echoed mask keeps the password; a required setting cannot
    // be removed; a key the kind does not have is refused.
    let mut settings = warehouse["settings"].clone();
    settings["role"] = json!("LOADER");
    let res = app
        .patch(
            &path,
            &member,
            &json!({ "settings": settings, "enabled": false }),
        )
        .await;
    assert_eq!(res.status(), 200);
    let patched = json(res).await["data"]["warehouse"].clone();
    assert_eq!(patched["settings"]["role"], "LOADER");
    assert_eq!(patched["enabled"], false);
    let stored = app
        .count("SELECT COUNT(*) FROM warehouses WHERE settings LIKE '%hunter2%'")
        .await;
    assert_eq!(stored, 1, "the password survived its echoed mask");
    let res = app
        .patch(
            &path,
            &member,
            &json!({ "settings": { "password": null, "extra": 1 } }),
        )
        .await;
    assert_eq!(res.status(), 422);
    let errors = errors_by_field(&json(res).await);
    assert!(errors["settings.password"].contains("cannot be removed"));
    assert!(errors["settings.extra"].contains("is not a setting"));

    let state = get_data(&app, &format!("{path}/connection-state"), &reader).await;
    assert_eq!(state, json!({ "connectionState": "CONNECTED" }));

    let res = app.delete(&path, &member).await;
    assert_eq!(res.status(), 200);
    assert_eq!(app.get(&path, &member).await.status(), 404);

    let trail = audit_events(
        &app,
        &ws.owner_token,
        &format!("resourceId={}", id(&warehouse)),
    )
    .await;
    let types: Vec<&str> = trail.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "Storage Destination Deleted",
            "Storage Destination Modified",
            "Storage Destination Created"
        ]
    );
    assert_eq!(trail[0]["resourceType"], "warehouse");
    assert_eq!(
        trail[1]["details"]["changes"]["settings"],
        json!({ "changedKeys": ["role"] })
    );
    assert!(!json!(trail).to_string().contains("hunter2"));
}

#[tokio::test]
async fn validation_answers_connected_or_failed_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let ws = app.workspace("Acme", "owner@acme.test").await;
    let owner = &ws.owner_token;
    let events = audit_count(&app).await;
    let check = |settings: Value| {
        let app = &app;
        async move {
            let res = app
                .post(
                    "/warehouses/validation",
                    owner,
                    &json!({ "metadataId": snowflake_kind(), "settings": settings }),
                )
                .await;
            assert_eq!(res.status(), 200);
            json(res).await["data"]["status"].clone()
        }
    };
    assert_eq!(check(snowflake_settings()).await, "CONNECTED");
    assert_eq!(check(json!({ "account": "x" })).await, "FAILED");
    assert_eq!(check(json!({ "nonsense": true })).await, "FAILED");
    let res = app
        .post(
            "/warehouses/validation",
            owner,
            &json!({ "metadataId": "nope" }),
        )
        .await;
    assert_eq!(res.status(), 422);
    let errors = errors_by_field(&json(res).await);
    assert_eq!(
        errors.keys().collect::<Vec<_>>(),
        ["metadataId", "settings"]
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM warehouses").await, 0);
    assert_eq!(audit_count(&app).await, events);
}

#[tokio::test]
async fn sources_connect_to_warehouses_and_both_sides_list_them() {
    let app = TestApp::spawn().await;
    let ws = app.workspace("Acme", "owner@acme.test").await;
    let owner = &ws.owner_token;
    let web = create_source(&app, owner, "web").await;
    let ios = create_source(&app, owner, "ios").await;
    let warehouse = create_warehouse(&app, owner).await;
    let other = create_warehouse(&app, owner).await;
    let connection =
        |w: &Value, s: &Value| format!("/warehouses/{}/connected-sources/{}", id(w), id(s));

    for source in [&web, &ios] {
        let res = app
            .post(&connection(&warehouse, source), owner, &json!(null))
            .await;
        assert_eq!(res.status(), 201);
        assert_eq!(
            json(res).await,
            json!({ "data": { "status": "CONNECTED" } })
        );
    }
    // Again: nothing changes, nothing is audited.
    let events = audit_count(&app).await;
    let res = app
        .post(&connection(&warehouse, &web), owner, &json!(null))
        .await;
    assert_eq!(res.status(), 201);
    assert_eq!(audit_count(&app).await, events);
    assert_eq!(
        app.post(&connection(&other, &web), owner, &json!(null))
            .await
            .status(),
        201
    );

    let listed = get_data(
        &app,
        &format!(
            "/warehouses/{}/connected-sources?pagination[count]=1",
            id(&warehouse)
        ),
        owner,
    )
    .await;
    assert_eq!(listed["sources"][0]["id"], web["id"]);
    assert_eq!(listed["pagination"]["totalEntries"], 2);
    let next = listed["pagination"]["next"].as_str().unwrap();
    let rest = get_data(
        &app,
        &format!(
            "/warehouses/{}/connected-sources?pagination[count]=1&pagination[cursor]={next}",
            id(&warehouse)
        ),
        owner,
    )
    .await;
    assert_eq!(rest["sources"][0]["id"], ios["id"]);

    let fed = get_data(
        &app,
        &format!("/sources/{}/connected-warehouses", id(&web)),
        owner,
    )
    .await;
    let fed: Vec<&str> = fed["warehouses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["id"].as_str().unwrap())
        .collect();
    assert_eq!(fed, [id(&warehouse), id(&other)]);

    // Disconnect: once, then 404.
    let res = app.delete(&connection(&warehouse, &ios), owner).await;
    assert_eq!(res.status(), 200);
    let res = app.delete(&connection(&warehouse, &ios), owner).await;
    assert_eq!(res.status(), 404);
    assert!(error_message(&json(res).await).contains("not connected"));

    // A deleted source leaves every warehouse, and the trail says which.
    assert_eq!(
        app.delete(&format!("/sources/{}", id(&web)), owner)
            .await
            .status(),
        200
    );
    let left = get_data(
        &app,
        &format!("/warehouses/{}/connected-sources", id(&warehouse)),
        owner,
    )
    .await;
    assert_eq!(left["sources"], json!([]));
    let deleted = &audit_events(&app, owner, &format!("resourceId={}", id(&web))).await[0];
    assert_eq!(deleted["type"], "Source Deleted");
    let mut expected = vec![id(&warehouse), id(&other)];
    expected.sort();
    assert_eq!(
        deleted["details"]["disconnectedWarehouses"],
        json!(expected)
    );

    // Connections are audited on the warehouse.
    let trail = audit_events(&app, owner, &format!("resourceId={}", id(&warehouse))).await;
    let types: Vec<&str> = trail.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "Storage Destination Modified",
            "Storage Destination Modified",
            "Storage Destination Modified",
            "Storage Destination Created"
        ]
    );
    assert_eq!(
        trail[0]["details"]["changes"]["connectedSources"]["removed"],
        id(&ios)
    );
}

#[tokio::test]
async fn a_sources_connected_destinations_are_its_own() {
    let app = TestApp::spawn().await;
    let ws = app.workspace("Acme", "owner@acme.test").await;
    let owner = &ws.owner_token;
    let web = create_source(&app, owner, "web").await;
    let api = create_source(&app, owner, "api").await;
    let first = create_destination(&app, owner, &id(&web)).await;
    create_destination(&app, owner, &id(&api)).await;
    let second = create_destination(&app, owner, &id(&web)).await;
    let data = get_data(
        &app,
        &format!("/sources/{}/connected-destinations", id(&web)),
        owner,
    )
    .await;
    assert_eq!(data["destinations"], json!([first, second]));
    assert_eq!(data["pagination"]["totalEntries"], 2);
    let res = app
        .get(
            "/sources/AAAAAAAAAAAAAAAAAAAAAAAA/connected-destinations",
            owner,
        )
        .await;
    assert_eq!(res.status(), 404);
}
