//! The connection task: the one task that owns the WebSocket, started by
//! [`Client::connect`](crate::Client::connect) and driven by [`Instruction`]s from the handles.
//!
//! It selects over the socket, the bounded instruction queue, the silence timer, a sweep
//! tick that expires deadlines, lagging subscriptions getting buffer space back, token
//! fetches, and cancellation. It reconnects with backoff after a drop and resubscribes every
//! subscription with `since` = the last publication it buffered. It never waits for a
//! reader: deliveries are `try_send`s into bounded buffers, and a full buffer turns into an
//! unsubscribe and a later resubscription with recovery (`connection/subscriptions.rs`).
//! Connection tokens — sent in `connect`, renewed on a `refresh` push, fetched again after
//! close 4003 — are handled in `connection/tokens.rs`, opening a connection in
//! `connection/handshake.rs`; what follows a close is decided by [`after_close`].
//!
//! Handlers are synchronous: they update state and queue frames in `out`; the loop writes
//! `out` to the socket between events, with a deadline. Token functions run as futures the
//! task owns and polls beside the socket, never awaited inside a handler.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, OnceLock},
    time::Duration,
};

use futures_util::{
    SinkExt, StreamExt,
    future::{BoxFuture, OptionFuture},
    stream::{FuturesUnordered, SplitSink, SplitStream},
};
use tokio::{
    net::TcpStream,
    sync::{broadcast, mpsc, oneshot, watch},
    time::{Instant, MissedTickBehavior},
};
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream,
    tungstenite::{
        Message,
        protocol::{CloseFrame, frame::coding::CloseCode},
    },
};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

mod handshake;
mod subscriptions;
mod tokens;

use subscriptions::{Phase, SubEntry, SubscriptionToken, end_subscription};
use tokens::ConnectionToken;

use crate::{
    client::UserMessage,
    close::{AfterClose, after_close, close_code},
    error::ClientError,
    history::HistoryOptions,
    options::ClientOptions,
    publication::Data,
    state::{ConnectionState, Disconnect},
    subscription::{SubscribeCause, SubscribeOrder, SubscriptionEvent},
    wire::{self, Command, DisconnectPush, Incoming, Push, ReplyBody},
};

/// How often deadlines of queued and in-flight requests are checked. A request's caller
/// gets its timeout at its deadline regardless; this only bounds how long an abandoned
/// entry stays in the task's maps.
const SWEEP_PERIOD: Duration = Duration::from_millis(250);
/// How long a graceful close waits for the server's close frame.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// Most instructions handled before the queued frames are written (batching writes).
const INSTRUCTION_BATCH: usize = 64;
/// Upper bound accepted for the server's `ping_interval`.
const MAX_PING_INTERVAL: Duration = Duration::from_secs(24 * 60 * 60);

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What a handle asks of the connection task.
#[derive(Debug)]
pub(crate) enum Instruction {
    /// A request with a reply.
    Request {
        request: Request,
        reply: oneshot::Sender<Result<ReplyBody, ClientError>>,
        deadline: Instant,
    },
    /// Start a subscription.
    Subscribe(SubscribeOrder),
    /// End the subscription `generation` of `channel`.
    Unsubscribe {
        channel: String,
        generation: u64,
        reply: Option<oneshot::Sender<Result<(), ClientError>>>,
        deadline: Instant,
    },
    /// Drop the socket without a close frame, as a network failure would (tests).
    DropConnection,
}

/// A request whose reply goes back to the caller as is.
#[derive(Debug)]
pub(crate) enum Request {
    Publish {
        channel: String,
        data: Data,
    },
    Presence {
        channel: String,
    },
    PresenceCount {
        channel: String,
    },
    History {
        channel: String,
        options: HistoryOptions,
    },
    Rpc {
        method: String,
        data: Data,
    },
    Ping,
}

impl Request {
    fn command(&self) -> Command<'_> {
        match self {
            Self::Publish { channel, data } => Command::Publish { channel, data },
            Self::Presence { channel } => Command::Presence { channel },
            Self::PresenceCount { channel } => Command::PresenceCount { channel },
            Self::History { channel, options } => Command::History { channel, options },
            Self::Rpc { method, data } => Command::Rpc { method, data },
            Self::Ping => Command::Ping,
        }
    }
}

/// The channels the task shares with the handles.
pub(crate) struct Wiring {
    pub(crate) instructions: mpsc::Receiver<Instruction>,
    pub(crate) state: watch::Sender<ConnectionState>,
    pub(crate) messages: broadcast::Sender<UserMessage>,
    pub(crate) end: Arc<OnceLock<ClientError>>,
    pub(crate) token: CancellationToken,
}

/// The connection task's state.
pub(crate) struct Connection {
    url: String,
    options: ClientOptions,
    /// The TLS configuration, for `wss` URLs.
    tls: Option<Arc<rustls::ClientConfig>>,
    /// The connection token and its renewal. A credential: never logged.
    auth: ConnectionToken,
    instructions: mpsc::Receiver<Instruction>,
    state: watch::Sender<ConnectionState>,
    messages: broadcast::Sender<UserMessage>,
    end: Arc<OnceLock<ClientError>>,
    token: CancellationToken,
    /// Subscriptions by channel (one per channel per connection, as on the server).
    subs: HashMap<String, SubEntry>,
    /// Commands sent on the current connection and waiting for their reply, by id.
    /// Bounded by `max_in_flight` (the handles' semaphore) plus abandoned entries that the
    /// next sweep removes.
    pending: HashMap<u64, Pending>,
    /// Requests made while offline, sent after the next connect. Bounded like `pending`.
    queued: VecDeque<QueuedRequest>,
    /// Lagging subscriptions, each resolving when its reader freed half its buffer.
    /// At most one per subscription.
    lagged: FuturesUnordered<BoxFuture<'static, (String, u64)>>,
    /// Subscription token functions being called, at most one per subscription (in
    /// `Phase::Fetching`). Dropped, which cancels them, when the connection ends.
    sub_tokens: FuturesUnordered<BoxFuture<'static, SubscriptionToken>>,
    /// Frames to write before the next wait.
    out: Vec<Message>,
    online: bool,
    next_id: u64,
}

enum Pending {
    Request {
        reply: oneshot::Sender<Result<ReplyBody, ClientError>>,
        deadline: Instant,
    },
    Subscribe {
        channel: String,
        generation: u64,
    },
    Unsubscribe {
        reply: oneshot::Sender<Result<(), ClientError>>,
        deadline: Instant,
    },
    /// A `refresh` sent by the task itself.
    Refresh,
}

struct QueuedRequest {
    request: Request,
    reply: oneshot::Sender<Result<ReplyBody, ClientError>>,
    deadline: Instant,
}

/// An open, connected WebSocket.
struct Link {
    sink: SplitSink<Socket, Message>,
    stream: SplitStream<Socket>,
    ping_interval: Duration,
    /// The server's close frame, once received.
    close: Option<(u16, String)>,
    /// The server's `disconnect` push, once received.
    disconnect: Option<DisconnectPush>,
}

/// How a connection ended.
enum Ended {
    /// Dropped or closed with a code that allows reconnecting.
    Lost(Disconnect),
    /// Closed by the server for good.
    Terminated(ClientError, Disconnect),
    /// Closed by this client.
    Closed,
}

// === impl Connection: lifecycle ===

impl Connection {
    pub(crate) fn new(
        url: String,
        options: ClientOptions,
        tls: Option<Arc<rustls::ClientConfig>>,
        wiring: Wiring,
    ) -> Self {
        Self {
            url,
            options,
            tls,
            auth: ConnectionToken::default(),
            instructions: wiring.instructions,
            state: wiring.state,
            messages: wiring.messages,
            end: wiring.end,
            token: wiring.token,
            subs: HashMap::new(),
            pending: HashMap::new(),
            queued: VecDeque::new(),
            lagged: FuturesUnordered::new(),
            sub_tokens: FuturesUnordered::new(),
            out: Vec::new(),
            online: false,
            next_id: 1,
        }
    }

    /// Runs until the client is closed, the server closes for good, or the first connect
    /// fails (reported on `first`).
    pub(crate) async fn run(mut self, first: oneshot::Sender<Result<(), ClientError>>) {
        let mut first = Some(first);
        let mut attempt: u32 = 0;
        let cancel = self.token.clone();
        let (end, disconnect) = loop {
            self.state
                .send_replace(ConnectionState::Connecting { attempt });
            let opened = tokio::select! {
                // Not cancel-safe, and need not be: on cancellation the token call and the
                // half-open socket are dropped.
                opened = self.connect_once() => opened,
                () = cancel.cancelled() => break closed_by_client(),
            };
            let disconnect = match opened {
                Ok(mut link) => {
                    attempt = 0;
                    if let Some(first) = first.take() {
                        let _ = first.send(Ok(()));
                    }
                    self.on_connected();
                    match self.serve(&mut link).await {
                        Ended::Lost(disconnect) => disconnect,
                        Ended::Terminated(error, disconnect) => break (error, disconnect),
                        Ended::Closed => break closed_by_client(),
                    }
                }
                Err(error) => {
                    if let Some(first) = first.take() {
                        let (error, disconnect) = stopped(error);
                        self.finish(error.clone(), disconnect);
                        let _ = first.send(Err(error));
                        return;
                    }
                    match self.after_failed_connect(error) {
                        Ok(disconnect) => disconnect,
                        Err(stop) => break stop,
                    }
                }
            };
            self.on_connection_lost();
            let delay = self.options.backoff.delay(attempt);
            attempt = attempt.saturating_add(1);
            info!(code = ?disconnect.code, reason = %disconnect.reason, ?delay, "disconnected; reconnecting");
            self.state
                .send_replace(ConnectionState::Disconnected(disconnect));
            if !self.wait_offline(delay).await {
                break closed_by_client();
            }
        };
        self.finish(end, disconnect);
    }

    /// Serves one connection until it ends.
    async fn serve(&mut self, link: &mut Link) -> Ended {
        let token = self.token.clone();
        // A server that pings every `ping_interval` is dead after that plus the margin
        // without any frame; an interval of 0 means the server does not ping.
        let silence_limit =
            (!link.ping_interval.is_zero()).then(|| link.ping_interval + self.options.ping_margin);
        let silence = tokio::time::sleep(silence_limit.unwrap_or(MAX_PING_INTERVAL));
        tokio::pin!(silence);
        let mut sweep = tokio::time::interval(SWEEP_PERIOD);
        sweep.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            if let Err(reason) = self.flush(link).await {
                return Ended::Lost(Disconnect::new(None, reason, true));
            }
            tokio::select! {
                // Cancel-safe: a partially read frame stays buffered in the stream.
                message = link.stream.next() => match message {
                    Some(Ok(message)) => {
                        if let Some(limit) = silence_limit {
                            silence.as_mut().reset(Instant::now() + limit);
                        }
                        self.on_message(link, message);
                    }
                    Some(Err(error)) => return self.ended(link, format!("read failed: {error}")),
                    None => return self.ended(link, "connection closed".into()),
                },
                // Cancel-safe: `recv` loses nothing when dropped.
                instruction = self.instructions.recv() => {
                    let Some(instruction) = instruction else {
                        // Every handle and subscription was dropped.
                        self.close_gracefully(link).await;
                        return Ended::Closed;
                    };
                    let mut drop_now = self.on_instruction(instruction);
                    for _ in 1..INSTRUCTION_BATCH {
                        let Ok(instruction) = self.instructions.try_recv() else { break };
                        drop_now |= self.on_instruction(instruction);
                    }
                    if drop_now {
                        return Ended::Lost(Disconnect::new(
                            None,
                            "dropped by debug_drop_connection",
                            true,
                        ));
                    }
                }
                () = &mut silence, if silence_limit.is_some() => {
                    return Ended::Lost(Disconnect::new(
                        None,
                        format!("server silent for {:?}", silence_limit.unwrap_or_default()),
                        true,
                    ));
                }
                _ = sweep.tick() => self.sweep(),
                Some((channel, generation)) = self.lagged.next(), if !self.lagged.is_empty() => {
                    self.resume_lagged(&channel, generation);
                }
                // Cancel-safe: the call lives in `self.auth`, polled here by reference.
                Some(fetched) = OptionFuture::from(self.auth.refreshing.as_mut()),
                    if self.auth.refreshing.is_some() =>
                {
                    self.auth.refreshing = None;
                    self.on_refresh_token(fetched);
                }
                // Cancel-safe: the calls live in `self.sub_tokens`.
                Some(fetched) = self.sub_tokens.next(), if !self.sub_tokens.is_empty() => {
                    self.on_subscription_token(fetched);
                }
                () = token.cancelled() => {
                    self.close_gracefully(link).await;
                    return Ended::Closed;
                }
            }
        }
    }

    /// Waits `delay` before reconnecting, still taking instructions. Returns `false` when the
    /// client was closed meanwhile.
    async fn wait_offline(&mut self, delay: Duration) -> bool {
        let token = self.token.clone();
        let wake = tokio::time::sleep(delay);
        tokio::pin!(wake);
        let mut sweep = tokio::time::interval(SWEEP_PERIOD);
        sweep.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = &mut wake => return true,
                // Cancel-safe: `recv` loses nothing when dropped.
                instruction = self.instructions.recv() => match instruction {
                    Some(instruction) => {
                        self.on_instruction(instruction);
                    }
                    None => return false,
                },
                _ = sweep.tick() => self.sweep(),
                Some((channel, generation)) = self.lagged.next(), if !self.lagged.is_empty() => {
                    self.resume_lagged(&channel, generation);
                }
                () = token.cancelled() => return false,
            }
        }
    }

    /// Writes the queued frames, within `request_timeout` (a server that stops reading must
    /// not stall the task forever).
    async fn flush(&mut self, link: &mut Link) -> Result<(), String> {
        if self.out.is_empty() {
            return Ok(());
        }
        let mut frames = std::mem::take(&mut self.out);
        let write = async {
            for frame in frames.drain(..) {
                link.sink.feed(frame).await?;
            }
            link.sink.flush().await
        };
        let written = tokio::time::timeout(self.options.request_timeout, write).await;
        // Keep the allocation for the next batch.
        frames.clear();
        self.out = frames;
        match written {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(format!("write failed: {error}")),
            Err(_) => Err("write timed out: the server stopped reading".into()),
        }
    }

    async fn close_gracefully(&mut self, link: &mut Link) {
        let _ = self.flush(link).await;
        let close = async {
            link.sink
                .send(Message::Close(Some(CloseFrame {
                    code: CloseCode::Normal,
                    reason: "client closed".into(),
                })))
                .await?;
            // Read until the server's close frame ends the stream.
            while let Some(Ok(_)) = link.stream.next().await {}
            Ok::<(), tokio_tungstenite::tungstenite::Error>(())
        };
        if let Ok(Err(error)) = tokio::time::timeout(CLOSE_TIMEOUT, close).await {
            debug!(%error, "close handshake failed");
        }
    }

    /// How the connection ended, from what the server said before it did.
    fn ended(&mut self, link: &Link, fallback: String) -> Ended {
        let push_code = link.disconnect.as_ref().and_then(|d| d.code);
        let code = link.close.as_ref().map(|(code, _)| *code).or(push_code);
        let reason = match (&link.close, &link.disconnect) {
            (Some((_, reason)), _) if !reason.is_empty() => reason.clone(),
            (_, Some(push)) if !push.reason.is_empty() => push.reason.clone(),
            _ => fallback,
        };
        let push_reconnect = link.disconnect.as_ref().and_then(|d| d.reconnect);
        match after_close(code, push_reconnect, &reason, self.token_renews()) {
            AfterClose::Reconnect => Ended::Lost(Disconnect::new(code, reason, true)),
            AfterClose::RenewToken => {
                info!("the connection token expired; getting a new one");
                self.auth.stale = true;
                Ended::Lost(Disconnect::new(code, reason, true))
            }
            AfterClose::Stop(error) => {
                Ended::Terminated(error, Disconnect::new(code, reason, false))
            }
        }
    }

    /// After the `connect` reply: resubscribe and send what waited for a connection.
    fn on_connected(&mut self) {
        self.online = true;
        let idle: Vec<String> = self
            .subs
            .iter()
            .filter(|(_, entry)| matches!(entry.phase, Phase::Idle))
            .map(|(channel, _)| channel.clone())
            .collect();
        for channel in idle {
            self.send_subscribe(&channel);
        }
        let now = Instant::now();
        for queued in std::mem::take(&mut self.queued) {
            if queued.deadline <= now || queued.reply.is_closed() {
                let _ = queued.reply.send(Err(ClientError::Timeout));
            } else {
                self.send_request(queued.request, queued.reply, queued.deadline);
            }
        }
    }

    /// After a connection ended: in-flight requests fail (their outcome is unknown), and
    /// subscriptions wait to be resubscribed.
    fn on_connection_lost(&mut self) {
        self.online = false;
        self.out.clear();
        // Dropping the futures cancels the token calls; subscriptions fetch again after the
        // next connect.
        self.auth.refreshing = None;
        self.sub_tokens = FuturesUnordered::new();
        for (_, pending) in self.pending.drain() {
            match pending {
                Pending::Request { reply, .. } => {
                    let _ = reply.send(Err(ClientError::Disconnected));
                }
                // The server forgets a connection's subscriptions with the connection.
                Pending::Unsubscribe { reply, .. } => {
                    let _ = reply.send(Ok(()));
                }
                Pending::Subscribe { .. } | Pending::Refresh => {}
            }
        }
        for entry in self.subs.values_mut() {
            if matches!(
                entry.phase,
                Phase::Pending { .. } | Phase::Active | Phase::Fetching
            ) {
                entry.phase = Phase::Idle;
                if entry.initial.is_none() {
                    entry.cause = SubscribeCause::Reconnect;
                }
            }
        }
    }

    /// Fails everything still waiting with `error` and publishes the final state.
    fn finish(&mut self, error: ClientError, disconnect: Disconnect) {
        info!(reason = %disconnect.reason, "client closed");
        let _ = self.end.set(error.clone());
        for (_, pending) in self.pending.drain() {
            match pending {
                Pending::Request { reply, .. } => {
                    let _ = reply.send(Err(error.clone()));
                }
                Pending::Unsubscribe { reply, .. } => {
                    let _ = reply.send(Err(error.clone()));
                }
                Pending::Subscribe { .. } | Pending::Refresh => {}
            }
        }
        for queued in self.queued.drain(..) {
            let _ = queued.reply.send(Err(error.clone()));
        }
        for (_, entry) in self.subs.drain() {
            end_subscription(entry, error.clone());
        }
        self.instructions.close();
        while let Ok(instruction) = self.instructions.try_recv() {
            match instruction {
                Instruction::Request { reply, .. } => {
                    let _ = reply.send(Err(error.clone()));
                }
                Instruction::Subscribe(order) => {
                    let _ = order.reply.send(Err(error.clone()));
                }
                Instruction::Unsubscribe { reply, .. } => {
                    if let Some(reply) = reply {
                        let _ = reply.send(Ok(()));
                    }
                }
                Instruction::DropConnection => {}
            }
        }
        self.state
            .send_replace(ConnectionState::Disconnected(disconnect));
    }

    fn take_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        id
    }
}

fn closed_by_client() -> (ClientError, Disconnect) {
    (
        ClientError::Closed,
        Disconnect::new(Some(close_code::NORMAL), "closed by the client", false),
    )
}

/// The error a client stops with, and the disconnect it shows.
fn stopped(error: ClientError) -> (ClientError, Disconnect) {
    let code = match &error {
        ClientError::Unauthorized { .. } => Some(close_code::UNAUTHORIZED),
        ClientError::Forbidden { .. } => Some(close_code::FORBIDDEN),
        ClientError::TokenExpired => Some(close_code::TOKEN_EXPIRED),
        ClientError::Terminated { code, .. } => Some(*code),
        _ => None,
    };
    let token_error = match &error {
        ClientError::Token(token_error) => Some(token_error.clone()),
        _ => None,
    };
    let disconnect = Disconnect {
        token_error,
        ..Disconnect::new(code, error.to_string(), false)
    };
    (error, disconnect)
}

// === impl Connection: frames and instructions ===

impl Connection {
    fn on_message(&mut self, link: &mut Link, message: Message) {
        let incoming = match message {
            Message::Text(text) => wire::decode_text(&text),
            Message::Binary(bytes) => wire::decode_binary(&bytes),
            Message::Close(frame) => {
                link.close = Some(match frame {
                    Some(frame) => (u16::from(frame.code), frame.reason.to_string()),
                    // 1005: no status code was present.
                    None => (1005, String::new()),
                });
                return;
            }
            // tungstenite answers pings itself.
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => return,
        };
        match incoming {
            Ok(Incoming::Reply { id, result }) => self.on_reply(id, result),
            Ok(Incoming::Push(push)) => self.on_push(link, push),
            Ok(Incoming::UnattributedError(error)) => {
                // A command sent without id failed, or one the server could not parse.
                warn!(%error, "error reply without id");
            }
            Err(error) => warn!(%error, "ignoring a frame"),
        }
    }

    fn on_push(&mut self, link: &mut Link, push: Push) {
        match push {
            Push::Publication(publication) => {
                let channel = publication.channel.clone();
                self.route(&channel, SubscriptionEvent::Publication(publication));
            }
            Push::Join { channel, info } => self.route(&channel, SubscriptionEvent::Join(info)),
            Push::Leave { channel, info } => self.route(&channel, SubscriptionEvent::Leave(info)),
            // No receiver is not an error: messages are for whoever listens now.
            Push::Message(data) => {
                let _ = self.messages.send(UserMessage { data });
            }
            Push::Ping => self.send_frame(None, Command::Pong),
            Push::Refresh { expires } => self.on_refresh_push(expires),
            Push::Disconnect(disconnect) => {
                debug!(?disconnect, "disconnect push");
                link.disconnect = Some(disconnect);
            }
            Push::Unknown(kind) => debug!(%kind, "ignoring an unknown push"),
        }
    }

    fn on_reply(&mut self, id: u64, result: Result<ReplyBody, ClientError>) {
        match self.pending.remove(&id) {
            Some(Pending::Request { reply, .. }) => {
                let _ = reply.send(result);
            }
            Some(Pending::Unsubscribe { reply, .. }) => {
                let _ = reply.send(result.map(|_| ()));
            }
            Some(Pending::Subscribe {
                channel,
                generation,
            }) => self.on_subscribe_reply(&channel, generation, result),
            Some(Pending::Refresh) => self.on_refresh_reply(result),
            None => debug!(id, "reply to an expired or unknown request"),
        }
    }

    /// Handles an instruction; returns `true` for [`Instruction::DropConnection`].
    fn on_instruction(&mut self, instruction: Instruction) -> bool {
        match instruction {
            Instruction::Request {
                request,
                reply,
                deadline,
            } => {
                if self.online {
                    self.send_request(request, reply, deadline);
                } else {
                    self.queued.push_back(QueuedRequest {
                        request,
                        reply,
                        deadline,
                    });
                }
            }
            Instruction::Subscribe(order) => self.on_subscribe(order),
            Instruction::Unsubscribe {
                channel,
                generation,
                reply,
                deadline,
            } => self.on_unsubscribe(&channel, generation, reply, deadline),
            Instruction::DropConnection => return self.online,
        }
        false
    }

    fn send_request(
        &mut self,
        request: Request,
        reply: oneshot::Sender<Result<ReplyBody, ClientError>>,
        deadline: Instant,
    ) {
        let id = self.take_id();
        match wire::encode(self.options.format, Some(id), request.command()) {
            Ok(frame) => {
                self.out.push(frame);
                self.pending
                    .insert(id, Pending::Request { reply, deadline });
            }
            Err(error) => {
                let _ = reply.send(Err(error));
            }
        }
    }

    /// Queues a frame; encoding only fails for data the format cannot carry, which the
    /// commands sent this way (pong, unsubscribe) never have.
    fn send_frame(&mut self, id: Option<u64>, command: Command<'_>) {
        match wire::encode(self.options.format, id, command) {
            Ok(frame) => self.out.push(frame),
            Err(error) => warn!(%error, "cannot encode a command"),
        }
    }

    /// Expires requests past their deadline or abandoned by their caller, and forgets
    /// subscriptions whose reader is gone.
    fn sweep(&mut self) {
        let now = Instant::now();
        let expired: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, pending)| match pending {
                Pending::Request { reply, deadline } => reply.is_closed() || *deadline <= now,
                Pending::Unsubscribe { reply, deadline } => reply.is_closed() || *deadline <= now,
                Pending::Subscribe { .. } | Pending::Refresh => false,
            })
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            match self.pending.remove(&id) {
                Some(Pending::Request { reply, .. }) => {
                    let _ = reply.send(Err(ClientError::Timeout));
                }
                Some(Pending::Unsubscribe { reply, .. }) => {
                    let _ = reply.send(Err(ClientError::Timeout));
                }
                Some(Pending::Subscribe { .. } | Pending::Refresh) | None => {}
            }
        }
        if !self.queued.is_empty() {
            for queued in std::mem::take(&mut self.queued) {
                if queued.deadline <= now || queued.reply.is_closed() {
                    let _ = queued.reply.send(Err(ClientError::Timeout));
                } else {
                    self.queued.push_back(queued);
                }
            }
        }
        let stale: Vec<String> = self
            .subs
            .iter()
            .filter(|(_, entry)| {
                entry.events.is_closed()
                    || entry
                        .initial
                        .as_ref()
                        .is_some_and(|(reply, deadline)| reply.is_closed() || *deadline <= now)
            })
            .map(|(channel, _)| channel.clone())
            .collect();
        for channel in stale {
            if let Some(entry) = self.remove_sub(&channel) {
                end_subscription(entry, ClientError::Timeout);
            }
        }
    }
}
