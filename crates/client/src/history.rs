//! The `history` request's options and result: [`HistoryOptions`], [`HistoryFrom`] and
//! [`History`].

use crate::publication::{Publication, StreamPosition};

/// Which publications a [`Client::history`](crate::Client::history) call reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HistoryOptions {
    /// Most publications to return (the server allows at most 1000; default 100).
    pub limit: Option<u32>,
    /// Where to start; `None` reads the oldest kept publications first.
    pub from: Option<HistoryFrom>,
}

/// A starting point in a channel's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryFrom {
    /// Publications with an offset greater than this one, oldest first.
    After(u64),
    /// Publications with an offset less than this one, newest first.
    Before(u64),
}

/// A page of a channel's history.
#[derive(Debug, Clone, PartialEq)]
pub struct History {
    /// The publications, in the order [`HistoryFrom`] describes.
    pub publications: Vec<Publication>,
    /// The channel's current stream position.
    pub position: StreamPosition,
}
