//! Who an HTTP request (an SSE stream, a poll, a WebSocket upgrade) is: finds its token,
//! verifies it with the server's [`Authenticator`](crate::auth::Authenticator), and turns a
//! refusal into an HTTP error with a metric and an audit line. Shared by every transport so
//! none checks less than another.

use std::net::SocketAddr;

use axum::http::HeaderMap;
use switchboard_core::{Action, ChannelName, ClientId, ClientInfo, HubError, Payload};

use crate::{
    audit::Refusal,
    auth::{Authenticated, TokenError, TokenSource, presented_token},
    error::ApiError,
    hooks::{Caller, ConnectInfo, Hook, HookError},
    state::AppState,
};

/// An authenticated request and where its token came from.
pub(crate) struct RequestIdentity {
    pub(crate) auth: Authenticated,
}

/// Authenticates the request from its `Authorization` header, `token` query parameter or
/// cookie (in that order); anonymous when it has none and the server allows it. A request
/// that `changes_state` (a publish) authenticated by cookie must carry an `Origin` (the
/// origin middleware has already refused disallowed ones): CSRF protection.
pub(crate) async fn authenticate(
    app: &AppState,
    headers: &HeaderMap,
    query_token: Option<&str>,
    transport: &'static str,
    peer: Option<SocketAddr>,
    changes_state: bool,
) -> Result<RequestIdentity, ApiError> {
    let cookie = app.auth.config().cookie.as_deref();
    let presented = presented_token(headers, query_token, cookie);
    let by_hook = presented.is_none() && app.hooks.connect_enabled();
    // What the browser sends by itself (a cookie token, or the cookies the connect hook
    // reads) could come from another site's page: a publish needs an Origin too.
    let ambient = match (presented.map(|(_, s)| s), by_hook) {
        (Some(TokenSource::Cookie), _) => Some("cookie"),
        (None, true) => Some("the connect hook"),
        _ => None,
    };
    if changes_state
        && let Some(how) = ambient
        && headers.get(axum::http::header::ORIGIN).is_none()
    {
        app.audit.refused(
            &app.metrics,
            &Refusal {
                transport,
                reason: "csrf",
                peer,
                user: None,
                detail: &format!("a publish authenticated by {how} without an Origin header"),
            },
        );
        return Err(ApiError::new(
            switchboard_proto::ErrorCode::OriginNotAllowed,
            format!(
                "a request authenticated by {how} that changes state must carry an Origin header"
            ),
        ));
    }
    if by_hook {
        let forwarded = app.hooks.forwarded(headers);
        let caller = Caller {
            transport,
            client: None,
            user: None,
            peer,
        };
        let request = ConnectInfo {
            headers: forwarded.as_ref(),
            ..ConnectInfo::default()
        };
        return match app.hooks.connect(caller, request).await {
            Ok(auth) => Ok(RequestIdentity { auth }),
            Err(e) => Err(refuse_hook(app, transport, peer, None, Hook::Connect, &e)),
        };
    }
    match app.auth.connect(presented.map(|(t, _)| t)).await {
        Ok(auth) => Ok(RequestIdentity { auth }),
        Err(e) => Err(refuse_token(app, transport, peer, &e)),
    }
}

/// Counts, logs (refusals only: failures are logged by the hooks) and converts a hook's
/// refusal.
pub(crate) fn refuse_hook(
    app: &AppState,
    transport: &'static str,
    peer: Option<SocketAddr>,
    auth: Option<&Authenticated>,
    hook: Hook,
    e: &HookError,
) -> ApiError {
    if !matches!(e, HookError::Unavailable(_)) {
        app.audit.refused(
            &app.metrics,
            &Refusal {
                transport,
                reason: e.reason(),
                peer,
                user: auth.and_then(Authenticated::user),
                detail: &e.to_string(),
            },
        );
    }
    ApiError::new(e.code(hook), e.to_string())
}

/// For a channel whose namespace has `subscribe_hook` (and that no token grants): checks
/// the rules, then asks the application's backend. A no-op for other channels.
pub(crate) async fn subscribe_hook(
    app: &AppState,
    transport: &'static str,
    peer: Option<SocketAddr>,
    auth: &Authenticated,
    channel: &ChannelName,
) -> Result<(), ApiError> {
    if auth.grants(channel) || !app.hub.channel_options(channel).subscribe_hook {
        return Ok(());
    }
    app.hub
        .authorize(&auth.identity, channel, Action::Subscribe)
        .inspect_err(|e| audit_denial(app, transport, peer, auth, channel, e))?;
    let caller = Caller {
        transport,
        client: None,
        user: auth.user(),
        peer,
    };
    app.hooks
        .subscribe(caller, channel)
        .await
        .map_err(|e| refuse_hook(app, transport, peer, Some(auth), Hook::Subscribe, &e))
}

/// For a channel whose namespace has `publish_hook`: asks the application's backend,
/// which may refuse or replace the data. `data` unchanged for other channels.
pub(crate) async fn publish_hook(
    app: &AppState,
    transport: &'static str,
    peer: Option<SocketAddr>,
    auth: &Authenticated,
    channel: &ChannelName,
    data: Payload,
) -> Result<Payload, ApiError> {
    if !app.hub.channel_options(channel).publish_hook {
        return Ok(data);
    }
    let caller = Caller {
        transport,
        client: None,
        user: auth.user(),
        peer,
    };
    app.hooks
        .publish(caller, channel, data)
        .await
        .map_err(|e| refuse_hook(app, transport, peer, Some(auth), Hook::Publish, &e))
}

/// Counts, logs and converts a token refusal.
pub(crate) fn refuse_token(
    app: &AppState,
    transport: &'static str,
    peer: Option<SocketAddr>,
    e: &TokenError,
) -> ApiError {
    app.audit.refused(
        &app.metrics,
        &Refusal {
            transport,
            reason: e.reason(),
            peer,
            user: None,
            detail: &e.to_string(),
        },
    );
    ApiError::new(e.code(), e.to_string())
}

/// Counts and logs a permission denial (the error itself goes back to the client).
pub(crate) fn audit_denial(
    app: &AppState,
    transport: &'static str,
    peer: Option<SocketAddr>,
    auth: &Authenticated,
    channel: &ChannelName,
    e: &HubError,
) {
    if let HubError::PermissionDenied(why) = e {
        app.audit.refused(
            &app.metrics,
            &Refusal {
                transport,
                reason: "permission_denied",
                peer,
                user: auth.user(),
                detail: &format!("{why} ({channel})"),
            },
        );
    }
}

/// The publisher's info for a publication made over plain HTTP (`POST /poll`).
pub(crate) fn http_publisher(auth: &Authenticated) -> Option<std::sync::Arc<ClientInfo>> {
    auth.user().map(|user| {
        std::sync::Arc::new(ClientInfo {
            client: ClientId::random(),
            user: Some(user.clone()),
            conn_info: auth.info.clone(),
        })
    })
}
