//! Hub behaviour with a store: durability modes, restart survival, recovery and history from
//! the store, failures and their recovery, namespaces' options, retention.
//!
//! A store that fails on demand (wrapping the memory store) produces the failures here; the
//! SQLite and PostgreSQL stores are exercised against their real backends in
//! `switchboard-store` and in the server's integration tests.

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use crate::{
    Access,
    store::{ReadQuery, StoreFuture, StoreStats, StreamAppend, StreamMeta, StreamStats, TrimCut},
    *,
};

fn ch(name: &str) -> ChannelName {
    ChannelName::parse(name).unwrap()
}

fn json(n: u64) -> Payload {
    Payload::json(format!("{{\"n\":{n}}}")).unwrap()
}

fn offsets_of(deliveries: &[Delivery]) -> Vec<u64> {
    deliveries
        .iter()
        .filter_map(|d| match d {
            Delivery::Publication(p) => Some(p.offset),
            _ => None,
        })
        .collect()
}

fn drain(client: &Client) -> Vec<u64> {
    let mut out = Vec::new();
    client.outbox().drain(&mut out);
    offsets_of(&out)
}

/// The memory store with a switch: while `down`, every call fails as a database that went
/// away would; with `lose_answers`, appends commit but report a failure (a connection lost
/// during COMMIT). Also records the most rows one trim call removed.
#[derive(Default)]
struct Flaky {
    inner: MemoryStore,
    down: AtomicBool,
    lose_answers: AtomicBool,
    largest_trim: std::sync::atomic::AtomicU64,
}

impl Flaky {
    fn check(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::Acquire) {
            Err(StoreError::Unavailable("connection refused".into()))
        } else {
            Ok(())
        }
    }
}

impl Store for Flaky {
    fn kind(&self) -> &'static str {
        "memory"
    }
    fn open(&self, channel: &ChannelName, async_writes: bool) -> StoreFuture<'_, StreamMeta> {
        match self.check() {
            Ok(()) => self.inner.open(channel, async_writes),
            Err(e) => Box::pin(async move { Err(e) }),
        }
    }
    fn append(&self, batch: Vec<StreamAppend>) -> StoreFuture<'_, ()> {
        if let Err(e) = self.check() {
            return Box::pin(async move { Err(e) });
        }
        let lose = self.lose_answers.load(Ordering::Acquire);
        let fut = self.inner.append(batch);
        Box::pin(async move {
            fut.await?;
            if lose {
                Err(StoreError::Unavailable(
                    "connection lost during commit".into(),
                ))
            } else {
                Ok(())
            }
        })
    }
    fn read(&self, query: ReadQuery) -> StoreFuture<'_, Vec<store::StoredPublication>> {
        match self.check() {
            Ok(()) => self.inner.read(query),
            Err(e) => Box::pin(async move { Err(e) }),
        }
    }
    fn trim(&self, cuts: Vec<TrimCut>) -> StoreFuture<'_, u64> {
        let fut = self.inner.trim(cuts);
        Box::pin(async move {
            let n = fut.await?;
            self.largest_trim.fetch_max(n, Ordering::Relaxed);
            Ok(n)
        })
    }
    fn expire(&self, now_ms: u64, idle: u64, max: usize) -> StoreFuture<'_, u64> {
        self.inner.expire(now_ms, idle, max)
    }
    fn stats(&self, largest: usize) -> StoreFuture<'_, StoreStats> {
        self.inner.stats(largest)
    }
    fn stream_stats(&self, channels: Vec<ChannelName>) -> StoreFuture<'_, Vec<StreamStats>> {
        self.inner.stream_stats(channels)
    }
    fn ping(&self) -> StoreFuture<'_, ()> {
        match self.check() {
            Ok(()) => self.inner.ping(),
            Err(e) => Box::pin(async move { Err(e) }),
        }
    }
    fn close(&self) -> StoreFuture<'_, ()> {
        self.inner.close()
    }
}

fn hub_on(store: Arc<dyn Store>, defaults: ChannelOptions) -> Hub {
    hub_ns(store, defaults, BTreeMap::new(), HubConfig::default())
}

fn hub_ns(
    store: Arc<dyn Store>,
    defaults: ChannelOptions,
    namespaces: BTreeMap<String, NamespaceOptions>,
    config: HubConfig,
) -> Hub {
    Hub::new(
        config,
        Namespaces::new(defaults, &namespaces).unwrap(),
        store,
    )
}

fn asynchronous() -> ChannelOptions {
    ChannelOptions {
        durability: Durability::Async,
        ..ChannelOptions::default()
    }
}

async fn stored_offsets(store: &dyn Store, channel: &ChannelName) -> Vec<u64> {
    store
        .read(ReadQuery {
            channel: channel.clone(),
            from: PageFrom::After(0),
            max_offset: u64::MAX,
            limit: 10_000,
            now_ms: store::unix_ms(),
        })
        .await
        .unwrap()
        .iter()
        .map(|p| p.offset)
        .collect()
}

async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..500 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for: {what}");
}

#[tokio::test]
async fn sync_publications_are_in_the_store_when_acknowledged() {
    let store = MemoryStore::shared();
    let hub = hub_on(store.clone(), ChannelOptions::default());
    let sub = hub.connect(None, None).unwrap();
    sub.subscribe(&ch("a"), SubscribeOptions::default())
        .await
        .unwrap();
    for i in 1..=3 {
        let pos = hub.publish(&ch("a"), json(i), None).await.unwrap();
        assert_eq!(pos.offset, i);
        assert_eq!(
            stored_offsets(&*store, &ch("a")).await,
            (1..=i).collect::<Vec<_>>(),
            "acknowledged means stored"
        );
    }
    assert_eq!(drain(&sub), [1, 2, 3]);
}

#[tokio::test]
async fn async_publications_are_delivered_at_once_and_stored_soon_after() {
    let store = MemoryStore::shared();
    let hub = hub_on(store.clone(), asynchronous());
    let sub = hub.connect(None, None).unwrap();
    sub.subscribe(&ch("a"), SubscribeOptions::default())
        .await
        .unwrap();
    let committed = hub.submit(&ch("a"), json(1), None).await.unwrap();
    assert_eq!(drain(&sub), [1], "delivered before the commit");
    assert_eq!(committed.await.unwrap().offset, 1);
    eventually("the commit", async || {
        stored_offsets(&*store, &ch("a")).await == [1]
    })
    .await;
}

#[tokio::test]
async fn a_new_hub_on_the_same_store_continues_the_stream_and_recovers_from_it() {
    let memory = Arc::new(MemoryStore::new());
    let store: Arc<dyn Store> = memory.clone();
    let epoch = {
        let hub = hub_on(store.clone(), ChannelOptions::default());
        for i in 1..=5 {
            hub.publish(&ch("a"), json(i), None).await.unwrap();
        }
        let epoch = hub
            .read_since(&ch("a"), None, 0)
            .await
            .unwrap()
            .position
            .epoch;
        hub.close(Duration::from_secs(5)).await.unwrap();
        epoch
    };
    // What starting again on the same file does for a durable store.
    memory.reopen();
    let hub = hub_on(store, ChannelOptions::default());
    let c = hub.connect(None, None).unwrap();
    let r = c
        .subscribe(
            &ch("a"),
            SubscribeOptions {
                since: Some(StreamPosition {
                    offset: 2,
                    epoch: epoch.clone(),
                }),
                join_leave: false,
                granted: false,
            },
        )
        .await
        .unwrap();
    assert_eq!(r.recovered, Some(true), "recovered from the store");
    let got: Vec<u64> = r.publications.iter().map(|p| p.offset).collect();
    assert_eq!(got, [3, 4, 5]);
    assert_eq!(r.publications[0].data, json(3));
    let next = hub.publish(&ch("a"), json(6), None).await.unwrap();
    assert_eq!(
        (next.offset, next.epoch),
        (6, epoch),
        "offsets continue in the same epoch"
    );
    assert_eq!(drain(&c), [6]);
}

#[tokio::test]
async fn history_and_recovery_reach_past_the_cache_into_the_store() {
    let store = MemoryStore::shared();
    let hub = hub_ns(
        store.clone(),
        ChannelOptions::default(),
        BTreeMap::new(),
        HubConfig {
            // A cache too small for more than a few publications.
            history_max_total_bytes: 300,
            ..HubConfig::default()
        },
    );
    let epoch = hub.publish(&ch("a"), json(1), None).await.unwrap().epoch;
    for i in 2..=20 {
        hub.publish(&ch("a"), json(i), None).await.unwrap();
    }
    let page = hub
        .history(&ch("a"), Some(PageFrom::After(0)), 5)
        .await
        .unwrap();
    let got: Vec<u64> = page.publications.iter().map(|p| p.offset).collect();
    assert_eq!(got, [1, 2, 3, 4, 5], "the oldest come from the store");
    let back = hub
        .history(&ch("a"), Some(PageFrom::Before(u64::MAX)), 15)
        .await
        .unwrap();
    let got: Vec<u64> = back.publications.iter().map(|p| p.offset).collect();
    assert_eq!(got, (6..=20).rev().collect::<Vec<_>>());
    let since = StreamPosition { offset: 1, epoch };
    let r = hub.read_since(&ch("a"), Some(&since), 100).await.unwrap();
    assert_eq!(r.recovered, Some(true));
    let got: Vec<u64> = r.publications.iter().map(|p| p.offset).collect();
    assert_eq!(
        got,
        (2..=20).collect::<Vec<_>>(),
        "store, then cache, no gap"
    );
    let r = hub.read_since(&ch("a"), Some(&since), 4).await.unwrap();
    assert!(r.more);
    assert_eq!(r.position.offset, 5);
}

#[tokio::test]
async fn retention_trims_the_store_by_count() {
    let store = MemoryStore::shared();
    let hub = hub_on(
        store.clone(),
        ChannelOptions {
            history_size: 3,
            ..ChannelOptions::default()
        },
    );
    let epoch = hub.publish(&ch("a"), json(1), None).await.unwrap().epoch;
    for i in 2..=10 {
        hub.publish(&ch("a"), json(i), None).await.unwrap();
    }
    hub.retain().await.unwrap();
    assert_eq!(stored_offsets(&*store, &ch("a")).await, [8, 9, 10]);
    let since = StreamPosition { offset: 2, epoch };
    let r = hub.read_since(&ch("a"), Some(&since), 100).await.unwrap();
    assert_eq!(
        r.recovered,
        Some(false),
        "trimmed publications cannot be recovered"
    );
}

#[tokio::test]
async fn sync_publishing_fails_cleanly_while_the_store_is_down_and_resumes_without_a_gap() {
    let store = Arc::new(Flaky::default());
    let hub = hub_on(store.clone(), ChannelOptions::default());
    let sub = hub.connect(None, None).unwrap();
    sub.subscribe(&ch("a"), SubscribeOptions::default())
        .await
        .unwrap();
    hub.publish(&ch("a"), json(1), None).await.unwrap();

    store.down.store(true, Ordering::Release);
    let err = hub.publish(&ch("a"), json(2), None).await.unwrap_err();
    assert_eq!(err.code(), "store_unavailable", "{err}");
    // Once known down, publishers are refused at once.
    let err = hub.publish(&ch("a"), json(3), None).await.unwrap_err();
    assert_eq!(err.code(), "store_unavailable");
    assert!(!hub.stats().store_available);
    assert_eq!(drain(&sub), [1], "nothing unacknowledged was delivered");

    store.down.store(false, Ordering::Release);
    eventually("the store to be seen again", async || {
        hub.stats().store_available
    })
    .await;
    let pos = hub.publish(&ch("a"), json(4), None).await.unwrap();
    assert_eq!(pos.offset, 2, "offsets continue without a gap");
    assert_eq!(drain(&sub), [2]);
    assert_eq!(stored_offsets(&store.inner, &ch("a")).await, [1, 2]);
}

#[tokio::test]
async fn a_commit_whose_answer_was_lost_is_delivered_after_all() {
    let store = Arc::new(Flaky::default());
    let hub = hub_on(store.clone(), ChannelOptions::default());
    let sub = hub.connect(None, None).unwrap();
    sub.subscribe(&ch("a"), SubscribeOptions::default())
        .await
        .unwrap();
    store.lose_answers.store(true, Ordering::Release);
    let err = hub.publish(&ch("a"), json(1), None).await.unwrap_err();
    assert_eq!(err.code(), "store_unavailable");
    store.lose_answers.store(false, Ordering::Release);
    eventually("the store to be seen again", async || {
        hub.stats().store_available
    })
    .await;
    let pos = hub.publish(&ch("a"), json(2), None).await.unwrap();
    assert_eq!(pos.offset, 2, "the landed commit keeps its offset");
    assert_eq!(
        drain(&sub),
        [1, 2],
        "subscribers get the landed publication too: no gap"
    );
}

#[tokio::test]
async fn async_publications_wait_for_the_store_and_are_bounded() {
    let store = Arc::new(Flaky::default());
    let hub = hub_ns(
        store.clone(),
        asynchronous(),
        BTreeMap::new(),
        HubConfig {
            max_pending_writes: 5,
            ..HubConfig::default()
        },
    );
    hub.publish(&ch("a"), json(1), None).await.unwrap();
    eventually("the first commit", async || {
        stored_offsets(&store.inner, &ch("a")).await == [1]
    })
    .await;
    store.down.store(true, Ordering::Release);
    for i in 2..=6 {
        assert_eq!(
            hub.publish(&ch("a"), json(i), None).await.unwrap().offset,
            i
        );
    }
    let err = hub.publish(&ch("a"), json(7), None).await.unwrap_err();
    assert_eq!(err.code(), "store_unavailable", "the backlog is bounded");
    store.down.store(false, Ordering::Release);
    eventually("the backlog to be committed", async || {
        stored_offsets(&store.inner, &ch("a")).await == [1, 2, 3, 4, 5, 6]
    })
    .await;
    assert_eq!(
        hub.publish(&ch("a"), json(7), None).await.unwrap().offset,
        7
    );
}

#[tokio::test]
async fn close_commits_async_publications_first() {
    let store = MemoryStore::shared();
    let hub = hub_on(store.clone(), asynchronous());
    for i in 1..=100 {
        hub.publish(&ch("a"), json(i), None).await.unwrap();
    }
    hub.close(Duration::from_secs(5)).await.unwrap();
    assert_eq!(hub.stats().pending_writes, 0);
    let err = hub.publish(&ch("a"), json(0), None).await.unwrap_err();
    assert_eq!(err, HubError::ShuttingDown);
}

#[tokio::test]
async fn namespaces_set_each_channels_options() {
    let store = MemoryStore::shared();
    let mut namespaces = BTreeMap::new();
    namespaces.insert(
        "ticker".to_owned(),
        NamespaceOptions {
            persist: Some(false),
            presence: Some(false),
            join_leave: Some(false),
            publish: Some(Access::NOBODY),
            read_history: Some(Access::NOBODY),
            ..NamespaceOptions::default()
        },
    );
    let hub = hub_ns(
        store.clone(),
        ChannelOptions::default(),
        namespaces,
        HubConfig::default(),
    );
    let c = hub.connect(None, None).unwrap();
    let t = ch("ticker:btc");

    let err = c
        .subscribe(
            &t,
            SubscribeOptions {
                since: None,
                join_leave: true,
                granted: false,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), "not_available");
    c.subscribe(&t, SubscribeOptions::default()).await.unwrap();
    assert_eq!(hub.presence(&t).unwrap_err().code(), "not_available");
    assert_eq!(hub.presence_count(&t).unwrap_err().code(), "not_available");
    assert_eq!(
        c.publish(&t, json(1)).await.unwrap_err().code(),
        "permission_denied"
    );
    assert_eq!(
        c.history(&t, None, 10).await.unwrap_err().code(),
        "permission_denied"
    );
    // The backend may still publish, and reads its own history.
    hub.publish(&t, json(1), None).await.unwrap();
    assert_eq!(
        hub.history(&t, None, 10).await.unwrap().publications.len(),
        1
    );
    assert!(
        stored_offsets(&*store, &t).await.is_empty(),
        "persist = false keeps the stream out of the store"
    );
    // Other channels keep the defaults.
    c.publish(&ch("chat:1"), json(1)).await.unwrap();
    assert_eq!(stored_offsets(&*store, &ch("chat:1")).await, [1]);
    assert_eq!(hub.presence(&ch("chat:1")).unwrap().len(), 0);
}

#[tokio::test(start_paused = true)]
async fn idle_stored_channels_leave_memory_and_come_back_from_the_store() {
    let store = MemoryStore::shared();
    let hub = hub_ns(
        store,
        ChannelOptions::default(),
        BTreeMap::new(),
        HubConfig {
            channel_idle_seconds: 5,
            ..HubConfig::default()
        },
    );
    let first = hub.publish(&ch("a"), json(1), None).await.unwrap();
    tokio::time::advance(Duration::from_secs(6)).await;
    hub.sweep();
    assert_eq!(hub.stats().channels, 0, "dropped from memory");
    assert_eq!(hub.stats().history_bytes, 0, "with its cache");
    let next = hub.publish(&ch("a"), json(2), None).await.unwrap();
    assert_eq!(
        (next.offset, &next.epoch),
        (2, &first.epoch),
        "the stream goes on"
    );
}

#[tokio::test]
async fn retention_removes_a_large_backlog_in_small_calls() {
    let store = Arc::new(Flaky::default());
    let hub = hub_ns(
        store.clone(),
        ChannelOptions {
            history_size: 10,
            durability: Durability::Async,
            ..ChannelOptions::default()
        },
        BTreeMap::new(),
        HubConfig {
            // Only the explicit passes below run.
            retention_interval_seconds: 3600,
            ..HubConfig::default()
        },
    );
    for i in 1..=12_000 {
        hub.publish(&ch("a"), json(i), None).await.unwrap();
    }
    eventually("every commit", async || hub.stats().pending_writes == 0).await;
    let mut removed = 0;
    for _ in 0..10 {
        removed += hub.retain().await.unwrap();
    }
    assert_eq!(removed, 11_990);
    assert_eq!(
        stored_offsets(&store.inner, &ch("a")).await,
        (11_991..=12_000).collect::<Vec<_>>()
    );
    let largest = store.largest_trim.load(Ordering::Relaxed);
    assert!(largest <= 5_000, "one trim call removed {largest} rows");
}
