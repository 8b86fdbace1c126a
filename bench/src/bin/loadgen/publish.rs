//! Scenario `publish`: P closed-loop publishers, each on its own connection (a keep-alive HTTP
//! connection to `POST /api/publish`, or a WebSocket sending `publish` commands), spread over K
//! channels; measures the publications per second the server acknowledges, the latency from
//! sending a publish to reading its reply, and the errors by code.
//!
//! Closed loop: each publisher has one publish outstanding at a time, and sends the next as
//! soon as the reply arrives, so P is the number of publishes the server has in hand at once
//! (with `durability = "sync"`, how many can share a store commit). A run is a warm-up then a
//! measured window; a publish counts when it was *sent* inside the window, whenever its reply
//! arrives, and no publish is sent after the window. Every reply is awaited at most
//! `reply_timeout`; a publisher whose connection breaks or times out stops, and that is counted
//! as an error. Server and generator CPU are sampled at the window's edges, as in `fanout`.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::{SocketAddr, ToSocketAddrs as _};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures_util::future::join_all;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::fleet::MASK;
use crate::http;
use crate::procfs::{self, Pid};
use crate::report::Publish;
use crate::stats;
use crate::ws::{self, Target};

/// Time between the last publisher connecting and the first publish.
const LEAD: Duration = Duration::from_millis(100);

/// Extra time the coordinator gives the publishers after their own reply deadline.
const JOIN_MARGIN: Duration = Duration::from_secs(2);

/// Smallest payload: `{"pad":""}`.
pub(crate) const MIN_PAYLOAD_BYTES: usize = 10;

/// Error codes the generator itself gives to failures that are not a server reply.
mod code {
    /// The connection (or WebSocket handshake) could not be opened.
    pub(super) const CONNECT_FAILED: &str = "connect_failed";
    /// The connection broke, or the server closed it, while a publish was outstanding.
    pub(super) const CONNECTION_LOST: &str = "connection_lost";
    /// No reply within `--reply-timeout-s`.
    pub(super) const REPLY_TIMEOUT: &str = "reply_timeout";
    /// A reply the generator cannot read (neither a result nor an error).
    pub(super) const BAD_REPLY: &str = "bad_reply";
}

/// How the publishers reach the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Via {
    /// `POST /api/publish`, one keep-alive connection per publisher.
    Http,
    /// `publish` commands on `/ws`, one WebSocket per publisher.
    Ws,
}

impl Via {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Ws => "ws",
        }
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub(crate) struct PublishConfig {
    pub(crate) label: String,
    /// `http://HOST:PORT` of the server.
    pub(crate) url: String,
    pub(crate) server: Option<u32>,
    pub(crate) via: Via,
    pub(crate) publishers: usize,
    /// Publisher `i` publishes to channel `bench:{i % channels}`.
    pub(crate) channels: usize,
    pub(crate) payload_bytes: usize,
    pub(crate) warmup: Duration,
    pub(crate) window: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) reply_timeout: Duration,
}

/// Runs the scenario once: connects every publisher, publishes through the warm-up and the
/// window, waits (bounded) for the last replies, closes everything.
pub(crate) async fn run(config: &PublishConfig) -> anyhow::Result<Publish> {
    let server = Server::parse(&config.url)?;
    let data = filler(config.payload_bytes);
    let setup_started = Instant::now();
    let opened = join_all((0..config.publishers).map(|i| {
        let channel = format!("bench:{}", i % config.channels.max(1));
        let opening = Conn::open(&server, config.via, channel, &data);
        async move {
            match tokio::time::timeout(config.connect_timeout, opening).await {
                Ok(result) => result,
                Err(_) => Err(anyhow::anyhow!(
                    "not connected within {:?}",
                    config.connect_timeout
                )),
            }
        }
    }))
    .await;
    let setup_s = setup_started.elapsed().as_secs_f64();
    let mut tally = Tally::default();
    let mut conns = Vec::with_capacity(opened.len());
    for result in opened {
        match result {
            Ok(conn) => conns.push(conn),
            Err(err) => tally.note(code::CONNECT_FAILED, &format!("{err:#}")),
        }
    }
    let connected = conns.len();
    println!(
        "[{}] {connected} publishers connected via {} in {setup_s:.1} s ({} failed)",
        config.label,
        config.via.as_str(),
        config.publishers - connected
    );

    let start = Instant::now() + LEAD;
    let window_start = start + config.warmup;
    let window_end = window_start + config.window;
    stats::reset_histograms();
    let plan = Plan {
        start,
        window_start,
        window_end,
        reply_timeout: config.reply_timeout,
    };
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|conn| tokio::spawn(publisher(conn, plan)))
        .collect();

    tokio::time::sleep_until(window_start.into()).await;
    let server_before = config
        .server
        .and_then(|pid| procfs::sample(Pid::Other(pid)));
    let own_before = procfs::sample(Pid::Own);
    tokio::time::sleep_until(window_end.into()).await;
    let server_after = config
        .server
        .and_then(|pid| procfs::sample(Pid::Other(pid)));
    let own_after = procfs::sample(Pid::Own);

    // Each publisher ends by window_end + reply_timeout; the margin only guards that bound.
    let join_deadline = window_end + config.reply_timeout + JOIN_MARGIN;
    let mut unfinished = 0;
    for mut task in tasks {
        match tokio::time::timeout_at(join_deadline.into(), &mut task).await {
            Ok(Ok(report)) => tally.merge(report),
            Ok(Err(err)) => tally.note(code::CONNECTION_LOST, &format!("publisher task: {err}")),
            Err(_) => {
                task.abort();
                unfinished += 1;
            }
        }
    }
    if unfinished > 0 {
        tally.note(
            code::REPLY_TIMEOUT,
            &format!("{unfinished} publishers still busy at the join deadline"),
        );
    }

    let hist = stats::merged_histogram();
    let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    let window_s = config.window.as_secs_f64();
    let cpu = |a: Option<procfs::Sample>, b: Option<procfs::Sample>| {
        Some(procfs::cpu_percent(a.as_ref()?, b.as_ref()?))
    };
    let wait = |a: Option<procfs::Sample>, b: Option<procfs::Sample>| {
        procfs::runq_wait_percent(a.as_ref()?, b.as_ref()?)
    };
    let errors: u64 = tally.errors.values().sum();
    let mut record = Publish {
        label: config.label.clone(),
        via: config.via.as_str().to_owned(),
        publishers: config.publishers,
        connected,
        channels: config.channels,
        payload_bytes: config.payload_bytes,
        window_s,
        acked: tally.acked_in_window,
        acked_total: tally.acked_total,
        publications_per_s: tally.acked_in_window as f64 / window_s,
        p50_ms: ms(0.50),
        p99_ms: ms(0.99),
        p999_ms: ms(0.999),
        max_ms: hist.max() as f64 / 1000.0,
        errors,
        errors_by_code: tally.errors,
        first_error: tally.first_error,
        server_cpu_pct: cpu(server_before, server_after),
        server_rss_kib: server_after.map(|s| s.rss_kib),
        gen_cpu_pct: cpu(own_before, own_after),
        server_runq_wait_pct: wait(server_before, server_after),
        gen_runq_wait_pct: wait(own_before, own_after),
        pass: false,
        verdict: String::new(),
    };
    judge(&mut record);
    Ok(record)
}

/// Sets `pass` and `verdict`: every problem is listed.
fn judge(record: &mut Publish) {
    let mut problems = Vec::new();
    if record.connected < record.publishers {
        problems.push(format!(
            "{} of {} publishers connected",
            record.connected, record.publishers
        ));
    }
    if record.acked == 0 {
        problems.push("nothing acknowledged in the window".to_owned());
    }
    if record.errors > 0 {
        let by_code: Vec<String> = record
            .errors_by_code
            .iter()
            .map(|(code, n)| format!("{code} ×{n}"))
            .collect();
        problems.push(format!(
            "{} errors ({}; first: {})",
            record.errors,
            by_code.join(", "),
            record.first_error.as_deref().unwrap_or("unknown")
        ));
    }
    record.pass = problems.is_empty();
    record.verdict = if record.pass {
        "pass".to_owned()
    } else {
        problems.join("; ")
    };
}

/// `{"pad":"xx…"}`, exactly `bytes` long (at least [`MIN_PAYLOAD_BYTES`]).
fn filler(bytes: usize) -> Vec<u8> {
    let mut out = br#"{"pad":""#.to_vec();
    out.resize(bytes.max(MIN_PAYLOAD_BYTES) - 2, b'x');
    out.extend_from_slice(br#""}"#);
    out
}

/// The server's address, from `http://HOST:PORT`.
struct Server {
    /// `HOST:PORT` as given, for the `Host` header.
    host: String,
    addr: SocketAddr,
}

impl Server {
    fn parse(url: &str) -> anyhow::Result<Self> {
        let host = url
            .strip_prefix("http://")
            .with_context(|| format!("{url}: expected http://HOST:PORT"))?
            .trim_end_matches('/');
        anyhow::ensure!(
            !host.is_empty() && !host.contains('/'),
            "{url}: expected http://HOST:PORT, without a path"
        );
        let addr = host
            .to_socket_addrs()
            .with_context(|| format!("resolving {host}"))?
            .next()
            .with_context(|| format!("{host} resolves to no address"))?;
        Ok(Self {
            host: host.to_owned(),
            addr,
        })
    }
}

/// When a publisher publishes.
#[derive(Debug, Clone, Copy)]
struct Plan {
    start: Instant,
    window_start: Instant,
    /// No publish is sent at or after this.
    window_end: Instant,
    reply_timeout: Duration,
}

/// What publishers counted; merged by the coordinator.
#[derive(Debug, Default)]
struct Tally {
    /// Publishes sent in the window and acknowledged.
    acked_in_window: u64,
    /// Every acknowledged publish, warm-up included.
    acked_total: u64,
    /// Errors of the whole run (warm-up included), by code.
    errors: BTreeMap<String, u64>,
    /// The first error, as `code: message`.
    first_error: Option<String>,
}

impl Tally {
    fn note(&mut self, code: &str, message: &str) {
        *self.errors.entry(code.to_owned()).or_default() += 1;
        self.first_error
            .get_or_insert_with(|| format!("{code}: {message}"));
    }

    fn merge(&mut self, other: Tally) {
        self.acked_in_window += other.acked_in_window;
        self.acked_total += other.acked_total;
        for (code, n) in other.errors {
            *self.errors.entry(code).or_default() += n;
        }
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

/// One publisher: publishes back to back from `plan.start` until the window ends, or until its
/// connection fails.
async fn publisher(mut conn: Conn, plan: Plan) -> Tally {
    tokio::time::sleep_until(plan.start.into()).await;
    let mut tally = Tally::default();
    loop {
        let sent = Instant::now();
        if sent >= plan.window_end {
            break;
        }
        // A timed-out exchange leaves the connection mid-reply: the publisher stops.
        let outcome = tokio::time::timeout(plan.reply_timeout, conn.publish())
            .await
            .unwrap_or_else(|_| Outcome::Broken {
                code: code::REPLY_TIMEOUT,
                message: format!("no reply within {:?}", plan.reply_timeout),
            });
        match outcome {
            Outcome::Acked => {
                tally.acked_total += 1;
                if sent >= plan.window_start {
                    tally.acked_in_window += 1;
                    let latency = sent.elapsed();
                    let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
                    stats::with_local_histogram(|h| stats::record_latency(h, ns));
                }
            }
            Outcome::Refused { code, message } => tally.note(&code, &message),
            Outcome::Broken { code, message } => {
                tally.note(code, &message);
                break;
            }
        }
    }
    tally
}

/// How one publish ended.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// A `result` with the publication's offset.
    Acked,
    /// An error reply from the server; the connection is still usable.
    Refused { code: String, message: String },
    /// The connection is unusable.
    Broken { code: &'static str, message: String },
}

impl Outcome {
    fn lost(message: impl ToString) -> Self {
        Self::Broken {
            code: code::CONNECTION_LOST,
            message: message.to_string(),
        }
    }

    fn bad_reply(message: impl ToString) -> Self {
        Self::Broken {
            code: code::BAD_REPLY,
            message: message.to_string(),
        }
    }
}

/// A publisher's connection.
enum Conn {
    Http {
        conn: http::Connection,
        /// The whole request, the same for every publish.
        request: Vec<u8>,
    },
    Ws(WsPublisher),
}

impl Conn {
    async fn open(server: &Server, via: Via, channel: String, data: &[u8]) -> anyhow::Result<Self> {
        match via {
            Via::Http => {
                let mut body = Vec::with_capacity(data.len() + channel.len() + 32);
                let _ = write!(body, r#"{{"channel":"{channel}","data":"#);
                body.extend_from_slice(data);
                body.push(b'}');
                let conn = http::connect(server.addr).await.context("TCP connect")?;
                Ok(Self::Http {
                    conn,
                    request: http::post_json(&server.host, "/api/publish", &body),
                })
            }
            Via::Ws => {
                let target = Target::parse(&format!("ws://{}/ws", server.host))?;
                let (stream, leftover) = ws::connect(&target).await?;
                Ok(Self::Ws(WsPublisher {
                    stream,
                    buf: leftover,
                    prefix: format!(r#","cmd":"publish","channel":"{channel}","data":"#)
                        .into_bytes(),
                    data: data.to_vec(),
                    next_id: 1,
                    text: Vec::new(),
                    frame: Vec::new(),
                }))
            }
        }
    }

    /// Sends one publish and reads its reply. Not cancel-safe (see [`Outcome::Broken`]).
    async fn publish(&mut self) -> Outcome {
        match self {
            Self::Http { conn, request } => match conn.exchange(request).await {
                Ok(response) => http_outcome(response.status, response.body),
                Err(http::HttpError::Closed) => Outcome::lost(http::HttpError::Closed),
                Err(http::HttpError::Io(err)) => Outcome::lost(err),
                Err(err) => Outcome::bad_reply(err),
            },
            Self::Ws(ws) => ws.publish().await,
        }
    }
}

/// A `200` with an offset is an acknowledgement; anything else is an error, by the body's
/// `error.code` when it has one.
fn http_outcome(status: u16, body: &[u8]) -> Outcome {
    if status == 200 && memchr::memmem::find(body, br#""offset":"#).is_some() {
        return Outcome::Acked;
    }
    let value: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    match value.as_ref().and_then(error_of) {
        Some((code, message)) => Outcome::Refused { code, message },
        None if status == 200 => Outcome::bad_reply(format!(
            "200 without an offset: {}",
            String::from_utf8_lossy(body)
        )),
        None => Outcome::Refused {
            code: format!("http_{status}"),
            message: String::from_utf8_lossy(body).into_owned(),
        },
    }
}

/// `(code, message)` of an `{"error":{"code","message"}}` reply.
fn error_of(value: &serde_json::Value) -> Option<(String, String)> {
    let error = value.get("error")?;
    let code = error.get("code")?.as_str()?.to_owned();
    let message = error
        .get("message")
        .and_then(|m| m.as_str())
        .unwrap_or_default()
        .to_owned();
    Some((code, message))
}

/// A WebSocket publisher: one `publish` command out, frames in until its reply.
struct WsPublisher {
    stream: TcpStream,
    /// Bytes read and not yet parsed.
    buf: Vec<u8>,
    /// `,"cmd":"publish","channel":"…","data":`, what follows the id in every command.
    prefix: Vec<u8>,
    data: Vec<u8>,
    next_id: u64,
    /// Scratch: the command's text, then its masked frame.
    text: Vec<u8>,
    frame: Vec<u8>,
}

/// What a text frame from the server is, to a publisher.
#[derive(Debug, PartialEq, Eq)]
enum WsReply {
    /// The reply to the outstanding publish.
    Done(Outcome),
    /// A `ping` push: answer `{"cmd":"pong"}`.
    Ping,
    /// Any other push: ignored.
    Other,
}

impl WsPublisher {
    async fn publish(&mut self) -> Outcome {
        self.text.clear();
        let _ = write!(self.text, r#"{{"id":{}"#, self.next_id);
        self.next_id += 1;
        self.text.extend_from_slice(&self.prefix);
        self.text.extend_from_slice(&self.data);
        self.text.push(b'}');
        self.frame.clear();
        ws::encode_masked(&mut self.frame, ws::OP_TEXT, &self.text, MASK);
        if let Err(err) = self.stream.write_all(&self.frame).await {
            return Outcome::lost(err);
        }
        loop {
            let mut used = 0;
            let mut reply = None;
            let mut pong = None;
            while reply.is_none() {
                let header = match ws::parse_header(&self.buf[used..]) {
                    Ok(Some(h)) if h.frame_len() <= self.buf.len() - used => h,
                    Ok(_) => break,
                    Err(err) => return Outcome::bad_reply(format!("bad frame: {err}")),
                };
                let payload = &self.buf[used + header.header_len..used + header.frame_len()];
                used += header.frame_len();
                match header.opcode {
                    ws::OP_TEXT if !header.fin => {
                        return Outcome::bad_reply("fragmented reply");
                    }
                    ws::OP_TEXT => match classify_ws(payload) {
                        WsReply::Done(outcome) => reply = Some(outcome),
                        WsReply::Ping => {
                            pong = Some((ws::OP_TEXT, br#"{"cmd":"pong"}"#.to_vec()));
                        }
                        WsReply::Other => {}
                    },
                    ws::OP_PING => pong = Some((ws::OP_PONG, payload.to_vec())),
                    ws::OP_CLOSE => {
                        let code = payload.get(..2).map(|c| u16::from_be_bytes([c[0], c[1]]));
                        return Outcome::lost(format!("close frame, code {code:?}"));
                    }
                    _ => {}
                }
            }
            self.buf.drain(..used);
            if let Some((opcode, payload)) = pong {
                let mut frame = Vec::with_capacity(payload.len() + 8);
                ws::encode_masked(&mut frame, opcode, &payload, MASK);
                if let Err(err) = self.stream.write_all(&frame).await {
                    return Outcome::lost(err);
                }
            }
            if let Some(outcome) = reply {
                return outcome;
            }
            self.buf.reserve(4096);
            match self.stream.read_buf(&mut self.buf).await {
                Ok(0) => return Outcome::lost("the server closed the connection"),
                Ok(_) => {}
                Err(err) => return Outcome::lost(err),
            }
        }
    }
}

/// Reads one text frame. Replies start `{"id":…,"result"` (`docs/protocol.md`), which the fast
/// path recognises without parsing; anything else is parsed fully. The publisher has one
/// command outstanding, so the first reply is its reply.
fn classify_ws(text: &[u8]) -> WsReply {
    if text.starts_with(br#"{"id":"#) && memchr::memmem::find(text, br#""result":"#).is_some() {
        return WsReply::Done(Outcome::Acked);
    }
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(text) else {
        return WsReply::Done(Outcome::bad_reply(String::from_utf8_lossy(text)));
    };
    if let Some(push) = value.get("push").and_then(|p| p.as_str()) {
        return match push {
            "ping" => WsReply::Ping,
            "disconnect" => WsReply::Done(Outcome::lost(value)),
            _ => WsReply::Other,
        };
    }
    if value.get("result").is_some() {
        return WsReply::Done(Outcome::Acked);
    }
    match error_of(&value) {
        Some((code, message)) => WsReply::Done(Outcome::Refused { code, message }),
        None => WsReply::Done(Outcome::bad_reply(value)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filler_is_exactly_the_asked_size_of_json() {
        for bytes in [10, 11, 100, 4096] {
            let data = filler(bytes);
            assert_eq!(data.len(), bytes);
            let value: serde_json::Value = serde_json::from_slice(&data).expect("valid JSON");
            assert!(value["pad"].is_string());
        }
        assert_eq!(filler(3).len(), MIN_PAYLOAD_BYTES);
    }

    #[test]
    fn ws_replies_are_told_apart() {
        assert_eq!(
            classify_ws(br#"{"id":7,"result":{"offset":3,"epoch":"e"}}"#),
            WsReply::Done(Outcome::Acked)
        );
        assert_eq!(
            classify_ws(br#"{"result":{"offset":3},"id":7}"#),
            WsReply::Done(Outcome::Acked)
        );
        assert_eq!(
            classify_ws(br#"{"id":7,"error":{"code":"store_unavailable","message":"busy"}}"#),
            WsReply::Done(Outcome::Refused {
                code: "store_unavailable".to_owned(),
                message: "busy".to_owned()
            })
        );
        assert_eq!(classify_ws(br#"{"push":"ping"}"#), WsReply::Ping);
        assert_eq!(
            classify_ws(br#"{"push":"message","data":{}}"#),
            WsReply::Other
        );
        assert!(matches!(
            classify_ws(br#"{"push":"disconnect","code":4500}"#),
            WsReply::Done(Outcome::Broken {
                code: code::CONNECTION_LOST,
                ..
            })
        ));
        assert!(matches!(
            classify_ws(b"not json"),
            WsReply::Done(Outcome::Broken {
                code: code::BAD_REPLY,
                ..
            })
        ));
    }

    #[test]
    fn http_errors_are_counted_by_their_code() {
        assert_eq!(
            http_outcome(200, br#"{"epoch":"e","offset":1}"#),
            Outcome::Acked
        );
        assert_eq!(
            http_outcome(
                503,
                br#"{"error":{"code":"store_unavailable","message":"m"}}"#
            ),
            Outcome::Refused {
                code: "store_unavailable".to_owned(),
                message: "m".to_owned()
            }
        );
        assert!(matches!(
            http_outcome(502, b"Bad Gateway"),
            Outcome::Refused { code, .. } if code == "http_502"
        ));
        assert!(matches!(
            http_outcome(200, b"{}"),
            Outcome::Broken {
                code: code::BAD_REPLY,
                ..
            }
        ));
    }

    #[test]
    fn server_urls_need_http_and_no_path() {
        let s = Server::parse("http://127.0.0.1:8000/").expect("valid");
        assert_eq!(s.host, "127.0.0.1:8000");
        assert!(Server::parse("ws://127.0.0.1:8000").is_err());
        assert!(Server::parse("http://127.0.0.1:8000/api").is_err());
    }

    #[test]
    fn a_tally_merges_counts_and_keeps_the_first_error() {
        let mut a = Tally {
            acked_in_window: 2,
            ..Tally::default()
        };
        let mut b = Tally::default();
        b.note("store_unavailable", "x");
        b.note("store_unavailable", "y");
        a.merge(b);
        assert_eq!(a.acked_in_window, 2);
        assert_eq!(a.errors.get("store_unavailable"), Some(&2));
        assert_eq!(a.first_error.as_deref(), Some("store_unavailable: x"));
    }
}
