//! Arbitrary bytes as a MessagePack command frame. `decode` may refuse them, never panic;
//! the JSON it makes of MessagePack data must be valid JSON, and what it accepts must
//! survive being written back, as MessagePack and as JSON, with the same data.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_core::Payload;
use switchboard_proto::{Command, Format, decode};
use switchboard_proto_fuzz::{encode, normalize};

fuzz_target!(|frame: &[u8]| {
    let Ok(req) = decode(Format::MessagePack, frame) else {
        return;
    };
    if let Command::Publish {
        data: Payload::Json(json),
        ..
    }
    | Command::Rpc {
        data: Payload::Json(json),
        ..
    } = &req.command
    {
        assert!(Payload::json(json.clone()).is_ok(), "data is not JSON");
    }
    let normal = normalize(req.clone());
    let msgpack = encode(Format::MessagePack, &req)
        .expect("an accepted request's data has a MessagePack form");
    assert_eq!(
        decode(Format::MessagePack, &msgpack)
            .map(normalize)
            .as_ref(),
        Ok(&normal)
    );
    let json = encode(Format::Json, &req).expect("an accepted request can be written as JSON");
    assert_eq!(decode(Format::Json, &json).map(normalize), Ok(normal));
});
