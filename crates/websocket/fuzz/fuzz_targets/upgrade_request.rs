//! Arbitrary upgrade request header values through `validate_upgrade` and
//! `select_subprotocol`: an accepted request has a 16-byte key and gets that key's accept
//! value, and the chosen subprotocol is one both sides listed.
#![no_main]

use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use switchboard_websocket::{UpgradeRequest, accept_key, select_subprotocol, validate_upgrade};

const SUPPORTED: [&str; 2] = ["switchboard.json", "switchboard.msgpack"];

type Headers<'a> = (&'a str, [Option<&'a str>; 4], Option<&'a str>);

fuzz_target!(|headers: Headers<'_>| {
    let (method, [upgrade, connection, version, key], protocols) = headers;
    let request = UpgradeRequest {
        method,
        upgrade,
        connection,
        version,
        key,
    };
    if let Ok(accept) = validate_upgrade(&request) {
        assert_eq!(method, "GET");
        assert_eq!(version.map(str::trim), Some("13"));
        let key = key.expect("an accepted request has a key").trim();
        let decoded = base64::engine::general_purpose::STANDARD.decode(key);
        assert_eq!(decoded.map(|k| k.len()), Ok(16));
        assert_eq!(accept, accept_key(key));
        assert_eq!(accept.len(), 28);
    }
    let offered = |p: &str| protocols.is_some_and(|list| list.split(',').any(|o| o.trim() == p));
    match select_subprotocol(protocols, &SUPPORTED) {
        Some(chosen) => {
            assert!(offered(chosen));
            // The server's preference order wins.
            assert!(
                SUPPORTED
                    .iter()
                    .take_while(|s| **s != chosen)
                    .all(|s| !offered(s))
            );
        }
        None => assert!(SUPPORTED.iter().all(|s| !offered(s))),
    }
});
