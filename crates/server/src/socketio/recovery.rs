//! Connection state recovery (Socket.IO 4.6+), served from the hub's history.
//!
//! With recovery on, every event a socket receives ends with an *offset* string, which the
//! client keeps and sends back (with the `pid` of its CONNECT reply) when it reconnects.
//! For a channel publication the offset names the channel and the publication's offset in
//! it (`<8 hex of the channel's hash>.<offset in base 36>`), the same bytes for every
//! recipient, so broadcasts stay encoded once. An event sent to one socket carries the
//! offset of the last channel publication written before it (`""` when there was none).
//!
//! A socket's [`Track`] records the order in which it was sent its channels'
//! publications, as runs (`channel, first..=last`): one run for a socket in one room, one
//! per switch otherwise, at most [`MAX_RUNS`]. From the last offset the client saw, the
//! runs give its exact position in *every* channel it was in; each channel is then
//! resubscribed from there and the hub's history supplies what was missed. An offset older
//! than the oldest run cannot be placed and the client gets a fresh session
//! (`recovered: false`), as when history has expired. A client that saw nothing resumes
//! from where each channel stood when it joined: the case the reference server misses.

use std::collections::{HashMap, VecDeque};

use switchboard_core::{ChannelName, StreamPosition};

/// Most runs kept per socket.
pub(super) const MAX_RUNS: usize = 1024;

/// A stretch of consecutive deliveries from one channel.
#[derive(Debug, Clone)]
struct Run {
    channel: ChannelName,
    first: u64,
    last: u64,
}

/// The order in which a socket was sent its channels' publications.
#[derive(Debug, Clone, Default)]
pub(crate) struct Track {
    /// Each channel's position when the socket joined it.
    start: HashMap<ChannelName, StreamPosition>,
    /// Each channel's last offset that fell out of `runs`.
    floor: HashMap<ChannelName, u64>,
    runs: VecDeque<Run>,
    /// Whether runs were dropped (older offsets can no longer be placed).
    evicted: bool,
}

/// The offset string of publication `offset` of `channel`.
pub(super) fn offset_tag(channel: &ChannelName, offset: u64) -> String {
    format!("{:08x}.{}", channel_hash(channel), base36(offset))
}

fn channel_hash(channel: &ChannelName) -> u32 {
    // FNV-1a: stable across runs and builds (the tag outlives a server's restart only in
    // a client's memory, but must not depend on a random seed).
    let mut h: u32 = 0x811c_9dc5;
    for b in channel.as_str().bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

fn base36(mut n: u64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

fn parse_tag(tag: &str) -> Option<(u32, u64)> {
    let (h, o) = tag.split_once('.')?;
    if h.len() != 8 || o.is_empty() || o.len() > 13 {
        return None;
    }
    Some((
        u32::from_str_radix(h, 16).ok()?,
        u64::from_str_radix(o, 36).ok()?,
    ))
}

impl Track {
    /// The socket joined `channel` at `position`.
    pub(super) fn joined(&mut self, channel: &ChannelName, position: StreamPosition) {
        self.start.insert(channel.clone(), position);
        self.floor.remove(channel);
    }

    /// The socket left `channel`.
    pub(super) fn left(&mut self, channel: &ChannelName) {
        self.start.remove(channel);
        self.floor.remove(channel);
        self.runs.retain(|r| &r.channel != channel);
    }

    /// The socket was sent publication `offset` of `channel`.
    pub(super) fn sent(&mut self, channel: &ChannelName, offset: u64) {
        if let Some(last) = self.runs.back_mut()
            && &last.channel == channel
            && offset > last.last
        {
            last.last = offset;
            return;
        }
        self.runs.push_back(Run {
            channel: channel.clone(),
            first: offset,
            last: offset,
        });
        if self.runs.len() > MAX_RUNS
            && let Some(old) = self.runs.pop_front()
        {
            self.floor.insert(old.channel, old.last);
            self.evicted = true;
        }
    }

    /// The offset tag of the last publication sent (`""` when none was).
    pub(super) fn last_tag(&self) -> String {
        self.runs
            .back()
            .map(|r| offset_tag(&r.channel, r.last))
            .unwrap_or_default()
    }

    /// Every channel and the position the client had reached in it, given the last offset
    /// tag it saw (`None` or `""`: it saw none). `None` when the tag cannot be placed.
    pub(super) fn positions(
        &self,
        tag: Option<&str>,
    ) -> Option<Vec<(ChannelName, StreamPosition)>> {
        let mut reached: HashMap<&ChannelName, u64> =
            self.start.iter().map(|(c, p)| (c, p.offset)).collect();
        match tag.filter(|t| !t.is_empty()) {
            None => {
                // Nothing seen: every channel from where it stood at the join.
            }
            Some(tag) => {
                let (hash, offset) = parse_tag(tag)?;
                let at = self.runs.iter().rposition(|r| {
                    channel_hash(&r.channel) == hash && r.first <= offset && offset <= r.last
                })?;
                for (c, o) in &self.floor {
                    reached.insert(c, *o);
                }
                for r in self.runs.iter().take(at) {
                    reached.insert(&r.channel, r.last);
                }
                reached.insert(&self.runs[at].channel, offset);
            }
        }
        Some(
            self.start
                .iter()
                .map(|(c, p)| {
                    let offset = reached.get(c).copied().unwrap_or(p.offset);
                    (
                        c.clone(),
                        StreamPosition {
                            offset,
                            epoch: p.epoch.clone(),
                        },
                    )
                })
                .collect(),
        )
    }

    /// Whether offsets older than the runs were dropped.
    #[cfg(test)]
    fn evicted(&self) -> bool {
        self.evicted
    }
}

#[cfg(test)]
mod tests {
    use switchboard_core::Epoch;

    use super::*;

    fn ch(s: &str) -> ChannelName {
        ChannelName::parse(s).unwrap()
    }

    fn pos(offset: u64) -> StreamPosition {
        StreamPosition {
            offset,
            epoch: Epoch::from_client("e"),
        }
    }

    fn at(list: &[(ChannelName, StreamPosition)], c: &str) -> u64 {
        list.iter().find(|(x, _)| x.as_str() == c).unwrap().1.offset
    }

    #[test]
    fn tags_round_trip() {
        let t = offset_tag(&ch("lobby"), 123_456);
        let (h, o) = parse_tag(&t).unwrap();
        assert_eq!(h, channel_hash(&ch("lobby")));
        assert_eq!(o, 123_456);
        assert_eq!(parse_tag("hello"), None);
        assert_eq!(parse_tag(""), None);
    }

    #[test]
    fn positions_follow_the_interleaving() {
        let mut t = Track::default();
        t.joined(&ch("a"), pos(10));
        t.joined(&ch("b"), pos(5));
        t.sent(&ch("a"), 11);
        t.sent(&ch("a"), 12);
        t.sent(&ch("b"), 6);
        t.sent(&ch("a"), 13);
        t.sent(&ch("b"), 7);
        // Saw a:12 → b still at 5.
        let p = t.positions(Some(&offset_tag(&ch("a"), 12))).unwrap();
        assert_eq!((at(&p, "a"), at(&p, "b")), (12, 5));
        // Saw b:6 → a at 12.
        let p = t.positions(Some(&offset_tag(&ch("b"), 6))).unwrap();
        assert_eq!((at(&p, "a"), at(&p, "b")), (12, 6));
        // Saw a:13 → b at 6.
        let p = t.positions(Some(&offset_tag(&ch("a"), 13))).unwrap();
        assert_eq!((at(&p, "a"), at(&p, "b")), (13, 6));
        // Saw nothing → where each stood at the join.
        let p = t.positions(None).unwrap();
        assert_eq!((at(&p, "a"), at(&p, "b")), (10, 5));
        // An offset never sent cannot be placed.
        assert!(t.positions(Some(&offset_tag(&ch("a"), 99))).is_none());
        assert!(t.positions(Some("a user's string")).is_none());
    }

    #[test]
    fn runs_are_bounded() {
        let mut t = Track::default();
        t.joined(&ch("a"), pos(0));
        t.joined(&ch("b"), pos(0));
        for i in 1..=(MAX_RUNS as u64) {
            t.sent(&ch("a"), i);
            t.sent(&ch("b"), i);
        }
        assert!(t.evicted());
        assert!(t.runs.len() <= MAX_RUNS);
        assert!(t.positions(Some(&offset_tag(&ch("a"), 1))).is_none());
        let p = t
            .positions(Some(&offset_tag(&ch("a"), MAX_RUNS as u64)))
            .unwrap();
        assert_eq!(at(&p, "a"), MAX_RUNS as u64);
        assert_eq!(at(&p, "b"), MAX_RUNS as u64 - 1);
    }
}

/// Messages kept for a parked socket (sent to its id while it was away).
const MAX_PARKED_DIRECT: usize = 256;

/// A socket whose connection was cut, kept for recovery.
pub(crate) struct Parked {
    pub(super) pid: std::sync::Arc<str>,
    pub(super) namespace: std::sync::Arc<str>,
    pub(super) id: switchboard_core::ClientId,
    pub(super) auth: crate::auth::Authenticated,
    pub(super) rooms: Vec<(String, ChannelName)>,
    pub(super) track: Track,
    pub(super) direct: Vec<switchboard_core::Delivery>,
    /// More was sent to its id than is kept: it cannot be recovered whole.
    pub(super) lost_direct: bool,
    expires: tokio::time::Instant,
}

impl Parked {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        pid: std::sync::Arc<str>,
        namespace: std::sync::Arc<str>,
        id: switchboard_core::ClientId,
        auth: crate::auth::Authenticated,
        rooms: Vec<(String, ChannelName)>,
        track: Track,
        keep_ms: u64,
    ) -> Self {
        Self {
            pid,
            namespace,
            id,
            auth,
            rooms,
            track,
            direct: Vec::new(),
            lost_direct: false,
            expires: tokio::time::Instant::now() + std::time::Duration::from_millis(keep_ms),
        }
    }
}

/// Parked sockets by `pid`, bounded.
#[derive(Default)]
pub(crate) struct ParkedSockets {
    by_pid: HashMap<std::sync::Arc<str>, Parked>,
    by_id: HashMap<switchboard_core::ClientId, std::sync::Arc<str>>,
    /// Parking order, for expiry and the bound.
    order: VecDeque<(tokio::time::Instant, std::sync::Arc<str>)>,
}

impl ParkedSockets {
    fn purge(&mut self, now: tokio::time::Instant) {
        while let Some((at, pid)) = self.order.front() {
            let expired = *at <= now;
            let gone = !self.by_pid.contains_key(pid);
            if !expired && !gone {
                break;
            }
            let pid = pid.clone();
            self.order.pop_front();
            if expired && let Some(p) = self.by_pid.remove(&pid) {
                self.by_id.remove(&p.id);
            }
        }
    }

    pub(super) fn park(&mut self, parked: Parked, max: usize) {
        self.purge(tokio::time::Instant::now());
        while self.by_pid.len() >= max.max(1) {
            let Some((_, pid)) = self.order.pop_front() else {
                break;
            };
            if let Some(p) = self.by_pid.remove(&pid) {
                self.by_id.remove(&p.id);
            }
        }
        self.order.push_back((parked.expires, parked.pid.clone()));
        self.by_id.insert(parked.id.clone(), parked.pid.clone());
        self.by_pid.insert(parked.pid.clone(), parked);
    }

    pub(super) fn take(&mut self, pid: &str, namespace: &str) -> Option<Parked> {
        let now = tokio::time::Instant::now();
        self.purge(now);
        let p = self.by_pid.get(pid)?;
        if &*p.namespace != namespace || p.expires <= now {
            return None;
        }
        let p = self.by_pid.remove(pid)?;
        self.by_id.remove(&p.id);
        Some(p)
    }

    pub(super) fn keep_for(
        &mut self,
        id: &switchboard_core::ClientId,
        namespace: &str,
        d: switchboard_core::Delivery,
    ) -> bool {
        let Some(pid) = self.by_id.get(id) else {
            return false;
        };
        let Some(p) = self.by_pid.get_mut(pid) else {
            return false;
        };
        if &*p.namespace != namespace {
            return false;
        }
        if p.direct.len() >= MAX_PARKED_DIRECT {
            p.lost_direct = true;
        } else {
            p.direct.push(d);
        }
        true
    }
}
