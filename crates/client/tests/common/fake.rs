//! A scripted WebSocket server speaking just enough of the native protocol (JSON) for tests
//! to play the server's part by hand: accept, answer `connect`, push, close with any code,
//! or stay silent.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::mpsc,
};
use tokio_tungstenite::{
    WebSocketStream, accept_hdr_async,
    tungstenite::{
        Message,
        handshake::server::{ErrorResponse, Request, Response},
        protocol::{CloseFrame, frame::coding::CloseCode},
    },
};

use super::WAIT;

/// Listens on 127.0.0.1 and hands each accepted WebSocket to the test.
pub(crate) struct FakeServer {
    /// Base URL for `ClientOptions::new` (`http://127.0.0.1:PORT`).
    pub(crate) url: String,
    connections: mpsc::Receiver<FakeConnection>,
}

/// One accepted connection.
pub(crate) struct FakeConnection {
    ws: WebSocketStream<TcpStream>,
}

impl FakeServer {
    /// Binds a free port and accepts in the background.
    pub(crate) async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("local addr"));
        let (tx, connections) = mpsc::channel(8);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let Ok(ws) = accept_hdr_async(stream, echo_subprotocol).await else {
                    continue;
                };
                if tx.send(FakeConnection { ws }).await.is_err() {
                    break;
                }
            }
        });
        Self { url, connections }
    }

    /// The next connection, failing the test after [`WAIT`].
    pub(crate) async fn accept(&mut self) -> FakeConnection {
        tokio::time::timeout(WAIT, self.connections.recv())
            .await
            .expect("no connection in time")
            .expect("listener alive")
    }

    /// Whether a connection arrives within `within`.
    pub(crate) async fn connects_within(&mut self, within: Duration) -> bool {
        matches!(
            tokio::time::timeout(within, self.connections.recv()).await,
            Ok(Some(_))
        )
    }
}

/// Accepts whatever subprotocol the client asks for. The signature is tungstenite's
/// handshake callback, whose error is a whole HTTP response.
#[allow(clippy::result_large_err)]
fn echo_subprotocol(request: &Request, mut response: Response) -> Result<Response, ErrorResponse> {
    if let Some(protocol) = request.headers().get("Sec-WebSocket-Protocol") {
        response
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", protocol.clone());
    }
    Ok(response)
}

impl FakeConnection {
    /// The next command from the client, as JSON (pings and pongs skipped).
    pub(crate) async fn recv(&mut self) -> Value {
        loop {
            let message = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("no frame from the client in time")
                .expect("connection open")
                .expect("valid frame");
            match message {
                Message::Text(text) => return serde_json::from_str(&text).expect("JSON command"),
                Message::Close(frame) => panic!("client closed: {frame:?}"),
                _ => continue,
            }
        }
    }

    /// Sends one JSON frame.
    pub(crate) async fn send(&mut self, value: Value) {
        self.ws
            .send(Message::Text(value.to_string().into()))
            .await
            .expect("send");
    }

    /// Reads the client's `connect` and answers it.
    pub(crate) async fn handshake(&mut self, ping_interval: u64) {
        let connect = self.recv().await;
        assert_eq!(connect["cmd"], "connect", "{connect}");
        self.send(json!({
            "id": connect["id"],
            "result": {"client": "fake-client", "version": "0", "ping_interval": ping_interval},
        }))
        .await;
    }

    /// Sends a `disconnect` push and a close frame with `code`, then waits for the end.
    pub(crate) async fn disconnect(mut self, code: u16, reason: &str, reconnect: bool) {
        self.send(
            json!({"push": "disconnect", "code": code, "reason": reason, "reconnect": reconnect}),
        )
        .await;
        let _ = self
            .ws
            .send(Message::Close(Some(CloseFrame {
                code: CloseCode::from(code),
                reason: reason.to_owned().into(),
            })))
            .await;
        while let Ok(Some(Ok(_))) = tokio::time::timeout(WAIT, self.ws.next()).await {}
    }

    /// Whether the client closed or dropped this connection within `within` (frames the
    /// client sends meanwhile are read and ignored).
    pub(crate) async fn ends_within(&mut self, within: Duration) -> bool {
        let ended = async {
            loop {
                match self.ws.next().await {
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                    Some(Ok(_)) => {}
                }
            }
        };
        tokio::time::timeout(within, ended).await.is_ok()
    }
}
