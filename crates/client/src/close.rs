//! WebSocket close codes of the native protocol (`docs/protocol.md`, "Close codes") and the
//! one function that decides whether the client reconnects after a close.
//!
//! Ranges: 1000–2999 are RFC 6455's; 4000–4499 mean *reconnect (with backoff) and recover*;
//! 4500–4999 mean *do not reconnect*. One code of the reconnect range depends on the client:
//! 4003 (token expired) reconnects only with a token source that can give a new token.
//! [`after_close`] is where the connection task learns what to do after any close.

use crate::error::ClientError;

/// Close codes, by name as in `docs/protocol.md`.
pub mod close_code {
    /// The client closed.
    pub const NORMAL: u16 = 1000;
    /// The server is shutting down.
    pub const GOING_AWAY: u16 = 1001;
    /// WebSocket framing was violated.
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// A text frame or close reason was not UTF-8.
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// A frame or message was over the server's size limit.
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    /// A server bug.
    pub const INTERNAL_ERROR: u16 = 1011;
    /// The client fell behind: its outgoing queue on the server went over its bounds.
    pub const SLOW_CONSUMER: u16 = 4001;
    /// The server received nothing for `ping_interval + pong_timeout`.
    pub const NO_PONG: u16 = 4002;
    /// The connection token expired without a `refresh`: reconnect with a new token.
    pub const TOKEN_EXPIRED: u16 = 4003;
    /// Disconnected by the application; may reconnect.
    pub const DISCONNECTED: u16 = 4004;
    /// A token is required and no `connect` came within the server's connect timeout.
    pub const CONNECT_TIMEOUT: u16 = 4005;
    /// The client kept exceeding its rate limits: reconnect after a pause.
    pub const RATE_LIMITED: u16 = 4008;
    /// Disconnected by the application; must not reconnect.
    pub const DISCONNECTED_TERMINAL: u16 = 4500;
    /// The connection token was refused, or none was sent where one is required: do not
    /// retry with the same token.
    pub const UNAUTHORIZED: u16 = 4501;
    /// The application's connect hook refused the connection.
    pub const FORBIDDEN: u16 = 4503;
}

/// The first code of the terminal range (4500–4999).
const TERMINAL_FIRST: u16 = 4500;
/// The last code of the terminal range.
const TERMINAL_LAST: u16 = 4999;

/// Whether the client may reconnect after the server closed the connection.
///
/// `code` is the close frame's code (or the `disconnect` push's), `None` when the connection
/// ended without one (reset, silence, I/O error). `push_reconnect` is the `reconnect` field of
/// a `disconnect` push, when one arrived: `false` there is final whatever the code.
/// 1000 (normal) is final too, as the protocol's table says. Everything else reconnects,
/// including codes this client does not know: a client that gives up too early loses data,
/// one that retries with backoff only costs a few requests.
pub fn may_reconnect(code: Option<u16>, push_reconnect: Option<bool>) -> bool {
    if push_reconnect == Some(false) {
        return false;
    }
    !matches!(
        code,
        Some(close_code::NORMAL | TERMINAL_FIRST..=TERMINAL_LAST)
    )
}

/// What the client does once a connection ended.
#[derive(Debug)]
pub(crate) enum AfterClose {
    /// Reconnect with backoff, with the token in hand.
    Reconnect,
    /// The connection token expired: get a new one from the token function, then reconnect
    /// (subscriptions recover what they missed).
    RenewToken,
    /// Stop for good; every waiting request and subscription ends with this error.
    Stop(ClientError),
}

/// Decides what follows a close with `code` (and a `disconnect` push's `reconnect`, when one
/// came): [`may_reconnect`] for the ranges, typed errors for the authentication codes
/// (4501 [`ClientError::Unauthorized`], 4503 [`ClientError::Forbidden`]), and for 4003 a
/// new token when `token_renews` (the token source is a function), else
/// [`ClientError::TokenExpired`].
pub(crate) fn after_close(
    code: Option<u16>,
    push_reconnect: Option<bool>,
    reason: &str,
    token_renews: bool,
) -> AfterClose {
    if !may_reconnect(code, push_reconnect) {
        let reason = reason.to_owned();
        return AfterClose::Stop(match code {
            Some(close_code::UNAUTHORIZED) => ClientError::Unauthorized { reason },
            Some(close_code::FORBIDDEN) => ClientError::Forbidden { reason },
            Some(code) => ClientError::Terminated { code, reason },
            None => ClientError::Terminated {
                code: close_code::DISCONNECTED_TERMINAL,
                reason,
            },
        });
    }
    match code {
        Some(close_code::TOKEN_EXPIRED) if token_renews => AfterClose::RenewToken,
        Some(close_code::TOKEN_EXPIRED) => AfterClose::Stop(ClientError::TokenExpired),
        _ => AfterClose::Reconnect,
    }
}

#[cfg(test)]
mod tests {
    use super::{AfterClose, after_close, close_code::*, may_reconnect};
    use crate::error::ClientError;

    #[test]
    fn authentication_closes_are_typed_errors_or_a_token_renewal() {
        assert!(matches!(
            after_close(Some(UNAUTHORIZED), None, "bad signature", true),
            AfterClose::Stop(ClientError::Unauthorized { reason }) if reason == "bad signature"
        ));
        assert!(matches!(
            after_close(Some(FORBIDDEN), Some(false), "hook said no", true),
            AfterClose::Stop(ClientError::Forbidden { .. })
        ));
        assert!(matches!(
            after_close(Some(TOKEN_EXPIRED), Some(true), "token expired", true),
            AfterClose::RenewToken
        ));
        assert!(matches!(
            after_close(Some(TOKEN_EXPIRED), Some(true), "token expired", false),
            AfterClose::Stop(ClientError::TokenExpired)
        ));
        assert!(matches!(
            after_close(Some(DISCONNECTED_TERMINAL), None, "bye", true),
            AfterClose::Stop(ClientError::Terminated { code: 4500, .. })
        ));
        assert!(matches!(
            after_close(None, None, "reset", false),
            AfterClose::Reconnect
        ));
    }

    #[test]
    fn terminal_range_and_normal_close_forbid_reconnecting() {
        assert!(!may_reconnect(Some(NORMAL), None));
        assert!(!may_reconnect(Some(DISCONNECTED_TERMINAL), None));
        assert!(!may_reconnect(Some(4999), None));
        assert!(!may_reconnect(Some(UNAUTHORIZED), None));
        assert!(!may_reconnect(Some(FORBIDDEN), None));
        assert!(!may_reconnect(Some(4500), Some(true)));
    }

    #[test]
    fn reconnect_range_and_transport_codes_reconnect() {
        for code in [
            GOING_AWAY,
            PROTOCOL_ERROR,
            INVALID_PAYLOAD,
            MESSAGE_TOO_BIG,
            INTERNAL_ERROR,
            SLOW_CONSUMER,
            NO_PONG,
            TOKEN_EXPIRED,
            DISCONNECTED,
            CONNECT_TIMEOUT,
            RATE_LIMITED,
            4499,
            5000,
        ] {
            assert!(may_reconnect(Some(code), None), "{code}");
        }
        assert!(may_reconnect(None, None));
    }

    #[test]
    fn disconnect_push_saying_no_reconnect_is_final() {
        assert!(!may_reconnect(Some(DISCONNECTED), Some(false)));
        assert!(!may_reconnect(None, Some(false)));
        assert!(may_reconnect(Some(DISCONNECTED), Some(true)));
    }
}
