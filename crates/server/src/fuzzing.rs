//! Entry points for the fuzz targets in `crates/server/fuzz`: thin public wrappers around the
//! crate-private parsers that read network input (JWT verification, `Authorization` and
//! cookie headers, `Origin`, the `/sse` and `/poll` query string, cursors and
//! `Last-Event-ID`, the `POST /poll` body). Each wrapper calls the function the server calls
//! and only converts crate-private types into public ones. Not part of the API: hidden from
//! the docs, no stability promise, and nothing in the server calls it.

use axum::http::HeaderMap;
use bytes::Bytes;
use serde_json::{Map, Value};
use switchboard_core::{ChannelName, Payload, StreamPosition};
use switchboard_proto::ErrorCode;

use crate::{
    api::{self, PublishBody},
    auth::{
        self, KeyConfig, KeyError, TokenError, TokenSource,
        keys::VerifyingKey,
        token::{self, Checks},
    },
    error::ApiError,
    origin::{self, Verdict},
    transport::{cursor, query::Query},
};

/// An HTTP refusal: its code (which decides the status) and message.
pub type Refusal = (ErrorCode, String);

fn refusal(e: ApiError) -> Refusal {
    (e.code, e.message)
}

// === tokens ===

/// Longest token `TokenVerifier::verify` accepts, in bytes.
pub const MAX_TOKEN_BYTES: usize = token::MAX_TOKEN_BYTES;

/// Verifies connection and subscription tokens as `[auth]` configures it, static keys only.
pub struct TokenVerifier {
    keys: Vec<VerifyingKey>,
    checks: Checks,
}

/// What a verified token says (see `auth::token::Claims`).
#[derive(Debug, Clone)]
pub struct VerifiedClaims {
    /// `sub`; `None` when absent or empty.
    pub user: Option<String>,
    /// `exp`, unix seconds.
    pub expires: Option<u64>,
    /// `channels`.
    pub channels: Vec<String>,
    /// `info`, as JSON text.
    pub info: Option<Bytes>,
    /// `channel` (subscription tokens).
    pub channel: Option<String>,
    /// Every claim.
    pub all: Map<String, Value>,
}

impl TokenVerifier {
    /// Loads `keys` (as `[[auth.keys]]` entries) with the given claim checks.
    pub fn new(
        keys: &[KeyConfig],
        audience: Option<String>,
        issuer: Option<String>,
        leeway_seconds: u64,
        require_exp: bool,
    ) -> Result<Self, KeyError> {
        let keys = keys
            .iter()
            .enumerate()
            .map(|(i, k)| k.load(i))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            keys,
            checks: Checks {
                audience,
                issuer,
                leeway_seconds,
                require_exp,
            },
        })
    }

    /// `auth::token::verify`.
    pub fn verify(&self, token: &str) -> Result<VerifiedClaims, TokenError> {
        let c = token::verify(token, &self.keys, &self.checks)?;
        Ok(VerifiedClaims {
            user: c.user.map(|u| u.as_str().to_owned()),
            expires: c.expires,
            channels: c.channels,
            info: c.info.map(|i| i.as_bytes().clone()),
            channel: c.channel,
            all: (*c.all).clone(),
        })
    }
}

/// `auth::token::grants`: whether a `channels` claim grants `channel`.
pub fn grants(patterns: &[String], channel: &str) -> bool {
    token::grants(patterns, channel)
}

/// Where `presented_token` found a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenFrom {
    /// `Authorization: Bearer`.
    Header,
    /// The `token` query parameter.
    Query,
    /// The configured cookie.
    Cookie,
}

/// `auth::presented_token`: the token of an HTTP request and where it came from.
pub fn presented_token<'a>(
    headers: &'a HeaderMap,
    query_token: Option<&'a str>,
    cookie: Option<&str>,
) -> Option<(&'a str, TokenFrom)> {
    auth::presented_token(headers, query_token, cookie).map(|(t, source)| {
        let from = match source {
            TokenSource::Header => TokenFrom::Header,
            TokenSource::Query => TokenFrom::Query,
            TokenSource::Cookie => TokenFrom::Cookie,
        };
        (t, from)
    })
}

// === origin ===

/// What `origin::check` decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginVerdict {
    /// No `Origin` header.
    None,
    /// Allowed; the header value echoed in CORS headers.
    Allowed(Vec<u8>),
    /// Refused; the origin as reported.
    Refused(String),
}

/// `origin::check`: the request's `Origin` (and `Host`) against `allowed_origins`.
pub fn check_origin(allowed: &[String], headers: &HeaderMap) -> OriginVerdict {
    match origin::check(allowed, headers) {
        Verdict::None => OriginVerdict::None,
        Verdict::Allowed(v) => OriginVerdict::Allowed(v.as_bytes().to_vec()),
        Verdict::Refused(o) => OriginVerdict::Refused(o),
    }
}

// === /sse and /poll requests ===

/// `transport::cursor::parse`: a poll `cursor` or SSE `Last-Event-ID` for `channels` channels.
pub fn parse_cursor(cursor: &str, channels: usize) -> Result<Vec<StreamPosition>, Refusal> {
    cursor::parse(cursor, channels).map_err(refusal)
}

/// `transport::cursor::format`: the cursor of `positions`.
pub fn format_cursor(positions: &[StreamPosition]) -> String {
    cursor::format(positions)
}

/// The parsed query string of `/sse` or `/poll`.
pub struct SseQuery(Query);

/// `transport::query::Query::parse`.
pub fn parse_query(raw: Option<&str>, max_channels: usize) -> Result<SseQuery, Refusal> {
    Query::parse(raw, max_channels)
        .map(SseQuery)
        .map_err(refusal)
}

impl SseQuery {
    /// The `channel` parameters, in order.
    pub fn channels(&self) -> &[ChannelName] {
        &self.0.channels
    }

    /// Every other parameter, in order.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.0.pairs
    }

    /// `Query::get`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key)
    }

    /// `Query::number`.
    pub fn number(
        &self,
        key: &str,
        default: u64,
        range: std::ops::RangeInclusive<u64>,
    ) -> Result<u64, Refusal> {
        self.0.number(key, default, range).map_err(refusal)
    }

    /// `Query::flag`.
    pub fn flag(&self, key: &str) -> bool {
        self.0.flag(key)
    }
}

/// The body of `POST /poll` (and `POST /api/publish`), checked as both handlers do:
/// JSON of at most `max_bytes`, a valid channel, and exactly one of `data` and `b64`.
pub fn parse_publish_body(
    body: &[u8],
    max_bytes: usize,
) -> Result<(ChannelName, Payload), Refusal> {
    let body: PublishBody =
        api::parse_body(&Bytes::copy_from_slice(body), max_bytes).map_err(refusal)?;
    let channel = api::channel(&body.channel).map_err(refusal)?;
    let data = api::payload(body.data, body.b64).map_err(refusal)?;
    Ok((channel, data))
}

// === Socket.IO ===

/// The hub channel of Socket.IO room `room` in `namespace`, or `None` when the namespace is
/// not one the server accepts or the room cannot be a channel (`socketio::rooms`).
pub fn socketio_room_channel(namespace: &str, room: &str) -> Option<String> {
    if !crate::socketio::rooms::valid_namespace(namespace) {
        return None;
    }
    crate::socketio::rooms::room_channel(namespace, room)
        .ok()
        .map(|c| c.as_str().to_owned())
}

/// The namespace and room a channel stands for (`None`: the namespace's own channel).
pub fn socketio_channel_room(channel: &str) -> (String, Option<String>) {
    let (ns, room) = crate::socketio::rooms::channel_room(channel);
    (ns.to_owned(), room)
}

/// Where a client that reports `offset` (the string it sends when it reconnects) is in
/// channel `a` and channel `b`, after it was sent `a`:1..=3 and `b`:1..=2 interleaved; `None`
/// when the offset cannot be placed.
pub fn socketio_recovery_positions(offset: &str) -> Option<(u64, u64)> {
    crate::socketio::recovery_positions_for_fuzzing(offset)
}
