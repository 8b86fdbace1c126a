//! Arbitrary bytes as a `socket.io-msgpack-parser` binary message: `msgpack::decode` may
//! refuse them, never panic; a packet it accepts encodes to bytes that decode to the same
//! packet.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_socketio::{Limits, engineio::Frame, msgpack};

fuzz_target!(|data: &[u8]| {
    let Ok(packet) = msgpack::decode(data, &Limits::default()) else {
        return;
    };
    let encoded = msgpack::encode(&packet).expect("a decoded packet encodes");
    let [Frame::Binary(bytes)] = encoded.websocket() else {
        panic!("one binary message");
    };
    let decoded = msgpack::decode(bytes, &Limits::default()).expect("what we encode decodes");
    assert_eq!(decoded.attachments, packet.attachments);
    assert_eq!(decoded.namespace, packet.namespace);
    assert_eq!(decoded.id, packet.id);
});
