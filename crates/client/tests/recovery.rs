//! Reconnects, recovery and deadlines against the real server: no gap and no duplicate
//! across a dropped connection, explicit `Unrecovered` when the server cannot recover, a slow
//! reader that catches up through history, request timeouts and a silent server.

mod common;

use std::time::Duration;

use common::{TestServer, collect_publications, next_event, offsets, wait_state};
use serde_json::json;
use switchboard_client::{
    Backoff, Client, ClientError, ClientOptions, ConnectionState, Format, StreamPosition,
    SubscribeCause, SubscribeOptions, SubscriptionEvent,
};

/// Options whose reconnect waits long enough for a test to act while disconnected.
fn slow_reconnect(server: &TestServer, format: Format) -> ClientOptions {
    ClientOptions {
        backoff: Backoff {
            min: Duration::from_millis(300),
            max: Duration::from_millis(300),
        },
        ..server.options(format)
    }
}

async fn subscription_recovers_what_was_missed_during_a_reconnect(format: Format) {
    let server = TestServer::start();
    let subscriber = Client::connect(slow_reconnect(&server, format))
        .await
        .expect("connect");
    let publisher = Client::connect(server.options(format))
        .await
        .expect("connect");
    let mut sub = subscriber
        .subscribe("orders", SubscribeOptions::default())
        .await
        .expect("subscribe");
    for n in 1..=3 {
        publisher
            .publish("orders", json!(n))
            .await
            .expect("publish");
    }
    let before = collect_publications(&mut sub, 3).await;
    assert_eq!(offsets(&before), [1, 2, 3]);

    let mut state = subscriber.state();
    subscriber.debug_drop_connection().await;
    wait_state(&mut state, |s| {
        matches!(s, ConnectionState::Disconnected(_))
    })
    .await;
    for n in 4..=6 {
        publisher
            .publish("orders", json!(n))
            .await
            .expect("publish");
    }
    wait_state(&mut state, ConnectionState::is_connected).await;
    for n in 7..=8 {
        publisher
            .publish("orders", json!(n))
            .await
            .expect("publish");
    }

    let after = collect_publications(&mut sub, 5).await;
    assert_eq!(offsets(&after), [4, 5, 6, 7, 8], "{after:#?}");
    assert!(
        after.iter().any(|e| matches!(
            e,
            SubscriptionEvent::Subscribed {
                recovered: Some(true),
                cause: SubscribeCause::Reconnect,
                ..
            }
        )),
        "{after:#?}"
    );
    assert!(
        !after
            .iter()
            .any(|e| matches!(e, SubscriptionEvent::Unrecovered { .. })),
        "{after:#?}"
    );
}

#[tokio::test]
async fn subscription_recovers_what_was_missed_during_a_reconnect_in_json() {
    subscription_recovers_what_was_missed_during_a_reconnect(Format::Json).await;
}

#[tokio::test]
async fn subscription_recovers_what_was_missed_during_a_reconnect_in_msgpack() {
    subscription_recovers_what_was_missed_during_a_reconnect(Format::MessagePack).await;
}

#[tokio::test]
async fn since_in_the_current_epoch_recovers_from_history() {
    let server = TestServer::start();
    let client = Client::connect(server.options(Format::Json))
        .await
        .expect("connect");
    let mut last = None;
    for n in 1..=5 {
        last = Some(client.publish("feed", json!(n)).await.expect("publish"));
    }
    let epoch = last.expect("published").epoch;
    let mut sub = client
        .subscribe(
            "feed",
            SubscribeOptions {
                since: Some(StreamPosition::new(2, epoch.clone())),
                ..SubscribeOptions::default()
            },
        )
        .await
        .expect("subscribe");
    assert_eq!(
        next_event(&mut sub).await,
        SubscriptionEvent::Subscribed {
            position: StreamPosition::new(5, epoch),
            recovered: Some(true),
            cause: SubscribeCause::Initial,
        }
    );
    assert_eq!(offsets(&collect_publications(&mut sub, 3).await), [3, 4, 5]);
}

#[tokio::test]
async fn unknown_epoch_is_reported_as_not_recovered() {
    let server = TestServer::start();
    let client = Client::connect(server.options(Format::Json))
        .await
        .expect("connect");
    for n in 1..=3 {
        client.publish("ledger", json!(n)).await.expect("publish");
    }
    let since = StreamPosition::new(2, "not-the-epoch");
    let mut sub = client
        .subscribe(
            "ledger",
            SubscribeOptions {
                since: Some(since.clone()),
                ..SubscribeOptions::default()
            },
        )
        .await
        .expect("subscribe");
    let position = match next_event(&mut sub).await {
        SubscriptionEvent::Subscribed {
            position,
            recovered: Some(false),
            ..
        } => position,
        other => panic!("expected Subscribed with recovered: false, got {other:?}"),
    };
    assert_eq!(position.offset, 3);
    assert_eq!(
        next_event(&mut sub).await,
        SubscriptionEvent::Unrecovered {
            since,
            position: position.clone()
        }
    );
    // Delivery goes on after the reported position.
    client.publish("ledger", json!(4)).await.expect("publish");
    assert_eq!(offsets(&collect_publications(&mut sub, 1).await), [4]);
    assert_eq!(sub.last_position().map(|p| p.offset), Some(4));
}

async fn slow_reader_falls_behind_and_catches_up_without_loss(format: Format, buffer: usize) {
    let server = TestServer::start();
    let client = Client::connect(server.options(format))
        .await
        .expect("connect");
    let mut sub = client
        .subscribe(
            "firehose",
            SubscribeOptions {
                buffer,
                ..SubscribeOptions::default()
            },
        )
        .await
        .expect("subscribe");
    // Nobody reads while 40 publications arrive: the buffer overflows.
    for n in 1..=40 {
        client.publish("firehose", json!(n)).await.expect("publish");
    }
    let events = collect_publications(&mut sub, 40).await;
    assert_eq!(offsets(&events), (1..=40).collect::<Vec<_>>());
    assert!(
        events.iter().any(|e| matches!(
            e,
            SubscriptionEvent::Subscribed {
                cause: SubscribeCause::Lagged,
                recovered: Some(true),
                ..
            }
        )),
        "{events:#?}"
    );
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, SubscriptionEvent::Unrecovered { .. }))
    );
}

#[tokio::test]
async fn slow_reader_falls_behind_and_catches_up_without_loss_in_msgpack() {
    slow_reader_falls_behind_and_catches_up_without_loss(Format::MessagePack, 4).await;
}

#[tokio::test]
async fn slow_reader_with_the_smallest_buffer_still_makes_progress() {
    slow_reader_falls_behind_and_catches_up_without_loss(Format::Json, 1).await;
}

#[tokio::test]
async fn requests_made_while_disconnected_are_sent_after_the_reconnect() {
    let server = TestServer::start();
    let client = Client::connect(slow_reconnect(&server, Format::Json))
        .await
        .expect("connect");
    let mut state = client.state();
    client.debug_drop_connection().await;
    wait_state(&mut state, |s| {
        matches!(s, ConnectionState::Disconnected(_))
    })
    .await;
    let position = client
        .publish("queued", json!("sent later"))
        .await
        .expect("publish after reconnect");
    assert_eq!(position.offset, 1);
    assert!(client.state().borrow().is_connected());
}

#[tokio::test]
async fn request_times_out_when_the_server_does_not_answer() {
    let server = TestServer::start();
    let client = Client::connect(ClientOptions {
        request_timeout: Duration::from_millis(300),
        ..server.options(Format::Json)
    })
    .await
    .expect("connect");
    server.pause();
    let result = client.publish("frozen", json!(1)).await;
    server.resume();
    assert!(matches!(result, Err(ClientError::Timeout)), "{result:?}");
    // The late reply is ignored and the connection goes on.
    client
        .publish("frozen", json!(2))
        .await
        .expect("publish after resume");
}

#[tokio::test]
async fn silent_server_is_dropped_and_reconnected() {
    let server =
        TestServer::start_with_env(&[("SWITCHBOARD_WEBSOCKET__PING_INTERVAL_SECONDS", "1")]);
    let client = Client::connect(ClientOptions {
        ping_margin: Duration::from_millis(300),
        connect_timeout: Duration::from_secs(1),
        ..server.options(Format::Json)
    })
    .await
    .expect("connect");
    let mut state = client.state();
    match &*state.borrow() {
        ConnectionState::Connected { ping_interval, .. } => {
            assert_eq!(*ping_interval, Duration::from_secs(1));
        }
        other => panic!("not connected: {other:?}"),
    }
    let mut sub = client
        .subscribe("alive", SubscribeOptions::default())
        .await
        .expect("subscribe");
    assert!(matches!(
        next_event(&mut sub).await,
        SubscriptionEvent::Subscribed { .. }
    ));

    server.pause();
    let dropped = wait_state(&mut state, |s| {
        matches!(s, ConnectionState::Disconnected(_))
    })
    .await;
    server.resume();
    assert!(
        matches!(&dropped, ConnectionState::Disconnected(d) if d.reason.contains("silent") && d.reconnect),
        "{dropped:?}"
    );
    wait_state(&mut state, ConnectionState::is_connected).await;
    assert!(matches!(
        next_event(&mut sub).await,
        SubscriptionEvent::Subscribed {
            cause: SubscribeCause::Reconnect,
            recovered: Some(true),
            ..
        }
    ));
}

#[tokio::test]
async fn answering_pings_keeps_the_connection_open() {
    let server = TestServer::start_with_env(&[
        ("SWITCHBOARD_WEBSOCKET__PING_INTERVAL_SECONDS", "1"),
        ("SWITCHBOARD_WEBSOCKET__PONG_TIMEOUT_SECONDS", "1"),
    ]);
    let client = Client::connect(server.options(Format::MessagePack))
        .await
        .expect("connect");
    let mut state = client.state();
    state.mark_unchanged();
    // The server closes a client silent for ping_interval + pong_timeout (2 s); this one
    // sends nothing but pongs for 3.5 s.
    let changed = tokio::time::timeout(Duration::from_millis(3500), state.changed()).await;
    assert!(changed.is_err(), "state changed: {:?}", *state.borrow());
    client.ping().await.expect("still connected");
}

#[tokio::test]
async fn oversized_publish_costs_the_connection_but_the_client_comes_back() {
    let server = TestServer::start();
    let client = Client::connect(server.options(Format::Json))
        .await
        .expect("connect");
    let mut state = client.state();
    // Over websocket.max_message_bytes (64 KiB): the server closes with 1009, a code that
    // allows reconnecting. The reply never comes, so the outcome is reported as unknown.
    let result = client.publish("big", json!("x".repeat(70_000))).await;
    assert!(
        matches!(result, Err(ClientError::Disconnected)),
        "{result:?}"
    );
    let dropped = wait_state(&mut state, |s| {
        matches!(s, ConnectionState::Disconnected(_))
    })
    .await;
    assert!(
        matches!(&dropped, ConnectionState::Disconnected(d) if d.code == Some(1009) && d.reconnect),
        "{dropped:?}"
    );
    wait_state(&mut state, ConnectionState::is_connected).await;
    client
        .publish("big", json!("small"))
        .await
        .expect("publish");
}
