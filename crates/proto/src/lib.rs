//! switchboard's native protocol (see `docs/protocol.md`): client commands decoded from JSON
//! text or MessagePack into validated [`Request`]s, and server replies and pushes encoded
//! back. Knows nothing about sockets or WebSocket framing: the server wraps these bytes in
//! frames (once per publication per format) and moves them.

mod codes;
mod command;
mod encode;

pub use codes::{ErrorCode, close, disconnect_close};
pub use command::{
    Command, DEFAULT_HISTORY_LIMIT, DecodeError, MAX_HISTORY_LIMIT, MAX_METHOD_BYTES, Request,
    decode,
};
pub use encode::{
    PresenceKind, Reply, disconnect_push, error, message_push, ping_push, presence_json,
    presence_push, publication_json, publication_push, refresh_push, reply, result_json,
};

/// A wire format of the native protocol, chosen per WebSocket connection by subprotocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// JSON text frames (`switchboard.json`).
    Json,
    /// MessagePack binary frames (`switchboard.msgpack`).
    MessagePack,
}

impl Format {
    /// The WebSocket subprotocol naming this format.
    pub fn subprotocol(self) -> &'static str {
        match self {
            Self::Json => "switchboard.json",
            Self::MessagePack => "switchboard.msgpack",
        }
    }

    /// The format named by a WebSocket subprotocol.
    pub fn from_subprotocol(name: &str) -> Option<Self> {
        match name {
            "switchboard.json" => Some(Self::Json),
            "switchboard.msgpack" => Some(Self::MessagePack),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests;
