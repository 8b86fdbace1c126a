//! Rust client for switchboard's native WebSocket protocol (`docs/protocol.md`), used by the
//! `switchboard publish`/`subscribe` commands, the server's integration tests and the bench.
//!
//! A [`Client`] is a cloneable handle; one background task owns the socket, reconnects with
//! jittered exponential backoff and resubscribes with recovery, so a [`Subscription`] sees
//! every publication once, in offset order, or an explicit
//! [`SubscriptionEvent::Unrecovered`] when the server no longer has what was missed. Every
//! queue is bounded and every request has a deadline.
//!
//! ```no_run
//! use serde_json::json;
//! use switchboard_client::{Client, ClientOptions, SubscribeOptions, SubscriptionEvent};
//!
//! # async fn demo() -> Result<(), switchboard_client::ClientError> {
//! let client = Client::connect(ClientOptions::new("http://127.0.0.1:8000")).await?;
//! let mut sub = client.subscribe("news", SubscribeOptions::default()).await?;
//! client.publish("news", json!({"title": "hello"})).await?;
//! while let Ok(event) = sub.recv().await {
//!     if let SubscriptionEvent::Publication(p) = event {
//!         println!("{} {:?}", p.offset, p.data);
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! **Authentication and TLS.** [`ClientOptions::token`] takes a [`TokenSource`]: a fixed
//! JWT, or an async function the client calls for the first connection, whenever the server
//! asks for a new token (`refresh`, answered on the same connection), and after an expiry
//! (close 4003: it reconnects with a new token and recovers). A refused token ends the client
//! with [`ClientError::Unauthorized`]; a fixed token that expires, with
//! [`ClientError::TokenExpired`]. Private channels take a subscription token in
//! [`SubscribeOptions::token`]. `https://` URLs connect over `wss://`, trusting the system's
//! roots and [`ClientOptions::ca_file`]. Tokens never show in `Debug` output or logs.
//!
//! ```no_run
//! use switchboard_client::{Client, ClientOptions, SubscribeOptions, TokenSource};
//!
//! # async fn demo() -> Result<(), switchboard_client::ClientError> {
//! let options = ClientOptions {
//!     token: Some(TokenSource::from_fn(|| async {
//!         // e.g. POST /realtime-token to the application's backend
//!         Ok::<_, std::io::Error>("eyJhbGciOi…".to_owned())
//!     })),
//!     ca_file: Some("switchboard-data/tls/self-signed.crt".into()),
//!     ..ClientOptions::new("https://localhost:8000")
//! };
//! let client = Client::connect(options).await?;
//! let private = SubscribeOptions {
//!     token: Some(TokenSource::fixed("eyJhbGciOi…")),
//!     ..SubscribeOptions::default()
//! };
//! let _plans = client.subscribe("private:plans", private).await?;
//! # Ok(())
//! # }
//! ```
//!
//! Channel names are plain strings here, validated by the server (`invalid_channel`): the
//! client stays independent of the server's crates.

mod backoff;
mod client;
mod close;
mod connection;
mod error;
mod history;
mod options;
mod publication;
mod state;
mod subscription;
mod tls;
mod token;
mod wire;

pub use backoff::Backoff;
pub use client::{Client, Messages, PresenceCount, UserMessage};
pub use close::{close_code, may_reconnect};
pub use error::{ClientError, ErrorCode};
pub use history::{History, HistoryFrom, HistoryOptions};
pub use options::{ClientOptions, Format};
pub use publication::{ClientInfo, Data, Publication, StreamPosition};
pub use state::{ConnectionState, Disconnect};
pub use subscription::{SubscribeCause, SubscribeOptions, Subscription, SubscriptionEvent};
pub use token::{TokenError, TokenSource};
