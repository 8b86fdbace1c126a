//! Connection authentication: who a connection is, from the JWT it presents (or none, when
//! anonymous connections are allowed), for every transport alike.
//!
//! `Authenticator` is built once from `[auth]` and shared. Transports find the token
//! (`presented_token`: the `connect` command on WebSocket; `Authorization: Bearer`, the
//! `token` query parameter or the configured cookie on every transport), call
//! `Authenticator::connect`, and get an `Authenticated`: the hub [`Identity`] the
//! permission rules check, when the token expires, the channels it grants and the presence
//! info it carries. Refusals are [`TokenError`]s with a code for the reply, a close code, and
//! a reason label for metrics and the audit log. Nothing here touches a socket.

mod jwks;
pub(crate) mod keys;
pub(crate) mod token;

use std::time::Duration;

use axum::http::{HeaderMap, header};
use serde::{Deserialize, Serialize};
use switchboard_core::{ChannelName, Identity, RawJson, UserId};
use switchboard_proto::{ErrorCode, close};

use keys::VerifyingKey;
pub use keys::{KeyConfig, KeyError};
use token::{Checks, Claims};

/// `[auth]`: how connections prove who they are.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Whether connections without a token (or whose token has an empty `sub`) are accepted,
    /// as anonymous. Unset: yes when no key and no JWKS URL is configured, no otherwise.
    pub anonymous: Option<bool>,
    /// An HMAC secret (HS256/384/512, at least 32 bytes); a shortcut for one `[[auth.keys]]`
    /// entry, convenient as `SWITCHBOARD_AUTH__HMAC_SECRET`.
    pub hmac_secret: Option<String>,
    /// Verification keys (HMAC secrets and PEM public keys, inline or from files).
    pub keys: Vec<KeyConfig>,
    /// A JWKS document's URL (`https://…/.well-known/jwks.json`): its keys verify tokens too.
    /// Fetched at start and every `jwks_refresh_seconds`, and again (at most every
    /// `jwks_min_refetch_seconds`) when a token names a `kid` it does not hold.
    pub jwks_url: Option<String>,
    /// Seconds between JWKS refreshes.
    pub jwks_refresh_seconds: u64,
    /// Least seconds between two fetches caused by unknown `kid`s (bounds what forged
    /// tokens can make the server fetch).
    pub jwks_min_refetch_seconds: u64,
    /// Seconds one JWKS fetch may take.
    pub jwks_timeout_seconds: u64,
    /// Required `aud` claim, when set.
    pub audience: Option<String>,
    /// Required `iss` claim, when set.
    pub issuer: Option<String>,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds.
    pub leeway_seconds: u64,
    /// Refuse connection tokens without `exp`.
    pub require_exp: bool,
    /// How long before its token expires a WebSocket connection is sent a `refresh` push, in
    /// seconds (at most half the token's remaining lifetime).
    pub refresh_before_seconds: u64,
    /// Seconds a WebSocket connection may take to send `connect` when a token is required
    /// (and none came with the upgrade request); closed with 4005 after.
    pub connect_timeout_seconds: u64,
    /// Name of a cookie holding the connection token, for browsers on the same site.
    /// Cookie-authenticated requests must come from an allowed origin (CSRF protection).
    pub cookie: Option<String>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            anonymous: None,
            hmac_secret: None,
            keys: Vec::new(),
            jwks_url: None,
            jwks_refresh_seconds: 3600,
            jwks_min_refetch_seconds: 30,
            jwks_timeout_seconds: 5,
            audience: None,
            issuer: None,
            leeway_seconds: 5,
            require_exp: false,
            refresh_before_seconds: 60,
            connect_timeout_seconds: 10,
            cookie: None,
        }
    }
}

/// Why a token (or its absence) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// No token, and anonymous connections are not accepted.
    #[error("this server requires a connection token")]
    Required,
    /// Not a JWT, or too long.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// `alg: none`, an algorithm no configured key verifies, or one that does not match the key.
    #[error("{0}")]
    Algorithm(&'static str),
    /// The header's `kid` names no configured or published key.
    #[error("unknown signing key {0:?}")]
    UnknownKey(String),
    /// The signature does not verify with any candidate key.
    #[error("invalid token signature")]
    Signature,
    /// `exp` is past.
    #[error("the token has expired")]
    Expired,
    /// `nbf` is in the future.
    #[error("the token is not valid yet")]
    NotYetValid,
    /// `aud` is not the configured audience.
    #[error("the token is for another audience")]
    Audience,
    /// `iss` is not the configured issuer.
    #[error("the token is from another issuer")]
    Issuer,
    /// A claim the configuration requires is missing.
    #[error("the token lacks the {0:?} claim")]
    MissingClaim(String),
    /// A claim of switchboard's has the wrong type or value.
    #[error("invalid claim: {0}")]
    Claim(String),
    /// The token's `sub` is empty and anonymous connections are not accepted.
    #[error("this server does not accept anonymous tokens")]
    Anonymous,
    /// A subscription token (it has a `channel` claim) was sent to connect.
    #[error("a subscription token cannot authenticate a connection")]
    SubscriptionToken,
    /// A subscription token for another channel, or without `channel`.
    #[error("the subscription token is not for this channel")]
    WrongChannel,
    /// A `refresh` or subscription token for another user than the connection's.
    #[error("the token is for another user")]
    WrongUser,
    /// The JWKS could not be fetched to look up the token's key.
    #[error("the signing keys are unavailable: {0}")]
    KeysUnavailable(String),
}

impl TokenError {
    /// The reply code.
    pub(crate) fn code(&self) -> ErrorCode {
        match self {
            Self::Expired => ErrorCode::TokenExpired,
            Self::KeysUnavailable(_) => ErrorCode::BackendUnavailable,
            _ => ErrorCode::Unauthorized,
        }
    }

    /// The WebSocket close code when this ends a connection.
    pub(crate) fn close_code(&self) -> u16 {
        match self {
            Self::Expired => close::TOKEN_EXPIRED,
            // The keys may be back on the next attempt.
            Self::KeysUnavailable(_) => close::GOING_AWAY,
            _ => close::UNAUTHORIZED,
        }
    }

    /// A short label for metrics and the audit log.
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            Self::Required => "token_required",
            Self::Malformed(_) => "malformed",
            Self::Algorithm(_) => "algorithm",
            Self::UnknownKey(_) => "unknown_key",
            Self::Signature => "signature",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::Audience => "audience",
            Self::Issuer => "issuer",
            Self::MissingClaim(_) => "missing_claim",
            Self::Claim(_) => "claim",
            Self::Anonymous => "anonymous",
            Self::SubscriptionToken => "subscription_token",
            Self::WrongChannel => "wrong_channel",
            Self::WrongUser => "wrong_user",
            Self::KeysUnavailable(_) => "keys_unavailable",
        }
    }
}

/// Who an authenticated (or anonymous) connection is.
#[derive(Debug, Clone, Default)]
pub(crate) struct Authenticated {
    /// For the permission rules; its user is `sub`.
    pub(crate) identity: Identity,
    /// When the token expires, unix seconds.
    pub(crate) expires: Option<u64>,
    /// Channels (and `prefix*` patterns) the token grants.
    pub(crate) channels: Vec<String>,
    /// Presence info from the token's `info` claim (it wins over the client's).
    pub(crate) info: Option<RawJson>,
    /// Admitted by the connect hook rather than a token: renewed by the refresh hook.
    pub(crate) from_hook: bool,
}

impl Authenticated {
    /// The connection's user.
    pub(crate) fn user(&self) -> Option<&UserId> {
        self.identity.user.as_ref()
    }

    /// Whether the token grants `channel` whatever the rules say.
    pub(crate) fn grants(&self, channel: &ChannelName) -> bool {
        token::grants(&self.channels, channel.as_str())
    }

    fn from_claims(claims: Claims) -> Self {
        Self {
            identity: Identity {
                user: claims.user,
                claims: Some(claims.all),
            },
            expires: claims.expires,
            channels: claims.channels,
            info: claims.info,
            from_hook: false,
        }
    }
}

/// Verifies tokens for every transport.
pub(crate) struct Authenticator {
    keys: Vec<VerifyingKey>,
    jwks: Option<jwks::Jwks>,
    checks: Checks,
    anonymous: bool,
    config: AuthConfig,
}

/// Why `[auth]` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AuthConfigError {
    /// A key cannot be read or parsed.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// `jwks_url` is not an http(s) URL.
    #[error("auth.jwks_url: {0}")]
    JwksUrl(String),
}

impl Authenticator {
    /// Loads every key (and starts the JWKS refresh task, which needs a Tokio runtime).
    pub(crate) fn new(config: &AuthConfig) -> Result<Self, AuthConfigError> {
        let mut sources: Vec<KeyConfig> = Vec::new();
        if let Some(secret) = &config.hmac_secret {
            sources.push(KeyConfig {
                hmac_secret: Some(secret.clone()),
                ..KeyConfig::default()
            });
        }
        sources.extend(config.keys.iter().cloned());
        let keys = sources
            .iter()
            .enumerate()
            .map(|(i, k)| k.load(i))
            .collect::<Result<Vec<_>, _>>()?;
        let jwks = match &config.jwks_url {
            Some(url) => Some(jwks::Jwks::start(
                url,
                Duration::from_secs(config.jwks_refresh_seconds.max(1)),
                Duration::from_secs(config.jwks_min_refetch_seconds),
                Duration::from_secs(config.jwks_timeout_seconds.max(1)),
            )?),
            None => None,
        };
        let anonymous = config
            .anonymous
            .unwrap_or(keys.is_empty() && jwks.is_none());
        Ok(Self {
            keys,
            jwks,
            checks: Checks {
                audience: config.audience.clone(),
                issuer: config.issuer.clone(),
                leeway_seconds: config.leeway_seconds,
                require_exp: config.require_exp,
            },
            anonymous,
            config: config.clone(),
        })
    }

    /// Whether connections without a token are accepted.
    pub(crate) fn anonymous_allowed(&self) -> bool {
        self.anonymous
    }

    /// Whether tokens can be verified at all (static keys or a JWKS are configured).
    pub(crate) fn verifies_tokens(&self) -> bool {
        !self.keys.is_empty() || self.jwks.is_some()
    }

    /// The configuration.
    pub(crate) fn config(&self) -> &AuthConfig {
        &self.config
    }

    /// Verifies a token against the static keys, then the JWKS (refetched once when the
    /// token names a key it does not hold).
    async fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        if self.keys.is_empty() && self.jwks.is_none() {
            return Err(TokenError::Algorithm(
                "this server has no key to verify tokens with",
            ));
        }
        let from_static = if self.keys.is_empty() {
            None
        } else {
            Some(token::verify(token, &self.keys, &self.checks))
        };
        match (from_static, &self.jwks) {
            (Some(Ok(claims)), _) => Ok(claims),
            (Some(Err(e)), None) => Err(e),
            // A signature, algorithm or unknown-key failure may be the JWKS's token.
            (Some(Err(e)), Some(_))
                if !matches!(
                    e,
                    TokenError::Signature | TokenError::UnknownKey(_) | TokenError::Algorithm(_)
                ) =>
            {
                Err(e)
            }
            (_, Some(jwks)) => jwks.verify(token, &self.checks).await,
            (None, None) => Err(TokenError::Required),
        }
    }

    /// Authenticates a connection from its token, or as anonymous without one.
    pub(crate) async fn connect(&self, token: Option<&str>) -> Result<Authenticated, TokenError> {
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            return if self.anonymous {
                Ok(Authenticated::default())
            } else {
                Err(TokenError::Required)
            };
        };
        let claims = self.verify(token).await?;
        if claims.channel.is_some() {
            return Err(TokenError::SubscriptionToken);
        }
        if claims.user.is_none() && !self.anonymous {
            return Err(TokenError::Anonymous);
        }
        Ok(Authenticated::from_claims(claims))
    }

    /// Verifies a `refresh` token: a connection token of the same user.
    pub(crate) async fn refresh(
        &self,
        current: &Authenticated,
        token: &str,
    ) -> Result<Authenticated, TokenError> {
        let next = self.connect(Some(token)).await?;
        if next.user() != current.user() {
            return Err(TokenError::WrongUser);
        }
        Ok(next)
    }

    /// Verifies a subscription token for `channel` and the connection's user; returns its
    /// expiry.
    pub(crate) async fn subscription(
        &self,
        conn: &Authenticated,
        channel: &ChannelName,
        token: &str,
    ) -> Result<Option<u64>, TokenError> {
        let claims = self.verify(token).await?;
        if claims.channel.as_deref() != Some(channel.as_str()) {
            return Err(TokenError::WrongChannel);
        }
        if claims.user.as_ref() != conn.user() {
            return Err(TokenError::WrongUser);
        }
        Ok(claims.expires)
    }
}

/// Where a connection token was found, which decides whether CSRF checks apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenSource {
    /// `Authorization: Bearer`.
    Header,
    /// The `token` query parameter.
    Query,
    /// The configured cookie: sent by the browser on its own, so the request's origin
    /// must be checked.
    Cookie,
}

/// The connection token of an HTTP request: `Authorization: Bearer`, then the `token` query
/// parameter, then the cookie named `cookie`.
pub(crate) fn presented_token<'a>(
    headers: &'a HeaderMap,
    query_token: Option<&'a str>,
    cookie: Option<&str>,
) -> Option<(&'a str, TokenSource)> {
    if let Some(t) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        return Some((t.trim(), TokenSource::Header));
    }
    if let Some(t) = query_token.filter(|t| !t.is_empty()) {
        return Some((t, TokenSource::Query));
    }
    let name = cookie?;
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| (v, TokenSource::Cookie))
}

/// Unix seconds now.
pub(crate) fn now_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn tokens_are_found_in_the_header_the_query_then_the_cookie() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; sb=cookie-token"),
        );
        assert_eq!(
            presented_token(&h, None, Some("sb")),
            Some(("cookie-token", TokenSource::Cookie))
        );
        assert_eq!(presented_token(&h, None, None), None);
        assert_eq!(
            presented_token(&h, Some("q"), Some("sb")),
            Some(("q", TokenSource::Query))
        );
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer hdr"),
        );
        assert_eq!(
            presented_token(&h, Some("q"), Some("sb")),
            Some(("hdr", TokenSource::Header))
        );
    }
}
