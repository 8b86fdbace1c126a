//! What the generator publishes and how it reads it back: the 100-byte payload that carries its
//! send time, the `publish` command around it, and the cheap scan that pulls `offset` and the
//! send time out of a `{"push":"publication",…}` frame without parsing the JSON. For Socket.IO
//! the payload also carries the publisher's sequence number (`seq`: Socket.IO has no offsets),
//! goes out as the event `42["pub",PAYLOAD]`, and [`scan_sio`] reads `seq` and `ts` back the
//! same way.
//!
//! Why the scan is sound: in JSON text a `"key":` sequence (quote, name, quote, colon) can only
//! be an object key, because a quote inside a string is escaped and a string value is followed
//! by `,`, `}` or `]`, never by a letter. The publication's only keys named `offset` and `ts` are
//! the top-level `offset` and our own payload's `ts`, as long as nothing else in the frame (the
//! publisher's `info`, which the bench never sets) uses them. Anything the scan does not
//! recognise goes to the slow path, a full `serde_json` parse, which is counted and reported.

use std::io::Write as _;
use std::sync::LazyLock;

use memchr::memmem::Finder;

/// Size of every publication's `data`, in bytes of JSON text.
pub(crate) const PAYLOAD_BYTES: usize = 100;

static PUSH_PUBLICATION: LazyLock<Finder<'static>> =
    LazyLock::new(|| Finder::new(br#""push":"publication""#));
static OFFSET_KEY: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(br#""offset":"#));
static TS_KEY: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(br#""ts":"#));
static SEQ_KEY: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(br#""seq":"#));

/// How a Socket.IO `pub` event starts on the wire: Engine.IO message (`4`), Socket.IO EVENT
/// (`2`) in the root namespace without an ack id, then the arguments array.
pub(crate) const SIO_PUB_PREFIX: &[u8] = br#"42["pub","#;

/// The two numbers the generator needs from a publication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Publication {
    /// Its position in the stream, one more than the previous one's: the channel offset the
    /// server gave it, or (Socket.IO) the sequence number the publisher gave it.
    pub(crate) offset: u64,
    /// When the publisher sent it, in ns on [`crate::stats::now_ns`]'s clock.
    pub(crate) sent_ns: u64,
}

/// Appends `{"ts":SENT_NS,"pad":"xx…"}`, exactly [`PAYLOAD_BYTES`] long.
pub(crate) fn write_payload(out: &mut Vec<u8>, sent_ns: u64) {
    write_payload_with(out, sent_ns, None);
}

/// Appends `{"ts":SENT_NS,"seq":SEQ,"pad":"xx…"}` (without `seq` when `None`), exactly
/// [`PAYLOAD_BYTES`] long.
fn write_payload_with(out: &mut Vec<u8>, sent_ns: u64, seq: Option<u64>) {
    let start = out.len();
    // Writing to a Vec cannot fail.
    let _ = write!(out, r#"{{"ts":{sent_ns},"#);
    if let Some(seq) = seq {
        let _ = write!(out, r#""seq":{seq},"#);
    }
    out.extend_from_slice(br#""pad":""#);
    let pad = PAYLOAD_BYTES.saturating_sub(out.len() - start + 2);
    out.resize(out.len() + pad, b'x');
    out.extend_from_slice(br#""}"#);
}

/// Appends the text of one `publish` command whose payload was sent at `sent_ns`.
pub(crate) fn write_publish(out: &mut Vec<u8>, id: u64, channel: &str, sent_ns: u64) {
    let _ = write!(
        out,
        r#"{{"id":{id},"cmd":"publish","channel":"{channel}","data":"#
    );
    write_payload(out, sent_ns);
    out.push(b'}');
}

/// Appends the text of the Socket.IO event `pub` carrying publication `seq` sent at
/// `sent_ns`: `42["pub",{"ts":…,"seq":…,"pad":"…"}]`, the argument [`PAYLOAD_BYTES`] long.
pub(crate) fn write_sio_pub(out: &mut Vec<u8>, seq: u64, sent_ns: u64) {
    out.extend_from_slice(SIO_PUB_PREFIX);
    write_payload_with(out, sent_ns, Some(seq));
    out.push(b']');
}

/// Finds `seq` and the send time in a Socket.IO message; `None` when it is not a `pub` event
/// of the root namespace or lacks either number (the caller then decodes it fully).
pub(crate) fn scan_sio(message: &[u8]) -> Option<Publication> {
    if !message.starts_with(SIO_PUB_PREFIX) {
        return None;
    }
    let offset = number_after(message, &SEQ_KEY)?;
    let sent_ns = number_after(message, &TS_KEY)?;
    Some(Publication { offset, sent_ns })
}

/// The same two numbers from a decoded `pub` event's arguments (`["pub",{"ts","seq",…}]`).
pub(crate) fn from_sio_args(args: &serde_json::Value) -> Option<Publication> {
    let payload = args.get(1)?;
    Some(Publication {
        offset: payload.get("seq")?.as_u64()?,
        sent_ns: payload.get("ts")?.as_u64()?,
    })
}

/// Finds `offset` and the send time in a publication frame; `None` when the frame is not a
/// publication or does not have the expected shape (the caller then parses it fully).
pub(crate) fn scan(frame: &[u8]) -> Option<Publication> {
    PUSH_PUBLICATION.find(frame)?;
    let offset = number_after(frame, &OFFSET_KEY)?;
    let sent_ns = number_after(frame, &TS_KEY)?;
    Some(Publication { offset, sent_ns })
}

/// Parses the unsigned integer that follows the first match of `key`.
fn number_after(frame: &[u8], key: &Finder<'_>) -> Option<u64> {
    let start = key.find(frame)? + key.needle().len();
    let rest = frame.get(start..)?;
    let rest = &rest[rest.iter().take_while(|b| **b == b' ').count()..];
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 19 {
        return None;
    }
    rest[..digits].iter().try_fold(0u64, |n, d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// The same two numbers read from a fully parsed push (the slow path).
pub(crate) fn from_value(value: &serde_json::Value) -> Option<Publication> {
    Some(Publication {
        offset: value.get("offset")?.as_u64()?,
        sent_ns: value.get("data")?.get("ts")?.as_u64()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_exactly_100_bytes_of_json_for_any_timestamp() {
        for ts in [0, 7, 1_234_567_890, u64::MAX] {
            let mut out = Vec::new();
            write_payload(&mut out, ts);
            assert_eq!(out.len(), PAYLOAD_BYTES);
            let value: serde_json::Value = serde_json::from_slice(&out).expect("valid JSON");
            assert_eq!(value["ts"].as_u64(), Some(ts));
        }
    }

    #[test]
    fn the_scan_reads_a_switchboard_publication() {
        let mut frame =
            br#"{"push":"publication","channel":"bench","offset":42,"epoch":"q8d2x0aa","data":"#
                .to_vec();
        write_payload(&mut frame, 987_654_321);
        frame.push(b'}');
        assert_eq!(
            scan(&frame),
            Some(Publication {
                offset: 42,
                sent_ns: 987_654_321
            })
        );
        let value: serde_json::Value = serde_json::from_slice(&frame).expect("valid JSON");
        assert_eq!(from_value(&value), scan(&frame));
    }

    #[test]
    fn key_order_does_not_matter_and_a_spaced_push_goes_to_the_slow_path() {
        let spaced =
            br#"{"data": {"ts": 5, "pad": "x"}, "epoch": "e", "offset": 9, "push": "publication"}"#;
        assert_eq!(scan(spaced), None);
        let value: serde_json::Value = serde_json::from_slice(spaced).expect("valid JSON");
        assert_eq!(
            from_value(&value),
            Some(Publication {
                offset: 9,
                sent_ns: 5
            })
        );
        let frame = br#"{"data":{"ts": 5,"pad":"x"},"offset": 9,"push":"publication"}"#;
        assert_eq!(
            scan(frame),
            Some(Publication {
                offset: 9,
                sent_ns: 5
            })
        );
    }

    #[test]
    fn replies_and_other_pushes_are_not_publications() {
        assert_eq!(scan(br#"{"id":1,"result":{"offset":3,"epoch":"e"}}"#), None);
        assert_eq!(scan(br#"{"push":"ping"}"#), None);
        assert_eq!(
            scan(br#"{"push":"publication","offset":1,"data":{"title":"hi"}}"#),
            None
        );
        assert_eq!(
            scan(br#"{"push":"publication","offset":99999999999999999999,"data":{"ts":1}}"#),
            None
        );
    }

    #[test]
    fn sio_pub_events_carry_a_100_byte_payload_that_scans_back() {
        for (seq, ts) in [(1, 0), (77, 1_234_567_890), (u64::MAX / 10, u64::MAX / 10)] {
            let mut out = Vec::new();
            write_sio_pub(&mut out, seq, ts);
            let args: serde_json::Value =
                serde_json::from_slice(&out[2..]).expect("valid JSON after `42`");
            assert_eq!(args[0], "pub");
            assert_eq!(
                serde_json::to_vec(&args[1]).expect("encodes").len(),
                PAYLOAD_BYTES
            );
            let publication = Publication {
                offset: seq,
                sent_ns: ts,
            };
            assert_eq!(scan_sio(&out), Some(publication));
            assert_eq!(from_sio_args(&args), Some(publication));
        }
    }

    #[test]
    fn the_sio_scan_takes_any_key_order_and_nothing_else() {
        // serde_json without `preserve_order` (socketioxide) sorts the keys.
        let sorted = br#"42["pub",{"pad":"xxxx","seq":5,"ts":99}]"#;
        let publication = Publication {
            offset: 5,
            sent_ns: 99,
        };
        assert_eq!(scan_sio(sorted), Some(publication));
        assert_eq!(scan_sio(br#"42/chat,["pub",{"seq":5,"ts":99}]"#), None);
        assert_eq!(scan_sio(br#"42["other",{"seq":5,"ts":99}]"#), None);
        assert_eq!(scan_sio(br#"431[{"ok":true}]"#), None);
        assert_eq!(scan_sio(br#"42["pub",{"ts":99}]"#), None);
    }

    #[test]
    fn publish_commands_are_valid_json() {
        let mut out = Vec::new();
        write_publish(&mut out, 3, "bench", 11);
        let value: serde_json::Value = serde_json::from_slice(&out).expect("valid JSON");
        assert_eq!(value["cmd"], "publish");
        assert_eq!(value["data"]["ts"], 11);
    }
}
