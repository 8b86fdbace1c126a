//! Socket.IO behaviour of ours beyond the protocol suites, at the wire: volatile relays over
//! polling, and rooms fed by the hub (an API publication, a native client's publication) as a
//! raw Engine.IO client sees them. (The official client's view is in tests/js.)

mod common;

use std::time::Duration;

use common::{TestServer, Ws};
use serde_json::{Value, json};
use switchboard_server::socketio::NamespaceConfig;

const SIO: &str = "/socket.io/?EIO=4&transport=polling";

/// A bare Engine.IO polling client: every request is a plain HTTP call, so what it has not
/// asked for stays on the server.
struct Polling {
    http: reqwest::Client,
    url: String,
}

impl Polling {
    async fn open(server: &TestServer) -> Self {
        let http = reqwest::Client::new();
        let open = http
            .get(server.url(SIO))
            .send()
            .await
            .expect("handshake")
            .text()
            .await
            .expect("body");
        let handshake: Value =
            serde_json::from_str(open.strip_prefix('0').expect("an open packet")).expect("json");
        let sid = handshake["sid"].as_str().expect("sid").to_owned();
        Self {
            http,
            url: format!("{}&sid={sid}", server.url(SIO)),
        }
    }

    async fn post(&self, body: &str) {
        let r = self
            .http
            .post(&self.url)
            .body(body.to_owned())
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), 200, "POST {body}");
    }

    /// One GET: the packets it brings.
    async fn get(&self) -> Vec<String> {
        let body = tokio::time::timeout(
            Duration::from_secs(10),
            self.http.get(&self.url).send().await.expect("get").text(),
        )
        .await
        .expect("a GET answered within 10 s")
        .expect("body");
        body.split('\x1e').map(str::to_owned).collect()
    }

    /// GETs until a packet starting with `prefix` arrives (pings answered); every packet seen.
    async fn until(&self, prefix: &str) -> Vec<String> {
        let mut seen = Vec::new();
        for _ in 0..20 {
            for p in self.get().await {
                if p == "2" {
                    self.post("3").await;
                }
                let done = p.starts_with(prefix);
                seen.push(p);
                if done {
                    return seen;
                }
            }
        }
        panic!("no packet starting with {prefix:?}; saw {seen:?}");
    }
}

async fn chat_server() -> TestServer {
    TestServer::with(|c| {
        c.store.kind = switchboard_server::StoreKind::Memory;
        c.socketio.namespaces.insert(
            "/".into(),
            NamespaceConfig {
                rooms: true,
                relay: vec!["typing".into(), "chat".into()],
                volatile: vec!["typing".into()],
                sender: false,
                ..NamespaceConfig::default()
            },
        );
    })
    .await
}

#[tokio::test]
async fn a_volatile_relay_skips_a_polling_client_between_requests_and_the_rest_arrives() {
    let server = chat_server().await;
    let b = Polling::open(&server).await;
    b.post("40").await;
    b.until("40").await;
    b.post(r#"421["join","room"]"#).await;
    assert!(
        b.until("431")
            .await
            .contains(&r#"431[{"ok":true}]"#.to_owned())
    );

    // A joins over polling too, and relays while B has no GET waiting.
    let a = Polling::open(&server).await;
    a.post("40").await;
    a.until("40").await;
    a.post(r#"421["join","room"]"#).await;
    a.until("431").await;
    a.post(r#"422["typing",1]"#).await;
    a.post(r#"423["chat","hello"]"#).await;
    a.post(r#"424["typing",2]"#).await;
    a.until("434").await;

    // B asks now: the chat message is there, the volatile ones were skipped.
    let got = b.until(r#"42["chat""#).await;
    assert!(got.contains(&r#"42["chat","hello"]"#.to_owned()), "{got:?}");
    assert!(
        !got.iter().any(|p| p.contains("typing")),
        "volatile relays reached a client with no GET waiting: {got:?}"
    );

    // With a GET waiting, a volatile relay goes out.
    let waiting = tokio::spawn({
        let b = Polling {
            http: b.http.clone(),
            url: b.url.clone(),
        };
        async move { b.until(r#"42["typing""#).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    a.post(r#"42["typing",3]"#).await;
    let got = waiting.await.expect("task");
    assert!(got.contains(&r#"42["typing",3]"#.to_owned()), "{got:?}");
    server.stop().await;
}

#[tokio::test]
async fn rooms_are_channels_both_ways_at_the_wire() {
    let server = chat_server().await;
    let b = Polling::open(&server).await;
    b.post("40").await;
    b.until("40").await;
    b.post(r#"421["join","General Chat"]"#).await;
    b.until("431").await;

    // An API publication to the escaped channel is an event in the room.
    server
        .publish("General=20Chat", json!(["news", {"a": 1}]))
        .await;
    let got = b.until(r#"42["news""#).await;
    assert!(got.contains(&r#"42["news",{"a":1}]"#.to_owned()), "{got:?}");

    // A native WebSocket client of the channel sees a relay as the event array, and its
    // own publication reaches the room as event `message`.
    let mut native = Ws::connect(&server).await;
    native.subscribe("General=20Chat").await;
    b.post(r#"42["chat","from socket.io"]"#).await;
    let push = native.recv().await;
    assert_eq!(push["data"], json!(["chat", "from socket.io"]), "{push}");
    let reply = native
        .call(json!({"cmd": "publish", "channel": "General=20Chat", "data": {"text": "native"}}))
        .await;
    assert!(reply.get("error").is_none(), "{reply}");
    let got = b.until(r#"42["message""#).await;
    assert!(
        got.contains(&r#"42["message",{"text":"native"}]"#.to_owned()),
        "{got:?}"
    );
    server.stop().await;
}
