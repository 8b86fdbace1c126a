//! The server HTTP API under `/api/` for application backends: publish, broadcast, history,
//! presence, channels, user-addressed messages, disconnects and info. JSON in and out; errors
//! as `{"error":{"code","message"}}`. Guarded by `api.key`, or — when no key is configured —
//! answered only for loopback clients, so a fresh install is usable with curl on the same
//! machine without ever being open to the network.

use std::net::SocketAddr;

use axum::{
    Router,
    body::Bytes,
    extract::{ConnectInfo, RawQuery, Request, State},
    http::{HeaderMap, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use base64::Engine;
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::{json, value::RawValue};
use switchboard_core::{ChannelName, Disconnect, PageFrom, Payload, UserId};
use switchboard_proto::{ErrorCode, MAX_HISTORY_LIMIT};

use crate::{error::ApiError, metrics::TransportLabel, state::AppState};

const TRANSPORT: &str = "api";
/// Largest request body of the API (a broadcast carries one payload plus channel names).
const MAX_API_BODY_BYTES: usize = 1 << 20;
/// Most channels in one broadcast.
const MAX_BROADCAST_CHANNELS: usize = 1000;

pub(crate) fn router(state: AppState) -> Router<AppState> {
    let guarded = Router::new()
        .route("/publish", post(publish))
        .route("/broadcast", post(broadcast))
        .route("/history", get(history))
        .route("/presence", get(presence))
        .route("/presence_count", get(presence_count))
        .route("/channels", get(channels))
        .route("/message", post(message))
        .route("/disconnect", post(disconnect))
        .route("/info", get(info))
        .nest("/socketio", crate::socketio::api_router())
        .layer(middleware::from_fn_with_state(state, authorize));
    Router::new()
        .route("/openapi.json", get(openapi))
        .merge(guarded)
}

async fn authorize(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    req: Request,
    next: Next,
) -> Response {
    let allowed = match &app.config.api.key {
        Some(key) => {
            presented_key(&headers).is_some_and(|k| constant_time_eq(k.as_bytes(), key.as_bytes()))
        }
        None => peer.ip().is_loopback(),
    };
    if !allowed {
        app.metrics
            .error(TRANSPORT, ErrorCode::Unauthorized.as_str());
        let why = if app.config.api.key.is_some() {
            "missing or wrong API key (send Authorization: Bearer KEY or X-API-Key: KEY)"
        } else {
            "no api.key is configured, so the API answers loopback clients only"
        };
        tracing::warn!(%peer, "API request refused: {why}");
        return ApiError::new(ErrorCode::Unauthorized, why).into_response();
    }
    app.metrics
        .messages_in
        .get_or_create(&TransportLabel {
            transport: TRANSPORT,
        })
        .inc();
    let resp = next.run(req).await;
    if let Some(code) = resp.extensions().get::<ErrorCode>() {
        app.metrics.error(TRANSPORT, code.as_str());
    }
    resp
}

fn presented_key(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A JSON 200 response.
pub(crate) fn json(value: &serde_json::Value) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

fn json_bytes(body: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Parses a JSON body of at most `max` bytes.
pub(crate) fn parse_body<T: DeserializeOwned>(body: &Bytes, max: usize) -> Result<T, ApiError> {
    if body.len() > max {
        return Err(ApiError::new(
            ErrorCode::TooLarge,
            format!("body over {max} bytes"),
        ));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

/// Validates a channel name.
pub(crate) fn channel(name: &str) -> Result<ChannelName, ApiError> {
    ChannelName::parse(name).map_err(|e| {
        ApiError::new(
            ErrorCode::InvalidChannel,
            format!("invalid channel {name:?}: {e}"),
        )
    })
}

/// `data` (JSON) or `b64` (binary), exactly one.
pub(crate) fn payload(
    data: Option<Box<RawValue>>,
    b64: Option<String>,
) -> Result<Payload, ApiError> {
    match (data, b64) {
        (Some(d), None) => Payload::json(Bytes::copy_from_slice(d.get().as_bytes()))
            .map_err(|e| ApiError::new(ErrorCode::InvalidData, e.to_string())),
        (None, Some(b)) => base64::engine::general_purpose::STANDARD
            .decode(b.as_bytes())
            .map(|v| Payload::Binary(v.into()))
            .map_err(|e| ApiError::new(ErrorCode::InvalidData, format!("b64 is not base64: {e}"))),
        (Some(_), Some(_)) => Err(ApiError::new(
            ErrorCode::InvalidData,
            "give either data or b64, not both",
        )),
        (None, None) => Err(ApiError::new(ErrorCode::InvalidData, "missing data or b64")),
    }
}

/// A present `data` field is `Some`, even when it holds `null` (which is valid data).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Box<RawValue>>, D::Error> {
    <Box<RawValue>>::deserialize(d).map(Some)
}

/// Body of a publish.
#[derive(Deserialize)]
pub(crate) struct PublishBody {
    pub(crate) channel: String,
    #[serde(default, deserialize_with = "present")]
    pub(crate) data: Option<Box<RawValue>>,
    pub(crate) b64: Option<String>,
}

async fn publish(State(app): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let body: PublishBody = parse_body(&body, MAX_API_BODY_BYTES)?;
    let channel = channel(&body.channel)?;
    let data = payload(body.data, body.b64)?;
    let pos = app.hub.publish(&channel, data, None).await?;
    app.metrics
        .publications
        .get_or_create(&TransportLabel {
            transport: TRANSPORT,
        })
        .inc();
    Ok(json(&json!({"offset": pos.offset, "epoch": pos.epoch})))
}

#[derive(Deserialize)]
struct BroadcastBody {
    channels: Vec<String>,
    #[serde(default, deserialize_with = "present")]
    data: Option<Box<RawValue>>,
    b64: Option<String>,
}

async fn broadcast(State(app): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let body: BroadcastBody = parse_body(&body, MAX_API_BODY_BYTES)?;
    if body.channels.is_empty() || body.channels.len() > MAX_BROADCAST_CHANNELS {
        return Err(ApiError::bad_request(format!(
            "`channels` must hold 1..={MAX_BROADCAST_CHANNELS} channels"
        )));
    }
    let channels = body
        .channels
        .iter()
        .map(|c| channel(c))
        .collect::<Result<Vec<_>, _>>()?;
    let data = payload(body.data, body.b64)?;
    // Accept every channel's publication first (each keeps its order), then wait for the
    // commits together: they share the store's group commits.
    let mut accepted = Vec::with_capacity(channels.len());
    for ch in &channels {
        accepted.push(app.hub.submit(ch, data.clone(), None).await);
    }
    let mut results = Vec::with_capacity(channels.len());
    for (ch, submitted) in channels.iter().zip(accepted) {
        let outcome = match submitted {
            Ok(committed) => committed.await,
            Err(e) => Err(e),
        };
        results.push(match outcome {
            Ok(pos) => {
                app.metrics
                    .publications
                    .get_or_create(&TransportLabel { transport: TRANSPORT })
                    .inc();
                json!({"channel": ch, "offset": pos.offset, "epoch": pos.epoch})
            }
            Err(e) => json!({"channel": ch, "error": {"code": ErrorCode::from_hub(&e).as_str(), "message": e.to_string()}}),
        });
    }
    Ok(json(&json!({ "results": results })))
}

fn query_channel(q: &crate::transport::query::Query) -> Result<ChannelName, ApiError> {
    match q.channels.as_slice() {
        [one] => Ok(one.clone()),
        _ => Err(ApiError::bad_request(
            "give exactly one `channel` parameter",
        )),
    }
}

async fn history(
    State(app): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let q = crate::transport::query::Query::parse(raw.as_deref(), 1)?;
    let channel = query_channel(&q)?;
    let limit = q.number("limit", 100, 1..=MAX_HISTORY_LIMIT as u64)? as usize;
    let from = match (q.get("after"), q.get("before")) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "give either `after` or `before`, not both",
            ));
        }
        (Some(_), None) => Some(PageFrom::After(q.number("after", 0, 0..=u64::MAX)?)),
        (None, Some(_)) => Some(PageFrom::Before(q.number("before", 0, 0..=u64::MAX)?)),
        (None, None) => None,
    };
    let page = app.hub.history(&channel, from, limit).await?;
    Ok(json_bytes(switchboard_proto::result_json(
        &switchboard_proto::Reply::History(&page),
    )))
}

async fn presence(
    State(app): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let q = crate::transport::query::Query::parse(raw.as_deref(), 1)?;
    let channel = query_channel(&q)?;
    let clients = app.hub.presence(&channel)?;
    Ok(json(&json!({ "clients": clients })))
}

async fn presence_count(
    State(app): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let q = crate::transport::query::Query::parse(raw.as_deref(), 1)?;
    let channel = query_channel(&q)?;
    Ok(json(
        &serde_json::to_value(app.hub.presence_count(&channel)?).unwrap_or_default(),
    ))
}

/// Channels in memory, each with its stored stream's size when it has one.
async fn channels(State(app): State<AppState>) -> Result<Response, ApiError> {
    let live = app.hub.channels();
    let names = live
        .iter()
        .filter(|c| c.stored)
        .map(|c| c.channel.clone())
        .collect();
    let stored = app.hub.stream_stats(names).await?;
    let channels: Vec<serde_json::Value> = live
        .iter()
        .map(|c| {
            let mut v = serde_json::to_value(c).unwrap_or_default();
            if let Some(s) = stored.iter().find(|s| s.channel == c.channel) {
                v["store"] = json!({"publications": s.publications, "bytes": s.bytes});
            }
            v
        })
        .collect();
    Ok(json(&json!({ "channels": channels })))
}

fn user(id: &str) -> Result<UserId, ApiError> {
    UserId::parse(id).map_err(|e| ApiError::bad_request(format!("invalid user {id:?}: {e}")))
}

#[derive(Deserialize)]
struct MessageBody {
    user: String,
    #[serde(default, deserialize_with = "present")]
    data: Option<Box<RawValue>>,
    b64: Option<String>,
}

async fn message(State(app): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let body: MessageBody = parse_body(&body, MAX_API_BODY_BYTES)?;
    let user = user(&body.user)?;
    let data = payload(body.data, body.b64)?;
    let delivered = app.hub.send_to_user(&user, data);
    Ok(json(&json!({ "delivered": delivered })))
}

#[derive(Deserialize)]
struct DisconnectBody {
    user: String,
    #[serde(default)]
    reconnect: bool,
    #[serde(default)]
    reason: Option<String>,
}

async fn disconnect(State(app): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let body: DisconnectBody = parse_body(&body, MAX_API_BODY_BYTES)?;
    let user = user(&body.user)?;
    let reason: String = body
        .reason
        .unwrap_or_else(|| "disconnected by the server".to_owned())
        .chars()
        .take(100)
        .collect();
    let n = app.hub.disconnect_user(
        &user,
        Disconnect::ByServer {
            reconnect: body.reconnect,
            reason,
        },
    );
    Ok(json(&json!({ "disconnected": n })))
}

async fn info(State(app): State<AppState>) -> Response {
    let conns = |t: &'static str| {
        app.metrics
            .connections
            .get_or_create(&TransportLabel { transport: t })
            .get()
    };
    let stats = app.hub.stats();
    json(&json!({
        "version": crate::VERSION,
        "uptime_seconds": app.started.elapsed().as_secs(),
        "connections": {
            "websocket": conns("websocket"),
            "sse": conns("sse"),
            "long_poll": conns("long_poll"),
        },
        "channels": stats.channels,
        "clients": stats.clients,
        "history_bytes": stats.history_bytes,
        "store": {
            "kind": app.hub.store().kind(),
            "available": stats.store_available,
            "pending_writes": stats.pending_writes,
            "commits": stats.store_commits,
            "committed": stats.store_committed,
            "failures": stats.store_failures,
        },
    }))
}

async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        include_str!("openapi.json"),
    )
        .into_response()
}
