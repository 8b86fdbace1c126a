//! [`Subscription`]: the receiving end of one channel subscription, with its options
//! ([`SubscribeOptions`]) and events ([`SubscriptionEvent`]).
//!
//! The connection task writes events into the subscription's bounded buffer and never
//! waits for the reader. What happens when the reader falls behind, when the connection
//! drops, or when the stream from the server has a hole, is decided in `connection.rs` and
//! documented on [`Subscription`].

use std::{
    pin::Pin,
    sync::{Arc, OnceLock},
    task::{Context, Poll},
    time::Duration,
};

use futures_util::Stream;
use tokio::{
    sync::{mpsc, oneshot},
    time::Instant,
};

use crate::{
    connection::Instruction,
    error::ClientError,
    publication::{ClientInfo, Publication, StreamPosition},
    token::TokenSource,
};

/// The smallest subscription buffer: after falling behind, a subscription waits for room for
/// its `Subscribed` event and at least one publication, so that every lag cycle progresses.
pub(crate) const MIN_BUFFER: usize = 2;

/// How to subscribe.
///
/// A private channel (its namespace says `subscribe = "nobody"`) takes a subscription token
/// signed by the application:
///
/// ```
/// use switchboard_client::{SubscribeOptions, TokenSource};
///
/// let options = SubscribeOptions {
///     token: Some(TokenSource::from_fn(|| async {
///         // ask the application's backend for a token for this channel
///         Ok::<_, std::io::Error>("eyJhbGciOi…".to_owned())
///     })),
///     ..SubscribeOptions::default()
/// };
/// assert!(!format!("{options:?}").contains("eyJ"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribeOptions {
    /// Resume after this position: the server sends the publications missed since (or
    /// says they are lost with [`SubscriptionEvent::Unrecovered`]). `None` starts at the
    /// channel's current position.
    pub since: Option<StreamPosition>,
    /// Receive [`SubscriptionEvent::Join`] and [`SubscriptionEvent::Leave`].
    pub join_leave: bool,
    /// Capacity of this subscription's event buffer, in events (at least 2). Default: 1024.
    pub buffer: usize,
    /// The subscription token (a JWT with `channel` = this channel and `sub` = the
    /// connection's user), sent in `subscribe`. A function is called before every
    /// (re)subscription, within [`ClientOptions::token_timeout`](crate::ClientOptions::token_timeout);
    /// when it fails for the first subscription, [`Client::subscribe`](crate::Client::subscribe)
    /// returns [`ClientError::Token`], later the resubscription is retried with the reconnect
    /// backoff. Default: `None`.
    pub token: Option<TokenSource>,
}

impl Default for SubscribeOptions {
    fn default() -> Self {
        Self {
            since: None,
            join_leave: false,
            buffer: 1024,
            token: None,
        }
    }
}

/// What a subscription receives.
#[derive(Debug, Clone, PartialEq)]
pub enum SubscriptionEvent {
    /// The server accepted a (re)subscription. Delivery continues after `position`. This is
    /// the first event of every subscription, and comes again after each resubscription.
    Subscribed {
        /// The stream position the server reported; publications after it follow.
        position: StreamPosition,
        /// With a `since` position: whether every publication after it was recovered (they
        /// come next, as [`SubscriptionEvent::Publication`]). `Some(false)` is always
        /// followed by [`SubscriptionEvent::Unrecovered`]. `None` without `since`.
        recovered: Option<bool>,
        /// Why this (re)subscription happened.
        cause: SubscribeCause,
    },
    /// The next publication of the channel, in offset order, never twice.
    Publication(Publication),
    /// Someone subscribed to the channel (only with `join_leave`).
    Join(ClientInfo),
    /// Someone unsubscribed from the channel (only with `join_leave`).
    Leave(ClientInfo),
    /// Publications after `since` up to `position` are lost (history expired or trimmed,
    /// too many missed, or the stream restarted with a new epoch): reload your state.
    /// Publications after `position` follow.
    Unrecovered {
        /// The last position delivered before the loss.
        since: StreamPosition,
        /// The position delivery resumes after.
        position: StreamPosition,
    },
}

/// Why a [`SubscriptionEvent::Subscribed`] happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscribeCause {
    /// The call to [`Client::subscribe`](crate::Client::subscribe).
    Initial,
    /// The connection dropped and came back.
    Reconnect,
    /// The reader fell behind and the buffer filled: the client unsubscribed, waited for
    /// the reader to empty half the buffer, and resubscribed from the last buffered
    /// publication. Join/leave events in between are not recovered (ask
    /// [`Client::presence`](crate::Client::presence) if you track presence).
    Lagged,
    /// The server's stream skipped offsets or changed epoch; the client resubscribed from
    /// the last delivered publication to recover the hole.
    Resync,
}

/// The events of one channel subscription, made by [`Client::subscribe`](crate::Client::subscribe).
///
/// Read it with [`recv`](Self::recv) or as a [`Stream`]. Events come in order;
/// publications in offset order, with no gap and no duplicate, across reconnects: after a
/// drop the client resubscribes with `since` = the last publication it buffered, and when
/// the server cannot recover, says so with [`SubscriptionEvent::Unrecovered`].
///
/// **Bounded buffer.** The connection task never waits for a reader. When this
/// subscription's buffer ([`SubscribeOptions::buffer`]) is full, the client stops
/// delivering, unsubscribes on the server, and resubscribes with `since` once the reader
/// has emptied half the buffer; the missed publications then come from the server's
/// history ([`SubscribeCause::Lagged`]) or are reported lost. Memory stays bounded and no
/// loss is silent.
///
/// **End.** After the last event, `recv` returns the reason: [`ClientError::Closed`] (the
/// client was closed), [`ClientError::Terminated`] (the server closed for good), or the
/// server's error when a resubscription was refused. Dropping the subscription unsubscribes
/// (best effort, without waiting); [`unsubscribe`](Self::unsubscribe) waits for the reply.
/// The connection stays open while a subscription exists, even if every
/// [`Client`](crate::Client) handle is dropped.
#[derive(Debug)]
pub struct Subscription {
    channel: String,
    generation: u64,
    events: mpsc::Receiver<SubscriptionEvent>,
    end: Arc<OnceLock<ClientError>>,
    instructions: Option<mpsc::Sender<Instruction>>,
    request_timeout: Duration,
    last: Option<StreamPosition>,
    ended: bool,
}

/// What the client handle gives the connection task to start a subscription.
#[derive(Debug)]
pub(crate) struct SubscribeOrder {
    pub(crate) channel: String,
    pub(crate) generation: u64,
    pub(crate) options: SubscribeOptions,
    pub(crate) events: mpsc::Sender<SubscriptionEvent>,
    pub(crate) end: Arc<OnceLock<ClientError>>,
    pub(crate) reply: oneshot::Sender<Result<StreamPosition, ClientError>>,
    pub(crate) deadline: Instant,
}

/// The receiving half of a subscription before the server accepted it.
#[derive(Debug)]
pub(crate) struct PendingSubscription {
    pub(crate) channel: String,
    pub(crate) generation: u64,
    pub(crate) events: mpsc::Receiver<SubscriptionEvent>,
    pub(crate) end: Arc<OnceLock<ClientError>>,
}

/// Makes the two halves of a subscription: the order for the task, the receiver for the
/// caller.
pub(crate) fn subscription_pair(
    channel: &str,
    generation: u64,
    options: SubscribeOptions,
    deadline: Instant,
) -> (
    SubscribeOrder,
    PendingSubscription,
    oneshot::Receiver<Result<StreamPosition, ClientError>>,
) {
    let (events_tx, events_rx) = mpsc::channel(options.buffer.max(MIN_BUFFER));
    let end = Arc::new(OnceLock::new());
    let (reply, reply_rx) = oneshot::channel();
    let order = SubscribeOrder {
        channel: channel.to_owned(),
        generation,
        options,
        events: events_tx,
        end: end.clone(),
        reply,
        deadline,
    };
    let pending = PendingSubscription {
        channel: channel.to_owned(),
        generation,
        events: events_rx,
        end,
    };
    (order, pending, reply_rx)
}

impl PendingSubscription {
    /// The subscription, once the server accepted it.
    pub(crate) fn accepted(
        self,
        instructions: mpsc::Sender<Instruction>,
        request_timeout: Duration,
    ) -> Subscription {
        Subscription {
            channel: self.channel,
            generation: self.generation,
            events: self.events,
            end: self.end,
            instructions: Some(instructions),
            request_timeout,
            last: None,
            ended: false,
        }
    }
}

impl Subscription {
    /// The channel.
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// The position of the last publication returned by this subscription, or of the last
    /// `Subscribed`/`Unrecovered` position when no publication came since. Pass it as
    /// [`SubscribeOptions::since`] to resume in a later subscription.
    pub fn last_position(&self) -> Option<&StreamPosition> {
        self.last.as_ref()
    }

    /// The next event, or why the subscription ended.
    ///
    /// Cancel-safe: dropping the future loses no event. After it returned an error, it
    /// returns the same error again.
    pub async fn recv(&mut self) -> Result<SubscriptionEvent, ClientError> {
        match self.events.recv().await {
            Some(event) => {
                self.observe(&event);
                Ok(event)
            }
            None => {
                self.ended = true;
                Err(self.end_reason())
            }
        }
    }

    /// Unsubscribes and waits for the server's reply (within the request timeout).
    ///
    /// Events still buffered are discarded. Offline, this only forgets the subscription.
    pub async fn unsubscribe(mut self) -> Result<(), ClientError> {
        let Some(instructions) = self.instructions.take() else {
            return Ok(());
        };
        let deadline = Instant::now() + self.request_timeout;
        let (reply, reply_rx) = oneshot::channel();
        let instruction = Instruction::Unsubscribe {
            channel: self.channel.clone(),
            generation: self.generation,
            reply: Some(reply),
            deadline,
        };
        let end = self.end.clone();
        let ended = || end.get().cloned().unwrap_or(ClientError::Closed);
        let exchange = async {
            instructions.send(instruction).await.map_err(|_| ended())?;
            reply_rx.await.map_err(|_| ended())?
        };
        tokio::time::timeout_at(deadline, exchange)
            .await
            .unwrap_or(Err(ClientError::Timeout))
    }

    fn observe(&mut self, event: &SubscriptionEvent) {
        match event {
            SubscriptionEvent::Publication(p) => self.last = Some(p.position()),
            SubscriptionEvent::Subscribed { position, .. }
            | SubscriptionEvent::Unrecovered { position, .. } => {
                let newer = match &self.last {
                    Some(last) => last.epoch != position.epoch || last.offset < position.offset,
                    None => true,
                };
                if newer {
                    self.last = Some(position.clone());
                }
            }
            SubscriptionEvent::Join(_) | SubscriptionEvent::Leave(_) => {}
        }
    }

    fn end_reason(&self) -> ClientError {
        self.end.get().cloned().unwrap_or(ClientError::Closed)
    }
}

impl Stream for Subscription {
    type Item = Result<SubscriptionEvent, ClientError>;

    /// Yields events, then the end reason once as `Err`, then `None`.
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.ended {
            return Poll::Ready(None);
        }
        match self.events.poll_recv(cx) {
            Poll::Ready(Some(event)) => {
                self.observe(&event);
                Poll::Ready(Some(Ok(event)))
            }
            Poll::Ready(None) => {
                self.ended = true;
                Poll::Ready(Some(Err(self.end_reason())))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(instructions) = self.instructions.take() {
            // Best effort: when the queue is full, the task notices the closed buffer on its
            // next delivery or sweep and unsubscribes then.
            let _ = instructions.try_send(Instruction::Unsubscribe {
                channel: std::mem::take(&mut self.channel),
                generation: self.generation,
                reply: None,
                deadline: Instant::now() + self.request_timeout,
            });
        }
    }
}
