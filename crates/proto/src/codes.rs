//! The protocol's error codes and WebSocket close codes, each in one table (see
//! `docs/protocol.md`, which documents the same names).

/// An error code carried in replies, SSE events and HTTP API error bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// Malformed JSON/MessagePack, missing or wrong-typed field, bad query parameter.
    BadRequest,
    /// `cmd` is not a known command.
    UnknownCommand,
    /// Channel name empty, too long or with a character outside the set.
    InvalidChannel,
    /// `data` is not valid JSON, `b64` is not base64, or both/neither were given.
    InvalidData,
    /// Message over the size limit.
    TooLarge,
    /// Too many channels, or too many subscriptions on one connection.
    LimitExceeded,
    /// Subscribed twice to one channel on one connection.
    AlreadySubscribed,
    /// Unsubscribed from a channel not subscribed.
    NotSubscribed,
    /// Missing or wrong API key; a connection token that is malformed, forged, signed with
    /// an unknown key, not yet valid, for another audience or issuer; or none where one is
    /// required.
    Unauthorized,
    /// The connection or subscription token has expired: get a new one.
    TokenExpired,
    /// Too many commands, publications or connections in too short a time: slow down.
    RateLimited,
    /// The application's backend (a hook) did not answer in time or failed.
    BackendUnavailable,
    /// The request's `Origin` is not in `allowed_origins`, or a cookie-authenticated
    /// request that changes state carries none (CSRF protection).
    OriginNotAllowed,
    /// No such endpoint.
    NotFound,
    /// The server is shutting down.
    Unavailable,
    /// The store could not take or give the data (database down, disk full); nothing was
    /// published. Retry later.
    StoreUnavailable,
    /// The channel's options turn this feature off (presence, join/leave events).
    NotAvailable,
    /// The channel's options do not let clients do this (publish, read history), or the
    /// application's backend (a subscribe, publish or rpc hook) refused it.
    PermissionDenied,
    /// The application's connect hook refused the connection.
    Forbidden,
    /// A bug; reported in the server log.
    Internal,
}

impl ErrorCode {
    /// Every code, for metrics pre-registration and docs tests.
    pub const ALL: [ErrorCode; 20] = [
        Self::BadRequest,
        Self::UnknownCommand,
        Self::InvalidChannel,
        Self::InvalidData,
        Self::TooLarge,
        Self::LimitExceeded,
        Self::AlreadySubscribed,
        Self::NotSubscribed,
        Self::Unauthorized,
        Self::TokenExpired,
        Self::RateLimited,
        Self::BackendUnavailable,
        Self::OriginNotAllowed,
        Self::NotFound,
        Self::Unavailable,
        Self::StoreUnavailable,
        Self::NotAvailable,
        Self::PermissionDenied,
        Self::Forbidden,
        Self::Internal,
    ];

    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::UnknownCommand => "unknown_command",
            Self::InvalidChannel => "invalid_channel",
            Self::InvalidData => "invalid_data",
            Self::TooLarge => "too_large",
            Self::LimitExceeded => "limit_exceeded",
            Self::AlreadySubscribed => "already_subscribed",
            Self::NotSubscribed => "not_subscribed",
            Self::Unauthorized => "unauthorized",
            Self::TokenExpired => "token_expired",
            Self::RateLimited => "rate_limited",
            Self::BackendUnavailable => "backend_unavailable",
            Self::OriginNotAllowed => "origin_not_allowed",
            Self::NotFound => "not_found",
            Self::Unavailable => "unavailable",
            Self::StoreUnavailable => "store_unavailable",
            Self::NotAvailable => "not_available",
            Self::PermissionDenied => "permission_denied",
            Self::Forbidden => "forbidden",
            Self::Internal => "internal",
        }
    }

    /// The HTTP status used when the code is returned by an HTTP endpoint.
    pub fn http_status(self) -> u16 {
        match self {
            Self::BadRequest | Self::UnknownCommand | Self::InvalidChannel | Self::InvalidData => {
                400
            }
            Self::Unauthorized | Self::TokenExpired => 401,
            Self::NotAvailable
            | Self::PermissionDenied
            | Self::OriginNotAllowed
            | Self::Forbidden => 403,
            Self::NotFound => 404,
            Self::AlreadySubscribed | Self::NotSubscribed => 409,
            Self::TooLarge => 413,
            Self::LimitExceeded | Self::RateLimited => 429,
            Self::Internal => 500,
            Self::Unavailable | Self::StoreUnavailable => 503,
            Self::BackendUnavailable => 502,
        }
    }

    /// The code for a hub error.
    pub fn from_hub(e: &switchboard_core::HubError) -> Self {
        use switchboard_core::HubError as H;
        match e {
            H::TooManyChannels(_) | H::TooManySubscriptions(_) => Self::LimitExceeded,
            H::AlreadySubscribed => Self::AlreadySubscribed,
            H::NotSubscribed => Self::NotSubscribed,
            H::ShuttingDown => Self::Unavailable,
            H::StoreUnavailable(_) => Self::StoreUnavailable,
            H::NotAvailable(_) => Self::NotAvailable,
            H::PermissionDenied(_) => Self::PermissionDenied,
        }
    }
}

/// WebSocket close codes. 4000–4499: reconnect and recover; 4500–4999: do not reconnect.
pub mod close {
    /// The client closed normally.
    pub const NORMAL: u16 = 1000;
    /// The server is shutting down; reconnect.
    pub const GOING_AWAY: u16 = 1001;
    /// WebSocket framing violated.
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// A text frame or close reason that is not UTF-8.
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// A frame or message over the size limit.
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    /// A bug on the server.
    pub const INTERNAL_ERROR: u16 = 1011;
    /// The application's backend (a hook) did not answer: reconnect later.
    pub const TRY_AGAIN_LATER: u16 = 1013;
    /// The client fell behind: its outgoing queue went over its bounds.
    pub const SLOW_CONSUMER: u16 = 4001;
    /// Nothing received for `ping_interval + pong_timeout`.
    pub const NO_PONG: u16 = 4002;
    /// The connection's token expired without a `refresh`: reconnect with a new token.
    pub const TOKEN_EXPIRED: u16 = 4003;
    /// No `connect` (with a token) arrived within `auth.connect_timeout_seconds`.
    pub const CONNECT_TIMEOUT: u16 = 4005;
    /// The client kept exceeding its rate limits: reconnect after a pause.
    pub const RATE_LIMITED: u16 = 4008;
    /// Disconnected by the application; may reconnect.
    pub const DISCONNECTED: u16 = 4004;
    /// Disconnected by the application; must not reconnect.
    pub const DISCONNECTED_TERMINAL: u16 = 4500;
    /// The connection's token was refused (forged, malformed, wrong key, audience or issuer,
    /// another user's on `refresh`), or a token is required and none was sent. Do not
    /// reconnect with the same token.
    pub const UNAUTHORIZED: u16 = 4501;
    /// The application's connect hook refused the connection.
    pub const FORBIDDEN: u16 = 4503;

    /// Whether a client should reconnect after `code`.
    pub fn should_reconnect(code: u16) -> bool {
        !(code == NORMAL || (4500..=4999).contains(&code))
    }

    /// The documented name of `code`, for logs and metrics labels.
    pub fn name(code: u16) -> &'static str {
        match code {
            NORMAL => "normal",
            GOING_AWAY => "going_away",
            PROTOCOL_ERROR => "protocol_error",
            INVALID_PAYLOAD => "invalid_payload",
            MESSAGE_TOO_BIG => "message_too_big",
            INTERNAL_ERROR => "internal_error",
            TRY_AGAIN_LATER => "try_again_later",
            SLOW_CONSUMER => "slow_consumer",
            NO_PONG => "no_pong",
            TOKEN_EXPIRED => "token_expired",
            CONNECT_TIMEOUT => "connect_timeout",
            RATE_LIMITED => "rate_limited",
            UNAUTHORIZED => "unauthorized",
            FORBIDDEN => "forbidden",
            DISCONNECTED => "disconnected",
            DISCONNECTED_TERMINAL => "disconnected_terminal",
            _ => "other",
        }
    }
}

/// The close code and reason for a hub disconnect.
pub fn disconnect_close(d: &switchboard_core::Disconnect) -> (u16, &str, bool) {
    use switchboard_core::Disconnect as D;
    match d {
        D::SlowConsumer => (close::SLOW_CONSUMER, "slow consumer", true),
        D::Shutdown => (close::GOING_AWAY, "server shutting down", true),
        D::ByServer {
            reconnect: true,
            reason,
        } => (close::DISCONNECTED, reason, true),
        D::ByServer {
            reconnect: false,
            reason,
        } => (close::DISCONNECTED_TERMINAL, reason, false),
        _ => (close::DISCONNECTED, "disconnected", true),
    }
}
