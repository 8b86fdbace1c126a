//! [`Handshake`]: the data of the Engine.IO open packet, which tells the client its session
//! id, the transports it may upgrade to and the heartbeat and size limits. Built by the
//! server for each new session.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The open packet's JSON: `{"sid":…,"upgrades":[…],"pingInterval":…,"pingTimeout":…,"maxPayload":…}`
/// (fields in that order, as the reference server writes them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake {
    /// The session id.
    pub sid: String,
    /// Transports the client may upgrade to (`["websocket"]` on polling, `[]` on WebSocket).
    pub upgrades: Vec<String>,
    /// How often the server pings (`pingInterval`, sent in milliseconds).
    pub ping_interval: Duration,
    /// How long the server waits for a pong after a ping (`pingTimeout`, milliseconds).
    pub ping_timeout: Duration,
    /// Largest payload the server accepts (`maxPayload`).
    pub max_payload_bytes: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Wire {
    sid: String,
    upgrades: Vec<String>,
    ping_interval: u64,
    ping_timeout: u64,
    max_payload: u64,
}

impl Handshake {
    /// The handshake as JSON text.
    pub fn to_json(&self) -> String {
        let wire = Wire {
            sid: self.sid.clone(),
            upgrades: self.upgrades.clone(),
            ping_interval: millis(self.ping_interval),
            ping_timeout: millis(self.ping_timeout),
            max_payload: self.max_payload_bytes,
        };
        serde_json::to_string(&wire).expect("a struct of strings and integers serializes")
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl<'de> Deserialize<'de> for Handshake {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let wire = Wire::deserialize(d)?;
        Ok(Self {
            sid: wire.sid,
            upgrades: wire.upgrades,
            ping_interval: Duration::from_millis(wire.ping_interval),
            ping_timeout: Duration::from_millis(wire.ping_timeout),
            max_payload_bytes: wire.max_payload,
        })
    }
}
