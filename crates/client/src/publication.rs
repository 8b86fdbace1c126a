//! The values the client hands to its caller: [`Data`] (what a publication or message
//! carries), [`Publication`], [`StreamPosition`] and [`ClientInfo`]. Plain owned types with
//! no wire details; `wire.rs` converts to and from frames.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// The data of a publication or a user message.
///
/// JSON data travels as JSON in both wire formats (a native MessagePack value in
/// MessagePack); binary data travels as base64 (`b64`) in JSON frames and as a MessagePack
/// `bin` in MessagePack frames. The server never interprets either.
#[derive(Debug, Clone, PartialEq)]
pub enum Data {
    /// Any JSON value.
    Json(serde_json::Value),
    /// Opaque bytes.
    Binary(Bytes),
}

impl Data {
    /// Serializes `value` as JSON data.
    ///
    /// Fails only for values JSON cannot represent (such as maps with non-string keys).
    pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<Self, serde_json::Error> {
        Ok(Self::Json(serde_json::to_value(value)?))
    }

    /// The JSON value, when this is JSON data.
    pub fn as_json(&self) -> Option<&serde_json::Value> {
        match self {
            Self::Json(value) => Some(value),
            Self::Binary(_) => None,
        }
    }

    /// The bytes, when this is binary data.
    pub fn as_binary(&self) -> Option<&Bytes> {
        match self {
            Self::Json(_) => None,
            Self::Binary(bytes) => Some(bytes),
        }
    }
}

impl From<serde_json::Value> for Data {
    fn from(value: serde_json::Value) -> Self {
        Self::Json(value)
    }
}

impl From<Bytes> for Data {
    fn from(bytes: Bytes) -> Self {
        Self::Binary(bytes)
    }
}

impl From<Vec<u8>> for Data {
    fn from(bytes: Vec<u8>) -> Self {
        Self::Binary(Bytes::from(bytes))
    }
}

/// A position in a channel's stream: the offset of the last publication in `epoch` (0 when
/// nothing was published yet).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StreamPosition {
    /// Offset of the last publication; publications are numbered 1, 2, 3… without gaps.
    pub offset: u64,
    /// The stream's epoch; offsets are only comparable within one epoch.
    pub epoch: String,
}

impl StreamPosition {
    /// A position from its parts.
    pub fn new(offset: u64, epoch: impl Into<String>) -> Self {
        Self {
            offset,
            epoch: epoch.into(),
        }
    }
}

/// Who a connection is, as shown in presence, on publications and in join/leave events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientInfo {
    /// The connection's client id.
    pub client: String,
    /// The user id, when the connection is authenticated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The `info` the connection gave when it connected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<serde_json::Value>,
}

/// One message of a channel's stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Publication {
    /// The channel it was published to.
    pub channel: String,
    /// Its offset in the channel's stream (1, 2, 3… within `epoch`).
    pub offset: u64,
    /// The stream's epoch when it was published.
    pub epoch: String,
    /// The data.
    pub data: Data,
    /// Who published it, when a client connection did (absent for the server HTTP API).
    pub info: Option<ClientInfo>,
}

impl Publication {
    /// This publication's position in its channel's stream.
    pub fn position(&self) -> StreamPosition {
        StreamPosition::new(self.offset, self.epoch.clone())
    }
}
