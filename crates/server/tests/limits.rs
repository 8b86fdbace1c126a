//! Limits against floods, over real sockets: commands per connection (then close 4008),
//! publications per user, connections per IP (at once and per second), SSE/poll requests per
//! IP, and slowloris handshakes. Each asserts the documented error or close code, that the
//! refusal metric moved, and that a well-behaved client on the same server kept receiving.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{TestServer, WAIT, Ws, metric};
use serde_json::json;
use switchboard_server::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn refusals(server: &TestServer, transport: &str, reason: &str) -> f64 {
    metric(
        &server.metrics().await,
        &format!(
            "switchboard_security_refusals_total{{transport=\"{transport}\",reason=\"{reason}\"}}"
        ),
    )
}

async fn keeps_receiving(server: &TestServer, ws: &mut Ws, n: u64) {
    server.publish("feed", json!({"n": n})).await;
    loop {
        let v = ws.recv().await;
        if v["push"] == "publication" {
            assert_eq!(v["data"]["n"], n, "{v}");
            return;
        }
    }
}

#[tokio::test]
async fn a_command_flood_is_refused_then_closed_with_4008() {
    let server = TestServer::with(|c: &mut Config| {
        c.limits.commands_per_second = 10;
        c.limits.commands_burst = 10;
        c.limits.max_rate_limited_in_a_row = 20;
    })
    .await;
    let mut ok = Ws::connect(&server).await;
    ok.subscribe("feed").await;
    let mut flood = Ws::connect(&server).await;
    for i in 0..100u64 {
        flood.send(json!({"id": i, "cmd": "ping"})).await;
    }
    let mut limited = 0;
    let code = loop {
        match tokio::time::timeout(WAIT, futures_util::StreamExt::next(&mut flood.inner))
            .await
            .unwrap()
        {
            Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t))) => {
                let v: serde_json::Value = serde_json::from_str(&t).unwrap();
                if v["error"]["code"] == "rate_limited" {
                    limited += 1;
                }
            }
            Some(Ok(tokio_tungstenite::tungstenite::Message::Close(Some(f)))) => {
                break u16::from(f.code);
            }
            Some(Ok(_)) => {}
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(code, 4008);
    assert_eq!(limited, 20, "refused commands before the close");
    assert_eq!(refusals(&server, "websocket", "commands_rate").await, 20.0);
    keeps_receiving(&server, &mut ok, 1).await;
    server.stop().await;
}

#[tokio::test]
async fn publications_are_limited_per_user_across_connections() {
    let secret = "limits-secret-of-at-least-thirty-two-bytes";
    let server = TestServer::with(|c: &mut Config| {
        c.auth.hmac_secret = Some(secret.to_owned());
        c.limits.publications_per_second_per_user = 1;
        c.limits.publications_burst_per_user = 4;
    })
    .await;
    let key = jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()).unwrap();
    let token =
        jsonwebtoken::encode(&jsonwebtoken::Header::default(), &json!({"sub":"u1"}), &key).unwrap();
    let mut a = Ws::connect(&server).await;
    let mut b = Ws::connect(&server).await;
    a.call(json!({"cmd":"connect","token":token})).await;
    b.call(json!({"cmd":"connect","token":token})).await;
    let mut codes = Vec::new();
    for i in 0..4 {
        let ws = if i % 2 == 0 { &mut a } else { &mut b };
        let r = ws
            .call(json!({"cmd":"publish","channel":"c","data":{"i":i}}))
            .await;
        codes.push(r["error"]["code"].as_str().unwrap_or("ok").to_owned());
    }
    let r = b
        .call(json!({"cmd":"publish","channel":"c","data":{}}))
        .await;
    assert_eq!(r["error"]["code"], "rate_limited", "{r}");
    assert_eq!(codes, ["ok", "ok", "ok", "ok"]);
    // POST /poll counts for the same user.
    let r = reqwest::Client::new()
        .post(server.url("/poll"))
        .bearer_auth(&token)
        .body(r#"{"channel":"c","data":{}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(
        refusals(&server, "websocket", "publications_per_user").await,
        1.0
    );
    assert_eq!(
        refusals(&server, "poll", "publications_per_user").await,
        1.0
    );
    server.stop().await;
}

#[tokio::test]
async fn connections_per_ip_are_limited_at_once_and_per_second() {
    let server = TestServer::with(|c: &mut Config| {
        c.limits.exempt_loopback = false;
        c.limits.connections_per_ip = 3;
        c.limits.new_connections_per_second_per_ip = 1000;
        c.limits.new_connections_burst_per_ip = 1000;
    })
    .await;
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(Ws::connect_with(&server, "/ws", &[]).await.unwrap());
    }
    assert_eq!(Ws::connect_with(&server, "/ws", &[]).await.err(), Some(429));
    // The open ones are unaffected.
    let r = open[0].call(json!({"cmd":"ping"})).await;
    assert!(r.get("result").is_some(), "{r}");
    drop(open.pop());
    // The slot comes back once the server sees the close.
    let again = tokio::time::timeout(WAIT, async {
        loop {
            if let Ok(ws) = Ws::connect_with(&server, "/ws", &[]).await {
                return ws;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap();
    drop(again);
    drop(open);
    // Metrics are read over HTTP: one more connection from this address.
    let counted = tokio::time::timeout(WAIT, async {
        loop {
            if let Ok(r) = reqwest::get(server.url("/metrics")).await
                && let Ok(text) = r.text().await
            {
                return metric(
                    &text,
                    "switchboard_security_refusals_total{transport=\"tcp\",reason=\"connections_per_ip\"}",
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap();
    assert!(counted >= 1.0);
    server.stop().await;

    let server = TestServer::with(|c: &mut Config| {
        c.limits.exempt_loopback = false;
        c.limits.new_connections_per_second_per_ip = 1;
        c.limits.new_connections_burst_per_ip = 2;
    })
    .await;
    let _a = Ws::connect_with(&server, "/ws", &[]).await.unwrap();
    let _b = Ws::connect_with(&server, "/ws", &[]).await.unwrap();
    assert_eq!(Ws::connect_with(&server, "/ws", &[]).await.err(), Some(429));
    // Refilled at one a second.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(refusals(&server, "tcp", "new_connections_per_ip").await >= 1.0);
    server.stop().await;
}

#[tokio::test]
async fn sse_and_poll_requests_are_limited_per_ip() {
    let server = TestServer::with(|c: &mut Config| {
        c.limits.exempt_loopback = false;
        c.limits.http_requests_per_second_per_ip = 1;
        c.limits.http_requests_burst_per_ip = 3;
    })
    .await;
    let http = reqwest::Client::new();
    for _ in 0..3 {
        let r = http
            .get(server.url("/poll?channel=a"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let r = http.get(server.url("/sse?channel=a")).send().await.unwrap();
    assert_eq!(r.status(), 429);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
    assert_eq!(refusals(&server, "sse", "http_requests_per_ip").await, 1.0);
    server.stop().await;
}

#[tokio::test]
async fn a_slowloris_handshake_is_cut_off_while_others_are_served() {
    let server = TestServer::with(|c: &mut Config| c.limits.handshake_timeout_seconds = 1).await;
    let mut slow = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    slow.write_all(b"GET /sse?channel=a HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut ok = Ws::connect(&server).await;
    ok.subscribe("feed").await;
    let started = std::time::Instant::now();
    let mut buf = [0u8; 1024];
    // One header line every 300 ms never completes the request: the server hangs up.
    let ended = tokio::time::timeout(WAIT, async {
        loop {
            tokio::select! {
                r = slow.read(&mut buf) => return r,
                () = tokio::time::sleep(Duration::from_millis(300)) => {
                    if slow.write_all(b"X-Slow: 1\r\n").await.is_err() {
                        return Ok(0);
                    }
                }
            }
        }
    })
    .await
    .expect("the server kept a slow handshake open");
    // The server hung up (EOF or reset), or answered with an error status before hanging up.
    if let Ok(n) = ended
        && n > 0
    {
        assert!(
            buf[..n].starts_with(b"HTTP/1.1 4"),
            "{:?}",
            String::from_utf8_lossy(&buf[..n])
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "cut off after {:?}",
        started.elapsed()
    );
    keeps_receiving(&server, &mut ok, 3).await;
    server.stop().await;
}
