//! Cursor pagination: across pages while rows come and go, both cursor
//! directions, the count bounds and both parameter spellings, bad cursors.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::api_helpers::*;
use crate::support::{json, TestApp};

fn query(count: usize, cursor: Option<&str>) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    q.append_pair("pagination[count]", &count.to_string());
    if let Some(c) = cursor {
        q.append_pair("pagination[cursor]", c);
    }
    q.finish()
}

/// `data` of one page of `path` (which may already carry a query).
async fn page(app: &TestApp, path: &str, token: &str, count: usize, cursor: Option<&str>) -> Value {
    let sep = if path.contains('?') { '&' } else { '?' };
    get_data(app, &format!("{path}{sep}{}", query(count, cursor)), token).await
}

fn ids(data: &Value, key: &str) -> Vec<String> {
    data[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn pages_have_no_duplicates_or_gaps_while_rows_are_inserted_and_deleted() {
    let app = TestApp::spawn().await;
    let ws = app.workspace("Acme", "owner@acme.test").await;
    let owner = &ws.owner_token;
    let mut created = Vec::new();
    for i in 0..7 {
        created.push(
            create_source(&app, owner, &format!("s{i}")).await["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let data = page(&app, "/sources", owner, 3, cursor.as_deref()).await;
        let this = ids(&data, "sources");
        assert!(this.len() <= 3);
        seen.extend(this);
        pages += 1;
        match data["pagination"]["next"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
        // Between fetches: a new row, and the removal of one already seen
        // (with offsets, that removal would make the next page skip a row).
        created.push(
            create_source(&app, owner, &format!("late{pages}")).await["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
        if pages == 1 {
            let first = created.remove(0);
            assert_eq!(
                app.delete(&format!("/sources/{first}"), owner)
                    .await
                    .status(),
                200
            );
        }
    }
    let unique: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no duplicates: {seen:?}");
    for id in &created {
        assert!(seen.contains(id), "gap: {id} never listed");
    }
    assert_eq!(
        seen.len(),
        created.len() + 1,
        "and the deleted one, seen before its removal"
    );
    assert_eq!(pages, 3);

    // One page of everything agrees, in creation order.
    let all = ids(&page(&app, "/sources", owner, 1000, None).await, "sources");
    assert_eq!(all, created);
}

#[tokio::test]
async fn next_and_previous_cursors_walk_both_ways() {
    let app = TestApp::spawn().await;
    let ws = app.workspace("Acme", "owner@acme.test").await;
    let owner = &ws.owner_token;
    let source = create_source(&app, owner, "web").await;
    for _ in 0..7 {
        create_destination(&app, owner, source["id"].as_str().unwrap()).await;
    }
    let mut pages = vec![page(&app, "/destinations", owner, 3, None).await];
    assert_eq!(pages[0]["pagination"]["current"], "MA==");
    assert_eq!(pages[0]["pagination"]["previous"], Value::Null);
    assert_eq!(pages[0]["pagination"]["totalEntries"], 7);
    while let Some(next) = pages.last().unwrap()["pagination"]["next"].as_str() {
        let next = next.to_string();
        let data = page(&app, "/destinations", owner, 3, Some(&next)).await;
        assert_eq!(data["pagination"]["current"], next.as_str());
        pages.push(data);
    }
    let sizes: Vec<usize> = pages.iter().map(|p| ids(p, "destinations").len()).collect();
    assert_eq!(sizes, [3, 3, 1]);
    for i in 1..pages.len() {
        let previous = pages[i]["pagination"]["previous"]
            .as_str()
            .unwrap()
            .to_string();
        let back = page(&app, "/destinations", owner, 3, Some(&previous)).await;
        assert_eq!(
            ids(&back, "destinations"),
            ids(&pages[i - 1], "destinations"),
            "previous of page {i}"
        );
    }
    assert_eq!(pages[1]["pagination"]["previous"], "MA==");
}

#[tokio::test]
async fn count_bounds_spellings_and_bad_cursors_on_every_list() {
    let app = TestApp::spawn_with(&[("RATE_LIMIT_BURST", "1000")]).await;
    let ws = app.workspace("Acme", "owner@acme.test").await;
    let owner = &ws.owner_token;
    for i in 0..3 {
        create_source(&app, owner, &format!("s{i}")).await;
    }
    let source = get_data(&app, "/sources", owner).await["sources"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let warehouse = create_warehouse(&app, owner).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let plan = create_tracking_plan(&app, owner, "Plan").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    // Every operation that documents the page parameters, with its ids.
    let paged: Vec<_> = leakguard::api::endpoints()
        .into_iter()
        .filter(|e| {
            e.doc
                .parameters
                .iter()
                .any(|p| p["name"] == "pagination[count]")
        })
        .collect();
    let lists: Vec<String> = paged
        .iter()
        .map(|e| {
            let id = if e.path.starts_with("/sources/") {
                &source
            } else if e.path.starts_with("/warehouses/") {
                &warehouse
            } else {
                &plan
            };
            e.path.replace("{id}", id)
        })
        .collect();
    assert_eq!(lists.len(), 16, "{lists:?}");
    assert!(paged.iter().all(|e| e.method == "GET"));
    // Segment's `GET /labels` is one list, bounded by the workspace's
    // label limit: no page parameters.
    assert!(!paged.iter().any(|e| e.path == "/labels"));
    for list in &lists {
        for bad in ["0", "1001", "x", "-1", "1.5", ""] {
            for key in ["pagination[count]", "pagination.count"] {
                let path = format!("{list}?{key}={bad}");
                let res = app.get(&path, owner).await;
                assert_eq!(res.status(), 422, "{path}");
                let errors = errors_by_field(&json(res).await);
                assert!(errors["pagination.count"].contains("1 to 1000"), "{path}");
            }
        }
        for good in ["1", "1000"] {
            let res = app
                .get(&format!("{list}?pagination[count]={good}"), owner)
                .await;
            assert_eq!(res.status(), 200, "{list} count {good}");
        }
        // Not base64; base64 of something no list returns; a position of
        // the wrong shape.
        for bad in ["!!!", "Zm9v", "LTE", "YWJjOmRlZg"] {
            let path = format!("{list}?pagination[cursor]={bad}");
            let res = app.get(&path, owner).await;
            assert_eq!(res.status(), 422, "{path}");
            let errors = errors_by_field(&json(res).await);
            assert!(errors.contains_key("pagination.cursor"), "{path}");
        }
        // Both at once are both reported.
        let res = app
            .get(
                &format!("{list}?pagination[count]=0&pagination[cursor]=!!!"),
                owner,
            )
            .await;
        assert_eq!(res.status(), 422);
        assert_eq!(errors_by_field(&json(res).await).len(), 2, "{list}");
    }

    // The dotted spelling works like the bracketed one.
    let dotted = get_data(&app, "/sources?pagination.count=2", owner).await;
    let bracketed = get_data(&app, "/sources?pagination%5Bcount%5D=2", owner).await;
    assert_eq!(ids(&dotted, "sources").len(), 2);
    assert_eq!(dotted, bracketed);
    let next = dotted["pagination"]["next"].as_str().unwrap();
    let rest = get_data(
        &app,
        &format!("/sources?pagination.count=2&pagination.cursor={next}"),
        owner,
    )
    .await;
    assert_eq!(ids(&rest, "sources").len(), 1);
    // The default is 200.
    assert_eq!(
        ids(&get_data(&app, "/sources", owner).await, "sources").len(),
        3
    );
}

#[tokio::test]
async fn audit_events_page_newest_first_while_events_are_appended() {
    let app = TestApp::spawn().await;
    let ws = app.workspace("Acme", "owner@acme.test").await;
    let owner = &ws.owner_token;
    for i in 0..6 {
        create_source(&app, owner, &format!("s{i}")).await;
    }
    // 2 from the workspace's creation, 6 sources.
    let before: Vec<String> = audit_events(&app, owner, "")
        .await
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(before.len(), 8);

    let mut seen = Vec::new();
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let data = page(&app, "/audit-events", owner, 3, cursor.as_deref()).await;
        seen.extend(ids(&data, "events"));
        pages.push(data.clone());
        match data["pagination"]["next"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
        // Newer events land before the first page, never inside the walk.
        create_source(&app, owner, &format!("late{}", pages.len())).await;
    }
    assert_eq!(
        seen, before,
        "exactly the events that existed, newest first"
    );

    // Previous cursors walk back over the same events, even though newer
    // ones now sit above the first page.
    for i in 1..pages.len() {
        let previous = pages[i]["pagination"]["previous"]
            .as_str()
            .unwrap()
            .to_string();
        let back = page(&app, "/audit-events", owner, 3, Some(&previous)).await;
        assert_eq!(
            ids(&back, "events"),
            ids(&pages[i - 1], "events"),
            "previous of page {i}"
        );
    }

    // Filtered pages count only what matches.
    let data = page(&app, "/audit-events?resourceType=source", owner, 4, None).await;
    let total = data["pagination"]["totalEntries"].as_i64().unwrap();
    assert_eq!(total, 6 + (pages.len() as i64 - 1));
    let next = data["pagination"]["next"].as_str().unwrap().to_string();
    let rest = page(
        &app,
        "/audit-events?resourceType=source",
        owner,
        4,
        Some(&next),
    )
    .await;
    let rest_ids = ids(&rest, "events");
    assert_eq!(rest_ids.len() as i64, total - 4);
    assert!(rest["events"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["resourceType"] == "source"));
    let back = page(
        &app,
        "/audit-events?resourceType=source",
        owner,
        4,
        rest["pagination"]["previous"].as_str(),
    )
    .await;
    assert_eq!(ids(&back, "events"), ids(&data, "events"));
}

#[tokio::test]
async fn the_catalog_pages_like_everything_else() {
    let app = TestApp::spawn().await;
    let ws = app.workspace("Acme", "owner@acme.test").await;
    let owner = &ws.owner_token;
    let everything = ids(
        &page(&app, "/catalog/sources", owner, 1000, None).await,
        "sourcesCatalog",
    );
    let mut seen = Vec::new();
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let data = page(&app, "/catalog/sources", owner, 2, cursor.as_deref()).await;
        assert_eq!(data["pagination"]["totalEntries"], everything.len());
        seen.extend(ids(&data, "sourcesCatalog"));
        pages.push(data.clone());
        match data["pagination"]["next"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    assert_eq!(seen, everything);
    for i in 1..pages.len() {
        let previous = pages[i]["pagination"]["previous"]
            .as_str()
            .map(str::to_string);
        let back = page(&app, "/catalog/sources", owner, 2, previous.as_deref()).await;
        assert_eq!(
            ids(&back, "sourcesCatalog"),
            ids(&pages[i - 1], "sourcesCatalog")
        );
    }
}
