//! [`HubError`]: why a hub operation was refused.

use thiserror::Error;

/// Why a hub operation was refused. The connection stays open for every variant; protocols
/// turn them into error replies with [`HubError::code`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HubError {
    /// Creating the channel would exceed `max_channels`.
    #[error("too many channels (the limit is {0})")]
    TooManyChannels(usize),
    /// The connection already has `max_subscriptions_per_client` subscriptions.
    #[error("too many subscriptions on this connection (the limit is {0})")]
    TooManySubscriptions(usize),
    /// The connection is already subscribed to the channel.
    #[error("already subscribed to this channel")]
    AlreadySubscribed,
    /// The connection is not subscribed to the channel.
    #[error("not subscribed to this channel")]
    NotSubscribed,
    /// The hub is shutting down.
    #[error("the server is shutting down")]
    ShuttingDown,
    /// The store could not take or give the data; nothing was published. Retry later.
    #[error("{0}")]
    StoreUnavailable(String),
    /// The channel's options turn this feature off (presence, join/leave events).
    #[error("{0}")]
    NotAvailable(&'static str),
    /// The channel's options do not let clients do this (publish, read history).
    #[error("{0}")]
    PermissionDenied(&'static str),
}

impl HubError {
    /// The stable error code used on every wire (see `docs/protocol.md`).
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooManyChannels(_) | Self::TooManySubscriptions(_) => "limit_exceeded",
            Self::AlreadySubscribed => "already_subscribed",
            Self::NotSubscribed => "not_subscribed",
            Self::ShuttingDown => "unavailable",
            Self::StoreUnavailable(_) => "store_unavailable",
            Self::NotAvailable(_) => "not_available",
            Self::PermissionDenied(_) => "permission_denied",
        }
    }
}
