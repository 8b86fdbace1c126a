//! The native protocol over WebSocket, against a real server on a loopback port.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};

#[tokio::test]
async fn a_subscriber_receives_publications_from_the_http_api_in_order() {
    let s = TestServer::start().await;
    let mut ws = Ws::connect(&s).await;
    let sub = ws.subscribe("news").await;
    assert_eq!(sub["offset"], 0);
    for i in 1..=5 {
        s.publish("news", json!({"i": i})).await;
    }
    for i in 1..=5 {
        let p = ws.recv().await;
        assert_eq!(p["push"], "publication");
        assert_eq!(p["channel"], "news");
        assert_eq!(p["offset"], i);
        assert_eq!(p["epoch"], sub["epoch"]);
        assert_eq!(p["data"], json!({"i": i}));
    }
    s.stop().await;
}

#[tokio::test]
async fn connect_publish_presence_history_and_ping_work() {
    let s = TestServer::start().await;
    let mut a = Ws::connect(&s).await;
    let r = a
        .call(json!({"cmd":"connect","name":"test","info":{"nick":"ann"}}))
        .await;
    let client = r["result"]["client"].as_str().unwrap().to_owned();
    assert_eq!(r["result"]["ping_interval"], 25);
    a.subscribe("room").await;
    let r = a
        .call(json!({"cmd":"publish","channel":"room","data":{"t":"hi"}}))
        .await;
    assert_eq!(r["result"]["offset"], 1);
    let p = a.recv().await;
    assert_eq!(p["info"]["client"], client.as_str());
    assert_eq!(p["info"]["info"], json!({"nick":"ann"}));
    let r = a.call(json!({"cmd":"presence","channel":"room"})).await;
    assert_eq!(r["result"]["clients"][0]["info"]["nick"], "ann");
    let r = a
        .call(json!({"cmd":"presence_count","channel":"room"}))
        .await;
    assert_eq!(r["result"], json!({"clients":1,"users":0}));
    let r = a
        .call(json!({"cmd":"history","channel":"room","limit":10}))
        .await;
    assert_eq!(r["result"]["publications"][0]["data"], json!({"t":"hi"}));
    assert_eq!(r["result"]["offset"], 1);
    let r = a.call(json!({"cmd":"ping"})).await;
    assert_eq!(r["result"], json!({}));
    let r = a.call(json!({"cmd":"connect"})).await;
    assert_eq!(r["error"]["code"], "bad_request");
    let r = a.call(json!({"cmd":"unsubscribe","channel":"room"})).await;
    assert_eq!(r["result"], json!({}));
    let r = a.call(json!({"cmd":"unsubscribe","channel":"room"})).await;
    assert_eq!(r["error"]["code"], "not_subscribed");
    s.stop().await;
}

#[tokio::test]
async fn join_and_leave_reach_subscribers_that_asked() {
    let s = TestServer::start().await;
    let mut watcher = Ws::connect(&s).await;
    watcher
        .call(json!({"cmd":"subscribe","channel":"lobby","join_leave":true}))
        .await;
    let mut other = Ws::connect(&s).await;
    let r = other.call(json!({"cmd":"connect"})).await;
    let id = r["result"]["client"].clone();
    other.subscribe("lobby").await;
    let j = watcher.recv().await;
    assert_eq!(
        (j["push"].clone(), j["info"]["client"].clone()),
        (json!("join"), id.clone())
    );
    drop(other);
    let l = watcher.recv().await;
    assert_eq!(
        (l["push"].clone(), l["info"]["client"].clone()),
        (json!("leave"), id)
    );
    s.stop().await;
}

#[tokio::test]
async fn recovery_after_a_reconnect_has_no_gap_and_no_duplicate() {
    let s = TestServer::start().await;
    let mut ws = Ws::connect(&s).await;
    let sub = ws.subscribe("feed").await;
    s.publish("feed", json!(1)).await;
    let first = ws.recv().await;
    drop(ws);
    for i in 2..=6 {
        s.publish("feed", json!(i)).await;
    }
    let mut ws = Ws::connect(&s).await;
    let r = ws
        .call(json!({"cmd":"subscribe","channel":"feed","since":{"offset":first["offset"],"epoch":sub["epoch"]}}))
        .await;
    assert_eq!(r["result"]["recovered"], true);
    let got: Vec<_> = r["result"]["publications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["data"].clone())
        .collect();
    assert_eq!(got, vec![json!(2), json!(3), json!(4), json!(5), json!(6)]);
    s.publish("feed", json!(7)).await;
    assert_eq!(ws.recv().await["offset"], 7);

    let r = ws
        .call(json!({"cmd":"subscribe","channel":"other","since":{"offset":3,"epoch":"nope"}}))
        .await;
    assert_eq!(r["result"]["recovered"], false);
    s.stop().await;
}

#[tokio::test]
async fn messagepack_clients_publish_and_receive() {
    let s = TestServer::start().await;
    let mut req = s.ws_url("/ws").into_client_request().unwrap();
    req.headers_mut().insert(
        "sec-websocket-protocol",
        "switchboard.msgpack".parse().unwrap(),
    );
    let (mut ws, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(
        resp.headers()["sec-websocket-protocol"],
        "switchboard.msgpack"
    );
    let enc = |v: rmpv::Value| {
        let mut b = Vec::new();
        rmpv::encode::write_value(&mut b, &v).unwrap();
        Message::Binary(b.into())
    };
    let map = |kv: Vec<(&str, rmpv::Value)>| {
        rmpv::Value::Map(kv.into_iter().map(|(k, v)| (k.into(), v)).collect())
    };
    ws.send(enc(map(vec![
        ("id", 1.into()),
        ("cmd", "subscribe".into()),
        ("channel", "bin".into()),
    ])))
    .await
    .unwrap();
    ws.send(enc(map(vec![
        ("id", 2.into()),
        ("cmd", "publish".into()),
        ("channel", "bin".into()),
        ("data", rmpv::Value::Binary(vec![1, 2, 3])),
    ])))
    .await
    .unwrap();
    let mut next = async || loop {
        let m = tokio::time::timeout(WAIT, ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let Message::Binary(b) = m else { continue };
        let v = rmpv::decode::read_value(&mut &b[..]).unwrap();
        break serde_json::to_value(&v).unwrap();
    };
    let mut got = Vec::new();
    // The publish reply comes once the publication is committed; publish from the API
    // only then, so the two publications have a known order.
    loop {
        let v = next().await;
        let done = v["id"] == 2;
        got.push(v);
        if done {
            break;
        }
    }
    s.publish("bin", json!({"k": "v"})).await;
    while got.iter().filter(|v| v["push"] == "publication").count() < 2 {
        got.push(next().await);
    }
    assert_eq!(got[0]["id"], 1);
    let pubs: Vec<&serde_json::Value> = got.iter().filter(|v| v["push"] == "publication").collect();
    assert_eq!(
        pubs[0]["data"],
        json!([1, 2, 3]),
        "binary data arrives as bin"
    );
    assert_eq!(
        pubs[1]["data"],
        json!({"k": "v"}),
        "JSON data is transcoded"
    );
    s.stop().await;
}

#[tokio::test]
async fn malformed_commands_get_error_replies_and_the_connection_stays() {
    let s = TestServer::start().await;
    let mut ws = Ws::connect(&s).await;
    ws.send_text("{not json").await;
    assert_eq!(ws.recv().await["error"]["code"], "bad_request");
    let r = ws.call(json!({"cmd":"teleport"})).await;
    assert_eq!(r["error"]["code"], "unknown_command");
    let r = ws
        .call(json!({"cmd":"subscribe","channel":"bad channel!"}))
        .await;
    assert_eq!(r["error"]["code"], "invalid_channel");
    let r = ws
        .call(json!({"cmd":"subscribe","channel":"x".repeat(256)}))
        .await;
    assert_eq!(r["error"]["code"], "invalid_channel");
    let r = ws.call(json!({"cmd":"publish","channel":"a"})).await;
    assert_eq!(r["error"]["code"], "invalid_data");
    ws.inner
        .send(Message::Binary(vec![1, 2, 3].into()))
        .await
        .unwrap();
    assert_eq!(ws.recv().await["error"]["code"], "bad_request");
    // Still usable.
    assert!(ws.subscribe("ok").await.get("epoch").is_some());
    let m = s.metrics().await;
    assert!(
        metric(
            &m,
            "switchboard_errors_total{transport=\"websocket\",code=\"bad_request\"}"
        ) >= 2.0,
        "{m}"
    );
    assert!(
        metric(
            &m,
            "switchboard_errors_total{transport=\"websocket\",code=\"unknown_command\"}"
        ) >= 1.0
    );
    s.stop().await;
}

#[tokio::test]
async fn oversize_messages_close_with_1009() {
    let s = TestServer::with(|c| c.websocket.max_message_bytes = 1024).await;
    let mut ws = Ws::connect(&s).await;
    let big = json!({"cmd":"publish","channel":"a","data":"x".repeat(2000)});
    ws.send(big).await;
    assert_eq!(ws.closed().await, 1009);
    let m = s.metrics().await;
    assert_eq!(
        metric(
            &m,
            "switchboard_errors_total{transport=\"websocket\",code=\"message_too_big\"}"
        ),
        1.0
    );
    s.stop().await;
}

#[tokio::test]
async fn subscription_and_channel_limits_answer_limit_exceeded() {
    let s = TestServer::with(|c| {
        c.hub.max_subscriptions_per_client = 2;
        c.hub.max_channels = 3;
    })
    .await;
    let mut ws = Ws::connect(&s).await;
    ws.subscribe("a").await;
    ws.subscribe("b").await;
    let r = ws.call(json!({"cmd":"subscribe","channel":"c"})).await;
    assert_eq!(r["error"]["code"], "limit_exceeded");
    let r = ws.call(json!({"cmd":"subscribe","channel":"a"})).await;
    assert_eq!(r["error"]["code"], "already_subscribed");
    let r = ws
        .call(json!({"cmd":"publish","channel":"c","data":1}))
        .await;
    assert_eq!(r["result"]["offset"], 1);
    let r = ws
        .call(json!({"cmd":"publish","channel":"d","data":1}))
        .await;
    assert_eq!(r["error"]["code"], "limit_exceeded");
    s.stop().await;
}

#[tokio::test]
async fn a_stalled_client_is_dropped_as_slow_consumer_while_others_get_everything() {
    let s = TestServer::with(|c| {
        c.hub.outbox_max_bytes = 256 << 10;
        c.websocket.write_timeout_seconds = 2;
    })
    .await;
    // The stalled client: a raw socket that subscribes and then never reads.
    let mut raw = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let req = format!(
        "GET /ws HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        s.addr
    );
    raw.write_all(req.as_bytes()).await.unwrap();
    let mut head = vec![0u8; 1024];
    let n = raw.read(&mut head).await.unwrap();
    assert!(String::from_utf8_lossy(&head[..n]).starts_with("HTTP/1.1 101"));
    let cmd = br#"{"id":1,"cmd":"subscribe","channel":"flood"}"#;
    let mut frame = vec![0x81, 0x80 | cmd.len() as u8, 0, 0, 0, 0];
    frame.extend_from_slice(cmd);
    raw.write_all(&frame).await.unwrap();

    let mut good = Ws::connect(&s).await;
    good.subscribe("flood").await;
    // Loopback socket buffers absorb ~10 MB before a write blocks: send twice that.
    let payload = "y".repeat(32_000);
    let total = 640;
    let reader = tokio::spawn(async move {
        for i in 1..=total {
            let p = good.recv().await;
            assert_eq!(p["offset"], i, "in order, nothing lost: {p}");
        }
    });
    for _ in 0..total {
        s.publish("flood", json!(payload)).await;
    }
    tokio::time::timeout(Duration::from_secs(60), reader)
        .await
        .unwrap()
        .unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let m = s.metrics().await;
        if metric(
            &m,
            "switchboard_slow_consumer_disconnects_total{transport=\"websocket\"}",
        ) >= 1.0
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "slow consumer not dropped:\n{m}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    s.stop().await;
}

#[tokio::test]
async fn a_silent_client_is_closed_with_4002() {
    let s = TestServer::with(|c| {
        c.websocket.ping_interval_seconds = 1;
        c.websocket.pong_timeout_seconds = 1;
    })
    .await;
    // tungstenite answers server pings only at the WebSocket level, never with
    // {"cmd":"pong"}, and we never send anything, so the server hears silence.
    let mut ws = Ws::connect(&s).await;
    let mut pings = 0;
    let code = loop {
        match tokio::time::timeout(WAIT, ws.inner.next()).await.unwrap() {
            Some(Ok(Message::Text(t))) if t.contains("\"ping\"") => pings += 1,
            Some(Ok(Message::Text(t))) => assert!(t.contains("no pong"), "{t}"),
            Some(Ok(Message::Close(Some(f)))) => break u16::from(f.code),
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(code, 4002);
    assert!(pings >= 1);
    s.stop().await;
}

#[tokio::test]
async fn presence_of_a_vanished_client_expires_after_ping_and_pong_timeout() {
    let s = TestServer::with(|c| {
        c.websocket.ping_interval_seconds = 1;
        c.websocket.pong_timeout_seconds = 1;
    })
    .await;
    let mut ws = Ws::connect(&s).await;
    ws.subscribe("room").await;
    let (_, count) = s.get_json("/api/presence_count?channel=room").await;
    assert_eq!(count["clients"], 1);
    // From here the client neither reads nor writes: a peer that vanished.
    let started = std::time::Instant::now();
    loop {
        let (_, count) = s.get_json("/api/presence_count?channel=room").await;
        if count["clients"] == 0 {
            break;
        }
        assert!(
            started.elapsed() < WAIT,
            "presence of a silent connection never expired"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(ws);
    s.stop().await;
}

#[tokio::test]
async fn namespace_options_are_enforced_for_clients() {
    let s = TestServer::with(|c| {
        c.namespaces.insert(
            "ticker".into(),
            switchboard_core::NamespaceOptions {
                persist: Some(false),
                presence: Some(false),
                join_leave: Some(false),
                publish: Some(switchboard_core::Access::NOBODY),
                read_history: Some(switchboard_core::Access::NOBODY),
                ..Default::default()
            },
        );
    })
    .await;
    let mut ws = Ws::connect(&s).await;
    let code = |v: &serde_json::Value| v["error"]["code"].as_str().unwrap_or("").to_owned();
    let r = ws
        .call(json!({"cmd":"publish","channel":"ticker:btc","data":1}))
        .await;
    assert_eq!(code(&r), "permission_denied", "{r}");
    let r = ws
        .call(json!({"cmd":"history","channel":"ticker:btc","limit":10}))
        .await;
    assert_eq!(code(&r), "permission_denied", "{r}");
    let r = ws
        .call(json!({"cmd":"presence","channel":"ticker:btc"}))
        .await;
    assert_eq!(code(&r), "not_available", "{r}");
    let r = ws
        .call(json!({"cmd":"subscribe","channel":"ticker:btc","join_leave":true}))
        .await;
    assert_eq!(code(&r), "not_available", "{r}");
    // HTTP clients are clients too; the server API is the backend and may publish.
    let r = reqwest::Client::new()
        .post(s.url("/poll"))
        .json(&json!({"channel":"ticker:btc","data":1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let (status, _) = s.get_json("/api/presence?channel=ticker:btc").await;
    assert_eq!(status, 403);
    s.publish("ticker:btc", json!(1)).await;
    // Other channels keep the defaults.
    let r = ws
        .call(json!({"cmd":"publish","channel":"chat:1","data":1}))
        .await;
    assert_eq!(r["result"]["offset"], 1, "{r}");
    s.stop().await;
}

#[tokio::test]
async fn shutdown_sends_going_away_with_a_disconnect_push() {
    let s = TestServer::start().await;
    let mut ws = Ws::connect(&s).await;
    ws.subscribe("x").await;
    let stopping = tokio::spawn(async move { s.stop().await });
    let push = ws.recv().await;
    assert_eq!(push["push"], "disconnect");
    assert_eq!(push["code"], 1001);
    assert_eq!(push["reconnect"], true);
    assert_eq!(ws.closed().await, 1001);
    stopping.await.unwrap();
}

#[tokio::test]
async fn handshakes_that_are_not_websocket_get_http_errors() {
    let s = TestServer::start().await;
    let r = reqwest::get(s.url("/ws")).await.unwrap();
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "bad_request");
    let mut req = s.ws_url("/ws").into_client_request().unwrap();
    req.headers_mut()
        .insert("sec-websocket-protocol", "mqtt".parse().unwrap());
    assert!(tokio_tungstenite::connect_async(req).await.is_err());
    s.stop().await;
}

#[tokio::test]
async fn the_echo_endpoint_is_off_by_default_and_echoes_when_on() {
    let s = TestServer::start().await;
    assert!(
        tokio_tungstenite::connect_async(s.ws_url("/ws/echo"))
            .await
            .is_err()
    );
    s.stop().await;
    let s = TestServer::with(|c| c.websocket.echo_endpoint = true).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(s.ws_url("/ws/echo"))
        .await
        .unwrap();
    ws.send(Message::Text("hello".into())).await.unwrap();
    ws.send(Message::Binary(vec![0, 1].into())).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::Text("hello".into())
    );
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::Binary(vec![0, 1].into())
    );
    s.stop().await;
}

#[tokio::test]
async fn malformed_messagepack_gets_an_error_reply_and_the_connection_stays() {
    let s = TestServer::start().await;
    let mut req = s.ws_url("/ws").into_client_request().unwrap();
    req.headers_mut().insert(
        "sec-websocket-protocol",
        "switchboard.msgpack".parse().unwrap(),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let next =
        |b: &[u8]| serde_json::to_value(rmpv::decode::read_value(&mut &b[..]).unwrap()).unwrap();
    // A truncated map, then a text frame on a msgpack connection, then a valid ping.
    ws.send(Message::Binary(vec![0x83, 0xa2, b'i'].into()))
        .await
        .unwrap();
    ws.send(Message::Text("{}".into())).await.unwrap();
    let mut ping = Vec::new();
    rmpv::encode::write_value(
        &mut ping,
        &rmpv::Value::Map(vec![("id".into(), 9.into()), ("cmd".into(), "ping".into())]),
    )
    .unwrap();
    ws.send(Message::Binary(ping.into())).await.unwrap();
    let mut replies = Vec::new();
    while replies.len() < 3 {
        let m = tokio::time::timeout(WAIT, ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let Message::Binary(b) = m {
            replies.push(next(&b));
        }
    }
    assert_eq!(replies[0]["error"]["code"], "bad_request");
    assert_eq!(replies[1]["error"]["code"], "bad_request");
    assert_eq!(replies[2]["id"], 9);
    s.stop().await;
}
