//! [`ConnectionState`]: what the connection task is doing, published on a `watch` channel
//! ([`Client::state`](crate::Client::state)) so callers can show it or wait for a change.
//! Only the connection task writes it.

use std::time::Duration;

use crate::token::TokenError;

/// The state of a client's connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionState {
    /// Opening a WebSocket and waiting for the `connect` reply. `attempt` counts the failed
    /// attempts since the last successful connection (0 for the first try).
    Connecting {
        /// Failed attempts since the last connection.
        attempt: u32,
    },
    /// Connected: requests are sent at once and subscriptions receive publications.
    Connected {
        /// The client id the server gave this connection.
        client: String,
        /// The server's heartbeat interval, from the `connect` reply.
        ping_interval: Duration,
        /// The user id (the connection token's `sub`); `None` when anonymous.
        user: Option<String>,
    },
    /// Not connected. With `disconnect.reconnect`, the client retries after a backoff delay;
    /// without, the client is closed for good.
    Disconnected(Disconnect),
}

/// Why the last connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disconnect {
    /// The close code (from the server's close frame or `disconnect` push; 1000 when this
    /// client closed), or `None` when the connection ended without one (reset, silence,
    /// failed connect).
    pub code: Option<u16>,
    /// The close reason, or what went wrong.
    pub reason: String,
    /// Whether the client will reconnect.
    pub reconnect: bool,
    /// Why the token function could not give a connection token, when that is what keeps
    /// the client offline (it retries with backoff).
    pub token_error: Option<TokenError>,
}

impl Disconnect {
    /// A disconnect that was not about getting a token.
    pub(crate) fn new(code: Option<u16>, reason: impl Into<String>, reconnect: bool) -> Self {
        Self {
            code,
            reason: reason.into(),
            reconnect,
            token_error: None,
        }
    }
}

impl ConnectionState {
    /// Whether the client is connected.
    pub fn is_connected(&self) -> bool {
        matches!(self, Self::Connected { .. })
    }

    /// Whether the client is closed for good (it will never connect again).
    pub fn is_closed(&self) -> bool {
        matches!(
            self,
            Self::Disconnected(Disconnect {
                reconnect: false,
                ..
            })
        )
    }
}
