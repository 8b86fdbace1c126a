//! `[socketio]`: the Engine.IO / Socket.IO endpoint's settings and each namespace's declared
//! behaviour. See `docs/socketio.md`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Settings of the Socket.IO endpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SocketIoConfig {
    /// Serve Engine.IO / Socket.IO at `path`.
    pub enabled: bool,
    /// The endpoint's path (the client's `path` option), with its trailing slash.
    pub path: String,
    /// Engine.IO `pingInterval`, in milliseconds.
    pub ping_interval_ms: u64,
    /// Engine.IO `pingTimeout`, in milliseconds.
    pub ping_timeout_ms: u64,
    /// A polling → WebSocket upgrade must finish within this, in milliseconds.
    pub upgrade_timeout_ms: u64,
    /// Engine.IO `maxPayload`: the largest polling body or WebSocket message, in bytes.
    pub max_payload_bytes: usize,
    /// Time a client has to CONNECT to a namespace after the Engine.IO handshake, in
    /// milliseconds.
    pub connect_timeout_ms: u64,
    /// Engine.IO sessions at once; past it the handshake is answered 503.
    pub max_sessions: usize,
    /// Packets waiting for the next polling GET; past it the session is dropped as a slow
    /// consumer.
    pub max_buffered_packets: usize,
    /// Behave like the server the official protocol test suites were written against.
    pub conformance: bool,
    /// Connection state recovery.
    pub recovery: RecoveryConfig,
    /// Namespaces by name (`/chat`), or by pattern ending with `*` (`/game-*`).
    pub namespaces: BTreeMap<String, NamespaceConfig>,
}

/// Connection state recovery (Socket.IO 4.6+).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecoveryConfig {
    /// Keep a disconnected socket's id and rooms for `max_disconnection_ms`, and replay what
    /// it missed when it comes back.
    pub enabled: bool,
    /// How long a disconnected socket may come back, in milliseconds.
    pub max_disconnection_ms: u64,
}

/// Which Socket.IO parser a namespace accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ParserChoice {
    /// Whichever the client uses (the default parser sends text, the MessagePack one binary).
    #[default]
    Any,
    /// Only the default (JSON text) parser.
    Json,
    /// Only `socket.io-msgpack-parser`.
    Msgpack,
}

/// Where relayed events go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RelayTo {
    /// Every room the sender is in.
    #[default]
    Rooms,
    /// Every socket of the namespace.
    Namespace,
}

/// What clients of one namespace may do without server code.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NamespaceConfig {
    /// The parser clients must use.
    pub parser: ParserChoice,
    /// Clients may `join` and `leave` rooms.
    pub rooms: bool,
    /// Events relayed to the sender's rooms (or namespace); `"*"` relays every event.
    pub relay: Vec<String>,
    /// Where relayed events go.
    pub relay_to: RelayTo,
    /// Relayed events that are volatile: a client that cannot take one at once (a polling
    /// client between two requests) skips it (typing indicators, cursor positions).
    pub volatile: Vec<String>,
    /// The sender gets its own relayed events too.
    pub echo: bool,
    /// Relayed and `to` events get `{id, user}` of the sender as first argument.
    pub sender: bool,
    /// Clients may send `to` a socket id or a room they are in.
    pub direct: bool,
    /// Clients may ask `members` of a room; rooms announce `joined` and `left`.
    pub members: bool,
    /// Events not handled here go to `[hooks] event_url` when it is set.
    pub forward: bool,
    /// Rooms one socket may be in, besides its own id.
    pub max_rooms: usize,
}

impl Default for SocketIoConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            path: "/socket.io/".to_owned(),
            ping_interval_ms: 25_000,
            ping_timeout_ms: 20_000,
            upgrade_timeout_ms: 10_000,
            max_payload_bytes: 1_000_000,
            connect_timeout_ms: 45_000,
            max_sessions: 15_000,
            max_buffered_packets: 1000,
            conformance: false,
            recovery: RecoveryConfig::default(),
            namespaces: BTreeMap::new(),
        }
    }
}

impl Default for RecoveryConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            max_disconnection_ms: 120_000,
        }
    }
}

impl Default for NamespaceConfig {
    fn default() -> Self {
        Self {
            parser: ParserChoice::Any,
            rooms: false,
            relay: Vec::new(),
            relay_to: RelayTo::Rooms,
            volatile: Vec::new(),
            echo: false,
            sender: true,
            direct: false,
            members: false,
            forward: true,
            max_rooms: 32,
        }
    }
}
