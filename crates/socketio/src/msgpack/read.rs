//! Reading one MessagePack value into the crate's JSON-like tree. Every declared length is
//! checked against the bytes left before anything is allocated, and nesting is bounded, so
//! hostile input costs at most a small multiple of its own size.

use std::borrow::Cow;

use crate::json::Node;

/// Deepest nesting accepted: below serde_json's limit for JSON (127), so whatever is
/// decoded here can be parsed again as JSON text and re-encoded.
pub(crate) const MAX_DEPTH: usize = 100;

/// Why bytes are not one MessagePack value this crate can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadError {
    /// Truncated, trailing bytes, the reserved byte `0xc1`, or a string that is not UTF-8.
    Malformed,
    /// Nested deeper than [`MAX_DEPTH`].
    TooDeep,
    /// An extension type or a map key that is not a string (no JSON form).
    Unsupported,
}

/// Reads exactly one value from `bytes`.
pub(crate) fn read(bytes: &[u8]) -> Result<Node<'_>, ReadError> {
    let mut reader = Reader { bytes, at: 0 };
    let node = reader.value(0)?;
    if reader.at != bytes.len() {
        return Err(ReadError::Malformed);
    }
    Ok(node)
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ReadError> {
        let end = self.at.checked_add(n).ok_or(ReadError::Malformed)?;
        let slice = self.bytes.get(self.at..end).ok_or(ReadError::Malformed)?;
        self.at = end;
        Ok(slice)
    }

    fn byte(&mut self) -> Result<u8, ReadError> {
        Ok(self.take(1)?[0])
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], ReadError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn len(&mut self, width: usize) -> Result<usize, ReadError> {
        let n = match width {
            1 => u64::from(self.byte()?),
            2 => u64::from(u16::from_be_bytes(self.array()?)),
            _ => u64::from(u32::from_be_bytes(self.array()?)),
        };
        usize::try_from(n).map_err(|_| ReadError::Malformed)
    }

    fn remaining(&self) -> usize {
        self.bytes.len() - self.at
    }

    fn value(&mut self, depth: usize) -> Result<Node<'a>, ReadError> {
        if depth > MAX_DEPTH {
            return Err(ReadError::TooDeep);
        }
        let marker = self.byte()?;
        Ok(match marker {
            0x00..=0x7f => Node::UInt(u64::from(marker)),
            0x80..=0x8f => self.map(usize::from(marker & 0x0f), depth)?,
            0x90..=0x9f => self.seq(usize::from(marker & 0x0f), depth)?,
            0xa0..=0xbf => self.str(usize::from(marker & 0x1f))?,
            0xc0 => Node::Null,
            0xc2 => Node::Bool(false),
            0xc3 => Node::Bool(true),
            0xc4..=0xc6 => {
                let len = self.len(1 << (marker - 0xc4))?;
                Node::Bin(self.take(len)?)
            }
            0xc7..=0xc9 => {
                let len = self.len(1 << (marker - 0xc7))?;
                self.ext(len)?
            }
            0xca => Node::Float(f64::from(f32::from_be_bytes(self.array()?))),
            0xcb => Node::Float(f64::from_be_bytes(self.array()?)),
            0xcc => Node::UInt(u64::from(self.byte()?)),
            0xcd => Node::UInt(u64::from(u16::from_be_bytes(self.array()?))),
            0xce => Node::UInt(u64::from(u32::from_be_bytes(self.array()?))),
            0xcf => Node::UInt(u64::from_be_bytes(self.array()?)),
            0xd0 => int(i64::from(i8::from_be_bytes(self.array()?))),
            0xd1 => int(i64::from(i16::from_be_bytes(self.array()?))),
            0xd2 => int(i64::from(i32::from_be_bytes(self.array()?))),
            0xd3 => int(i64::from_be_bytes(self.array()?)),
            0xd4..=0xd8 => self.ext(1 << (marker - 0xd4))?,
            0xd9..=0xdb => {
                let len = self.len(1 << (marker - 0xd9))?;
                self.str(len)?
            }
            0xdc | 0xdd => {
                let len = self.len(if marker == 0xdc { 2 } else { 4 })?;
                self.seq(len, depth)?
            }
            0xde | 0xdf => {
                let len = self.len(if marker == 0xde { 2 } else { 4 })?;
                self.map(len, depth)?
            }
            0xe0..=0xff => Node::Int(i64::from(i8::from_be_bytes([marker]))),
            0xc1 => return Err(ReadError::Malformed),
        })
    }

    fn str(&mut self, len: usize) -> Result<Node<'a>, ReadError> {
        let bytes = self.take(len)?;
        let text = std::str::from_utf8(bytes).map_err(|_| ReadError::Malformed)?;
        Ok(Node::Str(Cow::Borrowed(text)))
    }

    /// An extension value. notepack (socket.io-msgpack-parser's encoder) writes `undefined`
    /// as type 0 with one zero byte (read as `null`, as JavaScript writes it in JSON), and
    /// `ArrayBuffer`s and typed arrays (`Uint8Array`…) as type 0 with their bytes (read as
    /// binary). Other extension types have no JSON form.
    fn ext(&mut self, len: usize) -> Result<Node<'a>, ReadError> {
        let kind = self.byte()?;
        let data = self.take(len)?;
        match (kind, data) {
            (0, [0]) => Ok(Node::Null),
            (0, bytes) => Ok(Node::Bin(bytes)),
            _ => Err(ReadError::Unsupported),
        }
    }

    fn seq(&mut self, len: usize, depth: usize) -> Result<Node<'a>, ReadError> {
        // Each element takes at least one byte: a longer declared length is a lie.
        if len > self.remaining() {
            return Err(ReadError::Malformed);
        }
        let mut items = Vec::with_capacity(len);
        for _ in 0..len {
            items.push(self.value(depth + 1)?);
        }
        Ok(Node::Array(items))
    }

    fn map(&mut self, len: usize, depth: usize) -> Result<Node<'a>, ReadError> {
        if len > self.remaining() / 2 {
            return Err(ReadError::Malformed);
        }
        let mut entries = Vec::with_capacity(len);
        for _ in 0..len {
            let Node::Str(key) = self.value(depth + 1)? else {
                return Err(ReadError::Unsupported);
            };
            entries.push((key, self.value(depth + 1)?));
        }
        Ok(Node::Map(entries))
    }
}

fn int(n: i64) -> Node<'static> {
    if n >= 0 {
        Node::UInt(n.unsigned_abs())
    } else {
        Node::Int(n)
    }
}
