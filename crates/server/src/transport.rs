//! Transports: they move frames between sockets and the hub, and nothing else.
//! `websocket` runs the native protocol over RFC 6455, `sse` streams to `EventSource`,
//! `poll` serves long and short polling; `frames` holds the shared, encoded-once frames;
//! `cursor` the position strings SSE ids and poll cursors carry.

pub(crate) mod cursor;
pub(crate) mod frames;
pub(crate) mod identity;
pub(crate) mod poll;
pub(crate) mod query;
pub(crate) mod sse;
pub(crate) mod websocket;
