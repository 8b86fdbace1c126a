//! The subscription side of the connection task: starting and ending subscriptions,
//! routing pushes to their readers, applying subscribe replies (recovered publications,
//! `Unrecovered`), the lag path (a full buffer or a hole in the stream turns into an
//! unsubscribe and a later resubscription with `since`), and subscription tokens (a token
//! function is called before every (re)subscription; a failure ends a first subscription and
//! delays a resubscription by the reconnect backoff).
//!
//! Every delivery is a `try_send` into the subscription's bounded buffer; nothing here waits
//! for a reader. Publications are delivered in offset order, duplicates dropped by offset.

use std::sync::{Arc, OnceLock};

use tokio::{
    sync::{mpsc, mpsc::error::TrySendError, oneshot},
    time::Instant,
};
use tracing::{debug, info, warn};

use super::{Connection, Pending};
use crate::{
    error::ClientError,
    publication::{Publication, StreamPosition},
    subscription::{MIN_BUFFER, SubscribeCause, SubscribeOrder, SubscriptionEvent},
    token::{TokenError, TokenSource},
    wire::{self, Command, ReplyBody, Secret},
};

/// A subscription token function's answer: the channel, the subscription's generation,
/// and the token.
pub(super) type SubscriptionToken = (String, u64, Result<String, TokenError>);

/// One subscription, as the task tracks it.
pub(super) struct SubEntry {
    pub(super) generation: u64,
    pub(super) events: mpsc::Sender<SubscriptionEvent>,
    pub(super) end: Arc<OnceLock<ClientError>>,
    pub(super) join_leave: bool,
    pub(super) capacity: usize,
    /// The last position handed to the reader (publication, or subscribe reply): the
    /// `since` of the next resubscription.
    pub(super) position: Option<StreamPosition>,
    pub(super) phase: Phase,
    /// The cause reported in the next `Subscribed` event.
    pub(super) cause: SubscribeCause,
    /// The caller of `subscribe`, until the first reply.
    pub(super) initial: Option<(
        oneshot::Sender<Result<StreamPosition, ClientError>>,
        Instant,
    )>,
    /// Where the subscription token comes from, if the channel needs one.
    pub(super) token: Option<TokenSource>,
    /// Token function failures in a row, for the retry backoff.
    pub(super) token_failures: u32,
}

pub(super) enum Phase {
    /// Not subscribed on the current connection (offline, or waiting to be sent).
    Idle,
    /// Waiting for the subscription token function, before sending `subscribe`.
    Fetching,
    /// `subscribe` sent; pushes that arrive before the reply wait in `early` (bounded by
    /// the subscription's capacity; past it they are dropped and `overflowed` is set, and
    /// the subscription resynchronizes after the reply).
    Pending {
        early: Vec<SubscriptionEvent>,
        overflowed: bool,
    },
    /// Subscribed: pushes go to the reader.
    Active,
    /// Unsubscribed because the reader fell behind (or the stream had a hole); waiting in
    /// `lagged` for buffer space before resubscribing. Also waiting there for the backoff
    /// delay after the subscription token function failed.
    Lagged,
}

/// The result of handing events to a subscription's reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Delivery {
    /// Delivered (or skipped as a duplicate).
    Done,
    /// The buffer is full.
    Full,
    /// The reader dropped the subscription.
    Gone,
    /// The server's stream has a hole (offset skipped or epoch changed).
    Hole,
}

/// How to treat a hole while delivering publications.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OnHole {
    /// Live pushes: resubscribe from the last position, to recover it from history.
    Resync,
    /// A subscribe reply's publications: report the loss (resubscribing would get the
    /// same reply again).
    Report,
}

/// Ends a subscription: its reader gets `error` after the buffered events.
pub(super) fn end_subscription(mut entry: SubEntry, error: ClientError) {
    match entry.initial.take() {
        Some((reply, _)) => {
            let _ = reply.send(Err(error));
        }
        None => {
            let _ = entry.end.set(error);
        }
    }
    // Dropping `entry.events` closes the reader's buffer.
}

// === impl Connection: subscriptions ===

impl Connection {
    pub(super) fn on_subscribe(&mut self, order: SubscribeOrder) {
        if let Some(existing) = self.subs.get(&order.channel) {
            if !existing.events.is_closed() {
                let _ = order
                    .reply
                    .send(Err(ClientError::AlreadySubscribed(order.channel)));
                return;
            }
            // The previous reader is gone but its unsubscribe has not arrived yet.
            self.remove_sub(&order.channel);
        }
        let entry = SubEntry {
            generation: order.generation,
            events: order.events,
            end: order.end,
            join_leave: order.options.join_leave,
            capacity: order.options.buffer.max(MIN_BUFFER),
            position: order.options.since,
            phase: Phase::Idle,
            cause: SubscribeCause::Initial,
            initial: Some((order.reply, order.deadline)),
            token: order.options.token,
            token_failures: 0,
        };
        self.subs.insert(order.channel.clone(), entry);
        if self.online {
            self.send_subscribe(&order.channel);
        }
    }

    pub(super) fn on_unsubscribe(
        &mut self,
        channel: &str,
        generation: u64,
        reply: Option<oneshot::Sender<Result<(), ClientError>>>,
        deadline: Instant,
    ) {
        let ours = self
            .subs
            .get(channel)
            .is_some_and(|entry| entry.generation == generation);
        if !ours {
            if let Some(reply) = reply {
                let _ = reply.send(Ok(()));
            }
            return;
        }
        let on_server = self
            .subs
            .remove(channel)
            .is_some_and(|entry| matches!(entry.phase, Phase::Pending { .. } | Phase::Active));
        match reply {
            Some(reply) if on_server && self.online => {
                let id = self.take_id();
                self.send_frame(Some(id), Command::Unsubscribe { channel });
                self.pending
                    .insert(id, Pending::Unsubscribe { reply, deadline });
            }
            Some(reply) => {
                let _ = reply.send(Ok(()));
            }
            None if on_server && self.online => {
                self.send_frame(None, Command::Unsubscribe { channel });
            }
            None => {}
        }
    }

    /// Removes a subscription, unsubscribing on the server if it is subscribed there.
    pub(super) fn remove_sub(&mut self, channel: &str) -> Option<SubEntry> {
        let entry = self.subs.remove(channel)?;
        if self.online && matches!(entry.phase, Phase::Pending { .. } | Phase::Active) {
            self.send_frame(None, Command::Unsubscribe { channel });
        }
        Some(entry)
    }

    /// Subscribes `channel` on the server: gets its token first when it has a token source
    /// (a function's answer comes back through [`on_subscription_token`]), then sends
    /// `subscribe` with `since` = the last delivered position.
    ///
    /// [`on_subscription_token`]: Self::on_subscription_token
    pub(super) fn send_subscribe(&mut self, channel: &str) {
        let Some(entry) = self.subs.get_mut(channel) else {
            return;
        };
        let Some(source) = &entry.token else {
            self.write_subscribe(channel, None);
            return;
        };
        entry.phase = Phase::Fetching;
        let generation = entry.generation;
        match source.fixed_token() {
            Some(fixed) => self.on_subscription_token((channel.to_owned(), generation, fixed)),
            None => {
                let fetch = source.fetch(self.options.token_timeout);
                let owned = channel.to_owned();
                self.sub_tokens
                    .push(Box::pin(async move { (owned, generation, fetch.await) }));
            }
        }
    }

    /// A subscription token arrived (or could not be had).
    pub(super) fn on_subscription_token(
        &mut self,
        (channel, generation, fetched): SubscriptionToken,
    ) {
        let Some(entry) = self.subs.get_mut(&channel) else {
            return;
        };
        if entry.generation != generation || !matches!(entry.phase, Phase::Fetching) {
            return;
        }
        let error = match fetched {
            Ok(token) if self.online => {
                self.write_subscribe(&channel, Some(&token));
                return;
            }
            Ok(_) => {
                entry.phase = Phase::Idle;
                return;
            }
            Err(error) => error,
        };
        if entry.initial.is_some() {
            if let Some(entry) = self.subs.remove(&channel) {
                end_subscription(entry, ClientError::Token(error));
            }
            return;
        }
        // A resubscription: the subscription stays, and tries again after a backoff delay;
        // what it misses meanwhile is recovered then.
        let delay = self.options.backoff.delay(entry.token_failures);
        entry.token_failures = entry.token_failures.saturating_add(1);
        entry.phase = Phase::Lagged;
        warn!(%channel, %error, ?delay, "no subscription token; retrying");
        self.lagged.push(Box::pin(async move {
            tokio::time::sleep(delay).await;
            (channel, generation)
        }));
    }

    /// Sends `subscribe` for `channel`, with `token` when it needs one.
    fn write_subscribe(&mut self, channel: &str, token: Option<&str>) {
        let id = self.take_id();
        let Some(entry) = self.subs.get_mut(channel) else {
            return;
        };
        let command = Command::Subscribe {
            channel,
            since: entry.position.as_ref(),
            join_leave: entry.join_leave,
            token: token.map(Secret),
        };
        match wire::encode(self.options.format, Some(id), command) {
            Ok(frame) => {
                self.out.push(frame);
                entry.phase = Phase::Pending {
                    early: Vec::new(),
                    overflowed: false,
                };
                self.pending.insert(
                    id,
                    Pending::Subscribe {
                        channel: channel.to_owned(),
                        generation: entry.generation,
                    },
                );
            }
            Err(error) => {
                if let Some(entry) = self.subs.remove(channel) {
                    end_subscription(entry, error);
                }
            }
        }
    }

    pub(super) fn on_subscribe_reply(
        &mut self,
        channel: &str,
        generation: u64,
        result: Result<ReplyBody, ClientError>,
    ) {
        let Some(entry) = self.subs.get_mut(channel) else {
            return;
        };
        if entry.generation != generation || !matches!(entry.phase, Phase::Pending { .. }) {
            return;
        }
        let accepted =
            result.and_then(|body| body.position("subscribe").map(|position| (body, position)));
        let (mut body, position) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                warn!(%channel, %error, "subscribe refused");
                if let Some(entry) = self.subs.remove(channel) {
                    end_subscription(entry, error);
                }
                return;
            }
        };
        let Phase::Pending { early, overflowed } =
            std::mem::replace(&mut entry.phase, Phase::Active)
        else {
            return;
        };
        entry.token_failures = 0;
        let since = entry.position.clone();
        // With `since` the reply must say whether it recovered; silence counts as "no".
        let recovered = match since {
            Some(_) => Some(body.recovered.unwrap_or(false)),
            None => body.recovered,
        };
        let publications = body.take_publications(channel, &position.epoch);
        let mut outcome = entry.push(SubscriptionEvent::Subscribed {
            position: position.clone(),
            recovered,
            cause: entry.cause,
        });
        if outcome == Delivery::Done {
            outcome = match (since, recovered, publications) {
                (Some(since), Some(false), _) => entry.report_loss(since, position.clone()),
                (since, _, Err(error)) => {
                    warn!(%channel, %error, "undecodable recovered publications");
                    match since {
                        Some(since) => entry.report_loss(since, position.clone()),
                        None => entry.advance_to(&position),
                    }
                }
                (_, _, Ok(publications)) => {
                    let mut outcome = Delivery::Done;
                    for publication in publications {
                        outcome = entry.accept_publication(publication, OnHole::Report);
                        if outcome != Delivery::Done {
                            break;
                        }
                    }
                    if outcome == Delivery::Done {
                        outcome = entry.advance_to(&position);
                    }
                    outcome
                }
            };
        }
        for event in early {
            if outcome != Delivery::Done {
                break;
            }
            outcome = entry.accept(event);
        }
        if outcome == Delivery::Done && overflowed {
            outcome = Delivery::Full;
        }
        if let Some((reply, _)) = entry.initial.take() {
            let _ = reply.send(Ok(position));
        }
        self.after_delivery(channel, outcome);
    }

    /// Routes a push to its subscription.
    pub(super) fn route(&mut self, channel: &str, event: SubscriptionEvent) {
        let Some(entry) = self.subs.get_mut(channel) else {
            debug!(%channel, "push for a channel without subscription");
            return;
        };
        let outcome = match &mut entry.phase {
            Phase::Active => entry.accept(event),
            Phase::Pending { early, overflowed } => {
                if early.len() < entry.capacity {
                    early.push(event);
                } else {
                    *overflowed = true;
                }
                Delivery::Done
            }
            // Not subscribed here (anymore): what it missed is recovered on resubscribe.
            Phase::Idle | Phase::Fetching | Phase::Lagged => Delivery::Done,
        };
        self.after_delivery(channel, outcome);
    }

    fn after_delivery(&mut self, channel: &str, outcome: Delivery) {
        match outcome {
            Delivery::Done => {}
            Delivery::Full => self.start_lag(channel, SubscribeCause::Lagged),
            Delivery::Hole => self.start_lag(channel, SubscribeCause::Resync),
            Delivery::Gone => {
                debug!(%channel, "subscription dropped by its reader");
                self.remove_sub(channel);
            }
        }
    }

    /// Stops delivering to `channel` and unsubscribes; resubscribes from the last delivered
    /// position once the reader has emptied half its buffer.
    fn start_lag(&mut self, channel: &str, cause: SubscribeCause) {
        let Some(entry) = self.subs.get_mut(channel) else {
            return;
        };
        let on_server = matches!(entry.phase, Phase::Pending { .. } | Phase::Active);
        entry.phase = Phase::Lagged;
        entry.cause = cause;
        info!(%channel, ?cause, position = ?entry.position, "subscription behind; will resubscribe");
        let events = entry.events.clone();
        // Half the buffer, and at least room for `Subscribed` plus one publication, so each
        // lag cycle delivers something.
        let wanted = (entry.capacity / 2).max(MIN_BUFFER).min(entry.capacity);
        let generation = entry.generation;
        let owned = channel.to_owned();
        self.lagged.push(Box::pin(async move {
            // Permits are released at once: this only waits for space. An error means the
            // reader is gone, which `resume_lagged` checks.
            let _ = events.reserve_many(wanted).await;
            (owned, generation)
        }));
        if on_server && self.online {
            self.send_frame(None, Command::Unsubscribe { channel });
        }
    }

    pub(super) fn resume_lagged(&mut self, channel: &str, generation: u64) {
        let Some(entry) = self.subs.get_mut(channel) else {
            return;
        };
        if entry.generation != generation || !matches!(entry.phase, Phase::Lagged) {
            return;
        }
        if entry.events.is_closed() {
            self.subs.remove(channel);
            return;
        }
        entry.phase = Phase::Idle;
        if self.online {
            self.send_subscribe(channel);
        }
    }
}

// === impl SubEntry ===

impl SubEntry {
    fn push(&self, event: SubscriptionEvent) -> Delivery {
        match self.events.try_send(event) {
            Ok(()) => Delivery::Done,
            Err(TrySendError::Full(_)) => Delivery::Full,
            Err(TrySendError::Closed(_)) => Delivery::Gone,
        }
    }

    /// Delivers a live push.
    fn accept(&mut self, event: SubscriptionEvent) -> Delivery {
        match event {
            SubscriptionEvent::Publication(publication) => {
                self.accept_publication(publication, OnHole::Resync)
            }
            other => self.push(other),
        }
    }

    /// Delivers the next publication: duplicates (offset not after the last delivered one
    /// in the same epoch) are skipped; a hole is handled as `on_hole` says.
    fn accept_publication(&mut self, publication: Publication, on_hole: OnHole) -> Delivery {
        if let Some(last) = &self.position {
            let next = last.epoch == publication.epoch && publication.offset == last.offset + 1;
            if !next {
                if last.epoch == publication.epoch && publication.offset <= last.offset {
                    return Delivery::Done;
                }
                warn!(channel = %publication.channel, ?last, offset = publication.offset, epoch = %publication.epoch, "hole in the stream");
                match on_hole {
                    OnHole::Resync => return Delivery::Hole,
                    OnHole::Report => {
                        let before = StreamPosition::new(
                            publication.offset.saturating_sub(1),
                            publication.epoch.clone(),
                        );
                        let since = last.clone();
                        let outcome = self.report_loss(since, before);
                        if outcome != Delivery::Done {
                            return outcome;
                        }
                    }
                }
            }
        }
        let position = publication.position();
        let outcome = self.push(SubscriptionEvent::Publication(publication));
        if outcome == Delivery::Done {
            self.position = Some(position);
        }
        outcome
    }

    /// After a subscribe reply's publications: moves to the reply's position, reporting a
    /// loss if the publications did not reach it.
    fn advance_to(&mut self, position: &StreamPosition) -> Delivery {
        match &self.position {
            None => {
                self.position = Some(position.clone());
                Delivery::Done
            }
            Some(last) if last.epoch == position.epoch && last.offset >= position.offset => {
                Delivery::Done
            }
            Some(last) => {
                let since = last.clone();
                self.report_loss(since, position.clone())
            }
        }
    }

    fn report_loss(&mut self, since: StreamPosition, position: StreamPosition) -> Delivery {
        let outcome = self.push(SubscriptionEvent::Unrecovered {
            since,
            position: position.clone(),
        });
        if outcome == Delivery::Done {
            self.position = Some(position);
        }
        outcome
    }
}
