//! Origin checks and CORS for browser requests: which web pages may open a WebSocket to the
//! server or read its SSE and poll endpoints (`allowed_origins`).
//!
//! A request without `Origin` is not from a web page's script (or is a same-origin `GET`)
//! and passes. One with an `Origin` passes when the list holds it (or `*`), when it is the
//! server's own origin (same host and port as `Host`), or, while the list is empty (the
//! default), when it is a loopback origin (`localhost`, `127.0.0.1`, `[::1]`, any port: a
//! development server). Anything else gets `403 origin_not_allowed`, which is what stops
//! cross-site WebSocket hijacking and cross-site publishing with a victim's cookie.

use axum::{
    extract::{Request, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use switchboard_proto::ErrorCode;

use crate::{audit::Refusal, error::ApiError, state::AppState};

/// What the origin check decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// No `Origin` header.
    None,
    /// An allowed origin, to echo in CORS headers.
    Allowed(HeaderValue),
    /// Refused; the origin as sent.
    Refused(String),
}

/// Checks the request's `Origin` against `allowed`.
pub(crate) fn check(allowed: &[String], headers: &HeaderMap) -> Verdict {
    let Some(value) = headers.get(header::ORIGIN) else {
        return Verdict::None;
    };
    let Ok(origin) = value.to_str() else {
        return Verdict::Refused(String::from_utf8_lossy(value.as_bytes()).into_owned());
    };
    let host_of = |o: &str| {
        o.split_once("://")
            .map(|(_, rest)| rest.trim_end_matches('/').to_ascii_lowercase())
    };
    let ok = allowed
        .iter()
        .any(|a| a == "*" || a.trim_end_matches('/').eq_ignore_ascii_case(origin))
        || host_of(origin).is_some_and(|h| {
            let same = headers
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|host| host.eq_ignore_ascii_case(&h));
            same || (allowed.is_empty() && is_loopback(&h))
        });
    if ok {
        Verdict::Allowed(value.clone())
    } else {
        Verdict::Refused(origin.chars().take(200).collect())
    }
}

/// Whether `host[:port]` is a loopback host.
fn is_loopback(host_port: &str) -> bool {
    let host = if let Some(rest) = host_port.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host_port.split(':').next().unwrap_or("")
    };
    host == "localhost"
        || host.ends_with(".localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The refusal reply, counted and audited.
pub(crate) fn refuse(
    app: &AppState,
    transport: &'static str,
    peer: Option<std::net::SocketAddr>,
    origin: &str,
) -> Response {
    app.audit.refused(
        &app.metrics,
        &Refusal {
            transport,
            reason: "origin",
            peer,
            user: None,
            detail: &format!("origin {origin:?} is not in allowed_origins"),
        },
    );
    app.metrics
        .error(transport, ErrorCode::OriginNotAllowed.as_str());
    ApiError::new(
        ErrorCode::OriginNotAllowed,
        format!("origin {origin:?} is not allowed (see allowed_origins)"),
    )
    .into_response()
}

/// Middleware of the browser transports (`/sse`, `/poll`): refuses disallowed origins,
/// answers CORS preflights, and adds the CORS headers (with credentials) for allowed ones.
pub(crate) async fn cors(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0);
    let transport = if req.uri().path().starts_with("/sse") {
        "sse"
    } else {
        "poll"
    };
    let verdict = check(&app.config.allowed_origins, req.headers());
    let allowed = match verdict {
        Verdict::Refused(origin) => return refuse(&app, transport, peer, &origin),
        Verdict::None => None,
        Verdict::Allowed(origin) => Some(origin),
    };
    let mut resp = if req.method() == Method::OPTIONS {
        let mut r = StatusCode::NO_CONTENT.into_response();
        let h = r.headers_mut();
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST, OPTIONS"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("authorization, content-type, last-event-id"),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
        r
    } else {
        next.run(req).await
    };
    if let Some(origin) = allowed {
        let h = resp.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
        h.append(header::VARY, HeaderValue::from_static("Origin"));
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(origin: &str, host: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ORIGIN, HeaderValue::from_str(origin).unwrap());
        h.insert(header::HOST, HeaderValue::from_str(host).unwrap());
        h
    }

    #[test]
    fn same_origin_and_listed_origins_pass_others_are_refused() {
        let none: Vec<String> = Vec::new();
        let list = vec!["https://app.example.com".to_owned()];
        let ok = |v: Verdict| matches!(v, Verdict::Allowed(_));
        assert!(ok(check(
            &none,
            &headers("https://rt.example.com", "rt.example.com")
        )));
        assert!(ok(check(
            &none,
            &headers("http://localhost:5173", "rt.example.com")
        )));
        assert!(ok(check(
            &none,
            &headers("http://127.0.0.1:3000", "rt.example.com")
        )));
        assert!(ok(check(
            &none,
            &headers("http://[::1]:3000", "rt.example.com")
        )));
        assert!(!ok(check(
            &none,
            &headers("https://evil.example", "rt.example.com")
        )));
        assert!(!ok(check(&none, &headers("null", "rt.example.com"))));
        assert!(ok(check(
            &list,
            &headers("https://app.example.com", "rt.example.com")
        )));
        assert!(!ok(check(
            &list,
            &headers("http://localhost:5173", "rt.example.com")
        )));
        assert!(!ok(check(
            &list,
            &headers("https://app.example.com.evil", "rt.example.com")
        )));
        assert!(ok(check(
            &["*".to_owned()],
            &headers("https://any.where", "x")
        )));
        assert_eq!(check(&list, &HeaderMap::new()), Verdict::None);
    }
}
