//! The [`Store`] contract as executable checks. Every store implementation runs
//! [`run`] in its own tests against its real backend, so all of them behave alike.
//!
//! Available with the `conformance` feature. Failures panic with a message naming the check.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::{future::Future, sync::Arc};

use bytes::Bytes;
use tokio::time::Instant;

use super::{
    PageFrom, ReadQuery, Store, StoreError, StoredClientInfo, StreamAppend, StreamMeta, TrimCut,
    unix_ms,
};
use crate::{
    names::{ChannelName, ClientId, UserId},
    publication::{ClientInfo, Epoch, Payload, Prepared, Publication, RawJson},
};

/// Runs every check. `open_store` must return a store over the same data each time it is
/// called (after the previous one was dropped or closed); `durable` says whether data
/// survives that (false for the memory store). Each check uses its own channel names,
/// prefixed with `prefix`, so runs against a shared database do not collide.
pub async fn run<F, Fut>(open_store: F, durable: bool, prefix: &str)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Store>>,
{
    let store = open_store().await;
    new_streams_start_at_zero(&*store, prefix).await;
    appends_are_read_back_in_both_directions(&*store, prefix).await;
    appends_must_follow_the_last_offset(&*store, prefix).await;
    a_refused_batch_writes_nothing(&*store, prefix).await;
    trims_and_expiry_remove_old_publications(&*store, prefix).await;
    an_append_recreates_a_missing_stream(&*store, prefix).await;
    stats_count_streams_and_publications(&*store, prefix).await;
    store.close().await.unwrap();
    assert_eq!(
        store.ping().await,
        Err(StoreError::Closed),
        "a closed store refuses calls"
    );
    drop(store);
    if durable {
        streams_survive_a_clean_restart(&open_store, prefix).await;
        async_streams_get_a_new_epoch_after_an_unclean_stop(&open_store, prefix).await;
    }
}

fn channel(prefix: &str, name: &str) -> ChannelName {
    ChannelName::parse(&format!("{prefix}{name}")).unwrap()
}

/// A publication as the hub would make it.
pub fn publication(
    channel: &ChannelName,
    epoch: &Epoch,
    offset: u64,
    data: Payload,
) -> Arc<Prepared<Publication>> {
    Arc::new(Prepared::new(Publication {
        channel: channel.clone(),
        offset,
        epoch: epoch.clone(),
        data,
        info: None,
        published_at: Instant::now(),
        time_ms: unix_ms(),
        except: None,
        volatile: false,
    }))
}

fn json(n: u64) -> Payload {
    Payload::json(format!("{{\"n\":{n}}}")).unwrap()
}

fn append(
    channel: &ChannelName,
    epoch: &Epoch,
    offsets: std::ops::RangeInclusive<u64>,
) -> StreamAppend {
    StreamAppend {
        channel: channel.clone(),
        epoch: epoch.clone(),
        ttl_ms: 3_600_000,
        publications: offsets
            .map(|o| publication(channel, epoch, o, json(o)))
            .collect(),
    }
}

fn read(channel: &ChannelName, from: PageFrom, limit: usize) -> ReadQuery {
    ReadQuery {
        channel: channel.clone(),
        from,
        max_offset: u64::MAX,
        limit,
        now_ms: unix_ms(),
    }
}

fn offsets(ps: &[super::StoredPublication]) -> Vec<u64> {
    ps.iter().map(|p| p.offset).collect()
}

async fn new_streams_start_at_zero(store: &dyn Store, prefix: &str) {
    let ch = channel(prefix, "fresh");
    let meta = store.open(&ch, false).await.unwrap();
    assert_eq!(meta.top, 0, "a new stream starts at offset 0");
    assert!(!meta.epoch.as_str().is_empty(), "a new stream has an epoch");
    let again = store.open(&ch, false).await.unwrap();
    assert_eq!(again, meta, "opening twice gives the same stream");
    let other = store.open(&channel(prefix, "fresh2"), false).await.unwrap();
    assert_ne!(other.epoch, meta.epoch, "each stream gets its own epoch");
}

async fn appends_are_read_back_in_both_directions(store: &dyn Store, prefix: &str) {
    let ch = channel(prefix, "rw");
    let meta = store.open(&ch, false).await.unwrap();
    let info = ClientInfo {
        client: ClientId::restore("abc123"),
        user: Some(UserId::parse("alice").unwrap()),
        conn_info: Some(RawJson::new(Bytes::from_static(b"{\"device\":\"phone\"}"))),
    };
    let mut first = append(&ch, &meta.epoch, 1..=3);
    let binary = Payload::Binary(Bytes::from_static(&[0, 159, 146, 150, 255]));
    first.publications[1] = Arc::new(Prepared::new(Publication {
        info: Some(Arc::new(info.clone())),
        data: binary.clone(),
        ..(*first.publications[1]).clone()
    }));
    store.append(vec![first]).await.unwrap();
    store
        .append(vec![append(&ch, &meta.epoch, 4..=5)])
        .await
        .unwrap();
    assert_eq!(store.open(&ch, false).await.unwrap().top, 5);

    let all = store
        .read(read(&ch, PageFrom::After(0), 100))
        .await
        .unwrap();
    assert_eq!(offsets(&all), [1, 2, 3, 4, 5], "forward read, oldest first");
    assert_eq!(all[0].data, json(1), "JSON data round-trips");
    assert_eq!(all[1].data, binary, "binary data round-trips");
    assert_eq!(
        all[1].info,
        Some(StoredClientInfo::from_info(&info)),
        "publisher info round-trips"
    );
    assert_eq!(all[1].info.as_ref().unwrap().to_info().user, info.user);
    assert_eq!(all[0].info, None);
    assert!(all[0].time_ms > 0 && all[0].time_ms <= unix_ms());

    let page = store.read(read(&ch, PageFrom::After(2), 2)).await.unwrap();
    assert_eq!(offsets(&page), [3, 4], "forward page after an offset");
    let back = store.read(read(&ch, PageFrom::Before(5), 3)).await.unwrap();
    assert_eq!(offsets(&back), [4, 3, 2], "backward page, newest first");
    let capped = store
        .read(ReadQuery {
            max_offset: 3,
            ..read(&ch, PageFrom::After(0), 100)
        })
        .await
        .unwrap();
    assert_eq!(offsets(&capped), [1, 2, 3], "max_offset caps the page");
    let none = store
        .read(read(&channel(prefix, "never"), PageFrom::After(0), 10))
        .await
        .unwrap();
    assert!(none.is_empty(), "an unknown stream reads as empty");
}

async fn appends_must_follow_the_last_offset(store: &dyn Store, prefix: &str) {
    let ch = channel(prefix, "gap");
    let meta = store.open(&ch, false).await.unwrap();
    store
        .append(vec![append(&ch, &meta.epoch, 1..=2)])
        .await
        .unwrap();
    let err = store
        .append(vec![append(&ch, &meta.epoch, 4..=4)])
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Conflict {
                expected: 3,
                got: 4,
                ..
            }
        ),
        "a gap is refused: {err:?}"
    );
    let err = store
        .append(vec![append(&ch, &meta.epoch, 2..=2)])
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Conflict {
                expected: 3,
                got: 2,
                ..
            }
        ),
        "a repeated offset is refused: {err:?}"
    );
    assert_eq!(store.open(&ch, false).await.unwrap().top, 2);
}

async fn a_refused_batch_writes_nothing(store: &dyn Store, prefix: &str) {
    let good = channel(prefix, "atomic-good");
    let bad = channel(prefix, "atomic-bad");
    let g = store.open(&good, false).await.unwrap();
    let b = store.open(&bad, false).await.unwrap();
    store
        .append(vec![append(&bad, &b.epoch, 1..=1)])
        .await
        .unwrap();
    let err = store
        .append(vec![
            append(&good, &g.epoch, 1..=2),
            append(&bad, &b.epoch, 3..=3),
        ])
        .await;
    assert!(matches!(err, Err(StoreError::Conflict { .. })), "{err:?}");
    assert_eq!(
        store.open(&good, false).await.unwrap().top,
        0,
        "the valid part of a refused batch is not written"
    );
    let read_good = store
        .read(read(&good, PageFrom::After(0), 10))
        .await
        .unwrap();
    assert!(read_good.is_empty());
}

async fn trims_and_expiry_remove_old_publications(store: &dyn Store, prefix: &str) {
    let ch = channel(prefix, "trim");
    let meta = store.open(&ch, false).await.unwrap();
    store
        .append(vec![append(&ch, &meta.epoch, 1..=5)])
        .await
        .unwrap();
    let removed = store
        .trim(vec![TrimCut {
            channel: ch.clone(),
            through: 3,
        }])
        .await
        .unwrap();
    assert_eq!(removed, 3);
    let left = store.read(read(&ch, PageFrom::After(0), 10)).await.unwrap();
    assert_eq!(offsets(&left), [4, 5], "trim removes through the cut");
    assert_eq!(
        store.open(&ch, false).await.unwrap().top,
        5,
        "trimming keeps the last offset"
    );

    let short = channel(prefix, "ttl");
    let m = store.open(&short, false).await.unwrap();
    let mut a = append(&short, &m.epoch, 1..=2);
    a.ttl_ms = 1;
    store.append(vec![a]).await.unwrap();
    let later = unix_ms() + 10;
    let q = ReadQuery {
        now_ms: later,
        ..read(&short, PageFrom::After(0), 10)
    };
    assert!(
        store.read(q.clone()).await.unwrap().is_empty(),
        "expired publications are not read"
    );
    let removed = store.expire(later, u64::MAX, 1000).await.unwrap();
    assert!(removed >= 2, "expire removed {removed}");
    let kept = store.open(&short, false).await.unwrap();
    assert_eq!(
        (kept.epoch, kept.top),
        (m.epoch.clone(), 2),
        "the stream stays"
    );
    let removed = store.expire(later, 0, 1000).await.unwrap();
    assert_eq!(removed, 0);
    let reopened = store.open(&short, false).await.unwrap();
    assert_eq!(
        reopened.top, 0,
        "an empty idle stream is dropped and starts again"
    );
    assert_ne!(reopened.epoch, m.epoch, "with a new epoch");
}

async fn an_append_recreates_a_missing_stream(store: &dyn Store, prefix: &str) {
    let ch = channel(prefix, "recreate");
    let epoch = Epoch::generate();
    store
        .append(vec![append(&ch, &epoch, 8..=9)])
        .await
        .unwrap();
    let meta = store.open(&ch, false).await.unwrap();
    assert_eq!(meta.epoch, epoch, "the append's epoch is kept");
    assert_eq!(meta.top, 9);
}

async fn stats_count_streams_and_publications(store: &dyn Store, prefix: &str) {
    let ch = channel(prefix, "stats");
    let meta = store.open(&ch, false).await.unwrap();
    store
        .append(vec![append(&ch, &meta.epoch, 1..=4)])
        .await
        .unwrap();
    let one = store
        .stream_stats(vec![ch.clone(), channel(prefix, "nope")])
        .await
        .unwrap();
    assert_eq!(one.len(), 1, "unknown streams are left out");
    assert_eq!(one[0].publications, 4);
    assert_eq!(one[0].top, 4);
    assert_eq!(
        one[0].bytes,
        (1..=4).map(|n| json(n).len() as u64).sum::<u64>()
    );
    let all = store.stats(1000).await.unwrap();
    assert_eq!(all.kind, store.kind());
    assert!(all.streams >= 5 && all.publications >= 4, "{all:?}");
    assert!(all.largest.iter().any(|s| s.channel == ch));
    assert!(
        all.largest
            .windows(2)
            .all(|w| w[0].publications >= w[1].publications),
        "largest first"
    );
}

async fn streams_survive_a_clean_restart<F, Fut>(open_store: &F, prefix: &str)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Store>>,
{
    let ch = channel(prefix, "rw");
    let store = open_store().await;
    let meta = store.open(&ch, false).await.unwrap();
    assert_eq!(meta.top, 5, "offsets survive a restart");
    let all = store
        .read(read(&ch, PageFrom::After(0), 100))
        .await
        .unwrap();
    assert_eq!(
        offsets(&all),
        [1, 2, 3, 4, 5],
        "publications survive a restart"
    );

    let a = channel(prefix, "async-clean");
    let m = store.open(&a, true).await.unwrap();
    store
        .append(vec![append(&a, &m.epoch, 1..=1)])
        .await
        .unwrap();
    store.close().await.unwrap();
    drop(store);
    let store = open_store().await;
    let again = store.open(&a, true).await.unwrap();
    assert_eq!(
        again.epoch, m.epoch,
        "a clean stop keeps async streams' epoch"
    );
    assert_eq!(again.top, 1);
    store.close().await.unwrap();
}

async fn async_streams_get_a_new_epoch_after_an_unclean_stop<F, Fut>(open_store: &F, prefix: &str)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Store>>,
{
    let sync_ch = channel(prefix, "unclean-sync");
    let async_ch = channel(prefix, "unclean-async");
    let store = open_store().await;
    let s = store.open(&sync_ch, false).await.unwrap();
    let a = store.open(&async_ch, true).await.unwrap();
    store
        .append(vec![
            append(&sync_ch, &s.epoch, 1..=2),
            append(&async_ch, &a.epoch, 1..=2),
        ])
        .await
        .unwrap();
    // No close: the run ends as a crash would.
    drop(store);
    let store = open_store().await;
    let s2 = store.open(&sync_ch, false).await.unwrap();
    let kept = StreamMeta {
        epoch: s.epoch.clone(),
        top: 2,
    };
    assert_eq!(s2, kept, "sync streams keep their epoch");
    let a2 = store.open(&async_ch, true).await.unwrap();
    assert_ne!(
        a2.epoch, a.epoch,
        "async streams of a crashed run get a new epoch"
    );
    assert_eq!(a2.top, 2, "and keep their offsets");
    let a3 = store.open(&async_ch, true).await.unwrap();
    assert_eq!(a3, a2, "only once");
    store.close().await.unwrap();
}
