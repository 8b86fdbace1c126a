//! `Origin` and `Host` headers against `allowed_origins` through `origin::check`: an allowed
//! origin is echoed as sent, origins compare case-insensitively, `*` allows every origin, and
//! once a list is configured only its entries (or the server's own host) pass: no loopback
//! shortcut, and adding an entry never refuses an origin that passed.
#![no_main]

use http::{HeaderValue, header};
use libfuzzer_sys::fuzz_target;
use switchboard_server::fuzzing::{OriginVerdict, check_origin};
use switchboard_server_fuzz::{RawHeaders, headers};

fuzz_target!(|input: (RawHeaders<'_>, Vec<String>)| {
    let (raw, allowed) = input;
    let headers = headers(&raw);
    let verdict = check_origin(&allowed, &headers);
    let Some(origin) = headers.get(header::ORIGIN) else {
        assert_eq!(verdict, OriginVerdict::None);
        return;
    };
    let text = origin.to_str().ok();
    match &verdict {
        OriginVerdict::None => panic!("an Origin header was ignored"),
        OriginVerdict::Allowed(echoed) => assert_eq!(echoed, origin.as_bytes()),
        // Non-ASCII origins are reported whole (bounded by hyper's header size limit).
        OriginVerdict::Refused(reported) if text.is_some() => {
            assert!(reported.chars().count() <= 200);
        }
        OriginVerdict::Refused(_) => {}
    }
    let allowed_now = matches!(verdict, OriginVerdict::Allowed(_));
    if text.is_some() && allowed.iter().any(|a| a == "*") {
        assert!(allowed_now, "`*` allows every origin");
    }
    if let Some(text) = text {
        let mut flipped = headers.clone();
        let upper = HeaderValue::from_str(&text.to_ascii_uppercase()).expect("still ASCII");
        flipped.insert(header::ORIGIN, upper);
        let again = check_origin(&allowed, &flipped);
        assert_eq!(
            matches!(again, OriginVerdict::Allowed(_)),
            allowed_now,
            "case matters"
        );
    }
    if allowed_now && !allowed.is_empty() {
        if !allowed.iter().any(|a| a == "*") && !headers.contains_key(header::HOST) {
            let text = text.expect("an allowed origin is ASCII");
            let listed = allowed
                .iter()
                .any(|a| a.trim_end_matches('/').eq_ignore_ascii_case(text));
            assert!(listed, "{text:?} passed a list that does not hold it");
        }
        let mut more = allowed.clone();
        more.push("https://another.example".to_owned());
        assert!(matches!(
            check_origin(&more, &headers),
            OriginVerdict::Allowed(_)
        ));
    }
});
