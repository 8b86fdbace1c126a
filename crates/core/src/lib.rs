//! switchboard's core: the hub.
//!
//! Channels are created on first use and dropped when idle; each holds a stream of
//! [`Publication`]s numbered by a gapless `offset` within an `epoch`, a bounded history for
//! recovery, and its subscribers (who are its presence). Connections register with
//! [`Hub::connect`] and receive [`Delivery`] values through their bounded [`Outbox`]; a
//! connection that falls behind is closed as a slow consumer and recovers on reconnect.
//!
//! This crate knows no network: no sockets, no HTTP. Protocols turn wire messages into calls
//! on [`Hub`] and [`Client`], and turn deliveries into frames, encoding each publication once
//! per wire format through [`Prepared::frame`].
//!
//! ```
//! use switchboard_core::{ChannelName, Hub, HubConfig, Payload, SubscribeOptions};
//!
//! let hub = Hub::new(HubConfig::default());
//! let news = ChannelName::parse("news").unwrap();
//! let client = hub.connect(None, None).unwrap();
//! client.subscribe(&news, SubscribeOptions::default()).unwrap();
//! let position = hub.publish(&news, Payload::json(&b"{\"title\":\"hi\"}"[..]).unwrap(), None).unwrap();
//! assert_eq!(position.offset, 1);
//! let mut queued = Vec::new();
//! client.outbox().drain(&mut queued);
//! assert_eq!(queued.len(), 1);
//! ```

mod channel;
mod client;
mod config;
mod error;
mod history;
mod hub;
mod names;
mod outbox;
mod publication;
mod random;
pub mod store;

pub use client::{Client, SubscribeOptions};
pub use config::HubConfig;
pub use error::HubError;
pub use history::{PageFrom, SharedPublication};
pub use hub::{ChannelSummary, HistoryPage, Hub, HubStats, PresenceCount, Recovery};
pub use names::{
    ChannelName, ClientId, MAX_CHANNEL_NAME_BYTES, MAX_USER_ID_BYTES, NameError, UserId,
};
pub use outbox::{Delivery, Disconnect, Outbox, OutboxLimits, Pushed};
pub use publication::{
    ClientInfo, Epoch, FRAME_SLOTS, FrameSlot, InvalidJson, Payload, Prepared, PresenceEvent,
    Publication, RawJson, StreamPosition, UserMessage,
};
pub use store::{MemoryStore, Store, StoreError};

#[cfg(test)]
mod tests;
