//! Arbitrary bytes as one Engine.IO WebSocket message, text or binary: `Packet::decode` may
//! refuse them, never panic; what it accepts encodes back to a frame that decodes the same.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use switchboard_socketio::engineio::{Frame, Packet};

fuzz_target!(|data: &[u8]| {
    let Some((&setup, rest)) = data.split_first() else {
        return;
    };
    let rest = Bytes::copy_from_slice(rest);
    let frame = if setup & 1 == 0 { Frame::Text(rest) } else { Frame::Binary(rest) };
    let Ok(packet) = Packet::decode(frame, 1 << 16) else {
        return;
    };
    assert_eq!(Packet::decode(packet.to_frame(), usize::MAX).as_ref(), Ok(&packet));
    assert_eq!(Packet::decode_text(packet.to_text(), usize::MAX).as_ref(), Ok(&packet));
});
