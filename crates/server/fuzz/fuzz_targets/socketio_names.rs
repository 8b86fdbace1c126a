//! What Socket.IO clients name: namespaces and rooms (mapped to hub channels and back, one to
//! one) and the offset a reconnecting client reports (placed in every channel it was in, or
//! refused). Arbitrary strings never panic; a room that maps comes back unchanged; a valid
//! offset gives positions the client was actually sent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_server::fuzzing::{
    socketio_channel_room, socketio_recovery_positions, socketio_room_channel,
};

fuzz_target!(|input: (&str, &str, &str)| {
    let (namespace, room, offset) = input;
    if let Some(channel) = socketio_room_channel(namespace, room) {
        assert!(channel.len() <= 255);
        let (ns, back) = socketio_channel_room(&channel);
        assert_eq!(ns, namespace, "{channel:?}");
        assert_eq!(back.as_deref(), Some(room), "{channel:?}");
    }
    let _ = socketio_channel_room(room);
    if let Some((a, b)) = socketio_recovery_positions(offset) {
        // a:1..=3 and b:1..=2 were sent, interleaved a1 a2 b1 a3 b2 (or nothing was seen: "").
        assert!(matches!((a, b), (0, 0) | (1, 0) | (2, 0) | (2, 1) | (3, 1) | (3, 2)), "{a} {b}");
    }
});
