//! A JWKS (JSON Web Key Set) fetched over HTTP and cached: refreshed on a timer, and again when
//! a token names a `kid` the cache does not hold (a key rotation), at most once per
//! `min_refetch` so forged `kid`s cannot make the server hammer the key server. A failed
//! fetch keeps the last good keys.

use std::{
    sync::{Arc, Mutex, PoisonError, RwLock},
    time::Duration,
};

use jsonwebtoken::jwk::JwkSet;
use tokio::time::Instant;

use super::{
    AuthConfigError, TokenError,
    keys::{self, VerifyingKey},
    token::{self, Checks, Claims},
};

/// Largest JWKS document read, in bytes.
const MAX_JWKS_BYTES: usize = 1 << 20;

pub(crate) struct Jwks {
    shared: Arc<Shared>,
}

struct Shared {
    url: String,
    http: reqwest::Client,
    keys: RwLock<Vec<VerifyingKey>>,
    /// When the last fetch started and ended, and its error when it failed.
    last_fetch: Mutex<Option<Instant>>,
    last_done: Mutex<Option<Instant>>,
    last_error: Mutex<Option<String>>,
    /// Serializes fetches.
    fetching: tokio::sync::Mutex<()>,
    min_refetch: Duration,
}

impl Jwks {
    /// Starts the refresh task (the first fetch happens at once, in the background).
    pub(crate) fn start(
        url: &str,
        refresh: Duration,
        min_refetch: Duration,
        timeout: Duration,
    ) -> Result<Self, AuthConfigError> {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(AuthConfigError::JwksUrl(format!(
                "{url:?} is not an http:// or https:// URL"
            )));
        }
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| AuthConfigError::JwksUrl(e.to_string()))?;
        let shared = Arc::new(Shared {
            url: url.to_owned(),
            http,
            keys: RwLock::default(),
            last_fetch: Mutex::default(),
            last_done: Mutex::default(),
            last_error: Mutex::default(),
            fetching: tokio::sync::Mutex::new(()),
            min_refetch,
        });
        let weak = Arc::downgrade(&shared);
        tokio::spawn(async move {
            loop {
                let Some(shared) = weak.upgrade() else { break };
                shared.fetch().await;
                drop(shared);
                tokio::time::sleep(refresh).await;
            }
        });
        Ok(Self { shared })
    }

    /// Verifies `token` against the cached keys, refetching once when it names an unknown
    /// `kid` (or when nothing could be fetched yet).
    pub(crate) async fn verify(&self, token: &str, checks: &Checks) -> Result<Claims, TokenError> {
        let asked = Instant::now();
        match self.shared.verify_cached(token, checks) {
            Err(
                TokenError::UnknownKey(_)
                | TokenError::Algorithm(_)
                | TokenError::KeysUnavailable(_),
            ) => {
                self.shared.refetch(asked).await;
                self.shared.verify_cached(token, checks)
            }
            other => other,
        }
    }
}

impl Shared {
    fn verify_cached(&self, token: &str, checks: &Checks) -> Result<Claims, TokenError> {
        let keys = self.keys.read().unwrap_or_else(PoisonError::into_inner);
        if keys.is_empty() {
            let why = self
                .last_error
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone()
                .unwrap_or_else(|| "not fetched yet".to_owned());
            return Err(TokenError::KeysUnavailable(why));
        }
        token::verify(token, &keys, checks)
    }

    fn may_refetch(&self) -> bool {
        let last = self
            .last_fetch
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        last.is_none_or(|t| t.elapsed() >= self.min_refetch)
    }

    /// Fetches again for a token that failed at `asked`, unless a fetch ended since (one
    /// already in flight, such as the first, is waited for) or the last began less than
    /// `min_refetch` ago.
    async fn refetch(&self, asked: Instant) {
        let one = self.fetching.lock().await;
        let done = *lock(&self.last_done);
        if done.is_some_and(|d| d >= asked) || !self.may_refetch() {
            return;
        }
        self.fetch_locked(one).await;
    }

    async fn fetch(&self) {
        let one = self.fetching.lock().await;
        self.fetch_locked(one).await;
    }

    async fn fetch_locked(&self, _one: tokio::sync::MutexGuard<'_, ()>) {
        *lock(&self.last_fetch) = Some(Instant::now());
        match self.download().await {
            Ok(keys) => {
                tracing::debug!(url = %self.url, keys = keys.len(), "JWKS fetched");
                *self.keys.write().unwrap_or_else(PoisonError::into_inner) = keys;
                *lock(&self.last_error) = None;
            }
            Err(e) => {
                tracing::warn!(url = %self.url, error = %e, "JWKS fetch failed; keeping the last keys");
                *lock(&self.last_error) = Some(e);
            }
        }
        *lock(&self.last_done) = Some(Instant::now());
    }

    async fn download(&self) -> Result<Vec<VerifyingKey>, String> {
        let resp = self
            .http
            .get(&self.url)
            .send()
            .await
            .map_err(|e| format!("cannot fetch: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("HTTP {}", resp.status()));
        }
        if resp
            .content_length()
            .is_some_and(|n| n > MAX_JWKS_BYTES as u64)
        {
            return Err(format!("document over {MAX_JWKS_BYTES} bytes"));
        }
        let body = resp
            .bytes()
            .await
            .map_err(|e| format!("cannot read: {e}"))?;
        if body.len() > MAX_JWKS_BYTES {
            return Err(format!("document over {MAX_JWKS_BYTES} bytes"));
        }
        let set: JwkSet =
            serde_json::from_slice(&body).map_err(|e| format!("not a JWKS document: {e}"))?;
        let keys: Vec<VerifyingKey> = set.keys.iter().filter_map(keys::from_jwk).collect();
        if keys.is_empty() {
            return Err("the document holds no signature key this server can use".to_owned());
        }
        Ok(keys)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
