//! No issued token is kept or repeated anywhere but in the answer that
//! created it.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use leakguard::scanning::simulate::DevKey;
use serde_json::Value;
use test_support::db::TestDb;
use test_support::process::{runtime, wait_until};

use super::{Sandbox, Server};

/// After a full run (tokens issued by the CLI and the API, used, listed,
/// revoked by an owner and by a GitHub alert, emails sent), no issued token
/// appears in the database files, the server's logs at debug level, the
/// emails, or any HTTP answer but the one that created it. One exception,
/// by GitHub's protocol: the answer to a signed alert labels the tokens that
/// alert itself sent (`token_raw`), after revoking them.
#[test]
fn no_issued_token_appears_anywhere_but_in_its_creating_answer() {
    let mut sb = Sandbox::new();
    sb.set("LEAKGUARD_LOG_FORMAT", "json");
    sb.set("RUST_LOG", "debug");
    let (workspace, owner_token) = sb.workspace("Acme", "alice@example.com");
    let (cli_token, _) = sb.token_and_id(&workspace, "ci");
    let key = DevKey::read_from(&sb.keygen()).unwrap();
    let mut server = Server::start(&sb, &[("LEAKGUARD_OUTBOX_POLL_SECS", "0.2")]);
    server.wait_ready();

    // Every answer but the creating ones, as status, headers and body.
    let mut answers: Vec<String> = Vec::new();
    let mut keep = |what: &str, res: reqwest::blocking::Response| -> Value {
        let head = format!("{what} {} {:?}", res.status(), res.headers());
        let body = res.text().unwrap();
        answers.push(format!("{head}\n{body}"));
        serde_json::from_str(&body).unwrap_or(Value::Null)
    };
    let send = |method: &str, path: &str, token: &str, body: Option<Value>| {
        let mut request = server
            .client
            .request(method.parse().unwrap(), server.url(path))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().unwrap()
    };
    let mint = |name: &str, role: &str| {
        let res = send(
            "POST",
            "/tokens",
            &owner_token,
            Some(serde_json::json!({ "name": name, "role": role })),
        );
        assert_eq!(res.status(), 201);
        let body: Value = res.json().unwrap();
        (
            body["data"]["secret"].as_str().unwrap().to_string(),
            body["data"]["token"]["id"].as_str().unwrap().to_string(),
        )
    };
    let (member, member_id) = mint("member", "member");
    let (doomed, doomed_id) = mint("doomed", "read_only");
    let issued = [&owner_token, &cli_token, &member, &doomed];

    for token in issued {
        keep("GET /", send("GET", "/", token, None));
    }
    let source = keep(
        "POST /sources",
        send(
            "POST",
            "/sources",
            &member,
            Some(serde_json::json!({
                "slug": "web", "enabled": true,
                "metadataId": leakguard::api::catalog::SOURCES[0].id,
                "settings": { "trackPageViews": true }
            })),
        ),
    );
    assert!(source["data"]["source"]["id"].is_string(), "{source}");
    keep("GET /tokens", send("GET", "/tokens", &owner_token, None));
    keep(
        "GET /tokens/{id}",
        send("GET", &format!("/tokens/{member_id}"), &owner_token, None),
    );
    keep(
        "DELETE /tokens/{id}",
        send(
            "DELETE",
            &format!("/tokens/{doomed_id}"),
            &owner_token,
            None,
        ),
    );
    keep("GET / revoked", send("GET", "/", &doomed, None));
    let mut bad = member.clone();
    bad.replace_range(10..11, if &member[10..11] == "A" { "B" } else { "A" });
    keep("GET / bad checksum", send("GET", "/", &bad, None));

    // GitHub reports the CLI token (and something that is not ours).
    let res = server.alert(&key, &[&cli_token, "sgp_not_ours"]);
    assert_eq!(res.status(), 200);
    let feedback: Vec<Value> = res.json().unwrap();
    for entry in &feedback {
        if entry["token_raw"].is_string() {
            assert_eq!(
                entry["token_raw"],
                cli_token.as_str(),
                "only what the alert sent"
            );
        }
    }
    keep("GET / after the leak", send("GET", "/", &cli_token, None));
    keep(
        "GET /audit-events",
        send("GET", "/audit-events", &owner_token, None),
    );
    keep(
        "GET /metrics",
        server.client.get(server.url("/metrics")).send().unwrap(),
    );
    assert!(
        wait_until(Duration::from_secs(20), || !sb
            .mail_files(Path::new("mail"))
            .is_empty()),
        "no email sent:\n{}",
        server.logs()
    );
    assert!(server.terminate(Duration::from_secs(30)).success());
    assert!(sb.is_revoked(&cli_token) && sb.is_revoked(&doomed));

    // Where a token must not be: every database file or, on PostgreSQL,
    // every row as text; the server's output; the emails; the answers.
    let mut places: Vec<(String, Vec<u8>)> = Vec::new();
    for entry in std::fs::read_dir(sb.path()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name.starts_with("leakguard.db") || name.starts_with("serve-") {
            places.push((name, std::fs::read(&path).unwrap()));
        }
    }
    if test_support::db::is_postgres() {
        places.push((
            "PostgreSQL rows".into(),
            postgres_rows_as_text(&sb.database_url()),
        ));
    } else {
        assert!(
            places.iter().any(|(n, _)| n == "leakguard.db"),
            "no database file"
        );
    }
    assert!(
        places.iter().any(|(n, _)| n.starts_with("serve-")),
        "no server output"
    );
    for mail in sb.mail_files(Path::new("mail")) {
        places.push((mail.display().to_string(), std::fs::read(&mail).unwrap()));
    }
    for (i, answer) in answers.iter().enumerate() {
        places.push((format!("answer {i}"), answer.clone().into_bytes()));
    }
    let logs = server.logs();
    assert!(logs.lines().count() > 20, "debug logs expected:\n{logs}");
    for token in issued {
        // The whole token, and its secret part alone.
        for needle in [token.as_str(), &token[4..]] {
            for (place, bytes) in &places {
                assert!(
                    !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                    "a token (…{}) is in {place}",
                    &token[token.len() - 4..]
                );
            }
        }
    }
}

/// Every row of every table, as PostgreSQL prints it.
fn postgres_rows_as_text(url: &str) -> Vec<u8> {
    runtime().block_on(async {
        let db = TestDb::connect(url).await;
        let mut out = Vec::new();
        for table in db.tables().await {
            for row in db
                .scalars::<String>(&format!("SELECT t::text FROM {table} t"))
                .await
            {
                out.extend(row.into_bytes());
                out.push(b'\n');
            }
        }
        db.close().await;
        out
    })
}

/// Issue 17, finding 5. `DELETE /sources/{id}/writekey/{writeKey}` puts a
/// live write key in the request target, which tracing-actix-web's default
/// span recorded (`http.target`) on every line of the request. The
/// request's span and its access line now name the route pattern, never
/// the path; nor does any other line repeat a key, or a token sent where
/// it never belongs (a query string). Checked over the JSON logs of a whole
/// run at debug level, actix's own lines included.
#[test]
fn write_keys_and_misplaced_tokens_never_reach_the_logs() {
    let mut sb = Sandbox::new();
    sb.set("LEAKGUARD_LOG_FORMAT", "json");
    sb.set("RUST_LOG", "debug");
    let (_, owner) = sb.workspace("Acme", "alice@example.com");
    sb.keygen();
    let mut server = Server::start(&sb, &[]);
    server.wait_ready();
    let send = |method: reqwest::Method, path: &str, body: Option<Value>| {
        let mut request = server
            .client
            .request(method, server.url(path))
            .bearer_auth(&owner)
            .timeout(Duration::from_secs(20));
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().unwrap()
    };
    let res = send(
        reqwest::Method::POST,
        "/sources",
        Some(serde_json::json!({ "slug": "web", "enabled": true, "metadataId": "kVr3mQ8cTn" })),
    );
    assert_eq!(res.status(), 201);
    let source: Value = res.json().unwrap();
    let id = source["data"]["source"]["id"].as_str().unwrap().to_string();
    let res = send(
        reqwest::Method::POST,
        &format!("/sources/{id}/writekey"),
        None,
    );
    assert_eq!(res.status(), 201);
    let keys: Vec<String> = res.json::<Value>().unwrap()["data"]["source"]["writeKeys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    assert_eq!(keys.len(), 2);
    let res = send(
        reqwest::Method::DELETE,
        &format!("/sources/{id}/writekey/{}", keys[1]),
        None,
    );
    assert_eq!(res.status(), 200);
    // One the source does not have (a 404, logged at info), and one that
    // was just removed.
    let unknown = format!("{}Zz", &keys[0][..keys[0].len() - 2]);
    for key in [&unknown, &keys[1]] {
        let res = send(
            reqwest::Method::DELETE,
            &format!("/sources/{id}/writekey/{key}"),
            None,
        );
        assert_eq!(res.status(), 404);
    }
    let res = send(
        reqwest::Method::GET,
        &format!("/?access_token={owner}"),
        None,
    );
    assert_eq!(res.status(), 200);
    assert!(server.terminate(Duration::from_secs(30)).success());
    let logs = server.logs();

    for secret in [
        &keys[0],
        &keys[1],
        &unknown,
        &owner,
        &owner[4..].to_string(),
    ] {
        for line in logs.lines() {
            assert!(
                !line.contains(secret.as_str()),
                "{secret:?} leaked into: {line}"
            );
        }
    }
    // The requests are in the log, by their route, not their path.
    let routes: BTreeSet<(String, u64)> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["message"] == "request completed")
        .filter_map(|v| Some((v["route"].as_str()?.to_string(), v["status"].as_u64()?)))
        .collect();
    for expected in [
        ("/sources/{id}/writekey/{writeKey}".to_string(), 200),
        ("/sources/{id}/writekey/{writeKey}".to_string(), 404),
        ("/".to_string(), 200),
    ] {
        assert!(routes.contains(&expected), "{expected:?} not in {routes:?}");
    }
}
