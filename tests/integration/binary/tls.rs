//! Built-in TLS: the versions served and refused, with a generated
//! certificate, hand-made ClientHellos and, where installed, openssl.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::{Sandbox, Server};

/// A self-signed certificate for `localhost` in the sandbox; returns
/// (cert path, key path, cert PEM).
pub(super) fn self_signed(sb: &Sandbox) -> (PathBuf, PathBuf, String) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert_pem = certified.cert.pem();
    let cert = sb.path().join("cert.pem");
    let key = sb.path().join("key.pem");
    std::fs::write(&cert, &cert_pem).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    (cert, key, cert_pem)
}

/// A rustls client trusting `cert_pem`, resolving `localhost` to
/// 127.0.0.1 itself (never through the system resolver).
fn tls_client(cert_pem: &str, port: u16) -> reqwest::blocking::ClientBuilder {
    reqwest::blocking::Client::builder()
        .use_rustls_tls()
        .https_only(true)
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap())
        .resolve("localhost", ([127, 0, 0, 1], port).into())
}

/// A minimal ClientHello offering exactly `version` (no supported_versions
/// extension, so TLS 1.3 is not on the table).
fn client_hello(version: [u8; 2], suites: &[u16]) -> Vec<u8> {
    fn extension(out: &mut Vec<u8>, kind: u16, data: &[u8]) {
        out.extend_from_slice(&kind.to_be_bytes());
        out.extend_from_slice(&(data.len() as u16).to_be_bytes());
        out.extend_from_slice(data);
    }
    let mut hello = Vec::new();
    hello.extend_from_slice(&version);
    hello.extend_from_slice(&[0x42; 32]); // random
    hello.push(0); // no session id
    hello.extend_from_slice(&((suites.len() * 2) as u16).to_be_bytes());
    for suite in suites {
        hello.extend_from_slice(&suite.to_be_bytes());
    }
    hello.extend_from_slice(&[1, 0]); // compression: null only
    let mut ext = Vec::new();
    let name = b"localhost";
    let mut sni = Vec::new();
    sni.extend_from_slice(&((name.len() + 3) as u16).to_be_bytes());
    sni.push(0);
    sni.extend_from_slice(&(name.len() as u16).to_be_bytes());
    sni.extend_from_slice(name);
    extension(&mut ext, 0x0000, &sni); // server_name
    extension(&mut ext, 0x000a, &[0, 4, 0x00, 0x1d, 0x00, 0x17]); // x25519, P-256
    extension(&mut ext, 0x000b, &[1, 0]); // uncompressed points
    extension(
        &mut ext,
        0x000d,
        &[0, 6, 0x04, 0x03, 0x08, 0x04, 0x04, 0x01],
    ); // sigalgs
    extension(&mut ext, 0x0017, &[]); // extended master secret
    extension(&mut ext, 0xff01, &[0]); // renegotiation_info
    hello.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    hello.extend_from_slice(&ext);

    let mut handshake = vec![0x01]; // ClientHello
    handshake.extend_from_slice(&(hello.len() as u32).to_be_bytes()[1..]);
    handshake.extend_from_slice(&hello);
    let mut record = vec![0x16, 0x03, 0x01]; // handshake record, TLS 1.0 framing
    record.extend_from_slice(&(handshake.len() as u16).to_be_bytes());
    record.extend_from_slice(&handshake);
    record
}

/// Sends a hand-made ClientHello; returns what the server answered first
/// (up to 16 bytes; empty when it just closed).
fn first_answer(port: u16, hello: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(hello).unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 16];
    while answer.len() < 6 {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("no answer to the ClientHello: {e}"),
        }
    }
    answer
}

/// Built-in TLS: rustls clients complete TLS 1.2 and 1.3 handshakes on a
/// generated certificate; a TLS 1.1 ClientHello is refused with an alert
/// and never gets a ServerHello; plain HTTP gets nothing useful.
#[test]
fn tls_serves_1_2_and_1_3_and_refuses_1_1() {
    let mut sb = Sandbox::new();
    sb.keygen();
    let (cert, key, cert_pem) = self_signed(&sb);
    let client = |port: u16, version: Option<reqwest::tls::Version>| {
        let mut b = tls_client(&cert_pem, port);
        if let Some(v) = version {
            b = b.min_tls_version(v).max_tls_version(v);
        }
        b.build().unwrap()
    };
    let server = Server::launch(
        &sb,
        &[
            ("LEAKGUARD_TLS_CERT", cert.to_str().unwrap()),
            ("LEAKGUARD_TLS_KEY", key.to_str().unwrap()),
        ],
        "https",
        &|port| client(port, None),
    );
    assert!(server.logs().contains("https://"), "{}", server.logs());
    for version in [
        reqwest::tls::Version::TLS_1_2,
        reqwest::tls::Version::TLS_1_3,
    ] {
        let client = client(server.port, Some(version));
        let res = client.get(server.url("/healthz")).send().unwrap();
        assert_eq!(res.status(), 200, "{version:?}");
        let body: Value = res.json().unwrap();
        assert_eq!(body["status"], "ok");
    }
    // A client that does not trust the certificate fails the handshake.
    let untrusting = reqwest::blocking::Client::builder()
        .use_rustls_tls()
        .resolve("localhost", ([127, 0, 0, 1], server.port).into())
        .build()
        .unwrap();
    assert!(untrusting.get(server.url("/healthz")).send().is_err());

    // The hand-made hello works at all: TLS 1.2 gets a ServerHello.
    let tls12 = client_hello([3, 3], &[0xc02b, 0xc02f, 0xc009, 0xc013, 0x002f]);
    let answer = first_answer(server.port, &tls12);
    assert!(
        answer.len() >= 6 && answer[0] == 0x16 && answer[5] == 0x02,
        "TLS 1.2 ClientHello: expected a ServerHello, got {answer:02x?}"
    );
    // TLS 1.1: an alert (protocol_version) or a close, never a ServerHello.
    let tls11 = client_hello([3, 2], &[0xc009, 0xc013, 0x002f, 0x0035]);
    let answer = first_answer(server.port, &tls11);
    assert!(
        answer.is_empty() || answer[0] == 0x15,
        "TLS 1.1 ClientHello: expected an alert or a close, got {answer:02x?}"
    );
    if answer.len() >= 7 {
        assert_eq!(answer[6], 70, "alert description: protocol_version");
    }
    // A real client too, where openssl is installed and can still offer
    // TLS 1.1: refused with an alert, while its TLS 1.2 handshake works.
    let s_client = |version: &str| {
        Command::new("openssl")
            .args(["s_client", "-connect"])
            .arg(format!("127.0.0.1:{}", server.port))
            .args([version, "-servername", "localhost"])
            .args(["-cipher", "DEFAULT@SECLEVEL=0"])
            .stdin(Stdio::null())
            .output()
            .ok()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr)
            })
    };
    if let (Some(old), Some(current)) = (s_client("-tls1_1"), s_client("-tls1_2")) {
        if !old.contains("no protocols available") && !old.contains("unknown option") {
            assert!(
                current.contains("Protocol  : TLSv1.2") && !current.contains("Cipher is (NONE)"),
                "openssl TLS 1.2:\n{current}"
            );
            assert!(old.contains("Cipher is (NONE)"), "openssl TLS 1.1:\n{old}");
            assert!(old.contains("alert"), "openssl TLS 1.1:\n{old}");
        }
    }
    // Plain HTTP on the TLS port gets no HTTP answer.
    let plain = reqwest::blocking::Client::new()
        .get(format!("http://127.0.0.1:{}/healthz", server.port))
        .timeout(Duration::from_secs(10))
        .send();
    assert!(plain.is_err() || plain.unwrap().status() != 200);
}
