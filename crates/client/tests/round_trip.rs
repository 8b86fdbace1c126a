//! Publish, subscribe and the other requests against the real server, in both wire formats.

mod common;

use bytes::Bytes;
use common::{TestServer, collect_publications, next_event, wait_state};
use serde_json::json;
use switchboard_client::{
    Client, ClientError, ClientOptions, ConnectionState, Data, ErrorCode, Format, HistoryFrom,
    HistoryOptions, SubscribeCause, SubscribeOptions, SubscriptionEvent,
};

fn client_id(client: &Client) -> String {
    match &*client.state().borrow() {
        ConnectionState::Connected { client, .. } => client.clone(),
        other => panic!("not connected: {other:?}"),
    }
}

async fn publish_and_subscribe_round_trip(format: Format) {
    let server = TestServer::start();
    let subscriber = Client::connect(server.options(format))
        .await
        .expect("connect");
    let publisher = Client::connect(server.options(format))
        .await
        .expect("connect");
    let mut sub = subscriber
        .subscribe("news", SubscribeOptions::default())
        .await
        .expect("subscribe");
    match next_event(&mut sub).await {
        SubscriptionEvent::Subscribed {
            position,
            recovered: None,
            cause: SubscribeCause::Initial,
        } => assert_eq!(position.offset, 0),
        other => panic!("expected Subscribed first, got {other:?}"),
    }

    let json_data = json!({"title": "hi", "n": [1, 2.5, null, true]});
    let binary = Bytes::from_static(b"\x00\xff binary \x01");
    let first = publisher
        .publish("news", json_data.clone())
        .await
        .expect("publish JSON");
    let second = publisher
        .publish("news", binary.clone())
        .await
        .expect("publish binary");
    assert_eq!((first.offset, second.offset), (1, 2));
    assert_eq!(first.epoch, second.epoch);

    let events = collect_publications(&mut sub, 2).await;
    let publications: Vec<_> = events
        .into_iter()
        .filter_map(|event| match event {
            SubscriptionEvent::Publication(p) => Some(p),
            _ => None,
        })
        .collect();
    assert_eq!(publications[0].data, Data::Json(json_data));
    assert_eq!(publications[1].data, Data::Binary(binary));
    for (p, expected) in publications.iter().zip([&first, &second]) {
        assert_eq!(&p.position(), expected);
        assert_eq!(p.channel, "news");
    }
    assert_eq!(sub.last_position(), Some(&second));
}

#[tokio::test]
async fn publish_and_subscribe_round_trip_in_json() {
    publish_and_subscribe_round_trip(Format::Json).await;
}

#[tokio::test]
async fn publish_and_subscribe_round_trip_in_msgpack() {
    publish_and_subscribe_round_trip(Format::MessagePack).await;
}

#[tokio::test]
async fn json_and_msgpack_clients_share_channels() {
    let server = TestServer::start();
    let json_client = Client::connect(server.options(Format::Json))
        .await
        .expect("connect");
    let msgpack_client = Client::connect(server.options(Format::MessagePack))
        .await
        .expect("connect");
    let mut json_sub = json_client
        .subscribe("mixed", SubscribeOptions::default())
        .await
        .expect("subscribe");
    let mut msgpack_sub = msgpack_client
        .subscribe("mixed", SubscribeOptions::default())
        .await
        .expect("subscribe");
    json_client
        .publish("mixed", json!({"from": "json"}))
        .await
        .expect("publish");
    msgpack_client
        .publish("mixed", Bytes::from_static(b"from msgpack"))
        .await
        .expect("publish");
    for sub in [&mut json_sub, &mut msgpack_sub] {
        let events = collect_publications(sub, 2).await;
        let data: Vec<_> = events
            .iter()
            .filter_map(|event| match event {
                SubscriptionEvent::Publication(p) => Some(p.data.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(
            data,
            [
                Data::Json(json!({"from": "json"})),
                Data::Binary(Bytes::from_static(b"from msgpack"))
            ]
        );
    }
}

#[tokio::test]
async fn history_reads_forwards_and_backwards() {
    let server = TestServer::start();
    let client = Client::connect(server.options(Format::Json))
        .await
        .expect("connect");
    for n in 1..=5 {
        client.publish("log", json!(n)).await.expect("publish");
    }
    let offsets = |history: &switchboard_client::History| {
        history
            .publications
            .iter()
            .map(|p| p.offset)
            .collect::<Vec<_>>()
    };
    let all = client
        .history("log", HistoryOptions::default())
        .await
        .expect("history");
    assert_eq!(offsets(&all), [1, 2, 3, 4, 5]);
    assert_eq!(all.position.offset, 5);
    assert_eq!(all.publications[2].data, Data::Json(json!(3)));

    let after = client
        .history(
            "log",
            HistoryOptions {
                limit: Some(2),
                from: Some(HistoryFrom::After(2)),
            },
        )
        .await
        .expect("history after");
    assert_eq!(offsets(&after), [3, 4]);

    let before = client
        .history(
            "log",
            HistoryOptions {
                limit: None,
                from: Some(HistoryFrom::Before(4)),
            },
        )
        .await
        .expect("history before");
    assert_eq!(offsets(&before), [3, 2, 1]);
}

#[tokio::test]
async fn presence_lists_and_counts_subscribers() {
    let server = TestServer::start();
    let alice = Client::connect(ClientOptions {
        info: Some(json!({"name": "alice"})),
        ..server.options(Format::Json)
    })
    .await
    .expect("connect");
    let bob = Client::connect(server.options(Format::MessagePack))
        .await
        .expect("connect");
    let _alice_sub = alice
        .subscribe("room", SubscribeOptions::default())
        .await
        .expect("subscribe");
    let _bob_sub = bob
        .subscribe("room", SubscribeOptions::default())
        .await
        .expect("subscribe");

    let mut present = bob.presence("room").await.expect("presence");
    present.sort_by(|a, b| a.client.cmp(&b.client));
    let mut expected = vec![client_id(&alice), client_id(&bob)];
    expected.sort();
    assert_eq!(
        present.iter().map(|c| c.client.clone()).collect::<Vec<_>>(),
        expected
    );
    let alice_info = present
        .iter()
        .find(|c| c.client == client_id(&alice))
        .and_then(|c| c.info.clone());
    assert_eq!(alice_info, Some(json!({"name": "alice"})));

    let count = alice.presence_count("room").await.expect("presence_count");
    assert_eq!((count.clients, count.users), (2, 0));
}

#[tokio::test]
async fn join_and_leave_reach_subscribers_that_asked_for_them() {
    let server = TestServer::start();
    let watcher = Client::connect(server.options(Format::Json))
        .await
        .expect("connect");
    let visitor = Client::connect(server.options(Format::Json))
        .await
        .expect("connect");
    let mut watching = watcher
        .subscribe(
            "lobby",
            SubscribeOptions {
                join_leave: true,
                ..SubscribeOptions::default()
            },
        )
        .await
        .expect("subscribe");
    assert!(matches!(
        next_event(&mut watching).await,
        SubscriptionEvent::Subscribed { .. }
    ));
    let visiting = visitor
        .subscribe("lobby", SubscribeOptions::default())
        .await
        .expect("subscribe");
    let visitor_id = client_id(&visitor);
    // The watcher may or may not see its own join first.
    loop {
        match next_event(&mut watching).await {
            SubscriptionEvent::Join(info) if info.client == visitor_id => break,
            SubscriptionEvent::Join(_) => continue,
            other => panic!("expected a join, got {other:?}"),
        }
    }
    visiting.unsubscribe().await.expect("unsubscribe");
    match next_event(&mut watching).await {
        SubscriptionEvent::Leave(info) => assert_eq!(info.client, visitor_id),
        other => panic!("expected a leave, got {other:?}"),
    }
}

#[tokio::test]
async fn ping_measures_a_round_trip() {
    let server = TestServer::start();
    let client = Client::connect(server.options(Format::MessagePack))
        .await
        .expect("connect");
    let rtt = client.ping().await.expect("ping");
    assert!(rtt < common::WAIT);
}

#[tokio::test]
async fn server_refusals_are_typed_errors() {
    let server = TestServer::start();
    let client = Client::connect(server.options(Format::Json))
        .await
        .expect("connect");
    assert!(matches!(
        client
            .subscribe("not a channel!", SubscribeOptions::default())
            .await,
        Err(ClientError::Server {
            code: ErrorCode::InvalidChannel,
            ..
        })
    ));
    assert!(matches!(
        client.publish("", json!(1)).await,
        Err(ClientError::Server {
            code: ErrorCode::InvalidChannel,
            ..
        })
    ));

    let first = client
        .subscribe("once", SubscribeOptions::default())
        .await
        .expect("subscribe");
    assert!(matches!(
        client.subscribe("once", SubscribeOptions::default()).await,
        Err(ClientError::AlreadySubscribed(channel)) if channel == "once"
    ));
    // Dropping a subscription frees the channel for a new one.
    drop(first);
    let mut again = client
        .subscribe("once", SubscribeOptions::default())
        .await
        .expect("subscribe again after drop");
    assert!(matches!(
        next_event(&mut again).await,
        SubscriptionEvent::Subscribed { .. }
    ));
}

#[tokio::test]
async fn connecting_where_nothing_listens_fails_at_once() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    drop(listener);
    let result = Client::connect(ClientOptions::new(url)).await;
    assert!(
        matches!(result, Err(ClientError::Connect { .. })),
        "{result:?}"
    );
}

#[tokio::test]
async fn close_ends_subscriptions_and_later_requests() {
    let server = TestServer::start();
    let client = Client::connect(server.options(Format::Json))
        .await
        .expect("connect");
    let mut sub = client
        .subscribe("bye", SubscribeOptions::default())
        .await
        .expect("subscribe");
    client.close().await;
    let mut state = client.state();
    let closed = wait_state(&mut state, ConnectionState::is_closed).await;
    assert!(matches!(
        closed,
        ConnectionState::Disconnected(d) if d.code == Some(1000) && !d.reconnect
    ));
    assert!(matches!(
        sub.recv().await,
        Ok(SubscriptionEvent::Subscribed { .. })
    ));
    assert!(matches!(sub.recv().await, Err(ClientError::Closed)));
    assert!(matches!(
        client.publish("bye", json!(1)).await,
        Err(ClientError::Closed)
    ));
}

#[tokio::test]
async fn json_null_is_valid_data() {
    let server = TestServer::start();
    for format in [Format::Json, Format::MessagePack] {
        let client = Client::connect(server.options(format))
            .await
            .expect("connect");
        client
            .publish("nulls", serde_json::Value::Null)
            .await
            .expect("null is JSON");
    }
}
