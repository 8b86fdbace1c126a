//! A channel's bounded in-memory history: the most recent publications, capped by count,
//! age and bytes, used for recovery after a reconnect and for history queries.

use std::{collections::VecDeque, sync::Arc, time::Duration};

use tokio::time::Instant;

use crate::publication::{Prepared, Publication};

/// A shared, encoded-on-demand publication, as stored in history and queued to subscribers.
pub type SharedPublication = Arc<Prepared<Publication>>;

#[derive(Debug, Default)]
pub(crate) struct History {
    items: VecDeque<SharedPublication>,
    bytes: usize,
}

/// Outcome of looking for the publications after an offset.
pub(crate) enum Since {
    /// Everything after the offset is here (possibly nothing).
    Complete(Vec<SharedPublication>),
    /// Some publications after the offset are gone.
    Incomplete,
}

fn weight(p: &Publication) -> usize {
    p.data.len() + 64
}

impl History {
    pub(crate) fn push(&mut self, p: SharedPublication) -> usize {
        let w = weight(&p);
        self.bytes += w;
        self.items.push_back(p);
        w
    }

    /// Drops from the front while over `max_len`, older than `ttl`, or (when `over_budget`
    /// says so) over the global byte budget. Returns the bytes freed.
    pub(crate) fn trim(
        &mut self,
        max_len: usize,
        ttl: Duration,
        now: Instant,
        mut over_budget: impl FnMut(usize) -> bool,
    ) -> usize {
        let mut freed = 0;
        while let Some(front) = self.items.front() {
            let too_many = self.items.len() > max_len;
            let too_old = now.saturating_duration_since(front.published_at) > ttl;
            if !(too_many || too_old || over_budget(freed)) {
                break;
            }
            let w = weight(front);
            self.items.pop_front();
            self.bytes -= w;
            freed += w;
        }
        freed
    }

    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Drops everything; returns the bytes freed.
    pub(crate) fn clear(&mut self) -> usize {
        self.items.clear();
        std::mem::take(&mut self.bytes)
    }

    pub(crate) fn first_offset(&self) -> Option<u64> {
        self.items.front().map(|p| p.offset)
    }

    /// The publications with offset > `offset`, given the stream's last offset `top`.
    pub(crate) fn since(&self, offset: u64, top: u64, limit: usize) -> Since {
        if offset >= top {
            return Since::Complete(Vec::new());
        }
        match self.first_offset() {
            Some(first) if first <= offset + 1 => {
                let skip = (offset + 1 - first) as usize;
                Since::Complete(self.items.iter().skip(skip).take(limit).cloned().collect())
            }
            _ => Since::Incomplete,
        }
    }

    /// Up to `limit` publications starting after `after` going forwards, or before `before`
    /// going backwards (newest first).
    pub(crate) fn page(&self, from: PageFrom, limit: usize) -> Vec<SharedPublication> {
        match from {
            PageFrom::After(offset) => self
                .items
                .iter()
                .filter(|p| p.offset > offset)
                .take(limit)
                .cloned()
                .collect(),
            PageFrom::Before(offset) => self
                .items
                .iter()
                .rev()
                .filter(|p| p.offset < offset)
                .take(limit)
                .cloned()
                .collect(),
        }
    }
}

/// Where a history page starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageFrom {
    /// Oldest first, publications with offset greater than this.
    After(u64),
    /// Newest first, publications with offset less than this.
    Before(u64),
}
