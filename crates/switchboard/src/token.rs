//! `switchboard token`: mints an HS256 JWT with the configured HMAC secret, for development
//! and scripts — what an application's backend does in production (`docs/security.md`).
//! Prints the token alone on stdout; never logs it or the secret.

use std::{
    process::ExitCode,
    time::{SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, bail};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Map, Value};
use switchboard_server::{AuthConfig, Config};

use crate::cli::TokenArgs;

/// The shortest HMAC secret the server accepts (256 bits).
const MIN_SECRET_BYTES: usize = 32;

/// Prints a connection token (or, with `--channel`, a subscription token).
pub(crate) fn mint(config: &Config, args: &TokenArgs) -> anyhow::Result<ExitCode> {
    let key = hmac_key(&config.auth)?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("the system clock is before 1970")?
        .as_secs();
    let claims = claims(config, args, now)?;
    let mut header = Header::new(Algorithm::HS256);
    header.kid = key.kid;
    let signing_key =
        EncodingKey::from_secret(key.secret.as_bytes()).context("unusable HMAC secret")?;
    let token =
        jsonwebtoken::encode(&header, &claims, &signing_key).context("cannot sign the token")?;
    println!("{token}");
    Ok(ExitCode::SUCCESS)
}

/// The claims: `sub`, `iat`, `exp` (unless `--ttl 0`), `channel`, `info`, and the `aud` and
/// `iss` the server requires when it is configured with them.
fn claims(config: &Config, args: &TokenArgs, now: u64) -> anyhow::Result<Value> {
    let mut claims = Map::new();
    claims.insert("sub".into(), args.sub.clone().into());
    claims.insert("iat".into(), now.into());
    if args.ttl > 0 {
        let exp = now.checked_add(args.ttl).context("--ttl is too large")?;
        claims.insert("exp".into(), exp.into());
    }
    if let Some(channel) = &args.channel {
        claims.insert("channel".into(), channel.clone().into());
    }
    if let Some(info) = &args.info {
        let info: Value = serde_json::from_str(info).context("--info is not valid JSON")?;
        claims.insert("info".into(), info);
    }
    if let Some(audience) = &config.auth.audience {
        claims.insert("aud".into(), audience.clone().into());
    }
    if let Some(issuer) = &config.auth.issuer {
        claims.insert("iss".into(), issuer.clone().into());
    }
    Ok(Value::Object(claims))
}

/// An HMAC secret and the `kid` to name it by.
struct HmacKey {
    secret: String,
    kid: Option<String>,
}

/// `auth.hmac_secret`, else the first `[[auth.keys]]` entry holding an HMAC secret (inline
/// or in a file).
fn hmac_key(auth: &AuthConfig) -> anyhow::Result<HmacKey> {
    let key = match &auth.hmac_secret {
        Some(secret) => HmacKey {
            secret: secret.clone(),
            kid: None,
        },
        None => {
            let Some((index, entry)) = auth
                .keys
                .iter()
                .enumerate()
                .find(|(_, k)| k.hmac_secret.is_some() || k.hmac_secret_file.is_some())
            else {
                bail!(
                    "no HMAC secret is configured: set auth.hmac_secret in the configuration \
                     file (--config) or SWITCHBOARD_AUTH__HMAC_SECRET"
                );
            };
            let secret = match (&entry.hmac_secret, &entry.hmac_secret_file) {
                (Some(secret), _) => secret.clone(),
                (None, Some(path)) => std::fs::read_to_string(path)
                    .with_context(|| format!("auth.keys[{index}]: cannot read {}", path.display()))?
                    .trim()
                    .to_owned(),
                (None, None) => String::new(),
            };
            HmacKey {
                secret,
                kid: entry.kid.clone(),
            }
        }
    };
    if key.secret.len() < MIN_SECRET_BYTES {
        bail!("the HMAC secret must be at least {MIN_SECRET_BYTES} bytes (256 bits)");
    }
    Ok(key)
}
