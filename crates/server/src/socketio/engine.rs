//! The Engine.IO HTTP entry point (`/socket.io/`, and `/engine.io/` in conformance mode):
//! handshakes over polling or WebSocket, polling GETs and POSTs, WebSocket upgrades, and the
//! reference server's error replies (`{"code":N,"message":…}` with its HTTP status).

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::{
    body::Body,
    extract::{ConnectInfo, Request, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use switchboard_socketio::engineio::{Packet, decode_payload};
use switchboard_websocket::{UpgradeRequest, validate_upgrade};
use tokio::{net::TcpStream, sync::mpsc};
use tokio_rustls::server::TlsStream;

use super::{Input, SocketIo, session};
use crate::{
    auth::presented_token, origin, server::ConnectionPermit, state::AppState,
    transport::websocket::conn::Conn,
};

pub(crate) const TRANSPORT: &str = "socketio";

/// An Engine.IO error reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EngineError {
    UnknownTransport,
    UnknownSid,
    BadHandshakeMethod,
    BadRequest,
    Forbidden,
    UnsupportedProtocolVersion,
    TooLarge,
    TooManySessions,
}

impl EngineError {
    fn parts(self) -> (StatusCode, u8, &'static str) {
        match self {
            Self::UnknownTransport => (StatusCode::BAD_REQUEST, 0, "Transport unknown"),
            Self::UnknownSid => (StatusCode::BAD_REQUEST, 1, "Session ID unknown"),
            Self::BadHandshakeMethod => (StatusCode::BAD_REQUEST, 2, "Bad handshake method"),
            Self::BadRequest => (StatusCode::BAD_REQUEST, 3, "Bad request"),
            Self::Forbidden => (StatusCode::FORBIDDEN, 4, "Forbidden"),
            Self::UnsupportedProtocolVersion => {
                (StatusCode::BAD_REQUEST, 5, "Unsupported protocol version")
            }
            Self::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, 3, "Payload too large"),
            Self::TooManySessions => (StatusCode::SERVICE_UNAVAILABLE, 3, "Too many sessions"),
        }
    }

    /// The metric label.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::UnknownTransport => "unknown_transport",
            Self::UnknownSid => "unknown_sid",
            Self::BadHandshakeMethod => "bad_handshake_method",
            Self::BadRequest => "bad_request",
            Self::Forbidden => "forbidden",
            Self::UnsupportedProtocolVersion => "unsupported_protocol_version",
            Self::TooLarge => "too_large",
            Self::TooManySessions => "too_many_sessions",
        }
    }

    fn response(self) -> Response {
        let (status, code, message) = self.parts();
        (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            format!(r#"{{"code":{code},"message":"{message}"}}"#),
        )
            .into_response()
    }
}

/// What the query string says.
struct Query {
    eio: Option<String>,
    transport: Option<String>,
    sid: Option<String>,
    token: Option<String>,
    jsonp: bool,
}

fn query(req: &Request) -> Query {
    let mut q = Query {
        eio: None,
        transport: None,
        sid: None,
        token: None,
        jsonp: false,
    };
    if let Some(raw) = req.uri().query() {
        for (k, v) in form_urlencoded::parse(raw.as_bytes()).take(32) {
            match &*k {
                "EIO" => q.eio = Some(v.into_owned()),
                "transport" => q.transport = Some(v.into_owned()),
                "sid" => q.sid = Some(v.into_owned()),
                "token" => q.token = Some(v.into_owned()),
                "j" => q.jsonp = true,
                _ => {}
            }
        }
    }
    q
}

fn peer_of(req: &Request) -> SocketAddr {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)))
}

/// CORS headers for an allowed origin (credentials allowed, as browsers need for cookies).
fn cors(headers: &mut HeaderMap, origin: Option<&HeaderValue>, any: bool) {
    match origin {
        Some(o) => {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o.clone());
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
            headers.insert(header::VARY, HeaderValue::from_static("Origin"));
        }
        None if any => {
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                HeaderValue::from_static("*"),
            );
        }
        None => {}
    }
}

/// `GET|POST|OPTIONS /socket.io/`.
pub(crate) async fn socketio(State(app): State<AppState>, req: Request) -> Response {
    handle(app, req, false).await
}

/// `GET|POST|OPTIONS /engine.io/` (conformance mode): a bare Engine.IO echo server.
pub(crate) async fn engineio(State(app): State<AppState>, req: Request) -> Response {
    handle(app, req, true).await
}

async fn handle(app: AppState, req: Request, raw: bool) -> Response {
    let Some(sio) = app.socketio.clone() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let any_origin = sio.config.conformance;
    let origin_value = req.headers().get(header::ORIGIN).cloned();
    let allowed = if any_origin {
        true
    } else {
        match origin::check(&app.config.allowed_origins, req.headers()) {
            origin::Verdict::Refused(o) => {
                let peer = peer_of(&req);
                let _ = origin::refuse(&app, TRANSPORT, Some(peer), &o);
                return error(&app, EngineError::Forbidden);
            }
            _ => true,
        }
    };
    let mut resp = if req.method() == Method::OPTIONS {
        preflight(req.headers())
    } else {
        route(&app, &sio, req, raw).await
    };
    if allowed {
        cors(resp.headers_mut(), origin_value.as_ref(), any_origin);
    }
    resp
}

fn preflight(headers: &HeaderMap) -> Response {
    let mut resp = StatusCode::NO_CONTENT.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, OPTIONS"),
    );
    if let Some(asked) = headers.get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
        h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, asked.clone());
    }
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    resp
}

fn error(app: &AppState, e: EngineError) -> Response {
    app.metrics.error(TRANSPORT, e.label());
    tracing::debug!(error = e.label(), "engine.io request refused");
    e.response()
}

async fn route(app: &AppState, sio: &Arc<SocketIo>, req: Request, raw: bool) -> Response {
    let q = query(&req);
    if q.eio.as_deref() != Some("4") {
        return error(app, EngineError::UnsupportedProtocolVersion);
    }
    let transport = match q.transport.as_deref() {
        Some("polling") if !q.jsonp => "polling",
        Some("websocket") => "websocket",
        _ => return error(app, EngineError::UnknownTransport),
    };
    let is_upgrade = req
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    match (q.sid.as_deref(), transport) {
        (None, "polling") => {
            if req.method() != Method::GET {
                return error(app, EngineError::BadHandshakeMethod);
            }
            open(app, sio, req, q.token, raw).await
        }
        (None, _) => {
            if req.method() != Method::GET {
                return error(app, EngineError::BadHandshakeMethod);
            }
            if !is_upgrade {
                return error(app, EngineError::BadRequest);
            }
            if !sio.has_room() {
                return error(app, EngineError::TooManySessions);
            }
            match accept_upgrade(app, req) {
                Ok((resp, upgrade)) => {
                    // The session's first frame is its handshake, sent by its task.
                    let token = q.token;
                    let app2 = app.clone();
                    let sio2 = sio.clone();
                    app.tasks.spawn(async move {
                        if let Some((conn, leftover, req_parts)) = upgrade.await {
                            let _ =
                                open_ws(&app2, &sio2, req_parts, token, raw, conn, leftover).await;
                        }
                    });
                    resp
                }
                Err(resp) => *resp,
            }
        }
        (Some(sid), "polling") => {
            let Some(tx) = sio.session(sid) else {
                return error(app, EngineError::UnknownSid);
            };
            if req.method() == Method::GET {
                poll_get(app, sio, tx).await
            } else if req.method() == Method::POST {
                poll_post(app, sio, tx, req).await
            } else {
                error(app, EngineError::BadRequest)
            }
        }
        (Some(sid), _) => {
            let Some(tx) = sio.session(sid) else {
                return error(app, EngineError::UnknownSid);
            };
            if !is_upgrade || req.method() != Method::GET {
                return error(app, EngineError::BadRequest);
            }
            match accept_upgrade(app, req) {
                Ok((resp, upgrade)) => {
                    app.tasks.spawn(async move {
                        if let Some((conn, leftover, _)) = upgrade.await {
                            let _ = tx.send(Input::Upgrade(Box::new((conn, leftover)))).await;
                        }
                    });
                    resp
                }
                Err(resp) => *resp,
            }
        }
    }
}

/// What a session's task needs from the request that opened it.
pub(crate) struct Opening {
    pub(crate) peer: SocketAddr,
    pub(crate) headers: HeaderMap,
    pub(crate) permit: Option<ConnectionPermit>,
}

fn opening(req: &Request) -> Opening {
    Opening {
        peer: peer_of(req),
        headers: req.headers().clone(),
        permit: req.extensions().get::<ConnectionPermit>().cloned(),
    }
}

type Upgraded =
    std::pin::Pin<Box<dyn std::future::Future<Output = Option<(Conn, Bytes, Opening)>> + Send>>;

/// Answers a WebSocket upgrade with 101 and returns the future of the raw stream.
fn accept_upgrade(app: &AppState, mut req: Request) -> Result<(Response, Upgraded), Box<Response>> {
    let headers = req.headers();
    let h = |name: &header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let upgrade = UpgradeRequest {
        method: req.method().as_str(),
        upgrade: h(&header::UPGRADE),
        connection: h(&header::CONNECTION),
        version: h(&header::SEC_WEBSOCKET_VERSION),
        key: h(&header::SEC_WEBSOCKET_KEY),
    };
    let accept =
        validate_upgrade(&upgrade).map_err(|_| Box::new(error(app, EngineError::BadRequest)))?;
    if app.hub.is_shutting_down() {
        return Err(Box::new(StatusCode::SERVICE_UNAVAILABLE.into_response()));
    }
    let Some(on_upgrade) = req.extensions_mut().remove::<OnUpgrade>() else {
        return Err(Box::new(error(app, EngineError::BadRequest)));
    };
    let parts = opening(&req);
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let hs = resp.headers_mut();
    hs.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    hs.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        hs.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    let peer = parts.peer;
    let fut = async move {
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(%peer, error = %e, "engine.io websocket upgrade failed");
                return None;
            }
        };
        let (conn, leftover) = match upgraded.downcast::<TokioIo<TcpStream>>() {
            Ok(p) => (Conn::Plain(p.io.into_inner()), p.read_buf),
            Err(upgraded) => match upgraded.downcast::<TokioIo<TlsStream<TcpStream>>>() {
                Ok(p) => {
                    let (tcp, tls) = p.io.into_inner().into_inner();
                    (Conn::tls(tcp, tls), p.read_buf)
                }
                Err(_) => {
                    tracing::error!(%peer, "engine.io upgrade on an unexpected stream type");
                    return None;
                }
            },
        };
        Some((conn, leftover, parts))
    };
    Ok((resp, Box::pin(fut)))
}

/// The token the handshake request presents (query, `Authorization` header, cookie).
fn request_token(app: &AppState, headers: &HeaderMap, query_token: Option<&str>) -> Option<String> {
    let cookie = app.auth.config().cookie.as_deref();
    presented_token(headers, query_token, cookie).map(|(t, _)| t.to_owned())
}

/// A new polling session: its task starts, the handshake is the response.
async fn open(
    app: &AppState,
    sio: &Arc<SocketIo>,
    req: Request,
    token: Option<String>,
    raw: bool,
) -> Response {
    if app.hub.is_shutting_down() {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let parts = opening(&req);
    let token = request_token(app, &parts.headers, token.as_deref());
    let (tx, rx) = mpsc::channel(8);
    let Some(s) = session::Session::new(app, sio, tx, rx, parts, token, raw, None) else {
        return error(app, EngineError::TooManySessions);
    };
    let handshake = s.handshake_text("polling");
    app.tasks.spawn(s.run());
    (
        [(header::CONTENT_TYPE, "text/plain; charset=UTF-8")],
        handshake,
    )
        .into_response()
}

/// A new session over WebSocket (no polling first).
async fn open_ws(
    app: &AppState,
    sio: &Arc<SocketIo>,
    parts: Opening,
    token: Option<String>,
    raw: bool,
    conn: Conn,
    leftover: Bytes,
) -> Option<()> {
    let token = request_token(app, &parts.headers, token.as_deref());
    let (tx, rx) = mpsc::channel(8);
    let link = super::link::Link::new(conn, leftover, sio.config.max_payload_bytes);
    match session::Session::new(app, sio, tx, rx, parts, token, raw, Some(link)) {
        Some(s) => {
            s.run().await;
            Some(())
        }
        None => {
            app.metrics
                .error(TRANSPORT, EngineError::TooManySessions.label());
            None
        }
    }
}

/// How long a polling GET may wait for its answer: the session answers within a ping
/// interval (a ping at least), so this only guards against a vanished task.
fn get_deadline(sio: &SocketIo) -> Duration {
    sio.ping_interval() + sio.ping_timeout() + Duration::from_secs(5)
}

async fn poll_get(app: &AppState, sio: &SocketIo, tx: mpsc::Sender<Input>) -> Response {
    let (reply, answer) = tokio::sync::oneshot::channel();
    if tx.send(Input::Get(reply)).await.is_err() {
        return error(app, EngineError::UnknownSid);
    }
    match tokio::time::timeout(get_deadline(sio), answer).await {
        Ok(Ok(Ok(body))) => {
            ([(header::CONTENT_TYPE, "text/plain; charset=UTF-8")], body).into_response()
        }
        Ok(Ok(Err(e))) => error(app, e),
        Ok(Err(_)) | Err(_) => error(app, EngineError::UnknownSid),
    }
}

async fn poll_post(
    app: &AppState,
    sio: &SocketIo,
    tx: mpsc::Sender<Input>,
    req: Request,
) -> Response {
    let max = sio.config.max_payload_bytes;
    let body = match Limited::new(req.into_body(), max).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            // Over maxPayload: the reference server closes the session too.
            let _ = tx.try_send(Input::Post(Box::new((vec![Packet::Close], None))));
            return error(app, EngineError::TooLarge);
        }
    };
    let packets = match decode_payload(body, max) {
        Ok(p) => p,
        Err(e) => {
            tracing::debug!(error = %e, "malformed engine.io polling payload");
            let _ = tx.try_send(Input::Post(Box::new((vec![Packet::Close], None))));
            return error(app, EngineError::BadRequest);
        }
    };
    let (reply, answer) = tokio::sync::oneshot::channel();
    if tx
        .send(Input::Post(Box::new((packets, Some(reply)))))
        .await
        .is_err()
    {
        return error(app, EngineError::UnknownSid);
    }
    match tokio::time::timeout(get_deadline(sio), answer).await {
        Ok(Ok(Ok(()))) => ([(header::CONTENT_TYPE, "text/html")], "ok").into_response(),
        Ok(Ok(Err(e))) => error(app, e),
        Ok(Err(_)) | Err(_) => error(app, EngineError::UnknownSid),
    }
}
