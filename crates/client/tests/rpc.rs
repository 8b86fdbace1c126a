//! `rpc` against the real server and a real HTTP backend behind its rpc hook: the Rust
//! client's `Client::rpc` and the CLI's `switchboard rpc` get the backend's answer, and its
//! refusal as a server error.

mod common;

use std::{net::SocketAddr, process::Command};

use common::{Setup, TestServer, server_binary};
use serde_json::{Value, json};
use switchboard_client::{Client, ClientError, ErrorCode, Format};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

/// A minimal HTTP/1.1 backend: `sum` adds `data.a` and `data.b`, other methods are refused.
async fn backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                // Read the head, then as many body bytes as Content-Length says.
                let body = loop {
                    let Ok(n) = stream.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let len = head
                            .lines()
                            .find_map(|l| {
                                let (k, v) = l.split_once(':')?;
                                k.eq_ignore_ascii_case("content-length")
                                    .then(|| v.trim().parse::<usize>().ok())?
                            })
                            .unwrap_or(0);
                        if body.len() >= len {
                            break body.to_owned();
                        }
                    }
                };
                let call: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                let answer = if call["method"] == "sum" {
                    json!({"data": call["data"]["a"].as_i64().unwrap_or(0) + call["data"]["b"].as_i64().unwrap_or(0)})
                } else {
                    json!({"error": {"message": format!("no method {}", call["method"])}})
                };
                let answer = answer.to_string();
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                    answer.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn rpc_returns_the_backend_answer_to_the_client_and_the_cli() {
    let backend = backend().await;
    let config = format!("[hooks]\nrpc_url = \"http://{backend}/rpc\"\n");
    let server = TestServer::start_with(Setup {
        config: Some(&config),
        ..Setup::default()
    });
    for format in [Format::Json, Format::MessagePack] {
        let client = Client::connect(server.options(format))
            .await
            .expect("connect");
        let answer = client
            .rpc("sum", json!({"a": 40, "b": 2}))
            .await
            .expect("rpc answered");
        assert_eq!(answer, json!(42), "{format:?}");
        match client.rpc("divide", Value::Null).await {
            Err(ClientError::Server { code, message }) => {
                assert_eq!(code, ErrorCode::PermissionDenied);
                assert!(message.contains("no method"), "{message}");
            }
            other => panic!("{format:?}: {other:?}"),
        }
        client.close().await;
    }
    // The CLI runs off the runtime's thread, so the backend keeps answering meanwhile.
    let url = server.http("");
    let out = tokio::task::spawn_blocking(move || {
        Command::new(server_binary())
            .args(["rpc", "--url", &url, "sum", r#"{"a":1,"b":2}"#])
            .output()
    })
    .await
    .expect("join")
    .expect("run switchboard rpc");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "3");
}
