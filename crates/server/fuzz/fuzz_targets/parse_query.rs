//! `/sse` and `/poll` query strings through `Query::parse`: an accepted query has 1..=max
//! distinct channels and at most 16 other parameters, reads back the same when written
//! again, and its numbers and flags obey their ranges; a refusal is a client error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_server::fuzzing::parse_query;
use switchboard_server_fuzz::assert_client_error;

fuzz_target!(|input: (u8, Option<&str>)| {
    let (max, raw) = input;
    let max = usize::from(max % 16) + 1;
    let q = match parse_query(raw, max) {
        Ok(q) => q,
        Err((code, _)) => return assert_client_error(code),
    };
    let channels = q.channels();
    assert!((1..=max).contains(&channels.len()));
    assert!(
        channels
            .iter()
            .enumerate()
            .all(|(i, c)| !channels[..i].contains(c))
    );
    assert!(q.pairs().len() <= 16);
    assert!(q.pairs().iter().all(|(k, _)| k != "channel"));

    let mut again = form_urlencoded::Serializer::new(String::new());
    for c in channels {
        again.append_pair("channel", c.as_str());
    }
    for (k, v) in q.pairs() {
        again.append_pair(k, v);
    }
    let again = parse_query(Some(&again.finish()), max).expect("a written query reads back");
    assert_eq!(again.channels(), channels);
    assert_eq!(again.pairs(), q.pairs());

    for (key, _) in q.pairs() {
        let first = q
            .pairs()
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str());
        assert_eq!(q.get(key), first);
        assert_eq!(q.flag(key), matches!(first, Some("1" | "true")));
        match q.number(key, 7, 1..=100) {
            Ok(n) => assert!((1..=100).contains(&n)),
            Err((code, _)) => assert_client_error(code),
        }
    }
    assert_eq!(q.number("absent-key", 7, 1..=100), Ok(7));
});
