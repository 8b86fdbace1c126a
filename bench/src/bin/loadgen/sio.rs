//! The Socket.IO side of the generator's connections (`sio-fanout`, `sio-idle`): Engine.IO v4
//! over the raw WebSocket client of [`crate::ws`], Socket.IO v5 in the root namespace.
//!
//! A connection opens `ws://HOST/socket.io/?EIO=4&transport=websocket` and then:
//!
//! 1. waits for the Engine.IO open packet (`0{"sid":…}`) and sends CONNECT to `/` (`40`);
//! 2. waits for the server's CONNECT (`40{"sid":…}`) and emits `join` with the room and ack
//!    id [`JOIN_ACK_ID`] (`421["join","bench"]`): a server drops packets for a namespace the
//!    socket is not connected to yet, so this cannot be sent earlier;
//! 3. waits for that ack (`431[…]`): joined, unless the ack carries an `error`.
//!
//! From then on it answers the server's heartbeat (`2` → `3`: servers ping every 25 s and
//! drop a client that does not answer within their ping timeout) and receives events. The hot
//! path, `pub` events, is the substring scan of [`crate::publication::scan_sio`]; every other
//! message is decoded with switchboard's own codec (`switchboard-socketio`), which checks
//! every byte and never panics.

use bytes::Bytes;
use serde_json::Value;
use switchboard_socketio::engineio::{Message, Packet as EnginePacket};
use switchboard_socketio::socketio::{Decoder, Packet, PacketKind};
use switchboard_socketio::{JsonText, Limits};

use crate::fleet::MASK;
use crate::publication::{self, Publication};
use crate::ws;

/// The ack id of the `join` event.
pub(crate) const JOIN_ACK_ID: u64 = 1;

/// The path and query of the Engine.IO WebSocket endpoint of a server at the default path.
pub(crate) const DEFAULT_PATH: &str = "/socket.io/?EIO=4&transport=websocket";

/// Where a connection is in its setup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// Waiting for the Engine.IO open packet.
    Open,
    /// CONNECT sent, waiting for the server's.
    Connect,
    /// `join` emitted, waiting for its ack.
    Join,
    /// In the room.
    Joined,
}

/// The masked frames every connection sends, encoded once.
#[derive(Debug, Clone)]
pub(crate) struct Frames {
    connect: Vec<u8>,
    join: Vec<u8>,
}

impl Frames {
    /// The `join` frame (sent again when its ack is late).
    pub(crate) fn join_frame(&self) -> Vec<u8> {
        self.join.clone()
    }

    /// The frames for joining `room`.
    pub(crate) fn new(room: &str) -> anyhow::Result<Self> {
        let text = |packet: Packet| -> anyhow::Result<Vec<u8>> {
            let encoded = packet.encode()?;
            let mut out = Vec::new();
            for frame in encoded.websocket() {
                let switchboard_socketio::engineio::Frame::Text(text) = frame else {
                    anyhow::bail!("a text packet encoded as binary");
                };
                ws::encode_masked(&mut out, ws::OP_TEXT, text, MASK);
            }
            Ok(out)
        };
        let room = JsonText::from_serialize(room)?;
        Ok(Self {
            connect: text(Packet::connect(Packet::DEFAULT_NAMESPACE, None))?,
            join: text(
                Packet::event_with_args(Packet::DEFAULT_NAMESPACE, "join", &[&room])
                    .with_id(JOIN_ACK_ID),
            )?,
        })
    }
}

/// What a message meant to the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Event {
    /// Nothing the caller acts on (a setup step, a heartbeat answered, another event).
    Nothing,
    /// The ack of `join`: joined, or refused with the ack's arguments.
    Joined(Result<(), String>),
    /// A `pub` event that missed the fast scan.
    Publication(Publication),
}

/// One connection's Socket.IO state.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    stage: Stage,
    decoder: Decoder,
}

impl Default for Client {
    fn default() -> Self {
        Self {
            stage: Stage::Open,
            decoder: Decoder::new(Limits::default()),
        }
    }
}

impl Client {
    /// Where the setup is.
    pub(crate) fn stage(&self) -> Stage {
        self.stage
    }

    /// Handles one text message that is not a `pub` event in the expected form; frames to
    /// send go to `out`. An error means the connection is over (the server closed it,
    /// disconnected the socket, refused the namespace, or broke the protocol).
    pub(crate) fn on_text(
        &mut self,
        text: &[u8],
        frames: &Frames,
        out: &mut Vec<u8>,
    ) -> Result<Event, String> {
        // The open packet's fields (sid, ping interval…) are not needed: any `0…` will do.
        if text.first() == Some(&b'0') {
            if self.stage == Stage::Open {
                out.extend_from_slice(&frames.connect);
                self.stage = Stage::Connect;
            }
            return Ok(Event::Nothing);
        }
        let packet = EnginePacket::decode_text(
            Bytes::copy_from_slice(text),
            Limits::default().max_payload_bytes,
        )
        .map_err(|e| format!("bad Engine.IO packet from the server: {e}"))?;
        match packet {
            EnginePacket::Ping(data) => {
                let mut pong = Vec::with_capacity(1 + data.len());
                pong.push(b'3');
                pong.extend_from_slice(data.as_bytes());
                ws::encode_masked(out, ws::OP_TEXT, &pong, MASK);
            }
            EnginePacket::Close => return Err("Engine.IO close packet from the server".into()),
            EnginePacket::Message(Message::Text(text)) => {
                let packet = self
                    .decoder
                    .decode_text(text)
                    .map_err(|e| format!("bad Socket.IO packet from the server: {e}"))?;
                if let Some(packet) = packet {
                    return self.on_packet(&packet, frames, out);
                }
            }
            _ => {}
        }
        Ok(Event::Nothing)
    }

    fn on_packet(
        &mut self,
        packet: &Packet,
        frames: &Frames,
        out: &mut Vec<u8>,
    ) -> Result<Event, String> {
        if packet.namespace != Packet::DEFAULT_NAMESPACE {
            return Ok(Event::Nothing);
        }
        let data = || packet.data.as_ref().map_or("", JsonText::as_str);
        match packet.kind {
            PacketKind::Connect if self.stage == Stage::Connect => {
                out.extend_from_slice(&frames.join);
                self.stage = Stage::Join;
            }
            PacketKind::ConnectError => return Err(format!("CONNECT_ERROR {}", data())),
            PacketKind::Disconnect => return Err("DISCONNECT from the server".into()),
            PacketKind::Ack if self.stage == Stage::Join && packet.id == Some(JOIN_ACK_ID) => {
                self.stage = Stage::Joined;
                let args: Value = serde_json::from_str(data()).unwrap_or(Value::Null);
                let refused = args
                    .as_array()
                    .is_some_and(|a| a.iter().any(|v| v.get("error").is_some()));
                return Ok(Event::Joined(if refused {
                    Err(data().to_owned())
                } else {
                    Ok(())
                }));
            }
            PacketKind::Event if packet.event_name().as_deref() == Some("pub") => {
                let args: Value = serde_json::from_str(data()).unwrap_or(Value::Null);
                if let Some(p) = publication::from_sio_args(&args) {
                    return Ok(Event::Publication(p));
                }
            }
            _ => {}
        }
        Ok(Event::Nothing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unmask(frames: &[u8]) -> Vec<String> {
        let mut texts = Vec::new();
        let mut rest = frames;
        while !rest.is_empty() {
            let len = usize::from(rest[1] & 0x7F);
            assert!(len < 126, "short frames only");
            let mask = &rest[2..6];
            let payload: Vec<u8> = rest[6..6 + len]
                .iter()
                .zip(mask.iter().cycle())
                .map(|(b, m)| b ^ m)
                .collect();
            texts.push(String::from_utf8(payload).expect("UTF-8"));
            rest = &rest[6 + len..];
        }
        texts
    }

    #[test]
    fn the_setup_goes_open_connect_join_ack() {
        let frames = Frames::new("bench").expect("frames");
        let mut client = Client::default();
        let mut out = Vec::new();
        let open = br#"0{"sid":"abc","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#;
        assert_eq!(client.on_text(open, &frames, &mut out), Ok(Event::Nothing));
        assert_eq!(unmask(&out), ["40"]);
        assert_eq!(client.stage(), Stage::Connect);
        out.clear();
        let connected = br#"40{"sid":"def"}"#;
        assert_eq!(
            client.on_text(connected, &frames, &mut out),
            Ok(Event::Nothing)
        );
        assert_eq!(unmask(&out), [r#"421["join","bench"]"#]);
        assert_eq!(client.stage(), Stage::Join);
        out.clear();
        let ack = br#"431[{"ok":true}]"#;
        assert_eq!(
            client.on_text(ack, &frames, &mut out),
            Ok(Event::Joined(Ok(())))
        );
        assert_eq!(client.stage(), Stage::Joined);
        assert!(out.is_empty());
    }

    #[test]
    fn a_refused_join_and_a_refused_namespace_are_reported() {
        let frames = Frames::new("bench").expect("frames");
        let mut client = Client {
            stage: Stage::Join,
            ..Client::default()
        };
        let mut out = Vec::new();
        let refused = br#"431[{"error":{"code":"forbidden","message":"no"}}]"#;
        let Ok(Event::Joined(Err(why))) = client.on_text(refused, &frames, &mut out) else {
            panic!("a refused join")
        };
        assert!(why.contains("forbidden"), "{why}");
        let mut client = Client {
            stage: Stage::Connect,
            ..Client::default()
        };
        let error = br#"44{"message":"Invalid namespace"}"#;
        let why = client
            .on_text(error, &frames, &mut out)
            .expect_err("the end");
        assert!(why.contains("Invalid namespace"), "{why}");
    }

    #[test]
    fn pings_are_answered_and_odd_pub_events_decoded_the_slow_way() {
        let frames = Frames::new("bench").expect("frames");
        let mut client = Client::default();
        let mut out = Vec::new();
        assert_eq!(client.on_text(b"2", &frames, &mut out), Ok(Event::Nothing));
        assert_eq!(unmask(&out), ["3"]);
        let spaced = br#"42["pub", {"seq": 3, "ts": 9, "pad": "x"}]"#;
        assert_eq!(
            client.on_text(spaced, &frames, &mut out),
            Ok(Event::Publication(Publication {
                offset: 3,
                sent_ns: 9
            }))
        );
        assert_eq!(
            client.on_text(br#"42["other",1]"#, &frames, &mut out),
            Ok(Event::Nothing)
        );
        assert!(client.on_text(b"41", &frames, &mut out).is_err());
        assert!(client.on_text(b"1", &frames, &mut out).is_err());
    }

    #[test]
    fn garbage_ends_the_connection_without_a_panic() {
        let frames = Frames::new("bench").expect("frames");
        for text in [&b""[..], b"9", b"0{", b"4", b"42[", b"4\xff", b"43x[]"] {
            let mut client = Client::default();
            let _ = client.on_text(text, &frames, &mut Vec::new());
        }
    }
}
