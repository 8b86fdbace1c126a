//! Arbitrary bytes as a long-polling POST body: `decode_payload` may refuse them, never
//! panic; the packets it accepts join back into a body that decodes to the same packets.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use switchboard_socketio::engineio::{Packet, decode_payload, join_payload};

fuzz_target!(|data: &[u8]| {
    let Ok(packets) = decode_payload(Bytes::copy_from_slice(data), 1 << 16) else {
        return;
    };
    let segments: Vec<Bytes> = packets.iter().map(Packet::to_text).collect();
    assert_eq!(decode_payload(join_payload(&segments), usize::MAX), Ok(packets));
});
