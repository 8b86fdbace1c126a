//! [`HubConfig`]: the hub's bounds and history settings, with their defaults.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::outbox::OutboxLimits;

/// The hub's settings. Every bound on memory the hub holds is here.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HubConfig {
    /// Publications kept per channel for recovery and history queries (0 turns history off).
    pub history_size: usize,
    /// How long a publication stays in history, in seconds.
    pub history_ttl_seconds: u64,
    /// Bytes of history kept across all channels; over it, a publishing channel trims its
    /// oldest entries first.
    pub history_max_total_bytes: usize,
    /// Most channels alive at once; creating one more fails with `too_many_channels`.
    pub max_channels: usize,
    /// Most channels one connection may subscribe to.
    pub max_subscriptions_per_client: usize,
    /// Most recovered publications returned in one subscribe reply or poll.
    pub max_recovered: usize,
    /// A channel with no subscribers and no history left is dropped after this many seconds
    /// without activity (its stream then restarts with a new epoch).
    pub channel_idle_seconds: u64,
    /// Most deliveries queued for one connection before it is dropped as a slow consumer.
    pub outbox_max_messages: usize,
    /// Most bytes queued for one connection before it is dropped as a slow consumer.
    pub outbox_max_bytes: usize,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            history_size: 300,
            history_ttl_seconds: 600,
            history_max_total_bytes: 256 << 20,
            max_channels: 100_000,
            max_subscriptions_per_client: 128,
            max_recovered: 1000,
            channel_idle_seconds: 60,
            outbox_max_messages: 8192,
            outbox_max_bytes: 4 << 20,
        }
    }
}

impl HubConfig {
    pub(crate) fn history_ttl(&self) -> Duration {
        Duration::from_secs(self.history_ttl_seconds)
    }

    pub(crate) fn channel_idle(&self) -> Duration {
        Duration::from_secs(self.channel_idle_seconds)
    }

    pub(crate) fn outbox_limits(&self) -> OutboxLimits {
        OutboxLimits {
            max_items: self.outbox_max_messages,
            max_bytes: self.outbox_max_bytes,
        }
    }
}
