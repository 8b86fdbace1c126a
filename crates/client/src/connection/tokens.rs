//! The connection token side of the connection task: which token goes into `connect`, and
//! renewing it while connected (`docs/protocol.md`, "Authentication").
//!
//! An ordinary reconnect reuses the token in hand while it is valid; a token function is
//! called again for the first connection, after the server said the token expired (close
//! 4003 or a `token_expired` reply), and for every `refresh` push, which the task answers
//! with the `refresh` command on the same connection. Tokens are credentials: nothing here
//! logs one.

use futures_util::future::BoxFuture;
use tracing::{debug, info, warn};

use super::{Connection, Pending};
use crate::{
    error::ClientError,
    token::TokenError,
    wire::{Command, ReplyBody, Secret},
};

/// A token whose `exp` is this close (in seconds) is not reused for a reconnect.
const REUSE_MARGIN_SECONDS: u64 = 1;

/// The connection token the task holds.
#[derive(Default)]
pub(super) struct ConnectionToken {
    /// The last token a token function gave, reused by reconnects while valid.
    current: Option<String>,
    /// Its `exp` (unix seconds), from the `connect` or `refresh` reply.
    pub(super) expires: Option<u64>,
    /// The server said the token expired: call the function before the next connect.
    pub(super) stale: bool,
    /// The token function's call for a `refresh` push, while it runs.
    pub(super) refreshing: Option<BoxFuture<'static, Result<String, TokenError>>>,
}

// === impl Connection: connection tokens ===

impl Connection {
    /// Whether the token source can give a new token (it is a function).
    pub(super) fn token_renews(&self) -> bool {
        self.options.token.as_ref().is_some_and(|t| t.renews())
    }

    /// The token for the next `connect`: none, the fixed one, the current one while it is
    /// valid, or a new one from the function (within `token_timeout`).
    pub(super) async fn connection_token(&mut self) -> Result<Option<String>, ClientError> {
        let Some(source) = self.options.token.clone() else {
            return Ok(None);
        };
        if let Some(fixed) = source.fixed_token() {
            return Ok(Some(fixed?));
        }
        let valid = self
            .auth
            .expires
            .is_none_or(|exp| exp > now_seconds().saturating_add(REUSE_MARGIN_SECONDS));
        if !self.auth.stale
            && valid
            && let Some(current) = &self.auth.current
        {
            return Ok(Some(current.clone()));
        }
        let token = source.fetch(self.options.token_timeout).await?;
        debug!("got a connection token from the token function");
        self.auth.current = Some(token.clone());
        self.auth.expires = None;
        self.auth.stale = false;
        Ok(Some(token))
    }

    /// The server's `refresh` push: start the token function, unless a call already runs.
    pub(super) fn on_refresh_push(&mut self, expires: Option<u64>) {
        let Some(source) = &self.options.token else {
            debug!(?expires, "refresh push without a token source");
            return;
        };
        if !source.renews() {
            warn!(
                ?expires,
                "the server asks for a new connection token, but a fixed token cannot be renewed; the connection ends when it expires"
            );
            return;
        }
        if self.auth.refreshing.is_none() {
            debug!(?expires, "refresh push; calling the token function");
            self.auth.refreshing = Some(source.fetch(self.options.token_timeout));
        }
    }

    /// The token function answered a `refresh` push: send `refresh`, or let the token
    /// expire (close 4003 then brings a reconnect with a new token).
    pub(super) fn on_refresh_token(&mut self, fetched: Result<String, TokenError>) {
        match fetched {
            Ok(token) => {
                let id = self.take_id();
                self.send_frame(
                    Some(id),
                    Command::Refresh {
                        token: Secret(&token),
                    },
                );
                self.pending.insert(id, Pending::Refresh);
                self.auth.current = Some(token);
                // Unknown until the reply; a reconnect meanwhile reuses the new token.
                self.auth.expires = None;
            }
            Err(error) => warn!(
                %error,
                "no new connection token; the server closes the connection when the token expires, then the client reconnects with a new one"
            ),
        }
    }

    /// The reply to a `refresh`. A refusal is followed by the server's close (4501 or
    /// 4003), which decides what happens next.
    pub(super) fn on_refresh_reply(&mut self, result: Result<ReplyBody, ClientError>) {
        match result {
            Ok(body) => {
                info!(expires = ?body.expires, "connection token refreshed");
                self.auth.expires = body.expires;
            }
            Err(error) => warn!(%error, "refresh refused"),
        }
    }
}

/// Unix seconds now.
fn now_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
