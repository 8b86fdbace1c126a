//! [`Str`]: UTF-8 text held in shared [`Bytes`], so decoded namespaces and Engine.IO text
//! messages are slices of the frame they arrived in rather than copies. Checked once, when
//! built; never does IO.

use std::{fmt, ops::Deref};

use bytes::Bytes;

/// UTF-8 text backed by [`Bytes`]: cheap to clone and to slice out of a received frame.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Str(Bytes);

impl Str {
    /// Text known at compile time.
    pub const fn from_static(text: &'static str) -> Self {
        Self(Bytes::from_static(text.as_bytes()))
    }

    /// Checks that `bytes` are UTF-8.
    pub fn from_utf8(bytes: Bytes) -> Result<Self, std::str::Utf8Error> {
        std::str::from_utf8(&bytes)?;
        Ok(Self(bytes))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("Str is only built from checked UTF-8")
    }

    /// The UTF-8 bytes.
    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }

    /// The UTF-8 bytes, without a copy.
    pub fn into_bytes(self) -> Bytes {
        self.0
    }

    /// A sub-slice of `self` at `range`, which must fall on character boundaries of text
    /// already checked (callers only cut at ASCII delimiters).
    pub(crate) fn slice(&self, range: std::ops::Range<usize>) -> Self {
        debug_assert!(self.as_str().is_char_boundary(range.start));
        debug_assert!(self.as_str().is_char_boundary(range.end));
        Self(self.0.slice(range))
    }
}

impl Deref for Str {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl From<&str> for Str {
    fn from(text: &str) -> Self {
        Self(Bytes::copy_from_slice(text.as_bytes()))
    }
}

impl From<String> for Str {
    fn from(text: String) -> Self {
        Self(Bytes::from(text))
    }
}

impl PartialEq<str> for Str {
    fn eq(&self, other: &str) -> bool {
        self.0 == other.as_bytes()
    }
}

impl PartialEq<&str> for Str {
    fn eq(&self, other: &&str) -> bool {
        self.0 == other.as_bytes()
    }
}

impl fmt::Debug for Str {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Str {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
