//! One Engine.IO session: a single task that owns its transport (polling requests arrive as
//! [`Input`]s; a WebSocket is read and written directly), the WebSocket being probed during
//! an upgrade, the heartbeat, and every Socket.IO socket of the connection (`socket.rs`).
//!
//! All the connection's sockets share one hub [`Outbox`]: one bounded queue, one order, one
//! wake-up. Over WebSocket the task drains it whenever it wakes; over polling only while a
//! GET waits, so what a polling client has not asked for yet stays in the bounded outbox and
//! a client that stops polling overflows it and is dropped as a slow consumer.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use bytes::Bytes;
use switchboard_core::{Delivery, Disconnect, Outbox};
use switchboard_socketio::{
    engineio::{Frame, Handshake, Packet, join_payload},
    socketio::Decoder,
};
use switchboard_websocket::{Message as WsMessage, OpCode, encode_frame};
use tokio::{
    sync::{mpsc, oneshot},
    time::Instant,
};

use super::{
    Input, SocketIo,
    engine::{EngineError, Opening, TRANSPORT},
    link::{Link, Read},
    socket::Sockets,
};
use crate::{
    auth::Authenticated, hooks::ForwardedHeaders, metrics::ConnectionGauge,
    server::ConnectionPermit, state::AppState,
};

/// How long a write to a WebSocket may stay blocked before the client is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// How the session goes on after handling something.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Flow {
    Continue,
    /// End the session; `reason` for the log.
    Close(&'static str),
}

/// The session's current transport.
enum Transport {
    Polling {
        /// The GET waiting for the next payload.
        waiting: Option<oneshot::Sender<Result<Bytes, EngineError>>>,
        /// Packets (in polling text form) for the next GET.
        buffer: Vec<Bytes>,
    },
    WebSocket(Link),
}

pub(crate) struct Session {
    pub(super) app: AppState,
    pub(super) sio: Arc<SocketIo>,
    pub(super) sid: Arc<str>,
    tx: mpsc::Sender<Input>,
    rx: mpsc::Receiver<Input>,
    /// `/engine.io/` in conformance mode: messages are echoed, there is no Socket.IO layer.
    raw: bool,
    transport: Transport,
    /// A WebSocket being probed for an upgrade, and until when it may take.
    probe: Option<(Link, Instant)>,
    next_ping: Instant,
    pong_deadline: Option<Instant>,
    pub(super) outbox: Arc<Outbox>,
    pub(super) decoder: Decoder,
    pub(super) sockets: Sockets,
    pub(super) peer: SocketAddr,
    /// Who the handshake request's token says the client is.
    pub(super) handshake_token: Option<String>,
    pub(super) handshake_auth: Option<Authenticated>,
    /// The handshake's headers for the connect hook (when it is on).
    pub(super) forwarded: Option<ForwardedHeaders>,
    batch: Vec<Delivery>,
    /// Events forwarded to the backend, waiting for its answer.
    pub(super) forwards: futures_util::stream::FuturesUnordered<super::socket::ForwardCall>,
    _gauge: ConnectionGauge,
    _permit: Option<ConnectionPermit>,
}

async fn readable(link: Option<&Link>) -> std::io::Result<()> {
    match link {
        Some(l) => l.readable().await,
        None => std::future::pending().await,
    }
}

async fn ready(outbox: &Outbox, wanted: bool) {
    if wanted {
        outbox.notified().await;
    } else {
        std::future::pending().await
    }
}

impl Session {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        app: &AppState,
        sio: &Arc<SocketIo>,
        tx: mpsc::Sender<Input>,
        rx: mpsc::Receiver<Input>,
        opening: Opening,
        token: Option<String>,
        raw: bool,
        link: Option<Link>,
    ) -> Option<Self> {
        let sid: Arc<str> = Arc::from(switchboard_core::ClientId::random().as_str());
        if !sio.add_session(sid.clone(), tx.clone()) {
            return None;
        }
        let now = Instant::now();
        let transport = match link {
            Some(l) => Transport::WebSocket(l),
            None => Transport::Polling {
                waiting: None,
                buffer: Vec::new(),
            },
        };
        let forwarded = if token.is_none() {
            app.hooks.forwarded(&opening.headers)
        } else {
            None
        };
        let connect_timeout = Duration::from_millis(sio.config.connect_timeout_ms.max(1));
        Some(Self {
            app: app.clone(),
            sio: sio.clone(),
            sid,
            tx,
            rx,
            raw,
            transport,
            probe: None,
            next_ping: now + sio.ping_interval(),
            pong_deadline: None,
            outbox: app.hub.new_outbox(),
            decoder: Decoder::new(sio.limits),
            sockets: Sockets::new(now + connect_timeout),
            peer: opening.peer,
            handshake_token: token,
            handshake_auth: None,
            forwarded,
            batch: Vec::new(),
            forwards: futures_util::stream::FuturesUnordered::new(),
            _gauge: ConnectionGauge::new(&app.metrics, TRANSPORT),
            _permit: opening.permit,
        })
    }

    /// The open packet's text (`0{"sid":…}`).
    pub(super) fn handshake_text(&self, transport: &str) -> Bytes {
        let upgrades = if transport == "polling" {
            vec!["websocket".to_owned()]
        } else {
            Vec::new()
        };
        Packet::Open(Handshake {
            sid: self.sid.to_string(),
            upgrades,
            ping_interval: self.sio.ping_interval(),
            ping_timeout: self.sio.ping_timeout(),
            max_payload_bytes: self.sio.config.max_payload_bytes as u64,
        })
        .to_text()
    }

    /// The transport's name, for the server API.
    pub(super) fn transport_name(&self) -> &'static str {
        match self.transport {
            Transport::Polling { .. } => "polling",
            Transport::WebSocket(_) => "websocket",
        }
    }

    /// The session's inbox, for the socket registry.
    pub(super) fn inbox(&self) -> mpsc::Sender<Input> {
        self.tx.clone()
    }

    pub(super) async fn run(mut self) {
        let flow = self.start().await;
        let flow = match flow {
            Flow::Continue => self.main_loop().await,
            other => other,
        };
        self.finish(flow).await;
    }

    async fn start(&mut self) -> Flow {
        if let Transport::WebSocket(link) = &mut self.transport {
            let open = Packet::Open(Handshake {
                sid: self.sid.to_string(),
                upgrades: Vec::new(),
                ping_interval: self.sio.ping_interval(),
                ping_timeout: self.sio.ping_timeout(),
                max_payload_bytes: self.sio.config.max_payload_bytes as u64,
            });
            link.out.push(ws_frame(&open));
            if link.has_buffered() {
                return self.on_ws_readable().await;
            }
        }
        Flow::Continue
    }

    async fn main_loop(&mut self) -> Flow {
        let shutdown = self.app.shutdown.clone();
        // One timer for the session, moved only when its deadline changes (not per wake-up).
        let timer = tokio::time::sleep_until(self.next_deadline());
        tokio::pin!(timer);
        loop {
            if let Transport::WebSocket(link) = &mut self.transport
                && let Err(e) = link.flush(WRITE_TIMEOUT).await
            {
                if e.kind() == std::io::ErrorKind::TimedOut {
                    self.slow_consumer();
                }
                return Flow::Close("websocket write failed or timed out");
            }
            if let Some((probe, _)) = &mut self.probe
                && probe.flush(WRITE_TIMEOUT).await.is_err()
            {
                self.probe = None;
            }
            self.answer_get();
            let deadline = self.next_deadline();
            if timer.deadline() != deadline {
                timer.as_mut().reset(deadline);
            }
            let link = match &self.transport {
                Transport::WebSocket(l) => Some(l),
                Transport::Polling { .. } => None,
            };
            let wants = self.wants_deliveries();
            let outbox = self.outbox.clone();
            let flow = tokio::select! {
                input = self.rx.recv() => match input {
                    Some(i) => self.on_input(i).await,
                    None => Flow::Close("inbox closed"),
                },
                r = readable(link) => match r {
                    Ok(()) => self.on_ws_readable().await,
                    Err(_) => Flow::Close("transport closed"),
                },
                r = readable(self.probe.as_ref().map(|(l, _)| l)) => match r {
                    Ok(()) => self.on_probe_readable().await,
                    Err(_) => { self.probe = None; Flow::Continue }
                },
                () = ready(&outbox, wants) => self.on_outbox(),
                Some(f) = futures_util::StreamExt::next(&mut self.forwards), if !self.forwards.is_empty() => {
                    self.on_forwarded(f).await
                },
                () = &mut timer => self.on_timer().await,
                // Sockets hear of a shutdown through the outbox (the hub closes it).
                () = shutdown.cancelled(), if self.sockets.is_empty() => {
                    Flow::Close("server shutting down")
                },
            };
            if flow != Flow::Continue {
                return flow;
            }
        }
    }

    fn wants_deliveries(&self) -> bool {
        // Polling sessions take deliveries as they come too, so the polling buffer's bound
        // (`max_buffered_packets`) is what drops a client that stopped polling.
        true
    }

    fn next_deadline(&self) -> Instant {
        let mut at = self.next_ping;
        if let Some(p) = self.pong_deadline {
            at = at.min(p);
        }
        if let Some((_, until)) = &self.probe {
            at = at.min(*until);
        }
        if let Some(c) = self.sockets.deadline() {
            at = at.min(c);
        }
        if let Some(e) = self.next_expiry() {
            at = at.min(e);
        }
        at
    }

    async fn on_timer(&mut self) -> Flow {
        let now = Instant::now();
        if self.pong_deadline.is_some_and(|d| d <= now) {
            return Flow::Close("ping timeout");
        }
        if self.probe.as_ref().is_some_and(|(_, until)| *until <= now)
            && let Some((probe, _)) = self.probe.take()
        {
            probe.close(1000, "upgrade timeout").await;
        }
        if self.sockets.connect_expired(now) {
            // No namespace was joined in time: the reference server closes the connection.
            return Flow::Close("connect timeout");
        }
        self.sockets.expire_acks(now);
        self.expire_tokens();
        if self.next_ping <= now {
            self.send(&Packet::ping());
            self.next_ping = now + self.sio.ping_interval();
            if self.pong_deadline.is_none() {
                self.pong_deadline = Some(now + self.sio.ping_timeout());
            }
        }
        Flow::Continue
    }

    async fn on_input(&mut self, input: Input) -> Flow {
        match input {
            Input::Get(reply) => {
                let Transport::Polling { waiting, buffer } = &mut self.transport else {
                    let _ = reply.send(Err(EngineError::BadRequest));
                    return Flow::Continue;
                };
                if let Some(first) = waiting.take() {
                    // Two GETs at once: the reference server ends the session.
                    buffer.push(Packet::Close.to_text());
                    let _ = first.send(Ok(join_payload(buffer.iter())));
                    buffer.clear();
                    let _ = reply.send(Err(EngineError::BadRequest));
                    self.app.metrics.error(TRANSPORT, "concurrent_get");
                    return Flow::Close("concurrent polling GET");
                }
                *waiting = Some(reply);
                // Take what the hub queued while nobody asked.
                self.on_outbox()
            }
            Input::Post(post) => {
                let (packets, reply) = *post;
                let polling = matches!(self.transport, Transport::Polling { .. });
                if let Some(reply) = reply {
                    // After the upgrade the polling transport is gone (the reference server
                    // answers 400 too).
                    let _ = reply.send(if polling {
                        Ok(())
                    } else {
                        Err(EngineError::BadRequest)
                    });
                }
                if !polling {
                    self.app.metrics.error(TRANSPORT, "post_after_upgrade");
                    return Flow::Continue;
                }
                for p in packets {
                    if matches!(p, Packet::Close)
                        && let Transport::Polling { waiting, .. } = &mut self.transport
                        && let Some(w) = waiting.take()
                    {
                        // The client closes: its pending GET ends with a noop.
                        let _ = w.send(Ok(Packet::Noop.to_text()));
                    }
                    let flow = self.on_packet(p).await;
                    if flow != Flow::Continue {
                        return flow;
                    }
                }
                Flow::Continue
            }
            Input::Upgrade(upgrade) => {
                let (conn, leftover) = *upgrade;
                let link = Link::new(conn, leftover, self.sio.config.max_payload_bytes);
                if !matches!(self.transport, Transport::Polling { .. }) || self.probe.is_some() {
                    self.app.metrics.error(TRANSPORT, "bad_upgrade");
                    link.close(1008, "this session cannot upgrade").await;
                    return Flow::Continue;
                }
                let until = Instant::now()
                    + Duration::from_millis(self.sio.config.upgrade_timeout_ms.max(1));
                self.probe = Some((link, until));
                if self.probe.as_ref().is_some_and(|(l, _)| l.has_buffered()) {
                    return self.on_probe_readable().await;
                }
                Flow::Continue
            }
            Input::Control(c) => self.on_control(*c).await,
        }
    }

    async fn on_ws_readable(&mut self) -> Flow {
        let Transport::WebSocket(link) = &mut self.transport else {
            return Flow::Continue;
        };
        let mut messages = Vec::new();
        let read = link.read(&mut messages);
        let flow = self.on_ws_messages(messages).await;
        if flow != Flow::Continue {
            return flow;
        }
        match read {
            Read::Messages => Flow::Continue,
            Read::Closed => Flow::Close("transport closed"),
            Read::Error(code, reason) => {
                self.app.metrics.error(TRANSPORT, "websocket_protocol");
                tracing::info!(peer = %self.peer, code, reason, "engine.io websocket protocol error");
                if let Transport::WebSocket(link) = std::mem::replace(
                    &mut self.transport,
                    Transport::Polling {
                        waiting: None,
                        buffer: Vec::new(),
                    },
                ) {
                    link.close(code, &reason).await;
                }
                Flow::Close("websocket protocol error")
            }
        }
    }

    /// Reads the WebSocket being probed: `2probe` is answered `3probe`; `5` completes the
    /// upgrade (the pending GET gets a noop, the buffer moves to the WebSocket).
    async fn on_probe_readable(&mut self) -> Flow {
        let Some((link, _)) = &mut self.probe else {
            return Flow::Continue;
        };
        let mut messages = Vec::new();
        let read = link.read(&mut messages);
        let mut after_upgrade = None;
        let mut messages = messages.into_iter();
        for m in messages.by_ref() {
            match ws_packet(m, self.sio.config.max_payload_bytes) {
                Ok(p) if p.is_probe() && matches!(p, Packet::Ping(_)) => {
                    link.out.push(ws_frame(&Packet::Pong(Packet::PROBE.into())));
                    // Let the client's pending GET end so it can pause polling.
                    if let Transport::Polling { buffer, .. } = &mut self.transport {
                        buffer.push(Packet::Noop.to_text());
                    }
                }
                Ok(Packet::Upgrade) => {
                    after_upgrade = Some(());
                    break;
                }
                Ok(_) | Err(_) => {
                    self.app.metrics.error(TRANSPORT, "bad_probe");
                    if let Some((l, _)) = self.probe.take() {
                        l.close(1008, "invalid upgrade").await;
                    }
                    return Flow::Continue;
                }
            }
        }
        if after_upgrade.is_none() {
            return match read {
                Read::Messages => Flow::Continue,
                Read::Closed | Read::Error(..) => {
                    self.probe = None;
                    Flow::Continue
                }
            };
        }
        let Some((link, _)) = self.probe.take() else {
            return Flow::Continue;
        };
        self.app.metrics.socketio_upgrades.inc();
        let old = std::mem::replace(&mut self.transport, Transport::WebSocket(link));
        if let Transport::Polling { waiting, buffer } = old {
            if let Some(w) = waiting {
                let _ = w.send(Ok(Packet::Noop.to_text()));
            }
            // What polling had not delivered goes over the WebSocket, in order.
            if let Transport::WebSocket(link) = &mut self.transport {
                for segment in buffer {
                    if let Some(frame) = polling_segment_to_ws(&segment) {
                        link.out.push(frame);
                    }
                }
            }
        }
        self.upgraded();
        // Packets the client sent right after the upgrade packet, in the same read.
        let flow = self.on_ws_messages(messages.collect()).await;
        if flow != Flow::Continue {
            return flow;
        }
        match read {
            Read::Messages => Flow::Continue,
            Read::Closed => Flow::Close("transport closed"),
            Read::Error(..) => Flow::Close("websocket protocol error"),
        }
    }

    /// Handles WebSocket data messages as Engine.IO packets, in order.
    async fn on_ws_messages(&mut self, messages: Vec<WsMessage>) -> Flow {
        for m in messages {
            let packet = match ws_packet(m, self.sio.config.max_payload_bytes) {
                Ok(p) => p,
                Err(e) => {
                    self.protocol_error(&e);
                    return Flow::Close("malformed engine.io packet");
                }
            };
            let flow = self.on_packet(packet).await;
            if flow != Flow::Continue {
                return flow;
            }
        }
        Flow::Continue
    }

    pub(super) fn protocol_error(&self, e: &dyn std::fmt::Display) {
        self.app.metrics.error(TRANSPORT, "malformed_packet");
        tracing::info!(peer = %self.peer, sid = %self.sid, error = %e, "malformed engine.io/socket.io packet; closing the session");
    }

    async fn on_packet(&mut self, packet: Packet) -> Flow {
        match packet {
            Packet::Pong(_) => {
                self.pong_deadline = None;
                Flow::Continue
            }
            Packet::Message(m) => {
                if self.raw {
                    self.send(&Packet::Message(m));
                    Flow::Continue
                } else {
                    self.on_message(m).await
                }
            }
            Packet::Close => Flow::Close("client closed"),
            Packet::Noop => Flow::Continue,
            Packet::Ping(_) | Packet::Open(_) | Packet::Upgrade => {
                self.protocol_error(&"unexpected packet type from the client");
                Flow::Close("unexpected packet")
            }
        }
    }

    /// Queues a packet built for this session only.
    pub(super) fn send(&mut self, packet: &Packet) {
        match &mut self.transport {
            Transport::WebSocket(link) => link.out.push(ws_frame(packet)),
            Transport::Polling { buffer, .. } => buffer.push(packet.to_text()),
        }
    }

    /// Queues Socket.IO frames already encoded: the WebSocket bytes (frame headers
    /// included) or the polling segment.
    pub(super) fn send_encoded(
        &mut self,
        ws: impl FnOnce() -> Bytes,
        polling: impl FnOnce() -> Bytes,
    ) {
        match &mut self.transport {
            Transport::WebSocket(link) => {
                let b = ws();
                if !b.is_empty() {
                    link.out.push(b);
                }
            }
            Transport::Polling { buffer, .. } => {
                let b = polling();
                if !b.is_empty() {
                    buffer.push(b);
                }
            }
        }
    }

    pub(super) fn get_waiting(&self) -> bool {
        matches!(
            &self.transport,
            Transport::Polling {
                waiting: Some(_),
                ..
            }
        )
    }

    pub(super) fn is_websocket(&self) -> bool {
        matches!(self.transport, Transport::WebSocket(_))
    }

    /// Answers the waiting GET when there is something to send.
    fn answer_get(&mut self) {
        if let Transport::Polling { waiting, buffer } = &mut self.transport
            && !buffer.is_empty()
            && let Some(w) = waiting.take()
        {
            let body = join_payload(buffer.iter());
            buffer.clear();
            if buffer.capacity() > 64 {
                buffer.shrink_to(8);
            }
            if let Err(Ok(_)) = w.send(Ok(body)) {
                // The GET went away (the client timed out or left): what it carried is lost
                // for this session, as with the reference server.
                tracing::debug!(sid = %self.sid, "polling GET gone before its answer");
            }
        }
    }

    /// Over the polling buffer's bound: a slow consumer.
    fn buffer_full(&self) -> bool {
        match &self.transport {
            Transport::Polling { buffer, .. } => {
                buffer.len() > self.sio.config.max_buffered_packets
            }
            Transport::WebSocket(_) => false,
        }
    }

    fn on_outbox(&mut self) -> Flow {
        let mut batch = std::mem::take(&mut self.batch);
        let closed = self.outbox.drain(&mut batch);
        for d in batch.drain(..) {
            self.deliver(&d);
        }
        self.batch = batch;
        if self.buffer_full() {
            self.slow_consumer();
            return Flow::Close("slow consumer (polling buffer full)");
        }
        match closed {
            None => Flow::Continue,
            Some(Disconnect::SlowConsumer) => {
                self.slow_consumer();
                Flow::Close("slow consumer")
            }
            Some(Disconnect::Shutdown) => Flow::Close("server shutting down"),
            Some(_) => Flow::Close("disconnected by the server"),
        }
    }

    /// Counts a client dropped for falling behind.
    fn slow_consumer(&self) {
        self.app.metrics.error(TRANSPORT, "slow_consumer");
        self.app
            .metrics
            .slow_consumer_disconnects
            .get_or_create(&crate::metrics::TransportLabel {
                transport: TRANSPORT,
            })
            .inc();
    }

    async fn finish(mut self, flow: Flow) {
        let Flow::Close(reason) = flow else { return };
        tracing::debug!(sid = %self.sid, peer = %self.peer, reason, "engine.io session closed");
        self.sio.remove_session(&self.sid);
        // Sockets still connected when the connection ends may be recovered (sockets that
        // disconnected from their namespace are gone already), as with the reference server.
        self.disconnect_all(reason, true);
        if let Some((probe, _)) = self.probe.take() {
            probe.close(1000, "").await;
        }
        match std::mem::replace(
            &mut self.transport,
            Transport::Polling {
                waiting: None,
                buffer: Vec::new(),
            },
        ) {
            Transport::WebSocket(link) => link.close(1000, "").await,
            Transport::Polling {
                waiting,
                mut buffer,
            } => {
                buffer.push(Packet::Close.to_text());
                if let Some(w) = waiting {
                    let _ = w.send(Ok(join_payload(buffer.iter())));
                } else {
                    // A GET that arrives before the session is gone gets the close packet.
                    while let Ok(input) = self.rx.try_recv() {
                        if let Input::Get(w) = input {
                            let _ = w.send(Ok(join_payload(buffer.iter())));
                            break;
                        }
                    }
                }
            }
        }
    }
}

/// An Engine.IO packet as one WebSocket frame (header included).
pub(super) fn ws_frame(packet: &Packet) -> Bytes {
    match packet.to_frame() {
        Frame::Text(t) => encode_frame(OpCode::Text, &t, false),
        Frame::Binary(b) => encode_frame(OpCode::Binary, &b, false),
    }
}

/// WebSocket frames for Engine.IO messages (header included), concatenated.
pub(super) fn ws_frames(frames: &[Frame]) -> Bytes {
    match frames {
        [Frame::Text(t)] => encode_frame(OpCode::Text, t, false),
        [Frame::Binary(b)] => encode_frame(OpCode::Binary, b, false),
        many => {
            let mut out = bytes::BytesMut::new();
            for f in many {
                match f {
                    Frame::Text(t) => {
                        switchboard_websocket::encode_frame_into(&mut out, OpCode::Text, t, false)
                    }
                    Frame::Binary(b) => {
                        switchboard_websocket::encode_frame_into(&mut out, OpCode::Binary, b, false)
                    }
                }
            }
            out.freeze()
        }
    }
}

fn ws_packet(
    m: WsMessage,
    max: usize,
) -> Result<Packet, switchboard_socketio::engineio::PacketError> {
    match m {
        WsMessage::Text(t) => Packet::decode(Frame::Text(t), max),
        WsMessage::Binary(b) => Packet::decode(Frame::Binary(b), max),
        // Control frames are handled by the link.
        _ => Ok(Packet::Noop),
    }
}

/// A packet buffered in polling form, re-framed for the WebSocket after an upgrade.
fn polling_segment_to_ws(segment: &Bytes) -> Option<Bytes> {
    // A segment may hold several packets (a binary event and its attachments).
    let packets =
        switchboard_socketio::engineio::decode_payload(segment.clone(), usize::MAX).ok()?;
    let mut out = bytes::BytesMut::new();
    for p in packets {
        if matches!(p, Packet::Noop) {
            continue;
        }
        out.extend_from_slice(&ws_frame(&p));
    }
    (!out.is_empty()).then(|| out.freeze())
}
