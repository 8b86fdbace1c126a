//! [`Client`]: the cloneable handle to one connection, and the user-message receiver
//! [`Messages`].
//!
//! Every method turns into an [`Instruction`] for the connection task (`connection.rs`),
//! sent over a bounded queue, and waits for the reply on a oneshot, all within one
//! deadline (`request_timeout`). The handle never touches the socket.

use std::{
    sync::{
        Arc, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use futures_util::Stream;
use tokio::{
    sync::{Semaphore, broadcast, mpsc, oneshot, watch},
    time::Instant,
};
use tokio_util::sync::CancellationToken;

use crate::{
    connection::{Connection, Instruction, Request, Wiring},
    error::ClientError,
    history::{History, HistoryOptions},
    options::ClientOptions,
    publication::{ClientInfo, Data, StreamPosition},
    state::ConnectionState,
    subscription::{SubscribeOptions, Subscription, subscription_pair},
    wire::{Clients, ReplyBody},
};

/// A connection to a switchboard server, over its native WebSocket protocol.
///
/// Cheap to clone; every clone drives the same connection. One background task owns the
/// socket: it answers the server's pings, treats a silent server as dead, reconnects with
/// jittered exponential backoff after a drop (not after a terminal close code: 4500–4999,
/// or 1000),
/// and resubscribes every [`Subscription`] so that delivery continues with no gap and no
/// duplicate.
///
/// Every request has a deadline ([`ClientOptions::request_timeout`]) that covers waiting
/// for a queue slot, for a reconnect, and for the reply. At most
/// [`ClientOptions::max_in_flight`] requests wait at once. A request whose connection drops
/// before its reply fails with [`ClientError::Disconnected`]; it is not resent.
///
/// The connection closes on [`close`](Self::close), or when every `Client` clone and every
/// `Subscription` is dropped.
///
/// ```no_run
/// use serde_json::json;
/// use switchboard_client::{Client, ClientOptions, SubscribeOptions, SubscriptionEvent};
///
/// # async fn demo() -> Result<(), switchboard_client::ClientError> {
/// let client = Client::connect(ClientOptions::new("http://127.0.0.1:8000")).await?;
/// let mut news = client.subscribe("news", SubscribeOptions::default()).await?;
/// let position = client.publish("news", json!({"title": "hello"})).await?;
/// println!("published at offset {} of epoch {}", position.offset, position.epoch);
/// loop {
///     match news.recv().await? {
///         SubscriptionEvent::Publication(p) => println!("{}: {:?}", p.offset, p.data),
///         SubscriptionEvent::Unrecovered { .. } => println!("missed some; reload state"),
///         _ => {}
///     }
/// }
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Client {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    instructions: mpsc::Sender<Instruction>,
    state: watch::Receiver<ConnectionState>,
    /// Never read: only a source for new receivers (`resubscribe`), so it does not keep
    /// the channel open.
    messages: broadcast::Receiver<UserMessage>,
    end: Arc<OnceLock<ClientError>>,
    token: CancellationToken,
    in_flight: Semaphore,
    request_timeout: Duration,
    connect_timeout: Duration,
    next_generation: AtomicU64,
}

/// A message pushed to this connection's user (`message` push), outside any channel.
#[derive(Debug, Clone, PartialEq)]
pub struct UserMessage {
    /// The data.
    pub data: Data,
}

/// Counts of a channel's presence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PresenceCount {
    /// Connections subscribed.
    pub clients: u64,
    /// Distinct users among them.
    pub users: u64,
}

impl Client {
    /// Connects to the server and waits for its `connect` reply (within
    /// [`ClientOptions::connect_timeout`]).
    ///
    /// The first connection is not retried: a wrong URL, a server that is down, an
    /// untrusted certificate ([`ClientError::Connect`]), a refused token
    /// ([`ClientError::Unauthorized`], [`ClientError::TokenExpired`]) or a failing token
    /// function ([`ClientError::Token`]) fail here. Later drops are retried until
    /// [`close`](Self::close); a refused token, a forbidden connection, or an expired token
    /// that cannot be renewed end the client with that error. Must be called inside a Tokio
    /// runtime; the connection task is spawned on it.
    ///
    /// ```no_run
    /// use switchboard_client::{Client, ClientOptions, Format};
    ///
    /// # async fn demo() -> Result<(), switchboard_client::ClientError> {
    /// let client = Client::connect(ClientOptions {
    ///     name: Some("worker-1".into()),
    ///     format: Format::MessagePack,
    ///     ..ClientOptions::new("http://127.0.0.1:8000")
    /// })
    /// .await?;
    /// println!("round trip: {:?}", client.ping().await?);
    /// client.close().await;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// Authenticated, over TLS, with a token fetched from the application's backend whenever
    /// the server asks for a new one:
    ///
    /// ```no_run
    /// use switchboard_client::{Client, ClientError, ClientOptions, ConnectionState, TokenSource};
    ///
    /// # async fn fetch_token_from_backend() -> Result<String, std::io::Error> { Ok(String::new()) }
    /// # async fn demo() -> Result<(), ClientError> {
    /// let options = ClientOptions {
    ///     token: Some(TokenSource::from_fn(fetch_token_from_backend)),
    ///     ..ClientOptions::new("https://rt.example.com")
    /// };
    /// match Client::connect(options).await {
    ///     Ok(client) => {
    ///         if let ConnectionState::Connected { user, .. } = &*client.state().borrow() {
    ///             println!("connected as {user:?}");
    ///         }
    ///     }
    ///     Err(ClientError::Unauthorized { reason }) => eprintln!("token refused: {reason}"),
    ///     Err(other) => return Err(other),
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect(options: ClientOptions) -> Result<Self, ClientError> {
        let url = options.websocket_url()?;
        let tls = if url.starts_with("wss://") {
            // Reading the system's roots and the CA file is blocking file I/O.
            let ca_file = options.ca_file.clone();
            let built =
                tokio::task::spawn_blocking(move || crate::tls::client_config(ca_file.as_deref()))
                    .await
                    .map_err(|_| ClientError::Closed)?;
            Some(built?)
        } else {
            None
        };
        let (instructions_tx, instructions_rx) = mpsc::channel(options.command_buffer.max(1));
        let (state_tx, state_rx) = watch::channel(ConnectionState::Connecting { attempt: 0 });
        let (messages_tx, messages_rx) = broadcast::channel(options.message_buffer.max(1));
        let end = Arc::new(OnceLock::new());
        let token = CancellationToken::new();
        let shared = Shared {
            instructions: instructions_tx,
            state: state_rx,
            messages: messages_rx,
            end: end.clone(),
            token: token.clone(),
            in_flight: Semaphore::new(options.max_in_flight.max(1)),
            request_timeout: options.request_timeout,
            connect_timeout: options.connect_timeout,
            next_generation: AtomicU64::new(1),
        };
        let wiring = Wiring {
            instructions: instructions_rx,
            state: state_tx,
            messages: messages_tx,
            end,
            token,
        };
        let (first_tx, first_rx) = oneshot::channel();
        tokio::spawn(Connection::new(url, options, tls, wiring).run(first_tx));
        match first_rx.await {
            Ok(Ok(())) => Ok(Self {
                shared: Arc::new(shared),
            }),
            Ok(Err(error)) => Err(error),
            Err(_) => Err(ClientError::Closed),
        }
    }

    /// The connection state, as a `watch` receiver: read it, or wait for changes.
    pub fn state(&self) -> watch::Receiver<ConnectionState> {
        self.shared.state.clone()
    }

    /// Subscribes to `channel` and waits for the server to accept.
    ///
    /// The subscription's first event is
    /// [`SubscriptionEvent::Subscribed`](crate::SubscriptionEvent::Subscribed), followed by the publications recovered after
    /// `options.since`, if any. Fails with [`ClientError::AlreadySubscribed`] when this client
    /// already subscribes to `channel`, and with [`ClientError::Server`] when the server
    /// refuses (`invalid_channel`, `limit_exceeded`, …). Channel names are validated by the
    /// server only.
    ///
    /// ```no_run
    /// use switchboard_client::{Client, StreamPosition, SubscribeOptions, SubscriptionEvent};
    ///
    /// # async fn demo(client: Client, saved: StreamPosition) -> Result<(), switchboard_client::ClientError> {
    /// let options = SubscribeOptions { since: Some(saved), ..SubscribeOptions::default() };
    /// let mut sub = client.subscribe("orders", options).await?;
    /// while let Ok(event) = sub.recv().await {
    ///     if let SubscriptionEvent::Unrecovered { .. } = event {
    ///         // history no longer holds what we missed: reload from the source of truth
    ///     }
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn subscribe(
        &self,
        channel: &str,
        options: SubscribeOptions,
    ) -> Result<Subscription, ClientError> {
        let deadline = Instant::now() + self.shared.request_timeout;
        let generation = self.shared.next_generation.fetch_add(1, Ordering::Relaxed);
        let (order, pending, reply) = subscription_pair(channel, generation, options, deadline);
        let exchange = async {
            self.shared
                .instructions
                .send(Instruction::Subscribe(order))
                .await
                .map_err(|_| self.shared.ended())?;
            reply.await.map_err(|_| self.shared.ended())?
        };
        tokio::time::timeout_at(deadline, exchange)
            .await
            .unwrap_or(Err(ClientError::Timeout))?;
        Ok(pending.accepted(
            self.shared.instructions.clone(),
            self.shared.request_timeout,
        ))
    }

    /// Publishes `data` to `channel`; returns the publication's position.
    ///
    /// ```no_run
    /// use bytes::Bytes;
    /// use serde_json::json;
    /// # async fn demo(client: switchboard_client::Client) -> Result<(), switchboard_client::ClientError> {
    /// client.publish("news", json!({"title": "hi"})).await?;
    /// client.publish("raw", Bytes::from_static(b"\x00\x01")).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn publish(
        &self,
        channel: &str,
        data: impl Into<Data>,
    ) -> Result<StreamPosition, ClientError> {
        let request = Request::Publish {
            channel: channel.to_owned(),
            data: data.into(),
        };
        self.request(request).await?.position("publish")
    }

    /// Who is subscribed to `channel`.
    pub async fn presence(&self, channel: &str) -> Result<Vec<ClientInfo>, ClientError> {
        let request = Request::Presence {
            channel: channel.to_owned(),
        };
        match self.request(request).await?.clients {
            Some(Clients::List(clients)) => Ok(clients),
            _ => Err(ClientError::Protocol(
                "presence reply without a clients list".into(),
            )),
        }
    }

    /// How many connections and users are subscribed to `channel`.
    pub async fn presence_count(&self, channel: &str) -> Result<PresenceCount, ClientError> {
        let request = Request::PresenceCount {
            channel: channel.to_owned(),
        };
        let body = self.request(request).await?;
        match (body.clients, body.users) {
            (Some(Clients::Count(clients)), Some(users)) => Ok(PresenceCount { clients, users }),
            _ => Err(ClientError::Protocol(
                "presence_count reply without clients and users counts".into(),
            )),
        }
    }

    /// Reads `channel`'s history.
    pub async fn history(
        &self,
        channel: &str,
        options: HistoryOptions,
    ) -> Result<History, ClientError> {
        let request = Request::History {
            channel: channel.to_owned(),
            options,
        };
        let mut body = self.request(request).await?;
        let position = body.position("history")?;
        let publications = body.take_publications(channel, &position.epoch)?;
        Ok(History {
            publications,
            position,
        })
    }

    /// Calls `method` on the application's backend through the server's rpc hook
    /// (`docs/hooks.md`) and returns the data it answered (`Null` when none). The
    /// backend's refusal is [`ClientError::Server`] with `permission_denied`; a backend
    /// that did not answer in time, `backend_unavailable`; a server without an rpc hook,
    /// `not_available`.
    pub async fn rpc(
        &self,
        method: &str,
        data: impl Into<Data>,
    ) -> Result<serde_json::Value, ClientError> {
        let request = Request::Rpc {
            method: method.to_owned(),
            data: data.into(),
        };
        Ok(self.request(request).await?.data.unwrap_or_default())
    }

    /// Measures a round trip to the server (a `ping` command and its reply).
    pub async fn ping(&self) -> Result<Duration, ClientError> {
        let start = Instant::now();
        self.request(Request::Ping).await?;
        Ok(start.elapsed())
    }

    /// A receiver of the messages pushed to this connection's user from now on.
    ///
    /// Receivers share a buffer of [`ClientOptions::message_buffer`] messages; one that falls
    /// behind gets [`ClientError::Lagged`] and continues with the oldest kept message.
    pub fn messages(&self) -> Messages {
        Messages {
            receiver: self.shared.messages.resubscribe(),
            end: self.shared.end.clone(),
        }
    }

    /// Closes the connection (close code 1000) and waits, up to the connect timeout, for the
    /// task to finish. Requests still waiting fail with [`ClientError::Closed`];
    /// subscriptions end with it after their buffered events. Idempotent.
    pub async fn close(&self) {
        self.shared.token.cancel();
        let mut state = self.shared.state.clone();
        let _ = tokio::time::timeout(
            self.shared.connect_timeout + Duration::from_secs(1),
            state.wait_for(ConnectionState::is_closed),
        )
        .await;
    }

    /// Drops the socket without a close frame, as a network failure would; the client then
    /// reconnects and recovers. For tests of recovery.
    #[doc(hidden)]
    pub async fn debug_drop_connection(&self) {
        let _ = self
            .shared
            .instructions
            .send(Instruction::DropConnection)
            .await;
    }

    async fn request(&self, request: Request) -> Result<ReplyBody, ClientError> {
        let shared = &self.shared;
        let deadline = Instant::now() + shared.request_timeout;
        let exchange = async {
            let _permit = shared
                .in_flight
                .acquire()
                .await
                .map_err(|_| ClientError::Closed)?;
            let (reply, reply_rx) = oneshot::channel();
            shared
                .instructions
                .send(Instruction::Request {
                    request,
                    reply,
                    deadline,
                })
                .await
                .map_err(|_| shared.ended())?;
            reply_rx.await.map_err(|_| shared.ended())?
        };
        tokio::time::timeout_at(deadline, exchange)
            .await
            .unwrap_or(Err(ClientError::Timeout))
    }
}

impl Shared {
    /// Why the connection task is gone.
    fn ended(&self) -> ClientError {
        self.end.get().cloned().unwrap_or(ClientError::Closed)
    }
}

/// Messages pushed to this connection's user, from [`Client::messages`].
#[derive(Debug)]
pub struct Messages {
    receiver: broadcast::Receiver<UserMessage>,
    end: Arc<OnceLock<ClientError>>,
}

impl Messages {
    /// The next message; [`ClientError::Lagged`] when this receiver missed some (it goes on
    /// with the next call); the client's end reason once it is closed.
    pub async fn recv(&mut self) -> Result<UserMessage, ClientError> {
        match self.receiver.recv().await {
            Ok(message) => Ok(message),
            Err(broadcast::error::RecvError::Lagged(skipped)) => {
                Err(ClientError::Lagged { skipped })
            }
            Err(broadcast::error::RecvError::Closed) => {
                Err(self.end.get().cloned().unwrap_or(ClientError::Closed))
            }
        }
    }

    /// The messages as a stream, ending when the client is closed. Lag shows as an `Err`
    /// item, after which the stream continues.
    pub fn into_stream(self) -> impl Stream<Item = Result<UserMessage, ClientError>> {
        futures_util::stream::unfold(self, |mut messages| async move {
            match messages.recv().await {
                Err(ClientError::Lagged { skipped }) => {
                    Some((Err(ClientError::Lagged { skipped }), messages))
                }
                Err(_) => None,
                Ok(message) => Some((Ok(message), messages)),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Client;
    use crate::{SubscribeOptions, Subscription};

    fn is_send<T: Send>(_: &T) {}

    /// Compile-time check: handles and their futures can move across tasks.
    #[allow(dead_code)]
    fn handles_and_futures_are_send(client: &Client, subscription: &mut Subscription) {
        is_send(client);
        is_send(subscription);
        is_send(&client.publish("c", serde_json::json!(1)));
        is_send(&client.subscribe("c", SubscribeOptions::default()));
        is_send(&client.history("c", Default::default()));
        is_send(&client.ping());
        is_send(&client.close());
        is_send(&subscription.recv());
        is_send(&client.messages().recv());
    }

    #[test]
    fn client_is_send_and_sync() {
        fn both<T: Send + Sync>() {}
        both::<Client>();
        both::<Subscription>();
    }
}
