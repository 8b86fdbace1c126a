//! [`Client`]: one registered connection's handle on the hub — subscribe (with recovery),
//! unsubscribe, publish as this client. Dropping it leaves every channel and presence.

use std::sync::{Arc, Mutex};

use crate::{
    access::{Action, Identity},
    error::HubError,
    history::PageFrom,
    hub::{Committed, HistoryPage, Hub, PresenceCount, Recovery, lock},
    names::{ChannelName, ClientId, UserId},
    outbox::Outbox,
    publication::{ClientInfo, Payload, StreamPosition},
};

/// Options of [`Client::subscribe`].
#[derive(Debug, Clone, Default)]
pub struct SubscribeOptions {
    /// Recover what was published after this position (from a previous subscription).
    pub since: Option<StreamPosition>,
    /// Receive join/leave events for this channel.
    pub join_leave: bool,
    /// The application granted this subscription (a subscription token, a `channels`
    /// claim, a subscribe hook's answer): the channel's `subscribe` rule and user limit
    /// are not checked.
    pub granted: bool,
}

/// A connection registered with the hub. Not `Clone`: exactly one owner, whose drop cleans up.
pub struct Client {
    hub: Hub,
    info: Arc<ClientInfo>,
    identity: Identity,
    outbox: Arc<Outbox>,
    subscriptions: Mutex<Vec<ChannelName>>,
}

impl Client {
    pub(crate) fn new(
        hub: Hub,
        info: Arc<ClientInfo>,
        identity: Identity,
        outbox: Arc<Outbox>,
    ) -> Self {
        Self {
            hub,
            info,
            identity,
            outbox,
            subscriptions: Mutex::default(),
        }
    }

    /// The connection's id.
    pub fn id(&self) -> &ClientId {
        &self.info.client
    }

    /// The connection's user, if authenticated.
    pub fn user(&self) -> Option<&UserId> {
        self.info.user.as_ref()
    }

    /// Who this connection is, as the permission rules see it.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// Who this connection is, as others see it.
    pub fn info(&self) -> &Arc<ClientInfo> {
        &self.info
    }

    /// The queue the hub delivers to; the connection's task drains it.
    pub fn outbox(&self) -> &Arc<Outbox> {
        &self.outbox
    }

    /// The hub this client is registered with.
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// Subscribes to `channel`. With `since`, the reply holds the publications missed after
    /// that position (`recovered: Some(true)`), or `recovered: Some(false)` when they are no
    /// longer available. Every publication after the returned position is queued to this
    /// client's outbox, in order, with nothing between the recovered ones and the live ones.
    pub async fn subscribe(
        &self,
        channel: &ChannelName,
        options: SubscribeOptions,
    ) -> Result<Recovery, HubError> {
        if !options.granted {
            self.hub
                .authorize(&self.identity, channel, Action::Subscribe)?;
        }
        if options.join_leave && !self.hub.channel_options(channel).join_leave {
            return Err(HubError::NotAvailable(
                "join/leave events are off for this channel",
            ));
        }
        {
            // Reserve the slot first: the subscription itself may wait for the store.
            let mut subs = lock(&self.subscriptions);
            if subs.contains(channel) {
                return Err(HubError::AlreadySubscribed);
            }
            let max = self.hub.config().max_subscriptions_per_client;
            if subs.len() >= max {
                return Err(HubError::TooManySubscriptions(max));
            }
            subs.push(channel.clone());
        }
        let limit = self.hub.config().max_recovered;
        let result = self
            .hub
            .recover_then(
                channel,
                options.since.as_ref(),
                limit,
                true,
                |ch, state, _| {
                    debug_assert!(!state.is_subscribed(&self.info.client));
                    state.add(
                        &ch.name,
                        self.info.clone(),
                        self.outbox.clone(),
                        options.join_leave,
                    );
                },
            )
            .await;
        if result.is_err() {
            lock(&self.subscriptions).retain(|c| c != channel);
        }
        result
    }

    /// Unsubscribes from `channel`.
    pub fn unsubscribe(&self, channel: &ChannelName) -> Result<(), HubError> {
        let mut subs = lock(&self.subscriptions);
        let Some(i) = subs.iter().position(|c| c == channel) else {
            return Err(HubError::NotSubscribed);
        };
        subs.swap_remove(i);
        self.hub.unsubscribe_client(channel, &self.info.client);
        Ok(())
    }

    /// The channels this client is subscribed to.
    pub fn subscriptions(&self) -> Vec<ChannelName> {
        lock(&self.subscriptions).clone()
    }

    /// Publishes to `channel` with this client's info attached, when the channel lets
    /// clients publish. Resolves once the channel's durability is met.
    pub async fn publish(
        &self,
        channel: &ChannelName,
        data: Payload,
    ) -> Result<StreamPosition, HubError> {
        self.submit(channel, data).await?.await
    }

    /// Accepts a publication as this client (see [`Hub::submit`]).
    pub async fn submit(
        &self,
        channel: &ChannelName,
        data: Payload,
    ) -> Result<Committed, HubError> {
        self.hub
            .authorize(&self.identity, channel, Action::Publish)?;
        self.hub
            .submit(channel, data, Some(self.info.clone()))
            .await
    }

    /// A page of `channel`'s history, when the channel lets clients read it.
    pub async fn history(
        &self,
        channel: &ChannelName,
        from: Option<PageFrom>,
        limit: usize,
    ) -> Result<HistoryPage, HubError> {
        self.hub
            .authorize(&self.identity, channel, Action::ReadHistory)?;
        self.hub.history(channel, from, limit).await
    }

    /// Who is subscribed to `channel`, when this connection may read its presence.
    pub fn presence(&self, channel: &ChannelName) -> Result<Vec<Arc<ClientInfo>>, HubError> {
        self.hub
            .authorize(&self.identity, channel, Action::ReadPresence)?;
        self.hub.presence(channel)
    }

    /// How many are subscribed to `channel`, when this connection may read its presence.
    pub fn presence_count(&self, channel: &ChannelName) -> Result<PresenceCount, HubError> {
        self.hub
            .authorize(&self.identity, channel, Action::ReadPresence)?;
        self.hub.presence_count(channel)
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let subs = std::mem::take(&mut *lock(&self.subscriptions));
        for channel in &subs {
            self.hub.unsubscribe_client(channel, &self.info.client);
        }
        self.hub.forget_client(&self.info);
    }
}
