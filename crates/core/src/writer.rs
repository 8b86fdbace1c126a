//! The store writer: one task that turns the publications of every stored channel into
//! group commits.
//!
//! Publishing to a stored channel assigns the offset under the channel's lock and appends the
//! publication to the channel's `unwritten` queue; the first one queues the channel here. The
//! writer takes every queued channel's publications (up to `write_batch_max`) and appends
//! them in one store call; while that commit runs, new publications pile up for the next one,
//! so commits grow with load and add no delay when idle.
//!
//! After a commit, sync publications are delivered (in offset order, the writer being the
//! only one committing) and their publishers answered; async ones were delivered when
//! published. After a failure, sync publishers get an error and the channel is reloaded from
//! the store before its next use (the commit's outcome is unknown); async publications are
//! kept and retried, bounded by `max_pending_writes`.

use std::{
    collections::VecDeque,
    sync::{
        Arc, Mutex, Weak,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use tokio::sync::{Notify, watch};

use crate::{
    channel::{Channel, ChannelState, Unwritten},
    error::HubError,
    hub::{Hub, Inner, bounded, lock},
    options::Durability,
    store::{StoreError, StreamAppend},
};

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// The writer's queue and health, shared by publishers and the writer task.
pub(crate) struct WriteQueue {
    ready: Mutex<VecDeque<Arc<Channel>>>,
    wake: Notify,
    /// Publications accepted for stored channels and not yet committed or failed.
    pub(crate) pending: AtomicUsize,
    healthy: AtomicBool,
    last_error: Mutex<Option<String>>,
    closing: AtomicBool,
    done: watch::Sender<bool>,
    pub(crate) commits: AtomicU64,
    pub(crate) committed: AtomicU64,
    pub(crate) failures: AtomicU64,
}

impl WriteQueue {
    pub(crate) fn new() -> Self {
        Self {
            ready: Mutex::default(),
            wake: Notify::new(),
            pending: AtomicUsize::new(0),
            healthy: AtomicBool::new(true),
            last_error: Mutex::default(),
            closing: AtomicBool::new(false),
            done: watch::Sender::new(false),
            commits: AtomicU64::new(0),
            committed: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        }
    }

    pub(crate) fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
    }

    pub(crate) fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    /// The error sync publishers get while the store is down.
    pub(crate) fn unavailable(&self) -> HubError {
        let last = lock(&self.last_error).clone();
        HubError::StoreUnavailable(match last {
            Some(e) => format!("the store is unavailable ({e}); nothing was published"),
            None => "the store is unavailable; nothing was published".to_owned(),
        })
    }

    /// Queues `ch` for the writer unless it already is. Called under the channel's lock.
    pub(crate) fn schedule(&self, ch: &Arc<Channel>, state: &mut ChannelState) {
        if !state.queued {
            state.queued = true;
            lock(&self.ready).push_back(ch.clone());
            self.wake.notify_one();
        }
    }

    /// Asks the writer to commit what is pending and stop.
    pub(crate) fn close(&self) {
        self.closing.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    /// Waits until the writer stopped (everything pending committed, or given up).
    pub(crate) async fn finished(&self) {
        let mut rx = self.done.subscribe();
        // The sender lives as long as `self`; an error cannot happen while we borrow it.
        let _ = rx.wait_for(|done| *done).await;
    }

    fn set_health(&self, healthy: bool, error: Option<&StoreError>) {
        let was = self.healthy.swap(healthy, Ordering::AcqRel);
        if let Some(e) = error {
            *lock(&self.last_error) = Some(e.to_string());
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
        match (was, healthy) {
            (true, false) => tracing::error!(
                error = %error.map(ToString::to_string).unwrap_or_default(),
                "store unavailable: publishing to stored channels fails until it is back"
            ),
            (false, true) => tracing::warn!("store available again"),
            _ => {}
        }
    }
}

/// One channel's share of a batch.
struct Taken {
    channel: Arc<Channel>,
    items: Vec<Unwritten>,
}

/// Runs until the hub is dropped or closed.
pub(crate) async fn run(weak: Weak<Inner>, queue: Arc<WriteQueue>) {
    let mut backoff = BACKOFF_MIN;
    let mut reload: Vec<Arc<Channel>> = Vec::new();
    loop {
        let Some(inner) = weak.upgrade() else { break };
        let hub = Hub { inner };
        if !reload.is_empty() && queue.is_healthy() {
            // Channels whose commit failed: learn the store's view before writing more.
            reload.retain(|ch| !ch.lock().removed);
            let mut still = Vec::new();
            for ch in reload.drain(..) {
                if hub.load(&ch).await.is_err() {
                    still.push(ch);
                }
            }
            reload = still;
        }
        let taken = take_batch(&hub, &queue);
        if taken.is_empty() {
            if queue.is_closing() {
                break;
            }
            let healthy = queue.is_healthy();
            let store = hub.inner.store.clone();
            let timeout = hub.inner.config.store_timeout();
            drop(hub);
            if healthy && reload.is_empty() {
                queue.wake.notified().await;
            } else {
                tokio::select! {
                    () = queue.wake.notified() => {}
                    () = tokio::time::sleep(backoff) => {}
                }
                if !queue.is_healthy() {
                    match bounded(timeout, store.ping()).await {
                        Ok(()) => {
                            queue.set_health(true, None);
                            backoff = BACKOFF_MIN;
                        }
                        _ => backoff = (backoff * 2).min(BACKOFF_MAX),
                    }
                }
            }
            continue;
        }
        let appends: Vec<StreamAppend> = taken
            .iter()
            .map(|t| StreamAppend {
                channel: t.channel.name.clone(),
                epoch: t.items[0].publication.epoch.clone(),
                ttl_ms: t.channel.options.history_ttl_seconds.saturating_mul(1000),
                publications: t.items.iter().map(|u| u.publication.clone()).collect(),
            })
            .collect();
        let result = bounded(
            hub.inner.config.store_timeout(),
            hub.inner.store.append(appends),
        )
        .await;
        match result {
            Ok(()) => {
                queue.commits.fetch_add(1, Ordering::Relaxed);
                if !queue.is_healthy() {
                    queue.set_health(true, None);
                }
                backoff = BACKOFF_MIN;
                for t in taken {
                    committed(&hub, &queue, t);
                }
            }
            Err(e) => {
                let conflict = match &e {
                    StoreError::Conflict { channel, .. } => Some(channel.clone()),
                    _ => None,
                };
                if conflict.is_none() {
                    queue.set_health(false, Some(&e));
                } else {
                    queue.failures.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(error = %e, "store refused an append: the stream was changed outside this server");
                }
                for t in taken {
                    let innocent = conflict.as_ref().is_some_and(|c| *c != t.channel.name);
                    if let Some(ch) = failed(&queue, t, &e, innocent) {
                        reload.push(ch);
                    }
                }
                if conflict.is_none() {
                    drop(hub);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }
    queue.done.send_replace(true);
}

/// Takes up to `write_batch_max` unwritten publications, each channel at most once.
fn take_batch(hub: &Hub, queue: &WriteQueue) -> Vec<Taken> {
    let max = hub.inner.config.write_batch_max.max(1);
    let mut taken: Vec<Taken> = Vec::new();
    let mut again = Vec::new();
    let mut count = 0;
    while count < max {
        let Some(ch) = lock(&queue.ready).pop_front() else {
            break;
        };
        if taken.iter().any(|t| Arc::ptr_eq(&t.channel, &ch)) {
            again.push(ch);
            continue;
        }
        let mut st = ch.lock();
        st.queued = false;
        if !st.loaded || st.removed {
            // Waiting for a reload, which queues it again.
            continue;
        }
        let n = st.unwritten.len().min(max - count);
        if n == 0 {
            continue;
        }
        let items: Vec<Unwritten> = st.unwritten.drain(..n).collect();
        st.writing += n;
        count += n;
        if !st.unwritten.is_empty() {
            st.queued = true;
            again.push(ch.clone());
        }
        drop(st);
        taken.push(Taken { channel: ch, items });
    }
    if !again.is_empty() {
        lock(&queue.ready).extend(again);
    }
    taken
}

fn committed(hub: &Hub, queue: &WriteQueue, t: Taken) {
    let n = t.items.len();
    let mut st = t.channel.lock();
    st.writing -= n;
    let mut last = 0;
    for u in t.items {
        last = u.publication.offset;
        if let Some(reply) = u.reply {
            // Sync: delivered now that it is durable.
            st.offset = u.publication.offset;
            st.deliver(&u.publication);
            hub.cache(&t.channel, &mut st, u.publication);
            // The publisher may have gone; the publication stands.
            let _ = reply.send(Ok(st.position()));
        }
    }
    st.committed = st.committed.max(last);
    drop(st);
    queue.pending.fetch_sub(n, Ordering::AcqRel);
    queue.committed.fetch_add(n as u64, Ordering::Relaxed);
    hub.trim_due(&t.channel, last);
}

/// Handles a failed commit; returns the channel when it must be reloaded.
fn failed(
    queue: &WriteQueue,
    t: Taken,
    error: &StoreError,
    innocent: bool,
) -> Option<Arc<Channel>> {
    let mut st = t.channel.lock();
    st.writing -= t.items.len();
    if innocent {
        // Another stream's conflict failed the batch: retry as it was.
        for u in t.items.into_iter().rev() {
            st.unwritten.push_front(u);
        }
        queue.schedule(&t.channel, &mut st);
        return None;
    }
    match t.channel.options.durability {
        Durability::Sync => {
            let refused = HubError::StoreUnavailable(format!(
                "the store did not commit the publication ({error}); it was not published"
            ));
            // Everything unwritten follows the failed ones: it fails too.
            let later: Vec<Unwritten> = st.unwritten.drain(..).collect();
            let n = t.items.len() + later.len();
            for u in t.items.into_iter().chain(later) {
                if let Some(reply) = u.reply {
                    let _ = reply.send(Err(refused.clone()));
                }
            }
            queue.pending.fetch_sub(n, Ordering::AcqRel);
            st.assigned = st.offset;
            // The commit may have happened (a timeout, a connection lost during COMMIT):
            // ask the store before the next publication.
            st.loaded = false;
            Some(t.channel.clone())
        }
        Durability::Async => {
            let mut items = t.items;
            if let StoreError::Conflict { expected, .. } = error {
                // The store already has what precedes `expected` (an earlier commit whose
                // answer was lost): keep only the rest. Anything else is reconciled by a reload.
                let before = items.len();
                items.retain(|u| u.publication.offset >= *expected);
                queue
                    .pending
                    .fetch_sub(before - items.len(), Ordering::AcqRel);
                if items
                    .first()
                    .is_some_and(|u| u.publication.offset != *expected)
                {
                    st.loaded = false;
                }
            }
            for u in items.into_iter().rev() {
                st.unwritten.push_front(u);
            }
            if st.loaded {
                queue.schedule(&t.channel, &mut st);
                None
            } else {
                Some(t.channel.clone())
            }
        }
    }
}
