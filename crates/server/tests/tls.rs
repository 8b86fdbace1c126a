//! TLS served directly, over real sockets: HTTPS (API, SSE) and WSS with a self-signed
//! certificate a client is told to trust; certificate files swapped and reloaded on SIGHUP
//! (a bad file keeps the old pair); handshakes that fail or stall are counted and closed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{path::Path, sync::Arc, time::Duration};

use common::{TestServer, WAIT, metric};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use switchboard_server::TlsConfig;
use tokio::io::AsyncReadExt;
use tokio_tungstenite::{Connector, tungstenite::Message};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    #[allow(deprecated)]
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A rustls client trusting only the certificate in `pem`.
fn client_config(pem: &[u8]) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

fn https(pem: &[u8]) -> reqwest::Client {
    reqwest::Client::builder()
        .use_preconfigured_tls((*client_config(pem)).clone())
        .build()
        .unwrap()
}

/// Writes a new self-signed pair for localhost/127.0.0.1 into `dir`; returns the cert PEM.
fn write_pair(dir: &Path) -> Vec<u8> {
    let made =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    std::fs::write(dir.join("cert.pem"), made.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), made.signing_key.serialize_pem()).unwrap();
    made.cert.pem().into_bytes()
}

async fn metrics(server: &TestServer) -> String {
    let pem = std::fs::read(cert_of(server)).unwrap();
    https(&pem)
        .get(format!("https://{}/metrics", server.addr))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn counter(server: &TestServer, name: &str, outcome: &str) -> f64 {
    metric(
        &metrics(server).await,
        &format!("switchboard_{name}_total{{outcome=\"{outcome}\"}}"),
    )
}

/// The self-signed certificate the server made under its data directory.
fn cert_of(server: &TestServer) -> std::path::PathBuf {
    server.data_dir().join("tls/self-signed.crt")
}

type Wss =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next JSON text message.
async fn next(ws: &mut Wss) -> Value {
    loop {
        let m = tokio::time::timeout(WAIT, ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let Message::Text(t) = m {
            let v: Value = serde_json::from_str(&t).unwrap();
            if v["push"] != "ping" {
                return v;
            }
        }
    }
}

#[tokio::test]
async fn https_and_wss_serve_the_api_sse_and_websocket_with_a_self_signed_certificate() {
    let server = TestServer::with(|c| {
        c.tls = TlsConfig {
            self_signed: true,
            ..TlsConfig::default()
        };
        // Tokens required, so a bad one is refused (anonymous publishes over the API only).
        c.auth.hmac_secret = Some("test-secret-of-at-least-thirty-two-bytes!".into());
        c.auth.anonymous = Some(true);
    })
    .await;
    let pem = std::fs::read(cert_of(&server)).expect("the self-signed certificate is kept");
    let http = https(&pem);
    let base = format!("https://{}", server.addr);

    // WSS: subscribe, then receive what the API publishes over HTTPS.
    let (mut ws, _) = tokio_tungstenite::connect_async_tls_with_config(
        format!("wss://{}/ws", server.addr),
        None,
        false,
        Some(Connector::Rustls(client_config(&pem))),
    )
    .await
    .unwrap();
    ws.send(Message::Text(
        json!({"id":1,"cmd":"subscribe","channel":"secure"})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    let reply = next(&mut ws).await;
    assert!(reply["result"]["epoch"].is_string(), "{reply}");

    // SSE over HTTPS sees the same publication.
    let mut sse = http
        .get(format!("{base}/sse?channel=secure"))
        .send()
        .await
        .unwrap();
    assert_eq!(sse.status(), 200);
    let r = http
        .post(format!("{base}/api/publish"))
        .json(&json!({"channel":"secure","data":{"n":1}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let p = next(&mut ws).await;
    assert_eq!(p["data"]["n"], 1, "{p}");
    let mut seen = String::new();
    while !seen.contains("\"n\":1") {
        let chunk = tokio::time::timeout(WAIT, sse.chunk())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }

    // A refusal over WSS arrives whole: the error reply, then the close code.
    let (mut refused, _) = tokio_tungstenite::connect_async_tls_with_config(
        format!("wss://{}/ws", server.addr),
        None,
        false,
        Some(Connector::Rustls(client_config(&pem))),
    )
    .await
    .unwrap();
    refused
        .send(Message::Text(
            json!({"id":1,"cmd":"connect","token":"not.a.token"})
                .to_string()
                .into(),
        ))
        .await
        .unwrap();
    let reply = next(&mut refused).await;
    assert_eq!(reply["error"]["code"], "unauthorized", "{reply}");
    let code = loop {
        match tokio::time::timeout(WAIT, refused.next()).await.unwrap() {
            Some(Ok(Message::Close(Some(f)))) => break u16::from(f.code),
            Some(Ok(_)) => continue,
            other => panic!("no close frame over TLS: {other:?}"),
        }
    };
    assert_eq!(code, 4501);

    // A client that does not trust the certificate gets no connection.
    let untrusting = reqwest::Client::builder()
        .tls_built_in_root_certs(true)
        .build()
        .unwrap();
    assert!(
        untrusting
            .get(format!("{base}/health"))
            .send()
            .await
            .is_err()
    );
    server.stop().await;
}

#[tokio::test]
async fn sighup_reloads_the_certificate_files_and_a_bad_file_keeps_the_old_pair() {
    let dir = tempfile::tempdir().unwrap();
    let first = write_pair(dir.path());
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let server = TestServer::with(|c| {
        c.tls = TlsConfig {
            cert_file: Some(cert.clone()),
            key_file: Some(key.clone()),
            self_signed: false,
        };
    })
    .await;
    let health = format!("https://{}/health", server.addr);
    assert_eq!(
        https(&first).get(&health).send().await.unwrap().status(),
        200
    );

    let ok_before = reloads(&server, &first, "ok").await;
    let second = write_pair(dir.path());
    nix_hangup();
    // Wait until the reload happened: the new certificate is served.
    let deadline = tokio::time::Instant::now() + WAIT;
    while https(&second).get(&health).send().await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "not reloaded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        https(&first).get(&health).send().await.is_err(),
        "the old certificate is gone"
    );
    assert!(reloads(&server, &second, "ok").await > ok_before);

    // A broken key: the reload fails, the second pair stays.
    std::fs::write(&key, "not a key").unwrap();
    let errors_before = reloads(&server, &second, "error").await;
    nix_hangup();
    let deadline = tokio::time::Instant::now() + WAIT;
    while reloads(&server, &second, "error").await <= errors_before {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the failed reload was not counted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        https(&second).get(&health).send().await.unwrap().status(),
        200
    );
    server.stop().await;
}

async fn reloads(server: &TestServer, pem: &[u8], outcome: &str) -> f64 {
    let text = https(pem)
        .get(format!("https://{}/metrics", server.addr))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    metric(
        &text,
        &format!("switchboard_tls_reloads_total{{outcome=\"{outcome}\"}}"),
    )
}

/// SIGHUP to this test process: the servers in it with TLS reread their files (others do
/// not listen for it).
fn nix_hangup() {
    let status = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn plain_http_and_stalled_handshakes_on_the_tls_port_are_counted_and_closed() {
    let server = TestServer::with(|c| {
        c.tls = TlsConfig {
            self_signed: true,
            ..TlsConfig::default()
        };
        c.limits.handshake_timeout_seconds = 1;
    })
    .await;
    // Plain HTTP: not a TLS ClientHello.
    let mut plain = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut plain, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 256];
    let n = tokio::time::timeout(WAIT, plain.read(&mut buf))
        .await
        .unwrap();
    assert!(!String::from_utf8_lossy(&buf[..n.unwrap_or(0)]).contains("200 OK"));
    // Silent: closed after the handshake timeout.
    let mut silent = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let n = tokio::time::timeout(WAIT, silent.read(&mut buf))
        .await
        .unwrap();
    assert_eq!(n.unwrap_or(0), 0, "the stalled handshake is closed");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let errors = counter(&server, "tls_handshake_failures", "error").await;
        let timeouts = counter(&server, "tls_handshake_failures", "timeout").await;
        if errors >= 1.0 && timeouts >= 1.0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{errors} {timeouts}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.stop().await;
}
