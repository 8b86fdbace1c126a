//! Per-channel options and the namespaces that set them.
//!
//! Every channel gets the default [`ChannelOptions`]; a channel whose name starts with a
//! configured namespace followed by `:` gets that namespace's overrides instead. The longest
//! matching namespace wins, so `chat:private` can refine `chat`: a channel
//! `chat:private:42` takes `chat:private`, `chat:lobby` takes `chat`, `news` the defaults.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use serde::{Deserialize, Serialize};

use crate::{access::Access, names::ChannelName};

/// When a publisher hears that its publication was accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// After the store committed it: every acknowledged publication survives a crash.
    /// Subscribers receive it after the commit too. Concurrent publishers share commits.
    #[default]
    Sync,
    /// At once; the store commits in the background. Subscribers receive it immediately. A
    /// crash can lose the last acknowledged publications; the stream then gets a new epoch,
    /// so clients are told `recovered: false` instead of missing them silently.
    Async,
}

/// What a channel keeps and allows. See `docs/configuration.md` for each default's reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChannelOptions {
    /// Publications kept for recovery and history (0: none, recovery always fails).
    pub history_size: usize,
    /// How long a publication is kept, in seconds.
    pub history_ttl_seconds: u64,
    /// Keep the stream in the store (surviving restarts). When false, history lives in
    /// memory only and the stream starts over (new epoch) when the server restarts.
    pub persist: bool,
    /// When publishers are answered: after the commit (`sync`) or at once (`async`).
    pub durability: Durability,
    /// Whether presence (who is subscribed) may be asked for.
    pub presence: bool,
    /// Whether subscribers may ask for join/leave events.
    pub join_leave: bool,
    /// Which client connections may subscribe (a grant from the application, such as a
    /// subscription token, lets a connection subscribe whatever this says).
    pub subscribe: Access,
    /// Which client connections may publish (the server API always may).
    pub publish: Access,
    /// Which client connections may read presence (when `presence` is on).
    pub read_presence: Access,
    /// Which client connections may read history (recovery on subscribe is allowed to
    /// whoever may subscribe).
    pub read_history: Access,
    /// Whether a `#` in a channel name limits it to the users listed after the last `#`
    /// (`dialog#42,43`: only users 42 and 43 may subscribe, publish or read it).
    pub user_limited: bool,
    /// Whether a client's subscribe is also put to the application's backend (the server's
    /// subscribe hook), which may refuse it. Grants (subscription tokens, the `channels`
    /// claim) skip the hook.
    pub subscribe_hook: bool,
    /// Whether a client's publication is first put to the application's backend (the
    /// server's publish hook), which may refuse it or replace its data.
    pub publish_hook: bool,
}

impl Default for ChannelOptions {
    fn default() -> Self {
        Self {
            history_size: 300,
            history_ttl_seconds: 86_400,
            persist: true,
            durability: Durability::Sync,
            presence: true,
            join_leave: true,
            subscribe: Access::ANYONE,
            publish: Access::ANYONE,
            read_presence: Access::ANYONE,
            read_history: Access::ANYONE,
            user_limited: true,
            subscribe_hook: false,
            publish_hook: false,
        }
    }
}

impl ChannelOptions {
    /// How long a publication is kept.
    pub fn history_ttl(&self) -> Duration {
        Duration::from_secs(self.history_ttl_seconds)
    }

    /// Whether publications go to the store.
    pub fn stored(&self) -> bool {
        self.persist && self.history_size > 0
    }
}

/// A namespace's overrides; unset fields take the defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NamespaceOptions {
    /// See [`ChannelOptions::history_size`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history_size: Option<usize>,
    /// See [`ChannelOptions::history_ttl_seconds`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history_ttl_seconds: Option<u64>,
    /// See [`ChannelOptions::persist`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub persist: Option<bool>,
    /// See [`ChannelOptions::durability`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub durability: Option<Durability>,
    /// See [`ChannelOptions::presence`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub presence: Option<bool>,
    /// See [`ChannelOptions::join_leave`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub join_leave: Option<bool>,
    /// See [`ChannelOptions::subscribe`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscribe: Option<Access>,
    /// See [`ChannelOptions::publish`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub publish: Option<Access>,
    /// See [`ChannelOptions::read_presence`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_presence: Option<Access>,
    /// See [`ChannelOptions::read_history`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_history: Option<Access>,
    /// See [`ChannelOptions::user_limited`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_limited: Option<bool>,
    /// See [`ChannelOptions::subscribe_hook`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscribe_hook: Option<bool>,
    /// See [`ChannelOptions::publish_hook`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub publish_hook: Option<bool>,
}

impl NamespaceOptions {
    fn over(&self, base: &ChannelOptions) -> ChannelOptions {
        ChannelOptions {
            history_size: self.history_size.unwrap_or(base.history_size),
            history_ttl_seconds: self.history_ttl_seconds.unwrap_or(base.history_ttl_seconds),
            persist: self.persist.unwrap_or(base.persist),
            durability: self.durability.unwrap_or(base.durability),
            presence: self.presence.unwrap_or(base.presence),
            join_leave: self.join_leave.unwrap_or(base.join_leave),
            subscribe: self
                .subscribe
                .clone()
                .unwrap_or_else(|| base.subscribe.clone()),
            publish: self.publish.clone().unwrap_or_else(|| base.publish.clone()),
            read_presence: self
                .read_presence
                .clone()
                .unwrap_or_else(|| base.read_presence.clone()),
            read_history: self
                .read_history
                .clone()
                .unwrap_or_else(|| base.read_history.clone()),
            user_limited: self.user_limited.unwrap_or(base.user_limited),
            subscribe_hook: self.subscribe_hook.unwrap_or(base.subscribe_hook),
            publish_hook: self.publish_hook.unwrap_or(base.publish_hook),
        }
    }
}

/// Why a namespace configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("namespace {name:?}: {reason}")]
pub struct NamespaceError {
    /// The namespace as configured.
    pub name: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// The default options and every namespace's, resolved once.
#[derive(Debug, Clone)]
pub struct Namespaces {
    defaults: Arc<ChannelOptions>,
    // Longest name first, so the first match is the most specific.
    by_name: Vec<(String, Arc<ChannelOptions>)>,
}

impl Default for Namespaces {
    fn default() -> Self {
        Self {
            defaults: Arc::new(ChannelOptions::default()),
            by_name: Vec::new(),
        }
    }
}

impl Namespaces {
    /// Resolves `namespaces` over `defaults`. A name must be a valid channel name prefix
    /// without a trailing `:`.
    pub fn new(
        defaults: ChannelOptions,
        namespaces: &BTreeMap<String, NamespaceOptions>,
    ) -> Result<Self, NamespaceError> {
        let mut by_name = Vec::with_capacity(namespaces.len());
        for (name, overrides) in namespaces {
            let refuse = |reason| NamespaceError {
                name: name.clone(),
                reason,
            };
            if name.is_empty() || name.ends_with(':') || name.starts_with(':') {
                return Err(refuse("must be non-empty and not start or end with ':'"));
            }
            if ChannelName::parse(&format!("{name}:x")).is_err() {
                return Err(refuse(
                    "may only use the characters of channel names: A-Z a-z 0-9 : _ - . / @ = , #",
                ));
            }
            by_name.push((format!("{name}:"), Arc::new(overrides.over(&defaults))));
        }
        by_name.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
        Ok(Self {
            defaults: Arc::new(defaults),
            by_name,
        })
    }

    /// The options of `channel`.
    pub fn options(&self, channel: &ChannelName) -> Arc<ChannelOptions> {
        let name = channel.as_str();
        self.by_name
            .iter()
            .find(|(prefix, _)| name.starts_with(prefix.as_str()))
            .map_or_else(|| self.defaults.clone(), |(_, o)| o.clone())
    }

    /// The namespace `channel` belongs to (`None` for the defaults).
    pub fn namespace_of(&self, channel: &ChannelName) -> Option<&str> {
        let name = channel.as_str();
        self.by_name
            .iter()
            .find(|(prefix, _)| name.starts_with(prefix.as_str()))
            .map(|(prefix, _)| &prefix[..prefix.len() - 1])
    }

    /// The default options.
    pub fn defaults(&self) -> &ChannelOptions {
        &self.defaults
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ch(name: &str) -> ChannelName {
        ChannelName::parse(name).unwrap()
    }

    #[test]
    fn the_longest_namespace_wins_and_unset_fields_take_the_defaults() {
        let mut map = BTreeMap::new();
        map.insert(
            "chat".to_owned(),
            NamespaceOptions {
                history_size: Some(1000),
                ..Default::default()
            },
        );
        map.insert(
            "chat:private".to_owned(),
            NamespaceOptions {
                presence: Some(false),
                ..Default::default()
            },
        );
        let ns = Namespaces::new(ChannelOptions::default(), &map).unwrap();
        assert_eq!(ns.options(&ch("chat:lobby")).history_size, 1000);
        assert_eq!(ns.namespace_of(&ch("chat:lobby")), Some("chat"));
        let private = ns.options(&ch("chat:private:7"));
        assert!(!private.presence);
        assert_eq!(
            private.history_size, 300,
            "siblings do not inherit each other"
        );
        assert_eq!(ns.namespace_of(&ch("chat:private:7")), Some("chat:private"));
        assert_eq!(*ns.options(&ch("chat")), ChannelOptions::default());
        assert_eq!(*ns.options(&ch("chatter:x")), ChannelOptions::default());
        assert_eq!(ns.namespace_of(&ch("news")), None);
    }

    #[test]
    fn bad_namespace_names_are_refused() {
        for bad in ["", "chat:", ":chat", "sp ace", "star*"] {
            let mut map = BTreeMap::new();
            map.insert(bad.to_owned(), NamespaceOptions::default());
            assert!(
                Namespaces::new(ChannelOptions::default(), &map).is_err(),
                "{bad:?}"
            );
        }
    }
}
