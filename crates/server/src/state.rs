//! [`AppState`]: what every handler shares — the hub, the configuration, metrics, the start
//! time and the shutdown signal.

use std::{sync::Arc, time::Instant};

use switchboard_core::Hub;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    audit::Audit, auth::Authenticator, config::Config, hooks::Hooks, limits::Limits,
    metrics::Metrics,
};

/// Shared state of one server; cheap to clone.
#[derive(Clone)]
pub(crate) struct AppState {
    /// The hub.
    pub(crate) hub: Hub,
    /// The Socket.IO endpoint, when enabled.
    pub(crate) socketio: Option<Arc<crate::socketio::SocketIo>>,

    /// The effective configuration.
    pub(crate) config: Arc<Config>,
    /// Verifies connection and subscription tokens.
    pub(crate) auth: Arc<Authenticator>,
    /// The application backend's hooks.
    pub(crate) hooks: Arc<Hooks>,
    /// Metrics.
    pub(crate) metrics: Arc<Metrics>,
    /// Rate and count limits.
    pub(crate) limits: Arc<Limits>,
    /// The rate-limited audit log of refusals.
    pub(crate) audit: Arc<Audit>,
    /// When the server started.
    pub(crate) started: Instant,
    /// Cancelled when the server shuts down; long waits (SSE, long-poll) end on it.
    pub(crate) shutdown: CancellationToken,
    /// Tasks that outlive their HTTP request (WebSocket sessions); shutdown waits for them.
    pub(crate) tasks: TaskTracker,
}
