//! Validated names that come from clients: [`ChannelName`], [`ClientId`], [`UserId`].
//!
//! Every name is checked once, at the edge (a protocol decoder or an HTTP handler), and is a
//! cheap-to-clone newtype afterwards, so the hub never re-validates and never sees a raw string.

use std::{fmt, sync::Arc};

use serde::{Serialize, Serializer};
use thiserror::Error;

/// Longest channel name accepted, in bytes.
pub const MAX_CHANNEL_NAME_BYTES: usize = 255;
/// Longest user id accepted, in bytes.
pub const MAX_USER_ID_BYTES: usize = 255;

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NameError {
    /// The name is empty.
    #[error("name is empty")]
    Empty,
    /// The name is longer than allowed.
    #[error("name is longer than {max} bytes")]
    TooLong {
        /// The limit in bytes.
        max: usize,
    },
    /// The name holds a character outside the allowed set.
    #[error("name holds the character {0:?}, allowed are A-Z a-z 0-9 and : _ - . / @ = , #")]
    BadCharacter(char),
}

/// A channel name: 1–255 bytes of `A-Z a-z 0-9` and `: _ - . / @ = , #`.
///
/// The prefix up to the first `:` is the channel's namespace (used by configuration).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelName(Arc<str>);

fn channel_char_allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '-' | '.' | '/' | '@' | '=' | ',' | '#')
}

impl ChannelName {
    /// Validates `name` as a channel name.
    pub fn parse(name: &str) -> Result<Self, NameError> {
        if name.is_empty() {
            return Err(NameError::Empty);
        }
        if name.len() > MAX_CHANNEL_NAME_BYTES {
            return Err(NameError::TooLong {
                max: MAX_CHANNEL_NAME_BYTES,
            });
        }
        if let Some(c) = name.chars().find(|c| !channel_char_allowed(*c)) {
            return Err(NameError::BadCharacter(c));
        }
        Ok(Self(Arc::from(name)))
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The namespace: the part before the first `:`, or `""` when there is none.
    pub fn namespace(&self) -> &str {
        self.0.split_once(':').map_or("", |(ns, _)| ns)
    }
}

impl fmt::Display for ChannelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ChannelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl Serialize for ChannelName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// A user id: 1–255 bytes of any printable characters except whitespace.
///
/// Connections without a user are anonymous and have no `UserId`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(Arc<str>);

impl UserId {
    /// Validates `id` as a user id.
    pub fn parse(id: &str) -> Result<Self, NameError> {
        if id.is_empty() {
            return Err(NameError::Empty);
        }
        if id.len() > MAX_USER_ID_BYTES {
            return Err(NameError::TooLong {
                max: MAX_USER_ID_BYTES,
            });
        }
        if let Some(c) = id.chars().find(|c| c.is_whitespace() || c.is_control()) {
            return Err(NameError::BadCharacter(c));
        }
        Ok(Self(Arc::from(id)))
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl Serialize for UserId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// A connection's id, made by the hub when the connection registers: 16 lowercase
/// alphanumerics, unique for the life of the process.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ClientId(Arc<str>);

impl ClientId {
    /// A new random id (16 characters).
    pub fn random() -> Self {
        Self(Arc::from(crate::random::token(16)))
    }

    /// An id read back from a store (shown as it was, never used to find a connection).
    pub fn restore(id: &str) -> Self {
        Self(Arc::from(id))
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl Serialize for ClientId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_names_accept_the_documented_set() {
        for ok in ["news", "chat:lobby", "user#42", "a/b.c-d_e@f=g,h"] {
            assert!(ChannelName::parse(ok).is_ok(), "{ok}");
        }
        assert_eq!(ChannelName::parse(""), Err(NameError::Empty));
        assert_eq!(ChannelName::parse("a b"), Err(NameError::BadCharacter(' ')));
        assert_eq!(ChannelName::parse("é"), Err(NameError::BadCharacter('é')));
        assert!(matches!(
            ChannelName::parse(&"x".repeat(256)),
            Err(NameError::TooLong { .. })
        ));
        assert!(ChannelName::parse(&"x".repeat(255)).is_ok());
    }

    #[test]
    fn namespace_is_the_prefix_before_the_first_colon() {
        let c = ChannelName::parse("chat:room:1").unwrap();
        assert_eq!(c.namespace(), "chat");
        assert_eq!(ChannelName::parse("news").unwrap().namespace(), "");
    }

    #[test]
    fn user_ids_refuse_whitespace() {
        assert!(UserId::parse("alice@example.com").is_ok());
        assert!(UserId::parse("a b").is_err());
        assert!(UserId::parse("").is_err());
    }
}
