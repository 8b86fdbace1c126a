//! The floor: the smallest honest tokio-tungstenite broadcast server, the yardstick that
//! `bench/run.sh` runs beside switchboard in the same run.
//!
//! It does what the "minimal server" row of `shared/PERFORMANCE.md` does and nothing more: one
//! task per connection, a bounded queue per subscriber, every queued frame fed to tungstenite then
//! one flush per wake-up (one `write()` for everything published since the last one), a
//! multi-thread runtime with one worker by default, TCP_NODELAY. It speaks just enough of
//! `docs/protocol.md` for the load generator to drive it like switchboard: `subscribe`,
//! `publish` (the publication frame's text is built once and shared by every queue), `connect`
//! and `ping`. A subscriber whose queue is full is closed with 4001 (slow consumer), so the
//! generator sees loss instead of unbounded buffering. No history, no recovery, no presence:
//! this is a benchmark fixture, never a server to deploy.

use std::collections::HashMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use futures_util::{SinkExt as _, StreamExt as _};
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

/// Minimal tokio-tungstenite broadcast server (the benchmark floor).
#[derive(Parser, Debug)]
#[command(name = "floor", version)]
struct Args {
    /// Address to listen on; port 0 picks a free port (the real address is printed).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Tokio worker threads (the runtime is always the multi-thread one).
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Frames a subscriber may have queued before it is closed as a slow consumer.
    #[arg(long, default_value_t = 1024)]
    queue_frames: usize,
    /// tungstenite read buffer per connection, in bytes (its default, 128 KiB, is far more
    /// than the small commands clients send).
    #[arg(long, default_value_t = 4096)]
    read_buffer_bytes: usize,
    /// Listen backlog.
    #[arg(long, default_value_t = 4096)]
    backlog: u32,
}

/// Longest a client may take to complete the WebSocket handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Close code sent to a subscriber dropped because its queue was full (`docs/protocol.md`).
const SLOW_CONSUMER: u16 = 4001;

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.workers.max(1))
        .enable_all()
        .build()
        .context("building the tokio runtime")?;
    runtime.block_on(serve(args))
}

async fn serve(args: Args) -> anyhow::Result<()> {
    let socket = if args.listen.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .context("creating the listening socket")?;
    socket.set_reuseaddr(true).context("setting SO_REUSEADDR")?;
    socket
        .bind(args.listen)
        .with_context(|| format!("binding {}", args.listen))?;
    let listener = socket.listen(args.backlog).context("listening")?;
    let local = listener.local_addr().context("reading the bound address")?;
    println!("listening on http://{local}");
    std::io::stdout().flush().context("flushing stdout")?;

    let config = WebSocketConfig::default().read_buffer_size(args.read_buffer_bytes);
    let hub = Arc::new(Hub::default());
    // The accept loop runs on the worker, not on this thread, so that `--workers 1` really
    // means one thread doing all the work.
    let accept = tokio::spawn(accept_loop(listener, hub, config, args.queue_frames));

    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
        res = accept => res.context("the accept loop panicked")?,
    }
    Ok(())
}

async fn accept_loop(listener: TcpListener, hub: Arc<Hub>, config: WebSocketConfig, queue: usize) {
    let next_id = AtomicU64::new(1);
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let id = next_id.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(connection(stream, id, hub.clone(), config, queue));
            }
            // EMFILE and friends: back off instead of spinning; the clients time out and retry.
            Err(err) => {
                eprintln!("floor: accept failed: {err}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

// === the hub ===

/// Every channel by name. One std mutex: held for a fan-out (no `.await` inside), which is what
/// the minimal server does.
#[derive(Default)]
struct Hub {
    channels: Mutex<HashMap<String, Channel>>,
}

#[derive(Default)]
struct Channel {
    /// Offset of the last publication (1, 2, 3…).
    offset: u64,
    subscribers: Vec<Subscriber>,
}

struct Subscriber {
    connection: u64,
    queue: mpsc::Sender<Utf8Bytes>,
}

impl Hub {
    fn subscribe(&self, channel: &str, connection: u64, queue: mpsc::Sender<Utf8Bytes>) {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        let entry = channels.entry(channel.to_owned()).or_default();
        entry.subscribers.retain(|s| s.connection != connection);
        entry.subscribers.push(Subscriber { connection, queue });
    }

    fn unsubscribe_all(&self, channels_of_connection: &[String], connection: u64) {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        for name in channels_of_connection {
            if let Some(channel) = channels.get_mut(name) {
                channel.subscribers.retain(|s| s.connection != connection);
            }
        }
    }

    /// Assigns the next offset, builds the frame text once and queues it for every subscriber.
    /// A subscriber whose queue is full loses its sender, which closes it as a slow consumer.
    fn publish(&self, channel_name: &str, data: &RawValue) -> u64 {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        let channel = channels.entry(channel_name.to_owned()).or_default();
        channel.offset += 1;
        let offset = channel.offset;
        let name = serde_json::Value::String(channel_name.to_owned());
        let text = format!(
            r#"{{"push":"publication","channel":{name},"offset":{offset},"epoch":"floor","data":{}}}"#,
            data.get()
        );
        let frame = Utf8Bytes::from(text);
        channel
            .subscribers
            .retain(|s| s.queue.try_send(frame.clone()).is_ok());
        offset
    }
}

// === one connection ===

#[derive(Deserialize)]
struct Command<'a> {
    #[serde(borrow)]
    cmd: &'a str,
    id: Option<u64>,
    channel: Option<String>,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
}

async fn connection(
    stream: TcpStream,
    id: u64,
    hub: Arc<Hub>,
    config: WebSocketConfig,
    queue_frames: usize,
) {
    if stream.set_nodelay(true).is_err() {
        return;
    }
    let handshake = tokio_tungstenite::accept_hdr_async_with_config(stream, only_ws, Some(config));
    let Ok(Ok(ws)) = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await else {
        return;
    };
    let mut subscribed = Vec::new();
    let _ = run(ws, id, &hub, queue_frames, &mut subscribed).await;
    hub.unsubscribe_all(&subscribed, id);
}

/// Accepts the WebSocket handshake on `/ws` only; anything else gets 404.
#[expect(
    clippy::result_large_err,
    reason = "the signature tungstenite's `Callback` requires"
)]
fn only_ws(req: &Request, resp: Response) -> Result<Response, ErrorResponse> {
    if req.uri().path() == "/ws" {
        Ok(resp)
    } else {
        let mut not_found = ErrorResponse::new(Some("not found".to_owned()));
        *not_found.status_mut() = StatusCode::NOT_FOUND;
        Err(not_found)
    }
}

/// Serves one WebSocket until it closes. The connection keeps only a weak handle on its queue
/// once the hub holds a strong one, so the hub dropping it (queue full) ends `recv` with `None`.
async fn run(
    mut ws: WebSocketStream<TcpStream>,
    id: u64,
    hub: &Hub,
    queue_frames: usize,
    subscribed: &mut Vec<String>,
) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    let (tx, mut rx) = mpsc::channel::<Utf8Bytes>(queue_frames.max(1));
    let weak = tx.downgrade();
    let mut own_tx = Some(tx);
    loop {
        tokio::select! {
            // Cancel-safe: `recv` loses nothing when the other branch wins.
            frame = rx.recv(), if own_tx.is_none() => {
                let Some(frame) = frame else {
                    let close = CloseFrame {
                        code: CloseCode::from(SLOW_CONSUMER),
                        reason: "slow_consumer".into(),
                    };
                    let _ = ws.send(Message::Close(Some(close))).await;
                    return Ok(());
                };
                ws.feed(Message::Text(frame)).await?;
                while let Ok(frame) = rx.try_recv() {
                    ws.feed(Message::Text(frame)).await?;
                }
                ws.flush().await?;
            }
            // Cancel-safe: tokio-tungstenite keeps partial frames inside the stream.
            msg = ws.next() => {
                let text = match msg {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Close(_))) | None => return Ok(()),
                    Some(Ok(_)) => continue,
                    Some(Err(err)) => return Err(err),
                };
                let reply = match serde_json::from_str::<Command<'_>>(&text) {
                    Ok(cmd) => execute(&cmd, id, hub, &mut own_tx, &weak, subscribed),
                    Err(err) => Some(error_reply(None, "bad_request", &err.to_string())),
                };
                if let Some(reply) = reply {
                    ws.send(Message::Text(reply.into())).await?;
                }
            }
        }
    }
}

/// Runs one command and returns the reply text, if the command wants one.
fn execute(
    cmd: &Command<'_>,
    id: u64,
    hub: &Hub,
    own_tx: &mut Option<mpsc::Sender<Utf8Bytes>>,
    weak: &mpsc::WeakSender<Utf8Bytes>,
    subscribed: &mut Vec<String>,
) -> Option<String> {
    let result = match cmd.cmd {
        "pong" => return None,
        "ping" => "{}".to_owned(),
        "connect" => {
            format!(r#"{{"client":"floor-{id}","version":"floor","ping_interval":0}}"#)
        }
        "subscribe" => {
            let Some(channel) = &cmd.channel else {
                return Some(error_reply(cmd.id, "bad_request", "channel is missing"));
            };
            // After the first subscription the hub owns the strong senders; if it has already
            // dropped them all, this connection is being closed as a slow consumer.
            let Some(queue) = own_tx.take().or_else(|| weak.upgrade()) else {
                return Some(error_reply(cmd.id, "unavailable", "closing"));
            };
            hub.subscribe(channel, id, queue);
            if !subscribed.contains(channel) {
                subscribed.push(channel.clone());
            }
            "{}".to_owned()
        }
        "publish" => {
            let (Some(channel), Some(data)) = (&cmd.channel, cmd.data) else {
                return Some(error_reply(
                    cmd.id,
                    "invalid_data",
                    "channel and data are required",
                ));
            };
            let offset = hub.publish(channel, data);
            format!(r#"{{"offset":{offset},"epoch":"floor"}}"#)
        }
        _ => return Some(error_reply(cmd.id, "unknown_command", cmd.cmd)),
    };
    let id = cmd.id?;
    Some(format!(r#"{{"id":{id},"result":{result}}}"#))
}

fn error_reply(id: Option<u64>, code: &str, message: &str) -> String {
    let error = serde_json::json!({ "code": code, "message": message });
    match id {
        Some(id) => format!(r#"{{"id":{id},"error":{error}}}"#),
        None => format!(r#"{{"error":{error}}}"#),
    }
}
