//! [`Hub`]: channels, publications, history, recovery, presence and user-addressed delivery.
//!
//! The hub knows no network. Protocols register connections with [`Hub::connect`] and get a
//! [`Client`]; the hub pushes [`Delivery`] values into each client's [`Outbox`] and never
//! waits for a connection. Publications are wrapped once in a [`Prepared`] so each wire format
//! is encoded once, however many subscribers receive it.
//!
//! Streams of stored channels live in a [`Store`]; the hub keeps their recent publications in
//! a bounded cache and reads older ones from the store. See [`crate::writer`] for how
//! publications reach the store.
//!
//! Guarantees: within a channel, offsets are assigned under the channel's lock and delivered
//! to every subscriber in offset order with no gap (sync publications when committed, the
//! others at once); a subscription's recovery and its registration happen in one critical
//! section, so nothing falls between the recovered publications and the live ones.

use std::{
    collections::{HashMap, HashSet},
    future::Future,
    pin::Pin,
    sync::{
        Arc, Mutex, MutexGuard, Weak,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use serde::Serialize;
use tokio::{sync::oneshot, time::Instant};

use crate::{
    access::{Action, Identity, is_channel_user},
    channel::{Channel, ChannelState, Unwritten},
    client::Client,
    config::HubConfig,
    error::HubError,
    history::{PageFrom, SharedPublication, Since},
    names::{ChannelName, ClientId, UserId},
    options::{ChannelOptions, Durability, Namespaces},
    outbox::{Delivery, Disconnect, Outbox},
    publication::{
        ClientInfo, Epoch, Payload, Prepared, Publication, RawJson, StreamPosition, UserMessage,
    },
    store::{
        ReadQuery, Store, StoreError, StoreStats, StoredPublication, StreamStats, TrimCut, unix_ms,
    },
    writer::{self, WriteQueue},
};

/// Attempts at loading a channel or stitching a recovery before giving up.
const ATTEMPTS: usize = 4;
/// Most channels remembered for trimming between retention passes.
const MAX_TRIMS_DUE: usize = 100_000;
/// Publications removed per store call by retention: small transactions, so publishers
/// sharing the store's writer never wait long behind one.
const RETENTION_CHUNK: usize = 5_000;
/// Longest time one retention pass keeps calling the store; what is left waits for the next.
const RETENTION_PASS: Duration = Duration::from_millis(500);

/// The hub; cheap to clone (all clones share one state).
#[derive(Clone)]
pub struct Hub {
    pub(crate) inner: Arc<Inner>,
}

/// One connection of a user: its id and its queue.
type UserConnection = (ClientId, Arc<Outbox>);

pub(crate) struct Inner {
    pub(crate) config: HubConfig,
    pub(crate) namespaces: Namespaces,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) writes: Arc<WriteQueue>,
    channels: Mutex<HashMap<ChannelName, Arc<Channel>>>,
    users: Mutex<HashMap<UserId, Vec<UserConnection>>>,
    clients: Mutex<HashMap<ClientId, Arc<Outbox>>>,
    history_bytes: AtomicUsize,
    trims_due: Mutex<HashMap<ChannelName, Arc<Channel>>>,
    shutting_down: AtomicBool,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.writes.close();
    }
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
    /// The namespace whose options apply (absent for the defaults).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Connections subscribed.
    pub subscribers: usize,
    /// Current stream position.
    #[serde(flatten)]
    pub position: StreamPosition,
    /// Whether the stream is kept in the store.
    pub stored: bool,
    /// Publications cached in memory.
    pub cached: usize,
    /// Bytes cached in memory.
    pub cached_bytes: usize,
}

/// Counts for metrics and `/api/info`.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct HubStats {
    /// Channels alive.
    pub channels: usize,
    /// Connections registered.
    pub clients: usize,
    /// Bytes of history cached in memory across channels.
    pub history_bytes: usize,
    /// Publications waiting for the store.
    pub pending_writes: usize,
    /// Whether the last store operation succeeded.
    pub store_available: bool,
    /// Store commits since start.
    pub store_commits: u64,
    /// Publications committed since start.
    pub store_committed: u64,
    /// Failed store operations since start.
    pub store_failures: u64,
}

/// How a publication is delivered live, beyond the default of every subscriber in order
/// (neither option is kept by stores, so recovery from history ignores them).
#[derive(Debug, Clone, Default)]
pub struct Live {
    /// Connections it is not delivered to.
    pub except: Option<Arc<HashSet<ClientId>>>,
    /// Connections that cannot take it at once may skip it.
    pub volatile: bool,
}

/// Options of [`Hub::connect_with`].
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// The connection's id (a Socket.IO socket coming back with its id after a short
    /// disconnection); random when `None`. Refused while another connection has it.
    pub id: Option<ClientId>,
    /// Deliver into this outbox instead of a new one: several clients of one physical
    /// connection (Socket.IO namespaces) then share one bounded queue, one order and one
    /// wake-up. Closing it (slow consumer, disconnect) ends all of them.
    pub outbox: Option<Arc<Outbox>>,
}

/// Resolves to a publication's position once it is durable (at once for async and
/// unstored channels). Returned by [`Hub::submit`].
pub struct Committed(CommittedState);

enum CommittedState {
    Ready(Option<StreamPosition>),
    Waiting(oneshot::Receiver<Result<StreamPosition, HubError>>),
}

impl Future for Committed {
    type Output = Result<StreamPosition, HubError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.0 {
            CommittedState::Ready(pos) => Poll::Ready(pos.take().ok_or_else(|| {
                HubError::StoreUnavailable("this publication was already answered".to_owned())
            })),
            CommittedState::Waiting(rx) => Pin::new(rx).poll(cx).map(|r| {
                r.unwrap_or_else(|_| {
                    Err(HubError::StoreUnavailable(
                        "the server stopped before the store committed the publication".to_owned(),
                    ))
                })
            }),
        }
    }
}

impl Hub {
    /// A hub with `config`, channel options from `namespaces`, and streams kept in `store`.
    ///
    /// Starts the hub's background tasks (store writer, retention, idle-channel sweeper) on
    /// the current Tokio runtime, so it must be called within one (it panics otherwise, like
    /// `tokio::spawn`). They stop when every clone of the hub is dropped; call
    /// [`Hub::close`] to stop them after committing what is pending.
    pub fn new(config: HubConfig, namespaces: Namespaces, store: Arc<dyn Store>) -> Self {
        let writes = Arc::new(WriteQueue::new());
        let hub = Self {
            inner: Arc::new(Inner {
                config,
                namespaces,
                store,
                writes: writes.clone(),
                channels: Mutex::default(),
                users: Mutex::default(),
                clients: Mutex::default(),
                history_bytes: AtomicUsize::new(0),
                trims_due: Mutex::default(),
                shutting_down: AtomicBool::new(false),
            }),
        };
        let weak = Arc::downgrade(&hub.inner);
        tokio::spawn(writer::run(weak.clone(), writes));
        tokio::spawn(sweeper(weak.clone()));
        tokio::spawn(retention(weak));
        hub
    }

    /// A hub with default settings and a [`MemoryStore`](crate::MemoryStore) (for tests and
    /// examples). Must be called within a Tokio runtime.
    pub fn in_memory() -> Self {
        Self::new(
            HubConfig::default(),
            Namespaces::default(),
            crate::store::MemoryStore::shared(),
        )
    }

    /// The hub's settings.
    pub fn config(&self) -> &HubConfig {
        &self.inner.config
    }

    /// The options that apply to `channel`.
    pub fn channel_options(&self, channel: &ChannelName) -> Arc<ChannelOptions> {
        self.inner.namespaces.options(channel)
    }

    /// The store streams are kept in.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// Checks that `who` may do `action` on `channel` under the channel's rules and user
    /// limit. [`Client`] checks every request with it; a transport that reads or publishes
    /// without a registered client (a poll, a `POST`) calls it first.
    pub fn authorize(
        &self,
        who: &Identity,
        channel: &ChannelName,
        action: Action,
    ) -> Result<(), HubError> {
        let options = self.channel_options(channel);
        if options.user_limited && !is_channel_user(channel, who.user.as_ref()) {
            return Err(HubError::PermissionDenied(
                "this channel belongs to other users",
            ));
        }
        let rule = match action {
            Action::Subscribe => &options.subscribe,
            Action::Publish => &options.publish,
            Action::ReadHistory => &options.read_history,
            Action::ReadPresence => &options.read_presence,
        };
        if rule.allows(who) {
            Ok(())
        } else {
            Err(HubError::PermissionDenied(action.denied()))
        }
    }

    /// Registers a connection. The returned [`Client`] unsubscribes everything and leaves
    /// presence when dropped.
    pub fn connect(
        &self,
        user: Option<UserId>,
        conn_info: Option<RawJson>,
    ) -> Result<Client, HubError> {
        let identity = Identity { user, claims: None };
        self.connect_as(identity, conn_info)
    }

    /// Registers a connection of `identity`, whose subscribe, publish, history and presence
    /// requests are checked against the channels' rules (see [`Access`](crate::Access)).
    pub fn connect_as(
        &self,
        identity: Identity,
        conn_info: Option<RawJson>,
    ) -> Result<Client, HubError> {
        self.connect_with(identity, conn_info, ConnectOptions::default())
    }

    /// A new outbox with the hub's bounds, for [`ConnectOptions::outbox`].
    pub fn new_outbox(&self) -> Arc<Outbox> {
        Arc::new(Outbox::new(self.inner.config.outbox_limits()))
    }

    /// [`Hub::connect_as`] with a chosen id or a shared outbox (see [`ConnectOptions`]).
    pub fn connect_with(
        &self,
        identity: Identity,
        conn_info: Option<RawJson>,
        options: ConnectOptions,
    ) -> Result<Client, HubError> {
        if self.inner.shutting_down.load(Ordering::Acquire) {
            return Err(HubError::ShuttingDown);
        }
        let info = Arc::new(ClientInfo {
            client: options.id.unwrap_or_else(ClientId::random),
            user: identity.user.clone(),
            conn_info,
        });
        let outbox = options.outbox.unwrap_or_else(|| self.new_outbox());
        {
            let mut clients = lock(&self.inner.clients);
            if clients.contains_key(&info.client) {
                return Err(HubError::NotAvailable(
                    "a connection with this id is registered",
                ));
            }
            clients.insert(info.client.clone(), outbox.clone());
        }

        if let Some(user) = &info.user {
            lock(&self.inner.users)
                .entry(user.clone())
                .or_default()
                .push((info.client.clone(), outbox.clone()));
        }
        Ok(Client::new(self.clone(), info, identity, outbox))
    }

    /// Publishes `data` to `channel` (created if needed) and returns its position once the
    /// channel's durability is met: committed by the store for `sync` channels, accepted for
    /// `async` ones and channels that are not stored.
    pub async fn publish(
        &self,
        channel: &ChannelName,
        data: Payload,
        info: Option<Arc<ClientInfo>>,
    ) -> Result<StreamPosition, HubError> {
        self.submit(channel, data, info).await?.await
    }

    /// Accepts a publication: assigns its offset (so publications submitted one after the
    /// other keep their order) and returns a future for its commit. Lets a connection keep
    /// reading while its publications are being committed.
    pub async fn submit(
        &self,
        channel: &ChannelName,
        data: Payload,
        info: Option<Arc<ClientInfo>>,
    ) -> Result<Committed, HubError> {
        self.submit_except(channel, data, info, None).await
    }

    /// [`Hub::submit`], delivering live to every subscriber except the connections in
    /// `except` (a Socket.IO broadcast leaving out its sender or some rooms' members).
    pub async fn submit_except(
        &self,
        channel: &ChannelName,
        data: Payload,
        info: Option<Arc<ClientInfo>>,
        except: Option<Arc<HashSet<ClientId>>>,
    ) -> Result<Committed, HubError> {
        let live = Live {
            except,
            volatile: false,
        };
        self.submit_live(channel, data, info, live).await
    }

    /// [`Hub::submit`] with [`Live`] delivery options.
    pub async fn submit_live(
        &self,
        channel: &ChannelName,
        data: Payload,
        info: Option<Arc<ClientInfo>>,
        live: Live,
    ) -> Result<Committed, HubError> {
        self.with_channel(channel, |ch, st| self.accept(ch, st, data, info, live))
            .await?
    }

    fn accept(
        &self,
        ch: &Arc<Channel>,
        st: &mut ChannelState,
        data: Payload,
        info: Option<Arc<ClientInfo>>,
        live: Live,
    ) -> Result<Committed, HubError> {
        let options = &ch.options;
        let queue = &self.inner.writes;
        if options.stored() {
            if queue.is_closing() {
                return Err(HubError::ShuttingDown);
            }
            let pending = queue.pending.load(Ordering::Acquire);
            if pending >= self.inner.config.max_pending_writes {
                return Err(HubError::StoreUnavailable(format!(
                    "{pending} publications are waiting for the store; nothing was published"
                )));
            }
            if options.durability == Durability::Sync && !queue.is_healthy() {
                return Err(queue.unavailable());
            }
        }
        let now = Instant::now();
        st.last_active = now;
        st.assigned += 1;
        let publication = Arc::new(Prepared::new(Publication {
            channel: ch.name.clone(),
            offset: st.assigned,
            epoch: st.epoch.clone(),
            data,
            info,
            published_at: now,
            time_ms: unix_ms(),
            except: live.except,
            volatile: live.volatile,
        }));

        if options.stored() && options.durability == Durability::Sync {
            let (tx, rx) = oneshot::channel();
            st.unwritten.push_back(Unwritten {
                publication,
                reply: Some(tx),
            });
            queue.pending.fetch_add(1, Ordering::AcqRel);
            queue.schedule(ch, st);
            return Ok(Committed(CommittedState::Waiting(rx)));
        }
        st.offset = st.assigned;
        st.deliver(&publication);
        if options.stored() {
            st.unwritten.push_back(Unwritten {
                publication: publication.clone(),
                reply: None,
            });
            queue.pending.fetch_add(1, Ordering::AcqRel);
            queue.schedule(ch, st);
        }
        self.cache(ch, st, publication);
        Ok(Committed(CommittedState::Ready(Some(st.position()))))
    }

    /// Adds a delivered publication to the channel's history cache and trims the cache.
    pub(crate) fn cache(
        &self,
        ch: &Channel,
        st: &mut ChannelState,
        publication: SharedPublication,
    ) {
        if ch.options.history_size == 0 {
            return;
        }
        let added = st.history.push(publication);
        self.inner.history_bytes.fetch_add(added, Ordering::Relaxed);
        self.trim_cache(ch, st, Instant::now());
    }

    fn trim_cache(&self, ch: &Channel, st: &mut ChannelState, now: Instant) {
        let total = &self.inner.history_bytes;
        let budget = self.inner.config.history_max_total_bytes;
        let freed = st.history.trim(
            ch.options.history_size,
            ch.options.history_ttl(),
            now,
            |freed| total.load(Ordering::Relaxed).saturating_sub(freed) > budget,
        );
        total.fetch_sub(freed, Ordering::Relaxed);
    }

    /// Remembers that the stored stream may be trimmed by count after `last` was committed.
    pub(crate) fn trim_due(&self, ch: &Arc<Channel>, last: u64) {
        if last <= ch.options.history_size as u64 {
            return;
        }
        let mut due = lock(&self.inner.trims_due);
        if due.len() < MAX_TRIMS_DUE || due.contains_key(&ch.name) {
            due.insert(ch.name.clone(), ch.clone());
        }
    }

    /// Runs `f` on the channel's locked state once the channel is loaded from the store,
    /// creating it if needed.
    pub(crate) async fn with_channel<R>(
        &self,
        name: &ChannelName,
        f: impl FnOnce(&Arc<Channel>, &mut ChannelState) -> R,
    ) -> Result<R, HubError> {
        let mut f = Some(f);
        for _ in 0..ATTEMPTS {
            let ch = self.channel(name)?;
            {
                let mut st = ch.lock();
                // The sweeper may have removed the channel between the map lookup and the
                // lock; a removed channel is never used again, so look it up anew.
                if st.removed {
                    continue;
                }
                if st.loaded
                    && let Some(f) = f.take()
                {
                    return Ok(f(&ch, &mut st));
                }
            }
            self.load(&ch).await?;
        }
        Err(HubError::StoreUnavailable(format!(
            "channel {name} could not be loaded from the store; try again"
        )))
    }

    /// Loads the channel's stream position from the store (first use, or after a failed
    /// commit left it unknown). A reload delivers commits that landed although their
    /// publishers were told they failed, so subscribers see no gap.
    pub(crate) async fn load(&self, ch: &Arc<Channel>) -> Result<(), HubError> {
        let _serial = ch.load_lock.lock().await;
        let (ever, epoch, offset) = {
            let st = ch.lock();
            if st.loaded || st.removed {
                return Ok(());
            }
            (st.ever_loaded, st.epoch.clone(), st.offset)
        };
        let async_writes = ch.options.durability == Durability::Async;
        let meta = self
            .store_call(self.inner.store.open(&ch.name, async_writes))
            .await?;
        let mut landed = Vec::new();
        if ever && meta.epoch == epoch && meta.top > offset {
            let rows = self
                .store_call(
                    self.inner.store.read(ReadQuery {
                        channel: ch.name.clone(),
                        from: PageFrom::After(offset),
                        max_offset: meta.top,
                        limit: usize::try_from(meta.top - offset)
                            .unwrap_or(usize::MAX)
                            .min(10_000),
                        now_ms: 0,
                    }),
                )
                .await?;
            landed = rows;
        }
        let mut st = ch.lock();
        if st.loaded || st.removed {
            return Ok(());
        }
        if ever && meta.epoch == st.epoch && meta.top >= st.offset {
            for row in landed {
                if row.offset == st.offset + 1 {
                    let p = restore(&ch.name, &st.epoch, row);
                    st.offset = p.offset;
                    st.deliver(&p);
                    self.cache(ch, &mut st, p);
                }
            }
            if st.offset != meta.top {
                tracing::warn!(channel = %ch.name, from = st.offset, to = meta.top, "committed publications could not be delivered after a store failure");
            }
        } else if ever {
            tracing::warn!(channel = %ch.name, "the stored stream changed outside this server; following the store");
            let freed = st.history.clear();
            self.inner.history_bytes.fetch_sub(freed, Ordering::Relaxed);
            st.epoch = meta.epoch.clone();
        } else {
            st.epoch = meta.epoch.clone();
        }
        st.offset = meta.top;
        st.assigned = meta.top;
        st.committed = meta.top;
        // What an earlier run left past `history_size` is out of reach (see `history_floor`)
        // and expires with its TTL; trimming by count starts from here.
        st.trimmed = st
            .trimmed
            .max(meta.top.saturating_sub(ch.options.history_size as u64));
        // Async publications kept for retry follow the stored ones, or cannot be written.
        if let Some(first) = st.unwritten.front().map(|u| u.publication.offset) {
            if first == meta.top + 1 && st.unwritten.iter().all(|u| u.publication.epoch == st.epoch)
            {
                let last = st
                    .unwritten
                    .back()
                    .map_or(meta.top, |u| u.publication.offset);
                st.offset = last;
                st.assigned = last;
            } else {
                let dropped = st.unwritten.len();
                st.unwritten.clear();
                self.inner
                    .writes
                    .pending
                    .fetch_sub(dropped, Ordering::AcqRel);
                tracing::error!(channel = %ch.name, dropped, "async publications no longer fit the stored stream and were dropped");
            }
        }
        st.loaded = true;
        st.ever_loaded = true;
        if !st.unwritten.is_empty() {
            self.inner.writes.schedule(ch, &mut st);
        }
        Ok(())
    }

    /// Runs a store call with the hub's timeout, turning failures into [`HubError`].
    async fn store_call<T>(
        &self,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, HubError> {
        bounded(self.inner.config.store_timeout(), call)
            .await
            .map_err(|e| {
                self.inner.writes.failures.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(error = %e, "store call failed");
                HubError::StoreUnavailable(format!("the store is unavailable: {e}"))
            })
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
        let ch = Arc::new(Channel::new(
            name.clone(),
            self.inner.namespaces.options(name),
        ));
        map.insert(name.clone(), ch.clone());
        Ok(ch)
    }

    fn existing_channel(&self, name: &ChannelName) -> Option<Arc<Channel>> {
        lock(&self.inner.channels).get(name).cloned()
    }

    /// Reads what `channel` published after `since` (at most `limit` publications), or only
    /// the current position when `since` is `None`. See [`Recovery`].
    pub async fn read_since(
        &self,
        channel: &ChannelName,
        since: Option<&StreamPosition>,
        limit: usize,
    ) -> Result<Recovery, HubError> {
        self.recover_then(channel, since, limit, false, |_, _, _| {})
            .await
    }

    /// What a client at `since` missed, then `then` under the same lock (subscribe registers
    /// there, so nothing falls between). `all_or_nothing` (subscribe) reports
    /// `recovered: false` when more than `limit` were missed; otherwise a full batch sets
    /// `more`. Missed publications come from the cache, or from the store when the cache no
    /// longer has them.
    pub(crate) async fn recover_then(
        &self,
        name: &ChannelName,
        since: Option<&StreamPosition>,
        limit: usize,
        all_or_nothing: bool,
        then: impl FnOnce(&Arc<Channel>, &mut ChannelState, &Recovery),
    ) -> Result<Recovery, HubError> {
        let mut then = Some(then);
        let mut finish = |ch: &Arc<Channel>, st: &mut ChannelState, rec: Recovery| {
            if let Some(t) = then.take() {
                t(ch, st, &rec);
            }
            rec
        };
        for _ in 0..ATTEMPTS {
            enum Step {
                Done(Recovery),
                Read { upto: u64, epoch: Epoch },
            }
            let step = self
                .with_channel(name, |ch, st| {
                    st.last_active = Instant::now();
                    match plan(st, since, limit, all_or_nothing, &ch.options) {
                        Ok(rec) => Step::Done(finish(ch, st, rec)),
                        Err(upto) => Step::Read {
                            upto,
                            epoch: st.epoch.clone(),
                        },
                    }
                })
                .await?;
            let (upto, epoch) = match step {
                Step::Done(rec) => return Ok(rec),
                Step::Read { upto, epoch } => (upto, epoch),
            };
            // `plan` only asks for the store with a position in the current epoch.
            let after = since.map_or(0, |s| s.offset);
            let want = usize::try_from(upto - after)
                .unwrap_or(usize::MAX)
                .min(limit);
            let rows = self
                .store_call(self.inner.store.read(ReadQuery {
                    channel: name.clone(),
                    from: PageFrom::After(after),
                    max_offset: upto,
                    limit: want,
                    now_ms: unix_ms(),
                }))
                .await?;
            let stitched = self
                .with_channel(name, |ch, st| {
                    if st.epoch != epoch {
                        return None;
                    }
                    let publications: Vec<SharedPublication> =
                        rows.into_iter().map(|r| restore(name, &epoch, r)).collect();
                    stitch(st, after, publications, limit, all_or_nothing)
                        .map(|rec| finish(ch, st, rec))
                })
                .await?;
            if let Some(rec) = stitched {
                return Ok(rec);
            }
        }
        // The stream kept moving under us; tell the client to reload rather than loop.
        self.with_channel(name, |ch, st| {
            let rec = lost(st.position());
            finish(ch, st, rec)
        })
        .await
    }

    /// A page of `channel`'s history: `limit` publications after or before an offset
    /// (oldest first from the start when `from` is `None`). Served from the cache when it
    /// holds the page, from the store otherwise.
    pub async fn history(
        &self,
        channel: &ChannelName,
        from: Option<PageFrom>,
        limit: usize,
    ) -> Result<HistoryPage, HubError> {
        let requested = from.unwrap_or(PageFrom::After(0));
        let (cached, covered, position, floor, from) = self
            .with_channel(channel, |ch, st| {
                st.last_active = Instant::now();
                let floor = history_floor(st, &ch.options);
                let from = match requested {
                    PageFrom::After(o) => PageFrom::After(o.max(floor)),
                    before => before,
                };
                let page = st.history.page(from, limit);
                let covered = !ch.options.stored()
                    || match from {
                        PageFrom::After(o) => {
                            st.offset <= o || st.history.first_offset().is_some_and(|f| f <= o + 1)
                        }
                        PageFrom::Before(_) => page.len() >= limit,
                    };
                (page, covered, st.position(), floor, from)
            })
            .await?;
        if covered {
            return Ok(HistoryPage {
                publications: cached,
                position,
            });
        }
        let rows = self
            .store_call(self.inner.store.read(ReadQuery {
                channel: channel.clone(),
                from,
                max_offset: position.offset,
                limit,
                now_ms: unix_ms(),
            }))
            .await?;
        let mut publications: Vec<SharedPublication> = rows
            .into_iter()
            .map(|r| restore(channel, &position.epoch, r))
            .collect();
        // Async publications may be cached and not yet committed: merge them in.
        for p in cached {
            if !publications.iter().any(|q| q.offset == p.offset) {
                publications.push(p);
            }
        }
        publications.retain(|p| p.offset > floor);
        match from {
            PageFrom::After(_) => publications.sort_by_key(|p| p.offset),
            PageFrom::Before(_) => publications.sort_by_key(|p| std::cmp::Reverse(p.offset)),
        }
        publications.truncate(limit);
        Ok(HistoryPage {
            publications,
            position,
        })
    }

    /// Who is subscribed to `channel` (empty when the channel does not exist).
    pub fn presence(&self, channel: &ChannelName) -> Result<Vec<Arc<ClientInfo>>, HubError> {
        self.check_presence(channel)?;
        Ok(self
            .existing_channel(channel)
            .map(|ch| {
                ch.lock()
                    .subscribers
                    .iter()
                    .map(|s| s.info.clone())
                    .collect()
            })
            .unwrap_or_default())
    }

    fn check_presence(&self, channel: &ChannelName) -> Result<(), HubError> {
        if self.channel_options(channel).presence {
            Ok(())
        } else {
            Err(HubError::NotAvailable("presence is off for this channel"))
        }
    }

    /// How many connections and distinct users are subscribed to `channel`.
    pub fn presence_count(&self, channel: &ChannelName) -> Result<PresenceCount, HubError> {
        self.check_presence(channel)?;
        let Some(ch) = self.existing_channel(channel) else {
            return Ok(PresenceCount {
                clients: 0,
                users: 0,
            });
        };
        let state = ch.lock();
        let mut users: Vec<&UserId> = state
            .subscribers
            .iter()
            .filter_map(|s| s.info.user.as_ref())
            .collect();
        users.sort_unstable();
        users.dedup();
        Ok(PresenceCount {
            clients: state.subscribers.len(),
            users: users.len(),
        })
    }

    /// Every channel in memory with its subscriber count and position, sorted by name.
    pub fn channels(&self) -> Vec<ChannelSummary> {
        let channels: Vec<Arc<Channel>> = lock(&self.inner.channels).values().cloned().collect();
        let mut out: Vec<ChannelSummary> = channels
            .iter()
            .map(|ch| {
                let state = ch.lock();
                ChannelSummary {
                    channel: ch.name.clone(),
                    namespace: self
                        .inner
                        .namespaces
                        .namespace_of(&ch.name)
                        .map(str::to_owned),
                    subscribers: state.subscribers.len(),
                    position: state.position(),
                    stored: ch.options.stored(),
                    cached: state.history.len(),
                    cached_bytes: state.history.bytes(),
                }
            })
            .collect();
        out.sort_by(|a, b| a.channel.cmp(&b.channel));
        out
    }

    /// Sizes of the given channels' stored streams.
    pub async fn stream_stats(
        &self,
        channels: Vec<ChannelName>,
    ) -> Result<Vec<StreamStats>, HubError> {
        self.store_call(self.inner.store.stream_stats(channels))
            .await
    }

    /// Sizes of the whole store, with its `largest` streams.
    pub async fn store_stats(&self, largest: usize) -> Result<StoreStats, HubError> {
        self.store_call(self.inner.store.stats(largest)).await
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
    /// [`Disconnect::Shutdown`]. Publications already accepted are still committed; see
    /// [`Hub::close`].
    pub fn shutdown(&self) {
        self.inner.shutting_down.store(true, Ordering::Release);
        for outbox in lock(&self.inner.clients).values() {
            outbox.close(Disconnect::Shutdown);
        }
    }

    /// Shuts down (see [`Hub::shutdown`]), commits every pending publication and closes the
    /// store cleanly, waiting at most `within`. When the store could not take everything in
    /// time, it is left as after a crash: streams written asynchronously get a new epoch on
    /// the next start, so their clients are told `recovered: false`.
    pub async fn close(&self, within: Duration) -> Result<(), HubError> {
        self.shutdown();
        let queue = &self.inner.writes;
        queue.close();
        let flushed = tokio::time::timeout(within, queue.finished()).await.is_ok()
            && queue.pending.load(Ordering::Acquire) == 0;
        if !flushed {
            return Err(HubError::StoreUnavailable(format!(
                "{} publications were not committed before shutdown",
                queue.pending.load(Ordering::Acquire)
            )));
        }
        self.store_call(self.inner.store.close()).await
    }

    /// Whether [`Hub::shutdown`] was called.
    pub fn is_shutting_down(&self) -> bool {
        self.inner.shutting_down.load(Ordering::Acquire)
    }

    /// Current counts.
    pub fn stats(&self) -> HubStats {
        let w = &self.inner.writes;
        HubStats {
            channels: lock(&self.inner.channels).len(),
            clients: lock(&self.inner.clients).len(),
            history_bytes: self.inner.history_bytes.load(Ordering::Relaxed),
            pending_writes: w.pending.load(Ordering::Relaxed),
            store_available: w.is_healthy(),
            store_commits: w.commits.load(Ordering::Relaxed),
            store_committed: w.committed.load(Ordering::Relaxed),
            store_failures: w.failures.load(Ordering::Relaxed),
        }
    }

    /// Expires cached history past its TTL and drops idle channels from memory. Returns how
    /// many channels were dropped.
    pub fn sweep(&self) -> usize {
        let now = Instant::now();
        let idle = self.inner.config.channel_idle();
        let mut map = lock(&self.inner.channels);
        let before = map.len();
        map.retain(|_, ch| {
            let mut state = ch.lock();
            self.trim_cache(ch, &mut state, now);
            let drop_it = state.is_quiet()
                && (ch.options.stored() || state.history.is_empty())
                && now.saturating_duration_since(state.last_active) >= idle;
            if drop_it {
                let freed = state.history.clear();
                self.inner.history_bytes.fetch_sub(freed, Ordering::Relaxed);
            }
            state.removed = drop_it;
            !drop_it
        });
        before - map.len()
    }

    /// One retention pass over the store: trims streams by count, then removes expired
    /// publications, in calls of at most a few thousand rows and for at most half a second
    /// (what is left waits for the next pass). Returns the publications removed.
    pub async fn retain(&self) -> Result<u64, HubError> {
        let deadline = Instant::now() + RETENTION_PASS;
        let due: Vec<Arc<Channel>> = std::mem::take(&mut *lock(&self.inner.trims_due))
            .into_values()
            .collect();
        // (channel, trimmed through, trim through)
        let mut pending: Vec<(Arc<Channel>, u64, u64)> = due
            .into_iter()
            .filter_map(|ch| {
                let st = ch.lock();
                let target = st.committed.saturating_sub(ch.options.history_size as u64);
                let done = st.trimmed;
                drop(st);
                (target > done).then_some((ch, done, target))
            })
            .collect();
        let mut removed = 0;
        while !pending.is_empty() && Instant::now() < deadline {
            let mut cuts = Vec::new();
            let mut rows = 0u64;
            for (ch, done, target) in &mut pending {
                let room = RETENTION_CHUNK as u64 - rows;
                if room == 0 {
                    break;
                }
                let through = (*target).min(*done + room);
                rows += through - *done;
                cuts.push(TrimCut {
                    channel: ch.name.clone(),
                    through,
                });
                *done = through;
            }
            removed += self.store_call(self.inner.store.trim(cuts)).await?;
            pending.retain(|(ch, done, target)| {
                ch.lock().trimmed = *done;
                done < target
            });
        }
        if !pending.is_empty() {
            let mut due = lock(&self.inner.trims_due);
            for (ch, _, _) in pending {
                due.insert(ch.name.clone(), ch);
            }
        }
        let idle_ms = self.inner.config.stream_idle_seconds.saturating_mul(1000);
        while Instant::now() < deadline {
            let n = self
                .store_call(self.inner.store.expire(unix_ms(), idle_ms, RETENTION_CHUNK))
                .await?;
            removed += n;
            if n < RETENTION_CHUNK as u64 {
                break;
            }
        }
        Ok(removed)
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

/// Drops idle channels every second until the hub is gone.
async fn sweeper(weak: Weak<Inner>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(inner) = weak.upgrade() else { return };
        if inner.writes.is_closing() {
            return;
        }
        Hub { inner }.sweep();
    }
}

/// Runs [`Hub::retain`] every `retention_interval_seconds` until the hub is gone.
async fn retention(weak: Weak<Inner>) {
    let every = match weak.upgrade() {
        Some(inner) => Duration::from_secs(inner.config.retention_interval_seconds.max(1)),
        None => return,
    };
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(inner) = weak.upgrade() else { return };
        if inner.writes.is_closing() {
            return;
        }
        let hub = Hub { inner };
        match hub.retain().await {
            Ok(n) if n > 0 => tracing::debug!(removed = n, "retention pass"),
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "retention pass failed; retrying later"),
        }
    }
}

fn lost(position: StreamPosition) -> Recovery {
    Recovery {
        position,
        recovered: Some(false),
        publications: Vec::new(),
        more: false,
    }
}

/// What the cache alone can answer; `Err(upto)` when the store must be read up to `upto`.
fn plan(
    st: &ChannelState,
    since: Option<&StreamPosition>,
    limit: usize,
    all_or_nothing: bool,
    options: &ChannelOptions,
) -> Result<Recovery, u64> {
    let current = st.position();
    let Some(since) = since else {
        return Ok(Recovery {
            position: current,
            recovered: None,
            publications: Vec::new(),
            more: false,
        });
    };
    if since.epoch != st.epoch || since.offset > st.offset {
        return Ok(lost(current));
    }
    // History holds the last `history_size` publications, whatever retention has not yet
    // removed from the store: recovery promises exactly that.
    if since.offset < history_floor(st, options) {
        return Ok(lost(current));
    }
    let missed = st.offset - since.offset;
    if all_or_nothing && missed > limit as u64 {
        return Ok(lost(current));
    }
    match st.history.since(since.offset, st.offset, limit) {
        Since::Complete(publications) => Ok(found(st, since.offset, publications)),
        Since::Incomplete if options.stored() => Err(st.offset),
        Since::Incomplete => Ok(lost(current)),
    }
}

/// Offsets at or below this one are out of history (by count) even if still stored.
fn history_floor(st: &ChannelState, options: &ChannelOptions) -> u64 {
    st.offset.saturating_sub(options.history_size as u64)
}

fn found(st: &ChannelState, after: u64, publications: Vec<SharedPublication>) -> Recovery {
    let last = publications.last().map_or(after, |p| p.offset);
    Recovery {
        position: StreamPosition {
            offset: last,
            epoch: st.epoch.clone(),
        },
        recovered: Some(true),
        more: last < st.offset,
        publications,
    }
}

/// Joins publications read from the store (after `after`) with the cache; `None` when the
/// cache no longer reaches back to where the store read ended (read again).
fn stitch(
    st: &ChannelState,
    after: u64,
    mut publications: Vec<SharedPublication>,
    limit: usize,
    all_or_nothing: bool,
) -> Option<Recovery> {
    let contiguous = publications
        .iter()
        .enumerate()
        .all(|(i, p)| p.offset == after + 1 + i as u64);
    if !contiguous
        || (publications.is_empty()
            && st.offset > after
            && st.history.first_offset() != Some(after + 1))
    {
        // The store no longer has the first missed publications (trimmed or expired).
        return Some(lost(st.position()));
    }
    if all_or_nothing && st.offset - after > limit as u64 {
        return Some(lost(st.position()));
    }
    let last = publications.last().map_or(after, |p| p.offset);
    if publications.len() < limit && last < st.offset {
        match st
            .history
            .since(last, st.offset, limit - publications.len())
        {
            Since::Complete(more) => publications.extend(more),
            Since::Incomplete => return None,
        }
    }
    Some(found(st, after, publications))
}

/// A stored publication as the hub delivers it.
fn restore(channel: &ChannelName, epoch: &Epoch, row: StoredPublication) -> SharedPublication {
    let age = Duration::from_millis(unix_ms().saturating_sub(row.time_ms));
    let now = Instant::now();
    Arc::new(Prepared::new(Publication {
        channel: channel.clone(),
        offset: row.offset,
        epoch: epoch.clone(),
        data: row.data,
        info: row.info.map(|i| Arc::new(i.to_info())),
        published_at: now.checked_sub(age).unwrap_or(now),
        time_ms: row.time_ms,
        except: None,
        volatile: false,
    }))
}

/// Runs a store call for at most `timeout`, turning the deadline into [`StoreError::Timeout`].
pub(crate) async fn bounded<T>(
    timeout: Duration,
    call: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(timeout, call).await {
        Ok(r) => r,
        Err(_) => Err(StoreError::Timeout(
            u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
        )),
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Hub maps are updated with single insert/remove calls that cannot leave them half-done,
    // so a poisoned lock still guards consistent data.
    m.lock().unwrap_or_else(|p| p.into_inner())
}
