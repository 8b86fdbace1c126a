//! The socketioxide peer of switchboard's Socket.IO fan-out benchmark: the smallest
//! socketioxide server that does what the benchmark asks, with socketioxide's default
//! configuration.
//!
//! - Socket.IO on `/socket.io/` (socketioxide's default path), root namespace `/`.
//! - `join(room, ack)`: the socket joins `room`, then the ack is answered `{"ok":true}`.
//! - `pub(data)`: `pub(data)` to every room the sender is in, the sender excluded (as
//!   switchboard's `relay = ["pub"]` does with `relay_to = "rooms"`, `sender = false`).
//!
//! `socketioxide-peer --listen ADDR` (port 0 picks a free port) prints
//! `listening on http://ADDR` once bound. Like the bench's floor, it runs on a multi-thread
//! tokio runtime with one worker (`--workers` changes it) and sets TCP_NODELAY on every
//! connection.

use std::net::SocketAddr;

use axum::serve::ListenerExt as _;
use serde_json::Value;
use socketioxide::SocketIo;
use socketioxide::extract::{AckSender, Data, SocketRef};

struct Args {
    listen: SocketAddr,
    workers: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        listen: SocketAddr::from(([127, 0, 0, 1], 8000)),
        workers: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--listen" => {
                let v = value()?;
                args.listen = v.parse().map_err(|e| format!("--listen {v}: {e}"))?;
            }
            "--workers" => {
                let v = value()?;
                args.workers = v.parse().map_err(|e| format!("--workers {v}: {e}"))?;
            }
            "-h" | "--help" => {
                println!("usage: socketioxide-peer [--listen 127.0.0.1:8000] [--workers 1]");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(args)
}

fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(err) => {
            eprintln!("socketioxide-peer: {err}");
            std::process::exit(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.workers.max(1))
        .enable_all()
        .build();
    let result = match runtime {
        Ok(runtime) => runtime.block_on(serve(args.listen)),
        Err(err) => Err(err),
    };
    if let Err(err) = result {
        eprintln!("socketioxide-peer: {err}");
        std::process::exit(1);
    }
}

async fn serve(listen: SocketAddr) -> std::io::Result<()> {
    let (layer, io) = SocketIo::new_layer();
    io.ns("/", async |socket: SocketRef| {
        socket.on(
            "join",
            async |socket: SocketRef, Data::<String>(room), ack: AckSender| {
                socket.join(room);
                let _ = ack.send(&serde_json::json!({ "ok": true }));
            },
        );
        socket.on("pub", async |socket: SocketRef, Data::<Value>(data)| {
            let rooms = socket.rooms();
            // No rooms would mean the whole namespace: a sender in no room reaches nobody.
            if !rooms.is_empty() {
                let _ = socket.to(rooms).emit("pub", &data).await;
            }
        });
    });
    let app = axum::Router::new().layer(layer);
    let listener = tokio::net::TcpListener::bind(listen).await?;
    println!("listening on http://{}", listener.local_addr()?);
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app).await
}
