//! [`ClientOptions`]: everything [`Client::connect`](crate::Client::connect) needs, with all
//! defaults in [`ClientOptions::new`], and the wire [`Format`]. Also derives the WebSocket URL
//! (`ws://…/ws`) from the server's HTTP base URL.

use std::{path::PathBuf, time::Duration};

use crate::{backoff::Backoff, error::ClientError, token::TokenSource};

/// The wire format of a connection, chosen by WebSocket subprotocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// `switchboard.json`: one JSON object per text frame.
    #[default]
    Json,
    /// `switchboard.msgpack`: one MessagePack map per binary frame, same keys as JSON.
    MessagePack,
}

impl Format {
    /// The WebSocket subprotocol that selects this format.
    pub fn subprotocol(self) -> &'static str {
        match self {
            Self::Json => "switchboard.json",
            Self::MessagePack => "switchboard.msgpack",
        }
    }
}

/// How to reach the server and how patient to be.
///
/// Build it with [`ClientOptions::new`] and change fields with struct update syntax:
///
/// ```
/// use std::time::Duration;
/// use switchboard_client::{ClientOptions, Format};
///
/// let options = ClientOptions {
///     format: Format::MessagePack,
///     request_timeout: Duration::from_secs(2),
///     ..ClientOptions::new("http://127.0.0.1:8000")
/// };
/// assert_eq!(options.websocket_url().unwrap(), "ws://127.0.0.1:8000/ws");
/// ```
///
/// With authentication and TLS (a development server started with
/// `switchboard serve --tls-self-signed`, whose certificate the client is told to trust):
///
/// ```
/// use switchboard_client::{ClientOptions, TokenSource};
///
/// let options = ClientOptions {
///     token: Some(TokenSource::from_fn(|| async {
///         // ask the application's backend for a token of the logged-in user
///         Ok::<_, std::io::Error>("eyJhbGciOi…".to_owned())
///     })),
///     ca_file: Some("switchboard-data/tls/self-signed.crt".into()),
///     ..ClientOptions::new("https://localhost:8000")
/// };
/// assert_eq!(options.websocket_url().unwrap(), "wss://localhost:8000/ws");
/// // Tokens are credentials: Debug output never shows one.
/// assert!(!format!("{options:?}").contains("eyJ"));
/// ```
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// The server's base URL: `http://host:port` (the client connects to `ws://host:port/ws`),
    /// `https://…` (`wss://…/ws`, over TLS), or a full `ws://`/`wss://` URL used as is. A
    /// path prefix is kept (`http://h/rt` → `ws://h/rt/ws`).
    pub url: String,
    /// The connection token (a JWT from the application, `docs/security.md`), sent in the
    /// `connect` command. A function is called for the first connection, for every
    /// `refresh` push (the connection carries on with the new token), and before
    /// reconnecting once the token expired (close 4003); other reconnects reuse the last
    /// token while it is valid. A fixed token cannot be renewed, so its expiry ends the
    /// client with [`ClientError::TokenExpired`]. `None` connects anonymously. Default:
    /// `None`.
    pub token: Option<TokenSource>,
    /// Deadline of one call of a token function (connection and subscription tokens).
    /// Default: 10 s.
    pub token_timeout: Duration,
    /// A PEM file of certificates to trust for `wss`/`https`, besides the system's roots: a
    /// private CA, or a self-signed server certificate for development (the one
    /// `switchboard serve --tls-self-signed` prints). Read once, by
    /// [`Client::connect`](crate::Client::connect) for a `wss` URL (unused for `ws`).
    /// Default: `None`.
    pub ca_file: Option<PathBuf>,
    /// `name` sent in `connect` (a label for logs and the admin console).
    pub name: Option<String>,
    /// `version` sent in `connect`.
    pub version: Option<String>,
    /// `info` sent in `connect`: any JSON, shown to others in presence.
    pub info: Option<serde_json::Value>,
    /// Wire format. Default: JSON.
    pub format: Format,
    /// Deadline for opening a connection: TCP, WebSocket upgrade and the `connect` reply.
    /// Default: 10 s.
    pub connect_timeout: Duration,
    /// Deadline of every request, from the call until its reply, including time spent
    /// waiting for a reconnect. Default: 10 s.
    pub request_timeout: Duration,
    /// Reconnect backoff. Default: 100 ms doubling up to 10 s, with full jitter.
    pub backoff: Backoff,
    /// How long past the server's `ping_interval` a silent server is still trusted; after
    /// `ping_interval + ping_margin` without any frame the client drops the connection and
    /// reconnects. Default: 10 s.
    pub ping_margin: Duration,
    /// Capacity of the queue of commands from handles to the connection task. A caller
    /// waits (within its deadline) when it is full. Default: 256.
    pub command_buffer: usize,
    /// Most requests waiting for a reply at once, across all handles; further calls wait
    /// for a slot (within their deadline). Default: 1024.
    pub max_in_flight: usize,
    /// Capacity of the user-message buffer shared by [`Messages`](crate::Messages)
    /// receivers; a receiver that falls further behind gets [`ClientError::Lagged`].
    /// Default: 256.
    pub message_buffer: usize,
}

impl ClientOptions {
    /// Options for the server at `url`, every other field at its default.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            token: None,
            token_timeout: Duration::from_secs(10),
            ca_file: None,
            name: None,
            version: None,
            info: None,
            format: Format::Json,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(10),
            backoff: Backoff::default(),
            ping_margin: Duration::from_secs(10),
            command_buffer: 256,
            max_in_flight: 1024,
            message_buffer: 256,
        }
    }

    /// The WebSocket URL derived from [`url`](Self::url): `ws://…` or `wss://…`.
    pub fn websocket_url(&self) -> Result<String, ClientError> {
        let invalid = |reason| ClientError::InvalidUrl {
            url: self.url.clone(),
            reason,
        };
        let (scheme, rest) = self
            .url
            .split_once("://")
            .ok_or_else(|| invalid("no scheme (expected http://host:port)"))?;
        let (ws_scheme, append_path) = match scheme.to_ascii_lowercase().as_str() {
            "http" => ("ws", true),
            "https" => ("wss", true),
            "ws" => ("ws", false),
            "wss" => ("wss", false),
            _ => return Err(invalid("scheme is not http, https, ws or wss")),
        };
        if rest.is_empty() || rest.starts_with('/') {
            return Err(invalid("no host"));
        }
        if rest.contains(['?', '#']) {
            return Err(invalid("query and fragment are not allowed"));
        }
        let base = rest.trim_end_matches('/');
        Ok(if append_path {
            format!("{ws_scheme}://{base}/ws")
        } else {
            format!("{ws_scheme}://{rest}")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::ClientOptions;

    fn ws(url: &str) -> Option<String> {
        ClientOptions::new(url).websocket_url().ok()
    }

    #[test]
    fn websocket_url_is_derived_from_the_http_base() {
        assert_eq!(
            ws("http://127.0.0.1:8000").as_deref(),
            Some("ws://127.0.0.1:8000/ws")
        );
        assert_eq!(
            ws("http://127.0.0.1:8000/").as_deref(),
            Some("ws://127.0.0.1:8000/ws")
        );
        assert_eq!(
            ws("https://example.com/rt/").as_deref(),
            Some("wss://example.com/rt/ws")
        );
        assert_eq!(ws("HTTP://h:1").as_deref(), Some("ws://h:1/ws"));
        assert_eq!(ws("ws://h:1/custom").as_deref(), Some("ws://h:1/custom"));
    }

    #[test]
    fn urls_without_scheme_or_host_are_refused() {
        for url in [
            "127.0.0.1:8000",
            "ftp://h",
            "http://",
            "http:///x",
            "http://h/?a=1",
        ] {
            assert_eq!(ws(url), None, "{url}");
        }
    }
}
