//! Authentication against the real server: connection tokens from a function or fixed,
//! `refresh` pushes answered on the same connection, expiry, refused tokens, subscription
//! tokens for private channels, and tokens kept out of logs.

mod common;

use std::{
    io,
    sync::{Arc, Mutex},
    time::Duration,
};

use common::{SECRET, Setup, TestServer, WAIT, mint, next_event, wait_state};
use serde_json::json;
use switchboard_client::{
    Client, ClientError, ClientOptions, ConnectionState, ErrorCode, Format, SubscribeCause,
    SubscribeOptions, SubscriptionEvent, TokenError, TokenSource,
};
use tokio::sync::watch;

const AUTH: (&str, &str) = ("SWITCHBOARD_AUTH__HMAC_SECRET", SECRET);
/// Short-lived tokens get their `refresh` push a second before they expire.
const REFRESH_EARLY: (&str, &str) = ("SWITCHBOARD_AUTH__REFRESH_BEFORE_SECONDS", "1");
/// No grace after `exp`: an expired token is refused at once.
const NO_LEEWAY: (&str, &str) = ("SWITCHBOARD_AUTH__LEEWAY_SECONDS", "0");

/// A token function whose `n`th call (from 1) answers `answer(n)`; `calls` counts them.
struct Counted {
    source: TokenSource,
    calls: watch::Receiver<usize>,
    /// Every token handed out, to check that none shows in logs.
    issued: Arc<Mutex<Vec<String>>>,
}

fn counted(answer: impl Fn(usize) -> Result<String, String> + Send + Sync + 'static) -> Counted {
    let (calls_tx, calls) = watch::channel(0usize);
    let issued = Arc::new(Mutex::new(Vec::new()));
    let record = issued.clone();
    let source = TokenSource::from_fn(move || {
        let mut n = 0;
        calls_tx.send_modify(|calls| {
            *calls += 1;
            n = *calls;
        });
        let answer = answer(n);
        if let Ok(token) = &answer {
            record.lock().expect("not poisoned").push(token.clone());
        }
        async move { answer.map_err(io::Error::other) }
    });
    Counted {
        source,
        calls,
        issued,
    }
}

impl Counted {
    fn calls(&self) -> usize {
        *self.calls.borrow()
    }

    /// Waits until the function was called at least `n` times.
    async fn wait_calls(&mut self, n: usize) {
        let reached = tokio::time::timeout(
            Duration::from_secs(30),
            self.calls.wait_for(|calls| *calls >= n),
        )
        .await
        .is_ok_and(|waited| waited.is_ok());
        assert!(
            reached,
            "the token function was called {} times, not {n}",
            self.calls()
        );
    }
}

fn with_token(server: &TestServer, token: TokenSource) -> ClientOptions {
    ClientOptions {
        token: Some(token),
        ..server.options(Format::Json)
    }
}

fn connected(client: &Client) -> (String, Option<String>) {
    match &*client.state().borrow() {
        ConnectionState::Connected { client, user, .. } => (client.clone(), user.clone()),
        other => panic!("not connected: {other:?}"),
    }
}

/// A client of user `user` with a long-lived fixed token.
async fn user_client(server: &TestServer, user: &str) -> Client {
    let token = TokenSource::fixed(mint(SECRET, user, 3600, None));
    Client::connect(with_token(server, token))
        .await
        .expect("connect")
}

#[tokio::test]
async fn token_function_authenticates_the_user_and_reconnects_reuse_a_valid_token() {
    let server = TestServer::start_with_env(&[AUTH]);
    let tokens = counted(|_| Ok(mint(SECRET, "alice", 3600, None)));
    let client = Client::connect(with_token(&server, tokens.source.clone()))
        .await
        .expect("connect");
    let (first_id, user) = connected(&client);
    assert_eq!(user.as_deref(), Some("alice"));
    let _sub = client
        .subscribe("room", SubscribeOptions::default())
        .await
        .expect("subscribe");
    let presence = client.presence("room").await.expect("presence");
    assert_eq!(presence.len(), 1);
    assert_eq!(presence[0].user.as_deref(), Some("alice"));

    client.debug_drop_connection().await;
    let mut state = client.state();
    wait_state(
        &mut state,
        |s| matches!(s, ConnectionState::Connected { client, .. } if *client != first_id),
    )
    .await;
    assert_eq!(
        tokens.calls(),
        1,
        "a reconnect reuses the token while it is valid"
    );
}

#[tokio::test]
async fn connecting_without_a_token_where_one_is_required_is_unauthorized() {
    let server = TestServer::start_with_env(&[AUTH]);
    let refused = Client::connect(server.options(Format::Json)).await;
    assert!(
        matches!(&refused, Err(ClientError::Unauthorized { reason }) if reason.contains("requires a connection token")),
        "{refused:?}"
    );
}

#[tokio::test]
async fn refresh_push_is_answered_without_reconnecting_while_publications_keep_arriving_in_order() {
    let server = TestServer::start_with_env(&[AUTH, REFRESH_EARLY]);
    // Each token lives two seconds: the server asks for a new one about a second after the
    // last, and closes the connection if it does not get it.
    let mut tokens = counted(|_| Ok(mint(SECRET, "alice", 2, None)));
    let client = Client::connect(with_token(&server, tokens.source.clone()))
        .await
        .expect("connect");
    let (client_id, _) = connected(&client);
    let mut sub = client
        .subscribe("feed", SubscribeOptions::default())
        .await
        .expect("subscribe");
    assert!(matches!(
        next_event(&mut sub).await,
        SubscriptionEvent::Subscribed { .. }
    ));

    let publisher = user_client(&server, "publisher").await;
    let (stop_tx, mut stop) = watch::channel(false);
    let publishing = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        let mut published = 0u64;
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    publisher.publish("feed", json!(published + 1)).await.expect("publish");
                    published += 1;
                }
                _ = stop.changed() => break,
            }
        }
        publisher
            .publish("feed", json!("end"))
            .await
            .expect("publish");
        published + 1
    });
    let reading = tokio::spawn(async move {
        let mut offsets = Vec::new();
        loop {
            match next_event(&mut sub).await {
                SubscriptionEvent::Publication(p) => {
                    offsets.push(p.offset);
                    if p.data.as_json() == Some(&json!("end")) {
                        return offsets;
                    }
                }
                other => panic!("only publications expected, got {other:?}"),
            }
        }
    });

    // Three refreshes: the connection outlives the first token twice over.
    tokens.wait_calls(4).await;
    stop_tx.send(true).expect("publisher running");
    let published = publishing.await.expect("publisher");
    let offsets = tokio::time::timeout(WAIT, reading)
        .await
        .expect("all publications arrive")
        .expect("reader");
    assert_eq!(offsets, (1..=published).collect::<Vec<_>>());
    assert_eq!(
        connected(&client).0,
        client_id,
        "refreshed on the same connection"
    );
}

#[tokio::test]
async fn expiry_of_a_fixed_token_ends_the_client_with_token_expired() {
    let server = TestServer::start_with_env(&[AUTH, REFRESH_EARLY]);
    let token = TokenSource::fixed(mint(SECRET, "alice", 2, None));
    let client = Client::connect(with_token(&server, token))
        .await
        .expect("connect");
    let mut sub = client
        .subscribe("news", SubscribeOptions::default())
        .await
        .expect("subscribe");
    assert!(matches!(
        next_event(&mut sub).await,
        SubscriptionEvent::Subscribed { .. }
    ));
    let mut state = client.state();
    let closed = wait_state(&mut state, ConnectionState::is_closed).await;
    assert!(
        matches!(&closed, ConnectionState::Disconnected(d) if d.code == Some(4003) && !d.reconnect),
        "{closed:?}"
    );
    let ended = tokio::time::timeout(WAIT, sub.recv()).await.expect("ends");
    assert!(matches!(ended, Err(ClientError::TokenExpired)), "{ended:?}");
    assert!(matches!(
        client.publish("news", json!(1)).await,
        Err(ClientError::TokenExpired)
    ));
}

#[tokio::test]
async fn expired_connection_gets_a_new_token_reconnects_and_recovers() {
    let server = TestServer::start_with_env(&[AUTH, REFRESH_EARLY, NO_LEEWAY]);
    // The first token lives two seconds and its refresh fails; the token after the close
    // (4003) lives long.
    let mut tokens = counted(|n| match n {
        1 => Ok(mint(SECRET, "alice", 2, None)),
        2 => Err("the backend is down".into()),
        _ => Ok(mint(SECRET, "alice", 3600, None)),
    });
    let client = Client::connect(with_token(&server, tokens.source.clone()))
        .await
        .expect("connect");
    let (first_id, _) = connected(&client);
    let mut sub = client
        .subscribe("feed", SubscribeOptions::default())
        .await
        .expect("subscribe");
    assert!(matches!(
        next_event(&mut sub).await,
        SubscriptionEvent::Subscribed { .. }
    ));
    let publisher = user_client(&server, "publisher").await;
    let (stop_tx, mut stop) = watch::channel(false);
    let publishing = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        let mut published = 0u64;
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    publisher.publish("feed", json!(published + 1)).await.expect("publish");
                    published += 1;
                }
                _ = stop.changed() => break,
            }
        }
        publisher
            .publish("feed", json!("end"))
            .await
            .expect("publish");
        published + 1
    });

    tokens.wait_calls(3).await;
    let mut state = client.state();
    wait_state(
        &mut state,
        |s| matches!(s, ConnectionState::Connected { client, .. } if *client != first_id),
    )
    .await;
    stop_tx.send(true).expect("publisher running");
    let published = publishing.await.expect("publisher");

    let mut offsets = Vec::new();
    let mut resubscribed = Vec::new();
    while offsets.last() != Some(&published) {
        match next_event(&mut sub).await {
            SubscriptionEvent::Publication(p) => offsets.push(p.offset),
            SubscriptionEvent::Subscribed {
                cause, recovered, ..
            } => resubscribed.push((cause, recovered)),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(offsets, (1..=published).collect::<Vec<_>>());
    assert_eq!(resubscribed, [(SubscribeCause::Reconnect, Some(true))]);
    assert_eq!(tokens.calls(), 3);
}

#[tokio::test]
async fn forged_token_is_unauthorized_and_never_retried() {
    let server = TestServer::start_with_env(&[AUTH, REFRESH_EARLY, NO_LEEWAY]);
    let forged = mint(
        "another-secret-0123456789abcdef-012345",
        "alice",
        3600,
        None,
    );

    let tokens = counted({
        let forged = forged.clone();
        move |_| Ok(forged.clone())
    });
    let refused = Client::connect(with_token(&server, tokens.source.clone())).await;
    assert!(
        matches!(&refused, Err(ClientError::Unauthorized { reason }) if reason.contains("signature")),
        "{refused:?}"
    );
    assert_eq!(tokens.calls(), 1);

    // A forged token in answer to a refresh push ends the connection for good (4501).
    let mut tokens = counted({
        let forged = forged.clone();
        move |n| match n {
            1 => Ok(mint(SECRET, "alice", 2, None)),
            _ => Ok(forged.clone()),
        }
    });
    let client = Client::connect(with_token(&server, tokens.source.clone()))
        .await
        .expect("connect");
    tokens.wait_calls(2).await;
    let mut state = client.state();
    let closed = wait_state(&mut state, ConnectionState::is_closed).await;
    assert!(
        matches!(&closed, ConnectionState::Disconnected(d) if d.code == Some(4501)),
        "{closed:?}"
    );
    assert!(matches!(
        client.ping().await,
        Err(ClientError::Unauthorized { .. })
    ));
    assert_eq!(tokens.calls(), 2, "no reconnect loop");

    // A forged token on a reconnect (after the expiry) ends the client too.
    let mut tokens = counted(move |n| match n {
        1 => Ok(mint(SECRET, "alice", 2, None)),
        2 => Err("the backend is down".into()),
        _ => Ok(forged.clone()),
    });
    let client = Client::connect(with_token(&server, tokens.source.clone()))
        .await
        .expect("connect");
    tokens.wait_calls(3).await;
    let mut state = client.state();
    wait_state(&mut state, ConnectionState::is_closed).await;
    assert!(matches!(
        client.ping().await,
        Err(ClientError::Unauthorized { .. })
    ));
    assert_eq!(tokens.calls(), 3, "no reconnect loop");
}

const PRIVATE: &str = "
[namespaces.private]
subscribe = \"nobody\"
";

#[tokio::test]
async fn subscription_token_opens_a_private_channel_and_is_fetched_for_every_resubscribe() {
    let config = format!("[auth]\nhmac_secret = \"{SECRET}\"\n{PRIVATE}");
    let server = TestServer::start_with(Setup {
        config: Some(&config),
        ..Setup::default()
    });
    let client = user_client(&server, "bob").await;
    let denied = client
        .subscribe("private:plans", SubscribeOptions::default())
        .await;
    assert!(
        matches!(
            &denied,
            Err(ClientError::Server {
                code: ErrorCode::PermissionDenied,
                ..
            })
        ),
        "{denied:?}"
    );

    let tokens = counted(|_| Ok(mint(SECRET, "bob", 60, Some("private:plans"))));
    let mut sub = client
        .subscribe(
            "private:plans",
            SubscribeOptions {
                token: Some(tokens.source.clone()),
                ..SubscribeOptions::default()
            },
        )
        .await
        .expect("subscribe with a token");
    assert!(matches!(
        next_event(&mut sub).await,
        SubscriptionEvent::Subscribed { .. }
    ));
    let publisher = user_client(&server, "boss").await;
    publisher
        .publish("private:plans", json!("first"))
        .await
        .expect("publish");
    assert!(
        matches!(next_event(&mut sub).await, SubscriptionEvent::Publication(p) if p.offset == 1)
    );

    client.debug_drop_connection().await;
    publisher
        .publish("private:plans", json!("while away"))
        .await
        .expect("publish");
    assert!(matches!(
        next_event(&mut sub).await,
        SubscriptionEvent::Subscribed {
            cause: SubscribeCause::Reconnect,
            recovered: Some(true),
            ..
        }
    ));
    assert!(
        matches!(next_event(&mut sub).await, SubscriptionEvent::Publication(p) if p.offset == 2)
    );
    assert_eq!(tokens.calls(), 2, "called again for the resubscription");

    // A token for another channel is refused, and the connection stays.
    let wrong = client
        .subscribe(
            "private:other",
            SubscribeOptions {
                token: Some(TokenSource::fixed(mint(
                    SECRET,
                    "bob",
                    60,
                    Some("private:plans"),
                ))),
                ..SubscribeOptions::default()
            },
        )
        .await;
    assert!(
        matches!(
            &wrong,
            Err(ClientError::Server {
                code: ErrorCode::Unauthorized,
                ..
            })
        ),
        "{wrong:?}"
    );
    // A failing token function fails the subscribe call with its error.
    let failing = counted(|_| Err("no token for you".into()));
    let failed = client
        .subscribe(
            "private:third",
            SubscribeOptions {
                token: Some(failing.source.clone()),
                ..SubscribeOptions::default()
            },
        )
        .await;
    assert!(
        matches!(&failed, Err(ClientError::Token(TokenError::Failed(e))) if e.to_string() == "no token for you"),
        "{failed:?}"
    );
    client.ping().await.expect("still connected");
}

/// Collects what `tracing` writes, for checking logs.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().expect("not poisoned").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn tokens_never_show_in_debug_output_or_logs() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    // The test runtime is single-threaded: the connection task logs on this thread.
    let _guard = tracing::subscriber::set_default(subscriber);

    let config =
        format!("[auth]\nhmac_secret = \"{SECRET}\"\nrefresh_before_seconds = 1\n{PRIVATE}");
    let server = TestServer::start_with(Setup {
        config: Some(&config),
        ..Setup::default()
    });
    let mut tokens = counted(|_| Ok(mint(SECRET, "carol", 2, None)));
    let sub_tokens = counted(|_| Ok(mint(SECRET, "carol", 60, Some("private:x"))));
    let options = with_token(&server, tokens.source.clone());
    let sub_options = SubscribeOptions {
        token: Some(sub_tokens.source.clone()),
        ..SubscribeOptions::default()
    };
    let client = Client::connect(options.clone()).await.expect("connect");
    let mut sub = client
        .subscribe("private:x", sub_options.clone())
        .await
        .expect("subscribe");
    // The second refresh push comes after the first refresh was answered.
    tokens.wait_calls(3).await;
    let state = format!("{:?}", *client.state().borrow());
    client.debug_drop_connection().await;
    assert!(matches!(
        next_event(&mut sub).await,
        SubscriptionEvent::Subscribed { .. }
    ));
    assert!(matches!(
        next_event(&mut sub).await,
        SubscriptionEvent::Subscribed {
            cause: SubscribeCause::Reconnect,
            ..
        }
    ));

    let fixed = mint(SECRET, "carol", 60, None);
    let shown = [
        format!("{options:?}"),
        format!("{sub_options:?}"),
        format!("{:?}", TokenSource::fixed(fixed.clone())),
        format!("{client:?}"),
        format!("{sub:?}"),
        state,
    ];
    let logs = String::from_utf8_lossy(&captured.0.lock().expect("not poisoned")).into_owned();
    assert!(logs.contains("connection token refreshed"), "{logs}");
    let issued: Vec<String> = [&tokens, &sub_tokens]
        .iter()
        .flat_map(|t| t.issued.lock().expect("not poisoned").clone())
        .chain([fixed])
        .collect();
    assert!(issued.len() >= 4);
    for token in &issued {
        // The signature is the secret part; the payload is not, but stays out too.
        for text in shown.iter().chain([&logs]) {
            assert!(!text.contains(token.as_str()), "a token shows in: {text}");
            let signature = token.rsplit('.').next().expect("three parts");
            assert!(!text.contains(signature), "a signature shows in: {text}");
        }
    }
}
