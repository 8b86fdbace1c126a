//! [`Plan`]: one append batch merged by stream and laid out as the arrays that
//! `AppendCreate` and `AppendRows` take, and the conflict check on its result.

use std::collections::HashMap;

use switchboard_core::{
    ChannelName, StoreError,
    store::{StreamAppend, expires_at},
};
use tokio_postgres::Row;

use super::sql::{clamp, get, offset, payload_columns, unsigned};

/// Publications of one batch, merged by stream and laid out as statement arrays. Entries
/// with no publications are left out; entries of one stream are joined in batch order.
#[derive(Default)]
pub(super) struct Plan<'a> {
    // Per stream, in the order the batch first names them.
    pub(super) channels: Vec<&'a ChannelName>,
    pub(super) names: Vec<&'a str>,
    pub(super) epochs: Vec<&'a str>,
    /// The stream's first offset in the batch.
    pub(super) firsts: Vec<i64>,
    /// The stream's last offset in the batch.
    pub(super) lasts: Vec<i64>,

    // Per publication.
    /// Its stream's position in `channels`, from 1 (as `WITH ORDINALITY` counts).
    pub(super) stream_ix: Vec<i64>,
    pub(super) offsets: Vec<i64>,
    pub(super) times: Vec<i64>,
    pub(super) expires: Vec<i64>,
    pub(super) kinds: Vec<i16>,
    pub(super) data: Vec<&'a [u8]>,
    pub(super) clients: Vec<Option<&'a str>>,
    pub(super) users: Vec<Option<&'a str>>,
    pub(super) conn_infos: Vec<Option<&'a [u8]>>,
}

// === impl Plan ===

impl<'a> Plan<'a> {
    /// Merges the batch by stream and checks that offsets are consecutive within it.
    pub(super) fn new(batch: &'a [StreamAppend]) -> Result<Self, StoreError> {
        let mut plan = Plan::default();
        let mut positions: HashMap<&ChannelName, usize> = HashMap::new();
        for append in batch {
            let Some(first) = append.publications.first() else {
                continue;
            };
            let ix = match positions.get(&append.channel) {
                Some(&ix) => ix,
                None => {
                    plan.channels.push(&append.channel);
                    plan.names.push(append.channel.as_str());
                    plan.epochs.push(append.epoch.as_str());
                    plan.firsts.push(offset(first.offset)?);
                    plan.lasts.push(offset(first.offset)? - 1);
                    positions.insert(&append.channel, plan.channels.len() - 1);
                    plan.channels.len() - 1
                }
            };
            for p in &append.publications {
                let o = offset(p.offset)?;
                if o != plan.lasts[ix] + 1 {
                    return Err(StoreError::Conflict {
                        channel: append.channel.clone(),
                        expected: plan.lasts[ix] as u64 + 1,
                        got: p.offset,
                    });
                }
                plan.lasts[ix] = o;
                plan.stream_ix.push(ix as i64 + 1);
                plan.offsets.push(o);
                plan.times.push(clamp(p.time_ms));
                plan.expires
                    .push(clamp(expires_at(p.time_ms, append.ttl_ms)));
                let (kind, data) = payload_columns(&p.data);
                plan.kinds.push(kind);
                plan.data.push(data);
                let info = p.info.as_deref();
                plan.clients.push(info.map(|i| i.client.as_str()));
                plan.users
                    .push(info.and_then(|i| i.user.as_ref()).map(|u| u.as_str()));
                plan.conn_infos.push(
                    info.and_then(|i| i.conn_info.as_ref())
                        .map(|j| j.as_bytes().as_ref()),
                );
            }
        }
        Ok(plan)
    }

    /// The first stream, in batch order, whose last offset is not `first - 1`; `None` when
    /// every stream that exists follows (one is missing: retention removed it meanwhile).
    pub(super) fn conflict(&self, tops: &[Row]) -> Result<Option<StoreError>, StoreError> {
        let tops: HashMap<String, i64> = tops
            .iter()
            .map(|row| Ok((get::<String>(row, 0)?, get::<i64>(row, 1)?)))
            .collect::<Result<_, StoreError>>()?;
        for (i, channel) in self.channels.iter().enumerate() {
            if let Some(&top) = tops.get(channel.as_str())
                && top != self.firsts[i] - 1
            {
                return Ok(Some(StoreError::Conflict {
                    channel: (*channel).clone(),
                    expected: unsigned(top)? + 1,
                    got: unsigned(self.firsts[i])?,
                }));
            }
        }
        Ok(None)
    }
}
