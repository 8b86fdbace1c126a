//! One channel's live state: its stream position, history and subscribers. Only the hub
//! touches it, always under the channel's own lock, which is what makes "recover, then go
//! live" atomic and keeps every subscriber's view in offset order.

use std::sync::{Arc, Mutex, MutexGuard};

use tokio::time::Instant;

use crate::{
    history::History,
    names::{ChannelName, ClientId},
    outbox::{Delivery, Outbox},
    publication::{ClientInfo, Epoch, Prepared, PresenceEvent, StreamPosition},
};

pub(crate) struct Channel {
    pub(crate) name: ChannelName,
    state: Mutex<ChannelState>,
}

pub(crate) struct ChannelState {
    pub(crate) epoch: Epoch,
    pub(crate) offset: u64,
    pub(crate) history: History,
    pub(crate) subscribers: Vec<Subscriber>,
    join_leave_listeners: usize,
    pub(crate) last_active: Instant,
    /// Set by the sweeper when it drops the channel from the hub's map; a caller holding an
    /// old `Arc<Channel>` must look the channel up again.
    pub(crate) removed: bool,
}

pub(crate) struct Subscriber {
    pub(crate) info: Arc<ClientInfo>,
    pub(crate) outbox: Arc<Outbox>,
    join_leave: bool,
}

impl Channel {
    pub(crate) fn new(name: ChannelName) -> Self {
        Self {
            name,
            state: Mutex::new(ChannelState {
                epoch: Epoch::generate(),
                offset: 0,
                history: History::default(),
                subscribers: Vec::new(),
                join_leave_listeners: 0,
                last_active: Instant::now(),
                removed: false,
            }),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, ChannelState> {
        // Every mutation of the state completes before any call that could panic, so a
        // poisoned lock still guards consistent data.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl ChannelState {
    pub(crate) fn position(&self) -> StreamPosition {
        StreamPosition {
            offset: self.offset,
            epoch: self.epoch.clone(),
        }
    }

    pub(crate) fn is_subscribed(&self, client: &ClientId) -> bool {
        self.subscribers.iter().any(|s| &s.info.client == client)
    }

    pub(crate) fn add(
        &mut self,
        channel: &ChannelName,
        info: Arc<ClientInfo>,
        outbox: Arc<Outbox>,
        join_leave: bool,
    ) {
        if self.join_leave_listeners > 0 {
            self.presence_event(channel, &info, Delivery::Join);
        }
        self.join_leave_listeners += usize::from(join_leave);
        self.subscribers.push(Subscriber {
            info,
            outbox,
            join_leave,
        });
    }

    pub(crate) fn remove(&mut self, channel: &ChannelName, client: &ClientId) -> bool {
        let Some(i) = self
            .subscribers
            .iter()
            .position(|s| &s.info.client == client)
        else {
            return false;
        };
        let gone = self.subscribers.swap_remove(i);
        self.join_leave_listeners -= usize::from(gone.join_leave);
        if self.join_leave_listeners > 0 {
            self.presence_event(channel, &gone.info, Delivery::Leave);
        }
        true
    }

    fn presence_event(
        &self,
        channel: &ChannelName,
        info: &Arc<ClientInfo>,
        kind: fn(Arc<Prepared<PresenceEvent>>) -> Delivery,
    ) {
        let event = Arc::new(Prepared::new(PresenceEvent {
            channel: channel.clone(),
            info: info.clone(),
        }));
        for s in self.subscribers.iter().filter(|s| s.join_leave) {
            if s.info.client != info.client {
                s.outbox.push(kind(event.clone()));
            }
        }
    }
}
