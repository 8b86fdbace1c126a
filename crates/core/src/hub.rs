//! [`Hub`]: channels, publications, history, recovery, presence and user-addressed delivery.
//!
//! The hub knows no network. Protocols register connections with [`Hub::connect`] and get a
//! [`Client`]; the hub pushes [`Delivery`] values into each client's [`Outbox`] and never
//! waits for a connection. Publications are wrapped once in a [`Prepared`] so each wire format
//! is encoded once, however many subscribers receive it.
//!
//! Guarantees: within a channel, offsets are assigned under the channel's lock and pushed to
//! every subscriber in the same critical section, so each subscriber sees them in order with
//! no gap; a subscription's recovery and its registration happen in one critical section too,
//! so nothing falls between the recovered publications and the live ones.

use std::{
    collections::HashMap,
    future::Future,
    sync::{
        Arc, Mutex, MutexGuard, Weak,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use serde::Serialize;
use tokio::time::Instant;

use crate::{
    channel::{Channel, ChannelState},
    client::Client,
    config::HubConfig,
    error::HubError,
    history::{PageFrom, SharedPublication, Since},
    names::{ChannelName, ClientId, UserId},
    outbox::{Delivery, Disconnect, Outbox},
    publication::{
        ClientInfo, Payload, Prepared, Publication, RawJson, StreamPosition, UserMessage,
    },
};

/// The hub; cheap to clone (all clones share one state).
#[derive(Clone)]
pub struct Hub {
    pub(crate) inner: Arc<Inner>,
}

/// One connection of a user: its id and its queue.
type UserConnection = (ClientId, Arc<Outbox>);

pub(crate) struct Inner {
    pub(crate) config: HubConfig,
    channels: Mutex<HashMap<ChannelName, Arc<Channel>>>,
    users: Mutex<HashMap<UserId, Vec<UserConnection>>>,
    clients: Mutex<HashMap<ClientId, Arc<Outbox>>>,
    history_bytes: AtomicUsize,
    shutting_down: AtomicBool,
}

/// The result of reading a channel's stream after a known position.
#[derive(Debug, Clone)]
pub struct Recovery {
    /// The stream position to resume from after the returned publications: the offset of the
    /// last one returned (or the position asked for when nothing was missed), in the current
    /// epoch. Everything after it is guaranteed to be delivered or readable.
    pub position: StreamPosition,
    /// `Some(true)` when everything after the asked position is returned (or follows),
    /// `Some(false)` when some of it is gone (history expired, epoch changed) and the client
    /// must reload its state, `None` when no position was asked for.
    pub recovered: Option<bool>,
    /// The missed publications, oldest first.
    pub publications: Vec<SharedPublication>,
    /// Whether more publications follow the returned ones (a bounded batch was full).
    pub more: bool,
}

/// A page of a channel's history.
#[derive(Debug, Clone)]
pub struct HistoryPage {
    /// The publications, in the order asked for.
    pub publications: Vec<SharedPublication>,
    /// The channel's current stream position.
    pub position: StreamPosition,
}

/// How many are present in a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PresenceCount {
    /// Connections subscribed.
    pub clients: usize,
    /// Distinct users among them (anonymous connections not counted).
    pub users: usize,
}

/// One line of [`Hub::channels`].
#[derive(Debug, Clone, Serialize)]
pub struct ChannelSummary {
    /// The channel.
    pub channel: ChannelName,
    /// Connections subscribed.
    pub subscribers: usize,
    /// Current stream position.
    #[serde(flatten)]
    pub position: StreamPosition,
    /// Publications held in history.
    pub history_size: usize,
    /// Bytes held in history.
    pub history_bytes: usize,
}

/// Counts for metrics and `/api/info`.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct HubStats {
    /// Channels alive.
    pub channels: usize,
    /// Connections registered.
    pub clients: usize,
    /// Bytes held in history across channels.
    pub history_bytes: usize,
}

impl Hub {
    /// A hub with `config`. Call [`Hub::maintenance`] on a runtime to expire history and
    /// drop idle channels.
    pub fn new(config: HubConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                channels: Mutex::default(),
                users: Mutex::default(),
                clients: Mutex::default(),
                history_bytes: AtomicUsize::new(0),
                shutting_down: AtomicBool::new(false),
            }),
        }
    }

    /// The hub's settings.
    pub fn config(&self) -> &HubConfig {
        &self.inner.config
    }

    /// Registers a connection. The returned [`Client`] unsubscribes everything and leaves
    /// presence when dropped.
    pub fn connect(
        &self,
        user: Option<UserId>,
        conn_info: Option<RawJson>,
    ) -> Result<Client, HubError> {
        if self.inner.shutting_down.load(Ordering::Acquire) {
            return Err(HubError::ShuttingDown);
        }
        let info = Arc::new(ClientInfo {
            client: ClientId::random(),
            user,
            conn_info,
        });
        let outbox = Arc::new(Outbox::new(self.inner.config.outbox_limits()));
        lock(&self.inner.clients).insert(info.client.clone(), outbox.clone());
        if let Some(user) = &info.user {
            lock(&self.inner.users)
                .entry(user.clone())
                .or_default()
                .push((info.client.clone(), outbox.clone()));
        }
        Ok(Client::new(self.clone(), info, outbox))
    }

    /// Publishes `data` to `channel` (created if needed) and returns its position.
    ///
    /// The publication is appended to history and queued to every current subscriber before
    /// this returns; subscribers whose queue overflows are disconnected as slow consumers.
    pub fn publish(
        &self,
        channel: &ChannelName,
        data: Payload,
        info: Option<Arc<ClientInfo>>,
    ) -> Result<StreamPosition, HubError> {
        self.with_channel(channel, |ch, state| {
            self.publish_locked(ch, state, data, info)
        })
    }

    fn publish_locked(
        &self,
        ch: &Channel,
        state: &mut ChannelState,
        data: Payload,
        info: Option<Arc<ClientInfo>>,
    ) -> StreamPosition {
        let now = Instant::now();
        state.offset += 1;
        state.last_active = now;
        let publication = Arc::new(Prepared::new(Publication {
            channel: ch.name.clone(),
            offset: state.offset,
            epoch: state.epoch.clone(),
            data,
            info,
            published_at: now,
            time_ms: crate::store::unix_ms(),
        }));
        let config = &self.inner.config;
        if config.history_size > 0 {
            let added = state.history.push(publication.clone());
            self.inner.history_bytes.fetch_add(added, Ordering::Relaxed);
            self.trim(state, now);
        }
        for s in &state.subscribers {
            s.outbox.push(Delivery::Publication(publication.clone()));
        }
        state.position()
    }

    fn trim(&self, state: &mut ChannelState, now: Instant) {
        let config = &self.inner.config;
        let total = &self.inner.history_bytes;
        let budget = config.history_max_total_bytes;
        let freed = state
            .history
            .trim(config.history_size, config.history_ttl(), now, |freed| {
                total.load(Ordering::Relaxed).saturating_sub(freed) > budget
            });
        total.fetch_sub(freed, Ordering::Relaxed);
    }

    /// Runs `f` on the channel's locked state, creating the channel if needed.
    pub(crate) fn with_channel<R>(
        &self,
        name: &ChannelName,
        f: impl FnOnce(&Channel, &mut ChannelState) -> R,
    ) -> Result<R, HubError> {
        // The sweeper may remove the channel between the map lookup and taking its lock; a
        // removed channel is never used again, so look it up anew (at most a few times: the
        // sweeper only removes channels idle for `channel_idle_seconds`).
        loop {
            let ch = self.channel(name)?;
            let mut state = ch.lock();
            if !state.removed {
                return Ok(f(&ch, &mut state));
            }
        }
    }

    fn channel(&self, name: &ChannelName) -> Result<Arc<Channel>, HubError> {
        let mut map = lock(&self.inner.channels);
        if let Some(ch) = map.get(name) {
            return Ok(ch.clone());
        }
        if self.inner.shutting_down.load(Ordering::Acquire) {
            return Err(HubError::ShuttingDown);
        }
        let max = self.inner.config.max_channels;
        if map.len() >= max {
            return Err(HubError::TooManyChannels(max));
        }
        let ch = Arc::new(Channel::new(name.clone()));
        map.insert(name.clone(), ch.clone());
        Ok(ch)
    }

    fn existing_channel(&self, name: &ChannelName) -> Option<Arc<Channel>> {
        lock(&self.inner.channels).get(name).cloned()
    }

    /// Reads what `channel` published after `since` (at most `limit` publications), or only
    /// the current position when `since` is `None`. See [`Recovery`].
    pub fn read_since(
        &self,
        channel: &ChannelName,
        since: Option<&StreamPosition>,
        limit: usize,
    ) -> Result<Recovery, HubError> {
        self.with_channel(channel, |_, state| {
            state.last_active = Instant::now();
            recover(state, since, limit, false)
        })
    }

    /// A page of `channel`'s history: `limit` publications after or before an offset
    /// (oldest first from the start when `from` is `None`).
    pub fn history(
        &self,
        channel: &ChannelName,
        from: Option<PageFrom>,
        limit: usize,
    ) -> Result<HistoryPage, HubError> {
        self.with_channel(channel, |_, state| {
            state.last_active = Instant::now();
            HistoryPage {
                publications: state
                    .history
                    .page(from.unwrap_or(PageFrom::After(0)), limit),
                position: state.position(),
            }
        })
    }

    /// Who is subscribed to `channel` (empty when the channel does not exist).
    pub fn presence(&self, channel: &ChannelName) -> Vec<Arc<ClientInfo>> {
        self.existing_channel(channel)
            .map(|ch| {
                ch.lock()
                    .subscribers
                    .iter()
                    .map(|s| s.info.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// How many connections and distinct users are subscribed to `channel`.
    pub fn presence_count(&self, channel: &ChannelName) -> PresenceCount {
        let Some(ch) = self.existing_channel(channel) else {
            return PresenceCount {
                clients: 0,
                users: 0,
            };
        };
        let state = ch.lock();
        let mut users: Vec<&UserId> = state
            .subscribers
            .iter()
            .filter_map(|s| s.info.user.as_ref())
            .collect();
        users.sort_unstable();
        users.dedup();
        PresenceCount {
            clients: state.subscribers.len(),
            users: users.len(),
        }
    }

    /// Every live channel with its subscriber count and position, sorted by name.
    pub fn channels(&self) -> Vec<ChannelSummary> {
        let channels: Vec<Arc<Channel>> = lock(&self.inner.channels).values().cloned().collect();
        let mut out: Vec<ChannelSummary> = channels
            .iter()
            .map(|ch| {
                let state = ch.lock();
                ChannelSummary {
                    channel: ch.name.clone(),
                    subscribers: state.subscribers.len(),
                    position: state.position(),
                    history_size: state.history.len(),
                    history_bytes: state.history.bytes(),
                }
            })
            .collect();
        out.sort_by(|a, b| a.channel.cmp(&b.channel));
        out
    }

    /// Sends `data` to every connection of `user`; returns how many connections it reached.
    pub fn send_to_user(&self, user: &UserId, data: Payload) -> usize {
        let message = Arc::new(Prepared::new(UserMessage { data }));
        let users = lock(&self.inner.users);
        let Some(conns) = users.get(user) else {
            return 0;
        };
        for (_, outbox) in conns {
            outbox.push(Delivery::Message(message.clone()));
        }
        conns.len()
    }

    /// Disconnects every connection of `user` with `reason`; returns how many.
    pub fn disconnect_user(&self, user: &UserId, reason: Disconnect) -> usize {
        let users = lock(&self.inner.users);
        let Some(conns) = users.get(user) else {
            return 0;
        };
        for (_, outbox) in conns {
            outbox.close(reason.clone());
        }
        conns.len()
    }

    /// Refuses new connections and channels, and closes every connection with
    /// [`Disconnect::Shutdown`].
    pub fn shutdown(&self) {
        self.inner.shutting_down.store(true, Ordering::Release);
        for outbox in lock(&self.inner.clients).values() {
            outbox.close(Disconnect::Shutdown);
        }
    }

    /// Whether [`Hub::shutdown`] was called.
    pub fn is_shutting_down(&self) -> bool {
        self.inner.shutting_down.load(Ordering::Acquire)
    }

    /// Current counts.
    pub fn stats(&self) -> HubStats {
        HubStats {
            channels: lock(&self.inner.channels).len(),
            clients: lock(&self.inner.clients).len(),
            history_bytes: self.inner.history_bytes.load(Ordering::Relaxed),
        }
    }

    /// Expires history past its TTL and drops channels idle for `channel_idle_seconds` with
    /// no subscribers and no history. Returns how many channels were dropped.
    pub fn sweep(&self) -> usize {
        let now = Instant::now();
        let idle = self.inner.config.channel_idle();
        let mut map = lock(&self.inner.channels);
        let before = map.len();
        map.retain(|_, ch| {
            let mut state = ch.lock();
            self.trim(&mut state, now);
            let drop_it = state.subscribers.is_empty()
                && state.history.is_empty()
                && now.saturating_duration_since(state.last_active) >= idle;
            state.removed = drop_it;
            !drop_it
        });
        before - map.len()
    }

    /// Runs [`Hub::sweep`] every second until every clone of the hub is dropped. Spawn it on
    /// the runtime that serves the hub.
    pub fn maintenance(&self) -> impl Future<Output = ()> + Send + 'static {
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                Hub { inner }.sweep();
            }
        }
    }

    pub(crate) fn forget_client(&self, info: &ClientInfo) {
        lock(&self.inner.clients).remove(&info.client);
        if let Some(user) = &info.user {
            let mut users = lock(&self.inner.users);
            if let Some(conns) = users.get_mut(user) {
                conns.retain(|(id, _)| id != &info.client);
                if conns.is_empty() {
                    users.remove(user);
                }
            }
        }
    }

    pub(crate) fn unsubscribe_client(&self, channel: &ChannelName, client: &ClientId) -> bool {
        let Some(ch) = self.existing_channel(channel) else {
            return false;
        };
        let mut state = ch.lock();
        state.last_active = Instant::now();
        state.remove(channel, client)
    }
}

/// What a client at `since` missed, in one critical section with whatever the caller does
/// next under the same lock. `all_or_nothing` (subscribe) reports `recovered: false` when more
/// than `limit` were missed; otherwise (poll) a full batch sets `more`.
pub(crate) fn recover(
    state: &ChannelState,
    since: Option<&StreamPosition>,
    limit: usize,
    all_or_nothing: bool,
) -> Recovery {
    let current = state.position();
    let Some(since) = since else {
        return Recovery {
            position: current,
            recovered: None,
            publications: Vec::new(),
            more: false,
        };
    };
    let lost = || Recovery {
        position: current.clone(),
        recovered: Some(false),
        publications: Vec::new(),
        more: false,
    };
    if since.epoch != state.epoch || since.offset > state.offset {
        return lost();
    }
    let missed = state.offset - since.offset;
    if all_or_nothing && missed > limit as u64 {
        return lost();
    }
    match state.history.since(since.offset, state.offset, limit) {
        Since::Incomplete => lost(),
        Since::Complete(publications) => {
            let last = publications.last().map_or(since.offset, |p| p.offset);
            Recovery {
                position: StreamPosition {
                    offset: last,
                    epoch: state.epoch.clone(),
                },
                recovered: Some(true),
                more: last < state.offset,
                publications,
            }
        }
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Hub maps are updated with single insert/remove calls that cannot leave them half-done,
    // so a poisoned lock still guards consistent data.
    m.lock().unwrap_or_else(|p| p.into_inner())
}
