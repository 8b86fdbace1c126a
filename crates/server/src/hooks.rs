//! Backend hooks: the application's backend (any language, over HTTP) decides what
//! switchboard cannot — who a cookie-authenticated connection is (`connect`), whether its
//! session goes on (`refresh`), who may subscribe (`subscribe`) or publish (`publish`, which
//! may also rewrite the data), and what a client's `rpc` call answers.
//!
//! Each hook is one `POST` of a JSON object to a configured URL; the answer is a JSON object
//! that allows (possibly altering), refuses (`error`) or disconnects (`disconnect`); see
//! `docs/hooks.md` for the shapes. Every call has a deadline (`timeout_ms`, waiting for a
//! free slot included) and at most `max_in_flight` calls run at once for the whole server,
//! so a slow or dead backend yields a prompt `backend_unavailable`, never a hang or an
//! unbounded pile of requests. Transports call this module; it touches no client socket.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    num::NonZeroU32,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use axum::http::HeaderMap;
use base64::Engine;
use bytes::Bytes;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, value::RawValue};
use switchboard_core::{ChannelName, ClientId, Identity, Payload, RawJson, UserId};
use switchboard_proto::{ErrorCode, close};
use tokio::{sync::Semaphore, time::Instant};

use crate::{
    auth::Authenticated,
    metrics::{HookLabel, Metrics},
};

/// Lines a second logged about a failing backend (each failure is counted in metrics).
const LOG_RATE: u32 = 5;

/// `[hooks]`: where the application's backend answers, and how long it may take.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HooksConfig {
    /// Asked who a connection that presents no token is (WebSocket `connect`, each SSE
    /// stream, each poll request), with the request's `forward_headers` (its cookies).
    pub connect_url: Option<String>,
    /// Asked, before a connection admitted by the connect hook expires, whether it may go on
    /// (WebSocket only; SSE and poll connections ask the connect hook again).
    pub refresh_url: Option<String>,
    /// Asked whether a client may subscribe, for channels whose namespace sets
    /// `subscribe_hook = true`.
    pub subscribe_url: Option<String>,
    /// Asked whether a client's publication may go out (and with which data), for channels
    /// whose namespace sets `publish_hook = true`.
    pub publish_url: Option<String>,
    /// Answers clients' `rpc` commands.
    pub rpc_url: Option<String>,
    /// Receives Socket.IO events that no namespace handles itself (`docs/socketio.md`).
    pub event_url: Option<String>,
    /// How long one call may take, waiting for a free slot included, in milliseconds.
    pub timeout_ms: u64,
    /// Calls in flight at once, for the whole server; past it, calls wait (within their
    /// timeout) for a slot.
    pub max_in_flight: usize,
    /// Request headers passed on to the connect hook (lower case), e.g. the session cookie.
    pub forward_headers: Vec<String>,
    /// Headers sent with every call, e.g. a shared secret the backend checks.
    pub headers: BTreeMap<String, String>,
    /// Largest answer accepted, in bytes.
    pub max_response_bytes: usize,
}

impl Default for HooksConfig {
    fn default() -> Self {
        Self {
            connect_url: None,
            refresh_url: None,
            subscribe_url: None,
            publish_url: None,
            rpc_url: None,
            event_url: None,

            timeout_ms: 3000,
            max_in_flight: 256,
            forward_headers: vec![
                "cookie".into(),
                "user-agent".into(),
                "x-forwarded-for".into(),
                "accept-language".into(),
            ],
            headers: BTreeMap::new(),
            max_response_bytes: 1 << 20,
        }
    }
}

/// Why `[hooks]` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum HooksConfigError {
    /// A URL is not an absolute `http://` or `https://` URL.
    #[error("hooks.{key}: {url:?} is not an http(s) URL")]
    Url {
        /// The setting.
        key: &'static str,
        /// Its value.
        url: String,
    },
    /// A header name or value in `hooks.headers` is not valid in HTTP.
    #[error("hooks.headers: {0:?} is not a valid header")]
    Header(String),
    /// `max_in_flight` or `timeout_ms` is 0.
    #[error("hooks.{0} must be at least 1")]
    Zero(&'static str),
    /// The HTTP client could not be built.
    #[error("hooks: {0}")]
    Client(String),
}

/// Which hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hook {
    Connect,
    Refresh,
    Subscribe,
    Publish,
    Rpc,
    /// A Socket.IO event forwarded to `event_url`.
    Event,
}

impl Hook {
    fn name(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Refresh => "refresh",
            Self::Subscribe => "subscribe",
            Self::Publish => "publish",
            Self::Rpc => "rpc",
            Self::Event => "event",
        }
    }
}

/// Why a hook did not allow the request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum HookError {
    /// The backend did not answer in time, answered with a non-2xx status or something that
    /// is not a valid answer, or too many calls were in flight.
    #[error("the application's backend is unavailable: {0}")]
    Unavailable(String),
    /// The backend refused (`{"error": {"message": …}}`).
    #[error("{0}")]
    Denied(String),
    /// The backend asked to disconnect the client.
    #[error("disconnected by the application: {reason}")]
    Disconnect {
        /// Shown to the client.
        reason: String,
        /// Whether the client may reconnect.
        reconnect: bool,
    },
}

impl HookError {
    /// The reply code for `hook`.
    pub(crate) fn code(&self, hook: Hook) -> ErrorCode {
        match (self, hook) {
            (Self::Unavailable(_), _) => ErrorCode::BackendUnavailable,
            (Self::Denied(_) | Self::Disconnect { .. }, Hook::Connect | Hook::Refresh) => {
                ErrorCode::Forbidden
            }
            (Self::Denied(_) | Self::Disconnect { .. }, _) => ErrorCode::PermissionDenied,
        }
    }

    /// The WebSocket close code, when this ends the connection (`hook` connect or refresh,
    /// or any `disconnect` answer).
    pub(crate) fn close_code(&self, hook: Hook) -> Option<u16> {
        match (self, hook) {
            (Self::Disconnect { reconnect, .. }, _) => Some(if *reconnect {
                close::DISCONNECTED
            } else {
                close::DISCONNECTED_TERMINAL
            }),
            (Self::Unavailable(_), Hook::Connect) => Some(close::TRY_AGAIN_LATER),
            (Self::Denied(_), Hook::Connect) => Some(close::FORBIDDEN),
            (Self::Denied(_), Hook::Refresh) => Some(close::TOKEN_EXPIRED),
            _ => None,
        }
    }

    /// The audit log's reason label.
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            Self::Unavailable(_) => "backend_unavailable",
            Self::Denied(_) => "hook_denied",
            Self::Disconnect { .. } => "hook_disconnect",
        }
    }
}

/// Who asks: what every hook call says about the connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Caller<'a> {
    /// `websocket`, `sse` or `poll`.
    pub(crate) transport: &'static str,
    /// The connection's id, once it has one.
    pub(crate) client: Option<&'a ClientId>,
    /// The connection's user.
    pub(crate) user: Option<&'a UserId>,
    /// The remote address.
    pub(crate) peer: Option<SocketAddr>,
}

/// What the connect hook is told besides the caller.
#[derive(Debug, Default)]
pub(crate) struct ConnectInfo<'a> {
    /// The request headers listed in `forward_headers`.
    pub(crate) headers: Option<&'a ForwardedHeaders>,
    /// Client library name and version (`connect`).
    pub(crate) name: Option<&'a str>,
    pub(crate) version: Option<&'a str>,
    /// Presence info the client sent.
    pub(crate) info: Option<&'a RawJson>,
}

/// The request headers the connect hook is shown, copied when the request arrived.
#[derive(Debug, Clone, Default)]
pub(crate) struct ForwardedHeaders(BTreeMap<String, String>);

/// What the backend's answer may hold; each hook reads its part.
#[derive(Debug, Default, Deserialize)]
struct Answer {
    #[serde(default)]
    error: Option<AnswerError>,
    #[serde(default)]
    disconnect: Option<AnswerDisconnect>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    info: Option<Box<RawValue>>,
    #[serde(default)]
    channels: Option<Vec<String>>,
    #[serde(default)]
    expires: Option<u64>,
    #[serde(default)]
    claims: Option<Map<String, Value>>,
    #[serde(default, deserialize_with = "present")]
    data: Option<Box<RawValue>>,
    #[serde(default, deserialize_with = "present")]
    ack: Option<Box<RawValue>>,
    #[serde(default)]
    actions: Vec<Box<RawValue>>,
}

#[derive(Debug, Deserialize)]
struct AnswerError {
    #[serde(default)]
    message: Option<String>,
}

#[derive(Debug, Deserialize)]
struct AnswerDisconnect {
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    reconnect: bool,
}

/// A present `data` is `Some`, even when it is `null`.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Box<RawValue>>, D::Error> {
    Box::<RawValue>::deserialize(d).map(Some)
}

/// The event hook's answer: the ack's data, when it gave one, and its actions (JSON objects
/// the Socket.IO layer checks).
pub(crate) type EventAnswer = (Option<Box<RawValue>>, Vec<Box<RawValue>>);

/// A Socket.IO event as the event hook is told it.
pub(crate) struct SocketIoEvent<'a> {
    pub(crate) namespace: &'a str,
    pub(crate) rooms: &'a [String],
    pub(crate) event: &'a str,
    /// The arguments after the event name, as a JSON array.
    pub(crate) args: &'a RawValue,
}

/// The hooks of one server.
pub(crate) struct Hooks {
    http: reqwest::Client,
    config: HooksConfig,
    slots: Arc<Semaphore>,
    timeout: Duration,
    metrics: Arc<Metrics>,
    log: DefaultDirectRateLimiter,
    log_suppressed: AtomicU64,
}

impl Hooks {
    /// Checks `config` and builds the HTTP client.
    pub(crate) fn new(
        config: &HooksConfig,
        metrics: Arc<Metrics>,
    ) -> Result<Self, HooksConfigError> {
        for (key, url) in [
            ("connect_url", &config.connect_url),
            ("refresh_url", &config.refresh_url),
            ("subscribe_url", &config.subscribe_url),
            ("publish_url", &config.publish_url),
            ("rpc_url", &config.rpc_url),
            ("event_url", &config.event_url),
        ] {
            if let Some(url) = url
                && reqwest::Url::parse(url)
                    .map(|u| !matches!(u.scheme(), "http" | "https"))
                    .unwrap_or(true)
            {
                return Err(HooksConfigError::Url {
                    key,
                    url: url.clone(),
                });
            }
        }
        if config.max_in_flight == 0 {
            return Err(HooksConfigError::Zero("max_in_flight"));
        }
        if config.timeout_ms == 0 {
            return Err(HooksConfigError::Zero("timeout_ms"));
        }
        let mut headers = reqwest::header::HeaderMap::new();
        for (name, value) in &config.headers {
            let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| HooksConfigError::Header(name.clone()))?;
            let value = reqwest::header::HeaderValue::from_str(value)
                .map_err(|_| HooksConfigError::Header(name.to_string()))?;
            headers.insert(name, value);
        }
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(config.max_in_flight.min(64))
            .user_agent(concat!("switchboard/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| HooksConfigError::Client(e.to_string()))?;
        let per_second = NonZeroU32::new(LOG_RATE).unwrap_or(NonZeroU32::MIN);
        Ok(Self {
            http,
            slots: Arc::new(Semaphore::new(config.max_in_flight)),
            timeout: Duration::from_millis(config.timeout_ms),
            config: config.clone(),
            metrics,
            log: RateLimiter::direct(Quota::per_second(per_second)),
            log_suppressed: AtomicU64::new(0),
        })
    }

    /// Whether connections without a token go to the connect hook.
    pub(crate) fn connect_enabled(&self) -> bool {
        self.config.connect_url.is_some()
    }

    /// Whether connections admitted by the connect hook are renewed by the refresh hook.
    pub(crate) fn refresh_enabled(&self) -> bool {
        self.config.refresh_url.is_some()
    }

    /// Whether the `rpc` command is answered.
    pub(crate) fn rpc_enabled(&self) -> bool {
        self.config.rpc_url.is_some()
    }

    /// Copies the headers the connect hook is to see (bounded: 16 headers of 8 KiB).
    pub(crate) fn forwarded(&self, headers: &HeaderMap) -> Option<ForwardedHeaders> {
        if !self.connect_enabled() {
            return None;
        }
        let mut out = BTreeMap::new();
        for name in self.config.forward_headers.iter().take(16) {
            let value: Vec<&str> = headers
                .get_all(name.as_str())
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            if !value.is_empty() {
                let mut joined = value.join(if name == "cookie" { "; " } else { ", " });
                if joined.len() > 8 << 10 {
                    let mut cut = 8 << 10;
                    while !joined.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    joined.truncate(cut);
                }
                out.insert(name.to_ascii_lowercase(), joined);
            }
        }
        Some(ForwardedHeaders(out))
    }

    /// Who a connection without a token is. The answer's `user`, `info`, `channels`,
    /// `expires` and `claims` become the connection's, as a token's claims would.
    pub(crate) async fn connect(
        &self,
        caller: Caller<'_>,
        request: ConnectInfo<'_>,
    ) -> Result<Authenticated, HookError> {
        let Some(url) = &self.config.connect_url else {
            return Err(HookError::Unavailable(
                "no connect hook is configured".into(),
            ));
        };
        let body = Body {
            headers: request.headers.map(|h| &h.0),
            name: request.name,
            version: request.version,
            info: request.info.and_then(|i| raw(i.as_bytes())),
            ..Body::new(caller)
        };
        let answer = self.call(Hook::Connect, url, caller, body).await?;
        let user = match answer.user.as_deref() {
            None | Some("") => None,
            Some(u) => Some(UserId::parse(u).map_err(|e| {
                self.invalid(
                    Hook::Connect,
                    &format!("`user` is not a valid user id: {e}"),
                )
            })?),
        };
        let info = match answer.info {
            Some(raw) => {
                switchboard_core::validate_json(raw.get().as_bytes())
                    .map_err(|e| self.invalid(Hook::Connect, &format!("`info`: {e}")))?;
                Some(RawJson::new(Bytes::copy_from_slice(raw.get().as_bytes())))
            }
            None => None,
        };
        let mut claims = answer.claims.unwrap_or_default();
        if let Some(user) = &user {
            claims
                .entry("sub")
                .or_insert_with(|| Value::String(user.as_str().to_owned()));
        }
        Ok(Authenticated {
            identity: Identity {
                user,
                claims: Some(Arc::new(claims)),
            },
            expires: answer.expires,
            channels: answer.channels.unwrap_or_default(),
            info,
            from_hook: true,
        })
    }

    /// Whether a connection admitted by the connect hook may go on; the new expiry.
    pub(crate) async fn refresh(&self, caller: Caller<'_>) -> Result<Option<u64>, HookError> {
        let Some(url) = &self.config.refresh_url else {
            return Err(HookError::Unavailable(
                "no refresh hook is configured".into(),
            ));
        };
        let answer = self
            .call(Hook::Refresh, url, caller, Body::new(caller))
            .await?;
        Ok(answer.expires)
    }

    /// Whether `caller` may subscribe to `channel` (for namespaces with `subscribe_hook`).
    /// Allowed when no subscribe hook is configured.
    pub(crate) async fn subscribe(
        &self,
        caller: Caller<'_>,
        channel: &ChannelName,
    ) -> Result<(), HookError> {
        let Some(url) = &self.config.subscribe_url else {
            return Ok(());
        };
        let body = Body {
            channel: Some(channel.as_str()),
            ..Body::new(caller)
        };
        self.call(Hook::Subscribe, url, caller, body).await?;
        Ok(())
    }

    /// Whether `caller` may publish `data` to `channel` (for namespaces with
    /// `publish_hook`), and the data to publish: the backend's `data` when it gave one.
    /// Allowed as is when no publish hook is configured.
    pub(crate) async fn publish(
        &self,
        caller: Caller<'_>,
        channel: &ChannelName,
        data: Payload,
    ) -> Result<Payload, HookError> {
        let Some(url) = &self.config.publish_url else {
            return Ok(data);
        };
        let body = Body {
            channel: Some(channel.as_str()),
            ..Body::new(caller)
        }
        .payload(&data);
        let answer = self.call(Hook::Publish, url, caller, body).await?;
        Ok(match answer.data {
            Some(raw) => Payload::json(Bytes::copy_from_slice(raw.get().as_bytes()))
                .map_err(|e| self.invalid(Hook::Publish, &format!("`data`: {e}")))?,
            None => data,
        })
    }

    /// The backend's answer to an `rpc` call: its `data` (`null` when it gave none).
    pub(crate) async fn rpc(
        &self,
        caller: Caller<'_>,
        method: &str,
        data: &Payload,
    ) -> Result<RawJson, HookError> {
        let Some(url) = &self.config.rpc_url else {
            return Err(HookError::Denied("this server answers no rpc".into()));
        };
        let body = Body {
            method: Some(method),
            ..Body::new(caller)
        }
        .payload(data);
        let answer = self.call(Hook::Rpc, url, caller, body).await?;
        Ok(RawJson::new(match answer.data {
            Some(raw) => {
                switchboard_core::validate_json(raw.get().as_bytes())
                    .map_err(|e| self.invalid(Hook::Rpc, &format!("`data`: {e}")))?;
                Bytes::copy_from_slice(raw.get().as_bytes())
            }
            None => Bytes::from_static(b"null"),
        }))
    }

    /// Whether Socket.IO events are forwarded.
    pub(crate) fn event_enabled(&self) -> bool {
        self.config.event_url.is_some()
    }

    /// Forwards a Socket.IO event; the backend's answer is the ack's data (`None` when it
    /// gave none) and the actions to carry out (each a JSON object, checked by the caller).
    pub(crate) async fn socketio_event(
        &self,
        caller: Caller<'_>,
        event: &SocketIoEvent<'_>,
    ) -> Result<EventAnswer, HookError> {
        let Some(url) = &self.config.event_url else {
            return Err(HookError::Denied("this server forwards no events".into()));
        };
        let body = Body {
            namespace: Some(event.namespace),
            rooms: Some(event.rooms),
            event: Some(event.event),
            args: Some(event.args),
            ..Body::new(caller)
        };
        let answer = self.call(Hook::Event, url, caller, body).await?;
        if let Some(ack) = &answer.ack {
            switchboard_core::validate_json(ack.get().as_bytes())
                .map_err(|e| self.invalid(Hook::Event, &format!("`ack`: {e}")))?;
        }
        Ok((answer.ack, answer.actions))
    }

    /// One call: a slot, the POST, the answer read within the limit, all before the
    /// deadline; `error` and `disconnect` answers become errors. Counted by outcome.
    async fn call(
        &self,
        hook: Hook,
        url: &str,
        caller: Caller<'_>,
        body: Body<'_>,
    ) -> Result<Answer, HookError> {
        let started = Instant::now();
        let deadline = started + self.timeout;
        let result = tokio::time::timeout_at(deadline, self.exchange(url, body)).await;
        let result = match result {
            Ok(r) => r,
            Err(_) => Err(Failure::Timeout),
        };
        self.metrics
            .hook_duration_seconds
            .get_or_create(&HookLabel {
                hook: hook.name(),
                outcome: "any",
            })
            .observe(started.elapsed().as_secs_f64());
        let (outcome, result) = match result {
            Ok(answer) => match (answer.disconnect, answer.error) {
                (Some(d), _) => (
                    "disconnect",
                    Err(HookError::Disconnect {
                        reason: d.reason.unwrap_or_else(|| "disconnected".into()),
                        reconnect: d.reconnect,
                    }),
                ),
                (None, Some(e)) => (
                    "denied",
                    Err(HookError::Denied(
                        e.message
                            .unwrap_or_else(|| "refused by the application".into()),
                    )),
                ),
                (None, None) => (
                    "allowed",
                    Ok(Answer {
                        disconnect: None,
                        error: None,
                        ..answer
                    }),
                ),
            },
            Err(f) => {
                let (outcome, detail) = f.describe(self.timeout);
                self.log_failure(hook, caller, &detail);
                (outcome, Err(HookError::Unavailable(detail)))
            }
        };
        self.metrics
            .hook_calls
            .get_or_create(&HookLabel {
                hook: hook.name(),
                outcome,
            })
            .inc();
        result
    }

    async fn exchange(&self, url: &str, body: Body<'_>) -> Result<Answer, Failure> {
        let _slot = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Failure::Overloaded)?;
        let body = serde_json::to_vec(&body).map_err(|e| Failure::Answer(e.to_string()))?;
        let mut response = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| Failure::Http(without_url(&e)))?;
        let status = response.status();
        if !status.is_success() {
            return Err(Failure::Status(status.as_u16()));
        }
        let limit = self.config.max_response_bytes;
        let mut bytes = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| Failure::Http(without_url(&e)))?
        {
            if bytes.len() + chunk.len() > limit {
                return Err(Failure::Answer(format!("the answer is over {limit} bytes")));
            }
            bytes.extend_from_slice(&chunk);
        }
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Answer::default());
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| Failure::Answer(format!("not a valid answer: {e}")))
    }

    fn invalid(&self, hook: Hook, detail: &str) -> HookError {
        let detail = format!("the {} hook's answer is invalid: {detail}", hook.name());
        self.log_failure(hook, Caller::none(), &detail);
        HookError::Unavailable(detail)
    }

    fn log_failure(&self, hook: Hook, caller: Caller<'_>, detail: &str) {
        if self.log.check().is_err() {
            self.log_suppressed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let suppressed = self.log_suppressed.swap(0, Ordering::Relaxed);
        tracing::warn!(
            hook = hook.name(),
            transport = caller.transport,
            user = caller.user.map(UserId::as_str).unwrap_or(""),
            suppressed,
            "backend hook failed: {detail}"
        );
    }
}

impl Caller<'_> {
    fn none() -> Self {
        Caller {
            transport: "",
            client: None,
            user: None,
            peer: None,
        }
    }
}

/// Why a call got no usable answer.
enum Failure {
    Timeout,
    Overloaded,
    Http(String),
    Status(u16),
    Answer(String),
}

impl Failure {
    fn describe(self, timeout: Duration) -> (&'static str, String) {
        match self {
            Self::Timeout => (
                "timeout",
                format!("no answer within {} ms", timeout.as_millis()),
            ),
            Self::Overloaded => ("overloaded", "too many calls in flight".into()),
            Self::Http(e) => ("error", e),
            Self::Status(s) => ("error", format!("it answered HTTP {s}")),
            Self::Answer(e) => ("error", e),
        }
    }
}

/// reqwest's error text without the URL (which may carry a secret in its query).
fn without_url(e: &reqwest::Error) -> String {
    let kind = if e.is_connect() {
        "cannot connect"
    } else if e.is_timeout() {
        "timed out"
    } else if e.is_body() || e.is_decode() {
        "the answer's body failed"
    } else {
        "the request failed"
    };
    kind.to_owned()
}

/// The body of every call: the caller, then what the hook is about. JSON data is embedded
/// as it came (no re-encoding of numbers).
#[derive(Serialize)]
struct Body<'a> {
    transport: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    client: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    remote_addr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    headers: Option<&'a BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    info: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    channel: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    method: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    b64: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rooms: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    event: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    args: Option<&'a RawValue>,
}

impl<'a> Body<'a> {
    fn new(caller: Caller<'a>) -> Self {
        Body {
            transport: caller.transport,
            client: caller.client.map(ClientId::as_str),
            user: caller.user.map(UserId::as_str),
            remote_addr: caller.peer.map(|p| p.to_string()),
            headers: None,
            name: None,
            version: None,
            info: None,
            channel: None,
            method: None,
            data: None,
            b64: None,
            namespace: None,
            rooms: None,
            event: None,
            args: None,
        }
    }

    /// `data` for JSON, `b64` for binary.
    fn payload(mut self, data: &'a Payload) -> Self {
        match data {
            Payload::Json(json) => self.data = raw(json),
            Payload::Binary(b) => {
                self.b64 = Some(base64::engine::general_purpose::STANDARD.encode(b));
            }
        }
        self
    }
}

/// Already-validated JSON text as a raw value.
fn raw(json: &[u8]) -> Option<&RawValue> {
    serde_json::from_slice(json).ok()
}
