//! switchboard's core: the hub.
//!
//! Channels are created on first use and dropped from memory when idle; each holds a stream
//! of [`Publication`]s numbered by a gapless `offset` within an `epoch`, kept in a [`Store`]
//! (with a bounded cache in memory) for history and recovery, and its subscribers (who are
//! its presence). [`Namespaces`] give each channel its [`ChannelOptions`]: history size and
//! age, persistence, [`Durability`], presence, join/leave events, and [`Access`] rules for
//! who may subscribe, publish and read history and presence. Connections register with
//! [`Hub::connect`] and receive [`Delivery`] values through their bounded [`Outbox`]; a
//! connection that falls behind is closed as a slow consumer and recovers on reconnect.
//!
//! This crate knows no network: no sockets, no HTTP. Protocols turn wire messages into calls
//! on [`Hub`] and [`Client`], and turn deliveries into frames, encoding each publication once
//! per wire format through [`Prepared::frame`].
//!
//! ```
//! use switchboard_core::{ChannelName, Hub, Payload, SubscribeOptions};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let hub = Hub::in_memory();
//! let news = ChannelName::parse("news").unwrap();
//! let client = hub.connect(None, None).unwrap();
//! client.subscribe(&news, SubscribeOptions::default()).await.unwrap();
//! let data = Payload::json(&b"{\"title\":\"hi\"}"[..]).unwrap();
//! let position = hub.publish(&news, data, None).await.unwrap();
//! assert_eq!(position.offset, 1);
//! let mut queued = Vec::new();
//! client.outbox().drain(&mut queued);
//! assert_eq!(queued.len(), 1);
//! # }
//! ```

pub mod access;
mod channel;
mod client;
mod config;
mod error;
mod history;
mod hub;
mod names;
mod options;
mod outbox;
mod publication;
mod random;
pub mod store;
mod writer;

pub use access::{Access, Action, ClaimRule, Identity, Level};
pub use client::{Client, SubscribeOptions};
pub use config::HubConfig;
pub use error::HubError;
pub use history::{PageFrom, SharedPublication};
pub use hub::{
    ChannelSummary, Committed, ConnectOptions, HistoryPage, Hub, HubStats, Live, PresenceCount,
    Recovery,
};
pub use names::{
    ChannelName, ClientId, MAX_CHANNEL_NAME_BYTES, MAX_USER_ID_BYTES, NameError, UserId,
};
pub use options::{ChannelOptions, Durability, NamespaceError, NamespaceOptions, Namespaces};
pub use outbox::{Delivery, Disconnect, Outbox, OutboxLimits, Pushed};
pub use publication::{
    ClientInfo, Epoch, FRAME_SLOTS, FrameSlot, InvalidJson, Payload, Prepared, PresenceEvent,
    Publication, RawJson, StreamPosition, UserMessage, validate_json,
};
pub use store::{MemoryStore, Store, StoreError, StoreStats, StreamStats};

#[cfg(test)]
mod store_tests;
#[cfg(test)]
mod tests;
