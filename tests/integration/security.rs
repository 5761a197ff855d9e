//! Security properties not covered elsewhere. The others have their tests
//! where their feature is: the role × endpoint matrix (`api_roles`), the
//! workspace-isolation matrix (`api_isolation`), audit tampering caught by
//! `leakguard audit verify` (`api_audit`), plaintext tokens found nowhere
//! (`binary`), hostile input (`hostile_webhook`, `hostile_api`).

use crate::api_conventions::cors_headers;
use crate::support::{json, TestApp};
use leakguard::scanning::simulate::DevKey;
use leakguard::token::{checksum, PublicToken, PREFIX, TOKEN_LEN};

/// A key-id flood (1,000 signed alerts, each naming a random key
/// identifier) costs GitHub's key endpoint one fetch per refetch interval,
/// not one per alert. The interval is set far beyond the test's length, so
/// the cap is one fetch whatever the machine's speed. The one alert whose
/// identifier was looked for at GitHub gets 401; every other one gets 503
/// with a `Retry-After` that points at the next allowed refetch, since its
/// key might be one GitHub rotated in meanwhile (issue 17, finding 4).
#[tokio::test]
async fn a_flood_of_random_key_identifiers_fetches_the_key_set_at_most_once_per_interval() {
    let app = TestApp::spawn_with(&[("GITHUB_KEYS_MIN_REFETCH_SECS", "3600")]).await;
    assert_eq!(app.keys.hits(), 1, "the start-up fetch");
    let stranger = DevKey::generate();
    let body = b"[]".to_vec();
    let signature = stranger.sign(&body);
    let (mut refused, mut deferred) = (0, 0);
    for batch in 0..20 {
        let answers = futures_util::future::join_all((0..50).map(|i| {
            let (app, body, signature) = (&app, body.clone(), &signature);
            async move {
                let id = format!("{batch:02}{i:02}{}", leakguard::id::new_id());
                app.post_alert_raw(body, &id, signature).await
            }
        }))
        .await;
        for res in answers {
            let status = res.status().as_u16();
            let retry_after = res
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
            let message = json(res).await["errors"][0]["message"].clone();
            match status {
                401 => {
                    refused += 1;
                    assert_eq!(
                        message, "unknown key identifier: not in GitHub's key set",
                        "{message}"
                    );
                }
                503 => {
                    deferred += 1;
                    let retry_after = retry_after.expect("503 with Retry-After");
                    assert!(
                        (3000..=3600).contains(&retry_after),
                        "Retry-After {retry_after}: the refetch is allowed an hour after the last"
                    );
                    assert!(
                        message
                            .as_str()
                            .unwrap()
                            .starts_with("unknown key identifier: not in the key set fetched last"),
                        "{message}"
                    );
                }
                other => panic!("unexpected {other}: {message}"),
            }
        }
    }
    assert_eq!(
        (refused, deferred),
        (1, 999),
        "one identifier looked for at GitHub, the rest deferred"
    );
    assert_eq!(app.keys.hits(), 2, "1,000 unknown identifiers, one refetch");
    // The real key still verifies, from the cache.
    assert_eq!(app.post_alert(b"[]".to_vec()).await.status(), 200);
    assert_eq!(app.keys.hits(), 2);
}

/// A well-formed token that was never issued gets the same answer whether
/// it shares 59 of its 64 characters with a live token or nothing at all:
/// the lookup is by the SHA-256 of the whole token, and the stored hash is
/// compared with `subtle`'s constant-time equality (src/api/auth.rs), so a
/// guess that is close in plaintext is not close in anything the server
/// compares. What this proves is the same path and the same answer; it does
/// not measure time (no timed assertions in this suite).
#[tokio::test]
async fn a_near_miss_and_a_far_miss_get_the_same_answer() {
    let app = TestApp::spawn().await;
    let ws = app.workspace("Acme", "owner@acme.test").await;
    let live = &ws.owner_token;
    let reissue = |random: &str| {
        let body = format!("{PREFIX}{random}");
        format!("{body}{}", checksum(&body))
    };
    let random_part = &live[PREFIX.len()..TOKEN_LEN - 6];
    let last = if random_part.ends_with('a') { "b" } else { "a" };
    let near = reissue(&format!("{}{last}", &random_part[..random_part.len() - 1]));
    let far = PublicToken::generate().expose().to_string();
    assert!(PublicToken::parse(&near).is_ok() && PublicToken::parse(&far).is_ok());
    assert_ne!(&near, live);

    let answer = |token: String| {
        let app = &app;
        async move {
            let res = app.get("/sources", &token).await;
            let status = res.status();
            let mut headers: Vec<String> = res
                .headers()
                .iter()
                .filter(|(k, _)| !matches!(k.as_str(), "date" | "x-request-id"))
                .map(|(k, v)| format!("{k}: {v:?}"))
                .collect();
            headers.sort();
            (status, headers, json(res).await)
        }
    };
    let near_answer = answer(near).await;
    assert_eq!(near_answer.0, 401);
    assert_eq!(near_answer.2["errors"][0]["message"], "unknown token");
    assert_eq!(answer(far).await, near_answer);
    // The live token itself still works: the misses changed nothing.
    assert_eq!(app.get("/sources", live).await.status(), 200);
}

/// No answer of any route, to any method, carries a CORS header, even to
/// a browser's preflight from another origin: the API is for servers.
#[tokio::test]
async fn no_route_answers_with_a_cors_header() {
    let app = TestApp::spawn().await;
    let ws = app.workspace("Acme", "owner@acme.test").await;
    let mut seen = 0;
    for (method, path) in leakguard::startup::routes() {
        let path = path.replace("{id}", "x");
        for (method, token) in [
            (method.as_str(), ws.owner_token.as_str()),
            (method.as_str(), "not-a-token"),
            ("OPTIONS", ws.owner_token.as_str()),
        ] {
            let res = app
                .client
                .request(method.parse().unwrap(), app.url(&path))
                .header("Origin", "https://attacker.example")
                .header("Access-Control-Request-Method", "DELETE")
                .header("Access-Control-Request-Headers", "authorization")
                .bearer_auth(token)
                .header("Content-Type", "application/json")
                .body("{}")
                .send()
                .await
                .unwrap();
            let what = format!("{method} {path}: {}", res.status());
            assert!(res.status().as_u16() < 500, "{what}");
            assert_eq!(cors_headers(&res), Vec::<String>::new(), "{what}");
            if method == "OPTIONS" {
                assert!(!res.status().is_success(), "{what} answered a preflight");
            }
            seen += 1;
        }
    }
    assert!(seen >= 3 * 25, "{seen} requests");
}

/// Issue 17, finding 3. `/readyz` answers anyone, and its database probe
/// is a committed write: a flood of calls used to queue a write each ahead
/// of alerts on SQLite's single writer. One probe now answers every call
/// for a second, and calls that arrive during a probe wait for it; each
/// answer says when its probe ran (`checkedAt`).
#[tokio::test]
async fn a_flood_of_readiness_checks_probes_the_database_at_most_once_a_second() {
    let app = TestApp::spawn().await;
    let started = std::time::Instant::now();
    let answers = futures_util::future::join_all((0..300).map(|_| async {
        let res = app.client.get(app.url("/readyz")).send().await.unwrap();
        assert_eq!(res.status(), 200);
        json(res).await["checkedAt"].as_str().unwrap().to_string()
    }))
    .await;
    let elapsed = started.elapsed();
    let probes: std::collections::BTreeSet<String> = answers.into_iter().collect();
    eprintln!("300 calls in {elapsed:?}: {} probes", probes.len());
    assert!(
        probes.len() as u64 <= elapsed.as_secs() + 2,
        "{} database probes for 300 calls in {elapsed:?}",
        probes.len()
    );
}

/// Issue 17, finding 8. Each invalid token used to cost a token lookup
/// (a database read) before any limit applied. Now a client address that
/// keeps failing to authenticate gets 429 before its token is even looked
/// at: the proof is that a valid token from that address is refused too,
/// while another address is served.
#[tokio::test]
async fn failed_authentications_are_limited_per_address_before_any_lookup() {
    let app = TestApp::spawn_with(&[
        ("AUTH_FAILURE_BURST", "5"),
        ("AUTH_FAILURE_PER_SECOND", "0.1"),
    ])
    .await;
    let ws = app.workspace("Acme", "owner@acme.test").await;
    let unknown = PublicToken::generate().expose().to_string();
    for _ in 0..5 {
        let res = app.get("/sources", &unknown).await;
        assert_eq!(res.status(), 401);
    }
    for token in [&unknown, &ws.owner_token] {
        let res = app.get("/sources", token).await;
        assert_eq!(res.status(), 429);
        let retry_after: u64 = res.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=10).contains(&retry_after), "{retry_after}");
        let message = json(res).await["errors"][0]["message"].clone();
        assert!(
            message
                .as_str()
                .unwrap()
                .starts_with("too many failed authentications from this address"),
            "{message}"
        );
    }
    // Another address has a bucket of its own.
    let elsewhere = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap();
    let res = elsewhere
        .get(app.url("/sources"))
        .bearer_auth(&ws.owner_token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = elsewhere
        .get(app.url("/sources"))
        .bearer_auth(&unknown)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}

/// Behind a proxy named in LEAKGUARD_TRUSTED_PROXIES, the client is the
/// address the proxy put in X-Forwarded-For; from anyone else that header
/// is the client's own say-so and is ignored, so it cannot be used to
/// dodge the limit.
#[tokio::test]
async fn the_failure_limit_believes_x_forwarded_for_only_from_trusted_proxies() {
    let app = TestApp::spawn_with(&[
        ("AUTH_FAILURE_BURST", "2"),
        ("AUTH_FAILURE_PER_SECOND", "0.1"),
        ("TRUSTED_PROXIES", "127.0.0.1"),
    ])
    .await;
    let unknown = PublicToken::generate().expose().to_string();
    let via_proxy = |client: &'static str| {
        let (app, unknown) = (&app, &unknown);
        async move {
            app.client
                .get(app.url("/"))
                .bearer_auth(unknown)
                .header("X-Forwarded-For", format!("198.51.100.1, {client}"))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(
        [
            via_proxy("203.0.113.1").await,
            via_proxy("203.0.113.1").await,
            via_proxy("203.0.113.1").await
        ],
        [401, 401, 429]
    );
    assert_eq!(
        via_proxy("203.0.113.2").await,
        401,
        "another client behind the proxy"
    );

    // 127.0.0.2 is not a trusted proxy: its header is ignored.
    let direct = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap();
    let mut statuses = Vec::new();
    for n in 0..3 {
        let res = direct
            .get(app.url("/"))
            .bearer_auth(&unknown)
            .header("X-Forwarded-For", format!("203.0.113.{}", 10 + n))
            .send()
            .await
            .unwrap();
        statuses.push(res.status().as_u16());
    }
    assert_eq!(statuses, [401, 401, 429]);
}

/// Issue 17, finding 9. A network policy works on ports, not paths: with
/// LEAKGUARD_METRICS_BIND, `/metrics` is served on a listener of its own,
/// which answers nothing else, and the main listener no longer serves it.
#[tokio::test]
async fn metrics_on_a_listener_of_their_own() {
    let app = TestApp::spawn_with(&[("METRICS_BIND", "127.0.0.1:0")]).await;
    let port = app.metrics_port.expect("a metrics listener");
    assert_ne!(
        port,
        app.address
            .rsplit(':')
            .next()
            .unwrap()
            .parse::<u16>()
            .unwrap()
    );
    let metrics = format!("http://127.0.0.1:{port}");
    let res = app
        .client
        .get(format!("{metrics}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res
        .text()
        .await
        .unwrap()
        .contains("leakguard_github_key_fetches_total"));
    let res = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(res.status(), 404);
    for path in ["/", "/healthz", "/readyz", "/openapi.json", "/sources"] {
        let res = app
            .client
            .get(format!("{metrics}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404, "{path} on the metrics listener");
    }
    let res = app
        .client
        .post(format!("{metrics}/secret-scanning/github"))
        .body("[]")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(
        app.client
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}
