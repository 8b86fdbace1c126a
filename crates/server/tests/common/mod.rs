//! Test harness: a real server on a free loopback port, raw WebSocket and HTTP clients.
#![allow(dead_code, unreachable_pub)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{net::SocketAddr, time::Duration};

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use switchboard_server::{Config, Server};
use tokio::{net::TcpStream, sync::oneshot, task::JoinHandle};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, tungstenite::Message};

pub const WAIT: Duration = Duration::from_secs(10);

pub struct TestServer {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    /// The SQLite store's directory, removed when the server is dropped.
    data: Option<tempfile::TempDir>,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::with(|_| {}).await
    }

    pub async fn with(edit: impl FnOnce(&mut Config)) -> Self {
        let data = tempfile::tempdir().unwrap();
        let mut config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            shutdown_grace_seconds: 2,
            ..Config::default()
        };
        config.store.data_dir = data.path().to_owned();
        edit(&mut config);
        let server = Server::bind(config).await.expect("bind");
        let addr = server.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            server
                .run(async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        Self {
            addr,
            stop: Some(tx),
            task: Some(task),
            data: Some(data),
        }
    }

    /// The server's data directory (its store, a self-signed certificate).
    pub fn data_dir(&self) -> &std::path::Path {
        self.data.as_ref().expect("set until drop").path()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            tokio::time::timeout(WAIT, t).await.unwrap().unwrap();
        }
    }

    pub async fn publish(&self, channel: &str, data: Value) -> Value {
        let r = reqwest::Client::new()
            .post(self.url("/api/publish"))
            .json(&serde_json::json!({"channel": channel, "data": data}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    }

    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let r = reqwest::get(self.url(path)).await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn post_json(&self, path: &str, body: &str) -> (u16, Value) {
        let r = reqwest::Client::new()
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn metrics(&self) -> String {
        reqwest::get(self.url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

/// Value of the metric line starting with `prefix` (0 when absent).
pub fn metric(text: &str, prefix: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

pub struct Ws {
    pub inner: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
    /// Pushes that arrived while `call` waited for its reply, for `recv`.
    pushes: std::collections::VecDeque<Value>,
}

impl Ws {
    pub async fn connect(server: &TestServer) -> Self {
        let (inner, _) = tokio_tungstenite::connect_async(server.ws_url("/ws"))
            .await
            .expect("ws connect");
        Self {
            inner,
            next_id: 1,
            pushes: std::collections::VecDeque::new(),
        }
    }

    pub async fn send(&mut self, v: Value) {
        self.inner
            .send(Message::Text(v.to_string().into()))
            .await
            .unwrap();
    }

    pub async fn send_text(&mut self, s: &str) {
        self.inner
            .send(Message::Text(s.to_owned().into()))
            .await
            .unwrap();
    }

    /// Next JSON text message, answering server pings as every client does (a client that
    /// stays silent longer than ping interval + pong timeout is dropped with 4002).
    pub async fn recv(&mut self) -> Value {
        if let Some(v) = self.pushes.pop_front() {
            return v;
        }
        self.recv_wire().await
    }

    async fn recv_wire(&mut self) -> Value {
        loop {
            let msg = tokio::time::timeout(WAIT, self.inner.next())
                .await
                .expect("timed out waiting for a message")
                .expect("stream ended")
                .expect("ws error");
            if let Message::Text(t) = msg {
                let v: Value = serde_json::from_str(&t).unwrap();
                if v["push"] == "ping" {
                    let _ = self
                        .inner
                        .send(Message::Text(r#"{"cmd":"pong"}"#.into()))
                        .await;
                    continue;
                }
                return v;
            }
        }
    }

    /// Sends a command with a fresh id and returns its reply, keeping pushes that arrive
    /// before it in `pushes`.
    pub async fn call(&mut self, mut cmd: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        cmd["id"] = id.into();
        self.send(cmd).await;
        loop {
            let v = self.recv_wire().await;
            if v["id"] == id {
                return v;
            }
            // A push can come before the reply (a publication delivered as its commit is
            // answered): `recv` returns it next.
            if v.get("push").is_some() {
                self.pushes.push_back(v);
            }
        }
    }

    pub async fn subscribe(&mut self, channel: &str) -> Value {
        let r = self
            .call(serde_json::json!({"cmd":"subscribe","channel":channel}))
            .await;
        assert!(r.get("result").is_some(), "{r}");
        r["result"].clone()
    }

    /// Waits for the close frame and returns its code.
    pub async fn closed(&mut self) -> u16 {
        loop {
            match tokio::time::timeout(WAIT, self.inner.next())
                .await
                .expect("timed out waiting for close")
            {
                Some(Ok(Message::Close(Some(f)))) => return f.code.into(),
                Some(Ok(Message::Close(None))) => return 1005,
                Some(Ok(_)) => continue,
                Some(Err(e)) => panic!("ws error before close: {e}"),
                None => panic!("stream ended without a close frame"),
            }
        }
    }
}

impl Ws {
    /// Connects to `path` with extra request headers (`Authorization`, `Origin`, `Cookie`…);
    /// `Err` holds the HTTP status when the upgrade is refused.
    pub async fn connect_with(
        server: &TestServer,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<Self, u16> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut req = server.ws_url(path).into_client_request().unwrap();
        for (k, v) in headers {
            req.headers_mut().insert(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        match tokio_tungstenite::connect_async(req).await {
            Ok((inner, _)) => Ok(Self {
                inner,
                next_id: 1,
                pushes: std::collections::VecDeque::new(),
            }),
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
            Err(e) => panic!("ws connect: {e}"),
        }
    }
}
