//! Arbitrary `Sec-WebSocket-Extensions` values through the negotiation: any
//! accepted config must stay within what zlib and RFC 7692 allow.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_websocket::{DeflatePolicy, negotiate_deflate};

fuzz_target!(|offers: &str| {
    if let Some((config, response)) = negotiate_deflate(offers, &DeflatePolicy::default()) {
        assert!((9..=15).contains(&config.server_max_window_bits));
        assert!((8..=15).contains(&config.client_max_window_bits));
        assert!(response.starts_with("permessage-deflate; server_no_context_takeover"));
    }
});
