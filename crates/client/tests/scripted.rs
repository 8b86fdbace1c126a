//! Client behaviour against a scripted peer, for what the real server cannot be made to do on
//! demand: terminal close codes (the server needs users and auth for them), pushes that race
//! the subscribe reply, duplicate and missing offsets, silence.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{
    fake::{FakeConnection, FakeServer},
    next_event, offsets, wait_state,
};
use serde_json::json;
use switchboard_client::{
    Backoff, Client, ClientError, ClientOptions, ConnectionState, Data, StreamPosition,
    SubscribeCause, SubscribeOptions, Subscription, SubscriptionEvent, close_code,
};

fn options(fake: &FakeServer) -> ClientOptions {
    ClientOptions {
        connect_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_secs(5),
        backoff: Backoff {
            min: Duration::from_millis(20),
            max: Duration::from_millis(100),
        },
        ..ClientOptions::new(fake.url.clone())
    }
}

async fn connect(fake: &mut FakeServer) -> (Client, FakeConnection) {
    let options = options(fake);
    let (client, conn) = tokio::join!(Client::connect(options), async {
        let mut conn = fake.accept().await;
        conn.handshake(25).await;
        conn
    });
    (client.expect("connect"), conn)
}

/// Subscribes to `channel`, answering with `reply` as the subscribe result.
async fn subscribe(
    client: &Client,
    conn: &mut FakeConnection,
    channel: &str,
    before_reply: Vec<serde_json::Value>,
    reply: serde_json::Value,
) -> Subscription {
    let (sub, ()) = tokio::join!(
        client.subscribe(channel, SubscribeOptions::default()),
        async {
            let command = conn.recv().await;
            assert_eq!(command["cmd"], "subscribe");
            assert_eq!(command["channel"], channel);
            for push in before_reply {
                conn.send(push).await;
            }
            conn.send(json!({"id": command["id"], "result": reply}))
                .await;
        }
    );
    sub.expect("subscribe")
}

fn publication(channel: &str, offset: u64) -> serde_json::Value {
    json!({"push": "publication", "channel": channel, "offset": offset, "epoch": "e", "data": offset})
}

#[tokio::test]
async fn terminal_close_code_stops_reconnecting() {
    let mut fake = FakeServer::start().await;
    let (client, conn) = connect(&mut fake).await;
    let mut state = client.state();
    conn.disconnect(close_code::DISCONNECTED_TERMINAL, "banned", false)
        .await;
    let closed = wait_state(&mut state, ConnectionState::is_closed).await;
    assert!(
        matches!(&closed, ConnectionState::Disconnected(d) if d.code == Some(4500) && d.reason == "banned"),
        "{closed:?}"
    );
    assert!(!fake.connects_within(Duration::from_millis(500)).await);
    assert!(matches!(
        client.publish("x", json!(1)).await,
        Err(ClientError::Terminated { code: 4500, .. })
    ));
}

#[tokio::test]
async fn reconnect_close_code_reconnects_and_resubscribes() {
    let mut fake = FakeServer::start().await;
    let (client, mut conn) = connect(&mut fake).await;
    let mut sub = subscribe(
        &client,
        &mut conn,
        "c",
        vec![],
        json!({"offset": 3, "epoch": "e"}),
    )
    .await;
    assert!(matches!(
        next_event(&mut sub).await,
        SubscriptionEvent::Subscribed { .. }
    ));
    conn.disconnect(close_code::DISCONNECTED, "go away for a bit", true)
        .await;

    let mut conn = fake.accept().await;
    conn.handshake(25).await;
    let resubscribe = conn.recv().await;
    assert_eq!(resubscribe["cmd"], "subscribe");
    assert_eq!(resubscribe["since"], json!({"offset": 3, "epoch": "e"}));
    conn.send(json!({"id": resubscribe["id"], "result": {
        "offset": 4, "epoch": "e", "recovered": true,
        "publications": [{"channel": "c", "offset": 4, "epoch": "e", "data": 4}],
    }}))
    .await;
    assert!(matches!(
        next_event(&mut sub).await,
        SubscriptionEvent::Subscribed {
            cause: SubscribeCause::Reconnect,
            recovered: Some(true),
            ..
        }
    ));
    assert!(
        matches!(next_event(&mut sub).await, SubscriptionEvent::Publication(p) if p.offset == 4)
    );
}

#[tokio::test]
async fn client_answers_server_pings_with_pong() {
    let mut fake = FakeServer::start().await;
    let (_client, mut conn) = connect(&mut fake).await;
    conn.send(json!({"push": "ping"})).await;
    assert_eq!(conn.recv().await, json!({"cmd": "pong"}));
}

#[tokio::test]
async fn silent_server_is_treated_as_dead() {
    let mut fake = FakeServer::start().await;
    let options = ClientOptions {
        ping_margin: Duration::from_millis(200),
        ..options(&fake)
    };
    let (client, mut conn) = tokio::join!(Client::connect(options), async {
        let mut conn = fake.accept().await;
        conn.handshake(1).await;
        conn
    });
    let client = client.expect("connect");
    // Silent for ping_interval (1 s) + margin (0.2 s): the client drops and reconnects.
    assert!(conn.ends_within(Duration::from_secs(3)).await);
    let mut again = fake.accept().await;
    again.handshake(25).await;
    let mut state = client.state();
    wait_state(&mut state, ConnectionState::is_connected).await;
}

#[tokio::test]
async fn publications_pushed_before_the_subscribe_reply_are_kept() {
    let mut fake = FakeServer::start().await;
    let (client, mut conn) = connect(&mut fake).await;
    let mut sub = subscribe(
        &client,
        &mut conn,
        "race",
        vec![publication("race", 6)],
        json!({"offset": 5, "epoch": "e"}),
    )
    .await;
    conn.send(publication("race", 7)).await;
    assert_eq!(
        next_event(&mut sub).await,
        SubscriptionEvent::Subscribed {
            position: StreamPosition::new(5, "e"),
            recovered: None,
            cause: SubscribeCause::Initial
        }
    );
    let events = vec![next_event(&mut sub).await, next_event(&mut sub).await];
    assert_eq!(offsets(&events), [6, 7]);
}

#[tokio::test]
async fn duplicates_are_dropped_and_a_hole_is_recovered_by_resubscribing() {
    let mut fake = FakeServer::start().await;
    let (client, mut conn) = connect(&mut fake).await;
    let mut sub = subscribe(
        &client,
        &mut conn,
        "h",
        vec![],
        json!({"offset": 0, "epoch": "e"}),
    )
    .await;
    for offset in [1, 1, 2, 4] {
        conn.send(publication("h", offset)).await;
    }
    // Offset 3 is missing: the client unsubscribes and resubscribes from 2.
    assert_eq!(
        conn.recv().await,
        json!({"cmd": "unsubscribe", "channel": "h"})
    );
    let resubscribe = conn.recv().await;
    assert_eq!(resubscribe["since"], json!({"offset": 2, "epoch": "e"}));
    conn.send(json!({"id": resubscribe["id"], "result": {
        "offset": 4, "epoch": "e", "recovered": true,
        "publications": [
            {"channel": "h", "offset": 3, "epoch": "e", "data": 3},
            {"channel": "h", "offset": 4, "epoch": "e", "data": 4},
        ],
    }}))
    .await;

    let mut events = Vec::new();
    while offsets(&events).len() < 4 {
        events.push(next_event(&mut sub).await);
    }
    assert_eq!(offsets(&events), [1, 2, 3, 4], "{events:#?}");
    assert!(events.iter().any(|e| matches!(
        e,
        SubscriptionEvent::Subscribed {
            cause: SubscribeCause::Resync,
            recovered: Some(true),
            ..
        }
    )));
}

#[tokio::test]
async fn recovered_reply_that_falls_short_reports_the_loss() {
    let mut fake = FakeServer::start().await;
    let (client, mut conn) = connect(&mut fake).await;
    let since = StreamPosition::new(2, "e");
    let (sub, ()) = tokio::join!(
        client.subscribe(
            "short",
            SubscribeOptions {
                since: Some(since.clone()),
                ..SubscribeOptions::default()
            }
        ),
        async {
            let command = conn.recv().await;
            conn.send(json!({"id": command["id"], "result": {
                "offset": 5, "epoch": "e", "recovered": true,
                "publications": [{"channel": "short", "offset": 3, "epoch": "e", "data": 3}],
            }}))
            .await;
        }
    );
    let mut sub = sub.expect("subscribe");
    assert!(matches!(
        next_event(&mut sub).await,
        SubscriptionEvent::Subscribed { .. }
    ));
    assert!(
        matches!(next_event(&mut sub).await, SubscriptionEvent::Publication(p) if p.offset == 3)
    );
    assert_eq!(
        next_event(&mut sub).await,
        SubscriptionEvent::Unrecovered {
            since: StreamPosition::new(3, "e"),
            position: StreamPosition::new(5, "e")
        }
    );
}

#[tokio::test]
async fn user_messages_reach_receivers_and_lag_is_reported() {
    let mut fake = FakeServer::start().await;
    let options = ClientOptions {
        message_buffer: 2,
        ..options(&fake)
    };
    let (client, mut conn) = tokio::join!(Client::connect(options), async {
        let mut conn = fake.accept().await;
        conn.handshake(25).await;
        conn
    });
    let client = client.expect("connect");
    let mut messages = client.messages();
    conn.send(json!({"push": "message", "data": {"hello": "you"}}))
        .await;
    conn.send(json!({"push": "message", "b64": "AAE="})).await;
    assert_eq!(
        messages.recv().await.expect("message").data,
        Data::Json(json!({"hello": "you"}))
    );
    assert_eq!(
        messages.recv().await.expect("message").data,
        Data::Binary(Bytes::from_static(&[0, 1]))
    );

    // Five messages into a buffer of two: the receiver learns it missed three.
    for n in 0..5 {
        conn.send(json!({"push": "message", "data": n})).await;
    }
    // A ping round trip proves the five pushes were handled.
    let (rtt, ()) = tokio::join!(client.ping(), async {
        let ping = conn.recv().await;
        conn.send(json!({"id": ping["id"], "result": {}})).await;
    });
    rtt.expect("ping");
    assert!(matches!(
        messages.recv().await,
        Err(ClientError::Lagged { skipped: 3 })
    ));
    assert_eq!(
        messages.recv().await.expect("message").data,
        Data::Json(json!(3))
    );
    assert_eq!(
        messages.recv().await.expect("message").data,
        Data::Json(json!(4))
    );

    conn.disconnect(close_code::DISCONNECTED_TERMINAL, "done", false)
        .await;
    assert!(matches!(
        tokio::time::timeout(common::WAIT, messages.recv()).await,
        Ok(Err(ClientError::Terminated { code: 4500, .. }))
    ));
}
