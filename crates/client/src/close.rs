//! WebSocket close codes of the native protocol (`docs/protocol.md`, "Close codes") and the
//! one function that decides whether the client reconnects after a close.
//!
//! Ranges: 1000–2999 are RFC 6455's; 4000–4499 mean *reconnect (with backoff) and recover*;
//! 4500–4999 mean *do not reconnect*.

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
    /// Disconnected by the application; may reconnect.
    pub const DISCONNECTED: u16 = 4004;
    /// Disconnected by the application; must not reconnect.
    pub const DISCONNECTED_TERMINAL: u16 = 4500;
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

#[cfg(test)]
mod tests {
    use super::{close_code::*, may_reconnect};

    #[test]
    fn terminal_range_and_normal_close_forbid_reconnecting() {
        assert!(!may_reconnect(Some(NORMAL), None));
        assert!(!may_reconnect(Some(DISCONNECTED_TERMINAL), None));
        assert!(!may_reconnect(Some(4999), None));
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
            DISCONNECTED,
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
