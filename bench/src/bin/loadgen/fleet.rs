//! The subscribers: N WebSocket connections that each subscribe to the bench channel (or, for
//! Socket.IO, connect to the root namespace and join the bench room: see [`crate::sio`]) and
//! then read publications until the coordinator closes them.
//!
//! This is the generator's hot path, so each connection is one task with no read buffer of its
//! own: it waits for readability, reads into a per-thread scratch buffer, walks the frames in
//! place, and keeps only the bytes of a partial frame (usually none). A short read means the
//! socket is drained, so the task tells tokio so (`try_io` returning `WouldBlock`) instead of
//! paying a second `read()` that would fail with `EAGAIN`. Counts go to [`Shared`] once per
//! read, latencies to the thread's histogram.
//!
//! Setup is bounded: at most `batch` connections are between TCP connect and subscribe reply
//! at once, each within `timeout`. A Socket.IO connection whose `join` was emitted but not
//! acknowledged within `timeout` is a *lost join*, counted apart from the other failures. A
//! connection that ends on its own (close frame, EOF, error) is counted as a disconnect with
//! its reason; [`Fleet::close`] ends them all without counting.

use std::cell::RefCell;
use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;

use crate::publication::{self, Publication};
use crate::sio;
use crate::stats::{self, Batch, Shared};
use crate::ws::{self, Target};

/// What the subscribers speak.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Protocol {
    /// switchboard's own protocol (`docs/protocol.md`), as the floor speaks it.
    #[default]
    Native,
    /// Engine.IO v4 / Socket.IO v5 over WebSocket: the channel is a room of namespace `/`.
    #[serde(rename = "socketio")]
    SocketIo,
}

/// Command id of the subscribe request; its reply is recognised by it.
const SUBSCRIBE_ID: u64 = 1;
/// How long a Socket.IO `join` may go without an ack before it is emitted again.
const JOIN_RETRY: Duration = Duration::from_secs(1);

/// The generator's masking key. Masking exists against cache poisoning by browsers; any key
/// is valid for a server to accept.
pub(crate) const MASK: [u8; 4] = [0x5a, 0x17, 0xc3, 0x9e];

/// Initial size of each thread's read buffer; it grows for a frame that does not fit.
const SCRATCH_BYTES: usize = 64 << 10;

thread_local! {
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(vec![0; SCRATCH_BYTES]);
}

/// How to open the subscribers.
#[derive(Debug, Clone)]
pub(crate) struct FleetConfig {
    pub(crate) target: Target,
    pub(crate) protocol: Protocol,
    /// The channel to subscribe to (Socket.IO: the room to join).
    pub(crate) channel: String,
    pub(crate) n: usize,
    /// Connections being set up at once.
    pub(crate) batch: usize,
    /// Longest one connection may take from TCP connect to its subscribe reply.
    pub(crate) timeout: Duration,
}

/// Open subscriber connections.
pub(crate) struct Fleet {
    tasks: Vec<JoinHandle<()>>,
    /// Connections that got their subscribe reply.
    pub(crate) subscribed: usize,
    /// Connections that failed during setup (lost joins apart).
    pub(crate) failed: usize,
    /// Socket.IO connections whose `join` got no ack within the setup timeout; they are
    /// closed, not counted in `subscribed`.
    pub(crate) lost_joins: usize,
    /// Socket.IO connections that joined only after emitting `join` again.
    pub(crate) join_retries: usize,
    /// The first setup failure.
    pub(crate) first_error: Option<String>,
    /// Time to open them all.
    pub(crate) setup: Duration,
}

impl Fleet {
    /// Opens `config.n` subscribers on the current runtime and waits until each one is
    /// subscribed or has failed.
    pub(crate) async fn open(config: &FleetConfig, shared: &Arc<Shared>) -> Self {
        let started = Instant::now();
        let permits = Arc::new(Semaphore::new(config.batch.max(1)));
        // Each task sends exactly one setup result, so `n` slots never fill up.
        let (results_tx, mut results) = mpsc::channel(config.n.max(1));
        let hello = match config.protocol {
            Protocol::Native => {
                let mut subscribe = Vec::new();
                let command = format!(
                    r#"{{"id":{SUBSCRIBE_ID},"cmd":"subscribe","channel":{}}}"#,
                    serde_json::Value::String(config.channel.clone())
                );
                ws::encode_masked(&mut subscribe, ws::OP_TEXT, command.as_bytes(), MASK);
                Hello::Native(subscribe)
            }
            Protocol::SocketIo => match sio::Frames::new(&config.channel) {
                Ok(frames) => Hello::SocketIo(Arc::new(frames)),
                Err(err) => {
                    return Self {
                        tasks: Vec::new(),
                        subscribed: 0,
                        failed: config.n,
                        lost_joins: 0,
                        join_retries: 0,
                        first_error: Some(format!("encoding the join: {err:#}")),
                        setup: started.elapsed(),
                    };
                }
            },
        };
        let setup = Arc::new(Setup {
            target: config.target.clone(),
            hello,
            permits,
            timeout: config.timeout,
        });
        let tasks = (0..config.n)
            .map(|_| {
                tokio::spawn(subscriber(
                    setup.clone(),
                    results_tx.clone(),
                    shared.clone(),
                ))
            })
            .collect();
        drop(results_tx);

        let mut fleet = Self {
            tasks,
            subscribed: 0,
            failed: 0,
            lost_joins: 0,
            join_retries: 0,
            first_error: None,
            setup: Duration::ZERO,
        };
        while let Some(result) = results.recv().await {
            match result {
                Ok(retries) => {
                    fleet.subscribed += 1;
                    fleet.join_retries += usize::from(retries > 0);
                }
                Err(SetupError::LostJoin) => fleet.lost_joins += 1,
                Err(SetupError::Failed(err)) => {
                    fleet.failed += 1;
                    fleet.first_error.get_or_insert(err);
                }
            }
        }
        fleet.setup = started.elapsed();
        fleet
    }

    /// Ends every connection (a reset, see [`ws::connect`]) without counting disconnects.
    pub(crate) fn close(self) {
        for task in self.tasks {
            task.abort();
        }
    }
}

struct Setup {
    target: Target,
    hello: Hello,
    permits: Arc<Semaphore>,
    timeout: Duration,
}

/// What a connection sends to get its publications, the same for every connection.
enum Hello {
    /// The masked subscribe frame.
    Native(Vec<u8>),
    /// The Socket.IO frames: sent one by one as the server answers.
    SocketIo(Arc<sio::Frames>),
}

/// Why a connection did not subscribe.
enum SetupError {
    /// A Socket.IO `join` sent and not acknowledged within the setup timeout.
    LostJoin,
    Failed(String),
}

/// Keeps [`Shared::alive`] right however the task ends, abort included.
struct Alive(Arc<Shared>);

impl Alive {
    fn new(shared: Arc<Shared>) -> Self {
        shared.alive.fetch_add(1, Relaxed);
        Self(shared)
    }
}

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.alive.fetch_sub(1, Relaxed);
    }
}

async fn subscriber(
    setup: Arc<Setup>,
    result: mpsc::Sender<Result<usize, SetupError>>,
    shared: Arc<Shared>,
) {
    let Ok(permit) = setup.permits.acquire().await else {
        let _ = result
            .send(Err(SetupError::Failed("setup cancelled".to_owned())))
            .await;
        return;
    };
    let mut conn = match &setup.hello {
        Hello::Native(_) => Connection::default(),
        Hello::SocketIo(frames) => Connection::socketio(frames.clone()),
    };
    let opened = tokio::time::timeout(setup.timeout, conn.open(&setup, &shared)).await;
    drop(permit);
    let stream = match opened {
        Ok(Ok(stream)) => stream,
        Ok(Err(err)) => {
            let _ = result.send(Err(SetupError::Failed(err))).await;
            return;
        }
        Err(_) if conn.join_sent() => {
            let _ = result.send(Err(SetupError::LostJoin)).await;
            return;
        }
        Err(_) => {
            let why = format!("setup took over {:?}", setup.timeout);
            let _ = result.send(Err(SetupError::Failed(why))).await;
            return;
        }
    };
    let _alive = Alive::new(shared.clone());
    let _ = result.send(Ok(conn.join_retries)).await;
    drop(result);
    let end = loop {
        if let Err(end) = conn.read_once(&stream, &shared).await {
            break end;
        }
    };
    shared.note_disconnect(end.describe(conn.disconnect_push.as_deref()));
}

/// Why a connection stopped reading.
enum End {
    Eof,
    Close {
        code: Option<u16>,
        reason: String,
    },
    Frame(ws::FrameError),
    Io(io::Error),
    /// Socket.IO: the server closed the session or the socket, refused it, or broke the
    /// protocol.
    SocketIo(String),
}

impl End {
    fn describe(&self, push: Option<&str>) -> String {
        let what = match self {
            Self::Eof => "server closed the TCP connection".to_owned(),
            Self::Close {
                code: Some(code),
                reason,
            } => format!("close frame {code} {reason}"),
            Self::Close { code: None, .. } => "close frame without code".to_owned(),
            Self::Frame(err) => format!("bad frame from the server: {err}"),
            Self::Io(err) => format!("socket error: {err}"),
            Self::SocketIo(why) => why.clone(),
        };
        match push {
            Some(push) => format!("{what} after {push}"),
            None => what,
        }
    }
}

/// Result of one `read()`.
enum Progress {
    /// A short read: the socket had nothing more.
    Drained,
    /// The buffer filled up: read again at once.
    Full,
    Ended(End),
}

/// One subscriber's state between reads.
#[derive(Default)]
struct Connection {
    /// Bytes of an incomplete frame left by the last read.
    pending: Vec<u8>,
    /// A fragmented text or binary message being put together: its opcode and bytes so far.
    fragment: Option<(u8, Vec<u8>)>,
    /// Offset of the last publication received (or the subscribe reply's position).
    last_offset: Option<u64>,
    /// The subscribe reply, once it has come: `Ok` or the server's error.
    ack: Option<Result<(), String>>,
    /// Masked frames to send back (pongs).
    replies: Vec<u8>,
    /// The last `disconnect` push, if the server sent one.
    disconnect_push: Option<String>,
    /// Socket.IO's state, for a Socket.IO connection.
    sio: Option<Box<SioState>>,
    /// Times the `join` was emitted again for want of an ack.
    join_retries: usize,
}

/// A Socket.IO connection's protocol state and the frames it sends.
struct SioState {
    client: sio::Client,
    frames: Arc<sio::Frames>,
}

impl Connection {
    fn socketio(frames: Arc<sio::Frames>) -> Self {
        Self {
            sio: Some(Box::new(SioState {
                client: sio::Client::default(),
                frames,
            })),
            ..Self::default()
        }
    }

    /// Whether this is a Socket.IO connection waiting for the ack of its `join`.
    fn join_sent(&self) -> bool {
        self.sio
            .as_ref()
            .is_some_and(|s| s.client.stage() == sio::Stage::Join)
    }

    /// Connects, sends the subscribe command and reads until its reply.
    async fn open(&mut self, setup: &Setup, shared: &Shared) -> Result<TcpStream, String> {
        let (stream, leftover) = ws::connect(&setup.target)
            .await
            .map_err(|e| format!("{e:#}"))?;
        self.pending = leftover;
        if let Hello::Native(subscribe) = &setup.hello {
            write_all(&stream, subscribe)
                .await
                .map_err(|e| format!("sending subscribe: {e}"))?;
        }
        // Bytes that came with the handshake response are handled before the first read.
        if !self.pending.is_empty() {
            let pending = std::mem::take(&mut self.pending);
            let (used, ended) = self.handle_frames(&pending, stats::now_ns(), shared);
            if let Some(end) = ended {
                return Err(end.describe(self.disconnect_push.as_deref()));
            }
            self.pending = pending[used..].to_vec();
        }
        loop {
            if let Some(result) = self.ack.take() {
                return match result {
                    Ok(()) => Ok(stream),
                    Err(err) => Err(format!("subscribe refused: {err}")),
                };
            }
            // A Socket.IO `join` with no ack after JOIN_RETRY is emitted again (same ack id),
            // as a client with `retries` would: a server that drops early events (socketioxide
            // registers its handlers after answering CONNECT) still gets a joined fleet, and
            // the retries are reported.
            let read = if self.join_sent() {
                match tokio::time::timeout(JOIN_RETRY, self.read_once(&stream, shared)).await {
                    Ok(r) => r,
                    Err(_) => {
                        if let Some(frames) = self.sio.as_ref().map(|s| s.frames.join_frame()) {
                            write_all(&stream, &frames)
                                .await
                                .map_err(|e| format!("resending join: {e}"))?;
                            self.join_retries += 1;
                        }
                        Ok(())
                    }
                }
            } else {
                self.read_once(&stream, shared).await
            };
            if let Err(end) = read {
                return Err(end.describe(self.disconnect_push.as_deref()));
            }
        }
    }

    /// Sends pending replies, waits for data, reads it and handles every complete frame.
    async fn read_once(&mut self, stream: &TcpStream, shared: &Shared) -> Result<(), End> {
        if !self.replies.is_empty() {
            write_all(stream, &self.replies).await.map_err(End::Io)?;
            self.replies.clear();
        }
        stream.readable().await.map_err(End::Io)?;
        let mut progress = None;
        let res = stream.try_io(Interest::READABLE, || {
            let p =
                SCRATCH.with_borrow_mut(|scratch| self.read_and_handle(stream, scratch, shared))?;
            let drained = matches!(p, Progress::Drained);
            progress = Some(p);
            // A short read emptied the socket: `WouldBlock` makes tokio clear its readiness
            // (unless an event came in meanwhile) so the next wait does not cost an EAGAIN read.
            if drained {
                Err(io::ErrorKind::WouldBlock.into())
            } else {
                Ok(())
            }
        });
        match res {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
            Err(err) => return Err(End::Io(err)),
        }
        match progress {
            Some(Progress::Ended(end)) => Err(end),
            _ => Ok(()),
        }
    }

    /// One `read()` into `scratch` (after the kept partial frame), then every complete frame.
    fn read_and_handle(
        &mut self,
        stream: &TcpStream,
        scratch: &mut Vec<u8>,
        shared: &Shared,
    ) -> io::Result<Progress> {
        let kept = self.pending.len();
        if scratch.len() < kept + SCRATCH_BYTES / 2 {
            scratch.resize((kept + SCRATCH_BYTES / 2).next_power_of_two(), 0);
        }
        scratch[..kept].copy_from_slice(&self.pending);
        let n = stream.try_read(&mut scratch[kept..])?;
        if n == 0 {
            return Ok(Progress::Ended(End::Eof));
        }
        let end = kept + n;
        let now = stats::now_ns();
        let (used, ended) = self.handle_frames(&scratch[..end], now, shared);
        if let Some(ended) = ended {
            return Ok(Progress::Ended(ended));
        }
        self.pending.clear();
        self.pending.extend_from_slice(&scratch[used..end]);
        Ok(if end < scratch.len() {
            Progress::Drained
        } else {
            Progress::Full
        })
    }

    /// Handles the complete frames at the start of `buf`; returns the bytes used.
    fn handle_frames(&mut self, buf: &[u8], now: u64, shared: &Shared) -> (usize, Option<End>) {
        let window = shared.window();
        let mut batch = Batch::default();
        let mut used = 0;
        let ended = stats::with_local_histogram(|hist| {
            let mut t = Text {
                now,
                window,
                batch: &mut batch,
                hist,
            };
            loop {
                let header = match ws::parse_header(&buf[used..]) {
                    Ok(Some(h)) if h.frame_len() <= buf.len() - used => h,
                    Ok(_) => return None,
                    Err(err) => return Some(End::Frame(err)),
                };
                let payload = &buf[used + header.header_len..used + header.frame_len()];
                used += header.frame_len();
                if let Err(end) = self.handle_frame(header, payload, &mut t) {
                    return Some(end);
                }
            }
        });
        shared.apply(&batch);
        (used, ended)
    }

    fn handle_frame(&mut self, h: ws::Header, payload: &[u8], t: &mut Text<'_>) -> Result<(), End> {
        match h.opcode {
            ws::OP_TEXT | ws::OP_BINARY if self.fragment.is_some() => {
                Err(End::Frame(ws::FrameError::UnknownOpcode))
            }
            ws::OP_TEXT if h.fin => self.on_text(payload, t),
            ws::OP_BINARY if h.fin => Ok(()),
            ws::OP_TEXT | ws::OP_BINARY => {
                self.fragment = Some((h.opcode, payload.to_vec()));
                Ok(())
            }
            ws::OP_CONTINUATION => {
                let Some((_, bytes)) = self.fragment.as_mut() else {
                    return Err(End::Frame(ws::FrameError::UnknownOpcode));
                };
                if bytes.len() + payload.len() > ws::MAX_FRAME_BYTES {
                    return Err(End::Frame(ws::FrameError::TooLarge));
                }
                bytes.extend_from_slice(payload);
                if h.fin
                    && let Some((opcode, message)) = self.fragment.take()
                    && opcode == ws::OP_TEXT
                {
                    return self.on_text(&message, t);
                }
                Ok(())
            }
            ws::OP_CLOSE => {
                let code = payload.get(..2).map(|c| u16::from_be_bytes([c[0], c[1]]));
                let reason = String::from_utf8_lossy(payload.get(2..).unwrap_or_default());
                Err(End::Close {
                    code,
                    reason: reason.into_owned(),
                })
            }
            ws::OP_PING => {
                ws::encode_masked(&mut self.replies, ws::OP_PONG, payload, MASK);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn on_text(&mut self, text: &[u8], t: &mut Text<'_>) -> Result<(), End> {
        if let Some(sio) = self.sio.as_deref_mut() {
            if let Some(publication) = publication::scan_sio(text) {
                count(&mut self.last_offset, publication, t);
                return Ok(());
            }
            t.batch.slow_path += 1;
            match sio.client.on_text(text, &sio.frames, &mut self.replies) {
                Ok(sio::Event::Nothing) => {}
                Ok(sio::Event::Joined(result)) => self.ack = Some(result),
                Ok(sio::Event::Publication(p)) => count(&mut self.last_offset, p, t),
                Err(why) => return Err(End::SocketIo(why)),
            }
            return Ok(());
        }
        if let Some(publication) = publication::scan(text) {
            self.on_publication(publication, t);
            return Ok(());
        }
        t.batch.slow_path += 1;
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(text) else {
            return Ok(());
        };
        match value.get("push").and_then(|p| p.as_str()) {
            Some("publication") => {
                if let Some(publication) = publication::from_value(&value) {
                    self.on_publication(publication, t);
                }
            }
            Some("ping") => {
                ws::encode_masked(&mut self.replies, ws::OP_TEXT, br#"{"cmd":"pong"}"#, MASK)
            }
            Some("disconnect") => self.disconnect_push = Some(value.to_string()),
            Some(_) => {}
            None if value.get("id").and_then(|id| id.as_u64()) == Some(SUBSCRIBE_ID) => {
                self.ack = Some(match (value.get("result"), value.get("error")) {
                    (Some(result), _) => {
                        self.last_offset = result.get("offset").and_then(|o| o.as_u64());
                        Ok(())
                    }
                    (None, Some(error)) => Err(error.to_string()),
                    (None, None) => Err(value.to_string()),
                });
            }
            None => {}
        }
        Ok(())
    }

    fn on_publication(&mut self, p: Publication, t: &mut Text<'_>) {
        count(&mut self.last_offset, p, t);
    }
}

/// Counts a publication received on a connection whose last offset (or sequence number) was
/// `last_offset`: a gap, a reordering, a delivery in the window and its latency.
fn count(last_offset: &mut Option<u64>, p: Publication, t: &mut Text<'_>) {
    match *last_offset {
        Some(last) if last.checked_add(1) == Some(p.offset) => {}
        Some(last) if p.offset > last => t.batch.gaps += p.offset - last - 1,
        Some(_) => t.batch.reordered += 1,
        None => {}
    }
    *last_offset = Some(last_offset.map_or(p.offset, |last| last.max(p.offset)));
    t.batch.delivered_total += 1;
    let (start, end) = t.window;
    if (start..end).contains(&p.sent_ns) {
        t.batch.delivered_in_window += 1;
        stats::record_latency(t.hist, t.now.saturating_sub(p.sent_ns));
    }
}

/// What handling a text frame needs besides the connection.
struct Text<'a> {
    now: u64,
    window: (u64, u64),
    batch: &'a mut Batch,
    hist: &'a mut Histogram<u64>,
}

/// Writes all of `buf` through a shared reference (the reader holds the stream too).
pub(crate) async fn write_all(stream: &TcpStream, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        stream.writable().await?;
        match stream.try_write(buf) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => buf = &buf[n..],
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
