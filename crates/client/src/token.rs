//! [`TokenSource`]: where a connection or subscription token (a JWT signed by the
//! application, `docs/security.md`) comes from — a fixed string, or an async function the
//! connection task calls whenever it needs a fresh one — and [`TokenError`], why getting one
//! failed.
//!
//! Only the connection task calls [`TokenSource::fetch`], each call under a deadline
//! ([`ClientOptions::token_timeout`](crate::ClientOptions::token_timeout)). Tokens are
//! credentials: nothing here prints one, `Debug` included.

use std::{error::Error, fmt, future::Future, sync::Arc, time::Duration};

use futures_util::future::BoxFuture;

/// What a token function returns: a token, or the application's error.
type TokenResult = Result<String, Box<dyn Error + Send + Sync>>;

type TokenFn = dyn Fn() -> BoxFuture<'static, TokenResult> + Send + Sync;

/// A connection or subscription token: a fixed string, or a function that fetches one.
///
/// A fixed token cannot be renewed: once it expires the server closes the connection (4003)
/// and the client stops with [`ClientError::TokenExpired`](crate::ClientError::TokenExpired).
/// A function is called for the first connection, for every `refresh` push, and before
/// reconnecting once the token has expired; a subscription's function is called before every
/// (re)subscription.
///
/// Two sources are equal when they are the same string or the same function (a clone).
/// `Debug` never shows the token.
///
/// ```
/// use switchboard_client::TokenSource;
///
/// let fixed = TokenSource::fixed("eyJhbGciOi…");
/// let fetched = TokenSource::from_fn(|| async {
///     // e.g. ask the application's backend for a token of the logged-in user
///     Ok::<_, std::io::Error>("eyJhbGciOi…".to_owned())
/// });
/// assert_ne!(fixed, fetched);
/// assert_eq!(fetched, fetched.clone());
/// ```
#[derive(Clone)]
pub struct TokenSource(Source);

#[derive(Clone)]
enum Source {
    Fixed(Arc<str>),
    Function(Arc<TokenFn>),
}

impl TokenSource {
    /// A fixed token, sent as is every time.
    pub fn fixed(token: impl Into<String>) -> Self {
        Self(Source::Fixed(Arc::from(token.into())))
    }

    /// A function returning a future that fetches a token; an `Err` is any error type
    /// (`std::io::Error`, `reqwest::Error`, `String`, …).
    pub fn from_fn<F, Fut, E>(function: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<String, E>> + Send + 'static,
        E: Into<Box<dyn Error + Send + Sync>>,
    {
        let function = move || -> BoxFuture<'static, TokenResult> {
            let fetch = function();
            Box::pin(async move { fetch.await.map_err(Into::into) })
        };
        Self(Source::Function(Arc::new(function)))
    }

    /// Whether this source can give a new token (it is a function).
    pub(crate) fn renews(&self) -> bool {
        matches!(self.0, Source::Function(_))
    }

    /// The token of a fixed source, at once (an error when it is empty); `None` for a
    /// function, which must be [`fetch`](Self::fetch)ed.
    pub(crate) fn fixed_token(&self) -> Option<Result<String, TokenError>> {
        match &self.0 {
            Source::Fixed(token) => Some(non_empty(token.to_string())),
            Source::Function(_) => None,
        }
    }

    /// A token: the fixed one, or the function's answer within `timeout`. An empty token is
    /// an error: the server would take it for no token at all.
    ///
    /// The returned future owns what it needs, so the connection task can keep it beside
    /// the socket and drop it to cancel the call.
    pub(crate) fn fetch(
        &self,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<String, TokenError>> {
        match &self.0 {
            Source::Fixed(token) => {
                let token = non_empty(token.to_string());
                Box::pin(std::future::ready(token))
            }
            Source::Function(function) => {
                let call = function();
                Box::pin(async move {
                    match tokio::time::timeout(timeout, call).await {
                        Ok(Ok(token)) => non_empty(token),
                        Ok(Err(error)) => Err(TokenError::Failed(Arc::from(error))),
                        Err(_) => Err(TokenError::Timeout(timeout)),
                    }
                })
            }
        }
    }
}

fn non_empty(token: String) -> Result<String, TokenError> {
    if token.is_empty() {
        Err(TokenError::Empty)
    } else {
        Ok(token)
    }
}

impl PartialEq for TokenSource {
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (Source::Fixed(a), Source::Fixed(b)) => a == b,
            (Source::Function(a), Source::Function(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Eq for TokenSource {}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.0 {
            Source::Fixed(_) => "TokenSource::Fixed(<redacted>)",
            Source::Function(_) => "TokenSource::Function",
        })
    }
}

impl From<String> for TokenSource {
    fn from(token: String) -> Self {
        Self::fixed(token)
    }
}

impl From<&str> for TokenSource {
    fn from(token: &str) -> Self {
        Self::fixed(token)
    }
}

/// Why the client could not get a token from its [`TokenSource`].
///
/// For the first connection and a first subscription it is the call's error
/// ([`ClientError::Token`](crate::ClientError::Token)); later, while reconnecting, it shows in
/// [`Disconnect::token_error`](crate::Disconnect::token_error) and the call is retried with
/// the reconnect backoff. Errors compare by their message.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The token function returned an error.
    #[error("the token function failed: {0}")]
    Failed(Arc<dyn Error + Send + Sync>),
    /// The token function did not answer within `token_timeout`.
    #[error("the token function did not answer within {0:?}")]
    Timeout(Duration),
    /// The token is an empty string (the server would take it for no token).
    #[error("the token is empty")]
    Empty,
}

impl PartialEq for TokenError {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Failed(a), Self::Failed(b)) => {
                Arc::ptr_eq(a, b) || a.to_string() == b.to_string()
            }
            (Self::Timeout(a), Self::Timeout(b)) => a == b,
            (Self::Empty, Self::Empty) => true,
            _ => false,
        }
    }
}

impl Eq for TokenError {}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{TokenError, TokenSource};

    #[tokio::test]
    async fn a_function_is_called_for_every_fetch_and_its_error_is_kept() {
        let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = calls.clone();
        let source = TokenSource::from_fn(move || {
            let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async move {
                if n == 0 {
                    Ok(format!("token-{n}"))
                } else {
                    Err("backend down")
                }
            }
        });
        let timeout = Duration::from_secs(1);
        assert_eq!(source.fetch(timeout).await, Ok("token-0".to_owned()));
        let error = source.fetch(timeout).await.err();
        assert!(
            matches!(&error, Some(TokenError::Failed(e)) if e.to_string() == "backend down"),
            "{error:?}"
        );
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_function_that_never_answers_times_out() {
        let source = TokenSource::from_fn(|| async {
            std::future::pending::<()>().await;
            Ok::<_, std::io::Error>(String::new())
        });
        let timeout = Duration::from_secs(3);
        assert_eq!(
            source.fetch(timeout).await,
            Err(TokenError::Timeout(timeout))
        );
    }

    #[tokio::test]
    async fn an_empty_token_is_an_error() {
        let timeout = Duration::from_secs(1);
        assert_eq!(
            TokenSource::fixed("").fetch(timeout).await,
            Err(TokenError::Empty)
        );
        let function = TokenSource::from_fn(|| async { Ok::<_, std::io::Error>(String::new()) });
        assert_eq!(function.fetch(timeout).await, Err(TokenError::Empty));
    }

    #[test]
    fn debug_never_shows_the_token() {
        let shown = format!("{:?}", TokenSource::fixed("secret-token"));
        assert!(!shown.contains("secret-token"), "{shown}");
    }
}
