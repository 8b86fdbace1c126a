//! Query-string parsing shared by `/sse` and `/poll`: repeated `channel` parameters and a few
//! numbers, each refused with `bad_request` or `invalid_channel` when malformed.

use switchboard_core::ChannelName;
use switchboard_proto::ErrorCode;

use crate::error::ApiError;

/// Parsed query parameters.
#[derive(Default)]
pub(crate) struct Query {
    pub(crate) channels: Vec<ChannelName>,
    pub(crate) pairs: Vec<(String, String)>,
}

impl Query {
    /// Parses `raw`; requires 1..=`max_channels` distinct channels.
    pub(crate) fn parse(raw: Option<&str>, max_channels: usize) -> Result<Self, ApiError> {
        let mut q = Query::default();
        for (k, v) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
            if k == "channel" {
                let ch = ChannelName::parse(&v).map_err(|e| {
                    ApiError::new(
                        ErrorCode::InvalidChannel,
                        format!("invalid channel {v:?}: {e}"),
                    )
                })?;
                if q.channels.contains(&ch) {
                    return Err(ApiError::bad_request(format!("channel {v:?} given twice")));
                }
                q.channels.push(ch);
                if q.channels.len() > max_channels {
                    return Err(ApiError::new(
                        ErrorCode::LimitExceeded,
                        format!("at most {max_channels} channels per request"),
                    ));
                }
            } else {
                if q.pairs.len() >= 16 {
                    return Err(ApiError::bad_request("too many query parameters"));
                }
                q.pairs.push((k.into_owned(), v.into_owned()));
            }
        }
        if q.channels.is_empty() {
            return Err(ApiError::bad_request(
                "give at least one `channel` parameter",
            ));
        }
        Ok(q)
    }

    /// The value of parameter `key`.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A number parameter, with a default, refused when out of `range`.
    pub(crate) fn number(
        &self,
        key: &str,
        default: u64,
        range: std::ops::RangeInclusive<u64>,
    ) -> Result<u64, ApiError> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => match v.parse::<u64>() {
                Ok(n) if range.contains(&n) => Ok(n),
                _ => Err(ApiError::bad_request(format!(
                    "`{key}` must be a number in {}..={}",
                    range.start(),
                    range.end()
                ))),
            },
        }
    }

    /// A boolean flag (`1`/`true`).
    pub(crate) fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("1" | "true"))
    }
}
