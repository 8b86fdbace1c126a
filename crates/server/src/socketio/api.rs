//! The server API for Socket.IO under `/api/socketio/`: what a backend in any language needs
//! to drive Socket.IO clients the way `io.to(room).emit(…)` would: emit to rooms, sockets or a
//! namespace (with an ack from one socket), list sockets and rooms, make sockets join or leave
//! rooms, and disconnect them.

use std::{collections::HashSet, sync::Arc, time::Duration};

use axum::{
    Router,
    body::Bytes,
    extract::{Query, State},
    response::Response,
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::{json, value::RawValue};
use switchboard_core::{ChannelName, ClientId, Payload};
use switchboard_proto::ErrorCode;
use switchboard_socketio::JsonText;
use tokio::sync::oneshot;

use super::{
    Control, Input, SocketIo,
    rooms::{channel_room, join_array, json_string, namespace_channel, room_channel},
    socket::direct_delivery,
};
use crate::{
    api::{json, parse_body},
    error::ApiError,
    state::AppState,
};

const MAX_BODY_BYTES: usize = 1 << 20;
/// Most rooms or sockets named in one request.
const MAX_TARGETS: usize = 1000;
/// Longest wait for a socket's ack.
const MAX_ACK_TIMEOUT_MS: u64 = 60_000;
/// How long a session may take to answer a control request.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/emit", post(emit))
        .route("/sockets", get(sockets))
        .route("/rooms", get(rooms))
        .route("/join", post(join))
        .route("/leave", post(leave))
        .route("/disconnect", post(disconnect))
}

fn sio(app: &AppState) -> Result<Arc<SocketIo>, ApiError> {
    app.socketio
        .clone()
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "socketio is disabled"))
}

fn default_namespace() -> String {
    "/".to_owned()
}

fn namespace(ns: &str) -> Result<(), ApiError> {
    if super::rooms::valid_namespace(ns) {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!("invalid namespace {ns:?}")))
    }
}

fn room(ns: &str, room: &str) -> Result<ChannelName, ApiError> {
    room_channel(ns, room)
        .map_err(|e| ApiError::new(ErrorCode::InvalidChannel, format!("room {room:?}: {e}")))
}

fn limit(len: usize, what: &str) -> Result<(), ApiError> {
    if len > MAX_TARGETS {
        Err(ApiError::bad_request(format!(
            "at most {MAX_TARGETS} {what}"
        )))
    } else {
        Ok(())
    }
}

#[derive(Deserialize)]
struct EmitBody {
    #[serde(default = "default_namespace")]
    namespace: String,
    #[serde(default)]
    rooms: Vec<String>,
    #[serde(default)]
    sockets: Vec<String>,
    #[serde(default)]
    except: Vec<String>,
    event: String,
    #[serde(default)]
    args: Vec<Box<RawValue>>,
    /// Wait for the one socket's ack, at most this long.
    ack_timeout_ms: Option<u64>,
    /// Sockets that cannot take it at once (polling between requests) skip it.
    #[serde(default)]
    volatile: bool,
}

/// `POST /api/socketio/emit`.
async fn emit(State(app): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let sio = sio(&app)?;
    let body: EmitBody = parse_body(&body, MAX_BODY_BYTES)?;
    namespace(&body.namespace)?;
    limit(
        body.rooms.len() + body.sockets.len() + body.except.len(),
        "rooms and sockets",
    )?;
    if switchboard_socketio::socketio::RESERVED_EVENTS.contains(&body.event.as_str()) {
        return Err(ApiError::bad_request(format!(
            "{:?} is a reserved event name",
            body.event
        )));
    }
    let name = json_string(&body.event);
    let data = join_array(std::iter::once(name.as_str()).chain(body.args.iter().map(|a| a.get())))
        .ok_or_else(|| ApiError::bad_request("args must be JSON values"))?;
    let ns = body.namespace.as_str();
    if let Some(timeout) = body.ack_timeout_ms {
        let [socket] = body.sockets.as_slice() else {
            return Err(ApiError::bad_request(
                "ack_timeout_ms needs exactly one socket in `sockets` and no rooms",
            ));
        };
        if !body.rooms.is_empty() {
            return Err(ApiError::bad_request(
                "ack_timeout_ms needs exactly one socket in `sockets` and no rooms",
            ));
        }
        return emit_with_ack(&sio, ns, socket, data, timeout).await;
    }
    let payload = Payload::json(data.as_bytes().clone())
        .map_err(|e| ApiError::new(ErrorCode::InvalidData, e.to_string()))?;
    // Sockets in `except` rooms (and named in `except`) are left out.
    let mut except: HashSet<ClientId> = HashSet::new();
    for r in &body.except {
        if let Ok(channel) = room(ns, r)
            && let Ok(members) = app.hub.presence(&channel)
        {
            except.extend(members.iter().map(|m| m.client.clone()));
        }
        except.insert(ClientId::restore(r));
    }
    let mut targets: Vec<ChannelName> = body
        .rooms
        .iter()
        .map(|r| room(ns, r))
        .collect::<Result<_, _>>()?;
    if targets.is_empty() && body.sockets.is_empty() {
        targets.extend(namespace_channel(ns));
    }
    let mut delivered = 0usize;
    for (k, channel) in targets.iter().enumerate() {
        if k > 0
            && let Ok(members) = app.hub.presence(&targets[k - 1])
        {
            except.extend(members.iter().map(|m| m.client.clone()));
        }
        let live = switchboard_core::Live {
            except: (!except.is_empty()).then(|| Arc::new(except.clone())),
            volatile: body.volatile,
        };
        app.hub
            .submit_live(channel, payload.clone(), None, live)
            .await?
            .await?;
    }
    for s in &body.sockets {
        if except.contains(&ClientId::restore(s)) {
            continue;
        }
        if let Some(d) = direct_delivery(ns, payload.clone(), None, body.volatile)
            && sio.deliver_to_socket(s, ns, d)
        {
            delivered += 1;
        }
    }
    // `sockets`: how many of the sockets named in `sockets` were reached (rooms and
    // namespaces are channels: their reach is their members).
    Ok(json(&json!({"ok": true, "sockets": delivered})))
}

async fn emit_with_ack(
    sio: &SocketIo,
    ns: &str,
    socket: &str,
    data: JsonText,
    timeout_ms: u64,
) -> Result<Response, ApiError> {
    let timeout = Duration::from_millis(timeout_ms.clamp(1, MAX_ACK_TIMEOUT_MS));
    let entry = sio
        .socket(socket)
        .filter(|e| &*e.namespace == ns)
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "no such socket in this namespace"))?;
    let (tx, rx) = oneshot::channel();
    entry
        .session
        .try_send(Input::control(Control::EmitWithAck(
            ClientId::restore(socket),
            data,
            timeout,
            tx,
        )))
        .map_err(|_| ApiError::new(ErrorCode::Unavailable, "the socket is busy; try again"))?;
    match tokio::time::timeout(timeout + CONTROL_TIMEOUT, rx).await {
        Ok(Ok(Ok(ack))) => {
            let ack: Box<RawValue> = serde_json::from_str(ack.as_str())
                .map_err(|_| ApiError::new(ErrorCode::Internal, "unreadable ack"))?;
            Ok(json(&json!({"ok": true, "ack": ack})))
        }
        Ok(Ok(Err(e))) => Err(ApiError::new(ErrorCode::Unavailable, e)),
        _ => Err(ApiError::new(
            ErrorCode::Unavailable,
            "the socket did not acknowledge in time",
        )),
    }
}

#[derive(Deserialize)]
struct ListQuery {
    #[serde(default = "default_namespace")]
    namespace: String,
    room: Option<String>,
}

/// `GET /api/socketio/sockets?namespace=/chat[&room=lobby]`.
async fn sockets(
    State(app): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let sio = sio(&app)?;
    namespace(&q.namespace)?;
    let mut list = sio.sockets(Some(&q.namespace));
    if let Some(r) = &q.room {
        let channel = room(&q.namespace, r)?;
        let members: HashSet<ClientId> = app
            .hub
            .presence(&channel)
            .map(|m| m.iter().map(|i| i.client.clone()).collect())
            .unwrap_or_default();
        list.retain(|(id, _)| members.contains(id));
    }
    list.truncate(MAX_TARGETS);
    let mut out = Vec::with_capacity(list.len());
    for (id, entry) in list {
        let (tx, rx) = oneshot::channel();
        let rooms = if entry
            .session
            .try_send(Input::control(Control::Rooms(id.clone(), tx)))
            .is_ok()
        {
            tokio::time::timeout(CONTROL_TIMEOUT, rx)
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        out.push(json!({
            "id": id.as_str(),
            "user": entry.user.as_ref().map(|u| u.as_str()),
            "rooms": rooms,
            "transport": entry.transport,
        }));
    }
    Ok(json(&json!({"sockets": out})))
}

/// `GET /api/socketio/rooms?namespace=/chat`.
async fn rooms(
    State(app): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Result<Response, ApiError> {
    sio(&app)?;
    namespace(&q.namespace)?;
    let rooms: Vec<serde_json::Value> = app
        .hub
        .channels()
        .into_iter()
        .filter_map(|c| {
            let (ns, room) = channel_room(c.channel.as_str());
            (ns == q.namespace && c.subscribers > 0)
                .then_some(())
                .and(room)
                .map(|room| json!({"name": room, "channel": c.channel, "members": c.subscribers}))
        })
        .take(MAX_TARGETS)
        .collect();
    Ok(json(&json!({"rooms": rooms})))
}

#[derive(Deserialize)]
struct MembershipBody {
    #[serde(default = "default_namespace")]
    namespace: String,
    /// The sockets to act on…
    #[serde(default)]
    sockets: Vec<String>,
    /// …or every socket in these rooms.
    #[serde(default)]
    in_rooms: Vec<String>,
    #[serde(default)]
    rooms: Vec<String>,
    /// `disconnect` only: close the whole connection, not just the namespace.
    #[serde(default)]
    close: bool,
}

/// The sockets a membership request names (directly or by room).
fn targets(
    app: &AppState,
    sio: &SocketIo,
    body: &MembershipBody,
) -> Result<Vec<ClientId>, ApiError> {
    namespace(&body.namespace)?;
    limit(
        body.sockets.len() + body.in_rooms.len() + body.rooms.len(),
        "rooms and sockets",
    )?;
    let mut ids: Vec<ClientId> = body.sockets.iter().map(|s| ClientId::restore(s)).collect();
    for r in &body.in_rooms {
        let channel = room(&body.namespace, r)?;
        if let Ok(members) = app.hub.presence(&channel) {
            ids.extend(members.iter().map(|m| m.client.clone()));
        }
    }
    ids.retain(|id| {
        sio.socket(id.as_str())
            .is_some_and(|e| *e.namespace == *body.namespace)
    });
    let mut seen = HashSet::new();
    ids.retain(|id| seen.insert(id.clone()));
    Ok(ids)
}

/// `POST /api/socketio/join`.
async fn join(State(app): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let sio = sio(&app)?;
    let body: MembershipBody = parse_body(&body, MAX_BODY_BYTES)?;
    for r in &body.rooms {
        room(&body.namespace, r)?;
    }
    let mut done = 0;
    let mut errors = Vec::new();
    for id in targets(&app, &sio, &body)? {
        let Some(entry) = sio.socket(id.as_str()) else {
            continue;
        };
        let (tx, rx) = oneshot::channel();
        let sent = entry.session.try_send(Input::control(Control::Join(
            id.clone(),
            body.rooms.clone(),
            tx,
        )));
        let result = match sent {
            Ok(()) => tokio::time::timeout(CONTROL_TIMEOUT, rx)
                .await
                .map_err(|_| "timed out".to_owned())
                .and_then(|r| r.map_err(|_| "gone".to_owned()))
                .and_then(|r| r),
            Err(_) => Err("busy".to_owned()),
        };
        match result {
            Ok(()) => done += 1,
            Err(e) => errors.push(json!({"socket": id.as_str(), "error": e})),
        }
    }
    Ok(json(
        &json!({"ok": errors.is_empty(), "sockets": done, "errors": errors}),
    ))
}

/// `POST /api/socketio/leave`.
async fn leave(State(app): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let sio = sio(&app)?;
    let body: MembershipBody = parse_body(&body, MAX_BODY_BYTES)?;
    let mut done = 0;
    for id in targets(&app, &sio, &body)? {
        if let Some(entry) = sio.socket(id.as_str())
            && entry
                .session
                .try_send(Input::control(Control::Leave(id, body.rooms.clone())))
                .is_ok()
        {
            done += 1;
        }
    }
    Ok(json(&json!({"ok": true, "sockets": done})))
}

/// `POST /api/socketio/disconnect`.
async fn disconnect(State(app): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let sio = sio(&app)?;
    let body: MembershipBody = parse_body(&body, MAX_BODY_BYTES)?;
    let mut done = 0;
    for id in targets(&app, &sio, &body)? {
        if let Some(entry) = sio.socket(id.as_str()) {
            // A full inbox means a stuck session: closing its outbox ends it as well.
            if entry
                .session
                .try_send(Input::control(Control::Disconnect(id, body.close)))
                .is_err()
            {
                entry.outbox.close(switchboard_core::Disconnect::ByServer {
                    reconnect: true,
                    reason: "disconnected through the server API".to_owned(),
                });
            }
            done += 1;
        }
    }
    Ok(json(&json!({"ok": true, "sockets": done})))
}
