//! The Socket.IO half of a session: the sockets connected to each namespace (one hub client
//! each, sharing the session's outbox), CONNECT and its authentication, events and the
//! namespaces' declared behaviour, acknowledgements, and hub deliveries turned into events.

use std::{collections::HashSet, sync::Arc};

use bytes::Bytes;
use switchboard_core::{
    Action, ChannelName, Client, ClientId, ConnectOptions, Delivery, Epoch, HubError, Live,
    Payload, Prepared, Publication, SubscribeOptions,
};
use switchboard_proto::ErrorCode;
use switchboard_socketio::{
    JsonText,
    engineio::Message,
    msgpack,
    socketio::{Encoded, Packet, PacketKind},
};
use tokio::{sync::oneshot, time::Instant};

use super::{
    Control, Input, SocketEntry,
    config::{ParserChoice, RelayTo},
    engine::TRANSPORT,
    namespace::{Behaviour, Preset},
    recovery::{Parked, Track, offset_tag},
    rooms::{self, channel_room, json_string, namespace_channel, room_channel},
    session::{Flow, Session, ws_frames},
};
use serde_json::value::RawValue;

use super::handlers::{Ack, Io, MAX_EARLY_EVENTS, Socket, SocketHandlers};
use switchboard_socketio::socketio::RESERVED_EVENTS;

use crate::{
    auth::{Authenticated, TokenError},
    hooks::{Caller, ConnectInfo, EventAnswer, Hook, HookError, SocketIoEvent},
    transport::identity,
};

/// Frame slots of Socket.IO encodings (native ones use 0–4).
const SIO_WS_JSON: switchboard_core::FrameSlot = switchboard_core::FrameSlot::new(5);
const SIO_POLL_JSON: switchboard_core::FrameSlot = switchboard_core::FrameSlot::new(6);
const SIO_WS_MSGPACK: switchboard_core::FrameSlot = switchboard_core::FrameSlot::new(7);

/// Which parser the client uses, learnt from its first Socket.IO packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Parser {
    Json,
    Msgpack,
}

/// A socket: a connection's membership of one namespace.
pub(super) struct NsSocket {
    pub(super) namespace: Arc<str>,
    behaviour: Arc<Behaviour>,
    client: Client,
    auth: Authenticated,
    /// Rooms joined (besides the socket's own id), with their channels.
    rooms: Vec<(String, ChannelName)>,
    /// With recovery on: the private session id and what the socket was sent.
    pid: Option<Arc<str>>,
    track: Option<Track>,
    /// Handlers of the embedding application.
    handlers: Arc<SocketHandlers>,
    /// `false` while its connect handler runs; its events wait in `early`.
    ready: bool,
    early: Vec<Packet>,
    /// The socket's event rate (`[limits] commands_per_second`; `None`: unlimited).
    bucket: Option<governor::DefaultDirectRateLimiter>,
    /// Events refused for rate since the last one accepted.
    limited_in_a_row: u32,
    /// When its token expires (unix seconds): the socket is then disconnected.
    expires: Option<u64>,
}

/// Most namespaces one connection may be connected to at once.
const MAX_SOCKETS_PER_CONNECTION: usize = 32;

/// Most server→client acks one connection may have outstanding.
const MAX_PENDING_ACKS: usize = 256;

/// An event sent with an ack id, waiting for the client's ack.
struct PendingAck {
    id: u64,
    socket: ClientId,
    deadline: Instant,
    reply: oneshot::Sender<Result<JsonText, String>>,
}

/// Every socket of one connection.
pub(super) struct Sockets {
    list: Vec<NsSocket>,
    parser: Option<Parser>,
    /// Until when the client may CONNECT to a first namespace.
    connect_by: Option<Instant>,
    acks: Vec<PendingAck>,
    next_ack: u64,
}

impl Sockets {
    pub(super) fn new(connect_by: Instant) -> Self {
        Self {
            list: Vec::new(),
            parser: None,
            connect_by: Some(connect_by),
            acks: Vec::new(),
            next_ack: 0,
        }
    }

    /// The next time something is due: the connect deadline or an ack's timeout.
    pub(super) fn deadline(&self) -> Option<Instant> {
        let acks = self.acks.iter().map(|a| a.deadline).min();
        match (self.connect_by, acks) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether no socket is connected.
    pub(super) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Whether the client missed the connect deadline.
    pub(super) fn connect_expired(&self, now: Instant) -> bool {
        self.connect_by.is_some_and(|d| d <= now)
    }

    /// Fails the acks whose time is up.
    pub(super) fn expire_acks(&mut self, now: Instant) {
        let mut k = 0;
        while k < self.acks.len() {
            if self.acks[k].deadline <= now {
                let a = self.acks.swap_remove(k);
                let _ = a
                    .reply
                    .send(Err("the socket did not acknowledge in time".to_owned()));
            } else {
                k += 1;
            }
        }
    }

    fn index(&self, namespace: &str) -> Option<usize> {
        self.list.iter().position(|s| &*s.namespace == namespace)
    }

    fn index_of_id(&self, id: &ClientId) -> Option<usize> {
        self.list.iter().position(|s| s.client.id() == id)
    }
}

/// An ack's data: `[value]`.
fn ack_data(value: &str) -> Option<JsonText> {
    JsonText::parse(Bytes::from(format!("[{value}]"))).ok()
}

fn error_json(code: &str, message: &str) -> String {
    format!(
        r#"{{"error":{{"code":{},"message":{}}}}}"#,
        json_string(code),
        json_string(message)
    )
}

const OK: &str = r#"{"ok":true}"#;

impl Session {
    fn parser(&self) -> Parser {
        self.sockets.parser.unwrap_or(Parser::Json)
    }

    /// Encodes a packet for this session's parser and queues it.
    fn send_packet(&mut self, packet: &Packet) {
        let encoded = match self.parser() {
            Parser::Json => packet.encode(),
            Parser::Msgpack => msgpack::encode(packet),
        };
        match encoded {
            Ok(e) => self.send_encoded_packet(&e),
            Err(e) => tracing::warn!(error = %e, "socket.io packet could not be encoded"),
        }
    }

    fn send_encoded_packet(&mut self, e: &Encoded) {
        self.send_encoded(|| ws_frames(e.websocket()), || e.polling().clone());
    }

    fn emit(&mut self, namespace: &str, data: JsonText, attachments: Vec<Bytes>) {
        // With recovery on, every event ends with an offset (see `recovery`).
        let data = match self
            .sockets
            .index(namespace)
            .and_then(|i| self.sockets.list[i].track.as_ref())
        {
            Some(t) => with_offset(&data, &t.last_tag()).unwrap_or(data),
            None => data,
        };
        let packet = Packet::event(rooms::ns_str(namespace), data).with_attachments(attachments);
        self.send_packet(&packet);
    }

    fn ack(&mut self, namespace: &str, id: Option<u64>, value: &str) {
        if let (Some(id), Some(data)) = (id, ack_data(value)) {
            self.send_packet(&Packet::ack(rooms::ns_str(namespace), id, data));
        }
    }

    fn connect_error(&mut self, namespace: &str, message: &str, code: Option<&str>) {
        let data = match code {
            Some(code) => format!(
                r#"{{"message":{},"data":{{"code":{}}}}}"#,
                json_string(message),
                json_string(code)
            ),
            None => format!(r#"{{"message":{}}}"#, json_string(message)),
        };
        if let Ok(data) = JsonText::parse(Bytes::from(data)) {
            self.send_packet(&Packet::connect_error(rooms::ns_str(namespace), data));
        }
    }

    /// An Engine.IO message: one Socket.IO packet, or an attachment of one.
    pub(super) async fn on_message(&mut self, m: Message) -> Flow {
        let parser = match self.sockets.parser {
            Some(p) => p,
            None => {
                let p = match m {
                    Message::Text(_) => Parser::Json,
                    Message::Binary(_) => Parser::Msgpack,
                };
                self.sockets.parser = Some(p);
                p
            }
        };
        let packet = match (parser, m) {
            (Parser::Json, m) => match self.decoder.decode(m) {
                Ok(Some(p)) => p,
                Ok(None) => return Flow::Continue,
                Err(e) => {
                    self.protocol_error(&e);
                    return Flow::Close("malformed socket.io packet");
                }
            },
            (Parser::Msgpack, Message::Binary(b)) => match msgpack::decode(&b, &self.sio.limits) {
                Ok(p) => p,
                Err(e) => {
                    self.protocol_error(&e);
                    return Flow::Close("malformed socket.io packet");
                }
            },
            (Parser::Msgpack, Message::Text(_)) => {
                self.protocol_error(&"text packet from a MessagePack client");
                return Flow::Close("malformed socket.io packet");
            }
        };
        self.app
            .metrics
            .messages_in
            .get_or_create(&crate::metrics::TransportLabel {
                transport: TRANSPORT,
            })
            .inc();
        self.on_sio_packet(packet).await
    }

    async fn on_sio_packet(&mut self, packet: Packet) -> Flow {
        if !matches!(packet.kind, PacketKind::Connect | PacketKind::ConnectError)
            && self.sockets.index(packet.namespace.as_str()).is_none()
        {
            // A packet for a namespace the client is not connected to: the reference
            // server closes the connection ("invalid state").
            self.protocol_error(&"packet for a namespace the client has not connected to");
            return Flow::Close("packet for an unconnected namespace");
        }
        match packet.kind {
            PacketKind::Connect => self.on_connect(packet).await,
            PacketKind::Disconnect => {
                if let Some(i) = self.sockets.index(packet.namespace.as_str()) {
                    self.remove_socket(i, "client namespace disconnect");
                }
                Flow::Continue
            }
            PacketKind::Event => match self.sockets.index(packet.namespace.as_str()) {
                Some(i) => self.on_event(i, packet).await,
                None => Flow::Continue,
            },
            PacketKind::Ack => {
                let socket = self
                    .sockets
                    .index(packet.namespace.as_str())
                    .map(|i| self.sockets.list[i].client.id().clone());
                if let (Some(id), Some(socket)) = (packet.id, socket)
                    && let Some(k) = self
                        .sockets
                        .acks
                        .iter()
                        .position(|a| a.id == id && a.socket == socket)
                {
                    let a = self.sockets.acks.swap_remove(k);
                    let data = packet
                        .data
                        .clone()
                        .or_else(|| JsonText::parse(Bytes::from_static(b"[]")).ok())
                        .ok_or_else(|| "an empty ack".to_owned());
                    let _ = a.reply.send(data);
                }
                Flow::Continue
            }
            PacketKind::ConnectError => {
                self.protocol_error(&"CONNECT_ERROR from a client");
                Flow::Close("malformed socket.io packet")
            }
        }
    }

    async fn on_connect(&mut self, packet: Packet) -> Flow {
        let ns = packet.namespace.as_str().to_owned();
        if self.sockets.index(&ns).is_some() {
            return Flow::Continue;
        }
        if self.sockets.list.len() >= MAX_SOCKETS_PER_CONNECTION {
            self.app.metrics.error(TRANSPORT, "too_many_namespaces");
            self.connect_error(
                &ns,
                &format!("at most {MAX_SOCKETS_PER_CONNECTION} namespaces per connection"),
                Some("limit_exceeded"),
            );
            return Flow::Continue;
        }
        let Some(behaviour) = self.sio.namespaces.resolve(&ns).or_else(|| {
            self.sio
                .handlers
                .has(&ns)
                .then(|| self.sio.namespaces.default_behaviour())
        }) else {
            self.app.metrics.error(TRANSPORT, "invalid_namespace");
            self.connect_error(&ns, "Invalid namespace", None);
            return Flow::Continue;
        };
        let parser_ok = match behaviour.config.parser {
            ParserChoice::Any => true,
            ParserChoice::Json => self.parser() == Parser::Json,
            ParserChoice::Msgpack => self.parser() == Parser::Msgpack,
        };
        if !parser_ok {
            self.connect_error(
                &ns,
                "This namespace needs another parser",
                Some("bad_request"),
            );
            return Flow::Continue;
        }
        let auth_data = packet.data.clone();
        let payload = auth_data
            .as_ref()
            .and_then(|d| serde_json::from_str::<AuthPayload>(d.as_str()).ok());
        // A `token` in the auth payload is the application's own business on a server that
        // verifies no tokens (no keys configured, anonymous allowed), as with any Socket.IO
        // server; otherwise it must be a valid JWT.
        let token = payload
            .as_ref()
            .and_then(|a| a.token.clone())
            .or_else(|| self.handshake_token.clone())
            .filter(|_| self.app.auth.verifies_tokens() || !self.app.auth.anonymous_allowed());
        let auth = match self.authenticate(token, auth_data.as_ref()).await {
            Ok(a) => a,
            Err((message, code)) => {
                self.connect_error(&ns, &message, Some(code));
                return Flow::Continue;
            }
        };
        let preset = behaviour.preset;
        let recovering = payload
            .and_then(|p| Some((p.pid?, p.offset)))
            .filter(|_| self.sio.config.recovery.enabled);
        if let Some((pid, offset)) = recovering {
            let result = match self.sio.unpark(&pid, &ns) {
                Some(parked) => {
                    self.recover(&ns, &behaviour, &auth, parked, offset.as_deref())
                        .await
                }
                None => Err("no such session (expired or unknown)"),
            };
            match result {
                Ok(()) => {
                    self.recovery_outcome("recovered");
                    return Flow::Continue;
                }
                Err(why) => {
                    tracing::debug!(sid = %self.sid, namespace = %ns, why, "socket.io session not recovered");
                    self.recovery_outcome("not_recovered");
                }
            }
        }
        let options = ConnectOptions {
            id: None,
            outbox: Some(self.outbox.clone()),
        };
        let client =
            match self
                .app
                .hub
                .connect_with(auth.identity.clone(), auth.info.clone(), options)
            {
                Ok(c) => c,
                Err(e) => {
                    let code = ErrorCode::from_hub(&e);
                    self.connect_error(&ns, &e.to_string(), Some(code.as_str()));
                    return Flow::Continue;
                }
            };
        let mut track = self.sio.config.recovery.enabled.then(Track::default);
        if let Some(channel) = namespace_channel(&ns) {
            let options = SubscribeOptions {
                granted: true,
                ..SubscribeOptions::default()
            };
            match client.subscribe(&channel, options).await {
                Ok(r) => {
                    if let Some(t) = &mut track {
                        t.joined(&channel, r.position);
                    }
                }
                Err(e) => {
                    let code = ErrorCode::from_hub(&e);
                    self.connect_error(&ns, &e.to_string(), Some(code.as_str()));
                    return Flow::Continue;
                }
            }
        }
        let pid = track
            .is_some()
            .then(|| Arc::from(ClientId::random().as_str()));
        self.attach(&ns, behaviour, client, auth, Vec::new(), pid, track);
        if matches!(preset, Preset::ConformanceRoot | Preset::ConformanceCustom) {
            let auth = auth_data.as_ref().map_or("{}", |d| d.as_str());
            if let Some(data) = rooms::join_array([r#""auth""#, auth]) {
                self.emit(&ns, data, Vec::new());
            }
        }
        Flow::Continue
    }

    fn recovery_outcome(&self, outcome: &'static str) {
        self.app
            .metrics
            .socketio_recoveries
            .get_or_create(&crate::metrics::OutcomeLabel { outcome })
            .inc();
    }

    /// Refuses an event over the socket's rate (acked `rate_limited` when it asked for an
    /// ack); a socket that keeps at it is disconnected from its namespace.
    fn rate_limited(&mut self, i: usize, ack: Option<u64>) -> Flow {
        let user = self.sockets.list[i].client.user().cloned();
        let e = crate::limits::refused(
            &self.app,
            TRANSPORT,
            Some(self.peer),
            user.as_ref(),
            crate::limits::Limit::Commands,
        );
        let ns = self.sockets.list[i].namespace.clone();
        self.ack(&ns, ack, &error_json(e.code.as_str(), &e.message));
        let socket = &mut self.sockets.list[i];
        socket.limited_in_a_row += 1;
        if socket.limited_in_a_row >= self.app.config.limits.max_rate_limited_in_a_row.max(1) {
            self.send_packet(&Packet::disconnect(rooms::ns_str(&ns)));
            self.remove_socket(i, "rate limited");
        }
        Flow::Continue
    }

    /// Disconnects sockets whose token expired (they reconnect with a fresh one).
    pub(super) fn expire_tokens(&mut self) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        while let Some(i) = self
            .sockets
            .list
            .iter()
            .position(|s| s.expires.is_some_and(|e| e <= now))
        {
            let ns = self.sockets.list[i].namespace.clone();
            self.app
                .metrics
                .error(TRANSPORT, ErrorCode::TokenExpired.as_str());
            self.send_packet(&Packet::disconnect(rooms::ns_str(&ns)));
            self.remove_socket(i, "token expired");
        }
    }

    /// When the next socket's token expires.
    pub(super) fn next_expiry(&self) -> Option<Instant> {
        let soonest = self.sockets.list.iter().filter_map(|s| s.expires).min()?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Some(Instant::now() + std::time::Duration::from_secs(soonest.saturating_sub(now)))
    }

    /// Whether an event queued now goes out now: always over WebSocket, over polling only
    /// while a GET waits.
    fn writable_now(&self) -> bool {
        self.is_websocket() || self.get_waiting()
    }

    /// The session moved to WebSocket: the registry says so.
    pub(super) fn upgraded(&mut self) {
        for socket in &self.sockets.list {
            self.sio.set_transport(socket.client.id(), "websocket");
        }
    }

    /// A handle on socket `i` for the embedding application's handlers.
    fn socket_handle(&self, i: usize) -> Socket {
        let socket = &self.sockets.list[i];
        self.handle(
            socket.namespace.clone(),
            socket.client.info().clone(),
            socket.handlers.clone(),
        )
    }

    /// A handle on a socket of this session for the embedding application's handlers.
    fn handle(
        &self,
        namespace: Arc<str>,
        info: Arc<switchboard_core::ClientInfo>,
        handlers: Arc<SocketHandlers>,
    ) -> Socket {
        let io = Io {
            sio: self.sio.clone(),
            hub: self.app.hub.clone(),
        };
        Socket::new(
            io,
            namespace,
            info,
            self.inbox(),
            self.outbox.clone(),
            handlers,
        )
    }

    /// Registers a connected socket and answers its CONNECT.
    #[allow(clippy::too_many_arguments)]
    fn attach(
        &mut self,
        ns: &str,
        behaviour: Arc<Behaviour>,
        client: Client,
        auth: Authenticated,
        rooms: Vec<(String, ChannelName)>,
        pid: Option<Arc<str>>,
        track: Option<Track>,
    ) {
        let id = client.id().clone();
        let ns_arc: Arc<str> = Arc::from(ns);
        self.sio.add_socket(
            id.clone(),
            SocketEntry {
                namespace: ns_arc.clone(),
                user: client.user().cloned(),
                outbox: self.outbox.clone(),
                session: self.inbox(),
                transport: self.transport_name(),
            },
        );
        let reply = match &pid {
            Some(pid) => format!(
                r#"{{"sid":{},"pid":{}}}"#,
                json_string(id.as_str()),
                json_string(pid)
            ),
            None => format!(r#"{{"sid":{}}}"#, json_string(id.as_str())),
        };
        let expires = auth.expires;
        let handlers = Arc::new(SocketHandlers::default());
        let connect = self.sio.handlers.connect_handler(ns);
        let socket_handle = self.handle(ns_arc.clone(), client.info().clone(), handlers.clone());
        self.sockets.list.push(NsSocket {
            namespace: ns_arc,
            behaviour,
            client,
            auth,
            rooms,
            pid,
            track,
            handlers,
            ready: connect.is_none(),
            early: Vec::new(),
            bucket: self.app.limits.connection_bucket(),
            limited_in_a_row: 0,
            expires,
        });
        self.sockets.connect_by = None;
        if let Ok(data) = JsonText::parse(Bytes::from(reply)) {
            self.send_packet(&Packet::connect(rooms::ns_str(ns), Some(data)));
        }
        if let Some(connect) = connect {
            let inbox = self.inbox();
            tokio::spawn(async move {
                connect(socket_handle).await;
                let _ = inbox.send(Input::control(Control::Ready(id))).await;
            });
        }
    }

    /// Brings back a parked socket: same id, same rooms, and every publication of its
    /// channels it had not seen, from the hub's history; then what was sent to its id
    /// while it was away. `Err` (nothing changed) when any of it cannot be had.
    async fn recover(
        &mut self,
        ns: &str,
        behaviour: &Arc<Behaviour>,
        auth: &Authenticated,
        parked: Parked,
        offset: Option<&str>,
    ) -> Result<(), &'static str> {
        if parked.lost_direct {
            return Err("messages sent to the socket while away overflowed");
        }
        if auth.user() != parked.auth.user() {
            return Err("another user");
        }
        let positions = parked
            .track
            .positions(offset)
            .ok_or("the offset cannot be placed")?;
        let options = ConnectOptions {
            id: Some(parked.id.clone()),
            outbox: Some(self.outbox.clone()),
        };
        let client = self
            .app
            .hub
            .connect_with(auth.identity.clone(), auth.info.clone(), options)
            .map_err(|_| "the id is in use")?;
        let mut track = Track::default();
        let mut missed = Vec::new();
        for (channel, position) in positions {
            let granted = true;
            let options = SubscribeOptions {
                since: Some(position.clone()),
                join_leave: behaviour.config.members
                    && self.app.hub.channel_options(&channel).join_leave
                    && channel_room(channel.as_str()).1.is_some(),
                granted,
            };
            let r = client
                .subscribe(&channel, options)
                .await
                .map_err(|_| "a channel could not be subscribed")?;
            if r.recovered != Some(true) || r.more {
                return Err("history no longer holds what was missed");
            }
            track.joined(&channel, position);
            missed.extend(r.publications);
        }
        // One order across channels: by publication time (each channel's order is kept).
        missed.sort_by_key(|p| p.time_ms);
        let echo = behaviour.config.echo;
        let id = parked.id.clone();
        self.attach(
            ns,
            behaviour.clone(),
            client,
            auth.clone(),
            parked.rooms,
            Some(parked.pid),
            Some(track),
        );
        for p in missed {
            if !echo && p.info.as_ref().is_some_and(|i| i.client == id) {
                // Its own broadcast, which it was never sent.
                if let Some(i) = self.sockets.index(ns)
                    && let Some(t) = &mut self.sockets.list[i].track
                {
                    t.sent(&p.channel, p.offset);
                }
                continue;
            }
            self.deliver(&Delivery::Publication(p));
        }
        for d in parked.direct {
            self.deliver(&d);
        }
        Ok(())
    }

    /// Who the client is: the CONNECT payload's (or handshake's) token, the connect hook, or
    /// anonymous when allowed. `Err((message, code))` for CONNECT_ERROR.
    async fn authenticate(
        &mut self,
        token: Option<String>,
        auth_data: Option<&JsonText>,
    ) -> Result<Authenticated, (String, &'static str)> {
        if let Some(token) = token {
            return match self.app.auth.connect(Some(&token)).await {
                Ok(a) => Ok(a),
                Err(e) => {
                    let err = identity::refuse_token(&self.app, TRANSPORT, Some(self.peer), &e);
                    self.app.metrics.error(TRANSPORT, err.code.as_str());
                    Err((e.to_string(), err.code.as_str()))
                }
            };
        }
        if let Some(a) = &self.handshake_auth {
            return Ok(a.clone());
        }
        if self.app.hooks.connect_enabled() {
            let info = auth_data.and_then(|d| Payload::json(d.as_bytes().clone()).ok());
            let info = info.and_then(|p| match p {
                Payload::Json(b) => Some(switchboard_core::RawJson::new(b)),
                Payload::Binary(_) => None,
            });
            let caller = Caller {
                transport: TRANSPORT,
                client: None,
                user: None,
                peer: Some(self.peer),
            };
            let request = ConnectInfo {
                headers: self.forwarded.as_ref(),
                name: Some("socket.io"),
                version: None,
                info: info.as_ref(),
            };
            return match self.app.hooks.connect(caller, request).await {
                Ok(a) => Ok(a),
                Err(e) => {
                    let code = e.code(crate::hooks::Hook::Connect);
                    self.app.metrics.error(TRANSPORT, code.as_str());
                    Err((e.to_string(), code.as_str()))
                }
            };
        }
        if self.app.auth.anonymous_allowed() {
            return Ok(Authenticated::default());
        }
        let e = TokenError::Required;
        let err = identity::refuse_token(&self.app, TRANSPORT, Some(self.peer), &e);
        self.app.metrics.error(TRANSPORT, err.code.as_str());
        Err((e.to_string(), err.code.as_str()))
    }

    fn remove_socket(&mut self, i: usize, reason: &'static str) {
        self.remove_socket_parking(i, reason, false);
    }

    /// Removes a socket; with `park` (a cut connection, not a disconnect asked for) and
    /// recovery on, keeps its id, rooms and track for `max_disconnection_ms`.
    fn remove_socket_parking(&mut self, i: usize, reason: &'static str, park: bool) {
        let socket = self.sockets.list.swap_remove(i);
        self.sio.remove_socket(socket.client.id());
        tracing::debug!(sid = %self.sid, socket = %socket.client.id(), reason, "socket.io socket left");
        if let Some(handler) = socket.handlers.disconnect() {
            let handle = self.handle(
                socket.namespace.clone(),
                socket.client.info().clone(),
                socket.handlers.clone(),
            );
            tokio::spawn(handler(handle, reason.to_owned()));
        }
        let NsSocket {
            namespace,
            client,
            auth,
            rooms,
            pid,
            track,
            ..
        } = socket;
        let id = client.id().clone();
        // Leave the hub (every channel, presence, the id) before the socket can be
        // recovered, so a quick reconnection finds its id free.
        drop(client);
        if park && let (Some(pid), Some(track)) = (pid, track) {
            self.sio.park(Parked::new(
                pid,
                namespace,
                id,
                auth,
                rooms,
                track,
                self.sio.config.recovery.max_disconnection_ms,
            ));
        }
    }

    /// Ends every socket when the connection ends; `park` when the cut was not asked for.
    pub(super) fn disconnect_all(&mut self, reason: &'static str, park: bool) {
        while !self.sockets.list.is_empty() {
            self.remove_socket_parking(self.sockets.list.len() - 1, reason, park);
        }
    }

    async fn on_event(&mut self, i: usize, packet: Packet) -> Flow {
        if !self.sockets.list[i].ready {
            let socket = &mut self.sockets.list[i];
            if socket.early.len() < MAX_EARLY_EVENTS {
                socket.early.push(packet);
            } else {
                self.app.metrics.error(TRANSPORT, "early_event_dropped");
            }
            return Flow::Continue;
        }
        let Some(name) = packet.event_name().map(|n| n.into_owned()) else {
            return Flow::Continue;
        };
        if self.sockets.list[i]
            .bucket
            .as_ref()
            .is_some_and(|b| b.check().is_err())
        {
            return self.rate_limited(i, packet.id);
        }
        self.sockets.list[i].limited_in_a_row = 0;
        if let Some(handler) = self.sockets.list[i].handlers.event(&name)
            && let Some(data) = packet.data.clone()
        {
            let socket = self.socket_handle(i);
            let ack = Ack {
                target: packet
                    .id
                    .map(|id| (self.inbox(), self.sockets.list[i].client.id().clone(), id)),
            };
            tokio::spawn(handler(socket, data, ack));
            return Flow::Continue;
        }
        let ns = self.sockets.list[i].namespace.clone();
        let behaviour = self.sockets.list[i].behaviour.clone();
        let Some(data) = packet.data.clone() else {
            return Flow::Continue;
        };
        match behaviour.preset {
            Preset::ConformanceRoot if name == "message" => {
                let Some(args) = rooms::split_args(&data) else {
                    return Flow::Continue;
                };
                let items = std::iter::once(r#""message-back""#)
                    .chain(args.iter().skip(1).map(|a| a.get()));
                if let Some(out) = rooms::join_array(items) {
                    self.emit(&ns, out, packet.attachments.clone());
                }
                return Flow::Continue;
            }
            Preset::ConformanceRoot if name == "message-with-ack" => {
                if let (Some(id), Some(args)) = (packet.id, rooms::split_args(&data))
                    && let Some(out) = rooms::join_array(args.iter().skip(1).map(|a| a.get()))
                {
                    let ack = Packet::ack(rooms::ns_str(&ns), id, out)
                        .with_attachments(packet.attachments.clone());
                    self.send_packet(&ack);
                }
                return Flow::Continue;
            }
            _ => {}
        }
        let config = &behaviour.config;
        let id = packet.id;
        match name.as_str() {
            "join" if config.rooms => {
                let answer = self.join(i, first_string(&data).as_deref(), false).await;
                self.ack(&ns, id, &answer);
            }
            "leave" if config.rooms => {
                let answer = self.leave(i, first_string(&data).as_deref());
                self.ack(&ns, id, &answer);
            }
            "members" if config.members => {
                let answer = self.members(i, first_string(&data).as_deref());
                self.ack(&ns, id, &answer);
            }
            "to" if config.direct => {
                let answer = self.direct(i, &data, &packet.attachments).await;
                self.ack(&ns, id, &answer);
            }
            event if behaviour.relays(event) => {
                let answer = self
                    .relay(i, &name, &data, &packet.attachments, id.is_some())
                    .await;
                self.ack(&ns, id, &answer);
            }
            _ if config.forward && self.app.hooks.event_enabled() => {
                self.forward(i, &name, &data, id);
            }
            _ => {
                self.app.metrics.error(TRANSPORT, "unhandled_event");
                tracing::debug!(sid = %self.sid, namespace = %ns, event = %name, "socket.io event with no handler");
            }
        }
        Flow::Continue
    }

    async fn join(&mut self, i: usize, room: Option<&str>, granted: bool) -> String {
        let Some(room) = room else {
            return error_json("bad_request", "join needs a room name (a string)");
        };
        let socket = &self.sockets.list[i];
        let channel = match room_channel(&socket.namespace, room) {
            Ok(c) => c,
            Err(e) => return error_json("invalid_channel", &e.to_string()),
        };
        if socket.rooms.iter().any(|(r, _)| r == room) {
            return OK.to_owned();
        }
        if socket.rooms.len() >= socket.behaviour.config.max_rooms {
            return error_json(
                "too_many_subscriptions",
                &format!(
                    "a socket may be in {} rooms",
                    socket.behaviour.config.max_rooms
                ),
            );
        }
        let join_leave =
            socket.behaviour.config.members && self.app.hub.channel_options(&channel).join_leave;
        let options = SubscribeOptions {
            since: None,
            join_leave,
            granted: granted || socket.auth.grants(&channel),
        };
        match socket.client.subscribe(&channel, options).await {
            Ok(r) => {
                let socket = &mut self.sockets.list[i];
                if let Some(t) = &mut socket.track {
                    t.joined(&channel, r.position);
                }
                socket.rooms.push((room.to_owned(), channel));
                OK.to_owned()
            }
            Err(HubError::AlreadySubscribed) => {
                self.sockets.list[i].rooms.push((room.to_owned(), channel));
                OK.to_owned()
            }
            Err(e) => {
                let code = ErrorCode::from_hub(&e);
                self.app.metrics.error(TRANSPORT, code.as_str());
                error_json(code.as_str(), &e.to_string())
            }
        }
    }

    fn leave(&mut self, i: usize, room: Option<&str>) -> String {
        let Some(room) = room else {
            return error_json("bad_request", "leave needs a room name (a string)");
        };
        let socket = &mut self.sockets.list[i];
        if let Some(k) = socket.rooms.iter().position(|(r, _)| r == room) {
            let (_, channel) = socket.rooms.swap_remove(k);
            if let Some(t) = &mut socket.track {
                t.left(&channel);
            }
            let _ = socket.client.unsubscribe(&channel);
        }
        OK.to_owned()
    }

    fn members(&mut self, i: usize, room: Option<&str>) -> String {
        let Some(room) = room else {
            return error_json("bad_request", "members needs a room name (a string)");
        };
        let socket = &self.sockets.list[i];
        let channel = match room_channel(&socket.namespace, room) {
            Ok(c) => c,
            Err(e) => return error_json("invalid_channel", &e.to_string()),
        };
        match socket.client.presence(&channel) {
            Ok(list) => {
                let members: Vec<serde_json::Value> = list
                    .iter()
                    .map(|m| {
                        serde_json::json!({
                            "id": m.client.as_str(),
                            "user": m.user.as_ref().map(|u| u.as_str()),
                            "info": m.conn_info.as_ref().and_then(|j| serde_json::from_slice::<serde_json::Value>(j.as_bytes()).ok()),
                        })
                    })
                    .collect();
                serde_json::json!({"ok": true, "members": members}).to_string()
            }
            Err(e) => {
                let code = ErrorCode::from_hub(&e);
                error_json(code.as_str(), &e.to_string())
            }
        }
    }

    /// The event's data with the sender's `{id, user}` inserted after the name.
    fn with_sender(&self, i: usize, data: &JsonText) -> Option<JsonText> {
        let socket = &self.sockets.list[i];
        if !socket.behaviour.config.sender {
            return Some(data.clone());
        }
        let args = rooms::split_args(data)?;
        let from = serde_json::json!({
            "id": socket.client.id().as_str(),
            "user": socket.client.user().map(|u| u.as_str()),
        })
        .to_string();
        let items = args
            .first()
            .map(|n| n.get())
            .into_iter()
            .chain(std::iter::once(from.as_str()))
            .chain(args.iter().skip(1).map(|a| a.get()));
        rooms::join_array(items)
    }

    async fn relay(
        &mut self,
        i: usize,
        name: &str,
        data: &JsonText,
        attachments: &[Bytes],
        wait: bool,
    ) -> String {
        let socket = &self.sockets.list[i];
        let volatile = socket.behaviour.config.volatile.iter().any(|v| v == name);
        let targets: Vec<ChannelName> = match socket.behaviour.config.relay_to {
            RelayTo::Rooms => socket.rooms.iter().map(|(_, c)| c.clone()).collect(),
            RelayTo::Namespace => namespace_channel(&socket.namespace).into_iter().collect(),
        };
        if targets.is_empty() {
            return error_json(
                "bad_request",
                "join a room first: events are relayed to your rooms",
            );
        }
        self.publish(i, data, attachments, &targets, wait, volatile)
            .await
    }

    /// Publishes an event to `targets` as this socket: each recipient once, the sender only
    /// with `echo`.
    async fn publish(
        &mut self,
        i: usize,
        data: &JsonText,
        attachments: &[Bytes],
        targets: &[ChannelName],
        wait: bool,
        volatile: bool,
    ) -> String {
        let Some(data) = self.with_sender(i, data) else {
            return error_json("bad_request", "event data is not an array");
        };
        let payload = match rooms::payload_of(&data, attachments) {
            Ok(p) => p,
            Err(e) => return error_json("invalid_data", &e),
        };
        let socket = &self.sockets.list[i];
        if let Err(limit) = self.app.limits.publication(socket.client.user()) {
            self.app.metrics.error(TRANSPORT, "rate_limited");
            return error_json("rate_limited", limit.message());
        }
        let mut except: HashSet<ClientId> = HashSet::new();
        if !socket.behaviour.config.echo {
            except.insert(socket.client.id().clone());
        }
        let mut pending = Vec::new();
        for (k, channel) in targets.iter().enumerate() {
            if !socket.auth.grants(channel)
                && let Err(e) =
                    self.app
                        .hub
                        .authorize(socket.client.identity(), channel, Action::Publish)
            {
                let code = ErrorCode::from_hub(&e);
                self.app.metrics.error(TRANSPORT, code.as_str());
                return error_json(code.as_str(), &e.to_string());
            }
            if k > 0 {
                // Members of earlier targets already have it.
                if let Ok(members) = self.app.hub.presence(&targets[k - 1]) {
                    except.extend(members.iter().map(|m| m.client.clone()));
                }
            }
            let live = Live {
                except: (!except.is_empty()).then(|| Arc::new(except.clone())),
                volatile,
            };
            match self
                .app
                .hub
                .submit_live(
                    channel,
                    payload.clone(),
                    Some(socket.client.info().clone()),
                    live,
                )
                .await
            {
                Ok(c) => pending.push(c),
                Err(e) => {
                    let code = ErrorCode::from_hub(&e);
                    self.app.metrics.error(TRANSPORT, code.as_str());
                    return error_json(code.as_str(), &e.to_string());
                }
            }
        }
        if wait {
            for c in pending {
                if let Err(e) = c.await {
                    let code = ErrorCode::from_hub(&e);
                    return error_json(code.as_str(), &e.to_string());
                }
            }
        }
        OK.to_owned()
    }

    /// `to(target, event, ...args)`: to a socket by id, or to a room the sender is in.
    async fn direct(&mut self, i: usize, data: &JsonText, attachments: &[Bytes]) -> String {
        let Some(args) = rooms::split_args(data) else {
            return error_json("bad_request", "bad arguments");
        };
        let target: Option<String> = args.get(1).and_then(|a| serde_json::from_str(a.get()).ok());
        let event_ok = args
            .get(2)
            .and_then(|a| serde_json::from_str::<String>(a.get()).ok())
            .is_some();
        let (Some(target), true) = (target, event_ok) else {
            return error_json(
                "bad_request",
                "to needs a target (a socket id or a room) and an event name",
            );
        };
        // The event as the recipient sees it: `[event, args…]`.
        let Some(event) = rooms::join_array(args.iter().skip(2).map(|a| a.get())) else {
            return error_json("bad_request", "bad arguments");
        };
        let ns = self.sockets.list[i].namespace.clone();
        if let Some(room) = self.sockets.list[i]
            .rooms
            .iter()
            .find(|(r, _)| *r == target)
            .map(|(_, c)| c.clone())
        {
            return self
                .publish(i, &event, attachments, &[room], false, false)
                .await;
        }
        if self.sio.socket(&target).is_some_and(|e| e.namespace == ns) {
            let Some(event) = self.with_sender(i, &event) else {
                return error_json("bad_request", "bad arguments");
            };
            let payload = match rooms::payload_of(&event, attachments) {
                Ok(p) => p,
                Err(e) => return error_json("invalid_data", &e),
            };
            let socket = &self.sockets.list[i];
            if let Err(limit) = self.app.limits.publication(socket.client.user()) {
                return error_json("rate_limited", limit.message());
            }
            if let Some(d) =
                direct_delivery(&ns, payload, Some(socket.client.info().clone()), false)
                && self.sio.deliver_to_socket(&target, &ns, d)
            {
                return OK.to_owned();
            }
        }
        error_json(
            "not_found",
            "no such socket in this namespace, and you are not in such a room",
        )
    }

    /// Turns a hub delivery into events for the socket of its namespace.
    pub(super) fn deliver(&mut self, d: &Delivery) {
        match d {
            Delivery::Publication(p) => {
                let (ns, _) = channel_room(p.channel.as_str());
                let Some(i) = self.sockets.index(ns) else {
                    return;
                };
                if p.volatile && !self.writable_now() {
                    // A volatile event a polling client cannot take now (no GET waiting).
                    return;
                }
                // With recovery on, events end with an offset: the publication's own (the
                // same for every recipient), or for one sent to this socket alone, that of
                // the last publication it was sent.
                let direct_tag = match &mut self.sockets.list[i].track {
                    Some(t) if p.offset == 0 => Some(t.last_tag()),
                    Some(t) => {
                        t.sent(&p.channel, p.offset);
                        None
                    }
                    None => None,
                };
                let tagged = self.sio.config.recovery.enabled;
                let limits = self.sio.limits;
                let encode = |p: &Publication, parser: Parser| -> Option<Encoded> {
                    let (ns, _) = channel_room(p.channel.as_str());
                    let (data, attachments) = rooms::event_of(&p.data, &limits)?;
                    let data = match (&direct_tag, tagged) {
                        (Some(tag), _) => with_offset(&data, tag)?,
                        (None, true) => with_offset(&data, &offset_tag(&p.channel, p.offset))?,
                        (None, false) => data,
                    };
                    let packet =
                        Packet::event(rooms::ns_str(ns), data).with_attachments(attachments);
                    match parser {
                        Parser::Json => packet.encode().ok(),
                        Parser::Msgpack => msgpack::encode(&packet).ok(),
                    }
                };
                match (self.parser(), self.is_websocket()) {
                    (Parser::Json, true) => {
                        let b = p.frame(SIO_WS_JSON, |p| {
                            encode(p, Parser::Json)
                                .map_or_else(Bytes::new, |e| ws_frames(e.websocket()))
                        });
                        self.send_encoded(|| b, Bytes::new);
                    }
                    (Parser::Json, false) => {
                        let b = p.frame(SIO_POLL_JSON, |p| {
                            encode(p, Parser::Json).map_or_else(Bytes::new, |e| e.polling().clone())
                        });
                        self.send_encoded(Bytes::new, || b);
                    }
                    (Parser::Msgpack, true) => {
                        let b = p.frame(SIO_WS_MSGPACK, |p| {
                            encode(p, Parser::Msgpack)
                                .map_or_else(Bytes::new, |e| ws_frames(e.websocket()))
                        });
                        self.send_encoded(|| b, Bytes::new);
                    }
                    (Parser::Msgpack, false) => {
                        if let Some(e) = encode(p, Parser::Msgpack) {
                            self.send_encoded_packet(&e);
                        }
                    }
                }
            }
            Delivery::Join(e) | Delivery::Leave(e) => {
                let (ns, room) = channel_room(e.channel.as_str());
                let Some(i) = self.sockets.index(ns) else {
                    return;
                };
                if !self.sockets.list[i].behaviour.config.members {
                    return;
                }
                let event = if matches!(d, Delivery::Join(_)) {
                    "joined"
                } else {
                    "left"
                };
                let body = serde_json::json!([event, {
                    "room": room,
                    "id": e.info.client.as_str(),
                    "user": e.info.user.as_ref().map(|u| u.as_str()),
                }])
                .to_string();
                let ns = ns.to_owned();
                if let Ok(data) = JsonText::parse(Bytes::from(body)) {
                    self.emit(&ns, data, Vec::new());
                }
            }
            Delivery::Message(_) => {}
        }
    }

    pub(super) async fn on_control(&mut self, c: Control) -> Flow {
        match c {
            Control::Join(id, rooms, reply) => {
                let Some(i) = self.sockets.index_of_id(&id) else {
                    let _ = reply.send(Err("no such socket".to_owned()));
                    return Flow::Continue;
                };
                let mut result = Ok(());
                for room in rooms {
                    let answer = self.join(i, Some(&room), true).await;
                    if answer != OK {
                        result = Err(answer);
                        break;
                    }
                }
                let _ = reply.send(result);
            }
            Control::Leave(id, rooms) => {
                if let Some(i) = self.sockets.index_of_id(&id) {
                    for room in rooms {
                        self.leave(i, Some(&room));
                    }
                }
            }
            Control::Disconnect(id, close) => {
                if close {
                    // As the reference server's `disconnect(true)`: every namespace is told,
                    // then the connection closes (so the client does not reconnect).
                    while let Some(socket) = self.sockets.list.last() {
                        let ns = socket.namespace.clone();
                        self.send_packet(&Packet::disconnect(rooms::ns_str(&ns)));
                        self.remove_socket(self.sockets.list.len() - 1, "server disconnect");
                    }
                    return Flow::Close("disconnected through the server API");
                }
                if let Some(i) = self.sockets.index_of_id(&id) {
                    let ns = self.sockets.list[i].namespace.clone();
                    self.send_packet(&Packet::disconnect(rooms::ns_str(&ns)));
                    self.remove_socket(i, "server namespace disconnect");
                }
            }
            Control::EmitWithAck(id, data, timeout, reply) => {
                let Some(i) = self.sockets.index_of_id(&id) else {
                    let _ = reply.send(Err("no such socket".to_owned()));
                    return Flow::Continue;
                };
                if self.sockets.acks.len() >= MAX_PENDING_ACKS {
                    let _ = reply.send(Err(
                        "too many acks outstanding for this connection".to_owned()
                    ));
                    return Flow::Continue;
                }
                self.sockets.next_ack += 1;
                let ack_id = self.sockets.next_ack;
                let ns = self.sockets.list[i].namespace.clone();
                self.sockets.acks.push(PendingAck {
                    id: ack_id,
                    socket: id,
                    deadline: Instant::now() + timeout,
                    reply,
                });
                self.send_packet(&Packet::event(rooms::ns_str(&ns), data).with_id(ack_id));
            }
            Control::Ack(id, ack_id, data) => {
                if let Some(i) = self.sockets.index_of_id(&id) {
                    let ns = self.sockets.list[i].namespace.clone();
                    self.send_packet(&Packet::ack(rooms::ns_str(&ns), ack_id, data));
                }
            }
            Control::Ready(id) => {
                if let Some(i) = self.sockets.index_of_id(&id) {
                    self.sockets.list[i].ready = true;
                    let early = std::mem::take(&mut self.sockets.list[i].early);
                    for packet in early {
                        // The socket may leave while its early events are handled.
                        let Some(i) = self.sockets.index_of_id(&id) else {
                            break;
                        };
                        let flow = Box::pin(self.on_event(i, packet)).await;
                        if flow != Flow::Continue {
                            return flow;
                        }
                    }
                }
            }
            Control::Rooms(id, reply) => {
                let rooms = self
                    .sockets
                    .index_of_id(&id)
                    .map(|i| {
                        self.sockets.list[i]
                            .rooms
                            .iter()
                            .map(|(r, _)| r.clone())
                            .collect()
                    })
                    .unwrap_or_default();
                let _ = reply.send(rooms);
            }
        }
        Flow::Continue
    }
}

/// Most events of one connection waiting for the backend at once.
const MAX_FORWARDS_IN_FLIGHT: usize = 16;
/// Most actions one answer of the event hook may carry.
const MAX_ACTIONS: usize = 32;

/// A forwarded event's call, owned by the session.
pub(super) type ForwardCall =
    std::pin::Pin<Box<dyn std::future::Future<Output = Forwarded> + Send>>;

/// The backend's answer to a forwarded event.
pub(super) struct Forwarded {
    socket: ClientId,
    ack: Option<u64>,
    result: Result<EventAnswer, HookError>,
}

/// One action of an event hook's answer.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct HookAction {
    emit: Option<EmitAction>,
    join: Option<OneOrMany>,
    leave: Option<OneOrMany>,
    #[serde(default)]
    disconnect: bool,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct EmitAction {
    event: String,
    #[serde(default)]
    volatile: bool,
    #[serde(default)]
    args: Vec<Box<RawValue>>,
    #[serde(default)]
    rooms: Vec<String>,
    #[serde(default)]
    sockets: Vec<String>,
}

#[derive(serde::Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            Self::One(s) => vec![s],
            Self::Many(v) => v,
        }
    }
}

impl Session {
    /// Forwards an event no namespace rule handles to the backend's event hook; its answer
    /// arrives in [`Session::on_forwarded`] while the connection goes on.
    fn forward(&mut self, i: usize, name: &str, data: &JsonText, ack: Option<u64>) {
        let ns = self.sockets.list[i].namespace.clone();
        if self.forwards.len() >= MAX_FORWARDS_IN_FLIGHT {
            self.app.metrics.error(TRANSPORT, "rate_limited");
            self.ack(
                &ns,
                ack,
                &error_json("rate_limited", "too many events wait for the backend"),
            );
            return;
        }
        let args = rooms::split_args(data)
            .and_then(|a| rooms::join_array(a.iter().skip(1).map(|x| x.get())))
            .and_then(|a| RawValue::from_string(a.as_str().to_owned()).ok());
        let Some(args) = args else { return };
        let socket = &self.sockets.list[i];
        let id = socket.client.id().clone();
        let user = socket.client.user().cloned();
        let rooms: Vec<String> = socket.rooms.iter().map(|(r, _)| r.clone()).collect();
        let hooks = self.app.hooks.clone();
        let peer = self.peer;
        let event = name.to_owned();
        self.forwards.push(Box::pin(async move {
            let caller = Caller {
                transport: TRANSPORT,
                client: Some(&id),
                user: user.as_ref(),
                peer: Some(peer),
            };
            let ev = SocketIoEvent {
                namespace: &ns,
                rooms: &rooms,
                event: &event,
                args: &args,
            };
            let result = hooks.socketio_event(caller, &ev).await;
            Forwarded {
                socket: id,
                ack,
                result,
            }
        }));
    }

    /// Carries out the backend's answer to a forwarded event: its actions, then the ack.
    pub(super) async fn on_forwarded(&mut self, f: Forwarded) -> Flow {
        let Some(i) = self.sockets.index_of_id(&f.socket) else {
            return Flow::Continue;
        };
        let ns = self.sockets.list[i].namespace.clone();
        let (ack, actions) = match f.result {
            Ok(answer) => answer,
            Err(HookError::Disconnect { .. }) => {
                self.send_packet(&Packet::disconnect(rooms::ns_str(&ns)));
                self.remove_socket(i, "disconnected by the backend");
                return Flow::Continue;
            }
            Err(e) => {
                let code = e.code(Hook::Event);
                self.ack(&ns, f.ack, &error_json(code.as_str(), &e.to_string()));
                return Flow::Continue;
            }
        };
        for raw in actions.iter().take(MAX_ACTIONS) {
            let action: HookAction = match serde_json::from_str(raw.get()) {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "event hook answered an invalid action; skipped");
                    continue;
                }
            };
            // The socket may have left meanwhile (a `disconnect` action).
            let Some(i) = self.sockets.index_of_id(&f.socket) else {
                return Flow::Continue;
            };
            if let Some(rooms) = action.join {
                for r in rooms.into_vec().into_iter().take(MAX_ACTIONS) {
                    let answer = self.join(i, Some(&r), true).await;
                    if answer != OK {
                        tracing::debug!(room = %r, answer, "event hook's join failed");
                    }
                }
            }
            if let Some(rooms) = action.leave {
                for r in rooms.into_vec().into_iter().take(MAX_ACTIONS) {
                    self.leave(i, Some(&r));
                }
            }
            if let Some(emit) = action.emit {
                self.action_emit(i, emit).await;
            }
            if action.disconnect {
                self.send_packet(&Packet::disconnect(rooms::ns_str(&ns)));
                self.remove_socket(i, "disconnected by the backend");
                return Flow::Continue;
            }
        }
        if let Some(id) = f.ack {
            let data = match ack {
                Some(a) if a.get().trim_start().starts_with('[') => a.get().to_owned(),
                Some(a) => format!("[{}]", a.get()),
                None => "[]".to_owned(),
            };
            if let Ok(data) = JsonText::parse(Bytes::from(data)) {
                self.send_packet(&Packet::ack(rooms::ns_str(&ns), id, data));
            }
        }
        Flow::Continue
    }

    /// An `emit` action: to rooms (everyone in them), to sockets, or to this socket.
    async fn action_emit(&mut self, i: usize, emit: EmitAction) {
        if RESERVED_EVENTS.contains(&emit.event.as_str()) {
            return;
        }
        let name = json_string(&emit.event);
        let Some(data) = rooms::join_array(
            std::iter::once(name.as_str()).chain(emit.args.iter().map(|a| a.get())),
        ) else {
            return;
        };
        let ns = self.sockets.list[i].namespace.clone();
        if emit.rooms.is_empty() && emit.sockets.is_empty() {
            self.emit(&ns, data, Vec::new());
            return;
        }
        let Ok(payload) = Payload::json(data.as_bytes().clone()) else {
            return;
        };
        for r in emit.rooms.iter().take(MAX_ACTIONS) {
            let live = Live {
                except: None,
                volatile: emit.volatile,
            };
            if let Ok(channel) = room_channel(&ns, r)
                && let Err(e) = self
                    .app
                    .hub
                    .submit_live(&channel, payload.clone(), None, live)
                    .await
            {
                tracing::debug!(room = %r, error = %e, "event hook's emit failed");
            }
        }
        for s in emit.sockets.iter().take(MAX_ACTIONS) {
            if let Some(d) = direct_delivery(&ns, payload.clone(), None, emit.volatile) {
                self.sio.deliver_to_socket(s, &ns, d);
            }
        }
    }
}

/// A delivery straight to one socket (its own-id room): a publication outside any stream,
/// on the namespace's channel so the session routes it to the right socket.
pub(crate) fn direct_delivery(
    namespace: &str,
    data: Payload,
    info: Option<Arc<switchboard_core::ClientInfo>>,
    volatile: bool,
) -> Option<Delivery> {
    let channel = namespace_channel(namespace)?;
    Some(Delivery::Publication(Arc::new(Prepared::new(
        Publication {
            channel,
            offset: 0,
            epoch: Epoch::from_client(""),
            data,
            info,
            published_at: Instant::now(),
            time_ms: switchboard_core::store::unix_ms(),
            except: None,
            volatile,
        },
    ))))
}

/// The CONNECT payload fields we read.
#[derive(serde::Deserialize)]
struct AuthPayload {
    token: Option<String>,
    pid: Option<String>,
    offset: Option<String>,
}

/// `["event", args…]` with `tag` appended as a last argument.
fn with_offset(data: &JsonText, tag: &str) -> Option<JsonText> {
    let text = data.as_str().trim_end();
    let body = text.strip_suffix(']')?;
    JsonText::parse(Bytes::from(format!("{body},{}]", json_string(tag)))).ok()
}

/// The first argument of `["event", arg, …]` when it is a string.
fn first_string(data: &JsonText) -> Option<String> {
    let args = rooms::split_args(data)?;
    serde_json::from_str(args.get(1)?.get()).ok()
}
