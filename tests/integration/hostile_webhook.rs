//! Hostile input to the partner endpoint, one table row per case: the
//! request as bytes on the wire, the status the README documents and a
//! piece of the message that says what was wrong. No case may get a 5xx,
//! and afterwards every table, the audit chain and the live token are as
//! they were (an accepted alert only adds its `alerts` row).

use base64::Engine;
use serde_json::Value;

use crate::hostile_cases::case;
use crate::support::TestApp;
use leakguard::scanning::simulate::{alert_body, DevKey};
use leakguard::scanning::{KEY_ID_HEADER, SIGNATURE_HEADER};
use leakguard::token::TOKEN_TYPE;
use test_support::http::RawRequest;

const PATH: &str = "/secret-scanning/github";
/// Small enough to test the limit cheaply, large enough for 100,000 entries.
const LIMIT: usize = 2 * 1024 * 1024;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A key set as GitHub serves it, plus keys leakguard cannot use.
fn key_set_with_unusable_keys(good: &DevKey) -> String {
    let p384 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let ed25519 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let mut doc: Value = serde_json::from_str(&DevKey::key_set(&[good])).unwrap();
    let keys = doc["public_keys"].as_array_mut().unwrap();
    for (id, pem) in [
        ("p384-key", p384.public_key_pem()),
        ("ed25519-key", ed25519.public_key_pem()),
        (
            "garbage-key",
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n".into(),
        ),
    ] {
        keys.push(serde_json::json!({ "key_identifier": id, "key": pem, "is_current": false }));
    }
    doc.to_string()
}

#[tokio::test]
async fn hostile_alerts_get_their_documented_answer_and_change_nothing() {
    let app = TestApp::spawn_with(&[("MAX_ALERT_BYTES", &LIMIT.to_string())]).await;
    let ws = app.workspace("Acme", "alice@example.com").await;
    let (live, _) = app.mint(&ws, "live", "member").await;
    // GitHub's set now also lists a P-384, an Ed25519 and a garbage key;
    // an unknown identifier makes leakguard fetch it.
    app.keys.set(Some(key_set_with_unusable_keys(&app.key)));
    let stranger = DevKey::generate();
    let primer = app
        .post_alert_raw(
            b"[]".to_vec(),
            &stranger.identifier(),
            &stranger.sign(b"[]"),
        )
        .await;
    assert_eq!(primer.status(), 401);
    assert_eq!(app.keys.hits(), 2, "the extended key set was fetched");

    let key_id = app.key.identifier();
    // Every body that would be accepted carries a live token of ours: a
    // case that wrongly got through would revoke it.
    let good = alert_body(&[&live], TOKEN_TYPE, "", "commit");
    let good_sig = app.key.sign(&good);
    let good_der = base64::engine::general_purpose::STANDARD
        .decode(&good_sig)
        .unwrap();
    let post = || RawRequest::new("POST", PATH).header("Content-Type", "application/json");
    let unsigned = |id: &str, sig: &str| {
        post()
            .header(KEY_ID_HEADER, id)
            .header(SIGNATURE_HEADER, sig)
            .body(good.clone())
    };
    let signed_as = |content_type: Option<&str>, body: Vec<u8>| {
        let request = RawRequest::new("POST", PATH)
            .header(KEY_ID_HEADER, &key_id)
            .header(SIGNATURE_HEADER, app.key.sign(&body))
            .body(body);
        match content_type {
            Some(value) => request.header("Content-Type", value),
            None => request,
        }
    };
    let signed = |body: Vec<u8>| signed_as(Some("application/json"), body);
    let entries = |n: usize, entry: &dyn Fn(usize) -> String| {
        let items: Vec<String> = (0..n).map(entry).collect();
        format!("[{}]", items.join(",")).into_bytes()
    };
    let deep = |depth: usize| {
        let mut b = b"[{\"token\":\"t\",\"x\":".to_vec();
        b.extend(std::iter::repeat_n(b'[', depth));
        b.extend(std::iter::repeat_n(b']', depth));
        b.extend(b"}]");
        b
    };
    let huge_token = format!("[{{\"token\":\"{}\"}}]", "x".repeat(LIMIT - 100));
    let over_limit = format!("[{{\"token\":\"{}\"}}]", "x".repeat(LIMIT));
    let mut trailing_der = good_der.clone();
    trailing_der.push(0);
    let mut bad_length_der = good_der.clone();
    bad_length_der[1] = bad_length_der[1].wrapping_add(1);
    let mut padded = good.clone();
    padded.push(b'\n');

    #[rustfmt::skip] // a table reads best as one line per case
    let cases = vec![
        // The headers.
        case("no headers", post().body(good.clone()), 401, "missing Github-Public-Key-Identifier"),
        case("no key identifier", post().header(SIGNATURE_HEADER, &good_sig).body(good.clone()), 401, "missing Github-Public-Key-Identifier"),
        case("no signature", post().header(KEY_ID_HEADER, &key_id).body(good.clone()), 401, "missing Github-Public-Key-Signature"),
        case("empty key identifier", unsigned("", &good_sig), 401, "Github-Public-Key-Identifier header is empty"),
        case("empty signature", unsigned(&key_id, ""), 401, "Github-Public-Key-Signature header is empty"),
        case("blank signature", unsigned(&key_id, "    "), 401, "Github-Public-Key-Signature header is empty"),
        case("key identifier twice", unsigned(&key_id, &good_sig).header(KEY_ID_HEADER, &key_id), 401, "Github-Public-Key-Identifier header is sent more than once"),
        case("signature twice, one good", unsigned(&key_id, &good_sig).header(SIGNATURE_HEADER, "AAAA"), 401, "Github-Public-Key-Signature header is sent more than once"),
        case("signature twice, both good", unsigned(&key_id, &good_sig).header(SIGNATURE_HEADER, &good_sig), 401, "sent more than once"),
        case("key identifier not UTF-8", post().header(KEY_ID_HEADER, b"\xff\xfe").header(SIGNATURE_HEADER, &good_sig).body(good.clone()), 401, "Github-Public-Key-Identifier header is not visible ASCII text"),
        case("key identifier in UTF-8 beyond ASCII", post().header(KEY_ID_HEADER, "kéy").header(SIGNATURE_HEADER, &good_sig).body(good.clone()), 401, "Github-Public-Key-Identifier header is not visible ASCII text"),
        case("signature not UTF-8", post().header(KEY_ID_HEADER, &key_id).header(SIGNATURE_HEADER, b"ME\xffQ").body(good.clone()), 401, "Github-Public-Key-Signature header is not visible ASCII text"),
        // The signature's encoding.
        case("signature not base64", unsigned(&key_id, "%%%"), 401, "not standard base64"),
        case("signature in URL-safe base64", unsigned(&key_id, "MEQ-_w=="), 401, "not standard base64"),
        case("signature missing its padding", unsigned(&key_id, "AAA"), 401, "not standard base64"),
        case("signature's base64 cut short", unsigned(&key_id, &good_sig[..good_sig.len() - 3]), 401, "not standard base64"),
        case("signature in hex, 66 digits", unsigned(&key_id, &hex::encode([0xab; 33])), 401, "not standard base64"),
        // The signature's DER.
        case("DER truncated", unsigned(&key_id, &b64(&good_der[..good_der.len() - 4])), 401, "the signature does not match the body"),
        case("DER with a trailing byte", unsigned(&key_id, &b64(&trailing_der)), 401, "the signature does not match the body"),
        case("DER with a wrong length", unsigned(&key_id, &b64(&bad_length_der)), 401, "the signature does not match the body"),
        case("DER of r = s = 0", unsigned(&key_id, &b64(&[0x30, 6, 2, 1, 0, 2, 1, 0])), 401, "the signature does not match the body"),
        case("raw r||s instead of DER", unsigned(&key_id, &b64(&[7u8; 64])), 401, "the signature does not match the body"),
        case("10 KB of signature", unsigned(&key_id, &b64(&[0x30u8; 10_000])), 401, "the signature does not match the body"),
        // Whose signature, over what. An identifier that is not in the set
        // fetched moments ago (by the primer) may be a key GitHub has just
        // rotated in: 503 until the next refetch is allowed, so that
        // GitHub retries, rather than a 401.
        case("signature over other bytes", unsigned(&key_id, &app.key.sign(b"[]")), 401, "the signature does not match the body"),
        case("body with a byte added", post().header(KEY_ID_HEADER, &key_id).header(SIGNATURE_HEADER, &good_sig).body(padded), 401, "the signature does not match the body"),
        case("another key, known identifier", unsigned(&key_id, &stranger.sign(&good)), 401, "the signature does not match the body"),
        case("unknown key identifier", unsigned(&stranger.identifier(), &stranger.sign(&good)), 503, "unknown key identifier: not in the key set fetched last"),
        case("identifier of a P-384 key in the set", unsigned("p384-key", &good_sig), 503, "unknown key identifier: not in the key set fetched last"),
        case("identifier of an Ed25519 key in the set", unsigned("ed25519-key", &good_sig), 503, "unknown key identifier: not in the key set fetched last"),
        case("identifier of a garbage key in the set", unsigned("garbage-key", &good_sig), 503, "unknown key identifier: not in the key set fetched last"),
        case("identifier with SQL", unsigned("' OR '1'='1' --", &good_sig), 503, "unknown key identifier: not in the key set fetched last"),
        case("identifier with a path", unsigned("../../etc/passwd", &good_sig), 503, "unknown key identifier: not in the key set fetched last"),
        case("identifier of 4,000 characters", unsigned(&"a".repeat(4000), &good_sig), 503, "unknown key identifier: not in the key set fetched last"),
        // Signed, but not an alert.
        case("empty body", signed(Vec::new()), 422, "the alert must be a JSON array of objects"),
        case("not JSON", signed(b"token=sgp_x".to_vec()), 422, "the alert must be a JSON array of objects"),
        case("invalid UTF-8", signed(b"[{\"token\":\"\xff\xfe\"}]".to_vec()), 422, "invalid unicode"),
        case("lone surrogate escape", signed(br#"[{"token":"\ud800"}]"#.to_vec()), 422, "hex escape"),
        case("byte-order mark", signed(b"\xef\xbb\xbf[]".to_vec()), 422, "the alert must be a JSON array of objects"),
        case("NUL bytes", signed(vec![0; 64]), 422, "the alert must be a JSON array of objects"),
        case("an object, not an array", signed(br#"{"token":"sgp_x"}"#.to_vec()), 422, "the alert must be a JSON array of objects"),
        case("trailing bytes after the array", signed(b"[] []".to_vec()), 422, "trailing characters"),
        case("100,000 nested arrays", signed([vec![b'['; 100_000], vec![b']'; 100_000]].concat()), 422, "recursion limit exceeded"),
        case("deep nesting inside an entry", signed(deep(10_000)), 422, "recursion limit exceeded"),
        case("a number too large for any float", signed(br#"[{"token":"t","x":1e999999}]"#.to_vec()), 422, "number out of range"),
        case("a number as the token", signed(br#"[{"token":123456789012345678901234567890}]"#.to_vec()), 422, "element 0 has no string \"token\""),
        case("array of strings", signed(br#"["sgp_x"]"#.to_vec()), 422, "element 0 has no string \"token\""),
        case("arrays in the array", signed(br#"[[{"token":"t"}]]"#.to_vec()), 422, "element 0 has no string \"token\""),
        case("objects without token", signed(br#"[{"type":"x","url":"u"}]"#.to_vec()), 422, "element 0 has no string \"token\""),
        case("token null", signed(br#"[{"token":null}]"#.to_vec()), 422, "element 0 has no string \"token\""),
        case("token an object", signed(br#"[{"token":{"token":"t"}}]"#.to_vec()), 422, "element 0 has no string \"token\""),
        case("a bad entry after good ones", signed(br#"[{"token":"a"},{"token":"b"},7]"#.to_vec()), 422, "element 2 has no string \"token\""),
        case("type a number", signed(br#"[{"token":"t","type":5}]"#.to_vec()), 422, "element 0: invalid type: integer `5`"),
        case("url an object", signed(br#"[{"token":"t","url":{}}]"#.to_vec()), 422, "element 0: invalid type: map"),
        case("100,000 tiny entries, one bad", signed(entries(100_000, &|i| if i == 99_999 { "{}".into() } else { format!(r#"{{"token":"t{i}"}}"#) })), 422, "element 99999 has no string \"token\""),
        // Size and framing.
        case("over the limit", signed(over_limit.clone().into_bytes()), 413, "the body exceeds the limit of 2097152 bytes"),
        case("over the limit, chunked", signed(over_limit.into_bytes()).chunked(), 413, "the body exceeds the limit of 2097152 bytes"),
        case("Content-Length over the limit", post().header(KEY_ID_HEADER, &key_id).header(SIGNATURE_HEADER, &good_sig).header("Content-Length", "9999999999").body(good.clone()), 413, "the body exceeds the limit"),
        case("chunked, unsigned", unsigned(&key_id, &app.key.sign(b"[]")).chunked(), 401, "the signature does not match the body"),
        case("unsigned garbage", unsigned(&key_id, &good_sig).body(b"\x00garbage{[".to_vec()), 401, "the signature does not match the body"),
        case("chunk size not hexadecimal", RawRequest { raw_chunked: Some(b"zz\r\n[]\r\n0\r\n\r\n".to_vec()), ..signed(b"[]".to_vec()) }, 400, "cannot read the body"),
        case("GET instead of POST", RawRequest::new("GET", PATH).header(KEY_ID_HEADER, &key_id).header(SIGNATURE_HEADER, &good_sig), 405, "GET is not a method of this path; it takes POST"),
        // Accepted: the signature is what counts, and none of these is ours.
        case("an empty array", signed(b"[]".to_vec()), 200, ""),
        case("Content-Type text/plain", signed_as(Some("text/plain"), b"[{\"token\":\"t\"}]".to_vec()), 200, ""),
        case("no Content-Type", signed_as(None, b"[]".to_vec()), 200, ""),
        case("chunked body", signed(br#"[{"token":"sgp_x","type":"T"}]"#.to_vec()).chunked(), 200, ""),
        case("100,000 tiny entries", signed(entries(100_000, &|i| format!(r#"{{"token":"t{i}"}}"#))), 200, ""),
        case("one huge token", signed(huge_token.into_bytes()), 200, ""),
        case("huge integers elsewhere", signed(br#"[{"token":"t","n":123456789012345678901234567890,"m":-1e308}]"#.to_vec()), 200, ""),
    ];

    let before = app.db_state().await;
    let alerts_before = app.count("SELECT COUNT(*) FROM alerts").await;
    let mut accepted = 0;
    for case in &cases {
        // Shown with the failure, should the server not answer at all.
        eprintln!("case: {}", case.name);
        let res = case.request.send(&app.address).await;
        let what = format!(
            "{}: {}",
            case.name,
            String::from_utf8_lossy(&res.body[..res.body.len().min(400)])
        );
        // No server error; the one 5xx is the documented 503 that tells
        // GitHub to retry an identifier that may be a key it just rotated in.
        assert!(res.status < 500 || case.status == 503, "{what}");
        assert_eq!(res.status, case.status, "{what}");
        let body = res.json();
        if case.status == 200 {
            accepted += 1;
            for entry in body.as_array().unwrap_or_else(|| panic!("{what}")) {
                assert_eq!(entry["label"], "false_positive", "{}", case.name);
            }
        } else {
            let message = body["errors"][0]["message"]
                .as_str()
                .unwrap_or_else(|| panic!("{what}"));
            assert!(
                message.contains(case.message),
                "{}: {message:?} lacks {:?}",
                case.name,
                case.message
            );
        }
    }
    assert!(cases.len() >= 60, "{} cases", cases.len());
    assert_eq!(accepted, 7);

    // Nothing changed but the receipts of the accepted alerts, none of
    // which matched a token.
    let mut after = app.db_state().await;
    let alerts_after = app.count("SELECT COUNT(*) FROM alerts").await;
    assert_eq!(alerts_after, alerts_before + accepted);
    after.insert("rows in alerts".into(), alerts_before.to_string());
    assert_eq!(after, before);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM alerts WHERE matched > 0")
            .await,
        0
    );
    assert_eq!(
        app.get("/", &live).await.status(),
        200,
        "the live token still works"
    );
}

/// PostgreSQL text cannot hold NUL: a location with one used to fail the
/// revocation with a 500, so GitHub would have retried for ever while the
/// token stayed live. Control characters are now dropped from it.
#[tokio::test]
async fn control_characters_where_a_token_was_found_do_not_stop_its_revocation() {
    let app = TestApp::spawn().await;
    let ws = app.workspace("Acme", "alice@example.com").await;
    let (leaked, leaked_id) = app.mint(&ws, "leaked", "member").await;
    let body = serde_json::json!([{
        "token": leaked,
        "type": "leakguard\u{0}_public_api_token",
        "url": "https://github.com/o/r/blob/main/.env\u{0}\u{1b}[2J",
        "source": "com\u{0}mit\n",
    }]);
    let res = app.post_alert(serde_json::to_vec(&body).unwrap()).await;
    assert_eq!(res.status(), 200);
    let feedback: Value = res.json().await.unwrap();
    assert_eq!(feedback[0]["label"], "true_positive");
    assert_eq!(app.get("/", &leaked).await.status(), 401);
    use sqlx::Row;
    let row = sqlx::query("SELECT url, source, token_type FROM token_reports WHERE token_id = $1")
        .bind(&leaked_id)
        .fetch_one(app.test_db.pool())
        .await
        .unwrap();
    let stored: (String, String, String) = (row.get(0), row.get(1), row.get(2));
    assert_eq!(
        stored,
        (
            "https://github.com/o/r/blob/main/.env[2J".to_string(),
            "commit".to_string(),
            "leakguard_public_api_token".to_string()
        )
    );
}
