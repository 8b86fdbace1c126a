//! [`Config`]: every setting of the server, with its default and unit in its name, and
//! [`Config::load`], which layers a TOML file, `SWITCHBOARD_*` environment variables and
//! command-line overrides, in that order. Nothing is required: the defaults run a complete
//! server on `127.0.0.1:8000`.

use std::{collections::BTreeMap, net::SocketAddr, path::Path};

use figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml},
};
use serde::{Deserialize, Serialize};
use switchboard_core::{ChannelOptions, HubConfig, NamespaceOptions, Namespaces};

use crate::{
    auth::AuthConfig,
    hooks::HooksConfig,
    limits::LimitsConfig,
    store::{StoreConfig, StoreKind},
    tls::TlsConfig,
};
use thiserror::Error;

/// The server's settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address and port to listen on (`0` as port picks a free one).
    pub listen: SocketAddr,
    /// Most simultaneous TCP connections; further ones are closed at once.
    pub max_connections: usize,
    /// Seconds given to connections to close after a shutdown signal.
    pub shutdown_grace_seconds: u64,
    /// Seconds sent data may stay unacknowledged before the kernel drops the connection
    /// (`TCP_USER_TIMEOUT`): how long a vanished peer keeps its subscriptions and presence.
    pub tcp_user_timeout_seconds: u64,
    /// Web page origins (`https://app.example.com`, or `*`) that may open WebSockets and use
    /// SSE and polling from a browser, besides the server's own origin. Empty: the server's
    /// own origin and loopback origins only.
    pub allowed_origins: Vec<String>,
    /// Hub: limits, queues, the store pipeline.
    pub hub: HubConfig,
    /// Where channel streams are kept.
    pub store: StoreConfig,
    /// Options of every channel outside a namespace.
    pub channels: ChannelOptions,
    /// Namespaces: channels named `NAME:…` take these overrides of `[channels]`.
    pub namespaces: BTreeMap<String, NamespaceOptions>,
    /// Server HTTP API (`/api/*`).
    pub api: ApiConfig,
    /// Connection authentication (JWT).
    pub auth: AuthConfig,
    /// Rate and count limits against floods.
    pub limits: LimitsConfig,
    /// HTTPS/WSS served directly.
    pub tls: TlsConfig,
    /// The application backend's hooks (connect, refresh, subscribe, publish, rpc).
    pub hooks: HooksConfig,
    /// WebSocket transport (`/ws`).
    pub websocket: WebSocketConfig,
    /// Server-Sent Events transport (`/sse`).
    pub sse: SseConfig,
    /// Polling transport (`/poll`).
    pub poll: PollConfig,
    /// Engine.IO / Socket.IO endpoint (`/socket.io/`).
    pub socketio: crate::socketio::SocketIoConfig,
    /// Logging.
    pub log: LogConfig,
}

/// Server API settings.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// The API key (`Authorization: Bearer KEY` or `X-API-Key: KEY`). When unset, the API
    /// answers only requests from loopback addresses.
    pub key: Option<String>,
}

/// WebSocket settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebSocketConfig {
    /// Largest message (and frame) accepted from a client, in bytes.
    pub max_message_bytes: usize,
    /// Negotiate permessage-deflate when the client offers it.
    pub compression: bool,
    /// Messages shorter than this are sent uncompressed even on compressed connections.
    pub compression_min_bytes: usize,
    /// Seconds between server `ping` pushes.
    pub ping_interval_seconds: u64,
    /// Seconds of silence tolerated after a ping interval before closing with 4002.
    pub pong_timeout_seconds: u64,
    /// Seconds a write may stay blocked before the client is dropped as a slow consumer.
    pub write_timeout_seconds: u64,
    /// Serve `/ws/echo`, which echoes every message (for the Autobahn conformance suite).
    pub echo_endpoint: bool,
}

/// Server-Sent Events settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SseConfig {
    /// Seconds between `: ping` comments.
    pub heartbeat_seconds: u64,
    /// Reconnect advice sent as `retry:`, in milliseconds.
    pub retry_ms: u64,
    /// Most channels in one stream.
    pub max_channels: usize,
}

/// Polling settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PollConfig {
    /// Longest `wait` a long-poll may ask for, in seconds.
    pub max_wait_seconds: u64,
    /// Most publications in one reply.
    pub max_batch: usize,
    /// Most channels in one request.
    pub max_channels: usize,
}

/// Log settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `switchboard=debug,info`.
    pub level: String,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8000)),
            max_connections: 15_000,
            shutdown_grace_seconds: 5,
            tcp_user_timeout_seconds: 30,
            allowed_origins: Vec::new(),
            hub: HubConfig::default(),
            store: StoreConfig::default(),
            channels: ChannelOptions::default(),
            namespaces: BTreeMap::new(),
            api: ApiConfig::default(),
            auth: AuthConfig::default(),
            limits: LimitsConfig::default(),
            tls: TlsConfig::default(),
            hooks: HooksConfig::default(),
            websocket: WebSocketConfig::default(),
            sse: SseConfig::default(),
            poll: PollConfig::default(),
            socketio: crate::socketio::SocketIoConfig::default(),

            log: LogConfig::default(),
        }
    }
}

impl Default for WebSocketConfig {
    fn default() -> Self {
        Self {
            max_message_bytes: 64 << 10,
            compression: true,
            compression_min_bytes: 256,
            ping_interval_seconds: 25,
            pong_timeout_seconds: 10,
            write_timeout_seconds: 10,
            echo_endpoint: false,
        }
    }
}

impl Default for SseConfig {
    fn default() -> Self {
        Self {
            heartbeat_seconds: 15,
            retry_ms: 1000,
            max_channels: 32,
        }
    }
}

impl Default for PollConfig {
    fn default() -> Self {
        Self {
            max_wait_seconds: 60,
            max_batch: 1000,
            max_channels: 32,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".to_owned(),
        }
    }
}

/// Why the configuration could not be loaded.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file given with `--config` does not exist.
    #[error("config file {0} not found")]
    FileNotFound(String),
    /// A value is missing, misspelled or of the wrong type.
    #[error("{0}")]
    Invalid(Box<figment::Error>),
    /// A namespace is misnamed.
    #[error("invalid setting `namespaces`: {0}")]
    Namespace(#[from] switchboard_core::NamespaceError),
    /// A value is out of its allowed range.
    #[error("invalid setting `{key}`: {reason}")]
    OutOfRange {
        /// The setting.
        key: &'static str,
        /// Why.
        reason: &'static str,
    },
}

/// The top-level keys of [`Config`], for reading environment variables.
const TOP_LEVEL_KEYS: [&str; 19] = [
    "listen",
    "max_connections",
    "shutdown_grace_seconds",
    "tcp_user_timeout_seconds",
    "allowed_origins",
    "hub",
    "store",
    "channels",
    "namespaces",
    "api",
    "auth",
    "limits",
    "tls",
    "hooks",
    "websocket",
    "sse",
    "poll",
    "socketio",
    "log",
];

impl Config {
    /// Loads defaults, then `file` (TOML), then `SWITCHBOARD_*` environment variables (nested
    /// keys joined with `__`, e.g. `SWITCHBOARD_CHANNELS__HISTORY_SIZE=50`), then `overrides`
    /// (dotted keys from command-line flags), and checks the result.
    pub fn load(
        file: Option<&Path>,
        overrides: &[(&str, figment::value::Value)],
    ) -> Result<Self, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError::FileNotFound(path.display().to_string()));
            }
            fig = fig.merge(Toml::file_exact(path));
        }
        // Other SWITCHBOARD_* variables (SWITCHBOARD_CONFIG, SWITCHBOARD_URL of the CLI, …)
        // are not settings; only those naming a top-level key are read, and a typo inside a
        // known section is still an error.
        fig = fig.merge(Env::prefixed("SWITCHBOARD_").split("__").filter(|key| {
            // The key arrives already split into a dotted path (`channels.history_size`).
            let top = key.as_str().split('.').next().unwrap_or("");
            TOP_LEVEL_KEYS.iter().any(|k| top.eq_ignore_ascii_case(k))
        }));
        for (key, value) in overrides {
            fig = fig.merge(Serialized::default(key, value.clone()));
        }
        let config: Config = fig
            .extract()
            .map_err(|e| ConfigError::Invalid(Box::new(e)))?;
        config.check()?;
        Ok(config)
    }

    /// Checks ranges that types cannot express.
    pub fn check(&self) -> Result<(), ConfigError> {
        let range = |ok: bool, key, reason| {
            if ok {
                Ok(())
            } else {
                Err(ConfigError::OutOfRange { key, reason })
            }
        };
        range(
            self.websocket.max_message_bytes >= 128,
            "websocket.max_message_bytes",
            "must be at least 128",
        )?;
        range(
            self.websocket.ping_interval_seconds >= 1,
            "websocket.ping_interval_seconds",
            "must be at least 1",
        )?;
        range(
            self.sse.heartbeat_seconds >= 1,
            "sse.heartbeat_seconds",
            "must be at least 1",
        )?;
        range(
            (1..=3600).contains(&self.poll.max_wait_seconds),
            "poll.max_wait_seconds",
            "must be 1..=3600",
        )?;
        range(
            self.poll.max_batch >= 1,
            "poll.max_batch",
            "must be at least 1",
        )?;
        range(
            self.hub.max_channels >= 1,
            "hub.max_channels",
            "must be at least 1",
        )?;
        range(
            self.hub.outbox_max_messages >= 16,
            "hub.outbox_max_messages",
            "must be at least 16",
        )?;
        range(
            self.hub.outbox_max_bytes >= self.websocket.max_message_bytes,
            "hub.outbox_max_bytes",
            "must be at least websocket.max_message_bytes",
        )?;
        range(
            (1..=3600).contains(&self.tcp_user_timeout_seconds),
            "tcp_user_timeout_seconds",
            "must be 1..=3600",
        )?;
        range(
            (1..=3600).contains(&self.limits.handshake_timeout_seconds),
            "limits.handshake_timeout_seconds",
            "must be 1..=3600",
        )?;
        range(
            self.limits.connections_per_ip >= 1,
            "limits.connections_per_ip",
            "must be at least 1",
        )?;
        range(
            self.max_connections >= 1,
            "max_connections",
            "must be at least 1",
        )?;
        range(
            self.hub.write_batch_max >= 1,
            "hub.write_batch_max",
            "must be at least 1",
        )?;
        range(
            self.hub.max_pending_writes >= self.hub.write_batch_max,
            "hub.max_pending_writes",
            "must be at least hub.write_batch_max",
        )?;
        range(
            self.store.kind != StoreKind::Postgres || !self.store.postgres_url.is_empty(),
            "store.postgres_url",
            "must be set when store.kind is \"postgres\"",
        )?;
        range(
            self.store.postgres_pool_size >= 1,
            "store.postgres_pool_size",
            "must be at least 1",
        )?;
        self.namespaces()?;
        Ok(())
    }

    /// The channel options of every namespace, resolved.
    pub fn namespaces(&self) -> Result<Namespaces, ConfigError> {
        Ok(Namespaces::new(self.channels.clone(), &self.namespaces)?)
    }

    /// How long one store operation may take.
    pub fn hub_store_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.hub.store_timeout_seconds.max(1))
    }

    /// The effective configuration as TOML (for `switchboard config check`).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }
}

/// A commented example configuration (for `switchboard config init`). Every line is a
/// default, so the file changes nothing until edited.
pub const EXAMPLE: &str = include_str!("config_example.toml");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_file_holds_exactly_the_defaults() {
        let from_example: Config = toml::from_str(EXAMPLE).unwrap();
        assert_eq!(from_example.to_toml(), Config::default().to_toml());
    }

    #[test]
    fn every_top_level_key_is_listed_for_the_environment() {
        let value = toml::Value::try_from(Config::default()).unwrap();
        let mut keys: Vec<&str> = value
            .as_table()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        keys.sort_unstable();
        let mut listed = TOP_LEVEL_KEYS.to_vec();
        listed.sort_unstable();
        assert_eq!(keys, listed);
    }
}
