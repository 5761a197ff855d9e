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
