//! Helpers shared by the proto fuzz targets: an encoder that writes a decoded [`Request`]
//! back as a command frame in either format (the inverse of `switchboard_proto::decode`,
//! which proto itself does not need), and a normal form for comparing requests whose JSON
//! data went through a format change.

use base64::Engine;
use serde::Serialize;
use serde_json::value::RawValue;
use switchboard_core::{PageFrom, Payload, RawJson};
use switchboard_proto::{Command, Format, Request};

#[derive(Serialize)]
struct Since<'a> {
    offset: u64,
    epoch: &'a str,
}

/// Every field a command may carry; `D` is how a value is written in the format.
#[derive(Serialize)]
struct Wire<'a, D> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<u64>,
    cmd: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    channel: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<D>,
    #[serde(skip_serializing_if = "Option::is_none")]
    b64: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    since: Option<Since<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    join_leave: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    info: Option<D>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    method: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    limit: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    after: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    before: Option<u64>,
}

impl<D> Wire<'_, D> {
    fn new(id: Option<u64>, cmd: &'static str) -> Self {
        Self {
            id,
            cmd,
            channel: None,
            data: None,
            b64: None,
            since: None,
            join_leave: None,
            name: None,
            version: None,
            info: None,
            token: None,
            method: None,
            limit: None,
            after: None,
            before: None,
        }
    }
}

/// Writes `req` as a frame of `format`; `None` when its JSON data cannot be written in
/// that format (JSON text MessagePack has no value for).
pub fn encode(format: Format, req: &Request) -> Option<Vec<u8>> {
    match format {
        Format::Json => {
            let raw = |json: &[u8]| {
                let text = std::str::from_utf8(json).ok()?.to_owned();
                RawValue::from_string(text).ok()
            };
            // JSON frames carry binary data in `b64`, never in `data`.
            let wire = wire(req, Format::Json, raw, |_| None)?;
            serde_json::to_vec(&wire).ok()
        }
        Format::MessagePack => {
            let bin = |bytes: &[u8]| Some(rmpv::Value::Binary(bytes.to_vec()));
            let wire = wire(req, Format::MessagePack, json_to_msgpack, bin)?;
            rmp_serde::to_vec_named(&wire).ok()
        }
    }
}

/// JSON text as a MessagePack value, as the server's MessagePack encoder converts it.
pub fn json_to_msgpack(json: &[u8]) -> Option<rmpv::Value> {
    serde_json::from_slice(json).ok()
}

fn wire<'a, D: Serialize>(
    req: &'a Request,
    format: Format,
    value: impl Fn(&[u8]) -> Option<D>,
    binary: impl Fn(&[u8]) -> Option<D>,
) -> Option<Wire<'a, D>> {
    let mut w = Wire::new(req.id, "");
    match &req.command {
        Command::Connect {
            name,
            version,
            info,
            token,
        } => {
            w.cmd = "connect";
            w.name = name.as_deref();
            w.version = version.as_deref();
            w.token = token.as_deref();
            if let Some(info) = info {
                w.info = Some(value(info.as_bytes())?);
            }
        }
        Command::Refresh { token } => {
            w.cmd = "refresh";
            w.token = Some(token);
        }
        Command::Subscribe {
            channel,
            since,
            join_leave,
            token,
        } => {
            w.cmd = "subscribe";
            w.channel = Some(channel.as_str());
            w.since = since.as_ref().map(|p| Since {
                offset: p.offset,
                epoch: p.epoch.as_str(),
            });
            w.join_leave = join_leave.then_some(true);
            w.token = token.as_deref();
        }
        Command::Unsubscribe { channel } => {
            w.cmd = "unsubscribe";
            w.channel = Some(channel.as_str());
        }
        Command::Publish { channel, data } => {
            w.cmd = "publish";
            w.channel = Some(channel.as_str());
            put_data(&mut w, data, format, &value, &binary)?;
        }
        Command::Rpc { method, data } => {
            w.cmd = "rpc";
            w.method = Some(method);
            put_data(&mut w, data, format, &value, &binary)?;
        }
        Command::Presence { channel } => {
            w.cmd = "presence";
            w.channel = Some(channel.as_str());
        }
        Command::PresenceCount { channel } => {
            w.cmd = "presence_count";
            w.channel = Some(channel.as_str());
        }
        Command::History {
            channel,
            limit,
            from,
        } => {
            w.cmd = "history";
            w.channel = Some(channel.as_str());
            w.limit = Some(*limit as u64);
            match from {
                Some(PageFrom::After(a)) => w.after = Some(*a),
                Some(PageFrom::Before(b)) => w.before = Some(*b),
                None => {}
            }
        }
        Command::Ping => w.cmd = "ping",
        Command::Pong => w.cmd = "pong",
    }
    Some(w)
}

/// Writes `data` as `data` (JSON, or MessagePack `bin`) or, for binary data in JSON, `b64`.
fn put_data<D>(
    w: &mut Wire<'_, D>,
    data: &Payload,
    format: Format,
    value: &impl Fn(&[u8]) -> Option<D>,
    binary: &impl Fn(&[u8]) -> Option<D>,
) -> Option<()> {
    match (data, format) {
        (Payload::Json(json), _) => w.data = Some(value(json)?),
        (Payload::Binary(bytes), Format::Json) => {
            w.b64 = Some(base64::engine::general_purpose::STANDARD.encode(bytes));
        }
        (Payload::Binary(bytes), Format::MessagePack) => w.data = Some(binary(bytes)?),
    }
    Some(())
}

/// `req` with its JSON data and info rewritten in one canonical spelling (parsed and
/// serialized again), so that requests differing only in JSON whitespace, key order or
/// duplicate keys compare equal. JSON serde_json cannot parse is left as it is.
pub fn normalize(mut req: Request) -> Request {
    let canonical = |json: &[u8]| -> Option<Vec<u8>> {
        let value: serde_json::Value = serde_json::from_slice(json).ok()?;
        serde_json::to_vec(&value).ok()
    };
    match &mut req.command {
        Command::Publish {
            data: Payload::Json(json),
            ..
        }
        | Command::Rpc {
            data: Payload::Json(json),
            ..
        } => {
            if let Some(c) = canonical(json) {
                *json = c.into();
            }
        }
        Command::Connect {
            info: Some(info), ..
        } => {
            if let Some(c) = canonical(info.as_bytes()) {
                *info = RawJson::new(c.into());
            }
        }
        _ => {}
    }
    req
}
