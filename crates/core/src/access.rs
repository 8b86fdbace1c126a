//! Who may do what on a channel: the [`Access`] rules of a namespace, the [`Identity`] of a
//! connection they are checked against, and user-limited channels.
//!
//! [`Client`](crate::Client) checks these before every subscribe, publish, history and
//! presence request; the server API is trusted and never checked. The server decides who a
//! connection is (tokens, backend hooks) and hands the hub an [`Identity`]; nothing here
//! reads a token or knows where claims came from. A grant from the application (a
//! subscription token, a `channels` claim) bypasses the rules: see
//! [`SubscribeOptions::granted`](crate::SubscribeOptions::granted).

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::names::{ChannelName, UserId};

/// Who a connection is, as the permission rules see it.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    /// The user; `None` for an anonymous connection.
    pub user: Option<UserId>,
    /// The claims of the connection's token (or what the connect hook returned), for claim
    /// rules. `None` when the connection presented none.
    pub claims: Option<Arc<Map<String, Value>>>,
}

impl Identity {
    /// An anonymous connection with no claims.
    pub fn anonymous() -> Self {
        Self::default()
    }

    /// An authenticated user with no claims.
    pub fn user(user: UserId) -> Self {
        Self {
            user: Some(user),
            claims: None,
        }
    }

    /// The claim at `path` (dot-separated: `org.role` reads `{"org":{"role":…}}`).
    pub fn claim(&self, path: &str) -> Option<&Value> {
        let mut parts = path.split('.');
        let first = parts.next()?;
        let mut value = self.claims.as_ref()?.get(first)?;
        for part in parts {
            value = value.as_object()?.get(part)?;
        }
        Some(value)
    }
}

/// Who may do something on a channel: a level or a claim rule. Written in the configuration
/// as `"anyone"`, `"authenticated"`, `"nobody"` or `{ claim = "role", any_of = ["admin"] }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Access {
    /// One of the three levels.
    Level(Level),
    /// Connections whose claim matches.
    Claim(ClaimRule),
}

/// The levels of [`Access`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Every connection, anonymous ones included.
    Anyone,
    /// Connections with a user.
    Authenticated,
    /// No client connection (the server API still may; so may a grant for subscribing).
    Nobody,
}

/// Connections whose `claim` equals one of `any_of`, or, when the claim is an array, holds
/// one of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimRule {
    /// The claim's path in the token, dot-separated (`role`, `org.plan`).
    pub claim: String,
    /// The values that allow.
    pub any_of: Vec<Value>,
}

impl Access {
    /// Anyone.
    pub const ANYONE: Access = Access::Level(Level::Anyone);
    /// Connections with a user.
    pub const AUTHENTICATED: Access = Access::Level(Level::Authenticated);
    /// No client connection.
    pub const NOBODY: Access = Access::Level(Level::Nobody);

    /// Whether `who` is allowed.
    pub fn allows(&self, who: &Identity) -> bool {
        match self {
            Access::Level(Level::Anyone) => true,
            Access::Level(Level::Authenticated) => who.user.is_some(),
            Access::Level(Level::Nobody) => false,
            Access::Claim(rule) => match who.claim(&rule.claim) {
                Some(Value::Array(values)) => values.iter().any(|v| rule.any_of.contains(v)),
                Some(value) => rule.any_of.contains(value),
                None => false,
            },
        }
    }
}

impl Default for Access {
    fn default() -> Self {
        Self::ANYONE
    }
}

/// What a client connection asks to do on a channel, for [`Hub::authorize`](crate::Hub::authorize).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Subscribe (or read publications by polling).
    Subscribe,
    /// Publish.
    Publish,
    /// Read a page of history.
    ReadHistory,
    /// Read presence or its count.
    ReadPresence,
}

impl Action {
    /// The refusal's message.
    pub(crate) fn denied(self) -> &'static str {
        match self {
            Self::Subscribe => "this connection may not subscribe to this channel",
            Self::Publish => "this connection may not publish to this channel",
            Self::ReadHistory => "this connection may not read this channel's history",
            Self::ReadPresence => "this connection may not read this channel's presence",
        }
    }
}

/// The users a user-limited channel belongs to: the comma-separated list after its last `#`
/// (`dialog#42,43` belongs to users 42 and 43). `None` when the name has no `#`.
pub fn channel_users(channel: &ChannelName) -> Option<impl Iterator<Item = &str>> {
    let (_, users) = channel.as_str().rsplit_once('#')?;
    Some(users.split(',').filter(|u| !u.is_empty()))
}

/// Whether `user` is one of the users of a user-limited `channel` (always true for a channel
/// without `#`).
pub fn is_channel_user(channel: &ChannelName, user: Option<&UserId>) -> bool {
    match channel_users(channel) {
        None => true,
        Some(mut users) => user.is_some_and(|u| users.any(|c| c == u.as_str())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn with_claims(claims: Value) -> Identity {
        Identity {
            user: Some(UserId::parse("42").unwrap()),
            claims: claims.as_object().cloned().map(Arc::new),
        }
    }

    #[test]
    fn levels_separate_anonymous_from_authenticated_connections() {
        let anon = Identity::anonymous();
        let user = Identity::user(UserId::parse("7").unwrap());
        assert!(Access::ANYONE.allows(&anon));
        assert!(!Access::AUTHENTICATED.allows(&anon));
        assert!(Access::AUTHENTICATED.allows(&user));
        assert!(!Access::NOBODY.allows(&user));
    }

    #[test]
    fn claim_rules_match_values_nested_paths_and_arrays() {
        let rule = |claim: &str, any_of: Value| {
            Access::Claim(ClaimRule {
                claim: claim.to_owned(),
                any_of: any_of.as_array().unwrap().clone(),
            })
        };
        let who = with_claims(
            json!({"role": "mod", "org": {"plan": "pro"}, "groups": ["a", "b"], "level": 3}),
        );
        assert!(rule("role", json!(["admin", "mod"])).allows(&who));
        assert!(!rule("role", json!(["admin"])).allows(&who));
        assert!(rule("org.plan", json!(["pro"])).allows(&who));
        assert!(rule("groups", json!(["b"])).allows(&who));
        assert!(!rule("groups", json!(["c"])).allows(&who));
        assert!(rule("level", json!([3])).allows(&who));
        assert!(
            !rule("level", json!(["3"])).allows(&who),
            "types must match"
        );
        assert!(!rule("missing", json!([null])).allows(&who));
        assert!(!rule("role", json!(["mod"])).allows(&Identity::anonymous()));
    }

    #[test]
    fn rules_read_from_configuration_values() {
        let parsed: Vec<Access> = serde_json::from_value(json!([
            "anyone", "authenticated", "nobody", {"claim": "role", "any_of": ["admin"]}
        ]))
        .unwrap();
        assert_eq!(parsed[0], Access::ANYONE);
        assert_eq!(parsed[1], Access::AUTHENTICATED);
        assert_eq!(parsed[2], Access::NOBODY);
        assert!(matches!(&parsed[3], Access::Claim(r) if r.claim == "role"));
        assert!(serde_json::from_value::<Access>(json!("everyone")).is_err());
    }

    #[test]
    fn user_limited_channels_belong_to_the_users_after_the_last_hash() {
        let ch = |s| ChannelName::parse(s).unwrap();
        let user = |s| UserId::parse(s).unwrap();
        assert!(is_channel_user(&ch("news"), None));
        assert!(is_channel_user(&ch("dialog#42,43"), Some(&user("43"))));
        assert!(!is_channel_user(&ch("dialog#42,43"), Some(&user("4"))));
        assert!(!is_channel_user(&ch("dialog#42,43"), None));
        assert!(!is_channel_user(&ch("personal#"), Some(&user("42"))));
        assert!(is_channel_user(&ch("a#b#42"), Some(&user("42"))));
    }
}
