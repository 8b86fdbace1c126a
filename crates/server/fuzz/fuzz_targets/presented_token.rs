//! Request headers through `auth::presented_token`: the token it picks is exactly the
//! `Authorization: Bearer` value, else the `token` parameter, else the named cookie's value.
#![no_main]

use http::header;
use libfuzzer_sys::fuzz_target;
use switchboard_server::fuzzing::{TokenFrom, presented_token};
use switchboard_server_fuzz::{RawHeaders, headers};

fuzz_target!(|input: (RawHeaders<'_>, Option<&str>, Option<&str>)| {
    let (raw, query, cookie) = input;
    let headers = headers(&raw);
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let query = query.filter(|q| !q.is_empty());
    let cookies: Vec<(&str, &str)> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .collect();
    let from_cookie = cookie.and_then(|name| cookies.iter().find(|(k, _)| *k == name));
    match presented_token(&headers, query, cookie) {
        Some((token, TokenFrom::Header)) => assert_eq!(Some(token), bearer.map(str::trim)),
        Some((token, TokenFrom::Query)) => {
            assert!(bearer.is_none());
            assert_eq!(Some(token), query);
        }
        Some((token, TokenFrom::Cookie)) => {
            assert!(bearer.is_none() && query.is_none());
            assert_eq!(Some(token), from_cookie.map(|(_, v)| *v));
            assert!(!token.contains(';'));
        }
        None => assert!(bearer.is_none() && query.is_none() && from_cookie.is_none()),
    }
});
