//! Backend hooks over real sockets: a real HTTP backend (an axum app in the test process, as
//! an application's backend would be) answers the connect, refresh, subscribe, publish and
//! rpc hooks; clients talk to the real server over WebSocket, SSE and polling. Asserts what
//! a user sees — the user set from a session cookie, refusals with their codes, rewritten
//! data, rpc answers — and that a slow, dead or overloaded backend gives a prompt
//! `backend_unavailable` while other clients keep receiving.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{Json, Router, extract::State, routing::post};
use common::{TestServer, WAIT, Ws, metric};
use serde_json::{Value, json};
use switchboard_core::NamespaceOptions;
use switchboard_server::{AuthConfig, Config, HooksConfig};

/// What the backend saw and how busy it was.
#[derive(Default)]
struct Seen {
    bodies: Mutex<Vec<(String, Value)>>,
    in_flight: AtomicUsize,
    most_in_flight: AtomicUsize,
}

impl Seen {
    fn calls(&self, hook: &str) -> Vec<Value> {
        self.bodies
            .lock()
            .unwrap()
            .iter()
            .filter(|(h, _)| h == hook)
            .map(|(_, b)| b.clone())
            .collect()
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Runs `answer` for a hook, recording the body and the concurrency.
async fn record(
    seen: &Seen,
    hook: &str,
    body: Value,
    answer: impl Future<Output = Value>,
) -> Json<Value> {
    seen.bodies.lock().unwrap().push((hook.to_owned(), body));
    let now = seen.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    seen.most_in_flight.fetch_max(now, Ordering::SeqCst);
    let v = answer.await;
    seen.in_flight.fetch_sub(1, Ordering::SeqCst);
    Json(v)
}

fn cookie_user(body: &Value) -> Option<String> {
    let cookie = body["headers"]["cookie"].as_str()?;
    cookie
        .split(';')
        .filter_map(|p| p.trim().strip_prefix("session="))
        .map(str::to_owned)
        .next()
}

/// The application's backend. Sessions: `alice` (allowed, expires in 2 s), `bob`
/// (allowed, no expiry), `revoked` (allowed once, refused at refresh), `slow` (never
/// answers in time), anything else refused.
async fn backend() -> (SocketAddr, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let app = Router::new()
        .route(
            "/connect",
            post(|State(s): State<Arc<Seen>>, Json(b): Json<Value>| async move {
                let user = cookie_user(&b);
                record(&s, "connect", b, async move {
                    match user.as_deref() {
                        Some("alice") => json!({"user":"alice","info":{"name":"Alice"},"expires": now() + 2}),
                        Some("revoked") => json!({"user":"revoked","expires": now() + 2}),
                        Some("bob") => json!({"user":"bob","channels":["granted:*"]}),
                        Some("slow") => {
                            tokio::time::sleep(Duration::from_secs(5)).await;
                            json!({"user":"slow"})
                        }
                        _ => json!({"error":{"message":"log in first"}}),
                    }
                })
                .await
            }),
        )
        .route(
            "/refresh",
            post(|State(s): State<Arc<Seen>>, Json(b): Json<Value>| async move {
                let revoked = b["user"] == "revoked";
                record(&s, "refresh", b, async move {
                    if revoked {
                        json!({"error":{"message":"session revoked"}})
                    } else {
                        json!({"expires": now() + 2})
                    }
                })
                .await
            }),
        )
        .route(
            "/subscribe",
            post(|State(s): State<Arc<Seen>>, Json(b): Json<Value>| async move {
                let (channel, user) = (b["channel"].clone(), b["user"].clone());
                record(&s, "subscribe", b, async move {
                    match (channel.as_str(), user.as_str()) {
                        (Some("hooked:kick"), _) => {
                            json!({"disconnect":{"reason":"go away","reconnect":false}})
                        }
                        (Some("hooked:alice-only"), Some("alice")) => json!({}),
                        (Some("hooked:alice-only"), _) => json!({"error":{"message":"members only"}}),
                        _ => json!({}),
                    }
                })
                .await
            }),
        )
        .route(
            "/publish",
            post(|State(s): State<Arc<Seen>>, Json(b): Json<Value>| async move {
                let text = b["data"]["text"].as_str().unwrap_or("").to_owned();
                let user = b["user"].clone();
                record(&s, "publish", b, async move {
                    if text == "spam" {
                        json!({"error":{"message":"no spam"}})
                    } else {
                        json!({"data":{"text": text.to_uppercase(), "by": user}})
                    }
                })
                .await
            }),
        )
        .route(
            "/rpc",
            post(|State(s): State<Arc<Seen>>, Json(b): Json<Value>| async move {
                let method = b["method"].as_str().unwrap_or("").to_owned();
                let data = b["data"].clone();
                record(&s, "rpc", b, async move {
                    match method.as_str() {
                        "add" => json!({"data": data["a"].as_i64().unwrap_or(0) + data["b"].as_i64().unwrap_or(0)}),
                        "slow" => {
                            tokio::time::sleep(Duration::from_secs(5)).await;
                            json!({"data": "late"})
                        }
                        _ => json!({"error":{"message":"no such method"}}),
                    }
                })
                .await
            }),
        )
        .route("/broken", post(|| async { (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "oops") }))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, seen)
}

/// A server whose every hook goes to `backend`, with `hooked:*` channels hooked, tokens
/// required (so nothing is anonymous), and `edit` on top.
async fn server_with_hooks(backend: SocketAddr, edit: impl FnOnce(&mut Config)) -> TestServer {
    TestServer::with(|c| {
        let url = |p: &str| Some(format!("http://{backend}/{p}"));
        c.hooks = HooksConfig {
            connect_url: url("connect"),
            refresh_url: url("refresh"),
            subscribe_url: url("subscribe"),
            publish_url: url("publish"),
            rpc_url: url("rpc"),
            timeout_ms: 500,
            ..HooksConfig::default()
        };
        c.auth = AuthConfig {
            hmac_secret: Some("test-secret-of-at-least-thirty-two-bytes!".into()),
            refresh_before_seconds: 1,
            ..AuthConfig::default()
        };
        c.namespaces.insert(
            "hooked".into(),
            NamespaceOptions {
                subscribe_hook: Some(true),
                publish_hook: Some(true),
                ..NamespaceOptions::default()
            },
        );
        edit(c);
    })
    .await
}

async fn ws_as(server: &TestServer, session: &str) -> Ws {
    Ws::connect_with(server, "/ws", &[("cookie", &format!("session={session}"))])
        .await
        .unwrap()
}

async fn hook_metric(server: &TestServer, hook: &str, outcome: &str) -> f64 {
    metric(
        &server.metrics().await,
        &format!("switchboard_hook_calls_total{{hook=\"{hook}\",outcome=\"{outcome}\"}}"),
    )
}

#[tokio::test]
async fn connect_hook_sets_the_user_from_the_session_cookie_on_every_transport() {
    let (backend, seen) = backend().await;
    let server = server_with_hooks(backend, |_| {}).await;

    let mut ws = ws_as(&server, "bob").await;
    let r = ws
        .call(json!({"cmd":"connect","name":"test-client","version":"1.2"}))
        .await;
    assert_eq!(r["result"]["user"], "bob", "{r}");
    let body = &seen.calls("connect")[0];
    assert_eq!(body["transport"], "websocket");
    assert_eq!(body["name"], "test-client");
    assert!(
        body["remote_addr"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
    assert_eq!(body["headers"]["cookie"], "session=bob");

    // The `channels` the backend granted open a channel nobody may subscribe to by rule.
    ws.subscribe("granted:news").await;

    // SSE: the stream's user shows in presence.
    let http = reqwest::Client::new();
    let sse = http
        .get(server.url("/sse?channel=news"))
        .header("cookie", "session=bob")
        .send()
        .await
        .unwrap();
    assert_eq!(sse.status(), 200);
    let (_, presence) = server.get_json("/api/presence?channel=news").await;
    assert_eq!(presence["clients"][0]["user"], "bob", "{presence}");

    // Polling: allowed with the cookie, refused (403 forbidden) without it.
    let poll = http
        .get(server.url("/poll?channel=news"))
        .header("cookie", "session=bob")
        .send()
        .await
        .unwrap();
    assert_eq!(poll.status(), 200);
    let refused = http
        .get(server.url("/poll?channel=news"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "forbidden");
    assert_eq!(body["error"]["message"], "log in first");
    assert!(
        seen.calls("connect")
            .iter()
            .any(|b| b["transport"] == "poll")
    );
    assert!(
        seen.calls("connect")
            .iter()
            .any(|b| b["transport"] == "sse")
    );
    drop(sse);
    server.stop().await;
}

#[tokio::test]
async fn connect_hook_refusal_closes_with_4503_and_is_counted() {
    let (backend, _) = backend().await;
    let server = server_with_hooks(backend, |_| {}).await;
    let mut ws = ws_as(&server, "mallory").await;
    let r = ws.call(json!({"cmd":"connect"})).await;
    assert_eq!(r["error"]["code"], "forbidden", "{r}");
    assert_eq!(ws.closed().await, 4503);
    // A first command other than connect meets the hook too.
    let mut ws = ws_as(&server, "mallory").await;
    let r = ws.call(json!({"cmd":"subscribe","channel":"news"})).await;
    assert_eq!(r["error"]["code"], "forbidden", "{r}");
    assert_eq!(ws.closed().await, 4503);
    assert_eq!(hook_metric(&server, "connect", "denied").await, 2.0);
    server.stop().await;

    // A connection that never identifies itself is closed after the connect timeout.
    let server = server_with_hooks(backend, |c| c.auth.connect_timeout_seconds = 1).await;
    let mut silent = ws_as(&server, "bob").await;
    assert_eq!(silent.closed().await, 4005);
    server.stop().await;
}

#[tokio::test]
async fn a_slow_backend_gives_backend_unavailable_in_time_and_others_keep_receiving() {
    let (backend, _) = backend().await;
    let server = server_with_hooks(backend, |_| {}).await;
    let mut watcher = ws_as(&server, "bob").await;
    watcher.call(json!({"cmd":"connect"})).await;
    watcher.subscribe("news").await;

    // Connect: refused with backend_unavailable and close 1013 (try again later) within
    // the 500 ms timeout, not after the backend's 5 s.
    let started = Instant::now();
    let mut slow = ws_as(&server, "slow").await;
    let r = slow.call(json!({"cmd":"connect"})).await;
    assert_eq!(r["error"]["code"], "backend_unavailable", "{r}");
    assert_eq!(slow.closed().await, 1013);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    // rpc: the connection stays open and keeps receiving while the backend thinks.
    let mut caller = ws_as(&server, "bob").await;
    caller.call(json!({"cmd":"connect"})).await;
    caller.subscribe("news").await;
    caller
        .send(json!({"id": 99, "cmd":"rpc","method":"slow"}))
        .await;
    server.publish("news", json!({"n": 1})).await;
    let mut got_publication = false;
    let reply = loop {
        let v = caller.recv().await;
        if v["push"] == "publication" {
            got_publication = true;
        } else if v["id"] == 99 {
            break v;
        }
    };
    assert!(got_publication, "the publication waited for the rpc");
    assert_eq!(reply["error"]["code"], "backend_unavailable", "{reply}");
    let v = watcher.recv().await;
    assert_eq!(v["data"]["n"], 1, "{v}");
    // Still connected after the refusal.
    let r = caller
        .call(json!({"cmd":"rpc","method":"add","data":{"a":2,"b":3}}))
        .await;
    assert_eq!(r["result"]["data"], 5, "{r}");
    assert!(hook_metric(&server, "rpc", "timeout").await >= 1.0);
    server.stop().await;
}

#[tokio::test]
async fn subscribe_hook_allows_refuses_and_disconnects() {
    let (backend, seen) = backend().await;
    let server = server_with_hooks(backend, |_| {}).await;
    let mut alice = ws_as(&server, "alice").await;
    alice.call(json!({"cmd":"connect"})).await;
    alice.subscribe("hooked:alice-only").await;
    let mut bob = ws_as(&server, "bob").await;
    bob.call(json!({"cmd":"connect"})).await;
    let r = bob
        .call(json!({"cmd":"subscribe","channel":"hooked:alice-only"}))
        .await;
    assert_eq!(r["error"]["code"], "permission_denied", "{r}");
    assert_eq!(r["error"]["message"], "members only");
    // Channels outside the namespace never reach the backend.
    bob.subscribe("plain").await;
    assert!(
        seen.calls("subscribe")
            .iter()
            .all(|b| b["channel"] != "plain")
    );
    // Bob's connection is still fine.
    assert!(
        bob.call(json!({"cmd":"ping"}))
            .await
            .get("result")
            .is_some()
    );
    // SSE and poll ask too.
    let http = reqwest::Client::new();
    for path in [
        "/sse?channel=hooked:alice-only",
        "/poll?channel=hooked:alice-only",
    ] {
        let r = http
            .get(server.url(path))
            .header("cookie", "session=bob")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{path}");
    }
    // A disconnect answer closes with 4500 (do not reconnect).
    let r = bob
        .call(json!({"cmd":"subscribe","channel":"hooked:kick"}))
        .await;
    assert_eq!(r["error"]["code"], "permission_denied", "{r}");
    assert_eq!(bob.closed().await, 4500);
    assert!(hook_metric(&server, "subscribe", "denied").await >= 3.0);
    server.stop().await;
}

#[tokio::test]
async fn publish_hook_rewrites_or_refuses_publications_on_websocket_and_poll() {
    let (backend, _) = backend().await;
    let server = server_with_hooks(backend, |_| {}).await;
    let mut reader = ws_as(&server, "bob").await;
    reader.call(json!({"cmd":"connect"})).await;
    reader.subscribe("hooked:room").await;
    let mut writer = ws_as(&server, "alice").await;
    writer.call(json!({"cmd":"connect"})).await;

    let r = writer
        .call(json!({"cmd":"publish","channel":"hooked:room","data":{"text":"hello"}}))
        .await;
    assert!(r["result"]["offset"].is_u64(), "{r}");
    let p = reader.recv().await;
    assert_eq!(p["data"], json!({"text":"HELLO","by":"alice"}), "{p}");

    let r = writer
        .call(json!({"cmd":"publish","channel":"hooked:room","data":{"text":"spam"}}))
        .await;
    assert_eq!(r["error"]["code"], "permission_denied", "{r}");

    // POST /poll, authenticated by the cookie through the connect hook (Origin required).
    let http = reqwest::Client::new();
    let refused = http
        .post(server.url("/poll"))
        .header("cookie", "session=bob")
        .json(&json!({"channel":"hooked:room","data":{"text":"no origin"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let ok = http
        .post(server.url("/poll"))
        .header("cookie", "session=bob")
        .header("origin", format!("http://{}", server.addr))
        .json(&json!({"channel":"hooked:room","data":{"text":"via poll"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let p = reader.recv().await;
    assert_eq!(p["data"], json!({"text":"VIA POLL","by":"bob"}), "{p}");
    // Nothing of the refused publications reached the reader or the history.
    let (_, history) = server.get_json("/api/history?channel=hooked:room").await;
    assert_eq!(
        history["publications"].as_array().unwrap().len(),
        2,
        "{history}"
    );
    server.stop().await;
}

#[tokio::test]
async fn rpc_is_answered_by_the_backend_and_refused_without_one() {
    let (backend, seen) = backend().await;
    let server = server_with_hooks(backend, |_| {}).await;
    let mut ws = ws_as(&server, "bob").await;
    ws.call(json!({"cmd":"connect"})).await;
    let r = ws
        .call(json!({"cmd":"rpc","method":"add","data":{"a":40,"b":2}}))
        .await;
    assert_eq!(r["result"], json!({"data": 42}), "{r}");
    let body = seen.calls("rpc").pop().unwrap();
    assert_eq!(body["user"], "bob");
    assert!(body["client"].is_string());
    let r = ws.call(json!({"cmd":"rpc","method":"nope"})).await;
    assert_eq!(r["error"]["code"], "permission_denied", "{r}");
    assert_eq!(r["error"]["message"], "no such method");
    let r = ws.call(json!({"cmd":"rpc"})).await;
    assert_eq!(r["error"]["code"], "bad_request", "{r}");
    server.stop().await;

    // Without rpc_url: not_available, the connection stays.
    let server = TestServer::start().await;
    let mut ws = Ws::connect(&server).await;
    let r = ws.call(json!({"cmd":"rpc","method":"add"})).await;
    assert_eq!(r["error"]["code"], "not_available", "{r}");
    assert!(ws.call(json!({"cmd":"ping"})).await.get("result").is_some());
    server.stop().await;
}

#[tokio::test]
async fn refresh_hook_keeps_a_session_alive_and_ends_a_revoked_one() {
    let (backend, seen) = backend().await;
    let server = server_with_hooks(backend, |_| {}).await;
    let mut alice = ws_as(&server, "alice").await;
    let r = alice.call(json!({"cmd":"connect"})).await;
    let first_expiry = r["result"]["expires"].as_u64().unwrap();
    let mut revoked = ws_as(&server, "revoked").await;
    revoked.call(json!({"cmd":"connect"})).await;
    alice.subscribe("news").await;

    // The revoked session is refused at its refresh: closed with 4003.
    assert_eq!(revoked.closed().await, 4003);
    // Alice's outlives her first expiry: publish after it and she still receives.
    while now() <= first_expiry + 1 {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    server.publish("news", json!({"still":"here"})).await;
    let p = alice.recv().await;
    assert_eq!(p["data"]["still"], "here", "{p}");
    assert!(
        seen.calls("refresh")
            .iter()
            .filter(|b| b["user"] == "alice")
            .count()
            >= 1,
        "the refresh hook was not asked"
    );
    server.stop().await;
}

#[tokio::test]
async fn calls_in_flight_are_bounded_and_a_dead_or_broken_backend_is_unavailable() {
    let (backend, seen) = backend().await;
    let server = server_with_hooks(backend, |c| c.hooks.max_in_flight = 2).await;
    let mut clients = Vec::new();
    for _ in 0..5 {
        let mut ws = ws_as(&server, "bob").await;
        ws.call(json!({"cmd":"connect"})).await;
        clients.push(ws);
    }
    for ws in &mut clients {
        ws.send(json!({"id": 7, "cmd":"rpc","method":"slow"})).await;
    }
    for ws in &mut clients {
        let r = ws.recv().await;
        assert_eq!(r["error"]["code"], "backend_unavailable", "{r}");
    }
    assert!(seen.most_in_flight.load(Ordering::SeqCst) <= 2);
    server.stop().await;

    // Nothing listens at the URL.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_addr = dead.local_addr().unwrap();
    drop(dead);
    let server = TestServer::with(|c| {
        c.hooks.rpc_url = Some(format!("http://{dead_addr}/rpc"));
        c.hooks.connect_url = Some(format!("http://{backend}/broken"));
    })
    .await;
    let mut ws = Ws::connect(&server).await;
    let r = ws.call(json!({"cmd":"connect"})).await;
    assert_eq!(r["error"]["code"], "backend_unavailable", "{r}");
    assert!(
        r["error"]["message"].as_str().unwrap().contains("HTTP 500"),
        "{r}"
    );
    assert_eq!(ws.closed().await, 1013);
    server.stop().await;
    let server =
        TestServer::with(|c| c.hooks.rpc_url = Some(format!("http://{dead_addr}/rpc"))).await;
    let mut ws = Ws::connect(&server).await;
    let r = tokio::time::timeout(WAIT, ws.call(json!({"cmd":"rpc","method":"add"})))
        .await
        .unwrap();
    assert_eq!(r["error"]["code"], "backend_unavailable", "{r}");
    assert_eq!(hook_metric(&server, "rpc", "error").await, 1.0);
    server.stop().await;
}
