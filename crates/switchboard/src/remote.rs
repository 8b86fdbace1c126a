//! `switchboard publish` and `switchboard subscribe`: talk to a running server with the Rust
//! client (WebSocket or WebSocket over TLS, a connection token, reconnect with backoff,
//! recovery).

use std::process::ExitCode;

use anyhow::Context;
use futures_util::StreamExt;
use serde_json::{Value, json};
use switchboard_client::{
    Client, ClientError, ClientOptions, ConnectionState, Data, SubscribeOptions, SubscriptionEvent,
    TokenSource,
};

use crate::cli::{PublishArgs, RemoteArgs, RpcArgs, SubscribeArgs};

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

async fn connect(remote: &RemoteArgs) -> anyhow::Result<Client> {
    let url = &remote.url;
    let options = ClientOptions {
        name: Some("switchboard-cli".to_owned()),
        token: remote.token.clone().map(TokenSource::fixed),
        ca_file: remote.ca_file.clone(),
        ..ClientOptions::new(url)
    };
    Client::connect(options).await.map_err(|e| match e {
        ClientError::Connect { .. } | ClientError::InvalidUrl { .. } => {
            anyhow::anyhow!(
                "cannot reach switchboard at {url}: {e} (is the server running? set --url; for \
                 a self-signed certificate, --ca-file)"
            )
        }
        ClientError::Unauthorized { .. } | ClientError::TokenExpired => {
            anyhow::anyhow!("{e} (pass a valid token with --token or SWITCHBOARD_TOKEN)")
        }
        other => anyhow::anyhow!(other),
    })
}

/// The data argument: JSON when it parses, otherwise a JSON string.
fn data(arg: &str) -> Value {
    serde_json::from_str(arg).unwrap_or_else(|_| Value::String(arg.to_owned()))
}

pub(crate) fn publish(a: PublishArgs) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async move {
        let client = connect(&a.remote).await?;
        let pos = client
            .publish(&a.channel, data(&a.data))
            .await
            .with_context(|| format!("publish to {:?} failed", a.channel))?;
        println!(
            "{}",
            json!({"channel": a.channel, "offset": pos.offset, "epoch": pos.epoch})
        );
        client.close().await;
        Ok(ExitCode::SUCCESS)
    })
}

pub(crate) fn rpc(a: RpcArgs) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async move {
        let client = connect(&a.remote).await?;
        let answer = client
            .rpc(&a.method, a.data.as_deref().map_or(Value::Null, data))
            .await
            .with_context(|| format!("rpc {:?} failed", a.method))?;
        println!("{answer}");
        client.close().await;
        Ok(ExitCode::SUCCESS)
    })
}

fn data_json(d: &Data) -> Value {
    match d {
        Data::Json(v) => v.clone(),
        Data::Binary(b) => json!({ "binary_bytes": b.len() }),
    }
}

pub(crate) fn subscribe(a: SubscribeArgs) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async move {
        let client = connect(&a.remote).await?;
        let mut streams = Vec::new();
        for ch in &a.channels {
            let sub = client
                .subscribe(
                    ch,
                    SubscribeOptions {
                        join_leave: a.join_leave,
                        ..SubscribeOptions::default()
                    },
                )
                .await
                .with_context(|| format!("subscribe to {ch:?} failed"))?;
            streams.push(sub);
        }
        let mut events = futures_util::stream::select_all(streams);
        let mut state = client.state();
        let mut seen = 0u64;
        loop {
            tokio::select! {
                ev = events.next() => match ev {
                    None => break,
                    Some(Err(e)) => anyhow::bail!("subscription ended: {e}"),
                    Some(Ok(ev)) => {
                        match ev {
                            SubscriptionEvent::Publication(p) => {
                                println!("{}", json!({"channel": p.channel, "offset": p.offset, "epoch": p.epoch, "data": data_json(&p.data)}));
                                seen += 1;
                                if a.count.is_some_and(|n| seen >= n) {
                                    break;
                                }
                            }
                            SubscriptionEvent::Join(i) => println!("{}", json!({"join": i.client, "user": i.user})),
                            SubscriptionEvent::Leave(i) => println!("{}", json!({"leave": i.client, "user": i.user})),
                            SubscriptionEvent::Unrecovered { since, position } => eprintln!(
                                "warning: publications after offset {} (epoch {}) are lost; now at offset {} (epoch {})",
                                since.offset, since.epoch, position.offset, position.epoch
                            ),
                            SubscriptionEvent::Subscribed { .. } => {}
                        }
                    }
                },
                changed = state.changed() => {
                    if changed.is_err() { break; }
                    match &*state.borrow() {
                        ConnectionState::Disconnected(d) => eprintln!("disconnected ({d:?}); reconnecting"),
                        ConnectionState::Connected { .. } => eprintln!("connected"),
                        ConnectionState::Connecting { attempt } if *attempt > 0 => eprintln!("reconnecting (attempt {attempt})"),
                        _ => {}
                    }
                },
                _ = tokio::signal::ctrl_c() => break,
            }
        }
        client.close().await;
        Ok(ExitCode::SUCCESS)
    })
}
