//! Messages a well-behaved client could send (text, binary, ping, pong, then a close),
//! fragmented, interleaved with pings, compressed or not, framed and masked, then fed to
//! `MessageReader` in reads of varying size: it must give back exactly those messages.
#![no_main]

use arbitrary::Arbitrary;
use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use switchboard_websocket::{
    CloseFrame, Decoded, DeflateConfig, Message, MessageReader, compress_message,
    is_valid_close_code,
};
use switchboard_websocket_fuzz::{FIN, RSV1, client_frame};

const MAX_MESSAGE_BYTES: usize = 1 << 16;

#[derive(Arbitrary, Debug)]
struct Input {
    /// `Some(bits)`: permessage-deflate with that client window (clamped to 8..=15).
    deflate: Option<u8>,
    no_context_takeover: bool,
    mask: [u8; 4],
    /// Bytes per socket read.
    read_size: u16,
    messages: Vec<Sent>,
    close: Option<(u16, String)>,
}

#[derive(Arbitrary, Debug)]
struct Sent {
    kind: Kind,
    payload: Vec<u8>,
    compress: bool,
    /// Payload bytes per fragment; 0 sends the message in one frame.
    fragment: u8,
    /// A ping after the first fragment.
    ping_inside: bool,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Kind {
    Text,
    Binary,
    Ping,
    Pong,
}

fuzz_target!(|input: Input| {
    let config = input.deflate.map(|bits| DeflateConfig {
        server_max_window_bits: 15,
        client_max_window_bits: bits.clamp(8, 15),
        client_no_context_takeover: input.no_context_takeover,
    });
    let mut wire = Vec::new();
    let mut expected = Vec::new();
    for sent in &input.messages {
        let data = |payload: Vec<u8>| payload[..payload.len().min(MAX_MESSAGE_BYTES)].to_vec();
        let (opcode, message) = match sent.kind {
            Kind::Ping | Kind::Pong => {
                let payload = Bytes::copy_from_slice(&sent.payload[..sent.payload.len().min(125)]);
                let (opcode, message) = match sent.kind {
                    Kind::Ping => (0x9, Message::Ping(payload.clone())),
                    _ => (0xA, Message::Pong(payload.clone())),
                };
                client_frame(&mut wire, FIN | opcode, input.mask, &payload);
                expected.push(message);
                continue;
            }
            Kind::Text => {
                let text = String::from_utf8_lossy(&sent.payload).into_owned();
                let mut cut = text.len().min(MAX_MESSAGE_BYTES);
                while !text.is_char_boundary(cut) {
                    cut -= 1;
                }
                let text = Bytes::from(text.as_bytes()[..cut].to_vec());
                (0x1, Message::Text(text))
            }
            Kind::Binary => (
                0x2,
                Message::Binary(Bytes::from(data(sent.payload.clone()))),
            ),
        };
        let (Message::Text(payload) | Message::Binary(payload)) = &message else {
            unreachable!("data messages only")
        };
        let compressed = config.filter(|_| sent.compress);
        let body = match compressed {
            Some(c) => compress_message(payload, c.client_max_window_bits),
            None => payload.clone(),
        };
        let rsv1 = if compressed.is_some() { RSV1 } else { 0 };
        let size = if sent.fragment == 0 {
            body.len().max(1)
        } else {
            usize::from(sent.fragment)
        };
        let pieces: Vec<&[u8]> = if body.is_empty() {
            vec![&[]]
        } else {
            body.chunks(size).collect()
        };
        for (i, piece) in pieces.iter().enumerate() {
            let fin = if i + 1 == pieces.len() { FIN } else { 0 };
            let first = if i == 0 { rsv1 | opcode } else { 0 };
            client_frame(&mut wire, fin | first, input.mask, piece);
            if i == 0 && sent.ping_inside && pieces.len() > 1 {
                client_frame(&mut wire, FIN | 0x9, input.mask, b"in");
                expected.push(Message::Ping(Bytes::from_static(b"in")));
            }
        }
        expected.push(message);
    }
    if let Some((code, reason)) = &input.close {
        let code = if is_valid_close_code(*code) {
            *code
        } else {
            1000
        };
        let mut cut = reason.len().min(123);
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        let reason = &reason[..cut];
        let mut payload = code.to_be_bytes().to_vec();
        payload.extend_from_slice(reason.as_bytes());
        client_frame(&mut wire, FIN | 0x8, input.mask, &payload);
        expected.push(Message::Close(Some(CloseFrame {
            code,
            reason: reason.to_owned(),
        })));
    }

    let mut reader = MessageReader::new(MAX_MESSAGE_BYTES, config.as_ref());
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    for read in wire.chunks(usize::from(input.read_size).max(1)) {
        buf.extend_from_slice(read);
        loop {
            match reader.read(&mut buf) {
                Ok(Decoded::Message(m)) => got.push(m),
                Ok(Decoded::Incomplete) => break,
                Err(e) => panic!(
                    "valid client frames refused: {e:?} after {} messages",
                    got.len()
                ),
            }
        }
    }
    assert!(buf.is_empty(), "bytes left after the last frame");
    assert_eq!(got, expected);
});
