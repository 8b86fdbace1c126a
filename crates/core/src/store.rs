//! [`Store`]: where channel streams are kept durably, and [`MemoryStore`], the one that keeps
//! them in this process only.
//!
//! The hub owns every live decision — it assigns offsets under the channel's lock, fans out,
//! and keeps a bounded cache of each channel's recent publications. The store keeps the
//! stream: each channel's epoch and last offset, and its publications until retention
//! removes them. The hub batches appends (one call per group commit, many channels per call)
//! and never knows which store it talks to; `switchboard-store` has the SQLite and PostgreSQL
//! ones.
//!
//! # Contract
//!
//! - [`Store::open`] returns the stream's epoch and last offset, creating the stream with a
//!   fresh epoch and offset 0 when the store has none.
//! - [`Store::append`] is all or nothing: `Ok` means every publication of the batch is
//!   durable; [`StoreError::Conflict`] means none was written. After
//!   [`StoreError::Unavailable`] or [`StoreError::Timeout`] the outcome is unknown (a
//!   connection lost during `COMMIT`): the hub asks [`Store::open`] again before writing more
//!   to those streams. Within a [`StreamAppend`] offsets are consecutive and must follow the
//!   stream's last offset; otherwise the store refuses the batch with
//!   [`StoreError::Conflict`]. The hub puts each stream at most once in a batch. A stream the
//!   store no longer has (retention dropped it) is created again by the append with the epoch
//!   it carries.
//! - Streams opened with `async_writes` may be ahead of the store (the hub fans out before
//!   the commit). The store marks them for this process run; when it finds such a mark left
//!   by a run that did not [`close`](Store::close) cleanly, [`open`](Store::open) gives the
//!   stream a new epoch, because that run may have delivered offsets the store never got.
//! - Publications past their expiry are never returned by [`Store::read`], even before
//!   [`Store::expire`] deleted them. [`Store::expire`] never drops a stream this run marked
//!   as written ahead (the append re-creating it could not mark it again).

use std::{
    collections::{HashMap, VecDeque},
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex},
    time::{SystemTime, UNIX_EPOCH},
};

use serde::Serialize;

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;

use crate::{
    history::{PageFrom, SharedPublication},
    names::{ChannelName, ClientId, UserId},
    publication::{ClientInfo, Epoch, Payload, RawJson},
};

/// The future every [`Store`] method returns.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The store cannot be reached or cannot write (database down, disk full, read-only
    /// file). The operation may be retried.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// An append did not follow the stream's last offset: another writer changed the stream.
    #[error(
        "stream {channel} was changed by another writer: expected offset {expected}, got {got}"
    )]
    Conflict {
        /// The stream.
        channel: ChannelName,
        /// The offset the store expected next.
        expected: u64,
        /// The first offset of the refused append.
        got: u64,
    },
    /// The store's data cannot be read (corrupt file, unexpected schema).
    #[error("store data is unreadable: {0}")]
    Corrupt(String),
    /// The operation did not finish in time.
    #[error("store did not answer within {0} ms")]
    Timeout(u64),
    /// [`Store::close`] was called.
    #[error("store is closed")]
    Closed,
}

/// A stream as the store knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamMeta {
    /// The stream's epoch.
    pub epoch: Epoch,
    /// The offset of its last publication (0 when none was ever appended).
    pub top: u64,
}

/// Publications to append to one stream: consecutive offsets following its last one.
#[derive(Debug, Clone)]
pub struct StreamAppend {
    /// The stream.
    pub channel: ChannelName,
    /// Its epoch (written when the append creates the stream again).
    pub epoch: Epoch,
    /// How long these publications are kept, in milliseconds after their `time_ms`.
    pub ttl_ms: u64,
    /// The publications, in offset order.
    pub publications: Vec<SharedPublication>,
}

/// One page request of [`Store::read`].
#[derive(Debug, Clone)]
pub struct ReadQuery {
    /// The stream.
    pub channel: ChannelName,
    /// Where the page starts and in which direction it goes.
    pub from: PageFrom,
    /// Only offsets up to this one (inclusive) are returned.
    pub max_offset: u64,
    /// Most publications returned.
    pub limit: usize,
    /// Publications that expired at or before this time (unix milliseconds) are skipped.
    pub now_ms: u64,
}

/// Removes a stream's publications up to and including `through`.
#[derive(Debug, Clone)]
pub struct TrimCut {
    /// The stream.
    pub channel: ChannelName,
    /// Last offset removed.
    pub through: u64,
}

/// A publication as the store returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPublication {
    /// Its offset.
    pub offset: u64,
    /// Its data.
    pub data: Payload,
    /// Who published it, when it was a client connection.
    pub info: Option<StoredClientInfo>,
    /// When the hub accepted it, in unix milliseconds.
    pub time_ms: u64,
}

/// [`ClientInfo`] in the form a store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredClientInfo {
    /// The connection id.
    pub client: String,
    /// The user id, if any.
    pub user: Option<String>,
    /// Connection info (JSON text), if any.
    pub conn_info: Option<bytes::Bytes>,
}

impl StoredClientInfo {
    /// The stored form of `info`.
    pub fn from_info(info: &ClientInfo) -> Self {
        Self {
            client: info.client.as_str().to_owned(),
            user: info.user.as_ref().map(|u| u.as_str().to_owned()),
            conn_info: info.conn_info.as_ref().map(|j| j.as_bytes().clone()),
        }
    }

    /// Back to a [`ClientInfo`]. A user id that no longer validates is left out.
    pub fn to_info(&self) -> ClientInfo {
        ClientInfo {
            client: ClientId::restore(&self.client),
            user: self.user.as_deref().and_then(|u| UserId::parse(u).ok()),
            conn_info: self.conn_info.clone().map(RawJson::new),
        }
    }
}

/// Sizes of one stream, for `/api/channels` and `switchboard store stats`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StreamStats {
    /// The stream.
    pub channel: ChannelName,
    /// Its epoch.
    pub epoch: Epoch,
    /// Its last offset.
    pub top: u64,
    /// Publications kept.
    pub publications: u64,
    /// Bytes of publication data kept.
    pub bytes: u64,
}

/// Sizes of the whole store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoreStats {
    /// `memory`, `sqlite` or `postgres`.
    pub kind: &'static str,
    /// Where the data is (a file path, a database name), without credentials.
    pub location: String,
    /// Streams known.
    pub streams: u64,
    /// Publications kept.
    pub publications: u64,
    /// Bytes of publication data kept.
    pub data_bytes: u64,
    /// Bytes the store occupies (file or relation sizes), when known.
    pub disk_bytes: Option<u64>,
    /// The largest streams by publication count.
    pub largest: Vec<StreamStats>,
}

/// Durable channel streams. See the module documentation for the contract.
pub trait Store: Send + Sync + 'static {
    /// `memory`, `sqlite` or `postgres`.
    fn kind(&self) -> &'static str;

    /// The stream's epoch and last offset, creating it when absent. `async_writes` marks the
    /// stream as written ahead of the store for this run.
    fn open(&self, channel: &ChannelName, async_writes: bool) -> StoreFuture<'_, StreamMeta>;

    /// Appends every batch entry in one transaction.
    fn append(&self, batch: Vec<StreamAppend>) -> StoreFuture<'_, ()>;

    /// A page of a stream: oldest first after an offset, or newest first before one.
    fn read(&self, query: ReadQuery) -> StoreFuture<'_, Vec<StoredPublication>>;

    /// Removes publications by offset; returns how many were removed.
    fn trim(&self, cuts: Vec<TrimCut>) -> StoreFuture<'_, u64>;

    /// Removes up to `max_rows` publications expired at `now_ms`, and streams left with no
    /// publication whose last append is older than `stream_idle_ms`. Returns the
    /// publications removed.
    fn expire(&self, now_ms: u64, stream_idle_ms: u64, max_rows: usize) -> StoreFuture<'_, u64>;

    /// Sizes of the whole store, with the `largest` biggest streams.
    fn stats(&self, largest: usize) -> StoreFuture<'_, StoreStats>;

    /// Sizes of the given streams (streams the store does not have are left out).
    fn stream_stats(&self, channels: Vec<ChannelName>) -> StoreFuture<'_, Vec<StreamStats>>;

    /// Succeeds when the store answers.
    fn ping(&self) -> StoreFuture<'_, ()>;

    /// Marks this run as finished cleanly (every write it acknowledged is durable) and
    /// releases the store. Later calls fail with [`StoreError::Closed`].
    fn close(&self) -> StoreFuture<'_, ()>;
}

/// The current time in unix milliseconds (0 if the clock is before 1970).
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Expiry time of a publication accepted at `time_ms` and kept for `ttl_ms`.
pub fn expires_at(time_ms: u64, ttl_ms: u64) -> u64 {
    time_ms.saturating_add(ttl_ms)
}

/// The stored form of a publication.
pub fn to_stored(p: &crate::publication::Publication) -> StoredPublication {
    StoredPublication {
        offset: p.offset,
        data: p.data.clone(),
        info: p.info.as_deref().map(StoredClientInfo::from_info),
        time_ms: p.time_ms,
    }
}

/// Streams kept in this process only: every run starts with new epochs. For tests and for
/// deployments that want no disk at all.
#[derive(Default)]
pub struct MemoryStore {
    streams: Mutex<HashMap<ChannelName, MemoryStream>>,
    closed: std::sync::atomic::AtomicBool,
}

struct MemoryStream {
    epoch: Epoch,
    top: u64,
    last_append_ms: u64,
    items: VecDeque<(StoredPublication, u64)>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Accepts calls again after [`Store::close`], with the data kept: what starting again on
    /// the same file does for a durable store. For tests.
    pub fn reopen(&self) {
        self.closed
            .store(false, std::sync::atomic::Ordering::Release);
    }

    /// A shareable empty store.
    pub fn shared() -> Arc<dyn Store> {
        Arc::new(Self::new())
    }

    fn streams(
        &self,
    ) -> Result<std::sync::MutexGuard<'_, HashMap<ChannelName, MemoryStream>>, StoreError> {
        if self.closed.load(std::sync::atomic::Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        Ok(self.streams.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

fn ready<'a, T: Send + 'a>(r: Result<T, StoreError>) -> StoreFuture<'a, T> {
    Box::pin(std::future::ready(r))
}

fn stream_stats(channel: &ChannelName, s: &MemoryStream) -> StreamStats {
    StreamStats {
        channel: channel.clone(),
        epoch: s.epoch.clone(),
        top: s.top,
        publications: s.items.len() as u64,
        bytes: s.items.iter().map(|(p, _)| p.data.len() as u64).sum(),
    }
}

impl Store for MemoryStore {
    fn kind(&self) -> &'static str {
        "memory"
    }

    fn open(&self, channel: &ChannelName, _async_writes: bool) -> StoreFuture<'_, StreamMeta> {
        ready(self.streams().map(|mut streams| {
            let s = streams
                .entry(channel.clone())
                .or_insert_with(|| MemoryStream {
                    epoch: Epoch::generate(),
                    top: 0,
                    last_append_ms: unix_ms(),
                    items: VecDeque::new(),
                });
            StreamMeta {
                epoch: s.epoch.clone(),
                top: s.top,
            }
        }))
    }

    fn append(&self, batch: Vec<StreamAppend>) -> StoreFuture<'_, ()> {
        ready(self.streams().and_then(|mut streams| {
            // Check every stream first: all or nothing.
            for a in &batch {
                let top = streams.get(&a.channel).map_or(0, |s| s.top);
                let first = a.publications.first().map_or(top + 1, |p| p.offset);
                let existing = streams.contains_key(&a.channel);
                if existing && first != top + 1 {
                    return Err(StoreError::Conflict {
                        channel: a.channel.clone(),
                        expected: top + 1,
                        got: first,
                    });
                }
            }
            let now = unix_ms();
            for a in batch {
                let s = streams
                    .entry(a.channel.clone())
                    .or_insert_with(|| MemoryStream {
                        epoch: a.epoch.clone(),
                        top: a
                            .publications
                            .first()
                            .map_or(0, |p| p.offset.saturating_sub(1)),
                        last_append_ms: now,
                        items: VecDeque::new(),
                    });
                for p in &a.publications {
                    s.top = p.offset;
                    s.items
                        .push_back((to_stored(p), expires_at(p.time_ms, a.ttl_ms)));
                }
                s.last_append_ms = now;
            }
            Ok(())
        }))
    }

    fn read(&self, q: ReadQuery) -> StoreFuture<'_, Vec<StoredPublication>> {
        ready(self.streams().map(|streams| {
            let Some(s) = streams.get(&q.channel) else {
                return Vec::new();
            };
            let live =
                |(p, exp): &&(StoredPublication, u64)| *exp > q.now_ms && p.offset <= q.max_offset;
            match q.from {
                PageFrom::After(after) => s
                    .items
                    .iter()
                    .filter(|(p, _)| p.offset > after)
                    .filter(live)
                    .take(q.limit)
                    .map(|(p, _)| p.clone())
                    .collect(),
                PageFrom::Before(before) => s
                    .items
                    .iter()
                    .rev()
                    .filter(|(p, _)| p.offset < before)
                    .filter(live)
                    .take(q.limit)
                    .map(|(p, _)| p.clone())
                    .collect(),
            }
        }))
    }

    fn trim(&self, cuts: Vec<TrimCut>) -> StoreFuture<'_, u64> {
        ready(self.streams().map(|mut streams| {
            let mut removed = 0;
            for cut in cuts {
                if let Some(s) = streams.get_mut(&cut.channel) {
                    while s
                        .items
                        .front()
                        .is_some_and(|(p, _)| p.offset <= cut.through)
                    {
                        s.items.pop_front();
                        removed += 1;
                    }
                }
            }
            removed
        }))
    }

    fn expire(&self, now_ms: u64, stream_idle_ms: u64, max_rows: usize) -> StoreFuture<'_, u64> {
        ready(self.streams().map(|mut streams| {
            let mut removed = 0u64;
            for s in streams.values_mut() {
                while removed < max_rows as u64
                    && s.items.front().is_some_and(|(_, exp)| *exp <= now_ms)
                {
                    s.items.pop_front();
                    removed += 1;
                }
            }
            streams.retain(|_, s| {
                !s.items.is_empty() || now_ms.saturating_sub(s.last_append_ms) < stream_idle_ms
            });
            removed
        }))
    }

    fn stats(&self, largest: usize) -> StoreFuture<'_, StoreStats> {
        ready(self.streams().map(|streams| {
            let mut all: Vec<StreamStats> =
                streams.iter().map(|(c, s)| stream_stats(c, s)).collect();
            all.sort_by(|a, b| {
                b.publications
                    .cmp(&a.publications)
                    .then(a.channel.cmp(&b.channel))
            });
            StoreStats {
                kind: "memory",
                location: "memory".to_owned(),
                streams: all.len() as u64,
                publications: all.iter().map(|s| s.publications).sum(),
                data_bytes: all.iter().map(|s| s.bytes).sum(),
                disk_bytes: None,
                largest: all.into_iter().take(largest).collect(),
            }
        }))
    }

    fn stream_stats(&self, channels: Vec<ChannelName>) -> StoreFuture<'_, Vec<StreamStats>> {
        ready(self.streams().map(|streams| {
            channels
                .iter()
                .filter_map(|c| streams.get(c).map(|s| stream_stats(c, s)))
                .collect()
        }))
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        ready(self.streams().map(|_| ()))
    }

    fn close(&self) -> StoreFuture<'_, ()> {
        self.closed
            .store(true, std::sync::atomic::Ordering::Release);
        ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_memory_store_keeps_the_contract() {
        conformance::run(|| async { MemoryStore::shared() }, false, "mem-").await;
    }
}
