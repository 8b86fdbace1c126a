//! JWT verification: picks the keys a token may be signed with (by `kid` and algorithm),
//! checks the signature and the time, audience and issuer claims with `jsonwebtoken`, and
//! reads switchboard's claims. Never panics on a token: everything a client sends becomes a
//! [`TokenError`].

use std::sync::Arc;

use jsonwebtoken::{Algorithm, DecodingKey, Validation, errors::ErrorKind};
use serde_json::{Map, Value};
use switchboard_core::{RawJson, UserId};

use super::{TokenError, keys::VerifyingKey};

/// Longest token accepted, in bytes: far above any real one, and bounds the work a forged
/// one can cause.
pub(crate) const MAX_TOKEN_BYTES: usize = 16 << 10;

/// Time, audience and issuer checks, from the configuration.
#[derive(Debug, Clone)]
pub(crate) struct Checks {
    pub(crate) audience: Option<String>,
    pub(crate) issuer: Option<String>,
    pub(crate) leeway_seconds: u64,
    pub(crate) require_exp: bool,
}

/// What a verified token says.
#[derive(Debug, Clone)]
pub(crate) struct Claims {
    /// `sub`; `None` when absent or empty (anonymous).
    pub(crate) user: Option<UserId>,
    /// `exp`, unix seconds.
    pub(crate) expires: Option<u64>,
    /// `channels`: names or `prefix*` patterns the connection may subscribe to whatever the
    /// rules say.
    pub(crate) channels: Vec<String>,
    /// `info`: shown in presence.
    pub(crate) info: Option<RawJson>,
    /// `channel`: set on subscription tokens only.
    pub(crate) channel: Option<String>,
    /// Every claim, for claim rules.
    pub(crate) all: Arc<Map<String, Value>>,
}

/// Verifies `token` against `keys`: only keys whose algorithms include the token's `alg`,
/// and whose `kid` (when both have one) is the token's, are tried.
pub(crate) fn verify(
    token: &str,
    keys: &[VerifyingKey],
    checks: &Checks,
) -> Result<Claims, TokenError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::Malformed(format!(
            "the token is longer than {MAX_TOKEN_BYTES} bytes"
        )));
    }
    let header = jsonwebtoken::decode_header(token).map_err(|e| match e.kind() {
        // `alg: none` and other names jsonwebtoken does not know end here.
        ErrorKind::Json(_) | ErrorKind::InvalidAlgorithmName => {
            TokenError::Algorithm("the token's `alg` is not an accepted signature algorithm")
        }
        _ => TokenError::Malformed(format!("not a JWT: {e}")),
    })?;
    let candidates: Vec<&VerifyingKey> = keys
        .iter()
        .filter(|k| k.algorithms.contains(&header.alg))
        .filter(|k| match (&header.kid, &k.kid) {
            (Some(wanted), Some(kid)) => wanted == kid,
            // A key without a kid serves tokens with or without one.
            (_, None) => true,
            (None, Some(_)) => true,
        })
        .collect();
    if candidates.is_empty() {
        return Err(match &header.kid {
            Some(kid) if keys.iter().all(|k| k.kid.as_deref() != Some(kid.as_str())) => {
                TokenError::UnknownKey(kid.clone())
            }
            _ => TokenError::Algorithm("no configured key verifies the token's `alg`"),
        });
    }
    let mut last = TokenError::Signature;
    for key in candidates {
        match check(token, header.alg, &key.key, checks) {
            Ok(claims) => return claims_of(claims),
            // Another key may have signed it.
            Err(TokenError::Signature) => {}
            Err(other) => last = other,
        }
    }
    Err(last)
}

fn check(
    token: &str,
    alg: Algorithm,
    key: &DecodingKey,
    checks: &Checks,
) -> Result<Map<String, Value>, TokenError> {
    let mut v = Validation::new(alg);
    v.leeway = checks.leeway_seconds;
    v.validate_nbf = true;
    v.validate_exp = true;
    let mut required: Vec<&str> = Vec::new();
    if checks.require_exp {
        required.push("exp");
    }
    match &checks.audience {
        Some(aud) => {
            v.set_audience(&[aud]);
            required.push("aud");
        }
        None => v.validate_aud = false,
    }
    if let Some(iss) = &checks.issuer {
        v.set_issuer(&[iss]);
        required.push("iss");
    }
    v.set_required_spec_claims(&required);
    jsonwebtoken::decode::<Map<String, Value>>(token, key, &v)
        .map(|data| data.claims)
        .map_err(|e| match e.kind() {
            ErrorKind::InvalidSignature => TokenError::Signature,
            ErrorKind::ExpiredSignature => TokenError::Expired,
            ErrorKind::ImmatureSignature => TokenError::NotYetValid,
            ErrorKind::InvalidAudience => TokenError::Audience,
            ErrorKind::InvalidIssuer => TokenError::Issuer,
            ErrorKind::MissingRequiredClaim(c) => TokenError::MissingClaim(c.clone()),
            ErrorKind::InvalidAlgorithm => {
                TokenError::Algorithm("the token's `alg` does not match its key")
            }
            _ => TokenError::Malformed(e.to_string()),
        })
}

fn claims_of(all: Map<String, Value>) -> Result<Claims, TokenError> {
    let user = match all.get("sub") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(
            UserId::parse(s)
                .map_err(|e| TokenError::Claim(format!("`sub` is not a user id: {e}")))?,
        ),
        Some(_) => return Err(TokenError::Claim("`sub` must be a string".to_owned())),
    };
    let expires = match all.get("exp") {
        None => None,
        // jsonwebtoken already checked it is a number in the future.
        Some(v) => v.as_f64().map(|f| f.max(0.0) as u64),
    };
    let channels = match all.get("channels") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| TokenError::Claim("`channels` must hold strings".to_owned()))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(TokenError::Claim(
                "`channels` must be an array of channel names".to_owned(),
            ));
        }
    };
    let info = match all.get("info") {
        None | Some(Value::Null) => None,
        Some(v) => Some(RawJson::new(bytes::Bytes::from(v.to_string()))),
    };
    let channel = match all.get("channel") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(TokenError::Claim("`channel` must be a string".to_owned())),
    };
    Ok(Claims {
        user,
        expires,
        channels,
        info,
        channel,
        all: Arc::new(all),
    })
}

/// Whether a `channels` claim entry grants `channel`: an exact name, or a prefix ending in
/// `*` (`chat:*`, `*`).
pub(crate) fn grants(patterns: &[String], channel: &str) -> bool {
    patterns.iter().any(|p| match p.strip_suffix('*') {
        Some(prefix) => channel.starts_with(prefix),
        None => p == channel,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_patterns_match_exact_names_and_prefixes() {
        let p = vec!["news".to_owned(), "chat:*".to_owned()];
        assert!(grants(&p, "news"));
        assert!(!grants(&p, "news:x"));
        assert!(grants(&p, "chat:lobby"));
        assert!(!grants(&p, "chatter"));
        assert!(grants(&["*".to_owned()], "anything"));
        assert!(!grants(&[], "news"));
    }
}
