//! Arbitrary bytes as a JSON command frame. `decode` may refuse them, never panic; what it
//! accepts must survive being written back: as JSON it decodes to the same request, and as
//! MessagePack (what a client switching format would send) to the same request with the
//! same data.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_proto::{Format, decode};
use switchboard_proto_fuzz::{encode, normalize};

fuzz_target!(|frame: &[u8]| {
    let Ok(req) = decode(Format::Json, frame) else {
        return;
    };
    let json = encode(Format::Json, &req).expect("an accepted request can be written as JSON");
    assert_eq!(decode(Format::Json, &json).as_ref(), Ok(&req));
    // `decode` refuses JSON data without a MessagePack form (`1e400`, `"\ud800"`).
    let msgpack = encode(Format::MessagePack, &req)
        .expect("JSON data the server accepted has a MessagePack form");
    assert_eq!(
        decode(Format::MessagePack, &msgpack).map(normalize),
        Ok(normalize(req))
    );
});
