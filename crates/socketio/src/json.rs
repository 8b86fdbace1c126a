//! [`JsonText`]: packet data kept as the JSON text it arrived in (checked, never re-encoded),
//! and the crate's small order-preserving JSON tree used to check payload shapes, find
//! binary placeholders and translate to and from MessagePack. Called by the Socket.IO and
//! MessagePack codecs; never does IO.

use std::{borrow::Cow, fmt};

use bytes::Bytes;
use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::Str;

/// Checked JSON text, held as the bytes it was received or built in.
///
/// Socket.IO data stays in this form from decoder to hub and back, so a broadcast copies the
/// sender's text into each frame once instead of re-serializing a parsed value.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct JsonText(Str);

impl JsonText {
    /// Checks that `text` is one JSON value (whitespace around it allowed).
    pub fn parse(text: Bytes) -> Result<Self, serde_json::Error> {
        serde_json::from_slice::<IgnoredAny>(&text)?;
        let text = Str::from_utf8(text).map_err(de::Error::custom)?;
        Ok(Self(text))
    }

    /// Serializes `value` (e.g. an event's arguments) to JSON text.
    pub fn from_serialize<T: serde::Serialize + ?Sized>(
        value: &T,
    ) -> Result<Self, serde_json::Error> {
        let text = serde_json::to_string(value)?;
        Ok(Self(Str::from(text)))
    }

    /// Wraps text this crate has just checked or written.
    pub(crate) fn new_unchecked(text: Str) -> Self {
        Self(text)
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The JSON text's bytes.
    pub fn as_bytes(&self) -> &Bytes {
        self.0.as_bytes()
    }

    /// The JSON text's bytes, without a copy.
    pub fn into_bytes(self) -> Bytes {
        self.0.into_bytes()
    }

    /// Deserializes the text into `T`.
    pub fn deserialize<'a, T: Deserialize<'a>>(&'a self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.as_str())
    }
}

impl fmt::Debug for JsonText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for JsonText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parsed JSON (or MessagePack) value that keeps object keys in wire order, so a value
/// translated between the two formats comes out with the keys where the sender put them.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node<'a> {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(Cow<'a, str>),
    /// MessagePack binary; written to JSON as a placeholder for an attachment.
    Bin(&'a [u8]),
    Array(Vec<Node<'a>>),
    Map(Vec<(Cow<'a, str>, Node<'a>)>),
}

/// What a placeholder object (`{"_placeholder":true,"num":N}`) says.
pub(crate) enum Placeholder {
    /// Not a placeholder.
    No,
    /// A placeholder for attachment `num`.
    Num(u64),
    /// `_placeholder` is true but `num` is missing or not an index.
    Invalid,
}

impl<'a> Node<'a> {
    /// Parses JSON text (serde_json bounds the nesting depth at 128).
    pub(crate) fn parse_json(text: &'a str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// Reads a map as a binary placeholder, the way the reference parser does: an object
    /// whose `_placeholder` is `true` must carry a `num`.
    pub(crate) fn placeholder(&self) -> Placeholder {
        let Self::Map(entries) = self else {
            return Placeholder::No;
        };
        let flag = entries.iter().rev().find(|(k, _)| k == "_placeholder");
        if !matches!(flag, Some((_, Node::Bool(true)))) {
            return Placeholder::No;
        }
        match entries.iter().rev().find(|(k, _)| k == "num") {
            Some((_, Node::UInt(n))) => Placeholder::Num(*n),
            Some((_, Node::Int(n))) if *n >= 0 => Placeholder::Num(n.unsigned_abs()),
            Some((_, Node::Float(f))) if f.fract() == 0.0 && *f >= 0.0 && *f < 1e15 => {
                Placeholder::Num(*f as u64)
            }
            _ => Placeholder::Invalid,
        }
    }

    /// Calls `f` with every placeholder's attachment number, depth first; stops at the
    /// first error `f` or an invalid placeholder returns.
    pub(crate) fn each_placeholder<E>(
        &self,
        invalid: &impl Fn() -> E,
        f: &mut impl FnMut(u64) -> Result<(), E>,
    ) -> Result<(), E> {
        match self.placeholder() {
            Placeholder::Num(n) => return f(n),
            Placeholder::Invalid => return Err(invalid()),
            Placeholder::No => {}
        }
        match self {
            Self::Array(items) => items
                .iter()
                .try_for_each(|n| n.each_placeholder(invalid, f)),
            Self::Map(entries) => entries
                .iter()
                .try_for_each(|(_, n)| n.each_placeholder(invalid, f)),
            _ => Ok(()),
        }
    }

    /// Writes compact JSON. MessagePack binaries become placeholders numbered in the order
    /// met (depth first, as the reference parser numbers them) and are pushed to
    /// `attachments`. Fails on floats JSON cannot hold (NaN, infinities).
    pub(crate) fn write_json(
        &self,
        out: &mut Vec<u8>,
        attachments: &mut Vec<Bytes>,
    ) -> Result<(), NotJson> {
        match self {
            Self::Null => out.extend_from_slice(b"null"),
            Self::Bool(true) => out.extend_from_slice(b"true"),
            Self::Bool(false) => out.extend_from_slice(b"false"),
            Self::Int(n) => out.extend_from_slice(n.to_string().as_bytes()),
            Self::UInt(n) => out.extend_from_slice(n.to_string().as_bytes()),
            Self::Float(f) => {
                let n = serde_json::Number::from_f64(*f).ok_or(NotJson)?;
                out.extend_from_slice(n.to_string().as_bytes());
            }
            Self::Str(s) => write_json_string(out, s),
            Self::Bin(b) => {
                let num = attachments.len();
                attachments.push(Bytes::copy_from_slice(b));
                out.extend_from_slice(format!(r#"{{"_placeholder":true,"num":{num}}}"#).as_bytes());
            }
            Self::Array(items) => {
                out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    item.write_json(out, attachments)?;
                }
                out.push(b']');
            }
            Self::Map(entries) => {
                out.push(b'{');
                for (i, (key, value)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write_json_string(out, key);
                    out.push(b':');
                    value.write_json(out, attachments)?;
                }
                out.push(b'}');
            }
        }
        Ok(())
    }
}

/// A value with no JSON form (a NaN or infinite float).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NotJson;

fn write_json_string(out: &mut Vec<u8>, s: &str) {
    serde_json::to_writer(&mut *out, s).expect("writing a string to a Vec cannot fail");
}

impl<'de> Deserialize<'de> for Node<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Node<'de>, E> {
        Ok(Node::Null)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Node<'de>, E> {
        Ok(Node::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Node<'de>, E> {
        Ok(if v >= 0 {
            Node::UInt(v.unsigned_abs())
        } else {
            Node::Int(v)
        })
    }

    fn visit_u64<E>(self, v: u64) -> Result<Node<'de>, E> {
        Ok(Node::UInt(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Node<'de>, E> {
        Ok(Node::Float(v))
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Node<'de>, E> {
        Ok(Node::Str(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Node<'de>, E> {
        Ok(Node::Str(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<Node<'de>, E> {
        Ok(Node::Str(Cow::Owned(v)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node<'de>, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Node::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node<'de>, A::Error> {
        let mut entries = Vec::new();
        while let Some((key, value)) = map.next_entry::<Node<'de>, Node<'de>>()? {
            let Node::Str(key) = key else {
                return Err(de::Error::custom("object key is not a string"));
            };
            entries.push((key, value));
        }
        Ok(Node::Map(entries))
    }
}
