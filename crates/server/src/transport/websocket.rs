//! The WebSocket transport on `/ws` (and the opt-in `/ws/echo`): checks the upgrade request,
//! negotiates the subprotocol (wire format) and permessage-deflate, answers `101`, then takes
//! the raw TCP stream (or TCP stream and TLS state) from hyper and hands it to a [`session`].

pub(crate) mod conn;
mod session;

use std::net::SocketAddr;

use axum::{
    extract::{ConnectInfo, Request, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use switchboard_proto::{ErrorCode, Format};
use switchboard_websocket::{
    DeflateConfig, DeflatePolicy, UpgradeRequest, negotiate_deflate, select_subprotocol,
    validate_upgrade,
};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use crate::{
    auth::presented_token, error::ApiError, server::ConnectionPermit, state::AppState,
    transport::identity,
};

/// Largest message the echo endpoint accepts (the Autobahn suite sends up to 16 MiB).
const ECHO_MAX_MESSAGE_BYTES: usize = 16 << 20;

/// What the handshake agreed.
struct Agreed {
    accept: String,
    format: Format,
    subprotocol: Option<&'static str>,
    deflate: Option<(DeflateConfig, String)>,
}

fn header_str<'a>(headers: &'a HeaderMap, name: &header::HeaderName) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn joined(headers: &HeaderMap, name: &header::HeaderName) -> Option<String> {
    let values: Vec<&str> = headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    (!values.is_empty()).then(|| values.join(", "))
}

fn agree(app: &AppState, req: &Request, native: bool) -> Result<Agreed, Box<Response>> {
    let headers = req.headers();
    let upgrade = UpgradeRequest {
        method: req.method().as_str(),
        upgrade: header_str(headers, &header::UPGRADE),
        connection: header_str(headers, &header::CONNECTION),
        version: header_str(headers, &header::SEC_WEBSOCKET_VERSION),
        key: header_str(headers, &header::SEC_WEBSOCKET_KEY),
    };
    let accept = validate_upgrade(&upgrade).map_err(|e| {
        let mut resp =
            ApiError::bad_request(format!("not a WebSocket upgrade: {e}")).into_response();
        if e.http_status() == 426 {
            *resp.status_mut() = StatusCode::UPGRADE_REQUIRED;
            resp.headers_mut().insert(
                header::SEC_WEBSOCKET_VERSION,
                HeaderValue::from_static("13"),
            );
        }
        Box::new(resp)
    })?;
    let offered = joined(headers, &header::SEC_WEBSOCKET_PROTOCOL);
    let (format, subprotocol) = if !native {
        (Format::Json, None)
    } else {
        match offered.as_deref() {
            None => (Format::Json, None),
            Some(list) => {
                let supported = [
                    Format::Json.subprotocol(),
                    Format::MessagePack.subprotocol(),
                ];
                let chosen = select_subprotocol(Some(list), &supported).ok_or_else(|| {
                    let resp = ApiError::bad_request(format!(
                        "unsupported subprotocol(s) {list:?}: use switchboard.json or switchboard.msgpack"
                    ))
                    .into_response();
                    Box::new(resp)
                })?;
                (
                    Format::from_subprotocol(chosen).unwrap_or(Format::Json),
                    Some(chosen),
                )
            }
        }
    };
    let deflate = if app.config.websocket.compression {
        joined(headers, &header::SEC_WEBSOCKET_EXTENSIONS)
            .and_then(|offer| negotiate_deflate(&offer, &DeflatePolicy::default()))
    } else {
        None
    };
    Ok(Agreed {
        accept,
        format,
        subprotocol,
        deflate,
    })
}

/// `GET /ws`: the native protocol.
pub(crate) async fn upgrade(State(app): State<AppState>, req: Request) -> Response {
    start(app, req, true).await
}

/// `GET /ws/echo`: echoes every message (only when `websocket.echo_endpoint` is on).
pub(crate) async fn echo(State(app): State<AppState>, req: Request) -> Response {
    start(app, req, false).await
}

async fn start(app: AppState, mut req: Request, native: bool) -> Response {
    let agreed = match agree(&app, &req, native) {
        Ok(a) => a,
        Err(resp) => {
            app.metrics
                .error("websocket", ErrorCode::BadRequest.as_str());
            tracing::debug!(status = %resp.status(), "websocket handshake refused");
            return *resp;
        }
    };
    if app.hub.is_shutting_down() {
        return ApiError::new(ErrorCode::Unavailable, "the server is shutting down")
            .into_response();
    }
    let Some(on_upgrade) = req.extensions_mut().remove::<OnUpgrade>() else {
        return ApiError::new(ErrorCode::BadRequest, "this connection cannot be upgraded")
            .into_response();
    };
    let permit = req.extensions().get::<ConnectionPermit>().cloned();
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
    if native
        && let crate::origin::Verdict::Refused(origin) =
            crate::origin::check(&app.config.allowed_origins, req.headers())
    {
        return crate::origin::refuse(&app, "websocket", Some(peer), &origin);
    }
    // A token in the upgrade request authenticates before the upgrade; without one the
    // client sends it in `connect` (browsers cannot set headers on a WebSocket).
    let query_token = req.uri().query().and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "token")
            .map(|(_, v)| v.into_owned())
    });
    let cookie = app.auth.config().cookie.as_deref();
    let auth = match presented_token(req.headers(), query_token.as_deref(), cookie) {
        Some((token, _)) if native => match app.auth.connect(Some(token)).await {
            Ok(a) => Some(a),
            Err(e) => {
                let err = identity::refuse_token(&app, "websocket", Some(peer), &e);
                app.metrics.error("websocket", err.code.as_str());
                return err.into_response();
            }
        },
        _ => None,
    };

    let mut resp = Response::new(axum::body::Body::empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(v) = HeaderValue::from_str(&agreed.accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    if let Some(p) = agreed.subprotocol {
        h.insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(p));
    }
    if let Some((_, ext)) = &agreed.deflate
        && let Ok(v) = HeaderValue::from_str(ext)
    {
        h.insert(header::SEC_WEBSOCKET_EXTENSIONS, v);
    }

    let settings = session::Settings {
        format: agreed.format,
        deflate: agreed.deflate.map(|(c, _)| c),
        echo: !native,
        max_message_bytes: if native {
            app.config.websocket.max_message_bytes
        } else {
            ECHO_MAX_MESSAGE_BYTES
        },
        forwarded: if auth.is_none() && native {
            app.hooks.forwarded(req.headers())
        } else {
            None
        },
        auth,
    };
    let tasks = app.tasks.clone();
    tasks.spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(%peer, error = %e, "websocket upgrade failed");
                return;
            }
        };
        let (stream, leftover) = match upgraded.downcast::<TokioIo<TcpStream>>() {
            Ok(parts) => (conn::Conn::Plain(parts.io.into_inner()), parts.read_buf),
            Err(upgraded) => match upgraded.downcast::<TokioIo<TlsStream<TcpStream>>>() {
                Ok(parts) => {
                    let (tcp, tls) = parts.io.into_inner().into_inner();
                    (conn::Conn::tls(tcp, tls), parts.read_buf)
                }
                Err(_) => {
                    tracing::error!(%peer, "websocket upgrade on an unexpected stream type");
                    return;
                }
            },
        };
        session::Session::new(app, stream, peer, leftover, settings, permit)
            .run()
            .await;
    });
    resp
}
