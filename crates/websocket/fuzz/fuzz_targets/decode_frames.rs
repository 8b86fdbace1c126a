//! Arbitrary bytes through `MessageReader`, in reads of varying size, with
//! and without permessage-deflate: it may reject them, never panic or hang.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use switchboard_websocket::{Decoded, DeflateConfig, MessageReader};

fuzz_target!(|data: &[u8]| {
    // The first byte picks the setup: deflate, its window and context mode, read size.
    let Some((&setup, wire)) = data.split_first() else {
        return;
    };
    let config = DeflateConfig {
        server_max_window_bits: 15,
        client_max_window_bits: 9 + (setup & 0x07).min(6),
        client_no_context_takeover: setup & 0x08 != 0,
    };
    let mut reader = MessageReader::new(1 << 16, (setup & 0x10 != 0).then_some(&config));
    let mut buf = BytesMut::new();
    for read in wire.chunks(usize::from(setup >> 5) * 37 + 1) {
        buf.extend_from_slice(read);
        while let Ok(Decoded::Message(_)) = reader.read(&mut buf) {}
    }
});
