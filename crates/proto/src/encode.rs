//! Server messages — replies and pushes — encoded as JSON text or MessagePack.
//!
//! The JSON publication encoder is written by hand: it runs once per publication per wire
//! format and embeds the already-validated JSON data as-is. Channel names and epochs never
//! need escaping (their character sets exclude `"` and `\`); everything else that could goes
//! through `serde_json`.

use std::{io::Write, sync::Arc};

use base64::Engine;
use rmpv::Value;
use switchboard_core::{
    ClientId, ClientInfo, HistoryPage, Payload, PresenceCount, PresenceEvent, Publication, RawJson,
    Recovery, StreamPosition, UserId, UserMessage,
};

use crate::{Format, codes::ErrorCode};

/// A successful reply's content.
#[derive(Debug)]
pub enum Reply<'a> {
    /// Reply to `connect`.
    Connect {
        /// The connection's id.
        client: &'a ClientId,
        /// Server version.
        version: &'a str,
        /// Seconds between server pings.
        ping_interval: u64,
        /// Largest message the server accepts from this client, in bytes.
        max_message_bytes: usize,
        /// The authenticated user; `None` for an anonymous connection.
        user: Option<&'a UserId>,
        /// When the connection's token expires (unix seconds), if it does.
        expires: Option<u64>,
    },
    /// Reply to `refresh`: when the new token expires (unix seconds), if it does.
    Refresh {
        /// Unix seconds.
        expires: Option<u64>,
    },
    /// Reply to `subscribe`.
    Subscribe(&'a Recovery),
    /// `{}` (unsubscribe, ping).
    Empty,
    /// `{offset, epoch}` (publish).
    Position(&'a StreamPosition),
    /// `{clients: [...]}`.
    Presence(&'a [Arc<ClientInfo>]),
    /// `{clients, users}`.
    PresenceCount(PresenceCount),
    /// `{publications, offset, epoch}`.
    History(&'a HistoryPage),
    /// `{data}` (rpc): the application backend's answer, JSON.
    Rpc(&'a RawJson),
}

/// Which presence push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PresenceKind {
    /// Someone subscribed.
    Join,
    /// Someone unsubscribed.
    Leave,
}

impl PresenceKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Join => "join",
            Self::Leave => "leave",
        }
    }
}

/// `{"id":N,"result":{…}}`.
pub fn reply(format: Format, id: u64, reply: &Reply<'_>) -> Vec<u8> {
    match format {
        Format::Json => {
            let mut b = Vec::with_capacity(64);
            let _ = write!(b, "{{\"id\":{id},\"result\":");
            json::reply(&mut b, reply);
            b.push(b'}');
            b
        }
        Format::MessagePack => mp::encode(&mp::map(vec![
            ("id", Value::from(id)),
            ("result", mp::reply(reply)),
        ])),
    }
}

/// The `result` object of a reply alone, as JSON (for HTTP endpoints).
pub fn result_json(reply: &Reply<'_>) -> Vec<u8> {
    let mut b = Vec::with_capacity(64);
    json::reply(&mut b, reply);
    b
}

/// `{"id":N,"error":{"code":…,"message":…}}` (no `id` when unknown).
pub fn error(format: Format, id: Option<u64>, code: ErrorCode, message: &str) -> Vec<u8> {
    match format {
        Format::Json => {
            let mut b = Vec::with_capacity(64 + message.len());
            b.push(b'{');
            if let Some(id) = id {
                let _ = write!(b, "\"id\":{id},");
            }
            let _ = write!(b, "\"error\":{{\"code\":\"{}\",\"message\":", code.as_str());
            json::string(&mut b, message);
            b.extend_from_slice(b"}}");
            b
        }
        Format::MessagePack => {
            let mut fields = Vec::with_capacity(2);
            if let Some(id) = id {
                fields.push(("id", Value::from(id)));
            }
            fields.push((
                "error",
                mp::map(vec![
                    ("code", Value::from(code.as_str())),
                    ("message", Value::from(message)),
                ]),
            ));
            mp::encode(&mp::map(fields))
        }
    }
}

/// The `publication` push.
pub fn publication_push(format: Format, p: &Publication) -> Vec<u8> {
    match format {
        Format::Json => {
            let mut b = Vec::with_capacity(96 + p.data.len());
            b.extend_from_slice(b"{\"push\":\"publication\",");
            json::publication_fields(&mut b, p);
            b.push(b'}');
            b
        }
        Format::MessagePack => {
            let mut fields = vec![("push", Value::from("publication"))];
            mp::publication_fields(&mut fields, p);
            mp::encode(&mp::map(fields))
        }
    }
}

/// A publication as a JSON object without `push` (SSE `data:` and poll replies).
pub fn publication_json(b: &mut Vec<u8>, p: &Publication) {
    b.push(b'{');
    json::publication_fields(b, p);
    b.push(b'}');
}

/// The `join` or `leave` push.
pub fn presence_push(format: Format, kind: PresenceKind, e: &PresenceEvent) -> Vec<u8> {
    match format {
        Format::Json => {
            let mut b = Vec::with_capacity(128);
            let _ = write!(b, "{{\"push\":\"{}\",", kind.as_str());
            json::presence_fields(&mut b, e);
            b.push(b'}');
            b
        }
        Format::MessagePack => mp::encode(&mp::map(vec![
            ("push", Value::from(kind.as_str())),
            ("channel", Value::from(e.channel.as_str())),
            ("info", mp::client_info(&e.info)),
        ])),
    }
}

/// A presence event as a JSON object without `push` (SSE).
pub fn presence_json(b: &mut Vec<u8>, e: &PresenceEvent) {
    b.push(b'{');
    json::presence_fields(b, e);
    b.push(b'}');
}

/// The `message` push (user-addressed data).
pub fn message_push(format: Format, m: &UserMessage) -> Vec<u8> {
    match format {
        Format::Json => {
            let mut b = Vec::with_capacity(32 + m.data.len());
            b.extend_from_slice(b"{\"push\":\"message\",");
            json::payload(&mut b, &m.data);
            b.push(b'}');
            b
        }
        Format::MessagePack => mp::encode(&mp::map(vec![
            ("push", Value::from("message")),
            ("data", mp::payload(&m.data)),
        ])),
    }
}

/// The `ping` push.
pub fn ping_push(format: Format) -> Vec<u8> {
    match format {
        Format::Json => br#"{"push":"ping"}"#.to_vec(),
        Format::MessagePack => mp::encode(&mp::map(vec![("push", Value::from("ping"))])),
    }
}

/// The `refresh` push: the connection's token expires at `expires` (unix seconds); send
/// `refresh` with a new one before then, or the connection is closed with 4003.
pub fn refresh_push(format: Format, expires: u64) -> Vec<u8> {
    match format {
        Format::Json => format!("{{\"push\":\"refresh\",\"expires\":{expires}}}").into_bytes(),
        Format::MessagePack => mp::encode(&mp::map(vec![
            ("push", Value::from("refresh")),
            ("expires", Value::from(expires)),
        ])),
    }
}

/// The `disconnect` push, sent before the close frame with the same code.
pub fn disconnect_push(format: Format, code: u16, reason: &str, reconnect: bool) -> Vec<u8> {
    match format {
        Format::Json => {
            let mut b = Vec::with_capacity(64 + reason.len());
            let _ = write!(b, "{{\"push\":\"disconnect\",\"code\":{code},\"reason\":");
            json::string(&mut b, reason);
            let _ = write!(b, ",\"reconnect\":{reconnect}}}");
            b
        }
        Format::MessagePack => mp::encode(&mp::map(vec![
            ("push", Value::from("disconnect")),
            ("code", Value::from(code)),
            ("reason", Value::from(reason)),
            ("reconnect", Value::from(reconnect)),
        ])),
    }
}

mod json {
    use super::*;

    pub(super) fn string(b: &mut Vec<u8>, s: &str) {
        // Writing a &str to a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *b, s);
    }

    pub(super) fn payload(b: &mut Vec<u8>, p: &Payload) {
        match p {
            Payload::Json(data) => {
                b.extend_from_slice(b"\"data\":");
                b.extend_from_slice(data);
            }
            Payload::Binary(data) => {
                b.extend_from_slice(b"\"b64\":\"");
                let enc = base64::engine::general_purpose::STANDARD.encode(data);
                b.extend_from_slice(enc.as_bytes());
                b.push(b'"');
            }
        }
    }

    pub(super) fn client_info(b: &mut Vec<u8>, info: &ClientInfo) {
        // ClientInfo holds validated names and validated JSON, so this cannot fail.
        let _ = serde_json::to_writer(&mut *b, info);
    }

    pub(super) fn publication_fields(b: &mut Vec<u8>, p: &Publication) {
        // Channel names and epochs are restricted to characters that need no escaping.
        let _ = write!(
            b,
            "\"channel\":\"{}\",\"offset\":{},\"epoch\":\"{}\",",
            p.channel, p.offset, p.epoch
        );
        payload(b, &p.data);
        if let Some(info) = &p.info {
            b.extend_from_slice(b",\"info\":");
            client_info(b, info);
        }
    }

    pub(super) fn presence_fields(b: &mut Vec<u8>, e: &PresenceEvent) {
        let _ = write!(b, "\"channel\":\"{}\",\"info\":", e.channel);
        client_info(b, &e.info);
    }

    fn position(b: &mut Vec<u8>, p: &StreamPosition) {
        let _ = write!(b, "\"offset\":{},\"epoch\":\"{}\"", p.offset, p.epoch);
    }

    fn publications<'a>(b: &mut Vec<u8>, list: impl Iterator<Item = &'a Publication>) {
        b.push(b'[');
        for (i, p) in list.enumerate() {
            if i > 0 {
                b.push(b',');
            }
            publication_json(b, p);
        }
        b.push(b']');
    }

    pub(super) fn reply(b: &mut Vec<u8>, r: &Reply<'_>) {
        match r {
            Reply::Connect {
                client,
                version,
                ping_interval,
                max_message_bytes,
                user,
                expires,
            } => {
                let _ = write!(b, "{{\"client\":\"{client}\",\"version\":");
                string(b, version);
                let _ = write!(
                    b,
                    ",\"ping_interval\":{ping_interval},\"max_message_bytes\":{max_message_bytes}"
                );
                if let Some(user) = user {
                    b.extend_from_slice(b",\"user\":");
                    string(b, user.as_str());
                }
                if let Some(expires) = expires {
                    let _ = write!(b, ",\"expires\":{expires}");
                }
                b.push(b'}');
            }
            Reply::Refresh { expires } => match expires {
                Some(expires) => {
                    let _ = write!(b, "{{\"expires\":{expires}}}");
                }
                None => b.extend_from_slice(b"{}"),
            },
            Reply::Subscribe(rec) => {
                b.push(b'{');
                position(b, &rec.position);
                if let Some(recovered) = rec.recovered {
                    let _ = write!(b, ",\"recovered\":{recovered},\"publications\":");
                    publications(b, rec.publications.iter().map(|p| &***p));
                }
                b.push(b'}');
            }
            Reply::Empty => b.extend_from_slice(b"{}"),
            Reply::Position(p) => {
                b.push(b'{');
                position(b, p);
                b.push(b'}');
            }
            Reply::Presence(clients) => {
                b.extend_from_slice(b"{\"clients\":[");
                for (i, c) in clients.iter().enumerate() {
                    if i > 0 {
                        b.push(b',');
                    }
                    client_info(b, c);
                }
                b.extend_from_slice(b"]}");
            }
            Reply::PresenceCount(c) => {
                let _ = write!(b, "{{\"clients\":{},\"users\":{}}}", c.clients, c.users);
            }
            Reply::History(page) => {
                b.extend_from_slice(b"{\"publications\":");
                publications(b, page.publications.iter().map(|p| &***p));
                b.push(b',');
                position(b, &page.position);
                b.push(b'}');
            }
            Reply::Rpc(data) => {
                b.extend_from_slice(b"{\"data\":");
                b.extend_from_slice(data.as_bytes());
                b.push(b'}');
            }
        }
    }
}

mod mp {
    use super::*;

    pub(super) fn encode(v: &Value) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        // Writing to a Vec cannot fail.
        let _ = rmpv::encode::write_value(&mut out, v);
        out
    }

    pub(super) fn map(fields: Vec<(&'static str, Value)>) -> Value {
        Value::Map(
            fields
                .into_iter()
                .map(|(k, v)| (Value::from(k), v))
                .collect(),
        )
    }

    fn json_to_value(json: &[u8]) -> Value {
        // The JSON was validated when it entered the server.
        serde_json::from_slice::<Value>(json).unwrap_or(Value::Nil)
    }

    pub(super) fn payload(p: &Payload) -> Value {
        match p {
            Payload::Json(b) => json_to_value(b),
            Payload::Binary(b) => Value::Binary(b.to_vec()),
        }
    }

    pub(super) fn client_info(info: &ClientInfo) -> Value {
        let mut fields = vec![("client", Value::from(info.client.as_str()))];
        if let Some(u) = &info.user {
            fields.push(("user", Value::from(u.as_str())));
        }
        if let Some(i) = &info.conn_info {
            fields.push(("info", json_to_value(i.as_bytes())));
        }
        map(fields)
    }

    pub(super) fn publication_fields(fields: &mut Vec<(&'static str, Value)>, p: &Publication) {
        fields.push(("channel", Value::from(p.channel.as_str())));
        fields.push(("offset", Value::from(p.offset)));
        fields.push(("epoch", Value::from(p.epoch.as_str())));
        fields.push(("data", payload(&p.data)));
        if let Some(info) = &p.info {
            fields.push(("info", client_info(info)));
        }
    }

    fn publication(p: &Publication) -> Value {
        let mut fields = Vec::with_capacity(5);
        publication_fields(&mut fields, p);
        map(fields)
    }

    fn position(fields: &mut Vec<(&'static str, Value)>, p: &StreamPosition) {
        fields.push(("offset", Value::from(p.offset)));
        fields.push(("epoch", Value::from(p.epoch.as_str())));
    }

    pub(super) fn reply(r: &Reply<'_>) -> Value {
        match r {
            Reply::Connect {
                client,
                version,
                ping_interval,
                max_message_bytes,
                user,
                expires,
            } => {
                let mut f = vec![
                    ("client", Value::from(client.as_str())),
                    ("version", Value::from(*version)),
                    ("ping_interval", Value::from(*ping_interval)),
                    ("max_message_bytes", Value::from(*max_message_bytes as u64)),
                ];
                if let Some(user) = user {
                    f.push(("user", Value::from(user.as_str())));
                }
                if let Some(expires) = expires {
                    f.push(("expires", Value::from(*expires)));
                }
                map(f)
            }
            Reply::Refresh { expires } => map(expires
                .iter()
                .map(|e| ("expires", Value::from(*e)))
                .collect()),
            Reply::Subscribe(rec) => {
                let mut f = Vec::with_capacity(4);
                position(&mut f, &rec.position);
                if let Some(recovered) = rec.recovered {
                    f.push(("recovered", Value::from(recovered)));
                    f.push((
                        "publications",
                        Value::Array(rec.publications.iter().map(|p| publication(p)).collect()),
                    ));
                }
                map(f)
            }
            Reply::Empty => map(Vec::new()),
            Reply::Position(p) => {
                let mut f = Vec::with_capacity(2);
                position(&mut f, p);
                map(f)
            }
            Reply::Presence(clients) => map(vec![(
                "clients",
                Value::Array(clients.iter().map(|c| client_info(c)).collect()),
            )]),
            Reply::PresenceCount(c) => map(vec![
                ("clients", Value::from(c.clients as u64)),
                ("users", Value::from(c.users as u64)),
            ]),
            Reply::History(page) => {
                let mut f = vec![(
                    "publications",
                    Value::Array(page.publications.iter().map(|p| publication(p)).collect()),
                )];
                position(&mut f, &page.position);
                map(f)
            }
            Reply::Rpc(data) => map(vec![("data", json_to_value(data.as_bytes()))]),
        }
    }
}
