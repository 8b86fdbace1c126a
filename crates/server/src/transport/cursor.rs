//! Cursors: the stream positions of an ordered list of channels as one string,
//! `epoch:offset` per channel joined by `,` — the SSE event id and the poll cursor. Channel
//! names are not in it (the request's channel list gives the order), so it stays short.

use switchboard_core::{Epoch, StreamPosition};

use crate::error::ApiError;

/// Longest epoch accepted in a cursor.
const MAX_EPOCH_BYTES: usize = 32;

/// Formats positions as a cursor.
pub(crate) fn format(positions: &[StreamPosition]) -> String {
    let mut s = String::with_capacity(positions.len() * 16);
    for (i, p) in positions.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(p.epoch.as_str());
        s.push(':');
        s.push_str(&p.offset.to_string());
    }
    s
}

/// Parses a cursor for `channels` channels.
pub(crate) fn parse(cursor: &str, channels: usize) -> Result<Vec<StreamPosition>, ApiError> {
    let bad = |why: &str| ApiError::bad_request(format!("invalid cursor: {why}"));
    let parts: Vec<&str> = cursor.split(',').collect();
    if parts.len() != channels {
        return Err(bad("it does not have one position per channel"));
    }
    parts
        .into_iter()
        .map(|part| {
            let (epoch, offset) = part
                .split_once(':')
                .ok_or_else(|| bad("expected epoch:offset"))?;
            if epoch.is_empty()
                || epoch.len() > MAX_EPOCH_BYTES
                || !epoch.bytes().all(|b| b.is_ascii_alphanumeric())
            {
                return Err(bad("bad epoch"));
            }
            let offset = offset.parse::<u64>().map_err(|_| bad("bad offset"))?;
            Ok(StreamPosition {
                offset,
                epoch: Epoch::from_client(epoch),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let p = vec![
            StreamPosition {
                offset: 7,
                epoch: Epoch::from_client("ab12"),
            },
            StreamPosition {
                offset: 0,
                epoch: Epoch::from_client("zz"),
            },
        ];
        let s = format(&p);
        assert_eq!(s, "ab12:7,zz:0");
        assert_eq!(parse(&s, 2).unwrap(), p);
        assert!(parse(&s, 1).is_err());
        assert!(parse("ab:x", 1).is_err());
        assert!(parse("a-b:1", 1).is_err());
        assert!(parse(":1", 1).is_err());
        assert!(parse(&format!("{}:1", "a".repeat(33)), 1).is_err());
    }
}
