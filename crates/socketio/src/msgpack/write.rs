//! Writing the crate's JSON-like tree as MessagePack, choosing each encoding the way the
//! reference parser's encoder (notepack.io) does, so our bytes equal its bytes: the smallest
//! integer form, integral numbers as integers, other numbers as float 64.

use bytes::{BufMut, Bytes, BytesMut};

use crate::{
    json::{Node, Placeholder},
    socketio::EncodeError,
};

/// Appends `node`; with `attachments`, each placeholder becomes the attachment's bytes.
pub(crate) fn write_node(
    out: &mut BytesMut,
    node: &Node<'_>,
    attachments: &[Bytes],
) -> Result<(), EncodeError> {
    if !attachments.is_empty()
        && let Placeholder::Num(num) = node.placeholder()
    {
        let data = usize::try_from(num)
            .ok()
            .and_then(|n| attachments.get(n))
            .ok_or(EncodeError::MissingAttachment(num))?;
        write_bin(out, data);
        return Ok(());
    }
    match node {
        Node::Null => out.put_u8(0xc0),
        Node::Bool(b) => out.put_u8(if *b { 0xc3 } else { 0xc2 }),
        Node::UInt(n) => write_uint(out, *n),
        Node::Int(n) => write_int(out, *n),
        Node::Float(f) => write_float(out, *f),
        Node::Str(s) => write_str(out, s),
        Node::Bin(b) => write_bin(out, b),
        Node::Array(items) => {
            write_len(out, items.len(), 0x90, 0xdc);
            for item in items {
                write_node(out, item, attachments)?;
            }
        }
        Node::Map(entries) => {
            write_len(out, entries.len(), 0x80, 0xde);
            for (key, value) in entries {
                write_str(out, key);
                write_node(out, value, attachments)?;
            }
        }
    }
    Ok(())
}

/// A fixmap/fixarray header below 16 entries, else the 16- or 32-bit form.
pub(crate) fn write_len(out: &mut BytesMut, len: usize, fix: u8, wide16: u8) {
    if len < 16 {
        out.put_u8(fix | len as u8);
    } else if let Ok(len) = u16::try_from(len) {
        out.put_u8(wide16);
        out.put_u16(len);
    } else {
        out.put_u8(wide16 + 1);
        out.put_u32(u32::try_from(len).unwrap_or(u32::MAX));
    }
}

pub(crate) fn write_uint(out: &mut BytesMut, n: u64) {
    if n < 0x80 {
        out.put_u8(n as u8);
    } else if let Ok(n) = u8::try_from(n) {
        out.put_u8(0xcc);
        out.put_u8(n);
    } else if let Ok(n) = u16::try_from(n) {
        out.put_u8(0xcd);
        out.put_u16(n);
    } else if let Ok(n) = u32::try_from(n) {
        out.put_u8(0xce);
        out.put_u32(n);
    } else {
        out.put_u8(0xcf);
        out.put_u64(n);
    }
}

fn write_int(out: &mut BytesMut, n: i64) {
    if n >= 0 {
        write_uint(out, n.unsigned_abs());
    } else if n >= -0x20 {
        out.put_i8(n as i8);
    } else if let Ok(n) = i8::try_from(n) {
        out.put_u8(0xd0);
        out.put_i8(n);
    } else if let Ok(n) = i16::try_from(n) {
        out.put_u8(0xd1);
        out.put_i16(n);
    } else if let Ok(n) = i32::try_from(n) {
        out.put_u8(0xd2);
        out.put_i32(n);
    } else {
        out.put_u8(0xd3);
        out.put_i64(n);
    }
}

/// JavaScript has one number type: an integral value is written as an integer.
fn write_float(out: &mut BytesMut, f: f64) {
    const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;
    if f.fract() == 0.0 && (-TWO_POW_63..2.0 * TWO_POW_63).contains(&f) {
        if f >= 0.0 {
            write_uint(out, f as u64);
        } else {
            write_int(out, f as i64);
        }
    } else {
        out.put_u8(0xcb);
        out.put_f64(f);
    }
}

pub(crate) fn write_str(out: &mut BytesMut, s: &str) {
    let len = s.len();
    if len < 0x20 {
        out.put_u8(0xa0 | len as u8);
    } else if let Ok(len) = u8::try_from(len) {
        out.put_u8(0xd9);
        out.put_u8(len);
    } else if let Ok(len) = u16::try_from(len) {
        out.put_u8(0xda);
        out.put_u16(len);
    } else {
        out.put_u8(0xdb);
        out.put_u32(u32::try_from(len).unwrap_or(u32::MAX));
    }
    out.put_slice(s.as_bytes());
}

fn write_bin(out: &mut BytesMut, data: &[u8]) {
    let len = data.len();
    if let Ok(len) = u8::try_from(len) {
        out.put_u8(0xc4);
        out.put_u8(len);
    } else if let Ok(len) = u16::try_from(len) {
        out.put_u8(0xc5);
        out.put_u16(len);
    } else {
        out.put_u8(0xc6);
        out.put_u32(u32::try_from(len).unwrap_or(u32::MAX));
    }
    out.put_slice(data);
}
