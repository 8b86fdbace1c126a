//! One WebSocket connection after the handshake: a single task that reads frames, answers
//! commands, drains the hub outbox and pings, owning the raw stream ([`Conn`]: TCP or TLS).
//!
//! Memory while idle is kept small on purpose: no read buffer is held between reads (bytes
//! are read into a stack buffer and only a partial frame is kept), no write buffer exists
//! unless a write blocks, and there is no per-connection channel — the hub's [`Outbox`]
//! is the only queue. Everything queued when the task wakes goes out in one `writev`.
//!
//! [`Outbox`]: switchboard_core::Outbox

use std::{
    borrow::Cow,
    future::Future,
    io,
    net::SocketAddr,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use bytes::{Bytes, BytesMut};
use futures_util::{StreamExt, stream::FuturesOrdered};
use switchboard_core::{
    Action, ChannelName, Client, Committed, Delivery, Disconnect, Outbox, RawJson, SubscribeOptions,
};
use switchboard_proto::{Command, ErrorCode, Format, Reply, Request, close};
use switchboard_websocket::{
    Decoded, DeflateConfig, Message, MessageReader, OpCode, encode_close, encode_frame,
};
use tokio::time::Instant;

use super::conn::Conn;

use crate::{
    audit::Refusal,
    auth::{Authenticated, TokenError},
    hooks::{Caller, ConnectInfo, ForwardedHeaders, Hook, HookError},
    limits::Limit,
    metrics::{ConnectionGauge, TransportLabel},
    server::ConnectionPermit,
    state::AppState,
    transport::{frames::WsEncoding, identity},
};

const TRANSPORT: &str = "websocket";
/// Most bytes read per wake-up before other work (writes, pings) gets a turn.
const READ_BUDGET_BYTES: usize = 256 << 10;
/// How long a closing handshake may take.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Bad commands logged per connection; later ones are only counted in metrics, so a flood of
/// garbage cannot flood the log.
const LOGGED_ERRORS_PER_CONNECTION: u32 = 5;

/// Publications of one connection waiting for their commit at once; past it, the session
/// stops reading until the oldest is answered.
const MAX_PUBLISHES_IN_FLIGHT: usize = 64;

/// A publication waiting for its commit, with the request id its reply carries.
struct InFlight {
    id: Option<u64>,
    committed: Committed,
}

impl Future for InFlight {
    type Output = (
        Option<u64>,
        Result<switchboard_core::StreamPosition, switchboard_core::HubError>,
    );

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let id = self.id;
        Pin::new(&mut self.committed).poll(cx).map(|r| (id, r))
    }
}

/// The connection as hooks see it, owned by a hook call's future.
struct HookCaller {
    client: Option<switchboard_core::ClientId>,
    user: Option<switchboard_core::UserId>,
    peer: SocketAddr,
}

impl HookCaller {
    fn get(&self) -> Caller<'_> {
        Caller {
            transport: TRANSPORT,
            client: self.client.as_ref(),
            user: self.user.as_ref(),
            peer: Some(self.peer),
        }
    }
}

/// What the handshake decided for this session.
pub(super) struct Settings {
    pub(super) format: Format,
    pub(super) deflate: Option<DeflateConfig>,
    pub(super) echo: bool,
    pub(super) max_message_bytes: usize,
    /// Who the upgrade request's token (header, query or cookie) says the connection is.
    pub(super) auth: Option<Authenticated>,
    /// The upgrade request's headers for the connect hook (when it is on and no token came
    /// with the upgrade); dropped once the connection is registered.
    pub(super) forwarded: Option<ForwardedHeaders>,
}

/// What the connection's one timer waits for.
#[derive(Debug, Clone, Copy)]
enum Timer {
    /// A token is required: `connect` must arrive by then.
    Connect,
    /// Send the `refresh` push, then wait for the expiry at `at`.
    Refresh { expires: u64, at: Instant },
    /// The token expires: close with 4003.
    Expire,
    /// A connection admitted by the connect hook: ask the refresh hook before it expires
    /// at `at`.
    HookRefresh { at: Instant },
}

/// How the session loop goes on.
enum Flow {
    Continue,
    /// Send a close frame with this code (after a `disconnect` push when `push` is set).
    Close {
        code: u16,
        reason: Cow<'static, str>,
        push: bool,
    },
    /// The peer sent a close frame; answer it and end.
    PeerClosed(Option<u16>),
    /// The TCP connection is gone (EOF, reset or write timeout): nothing more to send.
    Gone,
}

pub(super) struct Session {
    app: AppState,
    stream: Conn,
    peer: SocketAddr,
    settings: Settings,
    enc: WsEncoding,
    reader: MessageReader,
    rbuf: BytesMut,
    client: Option<Client>,
    /// Who the connection is, once known.
    auth: Option<Authenticated>,
    /// Connect deadline or token expiry; `None` for most connections (no allocation).
    timer: Option<(Pin<Box<tokio::time::Sleep>>, Timer)>,
    inflight: FuturesOrdered<InFlight>,
    /// This connection's command rate (`None`: unlimited).
    bucket: Option<governor::DefaultDirectRateLimiter>,
    /// Commands refused for rate since the last one accepted.
    limited_in_a_row: u32,
    out: Vec<Bytes>,
    batch: Vec<Delivery>,
    last_seen: Instant,
    errors_logged: u32,
    _gauge: ConnectionGauge,
    _permit: Option<ConnectionPermit>,
}

async fn timer(t: Option<&mut (Pin<Box<tokio::time::Sleep>>, Timer)>) {
    match t {
        Some((sleep, _)) => sleep.as_mut().await,
        None => std::future::pending().await,
    }
}

async fn outbox_ready(outbox: Option<&Outbox>) {
    match outbox {
        Some(o) => o.notified().await,
        None => std::future::pending().await,
    }
}

impl Session {
    pub(super) fn new(
        app: AppState,
        stream: Conn,
        peer: SocketAddr,
        leftover: Bytes,
        settings: Settings,
        permit: Option<ConnectionPermit>,
    ) -> Self {
        let enc = WsEncoding {
            format: settings.format,
            deflate_window_bits: settings.deflate.map(|d| d.server_max_window_bits),
            compression_min_bytes: app.config.websocket.compression_min_bytes,
        };
        let reader = MessageReader::new(settings.max_message_bytes, settings.deflate.as_ref());
        let gauge = ConnectionGauge::new(
            &app.metrics,
            if settings.echo {
                "websocket_echo"
            } else {
                TRANSPORT
            },
        );
        let auth = settings.auth.clone();
        // A connection that must identify itself (a token, or the connect hook with the
        // request headers it keeps until then) does so within the connect timeout.
        let must_identify = !app.auth.anonymous_allowed() || settings.forwarded.is_some();
        let timer = (auth.is_none() && must_identify && !settings.echo).then(|| {
            let wait = Duration::from_secs(app.config.auth.connect_timeout_seconds.max(1));
            (Box::pin(tokio::time::sleep(wait)), Timer::Connect)
        });
        let bucket = if settings.echo {
            None
        } else {
            app.limits.connection_bucket()
        };
        Self {
            rbuf: BytesMut::from(&leftover[..]),
            auth,
            timer,
            app,
            stream,
            peer,
            settings,
            enc,
            reader,
            client: None,
            inflight: FuturesOrdered::new(),
            bucket,
            limited_in_a_row: 0,
            out: Vec::new(),
            batch: Vec::new(),
            last_seen: Instant::now(),
            errors_logged: 0,
            _gauge: gauge,
            _permit: permit,
        }
    }

    pub(super) async fn run(mut self) {
        let ws = &self.app.config.websocket;
        let ping_every = Duration::from_secs(ws.ping_interval_seconds);
        let silence_limit = ping_every + Duration::from_secs(ws.pong_timeout_seconds);
        let mut ping = tokio::time::interval_at(Instant::now() + ping_every, ping_every);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let shutdown = self.app.shutdown.clone();

        // Bytes that arrived with the handshake.
        let mut flow = if self.rbuf.is_empty() {
            Flow::Continue
        } else {
            self.process_frames().await
        };
        loop {
            if !matches!(flow, Flow::Continue) {
                break;
            }
            if !self.out.is_empty() && self.flush().await.is_err() {
                flow = Flow::Gone;
                break;
            }
            let outbox = self.client.as_ref().map(|c| c.outbox().clone());
            flow = tokio::select! {
                r = self.stream.readable() => match r {
                    Ok(()) => self.on_readable().await,
                    Err(_) => Flow::Gone,
                },
                Some((id, result)) = self.inflight.next(), if !self.inflight.is_empty() => {
                    self.on_committed(id, result);
                    Flow::Continue
                },
                () = outbox_ready(outbox.as_deref()) => self.on_outbox(),
                () = timer(self.timer.as_mut()) => self.on_timer().await,
                _ = ping.tick() => {
                    if self.last_seen.elapsed() > silence_limit {
                        Flow::Close { code: close::NO_PONG, reason: "no pong".into(), push: true }
                    } else {
                        if !self.settings.echo {
                            self.out.push(self.enc.frame(&switchboard_proto::ping_push(self.enc.format)));
                        }
                        Flow::Continue
                    }
                },
                // Connected clients hear about shutdown through their outbox.
                () = shutdown.cancelled(), if self.client.is_none() => Flow::Close {
                    code: close::GOING_AWAY, reason: "server shutting down".into(), push: true,
                },
            };
        }
        self.finish(flow).await;
    }

    /// Reads what is available (up to a budget) and handles every complete message.
    async fn on_readable(&mut self) -> Flow {
        let mut scratch = [0u8; 16 << 10];
        let mut total = 0;
        while total < READ_BUDGET_BYTES {
            match self.stream.try_read(&mut scratch) {
                Ok(0) => return Flow::Gone,
                Ok(n) => {
                    total += n;
                    self.rbuf.extend_from_slice(&scratch[..n]);
                    let flow = self.process_frames().await;
                    if !matches!(flow, Flow::Continue) {
                        return flow;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return Flow::Gone,
            }
        }
        if total > 0 {
            self.last_seen = Instant::now();
            self.app
                .metrics
                .bytes_in
                .get_or_create(&TransportLabel {
                    transport: TRANSPORT,
                })
                .inc_by(total as u64);
        }
        if self.rbuf.is_empty() && self.rbuf.capacity() > 0 {
            // Hold no read buffer while idle.
            self.rbuf = BytesMut::new();
        }
        Flow::Continue
    }

    async fn process_frames(&mut self) -> Flow {
        loop {
            match self.reader.read(&mut self.rbuf) {
                Ok(Decoded::Incomplete) => return Flow::Continue,
                Ok(Decoded::Message(m)) => {
                    let flow = self.on_message(m).await;
                    if !matches!(flow, Flow::Continue) {
                        return flow;
                    }
                }
                Err(e) => {
                    let code = e.close_code();
                    self.app.metrics.error(TRANSPORT, close::name(code));
                    tracing::info!(peer = %self.peer, error = %e, code, "websocket protocol error");
                    return Flow::Close {
                        code,
                        reason: Cow::Owned(truncate(&e.to_string(), 120)),
                        push: false,
                    };
                }
            }
        }
    }

    async fn on_message(&mut self, m: Message) -> Flow {
        match m {
            Message::Ping(payload) => {
                self.out.push(encode_frame(OpCode::Pong, &payload, false));
                Flow::Continue
            }
            Message::Pong(_) => Flow::Continue,
            Message::Close(frame) => Flow::PeerClosed(frame.map(|f| f.code)),
            Message::Text(data) if self.settings.echo => {
                self.out.push(self.echo_frame(OpCode::Text, &data));
                Flow::Continue
            }
            Message::Binary(data) if self.settings.echo => {
                self.out.push(self.echo_frame(OpCode::Binary, &data));
                Flow::Continue
            }
            Message::Text(data) => self.on_data(Format::Json, &data).await,
            Message::Binary(data) => self.on_data(Format::MessagePack, &data).await,
        }
    }

    /// The echo endpoint compresses every echo when deflate is on: it exists for conformance
    /// runs, and kosoku 0.1.0 cannot check uncompressed echoes in cases 12/13.
    fn echo_frame(&self, opcode: OpCode, payload: &[u8]) -> Bytes {
        match self.settings.deflate {
            Some(d) => encode_frame(
                opcode,
                &switchboard_websocket::compress_message(payload, d.server_max_window_bits),
                true,
            ),
            _ => encode_frame(opcode, payload, false),
        }
    }

    async fn on_data(&mut self, frame_format: Format, data: &[u8]) -> Flow {
        let label = TransportLabel {
            transport: TRANSPORT,
        };
        self.app.metrics.messages_in.get_or_create(&label).inc();
        if frame_format != self.enc.format {
            let msg = match self.enc.format {
                Format::Json => "this connection speaks switchboard.json: send text frames",
                Format::MessagePack => {
                    "this connection speaks switchboard.msgpack: send binary frames"
                }
            };
            self.reply_error(None, ErrorCode::BadRequest, msg);
            return Flow::Continue;
        }
        match switchboard_proto::decode(self.enc.format, data) {
            Ok(req) => self.command(req).await,
            Err(e) => {
                self.reply_error(e.id, e.code, &e.message);
                Flow::Continue
            }
        }
    }

    fn reply_error(&mut self, id: Option<u64>, code: ErrorCode, message: &str) {
        self.app.metrics.error(TRANSPORT, code.as_str());
        if self.errors_logged < LOGGED_ERRORS_PER_CONNECTION {
            self.errors_logged += 1;
            tracing::info!(peer = %self.peer, code = code.as_str(), message, "command refused");
            if self.errors_logged == LOGGED_ERRORS_PER_CONNECTION {
                tracing::info!(peer = %self.peer, "further refused commands on this connection are only counted");
            }
        }
        let bytes = switchboard_proto::error(self.enc.format, id, code, message);
        self.out.push(self.enc.frame(&bytes));
    }

    fn reply(&mut self, id: Option<u64>, reply: &Reply<'_>) {
        if let Some(id) = id {
            let bytes = switchboard_proto::reply(self.enc.format, id, reply);
            self.out.push(self.enc.frame(&bytes));
        }
    }

    /// Registers the client (anonymous, as the upgrade's token said, or as the connect hook
    /// answers) when the first command is not `connect`. `Err` ends the connection: a token
    /// is required and none was given, or the connect hook refused.
    async fn ensure_client(&mut self, id: Option<u64>) -> Result<(), Flow> {
        if self.client.is_some() {
            return Ok(());
        }
        let auth = match self.auth.clone() {
            Some(a) => a,
            None if self.app.hooks.connect_enabled() => {
                match self.connect_hook(None, None, None).await {
                    Ok(a) => a,
                    Err(e) => return Err(self.hook_refused(id, Hook::Connect, &e)),
                }
            }
            None if self.app.auth.anonymous_allowed() => Authenticated::default(),
            None => return Err(self.token_refused(id, &TokenError::Required)),
        };
        match self
            .app
            .hub
            .connect_as(auth.identity.clone(), auth.info.clone())
        {
            Ok(client) => {
                self.client = Some(client);
                self.settings.forwarded = None;
                self.set_auth(auth);
                Ok(())
            }
            Err(e) => {
                self.reply_error(id, ErrorCode::from_hub(&e), &e.to_string());
                Err(Flow::Continue)
            }
        }
    }

    /// Asks the connect hook who this connection is. Nothing is delivered to a connection
    /// before it is registered, so this is a plain wait.
    async fn connect_hook(
        &mut self,
        name: Option<String>,
        version: Option<String>,
        info: Option<RawJson>,
    ) -> Result<Authenticated, HookError> {
        let caller = Caller {
            transport: TRANSPORT,
            client: None,
            user: None,
            peer: Some(self.peer),
        };
        let request = ConnectInfo {
            headers: self.settings.forwarded.as_ref(),
            name: name.as_deref(),
            version: version.as_deref(),
            info: info.as_ref(),
        };
        self.app.hooks.connect(caller, request).await
    }

    /// Counts, replies to and (when the hook's answer ends the connection) closes for a
    /// hook's refusal.
    fn hook_refused(&mut self, id: Option<u64>, hook: Hook, e: &HookError) -> Flow {
        if !matches!(e, HookError::Unavailable(_)) {
            self.refused(e.reason(), &e.to_string());
        }
        self.reply_error(id, e.code(hook), &e.to_string());
        match e.close_code(hook) {
            None => Flow::Continue,
            Some(code) => Flow::Close {
                code,
                reason: Cow::Owned(truncate(&e.to_string(), 120)),
                push: true,
            },
        }
    }

    /// Awaits `call` (a hook) while still delivering publications to this connection, so a
    /// slow backend delays the command, not the connection's stream. `Err` when the
    /// connection must end meanwhile.
    async fn serve_while<T>(&mut self, call: impl Future<Output = T>) -> Result<T, Flow> {
        tokio::pin!(call);
        loop {
            if !self.out.is_empty() && self.flush().await.is_err() {
                return Err(Flow::Gone);
            }
            let outbox = self.client.as_ref().map(|c| c.outbox().clone());
            tokio::select! {
                r = &mut call => return Ok(r),
                () = outbox_ready(outbox.as_deref()) => {
                    let flow = self.on_outbox();
                    if !matches!(flow, Flow::Continue) {
                        return Err(flow);
                    }
                }
            }
        }
    }

    /// What hooks are told about this connection, owned so a call can run beside `&mut self`.
    fn hook_caller(&self) -> HookCaller {
        HookCaller {
            client: self.client.as_ref().map(|c| c.id().clone()),
            user: self.auth.as_ref().and_then(Authenticated::user).cloned(),
            peer: self.peer,
        }
    }

    /// Takes `auth` as the connection's and schedules its refresh (a push to the client,
    /// or the refresh hook for a connection the connect hook admitted) and expiry.
    fn set_auth(&mut self, auth: Authenticated) {
        self.timer = match auth.expires {
            None => None,
            Some(exp) => {
                let left = super::super::sse::until(exp);
                let before =
                    Duration::from_secs(self.app.config.auth.refresh_before_seconds).min(left / 2);
                let now = Instant::now();
                let refresh_at = now + (left - before);
                Some(match (auth.from_hook, self.app.hooks.refresh_enabled()) {
                    (false, _) => (
                        Box::pin(tokio::time::sleep_until(refresh_at)),
                        Timer::Refresh {
                            expires: exp,
                            at: now + left,
                        },
                    ),
                    (true, true) => (
                        Box::pin(tokio::time::sleep_until(refresh_at)),
                        Timer::HookRefresh { at: now + left },
                    ),
                    // Nothing can renew it: the client reconnects and meets the connect hook.
                    (true, false) => (
                        Box::pin(tokio::time::sleep_until(now + left)),
                        Timer::Expire,
                    ),
                })
            }
        };
        self.auth = Some(auth);
    }

    /// Asks the refresh hook whether the connection goes on; retries an unavailable backend
    /// every few seconds until the expiry.
    async fn hook_refresh(&mut self, at: Instant) -> Flow {
        let hooks = self.app.hooks.clone();
        let who = self.hook_caller();
        let call = async move { hooks.refresh(who.get()).await };
        match self.serve_while(call).await {
            Err(flow) => flow,
            Ok(Ok(expires)) => {
                if let Some(mut auth) = self.auth.clone() {
                    auth.expires = expires;
                    self.set_auth(auth);
                }
                Flow::Continue
            }
            Ok(Err(HookError::Unavailable(_))) => {
                let retry = Instant::now() + Duration::from_secs(5);
                self.timer = Some(if retry < at {
                    (
                        Box::pin(tokio::time::sleep_until(retry)),
                        Timer::HookRefresh { at },
                    )
                } else {
                    (Box::pin(tokio::time::sleep_until(at)), Timer::Expire)
                });
                Flow::Continue
            }
            Ok(Err(e)) => self.hook_refused(None, Hook::Refresh, &e),
        }
    }

    /// The connection's timer fired.
    async fn on_timer(&mut self) -> Flow {
        let Some((sleep, kind)) = &mut self.timer else {
            return Flow::Continue;
        };
        match *kind {
            Timer::HookRefresh { at } => {
                self.timer = None;
                self.hook_refresh(at).await
            }
            Timer::Connect => {
                self.timer = None;
                if self.client.is_some() {
                    return Flow::Continue;
                }
                self.refused("connect_timeout", "no connect within the connect timeout");
                Flow::Close {
                    code: close::CONNECT_TIMEOUT,
                    reason: "connect timeout".into(),
                    push: true,
                }
            }
            Timer::Refresh { expires, at } => {
                sleep.as_mut().reset(at);
                *kind = Timer::Expire;
                let push = switchboard_proto::refresh_push(self.enc.format, expires);
                self.out.push(self.enc.frame(&push));
                Flow::Continue
            }
            Timer::Expire => {
                self.timer = None;
                self.refused("expired", "the connection token expired without a refresh");
                Flow::Close {
                    code: close::TOKEN_EXPIRED,
                    reason: "token expired".into(),
                    push: true,
                }
            }
        }
    }

    /// Counts and logs a refusal of this connection.
    fn refused(&self, reason: &'static str, detail: &str) {
        self.app.audit.refused(
            &self.app.metrics,
            &Refusal {
                transport: TRANSPORT,
                reason,
                peer: Some(self.peer),
                user: self.auth.as_ref().and_then(Authenticated::user),
                detail,
            },
        );
    }

    /// Replies with the token error and closes the connection with its code.
    fn token_refused(&mut self, id: Option<u64>, e: &TokenError) -> Flow {
        self.refused(e.reason(), &e.to_string());
        self.reply_error(id, e.code(), &e.to_string());
        Flow::Close {
            code: e.close_code(),
            reason: Cow::Owned(truncate(&e.to_string(), 120)),
            push: true,
        }
    }

    async fn connect(
        &mut self,
        id: Option<u64>,
        token: Option<String>,
        name: Option<String>,
        version: Option<String>,
        info: Option<RawJson>,
    ) -> Flow {
        if self.client.is_some() {
            self.reply_error(id, ErrorCode::BadRequest, "already connected");
            return Flow::Continue;
        }
        let auth = match (token, self.auth.take()) {
            (Some(t), _) => self.app.auth.connect(Some(&t)).await,
            (None, Some(upgrade)) => Ok(upgrade),
            (None, None) if self.app.hooks.connect_enabled() => {
                match self.connect_hook(name, version, info.clone()).await {
                    Ok(a) => Ok(a),
                    Err(e) => return self.hook_refused(id, Hook::Connect, &e),
                }
            }
            (None, None) => self.app.auth.connect(None).await,
        };
        let auth = match auth {
            Ok(a) => a,
            Err(e) => return self.token_refused(id, &e),
        };
        // The token's info, set by the application, wins over what the client says.
        let info = auth.info.clone().or(info);
        let client = match self.app.hub.connect_as(auth.identity.clone(), info) {
            Ok(c) => c,
            Err(e) => {
                self.reply_error(id, ErrorCode::from_hub(&e), &e.to_string());
                return Flow::Continue;
            }
        };
        let client_id = client.id().clone();
        self.client = Some(client);
        self.settings.forwarded = None;
        let expires = auth.expires;
        let user = auth.user().cloned();
        self.set_auth(auth);
        self.reply(
            id,
            &Reply::Connect {
                client: &client_id,
                version: crate::VERSION,
                ping_interval: self.app.config.websocket.ping_interval_seconds,
                max_message_bytes: self.settings.max_message_bytes,
                user: user.as_ref(),
                expires,
            },
        );
        Flow::Continue
    }

    async fn refresh(&mut self, id: Option<u64>, token: String) -> Flow {
        let current = self.auth.clone().unwrap_or_default();
        match self.app.auth.refresh(&current, &token).await {
            Ok(next) => {
                let expires = next.expires;
                // The rules keep checking the claims the connection was registered with;
                // the new token moves the expiry.
                self.set_auth(Authenticated {
                    identity: current.identity,
                    channels: current.channels,
                    info: current.info,
                    expires,
                    from_hook: false,
                });
                self.reply(id, &Reply::Refresh { expires });
                Flow::Continue
            }
            Err(e) => self.token_refused(id, &e),
        }
    }

    /// Refuses a command over a rate limit; closes with 4008 when the client keeps at it.
    fn rate_limited(&mut self, id: Option<u64>, limit: Limit) -> Flow {
        let user = self.auth.as_ref().and_then(Authenticated::user);
        let e = crate::limits::refused(&self.app, TRANSPORT, Some(self.peer), user, limit);
        let bytes = switchboard_proto::error(self.enc.format, id, e.code, &e.message);
        self.out.push(self.enc.frame(&bytes));
        self.limited_in_a_row += 1;
        if self.limited_in_a_row >= self.app.config.limits.max_rate_limited_in_a_row.max(1) {
            return Flow::Close {
                code: close::RATE_LIMITED,
                reason: "too many requests".into(),
                push: true,
            };
        }
        Flow::Continue
    }

    async fn command(&mut self, req: Request) -> Flow {
        let id = req.id;
        if !matches!(req.command, Command::Pong)
            && let Some(bucket) = &self.bucket
            && bucket.check().is_err()
        {
            return self.rate_limited(id, Limit::Commands);
        }
        if matches!(req.command, Command::Publish { .. })
            && let Err(limit) = self
                .app
                .limits
                .publication(self.auth.as_ref().and_then(Authenticated::user))
        {
            return self.rate_limited(id, limit);
        }
        self.limited_in_a_row = 0;
        match req.command {
            Command::Pong => return Flow::Continue,
            Command::Ping => {
                self.reply(id, &Reply::Empty);
                return Flow::Continue;
            }
            Command::Connect {
                info,
                token,
                name,
                version,
            } => return self.connect(id, token, name, version, info).await,
            Command::Refresh { token } if self.client.is_some() => {
                return self.refresh(id, token).await;
            }
            _ => {}
        }
        if let Err(flow) = self.ensure_client(id).await {
            return flow;
        }
        match self.hub_command(id, req.command).await {
            Ok(flow) => flow,
            Err((channel, e)) => {
                if let (Some(channel), Some(auth)) = (&channel, &self.auth) {
                    identity::audit_denial(
                        &self.app,
                        TRANSPORT,
                        Some(self.peer),
                        auth,
                        channel,
                        &e,
                    );
                }
                self.reply_error(id, ErrorCode::from_hub(&e), &e.to_string());
                Flow::Continue
            }
        }
    }

    /// A command for the hub, once the connection is registered. Errors come with the
    /// channel they concern, for the audit log; a hook's answer may end the connection.
    async fn hub_command(
        &mut self,
        id: Option<u64>,
        command: Command,
    ) -> Result<Flow, (Option<ChannelName>, switchboard_core::HubError)> {
        let Some(client) = self.client.as_ref() else {
            return Err((None, switchboard_core::HubError::ShuttingDown));
        };
        let on = |channel: &ChannelName| {
            let channel = channel.clone();
            move |e| (Some(channel), e)
        };
        match command {
            Command::Pong | Command::Ping | Command::Connect { .. } | Command::Refresh { .. } => {}
            Command::Subscribe {
                channel,
                since,
                join_leave,
                token,
            } => {
                let auth = self.auth.clone().unwrap_or_default();
                let granted = match token {
                    None => auth.grants(&channel),
                    Some(t) => match self.app.auth.subscription(&auth, &channel, &t).await {
                        Ok(_) => true,
                        Err(e) => {
                            self.refused(
                                e.reason(),
                                &format!("subscription token for {channel}: {e}"),
                            );
                            self.reply_error(id, e.code(), &e.to_string());
                            return Ok(Flow::Continue);
                        }
                    },
                };
                if !granted && self.app.hub.channel_options(&channel).subscribe_hook {
                    // The rules first: the backend is asked only about what they allow.
                    self.app
                        .hub
                        .authorize(&auth.identity, &channel, Action::Subscribe)
                        .map_err(on(&channel))?;
                    let hooks = self.app.hooks.clone();
                    let who = self.hook_caller();
                    let ch = channel.clone();
                    let call = async move { hooks.subscribe(who.get(), &ch).await };
                    match self.serve_while(call).await {
                        Err(flow) => return Ok(flow),
                        Ok(Err(e)) => return Ok(self.hook_refused(id, Hook::Subscribe, &e)),
                        Ok(Ok(())) => {}
                    }
                }
                let Some(client) = self.client.as_ref() else {
                    return Err((None, switchboard_core::HubError::ShuttingDown));
                };
                let options = SubscribeOptions {
                    since,
                    join_leave,
                    granted,
                };
                let rec = client
                    .subscribe(&channel, options)
                    .await
                    .map_err(on(&channel))?;
                self.reply(id, &Reply::Subscribe(&rec));
            }
            Command::Unsubscribe { channel } => {
                client.unsubscribe(&channel).map_err(on(&channel))?;
                self.reply(id, &Reply::Empty);
            }
            Command::Publish { channel, data } => {
                let data = if self.app.hub.channel_options(&channel).publish_hook {
                    let identity = self.auth.clone().unwrap_or_default().identity;
                    self.app
                        .hub
                        .authorize(&identity, &channel, Action::Publish)
                        .map_err(on(&channel))?;
                    let hooks = self.app.hooks.clone();
                    let who = self.hook_caller();
                    let ch = channel.clone();
                    let call = async move { hooks.publish(who.get(), &ch, data).await };
                    match self.serve_while(call).await {
                        Err(flow) => return Ok(flow),
                        Ok(Err(e)) => return Ok(self.hook_refused(id, Hook::Publish, &e)),
                        Ok(Ok(data)) => data,
                    }
                } else {
                    data
                };
                // The offset is assigned now, in command order; the reply waits for the
                // commit while later commands go on.
                if self.inflight.len() >= MAX_PUBLISHES_IN_FLIGHT
                    && let Some((id, result)) = self.inflight.next().await
                {
                    self.on_committed(id, result);
                }
                let Some(client) = self.client.as_ref() else {
                    return Err((None, switchboard_core::HubError::ShuttingDown));
                };
                let committed = client.submit(&channel, data).await.map_err(on(&channel))?;
                self.inflight.push_back(InFlight { id, committed });
            }
            Command::Presence { channel } => {
                let clients = client.presence(&channel).map_err(on(&channel))?;
                self.reply(id, &Reply::Presence(&clients));
            }
            Command::PresenceCount { channel } => {
                let count = client.presence_count(&channel).map_err(on(&channel))?;
                self.reply(id, &Reply::PresenceCount(count));
            }
            Command::History {
                channel,
                limit,
                from,
            } => {
                let page = client
                    .history(&channel, from, limit)
                    .await
                    .map_err(on(&channel))?;
                self.reply(id, &Reply::History(&page));
            }
            Command::Rpc { method, data } => {
                if !self.app.hooks.rpc_enabled() {
                    self.reply_error(
                        id,
                        ErrorCode::NotAvailable,
                        "this server answers no rpc (hooks.rpc_url is not set)",
                    );
                    return Ok(Flow::Continue);
                }
                let hooks = self.app.hooks.clone();
                let who = self.hook_caller();
                let call = async move { hooks.rpc(who.get(), &method, &data).await };
                match self.serve_while(call).await {
                    Err(flow) => return Ok(flow),
                    Ok(Err(e)) => return Ok(self.hook_refused(id, Hook::Rpc, &e)),
                    Ok(Ok(answer)) => self.reply(id, &Reply::Rpc(&answer)),
                }
            }
        }
        Ok(Flow::Continue)
    }

    fn on_committed(
        &mut self,
        id: Option<u64>,
        result: Result<switchboard_core::StreamPosition, switchboard_core::HubError>,
    ) {
        match result {
            Ok(pos) => {
                self.app
                    .metrics
                    .publications
                    .get_or_create(&TransportLabel {
                        transport: TRANSPORT,
                    })
                    .inc();
                self.reply(id, &Reply::Position(&pos));
            }
            Err(e) => self.reply_error(id, ErrorCode::from_hub(&e), &e.to_string()),
        }
    }

    fn on_outbox(&mut self) -> Flow {
        let Some(client) = &self.client else {
            return Flow::Continue;
        };
        let closed = client.outbox().drain(&mut self.batch);
        if let Some(oldest) = self.batch.iter().find_map(|d| match d {
            Delivery::Publication(p) => Some(p.published_at),
            _ => None,
        }) {
            self.app
                .metrics
                .delivery_latency_seconds
                .observe(oldest.elapsed().as_secs_f64());
        }
        if !self.batch.is_empty() {
            self.app
                .metrics
                .messages_out
                .get_or_create(&TransportLabel {
                    transport: TRANSPORT,
                })
                .inc_by(self.batch.len() as u64);
        }
        for d in self.batch.drain(..) {
            self.out.push(self.enc.delivery(&d));
        }
        match closed {
            None => Flow::Continue,
            Some(d) => {
                if d == Disconnect::SlowConsumer {
                    self.app
                        .metrics
                        .slow_consumer_disconnects
                        .get_or_create(&TransportLabel {
                            transport: TRANSPORT,
                        })
                        .inc();
                    tracing::info!(peer = %self.peer, "slow consumer disconnected");
                }
                let (code, reason, _) = switchboard_proto::disconnect_close(&d);
                Flow::Close {
                    code,
                    reason: Cow::Owned(reason.to_owned()),
                    push: true,
                }
            }
        }
    }

    /// Writes every pending frame with as few `writev` calls as the kernel allows. A write
    /// blocked longer than `write_timeout_seconds` drops the client as a slow consumer.
    async fn flush(&mut self) -> io::Result<()> {
        let timeout = Duration::from_secs(self.app.config.websocket.write_timeout_seconds);
        let result = self.stream.write_all(&mut self.out, timeout).await;
        match &result {
            Ok(n) => {
                self.app
                    .metrics
                    .bytes_out
                    .get_or_create(&TransportLabel {
                        transport: TRANSPORT,
                    })
                    .inc_by(*n as u64);
            }
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                self.app
                    .metrics
                    .slow_consumer_disconnects
                    .get_or_create(&TransportLabel {
                        transport: TRANSPORT,
                    })
                    .inc();
                tracing::info!(peer = %self.peer, "write timed out: slow consumer dropped");
            }
            Err(_) => {}
        }
        self.out.clear();
        if self.out.capacity() > 256 {
            self.out = Vec::new();
        }
        result.map(|_| ())
    }

    /// Ends the connection: sends the close handshake when there is a peer to hear it.
    async fn finish(mut self, flow: Flow) {
        // Leave the hub first so nothing more is queued.
        self.client = None;
        let (code, reason, wait_for_peer) = match flow {
            Flow::Continue | Flow::Gone => return,
            Flow::PeerClosed(code) => {
                let echo = code.filter(|c| *c != 1005).unwrap_or(close::NORMAL);
                (echo, Cow::Borrowed(""), false)
            }
            Flow::Close { code, reason, push } => {
                if push && !self.settings.echo {
                    let bytes = switchboard_proto::disconnect_push(
                        self.enc.format,
                        code,
                        &reason,
                        close::should_reconnect(code),
                    );
                    self.out.push(self.enc.frame(&bytes));
                }
                (code, reason, true)
            }
        };
        self.out.push(encode_close(code, &reason));
        let stream = &mut self.stream;
        let sent = tokio::time::timeout(
            CLOSE_TIMEOUT,
            stream.write_all(&mut self.out, CLOSE_TIMEOUT),
        )
        .await;
        if wait_for_peer && matches!(sent, Ok(Ok(_))) {
            // Read until the peer's close frame or EOF, so unread bytes don't turn our FIN
            // into a reset that could destroy the close frame in flight.
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, drain_until_close(stream)).await;
        }
        if matches!(sent, Ok(Ok(_))) {
            // TLS: close_notify last (rustls sends nothing queued after it), so the peer can
            // tell our close from a truncation.
            stream.send_close_notify();
            let _ = tokio::time::timeout(
                CLOSE_TIMEOUT,
                stream.write_all(&mut Vec::new(), CLOSE_TIMEOUT),
            )
            .await;
        }
    }
}

async fn drain_until_close(stream: &mut Conn) {
    while stream.readable().await.is_ok() && discard_available(stream) {}
}

/// Reads and drops what is available; `false` once the peer is gone. Not async, so its
/// buffer lives on the stack only during the call, not in every session's future.
fn discard_available(stream: &mut Conn) -> bool {
    let mut scratch = [0u8; 4096];
    loop {
        match stream.try_read(&mut scratch) {
            Ok(0) => return false,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
}

fn truncate(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}
