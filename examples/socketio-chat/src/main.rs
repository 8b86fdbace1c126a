//! A Socket.IO chat written in Rust on switchboard's embeddable API: rooms, typed
//! messages, acknowledgements both ways, and an ordinary axum route on the same port.
//!
//! ```sh
//! cargo run -p socketio-chat -- 127.0.0.1:3000
//! ```
//!
//! Any `socket.io-client` can then connect to `http://127.0.0.1:3000/chat`:
//!
//! ```js
//! const socket = io("http://127.0.0.1:3000/chat", { auth: { name: "ada" } });
//! await socket.emitWithAck("join", "lobby");                     // {"ok":true,"members":1}
//! socket.on("message", (m) => console.log(m.from, m.text));
//! await socket.emitWithAck("message", { room: "lobby", text: "hi" }); // {"ok":true}
//! ```
//!
//! Rooms are switchboard channels, so `curl -X POST localhost:3000/api/publish -d
//! '{"channel":"/chat:lobby","data":["message",{"from":"curl","text":"hello"}]}'` reaches
//! the room too, and native WebSocket/SSE clients of `/chat:lobby` see the chat.

use std::time::Duration;

use anyhow::Context;
use axum::{Router, routing::get};
use serde::{Deserialize, Serialize};
use switchboard_server::{Config, Server, socketio::Socket};

/// What a client sends with `message`.
#[derive(Debug, Deserialize)]
struct Outgoing {
    room: String,
    text: String,
}

/// What the room's other members receive.
#[derive(Debug, Serialize)]
struct Incoming<'a> {
    from: &'a str,
    text: &'a str,
}

#[derive(Serialize)]
struct Answer {
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

impl Answer {
    fn ok() -> Self {
        Self {
            ok: true,
            error: None,
        }
    }

    fn error(e: impl ToString) -> Self {
        Self {
            ok: false,
            error: Some(e.to_string()),
        }
    }
}

/// The chat's handlers, on namespace `/chat` of `server`.
pub fn chat(server: &Server) -> anyhow::Result<()> {
    let io = server
        .socketio()
        .context("socketio is disabled in the configuration")?;
    io.of("/chat").on_connect(|socket: Socket| async move {
        socket
            .emit("welcome", &serde_json::json!({ "id": socket.id() }))
            .ok();

        socket.on("join", |socket, room: String, ack| async move {
            match socket.join(&room).await {
                Ok(()) => {
                    socket.to(&room).emit("joined", &socket.id()).await.ok();
                    ack.send(&Answer::ok());
                }
                Err(e) => ack.send(&Answer::error(e)),
            }
        });

        socket.on("leave", |socket, room: String, ack| async move {
            socket.leave(&room).await.ok();
            ack.send(&Answer::ok());
        });

        socket.on("message", |socket, m: Outgoing, ack| async move {
            if !socket.rooms().await.contains(&m.room) {
                ack.send(&Answer::error("join the room first"));
                return;
            }
            let incoming = Incoming {
                from: socket.id(),
                text: &m.text,
            };
            match socket.to(&m.room).emit("message", &incoming).await {
                Ok(()) => ack.send(&Answer::ok()),
                Err(e) => ack.send(&Answer::error(e)),
            }
        });

        // The server asks the client, and passes the client's answer back: acks both ways.
        socket.on("ask me", |socket, question: String, ack| async move {
            let answer: Result<String, _> = socket
                .emit_with_ack("question", &question, Duration::from_secs(5))
                .await;
            match answer {
                Ok(a) => ack.send(&serde_json::json!({ "answer": a })),
                Err(e) => ack.send(&Answer::error(e)),
            }
        });
    });
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter("info").init();
    let listen = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3000".to_owned());
    let config = Config {
        listen: listen
            .parse()
            .context("the argument is an address like 127.0.0.1:3000")?,
        store: switchboard_server::StoreConfig {
            kind: switchboard_server::StoreKind::Memory,
            ..Default::default()
        },
        ..Config::default()
    };
    let server = Server::bind(config).await?;
    chat(&server)?;
    let server = server.merge(Router::new().route("/hello", get(|| async { "hello from axum\n" })));
    println!("listening on http://{}", server.local_addr()?);
    server
        .run(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
