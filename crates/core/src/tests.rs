//! Hub behaviour tests: ordering, recovery, presence, bounds, user delivery, idle channels.

use std::{sync::Arc, time::Duration};

use crate::*;

fn ch(name: &str) -> ChannelName {
    ChannelName::parse(name).unwrap()
}

fn hub_with(config: HubConfig) -> Hub {
    Hub::new(config, Namespaces::default(), MemoryStore::shared())
}

fn hub_opts(config: HubConfig, defaults: ChannelOptions) -> Hub {
    let ns = Namespaces::new(defaults, &Default::default()).unwrap();
    Hub::new(config, ns, MemoryStore::shared())
}

/// Channels kept in memory only.
fn ephemeral() -> ChannelOptions {
    ChannelOptions {
        persist: false,
        ..ChannelOptions::default()
    }
}

fn json(n: u64) -> Payload {
    Payload::json(format!("{{\"n\":{n}}}")).unwrap()
}

fn drained(client: &Client) -> (Vec<Delivery>, Option<Disconnect>) {
    let mut out = Vec::new();
    let closed = client.outbox().drain(&mut out);
    (out, closed)
}

fn offsets(deliveries: &[Delivery]) -> Vec<u64> {
    deliveries
        .iter()
        .filter_map(|d| match d {
            Delivery::Publication(p) => Some(p.offset),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn offsets_start_at_one_and_have_no_gaps() {
    let hub = Hub::in_memory();
    let c = hub.connect(None, None).unwrap();
    c.subscribe(&ch("a"), SubscribeOptions::default())
        .await
        .unwrap();
    for i in 1..=5 {
        assert_eq!(
            hub.publish(&ch("a"), json(i), None).await.unwrap().offset,
            i
        );
    }
    assert_eq!(
        hub.publish(&ch("b"), json(0), None).await.unwrap().offset,
        1
    );
    assert_eq!(offsets(&drained(&c).0), vec![1, 2, 3, 4, 5]);
}

#[tokio::test]
async fn subscribe_reply_carries_the_position_delivery_starts_after() {
    let hub = Hub::in_memory();
    hub.publish(&ch("a"), json(1), None).await.unwrap();
    let pos = hub.publish(&ch("a"), json(2), None).await.unwrap();
    let c = hub.connect(None, None).unwrap();
    let r = c
        .subscribe(&ch("a"), SubscribeOptions::default())
        .await
        .unwrap();
    assert_eq!(r.position, pos);
    assert_eq!(r.recovered, None);
    hub.publish(&ch("a"), json(3), None).await.unwrap();
    assert_eq!(offsets(&drained(&c).0), vec![3]);
}

#[tokio::test]
async fn recovery_returns_missed_publications_in_order() {
    let hub = Hub::in_memory();
    let c = hub.connect(None, None).unwrap();
    let first = c
        .subscribe(&ch("a"), SubscribeOptions::default())
        .await
        .unwrap();
    hub.publish(&ch("a"), json(1), None).await.unwrap();
    drop(c);
    for i in 2..=4 {
        hub.publish(&ch("a"), json(i), None).await.unwrap();
    }
    let c = hub.connect(None, None).unwrap();
    let since = StreamPosition {
        offset: 1,
        epoch: first.position.epoch.clone(),
    };
    let r = c
        .subscribe(
            &ch("a"),
            SubscribeOptions {
                since: Some(since),
                join_leave: false,
                granted: false,
            },
        )
        .await
        .unwrap();
    assert_eq!(r.recovered, Some(true));
    let got: Vec<u64> = r.publications.iter().map(|p| p.offset).collect();
    assert_eq!(got, vec![2, 3, 4]);
    assert_eq!(r.position.offset, 4);
}

#[tokio::test]
async fn recovery_after_epoch_change_reports_not_recovered() {
    let hub = Hub::in_memory();
    hub.publish(&ch("a"), json(1), None).await.unwrap();
    let c = hub.connect(None, None).unwrap();
    let r = c
        .subscribe(
            &ch("a"),
            SubscribeOptions {
                since: Some(StreamPosition {
                    offset: 1,
                    epoch: Epoch::from_client("other"),
                }),
                join_leave: false,
                granted: false,
            },
        )
        .await
        .unwrap();
    assert_eq!(r.recovered, Some(false));
    assert!(r.publications.is_empty());
    assert_eq!(r.position.offset, 1);
}

#[tokio::test]
async fn recovery_beyond_history_reports_not_recovered() {
    let hub = hub_opts(
        HubConfig::default(),
        ChannelOptions {
            history_size: 3,
            ..ephemeral()
        },
    );
    let epoch = hub.publish(&ch("a"), json(1), None).await.unwrap().epoch;
    for i in 2..=10 {
        hub.publish(&ch("a"), json(i), None).await.unwrap();
    }
    let since = |offset| {
        Some(StreamPosition {
            offset,
            epoch: epoch.clone(),
        })
    };
    let r = hub
        .read_since(&ch("a"), since(1).as_ref(), 100)
        .await
        .unwrap();
    assert_eq!(r.recovered, Some(false));
    let r = hub
        .read_since(&ch("a"), since(7).as_ref(), 100)
        .await
        .unwrap();
    assert_eq!(r.recovered, Some(true));
    assert_eq!(r.publications.len(), 3);
    // A bounded batch says there is more.
    let r = hub
        .read_since(&ch("a"), since(7).as_ref(), 2)
        .await
        .unwrap();
    assert!(r.more);
    assert_eq!(r.position.offset, 9);
}

#[tokio::test(start_paused = true)]
async fn history_expires_after_its_ttl() {
    let hub = hub_opts(
        HubConfig::default(),
        ChannelOptions {
            history_ttl_seconds: 10,
            ..ephemeral()
        },
    );
    hub.publish(&ch("a"), json(1), None).await.unwrap();
    tokio::time::advance(Duration::from_secs(11)).await;
    hub.sweep();
    let page = hub.history(&ch("a"), None, 10).await.unwrap();
    assert!(page.publications.is_empty());
    assert_eq!(
        page.position.offset, 1,
        "the stream position survives expiry"
    );
}

#[tokio::test(start_paused = true)]
async fn idle_channels_are_dropped_and_restart_with_a_new_epoch() {
    let hub = hub_opts(
        HubConfig {
            channel_idle_seconds: 5,
            ..HubConfig::default()
        },
        ChannelOptions {
            history_ttl_seconds: 1,
            ..ephemeral()
        },
    );
    let old = hub.publish(&ch("a"), json(1), None).await.unwrap();
    tokio::time::advance(Duration::from_secs(2)).await;
    hub.sweep();
    assert_eq!(hub.stats().channels, 1, "not idle long enough");
    tokio::time::advance(Duration::from_secs(5)).await;
    hub.sweep();
    assert_eq!(hub.stats().channels, 0);
    let new = hub.publish(&ch("a"), json(2), None).await.unwrap();
    assert_eq!(new.offset, 1);
    assert_ne!(new.epoch, old.epoch);
}

#[tokio::test(start_paused = true)]
async fn channels_with_subscribers_are_never_dropped() {
    let hub = hub_with(HubConfig {
        channel_idle_seconds: 1,
        ..HubConfig::default()
    });
    let c = hub.connect(None, None).unwrap();
    c.subscribe(&ch("a"), SubscribeOptions::default())
        .await
        .unwrap();
    tokio::time::advance(Duration::from_secs(10)).await;
    hub.sweep();
    assert_eq!(hub.stats().channels, 1);
}

#[tokio::test]
async fn the_channel_count_is_bounded() {
    let hub = hub_with(HubConfig {
        max_channels: 2,
        ..HubConfig::default()
    });
    hub.publish(&ch("a"), json(1), None).await.unwrap();
    hub.publish(&ch("b"), json(1), None).await.unwrap();
    let err = hub.publish(&ch("c"), json(1), None).await.unwrap_err();
    assert_eq!(err, HubError::TooManyChannels(2));
    assert_eq!(err.code(), "limit_exceeded");
    hub.publish(&ch("a"), json(2), None).await.unwrap();
}

#[tokio::test]
async fn subscriptions_per_client_are_bounded_and_unique() {
    let hub = hub_with(HubConfig {
        max_subscriptions_per_client: 1,
        ..HubConfig::default()
    });
    let c = hub.connect(None, None).unwrap();
    c.subscribe(&ch("a"), SubscribeOptions::default())
        .await
        .unwrap();
    assert_eq!(
        c.subscribe(&ch("a"), SubscribeOptions::default())
            .await
            .unwrap_err(),
        HubError::AlreadySubscribed
    );
    assert_eq!(
        c.subscribe(&ch("b"), SubscribeOptions::default())
            .await
            .unwrap_err(),
        HubError::TooManySubscriptions(1)
    );
    c.unsubscribe(&ch("a")).unwrap();
    assert_eq!(
        c.unsubscribe(&ch("a")).unwrap_err(),
        HubError::NotSubscribed
    );
    c.subscribe(&ch("b"), SubscribeOptions::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_slow_consumer_is_closed_while_others_receive_everything() {
    let hub = hub_with(HubConfig {
        outbox_max_messages: 10,
        ..HubConfig::default()
    });
    let slow = hub.connect(None, None).unwrap();
    let fast = hub.connect(None, None).unwrap();
    slow.subscribe(&ch("a"), SubscribeOptions::default())
        .await
        .unwrap();
    fast.subscribe(&ch("a"), SubscribeOptions::default())
        .await
        .unwrap();
    let mut fast_got = Vec::new();
    for i in 1..=50 {
        hub.publish(&ch("a"), json(i), None).await.unwrap();
        fast_got.extend(offsets(&drained(&fast).0));
    }
    assert_eq!(fast_got, (1..=50).collect::<Vec<_>>());
    let (items, closed) = drained(&slow);
    assert!(items.is_empty());
    assert_eq!(closed, Some(Disconnect::SlowConsumer));
}

#[tokio::test]
async fn presence_lists_subscribers_and_join_leave_reach_listeners() {
    let hub = Hub::in_memory();
    let alice = UserId::parse("alice").unwrap();
    let watcher = hub.connect(Some(alice.clone()), None).unwrap();
    watcher
        .subscribe(
            &ch("room"),
            SubscribeOptions {
                since: None,
                join_leave: true,
                granted: false,
            },
        )
        .await
        .unwrap();
    let bob = hub
        .connect(Some(UserId::parse("bob").unwrap()), None)
        .unwrap();
    bob.subscribe(&ch("room"), SubscribeOptions::default())
        .await
        .unwrap();
    let alice2 = hub.connect(Some(alice), None).unwrap();
    alice2
        .subscribe(&ch("room"), SubscribeOptions::default())
        .await
        .unwrap();

    assert_eq!(hub.presence(&ch("room")).unwrap().len(), 3);
    assert_eq!(
        hub.presence_count(&ch("room")).unwrap(),
        PresenceCount {
            clients: 3,
            users: 2
        }
    );
    let bob_id = bob.id().clone();
    drop(bob);
    let (events, _) = drained(&watcher);
    let kinds: Vec<(&str, ClientId)> = events
        .iter()
        .map(|d| match d {
            Delivery::Join(e) => ("join", e.info.client.clone()),
            Delivery::Leave(e) => ("leave", e.info.client.clone()),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(kinds[0], ("join", bob_id.clone()));
    assert_eq!(kinds[1].0, "join");
    assert_eq!(kinds[2], ("leave", bob_id));
    assert_eq!(hub.presence_count(&ch("room")).unwrap().clients, 2);
}

#[tokio::test]
async fn user_addressed_messages_reach_every_connection_of_the_user() {
    let hub = Hub::in_memory();
    let u = UserId::parse("42").unwrap();
    let a = hub.connect(Some(u.clone()), None).unwrap();
    let b = hub.connect(Some(u.clone()), None).unwrap();
    let other = hub.connect(None, None).unwrap();
    assert_eq!(hub.send_to_user(&u, json(1)), 2);
    assert_eq!(drained(&a).0.len(), 1);
    assert_eq!(drained(&b).0.len(), 1);
    assert_eq!(drained(&other).0.len(), 0);
    drop(b);
    assert_eq!(
        hub.disconnect_user(
            &u,
            Disconnect::ByServer {
                reconnect: false,
                reason: "bye".into()
            }
        ),
        1
    );
    assert!(matches!(drained(&a).1, Some(Disconnect::ByServer { .. })));
}

#[tokio::test]
async fn shutdown_closes_every_connection_and_refuses_new_ones() {
    let hub = Hub::in_memory();
    let a = hub.connect(None, None).unwrap();
    hub.shutdown();
    assert_eq!(drained(&a).1, Some(Disconnect::Shutdown));
    assert_eq!(hub.connect(None, None).err(), Some(HubError::ShuttingDown));
}

#[tokio::test]
async fn history_pages_forwards_and_backwards() {
    let hub = Hub::in_memory();
    for i in 1..=10 {
        hub.publish(&ch("a"), json(i), None).await.unwrap();
    }
    let fwd = hub
        .history(&ch("a"), Some(PageFrom::After(3)), 3)
        .await
        .unwrap();
    let got: Vec<u64> = fwd.publications.iter().map(|p| p.offset).collect();
    assert_eq!(got, vec![4, 5, 6]);
    let back = hub
        .history(&ch("a"), Some(PageFrom::Before(u64::MAX)), 2)
        .await
        .unwrap();
    let got: Vec<u64> = back.publications.iter().map(|p| p.offset).collect();
    assert_eq!(got, vec![10, 9]);
    assert_eq!(back.position.offset, 10);
}

#[tokio::test]
async fn the_global_history_budget_is_respected() {
    let hub = hub_with(HubConfig {
        history_max_total_bytes: 2000,
        ..HubConfig::default()
    });
    for i in 0..100 {
        hub.publish(&ch("a"), Payload::Binary(vec![0u8; 100].into()), None)
            .await
            .unwrap();
        assert!(hub.stats().history_bytes <= 2000, "after {i}");
    }
    assert!(hub.stats().history_bytes > 0);
}

#[tokio::test]
async fn publications_are_shared_not_copied() {
    let hub = Hub::in_memory();
    let a = hub.connect(None, None).unwrap();
    let b = hub.connect(None, None).unwrap();
    a.subscribe(&ch("x"), SubscribeOptions::default())
        .await
        .unwrap();
    b.subscribe(&ch("x"), SubscribeOptions::default())
        .await
        .unwrap();
    hub.publish(&ch("x"), json(1), None).await.unwrap();
    let (Delivery::Publication(pa), Delivery::Publication(pb)) =
        (&drained(&a).0[0], &drained(&b).0[0])
    else {
        panic!("publications expected")
    };
    assert!(Arc::ptr_eq(pa, pb));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_publishers_keep_every_subscriber_in_order() {
    for options in [
        ChannelOptions::default(),
        ChannelOptions {
            durability: Durability::Async,
            ..ChannelOptions::default()
        },
        ephemeral(),
    ] {
        let hub = hub_opts(
            HubConfig {
                outbox_max_messages: 100_000,
                outbox_max_bytes: 64 << 20,
                ..HubConfig::default()
            },
            options.clone(),
        );
        let mut subs = Vec::new();
        for _ in 0..8 {
            let c = hub.connect(None, None).unwrap();
            c.subscribe(&ch("a"), SubscribeOptions::default())
                .await
                .unwrap();
            subs.push(c);
        }
        let tasks: Vec<_> = (0..4)
            .map(|t| {
                let hub = hub.clone();
                tokio::spawn(async move {
                    for i in 0..500 {
                        hub.publish(&ch("a"), json(t * 1000 + i), None)
                            .await
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        for c in &subs {
            assert_eq!(
                offsets(&drained(c).0),
                (1..=2000).collect::<Vec<_>>(),
                "{options:?}"
            );
        }
    }
}

fn identity(user: Option<&str>, claims: serde_json::Value) -> Identity {
    Identity {
        user: user.map(|u| UserId::parse(u).unwrap()),
        claims: claims.as_object().cloned().map(Arc::new),
    }
}

#[tokio::test]
async fn access_rules_are_checked_for_every_client_request() {
    let staff = Access::Claim(ClaimRule {
        claim: "role".to_owned(),
        any_of: vec![serde_json::json!("staff")],
    });
    let hub = hub_opts(
        HubConfig::default(),
        ChannelOptions {
            subscribe: Access::AUTHENTICATED,
            publish: staff.clone(),
            read_history: staff.clone(),
            read_presence: Access::NOBODY,
            ..ephemeral()
        },
    );
    let anon = hub.connect_as(Identity::anonymous(), None).unwrap();
    let user = hub
        .connect_as(
            identity(Some("1"), serde_json::json!({"role": "guest"})),
            None,
        )
        .unwrap();
    let worker = hub
        .connect_as(
            identity(Some("2"), serde_json::json!({"role": "staff"})),
            None,
        )
        .unwrap();
    let denied = |r: Result<(), HubError>| assert!(matches!(r, Err(HubError::PermissionDenied(_))));

    denied(
        anon.subscribe(&ch("news"), SubscribeOptions::default())
            .await
            .map(drop),
    );
    user.subscribe(&ch("news"), SubscribeOptions::default())
        .await
        .unwrap();
    denied(user.publish(&ch("news"), json(1)).await.map(drop));
    worker.publish(&ch("news"), json(1)).await.unwrap();
    denied(user.history(&ch("news"), None, 10).await.map(drop));
    assert_eq!(
        worker
            .history(&ch("news"), None, 10)
            .await
            .unwrap()
            .publications
            .len(),
        1
    );
    denied(worker.presence(&ch("news")).map(drop));
    denied(worker.presence_count(&ch("news")).map(drop));
    // The hub itself (the server API) is never checked.
    assert_eq!(hub.presence(&ch("news")).unwrap().len(), 1);
    // A grant from the application bypasses the rule.
    let granted = SubscribeOptions {
        granted: true,
        ..SubscribeOptions::default()
    };
    anon.subscribe(&ch("news"), granted).await.unwrap();
}

#[tokio::test]
async fn user_limited_channels_admit_only_their_users() {
    let hub = hub_opts(HubConfig::default(), ephemeral());
    let u42 = hub
        .connect_as(identity(Some("42"), serde_json::Value::Null), None)
        .unwrap();
    let u7 = hub
        .connect_as(identity(Some("7"), serde_json::Value::Null), None)
        .unwrap();
    let dialog = ch("dialog#42,43");
    u42.subscribe(&dialog, SubscribeOptions::default())
        .await
        .unwrap();
    u42.publish(&dialog, json(1)).await.unwrap();
    for r in [
        u7.subscribe(&dialog, SubscribeOptions::default())
            .await
            .map(drop),
        u7.publish(&dialog, json(2)).await.map(drop),
        u7.history(&dialog, None, 10).await.map(drop),
        u7.presence(&dialog).map(drop),
    ] {
        assert!(matches!(r, Err(HubError::PermissionDenied(m)) if m.contains("other users")));
    }

    let open = hub_opts(
        HubConfig::default(),
        ChannelOptions {
            user_limited: false,
            ..ephemeral()
        },
    );
    let u7 = open
        .connect_as(identity(Some("7"), serde_json::Value::Null), None)
        .unwrap();
    u7.subscribe(&dialog, SubscribeOptions::default())
        .await
        .unwrap();
}
