//! Client commands: [`Request`] and [`Command`], decoded from JSON text or MessagePack with
//! every field validated (channel names, JSON data, base64) so the server only sees values it
//! can hand to the hub.

use std::borrow::Cow;

use base64::Engine;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;
use switchboard_core::{ChannelName, Epoch, PageFrom, Payload, RawJson, StreamPosition};

use crate::{Format, codes::ErrorCode};

/// Most publications one `history` command may ask for.
pub const MAX_HISTORY_LIMIT: usize = 1000;
/// Publications returned by `history` when no limit is given.
pub const DEFAULT_HISTORY_LIMIT: usize = 100;
/// Longest `rpc` method name, in bytes.
pub const MAX_METHOD_BYTES: usize = 255;

/// A decoded command with its optional reply id.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The id to echo in the reply; `None` means the client wants no reply.
    pub id: Option<u64>,
    /// The command.
    pub command: Command,
}

/// A client command (see `docs/protocol.md`).
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Identify the connection.
    Connect {
        /// Client library name.
        name: Option<String>,
        /// Client library version.
        version: Option<String>,
        /// Connection info shown in presence.
        info: Option<RawJson>,
        /// The connection token (JWT).
        token: Option<String>,
    },
    /// Replace the connection token before it expires.
    Refresh {
        /// The new connection token (JWT) of the same user.
        token: String,
    },
    /// Subscribe, optionally recovering after a position.
    Subscribe {
        /// The channel.
        channel: ChannelName,
        /// Recover what was published after this position.
        since: Option<StreamPosition>,
        /// Receive join/leave events.
        join_leave: bool,
        /// A subscription token (JWT) for a channel the rules would refuse.
        token: Option<String>,
    },
    /// Unsubscribe.
    Unsubscribe {
        /// The channel.
        channel: ChannelName,
    },
    /// Publish.
    Publish {
        /// The channel.
        channel: ChannelName,
        /// The data.
        data: Payload,
    },
    /// List who is subscribed.
    Presence {
        /// The channel.
        channel: ChannelName,
    },
    /// Count who is subscribed.
    PresenceCount {
        /// The channel.
        channel: ChannelName,
    },
    /// Read a page of history.
    History {
        /// The channel.
        channel: ChannelName,
        /// Most publications to return (1..=[`MAX_HISTORY_LIMIT`]).
        limit: usize,
        /// Where the page starts.
        from: Option<PageFrom>,
    },
    /// A remote procedure call answered by the application's backend (the `rpc` hook).
    Rpc {
        /// The method name (1 to [`MAX_METHOD_BYTES`] bytes).
        method: String,
        /// The call's data (`null` when not given).
        data: Payload,
    },
    /// Round-trip probe.
    Ping,
    /// Answer to a server ping.
    Pong,
}

/// Why a command was refused; the connection stays open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct DecodeError {
    /// The command's id, when it could be read.
    pub id: Option<u64>,
    /// The error code.
    pub code: ErrorCode,
    /// What was wrong, for humans.
    pub message: String,
}

#[derive(Deserialize)]
struct Since<'a> {
    offset: u64,
    #[serde(borrow)]
    epoch: Cow<'a, str>,
}

/// The JSON shape of a command. Unknown fields are ignored (forward compatibility).
#[derive(Deserialize)]
struct JsonCommand<'a> {
    id: Option<u64>,
    #[serde(borrow)]
    cmd: Cow<'a, str>,
    #[serde(borrow, default)]
    channel: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "present_raw")]
    data: Option<&'a RawValue>,
    #[serde(borrow, default)]
    b64: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    since: Option<Since<'a>>,
    #[serde(default)]
    join_leave: Option<bool>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    version: Option<String>,
    #[serde(borrow, default)]
    info: Option<&'a RawValue>,
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    limit: Option<u64>,
    #[serde(default)]
    after: Option<u64>,
    #[serde(default)]
    before: Option<u64>,
}

/// The MessagePack shape: the same keys, with `data` as any value (bin for binary).
#[derive(Deserialize)]
struct MsgpackCommand {
    id: Option<u64>,
    cmd: String,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default, deserialize_with = "present_value")]
    data: Option<rmpv::Value>,
    #[serde(default)]
    since: Option<MsgpackSince>,
    #[serde(default)]
    join_leave: Option<bool>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    info: Option<rmpv::Value>,
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    limit: Option<u64>,
    #[serde(default)]
    after: Option<u64>,
    #[serde(default)]
    before: Option<u64>,
}

#[derive(Deserialize)]
struct MsgpackSince {
    offset: u64,
    epoch: String,
}

/// A present field is `Some`, even when it holds `null` (which is valid data).
fn present_raw<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

/// A present field is `Some`, even when it holds nil.
fn present_value<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<rmpv::Value>, D::Error> {
    rmpv::Value::deserialize(d).map(Some)
}

#[derive(Deserialize)]
struct IdOnly {
    id: Option<u64>,
}

/// Fields common to both shapes once the data has been turned into a [`Payload`].
struct Fields<'a> {
    id: Option<u64>,
    cmd: &'a str,
    channel: Option<&'a str>,
    data: Option<Result<Payload, String>>,
    since: Option<(u64, &'a str)>,
    join_leave: Option<bool>,
    name: Option<String>,
    version: Option<String>,
    info: Option<Result<RawJson, String>>,
    token: Option<String>,
    method: Option<String>,
    limit: Option<u64>,
    after: Option<u64>,
    before: Option<u64>,
}

/// Decodes one command from a frame in `format`.
pub fn decode(format: Format, frame: &[u8]) -> Result<Request, DecodeError> {
    match format {
        Format::Json => decode_json(frame),
        Format::MessagePack => decode_msgpack(frame),
    }
}

fn bad(id: Option<u64>, code: ErrorCode, message: impl Into<String>) -> DecodeError {
    DecodeError {
        id,
        code,
        message: message.into(),
    }
}

fn decode_json(frame: &[u8]) -> Result<Request, DecodeError> {
    let c: JsonCommand<'_> = serde_json::from_slice(frame).map_err(|e| {
        let id = serde_json::from_slice::<IdOnly>(frame)
            .ok()
            .and_then(|x| x.id);
        bad(id, ErrorCode::BadRequest, format!("malformed command: {e}"))
    })?;
    let data = match (c.data, &c.b64) {
        (Some(_), Some(_)) => Some(Err("give either data or b64, not both".to_owned())),
        (Some(raw), None) => Some(
            Payload::json(Bytes::copy_from_slice(raw.get().as_bytes())).map_err(|e| e.to_string()),
        ),
        (None, Some(b64)) => Some(
            base64::engine::general_purpose::STANDARD
                .decode(b64.as_bytes())
                .map(|b| Payload::Binary(b.into()))
                .map_err(|e| format!("b64 is not valid base64: {e}")),
        ),
        (None, None) => None,
    };
    fields(Fields {
        id: c.id,
        cmd: &c.cmd,
        channel: c.channel.as_deref(),
        data,
        since: c.since.as_ref().map(|s| (s.offset, &*s.epoch)),
        join_leave: c.join_leave,
        name: c.name,
        version: c.version,
        info: c.info.map(|raw| {
            switchboard_core::validate_json(raw.get().as_bytes())
                .map(|()| RawJson::new(Bytes::copy_from_slice(raw.get().as_bytes())))
                .map_err(|e| format!("info: {e}"))
        }),
        token: c.token,
        method: c.method,
        limit: c.limit,
        after: c.after,
        before: c.before,
    })
}

fn msgpack_to_json(value: &rmpv::Value) -> Result<Bytes, String> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|e| format!("data cannot be represented as JSON: {e}"))
}

fn decode_msgpack(frame: &[u8]) -> Result<Request, DecodeError> {
    let c: MsgpackCommand = rmp_serde::from_slice(frame).map_err(|e| {
        let id = rmp_serde::from_slice::<IdOnly>(frame)
            .ok()
            .and_then(|x| x.id);
        bad(id, ErrorCode::BadRequest, format!("malformed command: {e}"))
    })?;
    let data = c.data.as_ref().map(|v| match v {
        rmpv::Value::Binary(b) => Ok(Payload::Binary(Bytes::copy_from_slice(b))),
        other => msgpack_to_json(other).map(Payload::Json),
    });
    let info = c
        .info
        .as_ref()
        .map(|v| msgpack_to_json(v).map(RawJson::new));
    fields(Fields {
        id: c.id,
        cmd: &c.cmd,
        channel: c.channel.as_deref(),
        data,
        since: c.since.as_ref().map(|s| (s.offset, s.epoch.as_str())),
        join_leave: c.join_leave,
        name: c.name,
        version: c.version,
        info,
        token: c.token,
        method: c.method,
        limit: c.limit,
        after: c.after,
        before: c.before,
    })
}

fn fields(f: Fields<'_>) -> Result<Request, DecodeError> {
    let id = f.id;
    let channel = || -> Result<ChannelName, DecodeError> {
        let name = f
            .channel
            .ok_or_else(|| bad(id, ErrorCode::BadRequest, "missing field `channel`"))?;
        ChannelName::parse(name).map_err(|e| {
            bad(
                id,
                ErrorCode::InvalidChannel,
                format!("invalid channel name: {e}"),
            )
        })
    };
    let command = match f.cmd {
        "connect" => Command::Connect {
            name: f.name,
            version: f.version,
            info: f
                .info
                .transpose()
                .map_err(|m| bad(id, ErrorCode::InvalidData, m))?,
            token: f.token,
        },
        "refresh" => Command::Refresh {
            token: f
                .token
                .ok_or_else(|| bad(id, ErrorCode::BadRequest, "missing field `token`"))?,
        },
        "subscribe" => Command::Subscribe {
            channel: channel()?,
            since: f.since.map(|(offset, epoch)| StreamPosition {
                offset,
                epoch: Epoch::from_client(epoch),
            }),
            join_leave: f.join_leave.unwrap_or(false),
            token: f.token,
        },
        "unsubscribe" => Command::Unsubscribe {
            channel: channel()?,
        },
        "publish" => {
            let channel = channel()?;
            let data = f
                .data
                .ok_or_else(|| bad(id, ErrorCode::InvalidData, "missing `data` or `b64`"))?
                .map_err(|m| bad(id, ErrorCode::InvalidData, m))?;
            Command::Publish { channel, data }
        }
        "presence" => Command::Presence {
            channel: channel()?,
        },
        "presence_count" => Command::PresenceCount {
            channel: channel()?,
        },
        "history" => {
            let channel = channel()?;
            let limit = match f.limit {
                None => DEFAULT_HISTORY_LIMIT,
                Some(n) if (1..=MAX_HISTORY_LIMIT as u64).contains(&n) => n as usize,
                Some(_) => {
                    return Err(bad(
                        id,
                        ErrorCode::BadRequest,
                        format!("`limit` must be 1..={MAX_HISTORY_LIMIT}"),
                    ));
                }
            };
            let from = match (f.after, f.before) {
                (Some(_), Some(_)) => {
                    return Err(bad(
                        id,
                        ErrorCode::BadRequest,
                        "give either `after` or `before`, not both",
                    ));
                }
                (Some(a), None) => Some(PageFrom::After(a)),
                (None, Some(b)) => Some(PageFrom::Before(b)),
                (None, None) => None,
            };
            Command::History {
                channel,
                limit,
                from,
            }
        }
        "rpc" => {
            let method = f
                .method
                .ok_or_else(|| bad(id, ErrorCode::BadRequest, "missing field `method`"))?;
            if method.is_empty() || method.len() > MAX_METHOD_BYTES {
                return Err(bad(
                    id,
                    ErrorCode::BadRequest,
                    format!("`method` must be 1..={MAX_METHOD_BYTES} bytes"),
                ));
            }
            let data = match f.data {
                None => Payload::Json(Bytes::from_static(b"null")),
                Some(d) => d.map_err(|m| bad(id, ErrorCode::InvalidData, m))?,
            };
            Command::Rpc { method, data }
        }
        "ping" => Command::Ping,
        "pong" => Command::Pong,
        other => {
            let shown: String = other.chars().take(64).collect();
            return Err(bad(
                id,
                ErrorCode::UnknownCommand,
                format!("unknown command {shown:?}"),
            ));
        }
    };
    Ok(Request { id, command })
}
