//! `POST /poll` (and `POST /api/publish`) bodies through the handlers' parsing: too long is
//! `too_large`, any refusal is a client error, and an accepted body's channel and data
//! (JSON, or binary from `b64`) read back the same when written again.
#![no_main]

use base64::{Engine as _, engine::general_purpose::STANDARD};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, value::RawValue};
use switchboard_core::Payload;
use switchboard_proto::ErrorCode;
use switchboard_server::fuzzing::parse_publish_body;
use switchboard_server_fuzz::assert_client_error;

const MAX_BYTES: usize = 4096;

fuzz_target!(|body: &[u8]| {
    let (channel, data) = match parse_publish_body(body, MAX_BYTES) {
        Ok(accepted) => accepted,
        Err((code, _)) => {
            if body.len() > MAX_BYTES {
                assert_eq!(code, ErrorCode::TooLarge);
            }
            return assert_client_error(code);
        }
    };
    assert!(body.len() <= MAX_BYTES);
    let again = match &data {
        Payload::Json(text) => {
            assert!(Payload::json(text.clone()).is_ok(), "data is not JSON");
            let text = std::str::from_utf8(text).expect("JSON text is UTF-8");
            let raw = RawValue::from_string(text.to_owned()).expect("data is one JSON value");
            json!({"channel": channel.as_str(), "data": raw})
        }
        Payload::Binary(bytes) => {
            json!({"channel": channel.as_str(), "b64": STANDARD.encode(bytes)})
        }
    };
    let again = serde_json::to_vec(&again).expect("serializable");
    assert_eq!(parse_publish_body(&again, usize::MAX), Ok((channel, data)));
});
