//! Poll cursors and SSE `Last-Event-ID` values through `cursor::parse`: an accepted cursor
//! has one valid position per channel, and the cursor the server writes for those positions
//! reads back as the same positions; a refusal is `bad_request`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_proto::ErrorCode;
use switchboard_server::fuzzing::{format_cursor, parse_cursor};

fuzz_target!(|input: (u8, &str)| {
    let (channels, cursor) = input;
    let channels = usize::from(channels % 10);
    match parse_cursor(cursor, channels) {
        Ok(positions) => {
            assert_eq!(positions.len(), channels);
            for p in &positions {
                let epoch = p.epoch.as_str();
                assert!((1..=32).contains(&epoch.len()));
                assert!(epoch.bytes().all(|b| b.is_ascii_alphanumeric()));
            }
            let written = format_cursor(&positions);
            assert_eq!(parse_cursor(&written, channels).as_ref(), Ok(&positions));
        }
        Err((code, _)) => assert_eq!(code, ErrorCode::BadRequest),
    }
});
