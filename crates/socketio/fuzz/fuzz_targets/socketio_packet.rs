//! Arbitrary Engine.IO messages (split on 0xff; a leading 0 byte makes one binary) through
//! one connection's Socket.IO `Decoder`, with small attachment limits: it may refuse them,
//! never panic or grow past its limits; every packet it completes encodes back to messages
//! that decode to the same packet.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use switchboard_socketio::{
    Limits, Str,
    engineio::Frame,
    socketio::Decoder,
};

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_payload_bytes: 1 << 16,
        max_attachments: 4,
        max_attachment_bytes: 64,
    };
    let mut decoder = Decoder::new(limits);
    for message in data.split(|&b| b == 0xff) {
        let result = match message.split_first() {
            Some((0, binary)) => decoder.decode_binary(Bytes::copy_from_slice(binary)),
            _ => match std::str::from_utf8(message) {
                Ok(text) => decoder.decode_text(Str::from(text)),
                Err(_) => continue,
            },
        };
        assert!(decoder.pending_attachments() <= limits.max_attachments);
        let Ok(Some(packet)) = result else {
            continue;
        };
        let encoded = packet.encode().expect("a decoded packet encodes");
        let mut again = Decoder::new(limits);
        let mut decoded = None;
        for frame in encoded.websocket() {
            decoded = match frame {
                Frame::Text(text) => {
                    let text = Str::from_utf8(text.slice(1..)).expect("we write UTF-8");
                    again.decode_text(text)
                }
                Frame::Binary(data) => again.decode_binary(data.clone()),
            }
            .expect("what we encode decodes");
        }
        assert_eq!(decoded, Some(packet));
    }
});
