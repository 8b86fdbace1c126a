//! The native protocol's frames as this client sees them (`docs/protocol.md`, "WebSocket"):
//! encoding commands into JSON text or MessagePack binary frames, and decoding replies and
//! pushes from either. Only the connection task calls it; it never touches a socket.
//!
//! Incoming frames are decoded into one flat struct holding the union of all reply and push
//! fields, so each frame is parsed once with no intermediate tree. The frame type (text or
//! binary) decides the decoder, not the negotiated format. `data` is decoded by a visitor
//! that keeps a MessagePack `bin` as [`Data::Binary`] and anything else as JSON; JSON frames
//! carry binary data as base64 in `b64`, and both spellings are accepted in both formats.
//!
//! When `crates/proto` exists, these types belong there (STYLE §1: client → proto).

use std::fmt;

use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use bytes::Bytes;
use serde::{
    Deserialize, Deserializer, Serialize, Serializer,
    de::{
        MapAccess, SeqAccess, Visitor,
        value::{MapAccessDeserializer, SeqAccessDeserializer},
    },
};
use tokio_tungstenite::tungstenite::Message;

use crate::{
    error::{ClientError, ErrorCode},
    history::{HistoryFrom, HistoryOptions},
    options::Format,
    publication::{ClientInfo, Data, Publication, StreamPosition},
};

// === commands (client → server) ===

/// A token on its way into a frame. A credential: `Debug` never shows it.
#[derive(Clone, Copy, Serialize)]
#[serde(transparent)]
pub(crate) struct Secret<'a>(pub(crate) &'a str);

impl fmt::Debug for Secret<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A command, borrowed from whoever owns its fields.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Command<'a> {
    /// `connect`.
    Connect {
        name: Option<&'a str>,
        version: Option<&'a str>,
        info: Option<&'a serde_json::Value>,
        token: Option<Secret<'a>>,
    },
    /// `refresh`: a new connection token of the same user.
    Refresh { token: Secret<'a> },
    /// `subscribe`.
    Subscribe {
        channel: &'a str,
        since: Option<&'a StreamPosition>,
        join_leave: bool,
        token: Option<Secret<'a>>,
    },
    /// `unsubscribe`.
    Unsubscribe { channel: &'a str },
    /// `publish`.
    Publish { channel: &'a str, data: &'a Data },
    /// `presence`.
    Presence { channel: &'a str },
    /// `presence_count`.
    PresenceCount { channel: &'a str },
    /// `history`.
    History {
        channel: &'a str,
        options: &'a HistoryOptions,
    },
    /// `rpc`: a call answered by the application's backend.
    Rpc { method: &'a str, data: &'a Data },
    /// `ping` (a request, for round-trip time).
    Ping,
    /// `pong` (the answer to a server `ping` push; never has an id).
    Pong,
}

/// The serialized shape of every command: absent fields are omitted.
#[derive(Serialize)]
struct OutFrame<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<u64>,
    cmd: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    channel: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    info: Option<&'a serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    since: Option<&'a StreamPosition>,
    #[serde(skip_serializing_if = "Option::is_none")]
    join_leave: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<Secret<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<OutData<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    b64: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    method: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    limit: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    after: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    before: Option<u64>,
}

impl<'a> OutFrame<'a> {
    fn new(id: Option<u64>, cmd: &'static str) -> Self {
        Self {
            id,
            cmd,
            channel: None,
            name: None,
            version: None,
            info: None,
            since: None,
            join_leave: None,
            token: None,
            data: None,
            b64: None,
            method: None,
            limit: None,
            after: None,
            before: None,
        }
    }
}

/// `data` as sent: JSON as itself, binary as MessagePack `bin` (only in MessagePack frames).
enum OutData<'a> {
    Json(&'a serde_json::Value),
    Binary(&'a [u8]),
}

impl Serialize for OutData<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Json(value) => value.serialize(serializer),
            Self::Binary(bytes) => serializer.serialize_bytes(bytes),
        }
    }
}

/// Encodes `command` with `id` (omitted when `None`) as one frame of `format`.
pub(crate) fn encode(
    format: Format,
    id: Option<u64>,
    command: Command<'_>,
) -> Result<Message, ClientError> {
    let frame = out_frame(format, id, command);
    match format {
        Format::Json => serde_json::to_string(&frame)
            .map(|text| Message::Text(text.into()))
            .map_err(|e| ClientError::Encode(e.to_string())),
        Format::MessagePack => rmp_serde::to_vec_named(&frame)
            .map(|bytes| Message::Binary(Bytes::from(bytes)))
            .map_err(|e| ClientError::Encode(e.to_string())),
    }
}

fn out_frame<'a>(format: Format, id: Option<u64>, command: Command<'a>) -> OutFrame<'a> {
    match command {
        Command::Connect {
            name,
            version,
            info,
            token,
        } => OutFrame {
            name,
            version,
            info,
            token,
            ..OutFrame::new(id, "connect")
        },
        Command::Refresh { token } => OutFrame {
            token: Some(token),
            ..OutFrame::new(id, "refresh")
        },
        Command::Subscribe {
            channel,
            since,
            join_leave,
            token,
        } => OutFrame {
            channel: Some(channel),
            since,
            join_leave: join_leave.then_some(true),
            token,
            ..OutFrame::new(id, "subscribe")
        },
        Command::Unsubscribe { channel } => OutFrame {
            channel: Some(channel),
            ..OutFrame::new(id, "unsubscribe")
        },
        Command::Publish { channel, data } => with_data(
            OutFrame {
                channel: Some(channel),
                ..OutFrame::new(id, "publish")
            },
            data,
            format,
        ),
        Command::Rpc { method, data } => with_data(
            OutFrame {
                method: Some(method),
                ..OutFrame::new(id, "rpc")
            },
            data,
            format,
        ),
        Command::Presence { channel } => OutFrame {
            channel: Some(channel),
            ..OutFrame::new(id, "presence")
        },
        Command::PresenceCount { channel } => OutFrame {
            channel: Some(channel),
            ..OutFrame::new(id, "presence_count")
        },
        Command::History { channel, options } => OutFrame {
            channel: Some(channel),
            limit: options.limit,
            after: match options.from {
                Some(HistoryFrom::After(offset)) => Some(offset),
                _ => None,
            },
            before: match options.from {
                Some(HistoryFrom::Before(offset)) => Some(offset),
                _ => None,
            },
            ..OutFrame::new(id, "history")
        },
        Command::Ping => OutFrame::new(id, "ping"),
        Command::Pong => OutFrame::new(None, "pong"),
    }
}

/// Sets `frame`'s data: JSON as itself, binary as `bin` in MessagePack or `b64` in JSON.
fn with_data<'a>(mut frame: OutFrame<'a>, data: &'a Data, format: Format) -> OutFrame<'a> {
    match (data, format) {
        (Data::Json(value), _) => frame.data = Some(OutData::Json(value)),
        (Data::Binary(bytes), Format::MessagePack) => frame.data = Some(OutData::Binary(bytes)),
        (Data::Binary(bytes), Format::Json) => frame.b64 = Some(BASE64.encode(bytes)),
    }
    frame
}

// === replies and pushes (server → client) ===

/// A decoded server frame.
#[derive(Debug)]
pub(crate) enum Incoming {
    /// A reply to the command with this id.
    Reply {
        id: u64,
        result: Result<ReplyBody, ClientError>,
    },
    /// An error reply without id: the server could not parse one of our commands.
    UnattributedError(ClientError),
    /// A push.
    Push(Push),
}

/// A server push.
#[derive(Debug)]
pub(crate) enum Push {
    Publication(Publication),
    Join {
        channel: String,
        info: ClientInfo,
    },
    Leave {
        channel: String,
        info: ClientInfo,
    },
    Message(Data),
    Ping,
    /// The connection token expires at `expires` (unix seconds): send `refresh`.
    Refresh {
        expires: Option<u64>,
    },
    Disconnect(DisconnectPush),
    /// A push kind this client does not know (ignored, for forward compatibility).
    Unknown(String),
}

/// The `disconnect` push, sent just before the close frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DisconnectPush {
    pub(crate) code: Option<u16>,
    pub(crate) reason: String,
    pub(crate) reconnect: Option<bool>,
}

/// A reply's `result`: the union of the fields of every command's result.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ReplyBody {
    #[serde(default)]
    pub(crate) client: Option<String>,
    #[serde(default)]
    pub(crate) ping_interval: Option<f64>,
    /// `connect`: the token's `sub`.
    #[serde(default)]
    pub(crate) user: Option<String>,
    /// `connect` and `refresh`: the token's `exp`, unix seconds.
    #[serde(default)]
    pub(crate) expires: Option<u64>,
    #[serde(default)]
    pub(crate) offset: Option<u64>,
    #[serde(default)]
    pub(crate) epoch: Option<String>,
    #[serde(default)]
    pub(crate) recovered: Option<bool>,
    #[serde(default)]
    pub(crate) publications: Option<Vec<WirePublication>>,
    #[serde(default)]
    pub(crate) clients: Option<Clients>,
    #[serde(default)]
    pub(crate) users: Option<u64>,
    /// `rpc`: the application backend's answer.
    #[serde(default)]
    pub(crate) data: Option<serde_json::Value>,
}

impl ReplyBody {
    /// `offset` and `epoch`, which subscribe, publish and history replies must carry.
    pub(crate) fn position(&self, command: &str) -> Result<StreamPosition, ClientError> {
        match (self.offset, &self.epoch) {
            (Some(offset), Some(epoch)) => Ok(StreamPosition::new(offset, epoch.clone())),
            _ => Err(ClientError::Protocol(format!(
                "{command} reply without offset and epoch"
            ))),
        }
    }

    /// The reply's publications, with `channel`/`epoch` filled in where a publication omits
    /// them.
    pub(crate) fn take_publications(
        &mut self,
        channel: &str,
        epoch: &str,
    ) -> Result<Vec<Publication>, ClientError> {
        self.publications
            .take()
            .unwrap_or_default()
            .into_iter()
            .map(|p| p.into_publication(channel, epoch))
            .collect()
    }
}

/// `clients` is a list in `presence` replies and a number in `presence_count` replies.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum Clients {
    Count(u64),
    List(Vec<ClientInfo>),
}

/// A publication inside a subscribe or history reply.
#[derive(Debug, Deserialize)]
pub(crate) struct WirePublication {
    #[serde(default)]
    channel: Option<String>,
    offset: u64,
    #[serde(default)]
    epoch: Option<String>,
    #[serde(default, deserialize_with = "present_data")]
    data: Option<Data>,
    #[serde(default)]
    b64: Option<String>,
    #[serde(default)]
    info: Option<ClientInfo>,
}

impl WirePublication {
    fn into_publication(self, channel: &str, epoch: &str) -> Result<Publication, ClientError> {
        Ok(Publication {
            channel: self.channel.unwrap_or_else(|| channel.to_owned()),
            offset: self.offset,
            epoch: self.epoch.unwrap_or_else(|| epoch.to_owned()),
            data: resolve_data(self.data, self.b64)?,
            info: self.info,
        })
    }
}

/// Every field any reply or push may carry at the top level.
#[derive(Deserialize)]
struct InFrame {
    #[serde(default)]
    id: Option<u64>,
    #[serde(default)]
    result: Option<ReplyBody>,
    #[serde(default)]
    error: Option<ErrorBody>,
    #[serde(default)]
    push: Option<String>,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    offset: Option<u64>,
    #[serde(default)]
    epoch: Option<String>,
    #[serde(default, deserialize_with = "present_data")]
    data: Option<Data>,
    #[serde(default)]
    b64: Option<String>,
    #[serde(default)]
    info: Option<ClientInfo>,
    #[serde(default)]
    code: Option<u16>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    reconnect: Option<bool>,
    #[serde(default)]
    expires: Option<u64>,
}

#[derive(Deserialize)]
struct ErrorBody {
    code: String,
    #[serde(default)]
    message: String,
}

impl From<ErrorBody> for ClientError {
    fn from(body: ErrorBody) -> Self {
        ClientError::Server {
            code: ErrorCode::parse(&body.code),
            message: body.message,
        }
    }
}

/// Decodes a text frame (JSON).
pub(crate) fn decode_text(text: &str) -> Result<Incoming, ClientError> {
    let frame: InFrame = serde_json::from_str(text)
        .map_err(|e| ClientError::Protocol(format!("undecodable JSON frame: {e}")))?;
    frame.into_incoming()
}

/// Decodes a binary frame (MessagePack).
pub(crate) fn decode_binary(bytes: &[u8]) -> Result<Incoming, ClientError> {
    let frame: InFrame = rmp_serde::from_slice(bytes)
        .map_err(|e| ClientError::Protocol(format!("undecodable MessagePack frame: {e}")))?;
    frame.into_incoming()
}

impl InFrame {
    fn into_incoming(mut self) -> Result<Incoming, ClientError> {
        if let Some(kind) = self.push.take() {
            return self.into_push(kind).map(Incoming::Push);
        }
        match (self.id, self.result, self.error) {
            (Some(id), _, Some(error)) => Ok(Incoming::Reply {
                id,
                result: Err(error.into()),
            }),
            (Some(id), Some(result), None) => Ok(Incoming::Reply {
                id,
                result: Ok(result),
            }),
            (None, _, Some(error)) => Ok(Incoming::UnattributedError(error.into())),
            (Some(id), None, None) => Err(ClientError::Protocol(format!(
                "reply {id} has neither result nor error"
            ))),
            (None, _, None) => Err(ClientError::Protocol(
                "frame is neither a reply nor a push".into(),
            )),
        }
    }

    fn into_push(self, kind: String) -> Result<Push, ClientError> {
        let missing = |field: &str| ClientError::Protocol(format!("{kind} push without {field}"));
        Ok(match kind.as_str() {
            "publication" => Push::Publication(Publication {
                channel: self.channel.ok_or_else(|| missing("channel"))?,
                offset: self.offset.ok_or_else(|| missing("offset"))?,
                epoch: self.epoch.ok_or_else(|| missing("epoch"))?,
                data: resolve_data(self.data, self.b64)?,
                info: self.info,
            }),
            "join" => Push::Join {
                channel: self.channel.ok_or_else(|| missing("channel"))?,
                info: self.info.ok_or_else(|| missing("info"))?,
            },
            "leave" => Push::Leave {
                channel: self.channel.ok_or_else(|| missing("channel"))?,
                info: self.info.ok_or_else(|| missing("info"))?,
            },
            "message" => Push::Message(resolve_data(self.data, self.b64)?),
            "ping" => Push::Ping,
            "refresh" => Push::Refresh {
                expires: self.expires,
            },
            "disconnect" => Push::Disconnect(DisconnectPush {
                code: self.code,
                reason: self.reason.unwrap_or_default(),
                reconnect: self.reconnect,
            }),
            _ => Push::Unknown(kind),
        })
    }
}

/// Exactly one of `data` and `b64`, as [`Data`].
fn resolve_data(data: Option<Data>, b64: Option<String>) -> Result<Data, ClientError> {
    match (data, b64) {
        (Some(data), None) => Ok(data),
        (None, Some(b64)) => BASE64
            .decode(b64.as_bytes())
            .map(|bytes| Data::Binary(Bytes::from(bytes)))
            .map_err(|e| ClientError::Protocol(format!("b64 is not base64: {e}"))),
        (Some(_), Some(_)) => Err(ClientError::Protocol("both data and b64".into())),
        (None, None) => Err(ClientError::Protocol("neither data nor b64".into())),
    }
}

/// Deserializes a present `data` field, so that `"data": null` is JSON null, not absence.
fn present_data<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Data>, D::Error> {
    deserializer.deserialize_any(DataVisitor).map(Some)
}

/// Turns any serde value into [`Data`]: bytes (a MessagePack `bin`) into binary data,
/// everything else into a JSON value.
struct DataVisitor;

impl<'de> Visitor<'de> for DataVisitor {
    type Value = Data;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JSON data or binary data")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Data, E> {
        Ok(Data::Json(v.into()))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Data, E> {
        Ok(Data::Json(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Data, E> {
        Ok(Data::Json(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Data, E> {
        Ok(Data::Json(v.into()))
    }

    fn visit_str<E>(self, v: &str) -> Result<Data, E> {
        Ok(Data::Json(v.into()))
    }

    fn visit_string<E>(self, v: String) -> Result<Data, E> {
        Ok(Data::Json(v.into()))
    }

    fn visit_bytes<E>(self, v: &[u8]) -> Result<Data, E> {
        Ok(Data::Binary(Bytes::copy_from_slice(v)))
    }

    fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Data, E> {
        Ok(Data::Binary(Bytes::from(v)))
    }

    fn visit_unit<E>(self) -> Result<Data, E> {
        Ok(Data::Json(serde_json::Value::Null))
    }

    fn visit_none<E>(self) -> Result<Data, E> {
        Ok(Data::Json(serde_json::Value::Null))
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Data, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Data, A::Error> {
        serde_json::Value::deserialize(SeqAccessDeserializer::new(seq)).map(Data::Json)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Data, A::Error> {
        serde_json::Value::deserialize(MapAccessDeserializer::new(map)).map(Data::Json)
    }
}

#[cfg(test)]
mod tests;
