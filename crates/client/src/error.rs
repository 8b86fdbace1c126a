//! Errors: [`ClientError`], returned by every operation of the client, and [`ErrorCode`],
//! the server's reply codes from the table in `docs/protocol.md`.
//!
//! Errors are cheap to clone (sources are behind an `Arc`) because one cause, such as a
//! terminal close, is handed to every waiting request and subscription.

use std::{fmt, path::PathBuf, sync::Arc};

use crate::token::TokenError;

/// Why an operation of the client failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// `ClientOptions::url` is not an `http`, `https`, `ws` or `wss` URL with a host.
    #[error("invalid server url {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// [`ClientOptions::ca_file`](crate::ClientOptions::ca_file) cannot be read or holds no
    /// PEM certificate.
    #[error("cannot use the CA file {path}: {reason}")]
    CaFile {
        /// The file as given.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Opening the WebSocket failed: TCP connect, the TLS handshake (for `wss`: a certificate
    /// no trusted root vouches for, or one for another name), the HTTP upgrade (refused, or
    /// the server did not accept the subprotocol asked for), or the connection dropped during
    /// the handshake.
    #[error("cannot connect to {url}: {source}")]
    Connect {
        /// The WebSocket URL.
        url: String,
        /// The transport error.
        source: Arc<dyn std::error::Error + Send + Sync>,
    },
    /// No reply came before the deadline (`request_timeout`, or `connect_timeout` for opening
    /// a connection).
    #[error("timed out waiting for the server")]
    Timeout,
    /// The connection dropped after the request was sent and before its reply: its outcome
    /// is unknown (a publish may have happened). The client reconnects by itself.
    #[error("the connection dropped before the reply; the outcome is unknown")]
    Disconnected,
    /// The client was closed ([`Client::close`](crate::Client::close), or every handle was
    /// dropped); nothing more can be sent.
    #[error("the client is closed")]
    Closed,
    /// The server closed the connection with a code that forbids reconnecting (4500–4999,
    /// 1000, or a `disconnect` push with `reconnect: false`). The client stays closed.
    #[error("disconnected by the server for good: {code} {reason}")]
    Terminated {
        /// The close code.
        code: u16,
        /// The close reason.
        reason: String,
    },
    /// The server refused the connection token (close 4501, or an `unauthorized` reply to
    /// `connect` or `refresh`): forged, for another audience or issuer, not yet valid, or
    /// missing where one is required. Terminal: the client does not retry with the same
    /// source.
    #[error("the server refused the connection token: {reason}")]
    Unauthorized {
        /// The server's explanation.
        reason: String,
    },
    /// The application refused the connection (close 4503). Terminal.
    #[error("the server refused the connection: {reason}")]
    Forbidden {
        /// The server's explanation.
        reason: String,
    },
    /// The connection token expired (close 4003, or `token_expired` at connect) and its
    /// [`TokenSource`](crate::TokenSource) is a fixed string, which cannot give a new one.
    /// Terminal. With a token function the client fetches a new token and reconnects instead.
    #[error("the connection token expired and cannot be renewed")]
    TokenExpired,
    /// The token function failed or did not answer in time, for the first connection or for
    /// the first subscription to a channel (later failures are retried with backoff).
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The server answered the request with an error.
    #[error("server error {code}: {message}")]
    Server {
        /// The reply code.
        code: ErrorCode,
        /// The server's explanation.
        message: String,
    },
    /// The server sent a reply or push that does not follow `docs/protocol.md` (a missing or
    /// wrong-typed field).
    #[error("protocol violation by the server: {0}")]
    Protocol(String),
    /// A command could not be encoded (data that the wire format cannot represent).
    #[error("cannot encode the command: {0}")]
    Encode(String),
    /// This client already has a subscription to the channel; unsubscribe (or drop the
    /// [`Subscription`](crate::Subscription)) first.
    #[error("already subscribed to {0:?}")]
    AlreadySubscribed(String),
    /// A [`Messages`](crate::Messages) receiver fell behind its bounded buffer and `skipped`
    /// messages were dropped for it. The receiver goes on with the next message.
    #[error("fell behind: {skipped} messages were dropped")]
    Lagged {
        /// How many messages this receiver missed.
        skipped: u64,
    },
}

/// A reply error code (`docs/protocol.md`, "Error codes").
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// `bad_request`: malformed frame, missing or wrong-typed field.
    BadRequest,
    /// `unknown_command`: `cmd` is not a known command.
    UnknownCommand,
    /// `invalid_channel`: the channel name is empty, too long or has a refused character.
    InvalidChannel,
    /// `invalid_data`: `data`/`b64` invalid, or both or neither given.
    InvalidData,
    /// `too_large`: the message is over the size limit.
    TooLarge,
    /// `limit_exceeded`: too many channels or subscriptions.
    LimitExceeded,
    /// `already_subscribed`: the connection already subscribes to the channel.
    AlreadySubscribed,
    /// `not_subscribed`: unsubscribe from a channel not subscribed.
    NotSubscribed,
    /// `unauthorized`: missing or wrong credentials (API key, connection or subscription
    /// token).
    Unauthorized,
    /// `token_expired`: the token's `exp` is past; get a new one.
    TokenExpired,
    /// `rate_limited`: too many commands, publications or connections in too short a time.
    RateLimited,
    /// `backend_unavailable`: the application's backend (a hook, the JWKS endpoint) did not
    /// answer in time or failed.
    BackendUnavailable,
    /// `origin_not_allowed`: the request's `Origin` is not allowed.
    OriginNotAllowed,
    /// `not_found`: no such endpoint.
    NotFound,
    /// `unavailable`: the server is shutting down.
    Unavailable,
    /// `store_unavailable`: the server's store could not take the publication (database down,
    /// disk full); nothing was published. Retry later.
    StoreUnavailable,
    /// `not_available`: the channel's options turn this off (presence, join/leave events).
    NotAvailable,
    /// `permission_denied`: the channel's options do not let clients do this, or the
    /// application's backend (a subscribe, publish or rpc hook) refused it.
    PermissionDenied,
    /// `forbidden`: the application's connect hook refused the connection.
    Forbidden,
    /// `internal`: a server bug.
    Internal,
    /// A code this client does not know.
    Other(String),
}

impl ErrorCode {
    /// The code as sent on the wire.
    pub fn as_str(&self) -> &str {
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
            Self::Other(code) => code,
        }
    }

    /// The code for its wire name; unknown names become [`ErrorCode::Other`].
    pub fn parse(code: &str) -> Self {
        match code {
            "bad_request" => Self::BadRequest,
            "unknown_command" => Self::UnknownCommand,
            "invalid_channel" => Self::InvalidChannel,
            "invalid_data" => Self::InvalidData,
            "too_large" => Self::TooLarge,
            "limit_exceeded" => Self::LimitExceeded,
            "already_subscribed" => Self::AlreadySubscribed,
            "not_subscribed" => Self::NotSubscribed,
            "unauthorized" => Self::Unauthorized,
            "token_expired" => Self::TokenExpired,
            "rate_limited" => Self::RateLimited,
            "backend_unavailable" => Self::BackendUnavailable,
            "origin_not_allowed" => Self::OriginNotAllowed,
            "not_found" => Self::NotFound,
            "unavailable" => Self::Unavailable,
            "store_unavailable" => Self::StoreUnavailable,
            "not_available" => Self::NotAvailable,
            "permission_denied" => Self::PermissionDenied,
            "forbidden" => Self::Forbidden,
            "internal" => Self::Internal,
            other => Self::Other(other.to_owned()),
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::ErrorCode;

    #[test]
    fn error_codes_round_trip_through_their_wire_names() {
        for code in [
            "bad_request",
            "unknown_command",
            "invalid_channel",
            "invalid_data",
            "too_large",
            "limit_exceeded",
            "already_subscribed",
            "not_subscribed",
            "unauthorized",
            "token_expired",
            "rate_limited",
            "backend_unavailable",
            "origin_not_allowed",
            "not_found",
            "unavailable",
            "store_unavailable",
            "not_available",
            "permission_denied",
            "internal",
            "something_new",
        ] {
            assert_eq!(ErrorCode::parse(code).as_str(), code);
        }
        assert_eq!(
            ErrorCode::parse("something_new"),
            ErrorCode::Other("something_new".into())
        );
    }
}
