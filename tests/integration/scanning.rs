//! The partner endpoint: GitHub's documented sample, signatures, key sets,
//! revocation and feedback.

use serde_json::Value;

use crate::support::{json, TestApp};
use leakguard::scanning::simulate::{alert_body, DevKey};
use leakguard::token::{sha256_hex, PublicToken};
use test_support::keys::KeyServer;

const FIXTURE_KEY_ID: &str = "bcb53661c06b4728e59d897fb6165d5c9cda0fd9cdf9d09ead458168deb7518c";

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/fixtures/github/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

async fn app_with_github_sample_key() -> TestApp {
    let app = TestApp::spawn().await;
    app.keys
        .set(Some(String::from_utf8(fixture("keys.json")).unwrap()));
    // Force the new set in: an unknown identifier triggers the first refetch.
    app
}

#[tokio::test]
async fn githubs_documented_sample_verifies_and_is_a_false_positive() {
    let app = app_with_github_sample_key().await;
    let body = fixture("sample_alert.json");
    assert_eq!(body.len(), 104);
    let sig = String::from_utf8(fixture("sample_alert.signature")).unwrap();
    let res = app.post_alert_raw(body, FIXTURE_KEY_ID, &sig).await;
    assert_eq!(res.status(), 200);
    let feedback: Vec<Value> = res.json().await.unwrap();
    assert_eq!(feedback.len(), 1);
    assert_eq!(feedback[0]["label"], "false_positive");
    assert_eq!(feedback[0]["token_type"], "some_type");
    assert_eq!(feedback[0]["token_hash"], sha256_hex(b"some_token"));
    assert!(feedback[0].get("token_raw").is_none());
}

#[tokio::test]
async fn flipping_any_byte_of_the_sample_gives_401() {
    let app = app_with_github_sample_key().await;
    let body = fixture("sample_alert.json");
    let sig = String::from_utf8(fixture("sample_alert.signature")).unwrap();
    // Prime the key set so that each attempt is a pure signature check.
    assert_eq!(
        app.post_alert_raw(body.clone(), FIXTURE_KEY_ID, &sig)
            .await
            .status(),
        200
    );
    for i in (0..body.len()).step_by(7).chain([body.len() - 1]) {
        let mut forged = body.clone();
        forged[i] ^= 0x20;
        let res = app.post_alert_raw(forged, FIXTURE_KEY_ID, &sig).await;
        assert_eq!(res.status(), 401, "body byte {i}");
    }
    use base64::Engine;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(&sig)
        .unwrap();
    for i in 0..raw.len() {
        let mut forged = raw.clone();
        forged[i] ^= 0x01;
        let forged = base64::engine::general_purpose::STANDARD.encode(forged);
        let res = app
            .post_alert_raw(body.clone(), FIXTURE_KEY_ID, &forged)
            .await;
        assert_eq!(res.status(), 401, "signature byte {i}");
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM alerts").await, 1);
}

#[tokio::test]
async fn a_reported_token_is_revoked_and_then_gets_401() {
    let app = TestApp::spawn().await;
    let ws = app.workspace("Acme", "alice@example.com").await;
    let (member, member_id) = app.mint(&ws, "ci deploy", "member").await;
    assert_eq!(app.get("/", &member).await.status(), 200);

    let feedback = app.report(&[&member]).await;
    assert_eq!(feedback.len(), 1);
    assert_eq!(feedback[0]["label"], "true_positive");
    assert_eq!(feedback[0]["token_raw"], member.as_str());
    assert_eq!(feedback[0]["token_type"], "leakguard_public_api_token");

    let res = app.get("/", &member).await;
    assert_eq!(res.status(), 401);
    let body = json(res).await;
    assert_eq!(body["errors"][0]["message"], "this token has been revoked");
    assert!(body.get("data").is_none());

    // The owner token is untouched.
    assert_eq!(app.get("/", &ws.owner_token).await.status(), 200);
    let revoked = app
        .count(&format!(
            "SELECT COUNT(*) FROM tokens WHERE id = '{member_id}'
             AND revoked_reason = 'github_secret_scanning' AND revoked_at IS NOT NULL"
        ))
        .await;
    assert_eq!(revoked, 1);
    let events = app
        .count(&format!(
            "SELECT COUNT(*) FROM audit_events WHERE resource_id = '{member_id}'
             AND type = 'Token Revoked' AND actor = 'github-secret-scanning'"
        ))
        .await;
    assert_eq!(events, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM outbox").await, 1);
}

#[tokio::test]
async fn replaying_an_alert_changes_nothing_twice() {
    let app = TestApp::spawn().await;
    let ws = app.workspace("Acme", "alice@example.com").await;
    let (member, _) = app.mint(&ws, "leaky", "member").await;
    let body = alert_body(
        &[&member],
        "leakguard_public_api_token",
        "https://x/y",
        "commit",
    );
    let sig = app.key.sign(&body);
    for _ in 0..3 {
        let res = app
            .post_alert_raw(body.clone(), &app.key.identifier(), &sig)
            .await;
        assert_eq!(res.status(), 200);
        let feedback: Vec<Value> = res.json().await.unwrap();
        assert_eq!(feedback[0]["label"], "true_positive");
    }
    assert_eq!(
        app.count("SELECT COUNT(*) FROM audit_events WHERE type = 'Token Revoked'")
            .await,
        1
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM outbox").await, 1);
    // Each report is still recorded.
    assert_eq!(app.count("SELECT COUNT(*) FROM token_reports").await, 3);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM token_reports WHERE revoked = 1")
            .await,
        1
    );
}

#[tokio::test]
async fn a_mixed_batch_is_labelled_item_by_item() {
    let app = TestApp::spawn().await;
    let a = app.workspace("A", "a@example.com").await;
    let b = app.workspace("B", "b@example.com").await;
    let (a1, _) = app.mint(&a, "a1", "member").await;
    let (a2, _) = app.mint(&a, "a2", "read_only").await;
    let (b1, _) = app.mint(&b, "b1", "owner").await;
    let unknown = PublicToken::generate(); // right shape, never issued
    let bad_checksum = format!("{}A", &a1[..a1.len() - 1]).replace(
        &a1[a1.len() - 1..],
        if a1.ends_with('A') { "B" } else { "A" },
    );
    let already = {
        let (t, id) = app.mint(&a, "old", "member").await;
        assert_eq!(
            app.delete(&format!("/tokens/{id}"), &a.owner_token)
                .await
                .status(),
            200
        );
        t
    };
    let items = serde_json::json!([
        {"token": a1, "type": "leakguard_public_api_token", "url": "https://github.com/o/r/blob/x/a", "source": "commit"},
        {"token": "ghp_notours", "type": "other", "url": "", "source": "commit"},
        {"token": a2, "type": "LEAKGUARD_PUBLIC_API_TOKEN", "url": ""},
        {"token": b1, "type": "Leakguard_Public_Api_Token", "url": "https://gist.github.com/x", "source": "gist_content_never_seen"},
        {"token": a1, "type": "leakguard_public_api_token", "url": "https://dup", "source": "commit"},
        {"token": unknown.expose(), "type": "leakguard_public_api_token", "url": "", "source": "commit"},
        {"token": bad_checksum, "type": "leakguard_public_api_token", "url": "", "source": "commit"},
        {"token": already, "type": "leakguard_public_api_token", "url": "", "source": "pull_request_body"},
    ]);
    let feedback: Vec<Value> = app
        .post_alert(serde_json::to_vec(&items).unwrap())
        .await
        .json()
        .await
        .unwrap();
    // The duplicate of a1 counts once.
    assert_eq!(feedback.len(), 7);
    let labels: Vec<&str> = feedback
        .iter()
        .map(|f| f["label"].as_str().unwrap())
        .collect();
    assert_eq!(
        labels,
        [
            "true_positive",
            "false_positive",
            "true_positive",
            "true_positive",
            "false_positive",
            "false_positive",
            "true_positive"
        ]
    );
    assert_eq!(feedback[2]["token_type"], "LEAKGUARD_PUBLIC_API_TOKEN");
    assert_eq!(feedback[1]["token_hash"], sha256_hex(b"ghp_notours"));
    for f in &feedback {
        if f["label"] == "false_positive" {
            assert!(f.get("token_raw").is_none());
        }
    }
    for t in [&a1, &a2, &b1, &already] {
        assert_eq!(app.get("/", t).await.status(), 401);
    }
    // One email per owner per workspace (A and B), none for the token that
    // was already revoked.
    assert_eq!(app.count("SELECT COUNT(*) FROM outbox").await, 2);
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM audit_events WHERE type = 'Token Revoked' AND actor = 'github-secret-scanning'"
        )
        .await,
        3
    );
}

#[tokio::test]
async fn bad_requests_change_nothing() {
    let app = TestApp::spawn_with(&[("MAX_ALERT_BYTES", "4096")]).await;
    let ws = app.workspace("Acme", "alice@example.com").await;
    let (member, _) = app.mint(&ws, "t", "member").await;
    let good = alert_body(&[&member], "leakguard_public_api_token", "", "commit");
    let key_id = app.key.identifier();

    // Missing headers.
    let res = app
        .client
        .post(app.url("/secret-scanning/github"))
        .body(good.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let body = json(res).await;
    assert!(body["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("Github-Public-Key-Identifier"));
    // Headers in another case still work (and are required).
    let res = app
        .client
        .post(app.url("/secret-scanning/github"))
        .header("github-public-key-identifier", &key_id)
        .body(good.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    // Not base64.
    assert_eq!(
        app.post_alert_raw(good.clone(), &key_id, "%%%")
            .await
            .status(),
        401
    );
    // Signed by a key GitHub never published.
    let stranger = DevKey::generate();
    assert_eq!(
        app.post_alert_raw(good.clone(), &key_id, &stranger.sign(&good))
            .await
            .status(),
        401
    );
    // A signature for other bytes.
    assert_eq!(
        app.post_alert_raw(good.clone(), &key_id, &app.key.sign(b"[]"))
            .await
            .status(),
        401
    );
    // Unknown identifier, even after the refetch: 401. Another one before
    // the next refetch is allowed: 503, so that GitHub retries.
    assert_eq!(
        app.post_alert_raw(good.clone(), &stranger.identifier(), &stranger.sign(&good))
            .await
            .status(),
        401
    );
    let another = DevKey::generate();
    assert_eq!(
        app.post_alert_raw(good.clone(), &another.identifier(), &another.sign(&good))
            .await
            .status(),
        503
    );
    // Signed but malformed.
    for bad in [
        &b"{}"[..],
        b"not json",
        br#"[{"type":"x"}]"#,
        br#"[{"token": 5}]"#,
        br#"["sgp_x"]"#,
        br#"[{"token":"a"}, 7]"#,
    ] {
        let res = app.post_alert(bad.to_vec()).await;
        assert_eq!(res.status(), 422, "{}", String::from_utf8_lossy(bad));
        let body = json(res).await;
        assert!(body["errors"][0]["message"].is_string());
    }
    // Too large, signed or not.
    let big = alert_body(&[&"x".repeat(5000)], "t", "", "");
    assert_eq!(app.post_alert(big).await.status(), 413);

    assert_eq!(app.get("/", &member).await.status(), 200, "still valid");
    assert_eq!(app.count("SELECT COUNT(*) FROM alerts").await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM outbox").await, 0);
}

#[tokio::test]
async fn an_empty_alert_is_accepted() {
    let app = TestApp::spawn().await;
    let res = app.post_alert(b"[]".to_vec()).await;
    assert_eq!(res.status(), 200);
    assert_eq!(json(res).await, serde_json::json!([]));
}

#[tokio::test]
async fn key_rotation_fetches_the_new_set_once() {
    let app = TestApp::spawn().await;
    let ws = app.workspace("Acme", "alice@example.com").await;
    let (t1, _) = app.mint(&ws, "t1", "member").await;
    let (t2, _) = app.mint(&ws, "t2", "member").await;
    let hits_at_start = app.keys.hits();
    assert_eq!(hits_at_start, 1, "one fetch at start-up");

    let new_key = DevKey::generate();
    // GitHub lists the new key as current and keeps the old one.
    app.keys.set(Some(DevKey::key_set(&[&new_key, &app.key])));
    let body = alert_body(&[&t1], "leakguard_public_api_token", "", "commit");
    let res = app
        .post_alert_raw(body.clone(), &new_key.identifier(), &new_key.sign(&body))
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(app.keys.hits(), 2, "an unknown identifier fetched once");

    // The new key is now cached; the old, non-current one is still valid.
    let body2 = alert_body(&[&t2], "leakguard_public_api_token", "", "commit");
    let res = app
        .post_alert_raw(body2.clone(), &new_key.identifier(), &new_key.sign(&body2))
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(app.post_alert(b"[]".to_vec()).await.status(), 200);
    assert_eq!(app.keys.hits(), 2, "cached keys need no fetch");

    // Random identifiers do not make us hammer GitHub: one refetch per
    // interval at most. Until the next is allowed, an identifier that is
    // not in the set gets 503 and Retry-After: it may be GitHub's newest.
    for _ in 0..5 {
        let stranger = DevKey::generate();
        let res = app
            .post_alert_raw(
                b"[]".to_vec(),
                &stranger.identifier(),
                &stranger.sign(b"[]"),
            )
            .await;
        assert_eq!(res.status(), 503);
        let retry_after: u64 = res.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=60).contains(&retry_after), "{retry_after}");
    }
    assert_eq!(app.keys.hits(), 2, "no refetch within the interval");
}

#[tokio::test]
async fn concurrent_unknown_identifiers_share_one_fetch() {
    let app = TestApp::spawn().await;
    let new_key = DevKey::generate();
    app.keys.set(Some(DevKey::key_set(&[&new_key])));
    let body = b"[]".to_vec();
    let sig = new_key.sign(&body);
    let id = new_key.identifier();
    let results = futures_util::future::join_all(
        (0..10).map(|_| app.post_alert_raw(body.clone(), &id, &sig)),
    )
    .await;
    assert!(results.iter().all(|r| r.status() == 200));
    assert_eq!(app.keys.hits(), 2);
}

#[tokio::test]
async fn a_key_endpoint_outage_uses_the_last_good_set() {
    let app = TestApp::spawn().await;
    let ws = app.workspace("Acme", "alice@example.com").await;
    let (t1, _) = app.mint(&ws, "t1", "member").await;
    let (t2, _) = app.mint(&ws, "t2", "member").await;

    // GitHub goes down; the cached set still verifies.
    app.keys.set(None);
    let feedback = app.report(&[&t1]).await;
    assert_eq!(feedback[0]["label"], "true_positive");

    // A restart during the outage verifies with the persisted set.
    let app = app.restart().await;
    assert!(app.state.keys.is_loaded());
    let feedback = app.report(&[&t2]).await;
    assert_eq!(feedback[0]["label"], "true_positive");
    assert_eq!(app.get("/", &t2).await.status(), 401);
}

#[tokio::test]
async fn no_key_set_at_all_gives_503_and_changes_nothing() {
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let key = DevKey::generate();
    let keys = KeyServer::start(DevKey::key_set(&[&key])).await;
    keys.set(None);
    let db_url = test_support::db::fresh_database_url(dir.path()).await;
    let settings = [
        ("DATABASE_URL", db_url.as_str()),
        ("BIND", "127.0.0.1:0"),
        ("GITHUB_KEYS_URL", keys.url.as_str()),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let app = TestApp::start(settings, key, keys, dir).await;
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let res = app.post_alert(b"[]".to_vec()).await;
    assert_eq!(res.status(), 503);
    assert_eq!(app.count("SELECT COUNT(*) FROM alerts").await, 0);

    // GitHub comes back: the next alert fetches and succeeds.
    app.keys.set(Some(DevKey::key_set(&[&app.key])));
    assert_eq!(app.post_alert(b"[]".to_vec()).await.status(), 200);
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
}

#[tokio::test]
async fn a_file_key_set_url_works() {
    let dir = tempfile::tempdir().unwrap();
    let key = DevKey::generate();
    key.write_to(dir.path()).unwrap();
    let url = format!("file://{}/keys.json", dir.path().display());
    let app = TestApp::spawn_with(&[("GITHUB_KEYS_URL", &url)]).await;
    let body = b"[]".to_vec();
    let res = app
        .post_alert_raw(body.clone(), &key.identifier(), &key.sign(&body))
        .await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn a_key_github_withdraws_stops_being_trusted_after_the_periodic_refresh() {
    let app = TestApp::spawn_with(&[("GITHUB_KEYS_REFRESH_SECS", "0.2")]).await;
    assert_eq!(app.post_alert(b"[]".to_vec()).await.status(), 200);
    let successor = DevKey::generate();
    app.keys.set(Some(DevKey::key_set(&[&successor])));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let status = app.post_alert(b"[]".to_vec()).await.status();
        if status == 401 {
            break;
        }
        assert_eq!(status, 200);
        assert!(
            std::time::Instant::now() < deadline,
            "the old key is still trusted"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let res = app
        .post_alert_raw(
            b"[]".to_vec(),
            &successor.identifier(),
            &successor.sign(b"[]"),
        )
        .await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn concurrent_copies_of_one_alert_revoke_once() {
    // GitHub may retry an alert while the first delivery is still running.
    let app = TestApp::spawn().await;
    let a = app.workspace("A", "a@example.com").await;
    let b = app.workspace("B", "b@example.com").await;
    let mut tokens = Vec::new();
    for i in 0..10 {
        tokens.push(app.mint(&a, &format!("a{i}"), "member").await.0);
        tokens.push(app.mint(&b, &format!("b{i}"), "member").await.0);
    }
    let refs: Vec<&str> = tokens.iter().map(String::as_str).collect();
    let body = alert_body(&refs, "leakguard_public_api_token", "", "commit");
    let sig = app.key.sign(&body);
    let id = app.key.identifier();
    let results =
        futures_util::future::join_all((0..6).map(|_| app.post_alert_raw(body.clone(), &id, &sig)))
            .await;
    for res in results {
        assert_eq!(res.status(), 200);
        let feedback: Vec<Value> = res.json().await.unwrap();
        assert!(feedback.iter().all(|f| f["label"] == "true_positive"));
    }
    assert_eq!(
        app.count("SELECT COUNT(*) FROM audit_events WHERE type = 'Token Revoked'")
            .await,
        20
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM outbox").await, 2);
    assert_eq!(app.count("SELECT COUNT(*) FROM token_reports").await, 120);
    let (checked, breaks) = leakguard::audit::verify(&app.db).await.unwrap();
    assert_eq!((checked, breaks.len()), (2, 0));
}

#[tokio::test]
async fn a_database_outage_gives_503_so_github_retries() {
    let app = TestApp::spawn().await;
    let ws = app.workspace("Acme", "alice@example.com").await;
    let (member, _) = app.mint(&ws, "t", "member").await;
    app.db.close().await;
    let body = alert_body(&[&member], "leakguard_public_api_token", "", "commit");
    let res = app.post_alert(body).await;
    assert_eq!(res.status(), 503);
    assert!(res.headers().contains_key("retry-after"));
    let body = json(res).await;
    assert_eq!(body["errors"][0]["type"], "unavailable");
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
}

/// Issue 17, finding 4: a key-set document is read up to
/// `MAX_KEY_SET_BYTES` and no further. A larger one (here a valid set that
/// lists a new key, padded past the cap) is a failed fetch: the last good
/// set stays, and the new key is not trusted from it.
#[tokio::test]
async fn an_oversized_key_set_is_not_read_and_the_last_good_set_stays() {
    use leakguard::scanning::keys::MAX_KEY_SET_BYTES;
    let app = TestApp::spawn_with(&[("GITHUB_KEYS_MIN_REFETCH_SECS", "0.001")]).await;
    let failures = || {
        app.state
            .metrics
            .key_fetches
            .with_label_values(&["failure"])
            .get()
    };
    let new_key = DevKey::generate();
    let set = DevKey::key_set(&[&new_key, &app.key]);
    let padded = format!("{set}{}", " ".repeat(MAX_KEY_SET_BYTES));
    assert!(serde_json::from_str::<Value>(&padded).is_ok(), "valid JSON");
    app.keys.set(Some(padded));
    let body = b"[]".to_vec();
    let res = app
        .post_alert_raw(body.clone(), &new_key.identifier(), &new_key.sign(&body))
        .await;
    assert_eq!(res.status(), 401, "the oversized set was not taken");
    assert_eq!(failures(), 1);
    assert_eq!(
        app.post_alert(body.clone()).await.status(),
        200,
        "the old set stays"
    );

    // The same set, unpadded, is taken.
    app.keys.set(Some(set));
    let res = app
        .post_alert_raw(body.clone(), &new_key.identifier(), &new_key.sign(&body))
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(failures(), 1);
}

/// Issue 17, finding 4: replicas share key-set fetches through the
/// database. A replica that starts moments after another takes the set it
/// stored; a rotation is fetched by the replica that meets the new key
/// first, and the other finds that set in the database; and the periodic
/// refresh is made once per interval by all replicas together, not once
/// by each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_key_set_fetches() {
    let first = TestApp::spawn().await;
    assert_eq!(first.keys.hits(), 1, "the first replica's start-up fetch");
    let second = TestApp::spawn_with(&[
        ("DATABASE_URL", &first.db_url),
        ("GITHUB_KEYS_URL", &first.keys.url),
    ])
    .await;
    assert_eq!(
        first.keys.hits(),
        1,
        "the second replica took the stored set"
    );
    let body = b"[]".to_vec();
    let sig = first.key.sign(&body);
    let res = second
        .post_alert_raw(body.clone(), &first.key.identifier(), &sig)
        .await;
    assert_eq!(res.status(), 200, "and verifies with it");

    let new_key = DevKey::generate();
    first
        .keys
        .set(Some(DevKey::key_set(&[&new_key, &first.key])));
    let sig = new_key.sign(&body);
    for replica in [&first, &second] {
        let res = replica
            .post_alert_raw(body.clone(), &new_key.identifier(), &sig)
            .await;
        assert_eq!(res.status(), 200);
    }
    assert_eq!(first.keys.hits(), 2, "one fetch for the rotation, for both");
    let (_, keys, dir, settings) = second.stop().await;
    drop((keys, dir, settings));
    drop(first);

    // The periodic refresh, every 0.5 s on each of two replicas.
    let first = TestApp::spawn_with(&[("GITHUB_KEYS_REFRESH_SECS", "0.5")]).await;
    let second = TestApp::spawn_with(&[
        ("DATABASE_URL", &first.db_url),
        ("GITHUB_KEYS_URL", &first.keys.url),
        ("GITHUB_KEYS_REFRESH_SECS", "0.5"),
    ])
    .await;
    let (hits, started) = (first.keys.hits(), std::time::Instant::now());
    tokio::time::sleep(std::time::Duration::from_secs(6)).await;
    let fetches = first.keys.hits() - hits;
    let intervals = (started.elapsed().as_secs_f64() / 0.5).ceil() as usize;
    eprintln!("{fetches} fetches in {intervals} intervals");
    assert!(
        fetches >= 2 && fetches <= intervals + 1,
        "{fetches} fetches in {intervals} intervals of two replicas"
    );
    drop(second);
}
