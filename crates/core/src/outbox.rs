//! [`Outbox`]: a connection's bounded queue of hub deliveries.
//!
//! The hub never awaits a connection: it pushes a shared [`Delivery`] (an `Arc`, no copy of the
//! data) and, when the queue was empty, wakes the connection's task once. The task drains the
//! whole queue per wake-up and writes it with one syscall, so batching grows with load and adds
//! no latency when idle. A queue that goes over its bounds is closed with
//! [`Disconnect::SlowConsumer`] and emptied: the connection is dropped and its client recovers
//! from history on reconnect. Nothing here ever blocks or grows without bound.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex, MutexGuard},
};

use tokio::sync::Notify;

use crate::publication::{Prepared, PresenceEvent, Publication, UserMessage};

/// Something the hub sends to a connection.
#[derive(Debug, Clone)]
pub enum Delivery {
    /// A publication on a subscribed channel.
    Publication(Arc<Prepared<Publication>>),
    /// Someone subscribed to a channel this connection asked join/leave events for.
    Join(Arc<Prepared<PresenceEvent>>),
    /// Someone unsubscribed from such a channel.
    Leave(Arc<Prepared<PresenceEvent>>),
    /// A message addressed to this connection's user.
    Message(Arc<Prepared<UserMessage>>),
}

impl Delivery {
    /// Approximate size in bytes, used for the queue's byte bound.
    fn weight(&self) -> usize {
        const OVERHEAD: usize = 96;
        OVERHEAD
            + match self {
                Self::Publication(p) => p.data.len(),
                Self::Message(m) => m.data.len(),
                Self::Join(_) | Self::Leave(_) => 0,
            }
    }
}

/// Why the hub closed a connection's outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Disconnect {
    /// The connection fell behind: its queue went over its bounds. It may reconnect and
    /// recover what it missed from history.
    SlowConsumer,
    /// The server is shutting down. Reconnect (to another node) and recover.
    Shutdown,
    /// The application disconnected this connection (for example through the server API).
    ByServer {
        /// Whether the client may reconnect.
        reconnect: bool,
        /// Human-readable reason sent to the client.
        reason: String,
    },
}

/// Bounds of an [`Outbox`].
#[derive(Debug, Clone, Copy)]
pub struct OutboxLimits {
    /// Most deliveries queued at once.
    pub max_items: usize,
    /// Most bytes queued at once (payload plus a fixed per-item overhead).
    pub max_bytes: usize,
}

/// Result of [`Outbox::push`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Queued.
    Queued,
    /// The queue was already closed; the delivery was dropped (the connection is going away).
    Closed,
    /// This push went over the bounds: the queue is now closed as a slow consumer.
    Overflowed,
}

/// A connection's bounded queue; see the module docs.
#[derive(Debug)]
pub struct Outbox {
    state: Mutex<State>,
    notify: Notify,
    limits: OutboxLimits,
}

#[derive(Debug, Default)]
struct State {
    items: VecDeque<Delivery>,
    bytes: usize,
    closed: Option<Disconnect>,
}

impl Outbox {
    /// An empty queue with the given bounds.
    pub fn new(limits: OutboxLimits) -> Self {
        Self {
            state: Mutex::new(State::default()),
            notify: Notify::new(),
            limits,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave `State` inconsistent (every update is a
        // single push/clear), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `delivery`, waking the connection if the queue was empty. Never blocks.
    pub fn push(&self, delivery: Delivery) -> Pushed {
        let weight = delivery.weight();
        let mut state = self.lock();
        if state.closed.is_some() {
            return Pushed::Closed;
        }
        if state.items.len() >= self.limits.max_items
            || state.bytes + weight > self.limits.max_bytes
        {
            state.items = VecDeque::new();
            state.bytes = 0;
            state.closed = Some(Disconnect::SlowConsumer);
            drop(state);
            self.notify.notify_one();
            return Pushed::Overflowed;
        }
        let was_empty = state.items.is_empty();
        state.items.push_back(delivery);
        state.bytes += weight;
        drop(state);
        if was_empty {
            self.notify.notify_one();
        }
        Pushed::Queued
    }

    /// Closes the queue with `reason` (the first reason wins) and wakes the connection.
    /// Deliveries already queued are still drained, except after a slow-consumer close.
    pub fn close(&self, reason: Disconnect) {
        let mut state = self.lock();
        if state.closed.is_none() {
            state.closed = Some(reason);
        }
        drop(state);
        self.notify.notify_one();
    }

    /// Moves every queued delivery into `out` (in order) and returns the close reason once the
    /// queue is closed. Call after [`Outbox::notified`] fires.
    pub fn drain(&self, out: &mut Vec<Delivery>) -> Option<Disconnect> {
        let mut state = self.lock();
        out.extend(state.items.drain(..));
        state.bytes = 0;
        if state.items.capacity() > 64 {
            state.items.shrink_to(16);
        }
        state.closed.clone()
    }

    /// Whether the queue has been closed.
    pub fn is_closed(&self) -> bool {
        self.lock().closed.is_some()
    }

    /// Waits until something was queued or the queue was closed since the last drain.
    ///
    /// Cancel-safe: a wake-up that arrives while nobody waits is kept for the next call.
    pub async fn notified(&self) {
        self.notify.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Payload;
    use crate::publication::UserMessage;

    fn message(n: usize) -> Delivery {
        Delivery::Message(Arc::new(Prepared::new(UserMessage {
            data: Payload::Binary(vec![0u8; n].into()),
        })))
    }

    #[test]
    fn overflow_closes_the_queue_as_a_slow_consumer_and_empties_it() {
        let o = Outbox::new(OutboxLimits {
            max_items: 2,
            max_bytes: 1 << 20,
        });
        assert_eq!(o.push(message(1)), Pushed::Queued);
        assert_eq!(o.push(message(1)), Pushed::Queued);
        assert_eq!(o.push(message(1)), Pushed::Overflowed);
        assert_eq!(o.push(message(1)), Pushed::Closed);
        let mut out = Vec::new();
        assert_eq!(o.drain(&mut out), Some(Disconnect::SlowConsumer));
        assert!(out.is_empty());
    }

    #[test]
    fn byte_bound_is_enforced() {
        let o = Outbox::new(OutboxLimits {
            max_items: 100,
            max_bytes: 1000,
        });
        assert_eq!(o.push(message(500)), Pushed::Queued);
        assert_eq!(o.push(message(500)), Pushed::Overflowed);
    }

    #[tokio::test]
    async fn a_push_before_waiting_is_not_lost() {
        let o = Outbox::new(OutboxLimits {
            max_items: 10,
            max_bytes: 1 << 20,
        });
        o.push(message(1));
        tokio::time::timeout(std::time::Duration::from_secs(1), o.notified())
            .await
            .expect("wake-up kept");
        let mut out = Vec::new();
        assert_eq!(o.drain(&mut out), None);
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn a_server_close_keeps_queued_deliveries() {
        let o = Outbox::new(OutboxLimits {
            max_items: 10,
            max_bytes: 1 << 20,
        });
        o.push(message(1));
        o.close(Disconnect::Shutdown);
        let mut out = Vec::new();
        assert_eq!(o.drain(&mut out), Some(Disconnect::Shutdown));
        assert_eq!(out.len(), 1);
    }
}
