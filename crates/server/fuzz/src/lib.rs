//! Helpers shared by the server fuzz targets: request headers built from fuzz input, and
//! what every refusal must look like.

use http::{HeaderMap, HeaderName, HeaderValue, header};
use switchboard_proto::ErrorCode;

/// The headers a target's input may set, picked by index (modulo the length).
const NAMES: [HeaderName; 6] = [
    header::AUTHORIZATION,
    header::COOKIE,
    header::ORIGIN,
    header::HOST,
    header::HeaderName::from_static("last-event-id"),
    header::ACCEPT,
];

/// Request headers as fuzz input: a header picked by index (see `NAMES`) and its value.
pub type RawHeaders<'a> = Vec<(u8, &'a [u8])>;

/// A header map as hyper would hand it over: each `(name, value)` appended in order, values
/// hyper would refuse (CR, LF, NUL) left out.
pub fn headers(raw: &[(u8, &[u8])]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in raw {
        if let Ok(v) = HeaderValue::from_bytes(value) {
            map.append(NAMES[usize::from(*name) % NAMES.len()].clone(), v);
        }
    }
    map
}

/// Asserts that a refusal is a client error (4xx), never a server error.
pub fn assert_client_error(code: ErrorCode) {
    let status = code.http_status();
    assert!((400..500).contains(&status), "{code:?} answers {status}");
}
