//! [`HubConfig`]: the hub's bounds and store pipeline settings, with their defaults.
//! What each channel keeps and allows is in [`ChannelOptions`](crate::ChannelOptions).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::outbox::OutboxLimits;

/// The hub's settings. Every bound on memory the hub holds is here.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HubConfig {
    /// Bytes of history cached in memory across channels; over it, a publishing channel
    /// drops its oldest cached entries first (stored channels then read them from the store,
    /// channels that are not stored lose them).
    pub history_max_total_bytes: usize,
    /// Most channels alive at once; creating one more fails with `too_many_channels`.
    pub max_channels: usize,
    /// Most channels one connection may subscribe to.
    pub max_subscriptions_per_client: usize,
    /// Most recovered publications returned in one subscribe reply or poll.
    pub max_recovered: usize,
    /// A channel with no subscribers is dropped from memory after this many seconds without
    /// activity. A stored channel is loaded again from the store when next used; a channel
    /// that is not stored is only dropped once its history is empty (its stream then
    /// restarts with a new epoch).
    pub channel_idle_seconds: u64,
    /// Most deliveries queued for one connection before it is dropped as a slow consumer.
    pub outbox_max_messages: usize,
    /// Most bytes queued for one connection before it is dropped as a slow consumer.
    pub outbox_max_bytes: usize,
    /// Most publications in one store commit (concurrent publishers share commits).
    pub write_batch_max: usize,
    /// Most publications waiting for the store at once; past it publishing to a stored
    /// channel fails with `store_unavailable` instead of queueing without bound.
    pub max_pending_writes: usize,
    /// Longest wait for one store operation (a commit, a read, loading a channel).
    pub store_timeout_seconds: u64,
    /// How often retention trims stored streams by count and age.
    pub retention_interval_seconds: u64,
    /// A stored stream with no publication left is forgotten (its next publication starts a
    /// new epoch) when nothing was appended to it for this long.
    pub stream_idle_seconds: u64,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            history_max_total_bytes: 256 << 20,
            max_channels: 100_000,
            max_subscriptions_per_client: 128,
            max_recovered: 1000,
            channel_idle_seconds: 60,
            outbox_max_messages: 8192,
            outbox_max_bytes: 4 << 20,
            write_batch_max: 4096,
            max_pending_writes: 65_536,
            store_timeout_seconds: 10,
            retention_interval_seconds: 1,
            stream_idle_seconds: 7 * 86_400,
        }
    }
}

impl HubConfig {
    pub(crate) fn channel_idle(&self) -> Duration {
        Duration::from_secs(self.channel_idle_seconds)
    }

    pub(crate) fn store_timeout(&self) -> Duration {
        Duration::from_secs(self.store_timeout_seconds.max(1))
    }

    pub(crate) fn outbox_limits(&self) -> OutboxLimits {
        OutboxLimits {
            max_items: self.outbox_max_messages,
            max_bytes: self.outbox_max_bytes,
        }
    }
}
