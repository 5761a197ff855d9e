//! Bodies that stall or never come (issue 17, finding 1): what can be
//! refused before a body is read is refused at once; a body must arrive
//! within `LEAKGUARD_BODY_TIMEOUT_SECS`; alert bodies are held only within
//! a byte budget, per client address and in all. The last test holds
//! dozens of 8 MiB alert bodies open against the real binary and measures
//! its memory while a genuine alert is revoked meanwhile.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use leakguard::scanning::simulate::{alert_body, DevKey};
use leakguard::scanning::{KEY_ID_HEADER, SIGNATURE_HEADER};
use leakguard::token::TOKEN_TYPE;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

use crate::binary::{Sandbox, Server, LOCATION};
use crate::support::TestApp;
use test_support::process::vm_rss_kib;

const ALERT_PATH: &str = "/secret-scanning/github";

/// Another loopback address of this machine: a client apart from the
/// ones at 127.0.0.1.
fn loopback(n: u8) -> IpAddr {
    [127, 0, 0, n].into()
}

/// The head of a POST with these headers and a Content-Length of `length`.
fn head(path: &str, headers: &[(&str, &str)], length: usize) -> Vec<u8> {
    let mut text =
        format!("POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n");
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str(&format!("Content-Length: {length}\r\n\r\n"));
    text.into_bytes()
}

/// What a stalled request got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Outcome {
    /// 0: the connection closed without an answer; None: nothing yet.
    status: Option<u16>,
    retry_after: Option<u64>,
    after: Duration,
}

/// An answer's head and body, once a whole one has arrived.
fn whole_answer(answer: &[u8]) -> Option<(String, String)> {
    let end = answer.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&answer[..end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let body = answer.get(end + 4..end + 4 + length)?;
    Some((head, String::from_utf8_lossy(body).to_string()))
}

/// Connects from `from`, sends `head` and `sent` bytes of body, and then
/// stalls with the connection open (no FIN) until the server answers, or
/// `wait` passes. `written` learns when the bytes were handed to the
/// kernel (or the server stopped taking them).
async fn stalled_request(
    from: IpAddr,
    server: SocketAddr,
    head: Vec<u8>,
    sent: usize,
    wait: Duration,
    written: Option<oneshot::Sender<()>>,
) -> Outcome {
    stalled_request_answer(from, server, head, sent, wait, written)
        .await
        .0
}

/// `stalled_request`, and the answer's body.
async fn stalled_request_answer(
    from: IpAddr,
    server: SocketAddr,
    head: Vec<u8>,
    sent: usize,
    wait: Duration,
    written: Option<oneshot::Sender<()>>,
) -> (Outcome, String) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(from, 0)).unwrap();
    let stream = socket.connect(server).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let started = Instant::now();
    let write = AbortOnDrop(tokio::spawn(async move {
        let _ = writer.write_all(&head).await;
        let chunk = vec![b' '; 64 * 1024];
        let mut left = sent;
        while left > 0 {
            let n = left.min(chunk.len());
            if writer.write_all(&chunk[..n]).await.is_err() {
                break;
            }
            left -= n;
        }
        if let Some(written) = written {
            let _ = written.send(());
        }
        // Hold the connection: dropping the writer would end the body.
        tokio::time::sleep(Duration::from_secs(3600)).await;
        drop(writer);
    }));
    let mut answer = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    let read = tokio::time::timeout(wait, async {
        loop {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    answer.extend_from_slice(&buf[..n]);
                    if whole_answer(&answer).is_some() {
                        break;
                    }
                }
            }
        }
    })
    .await;
    let after = started.elapsed();
    drop(write);
    let text = String::from_utf8_lossy(&answer).to_string();
    let status = match (read, text.split(' ').nth(1)) {
        (Err(_), _) => None,
        (Ok(()), Some(code)) => Some(code.parse().unwrap_or(0)),
        (Ok(()), None) => Some(0),
    };
    let retry_after = text
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("retry-after:")
                .map(str::to_string)
        })
        .and_then(|v| v.trim().parse().ok());
    let body = whole_answer(&answer)
        .map(|(_, body)| body)
        .unwrap_or_default();
    (
        Outcome {
            status,
            retry_after,
            after,
        },
        body,
    )
}

/// Ends the connection's sending side when the request is dropped (or its
/// task aborted), as a client that goes away would.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn address(app: &TestApp) -> SocketAddr {
    app.address.trim_start_matches("http://").parse().unwrap()
}

/// Each of these is refused on its head alone, while its body has not
/// even started: at once, not after the body timeout (30 s here). A head
/// that passes every check waits for its body, and gets 408 when the body
/// does not come within the timeout, on the alert endpoint and on the
/// Public API alike.
#[tokio::test]
async fn what_can_be_refused_before_the_body_is_refused_before_the_body() {
    let app = TestApp::spawn_with(&[
        ("BODY_TIMEOUT_SECS", "30"),
        ("GITHUB_KEYS_MIN_REFETCH_SECS", "3600"),
        ("ALERT_BODIES_MAX_BYTES", "8388608"),
        ("ALERT_BODIES_MAX_BYTES_PER_CLIENT", "8388608"),
    ])
    .await;
    let server = address(&app);
    let key_id = app.key.identifier();
    let signature = app.key.sign(b"[]");
    // The one refetch an unknown identifier may cause is spent here.
    let stranger = DevKey::generate();
    let res = app
        .post_alert_raw(
            b"[]".to_vec(),
            &stranger.identifier(),
            &stranger.sign(b"[]"),
        )
        .await;
    assert_eq!(res.status(), 401);
    let hits = app.keys.hits();
    let another = DevKey::generate().identifier();
    let valid = [
        (KEY_ID_HEADER, key_id.as_str()),
        (SIGNATURE_HEADER, signature.as_str()),
    ];

    // Each head is sent with a Content-Length, and then nothing: an answer
    // within seconds means the body was never waited for.
    let refused_at_once =
        |name: &str, headers: &[(&str, &str)], length: usize, status: u16, message: &str| {
            let (name, message) = (name.to_string(), message.to_string());
            let request = head(ALERT_PATH, headers, length);
            async move {
                let (outcome, body) = stalled_request_answer(
                    loopback(1),
                    server,
                    request,
                    0,
                    Duration::from_secs(10),
                    None,
                )
                .await;
                assert_eq!(outcome.status, Some(status), "{name}: {outcome:?}");
                assert!(
                    outcome.after < Duration::from_secs(5),
                    "{name}: {outcome:?}"
                );
                assert!(body.contains(&message), "{name}: {body}");
                if status == 503 {
                    assert!(
                        outcome.retry_after.is_some_and(|s| s >= 1),
                        "{name}: {outcome:?}"
                    );
                }
            }
        };
    refused_at_once(
        "no signature",
        &[(KEY_ID_HEADER, &key_id)],
        100,
        401,
        "missing Github-Public-Key-Signature header",
    )
    .await;
    refused_at_once(
        "no key identifier",
        &[(SIGNATURE_HEADER, &signature)],
        100,
        401,
        "missing Github-Public-Key-Identifier header",
    )
    .await;
    refused_at_once(
        "a signature that is not base64",
        &[(KEY_ID_HEADER, &key_id), (SIGNATURE_HEADER, "%%%")],
        100,
        401,
        "is not standard base64",
    )
    .await;
    refused_at_once(
        "a Content-Length over the limit",
        &valid,
        8 * 1024 * 1024 + 1,
        413,
        "the body exceeds the limit",
    )
    .await;
    refused_at_once(
        "an unknown key identifier before the next refetch is allowed",
        &[(KEY_ID_HEADER, &another), (SIGNATURE_HEADER, &signature)],
        100,
        503,
        "unknown key identifier: not in the key set fetched last",
    )
    .await;
    assert_eq!(app.keys.hits(), hits, "no key fetch for any of them");

    // The budget of 8 MiB is held by one stalled 8 MiB body of 127.0.0.9.
    let holder = tokio::spawn(stalled_request(
        loopback(9),
        server,
        head(ALERT_PATH, &valid, 8 * 1024 * 1024),
        1024,
        Duration::from_secs(60),
        None,
    ));
    let deadline = Instant::now() + Duration::from_secs(10);
    while app.state.alert_bodies.held() == 0 {
        assert!(
            Instant::now() < deadline,
            "the holder never got its reservation"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    refused_at_once(
        "a body the budget cannot hold now",
        &valid,
        100,
        503,
        "too many request bodies in flight on this server",
    )
    .await;
    holder.abort();
    let deadline = Instant::now() + Duration::from_secs(10);
    while app.state.alert_bodies.held() > 0 {
        assert!(
            Instant::now() < deadline,
            "the holder's bytes were never given back"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM alerts").await, 0);
}

#[tokio::test]
async fn a_body_that_does_not_arrive_in_time_gets_408() {
    let app = TestApp::spawn_with(&[("BODY_TIMEOUT_SECS", "1")]).await;
    let ws = app.workspace("Acme", "alice@example.com").await;
    let server = address(&app);
    let key_id = app.key.identifier();
    let signature = app.key.sign(b"[]");
    let auth = format!("Bearer {}", ws.owner_token);
    let before = app.db_state().await;
    for (path, headers) in [
        (
            ALERT_PATH,
            vec![
                (KEY_ID_HEADER, key_id.as_str()),
                (SIGNATURE_HEADER, signature.as_str()),
            ],
        ),
        ("/sources", vec![("Authorization", auth.as_str())]),
    ] {
        // Half the body, then nothing.
        let outcome = stalled_request(
            loopback(1),
            server,
            head(path, &headers, 200),
            100,
            Duration::from_secs(10),
            None,
        )
        .await;
        assert_eq!(outcome.status, Some(408), "{path}: {outcome:?}");
        assert!(
            outcome.after >= Duration::from_millis(900) && outcome.after < Duration::from_secs(5),
            "{path}: {outcome:?}"
        );
    }
    assert_eq!(app.db_state().await, before, "nothing changed");
    assert_eq!(app.state.alert_bodies.held(), 0);
}

/// A client that never finishes its request's head is cut off after
/// `LEAKGUARD_CLIENT_HEADER_TIMEOUT_SECS` with a 408.
#[tokio::test]
async fn a_head_that_does_not_arrive_in_time_gets_408() {
    let app = TestApp::spawn_with(&[("CLIENT_HEADER_TIMEOUT_SECS", "1")]).await;
    let started = Instant::now();
    let mut stream = tokio::net::TcpStream::connect(address(&app)).await.unwrap();
    stream
        .write_all(b"POST /secret-scanning/github HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the connection was still open after 10 s");
    let elapsed = started.elapsed();
    assert!(
        String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
}

/// About 30 connections that each send 8 MiB minus a byte and stall used
/// to fill a 256 MiB pod. Against the real binary: 40 such bodies from one
/// address, then 20 from ten others. The server's memory stays within its
/// budget (64 MiB in all, 16 MiB per address, the defaults), the bodies
/// past it get 503 with Retry-After at once, and a genuine alert from
/// another address is processed meanwhile. Once the body timeout passes,
/// the stalled bodies get 408 and their budget is free again.
#[test]
#[cfg(target_os = "linux")]
fn stalled_alert_bodies_cannot_exhaust_memory_and_a_real_alert_gets_through() {
    const MIB: u64 = 1024;
    const LARGEST: usize = 8 * 1024 * 1024;
    let mut sb = Sandbox::new();
    let (workspace, _) = sb.workspace("Acme", "alice@example.com");
    let keys = sb.keygen();
    let key = DevKey::read_from(&keys).unwrap();
    let timeout = Duration::from_secs(6);
    let server = Server::start(&sb, &[("LEAKGUARD_BODY_TIMEOUT_SECS", "6")]);
    server.wait_ready();
    let pid = server.child.id();
    let addr: SocketAddr = ([127, 0, 0, 1], server.port()).into();
    let signature = key.sign(b"[]");
    let attack_head = head(
        ALERT_PATH,
        &[
            (KEY_ID_HEADER, &key.identifier()),
            (SIGNATURE_HEADER, &signature),
        ],
        LARGEST - 1,
    );
    // A genuine alert, from an address of its own.
    let genuine = |n: usize| {
        let token = sb.token(&workspace, &format!("leaked-{n}"));
        let body = alert_body(&[&token], TOKEN_TYPE, LOCATION, "commit");
        let res = reqwest::blocking::Client::builder()
            .local_address(loopback(2))
            .build()
            .unwrap()
            .post(server.url(ALERT_PATH))
            .header(KEY_ID_HEADER, key.identifier())
            .header(SIGNATURE_HEADER, key.sign(&body))
            .body(body)
            .timeout(Duration::from_secs(20))
            .send()
            .unwrap();
        (res.status().as_u16(), sb.is_revoked(&token))
    };
    assert_eq!(genuine(0), (200, true));
    let baseline = vm_rss_kib(pid);

    // Worker threads keep the stalled connections going while this
    // thread sends the genuine alert.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // Runs stalled bodies of 8 MiB minus two bytes (one per address in
    // `from`); once their bytes are out, takes the highest VmRSS over a
    // second and a half and sends genuine alert `n`; then collects their
    // outcomes.
    let attack = |from: &[IpAddr], n: usize| {
        let (tasks, peak) = rt.block_on(async {
            let mut tasks = Vec::new();
            let mut written = Vec::new();
            for ip in from {
                let (tx, rx) = oneshot::channel();
                written.push(rx);
                tasks.push(tokio::spawn(stalled_request(
                    *ip,
                    addr,
                    attack_head.clone(),
                    LARGEST - 2,
                    timeout * 3,
                    Some(tx),
                )));
            }
            for rx in written {
                let _ = tokio::time::timeout(Duration::from_secs(30), rx).await;
            }
            let mut peak = 0;
            for _ in 0..15 {
                peak = peak.max(vm_rss_kib(pid));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            (tasks, peak)
        });
        let genuine_meanwhile = genuine(n);
        let outcomes = rt.block_on(async {
            let mut outcomes = Vec::new();
            for task in tasks {
                outcomes.push(task.await.unwrap());
            }
            outcomes
        });
        (peak, genuine_meanwhile, outcomes)
    };
    let summarise = |outcomes: &[Outcome]| {
        let mut by_status = std::collections::BTreeMap::new();
        for o in outcomes {
            *by_status.entry(o.status).or_insert(0) += 1;
        }
        by_status
    };

    // One address, 40 bodies: two fit in its 16 MiB.
    let (peak, revoked, outcomes) = attack(&[loopback(1); 40], 1);
    eprintln!(
        "one address: VmRSS {} -> peak {} MiB; {:?}",
        baseline / MIB,
        peak / MIB,
        summarise(&outcomes)
    );
    assert!(
        peak < baseline + 48 * MIB,
        "40 stalled bodies from one address: VmRSS grew from {} to {} MiB",
        baseline / MIB,
        peak / MIB
    );
    assert_eq!(revoked, (200, true), "a genuine alert meanwhile");
    let refused_at_once = outcomes
        .iter()
        .filter(|o| o.status == Some(503) && o.after < timeout && o.retry_after.is_some())
        .count();
    let timed_out = outcomes.iter().filter(|o| o.status == Some(408)).count();
    assert_eq!((refused_at_once, timed_out), (38, 2), "{outcomes:?}");

    // Ten more addresses, two bodies each: the total of 64 MiB holds.
    let many: Vec<IpAddr> = (10..20).flat_map(|n| [loopback(n), loopback(n)]).collect();
    let (peak, _, outcomes) = attack(&many, 2);
    eprintln!(
        "ten addresses: VmRSS {} -> peak {} MiB; {:?}",
        baseline / MIB,
        peak / MIB,
        summarise(&outcomes)
    );
    assert!(
        peak < baseline + (64 + 32) * MIB,
        "20 stalled bodies from ten addresses: VmRSS grew from {} to {} MiB",
        baseline / MIB,
        peak / MIB
    );
    let timed_out = outcomes.iter().filter(|o| o.status == Some(408)).count();
    let refused = outcomes.iter().filter(|o| o.status == Some(503)).count();
    assert_eq!((timed_out, refused), (8, 12), "{outcomes:?}");

    // All given back: the attackers' own address is served again.
    let body = b"[]".to_vec();
    let res = reqwest::blocking::Client::new()
        .post(server.url(ALERT_PATH))
        .header(KEY_ID_HEADER, key.identifier())
        .header(SIGNATURE_HEADER, key.sign(&body))
        .body(body)
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
}
