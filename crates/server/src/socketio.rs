//! Socket.IO compatibility: Engine.IO v4 sessions at `/socket.io/` (long-polling, WebSocket,
//! the upgrade between them) and Socket.IO v5 namespaces, rooms and acknowledgements on the
//! hub. The wire codecs are `switchboard_socketio`'s; this module owns sessions and their
//! mapping onto hub clients and channels. See `docs/socketio.md`.
//!
//! - `engine`: the HTTP entry point: handshakes, polling requests, WebSocket upgrades, the
//!   Engine.IO error replies.
//! - `session`: one task per Engine.IO session owning its transport(s), heartbeat and every
//!   Socket.IO socket of the connection; `socket` holds the Socket.IO half.
//! - `rooms`: the room ↔ channel mapping and event ↔ publication conversion.
//! - `namespace`: which namespaces exist and what they let clients do.
//! - `recovery`: connection state recovery from the hub's history.
//! - `handlers`: the embeddable Rust API ([`Io`], [`Socket`], [`Broadcast`]).
//! - `api`: the server API under `/api/socketio/`.

mod api;
mod config;
pub(crate) mod engine;
mod handlers;
mod link;
mod namespace;
mod recovery;
pub(crate) mod rooms;
mod session;
mod socket;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use switchboard_core::{ClientId, Delivery, Outbox, UserId};
use switchboard_socketio::Limits;
use tokio::sync::{mpsc, oneshot};

pub(crate) use api::router as api_router;
pub use config::{NamespaceConfig, ParserChoice, RecoveryConfig, RelayTo, SocketIoConfig};
pub use handlers::{Ack, Broadcast, Io, MAX_EARLY_EVENTS, Namespace, Socket, SocketError};

use crate::{socketio::namespace::Namespaces, transport::websocket::conn::Conn};

/// What HTTP handlers and the server API ask of a session's task. Every variant is one word,
/// so each session's inbox stays small (its queue allocates slots of this size up front).
pub(crate) enum Input {
    /// A polling POST's packets (already decoded as Engine.IO packets); the reply says
    /// whether the session takes polling requests.
    Post(Box<PostInput>),
    /// A polling GET waiting for the next payload.
    Get(oneshot::Sender<Result<bytes::Bytes, engine::EngineError>>),
    /// The WebSocket of an upgrade, to probe, with the bytes that came with it.
    Upgrade(Box<(Conn, bytes::Bytes)>),
    /// A request from the server API or the Rust handler API.
    Control(Box<Control>),
}

/// A polling POST: its packets and where to say whether they were taken.
pub(crate) type PostInput = (
    Vec<switchboard_socketio::engineio::Packet>,
    Option<oneshot::Sender<Result<(), engine::EngineError>>>,
);

impl Input {
    pub(crate) fn control(c: Control) -> Self {
        Self::Control(Box::new(c))
    }
}

/// Server API requests for one socket.
pub(crate) enum Control {
    /// Join rooms.
    Join(ClientId, Vec<String>, oneshot::Sender<Result<(), String>>),
    /// Leave rooms.
    Leave(ClientId, Vec<String>),
    /// Disconnect the socket (or, with `close`, the whole connection).
    Disconnect(ClientId, bool),
    /// The socket's rooms.
    Rooms(ClientId, oneshot::Sender<Vec<String>>),
    /// Acknowledge the socket's event `id` with this data (an array).
    Ack(ClientId, u64, switchboard_socketio::JsonText),
    /// The socket's connect handler finished: dispatch its events.
    Ready(ClientId),
    /// Emit an event (`["name", args…]`) asking for an ack; the ack's data (an array) or
    /// why there is none.
    EmitWithAck(
        ClientId,
        switchboard_socketio::JsonText,
        Duration,
        oneshot::Sender<Result<switchboard_socketio::JsonText, String>>,
    ),
}

/// A connected socket as the rest of the server finds it.
#[derive(Clone)]
pub(crate) struct SocketEntry {
    pub(crate) namespace: Arc<str>,
    pub(crate) user: Option<UserId>,
    pub(crate) outbox: Arc<Outbox>,
    pub(crate) session: mpsc::Sender<Input>,
    pub(crate) transport: &'static str,
}

/// The Socket.IO endpoint's shared state.
pub(crate) struct SocketIo {
    pub(crate) config: SocketIoConfig,
    pub(crate) namespaces: Namespaces,
    pub(crate) limits: Limits,
    sessions: Mutex<HashMap<Arc<str>, mpsc::Sender<Input>>>,
    sockets: Mutex<HashMap<ClientId, SocketEntry>>,
    parked: Mutex<recovery::ParkedSockets>,
    pub(crate) handlers: handlers::Registry,
}

/// [`crate::fuzzing::socketio_recovery_positions`].
#[doc(hidden)]
pub(crate) fn recovery_positions_for_fuzzing(offset: &str) -> Option<(u64, u64)> {
    let (Ok(a), Ok(b)) = (
        switchboard_core::ChannelName::parse("a"),
        switchboard_core::ChannelName::parse("b"),
    ) else {
        return None;
    };
    let epoch = switchboard_core::Epoch::from_client("e");
    let at = |offset| switchboard_core::StreamPosition {
        offset,
        epoch: epoch.clone(),
    };
    let mut track = recovery::Track::default();
    track.joined(&a, at(0));
    track.joined(&b, at(0));
    for (c, o) in [(&a, 1), (&a, 2), (&b, 1), (&a, 3), (&b, 2)] {
        track.sent(c, o);
    }
    let positions = track.positions(Some(offset))?;
    let of = |c: &switchboard_core::ChannelName| {
        positions
            .iter()
            .find(|(x, _)| x == c)
            .map_or(0, |(_, p)| p.offset)
    };
    Some((of(&a), of(&b)))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every update is a single insert or remove: a poisoned map is still consistent.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl SocketIo {
    pub(crate) fn new(config: &SocketIoConfig) -> Arc<Self> {
        let mut config = config.clone();
        if config.conformance {
            config.ping_interval_ms = 300;
            config.ping_timeout_ms = 200;
            config.max_payload_bytes = 1_000_000;
            config.connect_timeout_ms = 1000;
        }
        let limits = Limits {
            max_payload_bytes: config.max_payload_bytes,
            max_attachments: Limits::DEFAULT.max_attachments,
            max_attachment_bytes: config.max_payload_bytes,
        };
        Arc::new(Self {
            namespaces: Namespaces::new(&config),
            limits,
            config,
            sessions: Mutex::default(),
            sockets: Mutex::default(),
            parked: Mutex::default(),
            handlers: handlers::Registry::default(),
        })
    }

    pub(crate) fn ping_interval(&self) -> Duration {
        Duration::from_millis(self.config.ping_interval_ms.max(1))
    }

    pub(crate) fn ping_timeout(&self) -> Duration {
        Duration::from_millis(self.config.ping_timeout_ms.max(1))
    }

    /// The session `sid`'s inbox.
    pub(crate) fn session(&self, sid: &str) -> Option<mpsc::Sender<Input>> {
        lock(&self.sessions).get(sid).cloned()
    }

    /// Registers a session; `false` when `max_sessions` are open.
    pub(crate) fn add_session(&self, sid: Arc<str>, tx: mpsc::Sender<Input>) -> bool {
        let mut sessions = lock(&self.sessions);
        if sessions.len() >= self.config.max_sessions {
            return false;
        }
        sessions.insert(sid, tx);
        true
    }

    /// Whether another session may open.
    pub(crate) fn has_room(&self) -> bool {
        lock(&self.sessions).len() < self.config.max_sessions
    }

    pub(crate) fn remove_session(&self, sid: &str) {
        lock(&self.sessions).remove(sid);
    }

    pub(crate) fn add_socket(&self, id: ClientId, entry: SocketEntry) {
        lock(&self.sockets).insert(id, entry);
    }

    pub(crate) fn set_transport(&self, id: &ClientId, transport: &'static str) {
        if let Some(e) = lock(&self.sockets).get_mut(id) {
            e.transport = transport;
        }
    }

    pub(crate) fn remove_socket(&self, id: &ClientId) {
        lock(&self.sockets).remove(id);
    }

    /// The socket `id`, if connected.
    pub(crate) fn socket(&self, id: &str) -> Option<SocketEntry> {
        lock(&self.sockets).get(&ClientId::restore(id)).cloned()
    }

    /// Every connected socket of `namespace` (all namespaces when `None`).
    pub(crate) fn sockets(&self, namespace: Option<&str>) -> Vec<(ClientId, SocketEntry)> {
        lock(&self.sockets)
            .iter()
            .filter(|(_, e)| namespace.is_none_or(|n| &*e.namespace == n))
            .map(|(id, e)| (id.clone(), e.clone()))
            .collect()
    }

    /// Delivers `delivery` to socket `id` directly (its own-id room), or keeps it for the
    /// socket when it is parked for recovery. `false` when it is not connected to
    /// `namespace`.
    pub(crate) fn deliver_to_socket(&self, id: &str, namespace: &str, delivery: Delivery) -> bool {
        match self.socket(id) {
            Some(e) if &*e.namespace == namespace => {
                e.outbox.push(delivery);
                true
            }
            Some(_) => false,
            None => lock(&self.parked).keep_for(&ClientId::restore(id), namespace, delivery),
        }
    }

    /// Keeps a cut socket for recovery (the oldest goes when `max_sessions` are kept).
    pub(crate) fn park(&self, parked: recovery::Parked) {
        lock(&self.parked).park(parked, self.config.max_sessions);
    }

    /// Takes the socket parked under `pid` in `namespace`, unless it expired.
    pub(crate) fn unpark(&self, pid: &str, namespace: &str) -> Option<recovery::Parked> {
        lock(&self.parked).take(pid, namespace)
    }
}
