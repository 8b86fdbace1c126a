//! Client behaviour against a scripted peer, for what the real server cannot be made to do on
//! demand: terminal close codes (4503 needs the application's hook), pushes that race the
//! subscribe reply, duplicate and missing offsets, silence, and the exact frames of the token
//! exchange.

mod common;

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use common::{
    fake::{FakeConnection, FakeServer},
    next_event, offsets, wait_state,
};
use serde_json::json;
use switchboard_client::{
    Backoff, Client, ClientError, ClientOptions, ConnectionState, Data, StreamPosition,
    SubscribeCause, SubscribeOptions, Subscription, SubscriptionEvent, TokenError, TokenSource,
    close_code,
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

/// Connects with `token` as the connection token source; checks that `connect` carries
/// `expected` and answers it for user `alice`.
async fn connect_with_token(
    fake: &mut FakeServer,
    token: TokenSource,
    expected: &str,
) -> (Client, FakeConnection) {
    let options = ClientOptions {
        token: Some(token),
        ..options(fake)
    };
    let (client, conn) = tokio::join!(Client::connect(options), async {
        let mut conn = fake.accept().await;
        let connect = conn.recv().await;
        assert_eq!(connect["cmd"], "connect");
        assert_eq!(connect["token"], expected);
        conn.send(json!({"id": connect["id"], "result": {
            "client": "fake-client", "version": "0", "ping_interval": 25, "user": "alice",
        }}))
        .await;
        conn
    });
    (client.expect("connect"), conn)
}

#[tokio::test]
async fn connect_carries_the_token_and_the_reply_names_the_user() {
    let mut fake = FakeServer::start().await;
    let (client, _conn) = connect_with_token(&mut fake, TokenSource::fixed("t-1"), "t-1").await;
    assert!(matches!(
        &*client.state().borrow(),
        ConnectionState::Connected { user: Some(user), .. } if user == "alice"
    ));
}

#[tokio::test]
async fn refresh_push_is_answered_with_a_new_token_on_the_same_connection() {
    let mut fake = FakeServer::start().await;
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let source = TokenSource::from_fn(move || {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        async move { Ok::<_, std::io::Error>(format!("t-{n}")) }
    });
    let (client, mut conn) = connect_with_token(&mut fake, source, "t-1").await;
    conn.send(json!({"push": "refresh", "expires": 2_000_000_000u64}))
        .await;
    let refresh = conn.recv().await;
    assert_eq!(refresh["cmd"], "refresh");
    assert_eq!(refresh["token"], "t-2");
    conn.send(json!({"id": refresh["id"], "result": {"expires": 2_000_000_100u64}}))
        .await;
    // Requests keep flowing on the same connection.
    let (pong, ()) = tokio::join!(client.ping(), async {
        let ping = conn.recv().await;
        assert_eq!(ping["cmd"], "ping");
        conn.send(json!({"id": ping["id"], "result": {}})).await;
    });
    pong.expect("ping");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert!(!fake.connects_within(Duration::from_millis(200)).await);
}

#[tokio::test]
async fn unauthorized_and_forbidden_closes_end_the_client_with_typed_errors() {
    for (code, reason) in [
        (close_code::UNAUTHORIZED, "invalid token signature"),
        (close_code::FORBIDDEN, "the connect hook refused"),
    ] {
        let mut fake = FakeServer::start().await;
        let (client, conn) = connect_with_token(&mut fake, TokenSource::fixed("t-1"), "t-1").await;
        let mut state = client.state();
        conn.disconnect(code, reason, false).await;
        let closed = wait_state(&mut state, ConnectionState::is_closed).await;
        assert!(
            matches!(&closed, ConnectionState::Disconnected(d) if d.code == Some(code)),
            "{closed:?}"
        );
        let error = client.publish("x", json!(1)).await;
        match code {
            close_code::UNAUTHORIZED => assert!(
                matches!(&error, Err(ClientError::Unauthorized { reason: r }) if r == reason),
                "{error:?}"
            ),
            _ => assert!(
                matches!(&error, Err(ClientError::Forbidden { reason: r }) if r == reason),
                "{error:?}"
            ),
        }
        assert!(!fake.connects_within(Duration::from_millis(300)).await);
    }
}

#[tokio::test]
async fn token_expired_close_ends_a_fixed_token_and_renews_a_token_function() {
    let mut fake = FakeServer::start().await;
    let (client, conn) = connect_with_token(&mut fake, TokenSource::fixed("t-1"), "t-1").await;
    let mut state = client.state();
    conn.disconnect(close_code::TOKEN_EXPIRED, "token expired", true)
        .await;
    wait_state(&mut state, ConnectionState::is_closed).await;
    assert!(matches!(
        client.publish("x", json!(1)).await,
        Err(ClientError::TokenExpired)
    ));
    assert!(!fake.connects_within(Duration::from_millis(300)).await);

    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let source = TokenSource::from_fn(move || {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        async move { Ok::<_, std::io::Error>(format!("t-{n}")) }
    });
    let (client, conn) = connect_with_token(&mut fake, source, "t-1").await;
    conn.disconnect(close_code::TOKEN_EXPIRED, "token expired", true)
        .await;
    let mut conn = fake.accept().await;
    let connect = conn.recv().await;
    assert_eq!(connect["token"], "t-2", "a new token after 4003");
    conn.send(json!({"id": connect["id"], "result": {"client": "again", "ping_interval": 25}}))
        .await;
    let mut state = client.state();
    wait_state(
        &mut state,
        |s| matches!(s, ConnectionState::Connected { client, .. } if client == "again"),
    )
    .await;
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

/// A token function answering `answer(n)` on its `n`th call (from 1), counting its calls.
fn numbered(
    answer: impl Fn(usize) -> Result<String, String> + Send + Sync + 'static,
) -> (TokenSource, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let source = TokenSource::from_fn(move || {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        let answer = answer(n);
        async move { answer.map_err(std::io::Error::other) }
    });
    (source, calls)
}

#[tokio::test]
async fn a_failing_token_function_fails_the_first_connect_before_any_connection() {
    let mut fake = FakeServer::start().await;
    let (source, calls) = numbered(|_| Err("no session".into()));
    let options = ClientOptions {
        token: Some(source),
        ..options(&fake)
    };
    let refused = Client::connect(options).await;
    assert!(
        matches!(&refused, Err(ClientError::Token(TokenError::Failed(e))) if e.to_string() == "no session"),
        "{refused:?}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert!(!fake.connects_within(Duration::from_millis(200)).await);
}

#[tokio::test]
async fn a_token_function_failing_while_reconnecting_is_retried_with_backoff() {
    let mut fake = FakeServer::start().await;
    let (source, calls) = numbered(|n| match n {
        2 => Err("backend restarting".into()),
        n => Ok(format!("t-{n}")),
    });
    let (client, conn) = connect_with_token(&mut fake, source, "t-1").await;
    let mut state = client.state();
    conn.disconnect(close_code::TOKEN_EXPIRED, "token expired", true)
        .await;
    let waiting = wait_state(
        &mut state,
        |s| matches!(s, ConnectionState::Disconnected(d) if d.token_error.is_some()),
    )
    .await;
    assert!(
        matches!(&waiting, ConnectionState::Disconnected(d) if d.reconnect && d.reason.contains("backend restarting")),
        "{waiting:?}"
    );
    let mut conn = fake.accept().await;
    let connect = conn.recv().await;
    assert_eq!(connect["token"], "t-3");
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn subscription_token_is_fetched_for_every_subscribe_and_a_failure_is_retried() {
    let mut fake = FakeServer::start().await;
    let (client, mut conn) = connect(&mut fake).await;
    let (source, calls) = numbered(|n| match n {
        2 => Err("backend restarting".into()),
        n => Ok(format!("s-{n}")),
    });
    let options = SubscribeOptions {
        token: Some(source),
        ..SubscribeOptions::default()
    };
    let (sub, ()) = tokio::join!(client.subscribe("private:x", options), async {
        let command = conn.recv().await;
        assert_eq!(command["cmd"], "subscribe");
        assert_eq!(command["token"], "s-1");
        conn.send(json!({"id": command["id"], "result": {"offset": 0, "epoch": "e"}}))
            .await;
    });
    let mut sub = sub.expect("subscribe");
    assert!(matches!(
        next_event(&mut sub).await,
        SubscriptionEvent::Subscribed { .. }
    ));
    conn.disconnect(close_code::DISCONNECTED, "reconnect please", true)
        .await;
    let mut conn = fake.accept().await;
    conn.handshake(25).await;
    // The second call fails; the resubscription waits and calls again.
    let resubscribe = conn.recv().await;
    assert_eq!(resubscribe["cmd"], "subscribe");
    assert_eq!(resubscribe["token"], "s-3");
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    conn.send(json!({"id": resubscribe["id"], "result": {"offset": 0, "epoch": "e", "recovered": true, "publications": []}}))
        .await;
    assert!(matches!(
        next_event(&mut sub).await,
        SubscriptionEvent::Subscribed {
            cause: SubscribeCause::Reconnect,
            ..
        }
    ));
}
