//! switchboard's server: the axum application that wires the hub to its transports
//! (WebSocket on `/ws`, SSE on `/sse`, long-poll and short poll on `/poll`), the server API on
//! `/api/`, metrics on `/metrics`, health checks, and the bundled web app and JS client.
//!
//! Embedding:
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use switchboard_server::{Config, Server};
//!
//! let server = Server::bind(Config::default()).await?;
//! println!("listening on http://{}", server.local_addr()?);
//! server.run(async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # Ok(()) }
//! ```

mod api;
mod app;
mod assets;
mod audit;
pub mod auth;
pub mod config;
mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod hooks;
pub mod limits;
pub mod metrics;
mod origin;
mod server;
pub mod socketio;

mod state;
pub mod store;
pub mod tls;
mod transport;

pub use auth::AuthConfig;
pub use config::{Config, ConfigError, LogFormat};
pub use hooks::{HooksConfig, HooksConfigError};
pub use server::{Server, ServerError};
pub use store::{StoreConfig, StoreKind};
pub use tls::{TlsConfig, TlsError};

/// The server's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
