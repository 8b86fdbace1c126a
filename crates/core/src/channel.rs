//! One channel's live state: its stream position, history cache, subscribers and the
//! publications waiting for the store. Only the hub touches it, always under the channel's
//! own lock, which is what makes "recover, then go live" atomic and keeps every subscriber's
//! view in offset order.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex, MutexGuard},
};

use tokio::{sync::oneshot, time::Instant};

use crate::{
    error::HubError,
    history::{History, SharedPublication},
    names::{ChannelName, ClientId},
    options::ChannelOptions,
    outbox::{Delivery, Outbox},
    publication::{ClientInfo, Epoch, Prepared, PresenceEvent, StreamPosition},
};

pub(crate) struct Channel {
    pub(crate) name: ChannelName,
    pub(crate) options: Arc<ChannelOptions>,
    /// Serialises loading the stream from the store (first use, and after a failed commit).
    pub(crate) load_lock: tokio::sync::Mutex<()>,
    state: Mutex<ChannelState>,
}

/// Who waits for a publication's commit (sync durability only).
pub(crate) type Reply = oneshot::Sender<Result<StreamPosition, HubError>>;

/// A publication on its way to the store.
pub(crate) struct Unwritten {
    pub(crate) publication: SharedPublication,
    pub(crate) reply: Option<Reply>,
}

pub(crate) struct ChannelState {
    pub(crate) epoch: Epoch,
    /// Offset of the last publication delivered to subscribers: the stream's position as
    /// readers see it.
    pub(crate) offset: u64,
    /// Offset of the last publication accepted. Above `offset` only while sync
    /// publications wait for their commit.
    pub(crate) assigned: u64,
    /// The most recent publications (a cache of the store, or the whole history when the
    /// channel is not stored).
    pub(crate) history: History,
    /// Publications not yet handed to the store writer, in offset order.
    pub(crate) unwritten: VecDeque<Unwritten>,
    /// Publications handed to the store writer and not yet committed.
    pub(crate) writing: usize,
    /// Whether the channel is in the writer's queue.
    pub(crate) queued: bool,
    /// Offset of the last publication the store committed.
    pub(crate) committed: u64,
    /// Offsets up to this one were trimmed from the store by count.
    pub(crate) trimmed: u64,
    /// Whether `epoch`/`offset` reflect the store. False before the first load and after a
    /// failed commit (whose outcome is unknown until the store is asked again).
    pub(crate) loaded: bool,
    /// Whether it was ever loaded (a reload may have to deliver commits it missed).
    pub(crate) ever_loaded: bool,
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
    pub(crate) fn new(name: ChannelName, options: Arc<ChannelOptions>) -> Self {
        // A channel that is not stored needs no load: its stream starts here.
        let loaded = !options.stored();
        Self {
            name,
            options,
            load_lock: tokio::sync::Mutex::new(()),
            state: Mutex::new(ChannelState {
                epoch: Epoch::generate(),
                offset: 0,
                assigned: 0,
                history: History::default(),
                unwritten: VecDeque::new(),
                writing: 0,
                queued: false,
                committed: 0,
                trimmed: 0,
                loaded,
                ever_loaded: loaded,
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

    /// Whether the sweeper may drop the channel: nothing pending, nobody listening.
    pub(crate) fn is_quiet(&self) -> bool {
        self.subscribers.is_empty() && self.unwritten.is_empty() && self.writing == 0
    }

    /// Queues `publication` to every subscriber.
    pub(crate) fn deliver(&self, publication: &SharedPublication) {
        match &publication.except {
            None => {
                for s in &self.subscribers {
                    s.outbox.push(Delivery::Publication(publication.clone()));
                }
            }
            // Usually just the sender: compared without hashing.
            Some(except) if except.len() == 1 => {
                let skip = except.iter().next();
                for s in self
                    .subscribers
                    .iter()
                    .filter(|s| Some(&s.info.client) != skip)
                {
                    s.outbox.push(Delivery::Publication(publication.clone()));
                }
            }
            Some(except) => {
                for s in self
                    .subscribers
                    .iter()
                    .filter(|s| !except.contains(&s.info.client))
                {
                    s.outbox.push(Delivery::Publication(publication.clone()));
                }
            }
        }
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
