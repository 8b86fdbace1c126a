//! Property tests: whatever the payloads, fragmentation, masks, interleaved
//! pings and read sizes, client frames decode to the messages that were sent;
//! compressed messages survive the trip; arbitrary bytes never panic.

use flate2::{Compress, Compression, FlushCompress};
use proptest::prelude::*;

use super::*;
use crate::deflate::compress_message;
use crate::frame::encode_frame;
use crate::testing::{FIN, RSV1, client_frame};

const LIMIT: usize = 1 << 16;

/// One message to send: text or binary, its payload, how to cut it into
/// fragments, and whether a ping goes between each pair of fragments.
#[derive(Debug, Clone)]
struct Plan {
    text: bool,
    payload: Vec<u8>,
    cuts: Vec<usize>,
    pings: bool,
    mask: [u8; 4],
}

fn plan() -> impl Strategy<Value = Plan> {
    let text = ".{0,300}".prop_map(|s: String| (true, s.into_bytes()));
    let binary = prop::collection::vec(any::<u8>(), 0..600).prop_map(|b| (false, b));
    (
        prop_oneof![text, binary],
        prop::collection::vec(0usize..700, 0..6),
        any::<bool>(),
        any::<[u8; 4]>(),
    )
        .prop_map(|((text, payload), mut cuts, pings, mask)| {
            cuts.iter_mut().for_each(|c| *c = (*c).min(payload.len()));
            cuts.sort_unstable();
            Plan {
                text,
                payload,
                cuts,
                pings,
                mask,
            }
        })
}

/// Encodes a plan as client frames; `compress` compresses the payload first
/// (and the fragments cut the compressed bytes).
fn encode_plan(plan: &Plan, compress: Option<&mut Compress>) -> (Vec<u8>, Vec<Message>) {
    let (payload, rsv1) = match compress {
        Some(compress) => {
            let mut out = Vec::with_capacity(plan.payload.len() * 2 + 64);
            let ok = compress.compress_vec(&plan.payload, &mut out, FlushCompress::Sync);
            assert!(ok.is_ok() && out.len() < out.capacity());
            if out.is_empty() {
                // zlib writes nothing for an empty message right after a
                // flush; browsers send the lone empty-block header instead.
                out.push(0x00);
            } else {
                out.truncate(out.len() - 4);
            }
            (out, RSV1)
        }
        None => (plan.payload.clone(), 0),
    };
    let mut bounds = vec![0];
    bounds.extend(plan.cuts.iter().map(|c| (*c).min(payload.len())));
    bounds.push(payload.len());
    let mut wire = Vec::new();
    let mut messages = Vec::new();
    let pieces = bounds.len() - 1;
    for i in 0..pieces {
        let first = i == 0;
        let last = i + 1 == pieces;
        let opcode = match (first, plan.text) {
            (false, _) => 0x0,
            (true, true) => 0x1,
            (true, false) => 0x2,
        };
        let fin = if last { FIN } else { 0 };
        let rsv = if first { rsv1 } else { 0 };
        let piece = &payload[bounds[i]..bounds[i + 1]];
        wire.extend(client_frame(fin | rsv | opcode, Some(plan.mask), piece));
        if plan.pings && !last {
            let ping = &plan.mask[..(i % 5)];
            wire.extend(client_frame(FIN | 0x9, Some(plan.mask), ping));
            messages.push(Message::Ping(Bytes::copy_from_slice(ping)));
        }
    }
    let data = Bytes::from(plan.payload.clone());
    messages.push(if plan.text {
        Message::Text(data)
    } else {
        Message::Binary(data)
    });
    (wire, messages)
}

/// Feeds `wire` in reads of the given sizes (cycled) and collects messages.
fn feed(
    reader: &mut MessageReader,
    wire: &[u8],
    reads: &[usize],
) -> Result<Vec<Message>, ProtocolError> {
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut at = 0;
    for size in reads.iter().cycle() {
        let end = (at + size.max(&1)).min(wire.len());
        buf.extend_from_slice(&wire[at..end]);
        at = end;
        while let Decoded::Message(message) = reader.read(&mut buf)? {
            out.push(message);
        }
        if at == wire.len() {
            break;
        }
    }
    Ok(out)
}

fn deflate_config() -> DeflateConfig {
    DeflateConfig {
        server_max_window_bits: 15,
        client_max_window_bits: 15,
        client_no_context_takeover: false,
    }
}

proptest! {
    #[test]
    fn client_frames_round_trip(
        plans in prop::collection::vec(plan(), 1..5),
        reads in prop::collection::vec(1usize..200, 1..8),
    ) {
        let mut wire = Vec::new();
        let mut expected = Vec::new();
        for plan in &plans {
            let (bytes, messages) = encode_plan(plan, None);
            wire.extend(bytes);
            expected.extend(messages);
        }
        let mut reader = MessageReader::new(LIMIT, None);
        prop_assert_eq!(feed(&mut reader, &wire, &reads), Ok(expected));
    }

    #[test]
    fn compressed_client_messages_round_trip_with_context_takeover(
        plans in prop::collection::vec(plan(), 1..5),
        reads in prop::collection::vec(1usize..200, 1..8),
    ) {
        let mut compress = Compress::new_with_window_bits(Compression::default(), false, 15);
        let mut wire = Vec::new();
        let mut expected = Vec::new();
        for plan in &plans {
            let (bytes, messages) = encode_plan(plan, Some(&mut compress));
            wire.extend(bytes);
            expected.extend(messages);
        }
        let mut reader = MessageReader::new(LIMIT, Some(&deflate_config()));
        prop_assert_eq!(feed(&mut reader, &wire, &reads), Ok(expected));
    }

    #[test]
    fn server_compression_round_trips_at_every_window(
        payload in prop::collection::vec(any::<u8>(), 0..4000),
        repeat in 1usize..4,
        bits in 9u8..=15,
    ) {
        let payload = payload.repeat(repeat);
        let compressed = compress_message(&payload, bits);
        let config = DeflateConfig { client_max_window_bits: bits, ..deflate_config() };
        let back = Inflater::new(&config).decompress(&compressed, payload.len());
        prop_assert_eq!(back, Ok(Bytes::from(payload.clone())));
        // Pure: the same input always gives the same bytes to share.
        prop_assert_eq!(compress_message(&payload, bits), compressed);
    }

    #[test]
    fn server_frames_parse_back(payload in prop::collection::vec(any::<u8>(), 0..70_000), rsv1: bool) {
        let frame = encode_frame(OpCode::Binary, &payload, rsv1);
        let head = crate::frame::parse_header(&frame);
        let Ok(Some(head)) = head else { return Err(TestCaseError::fail("no header")) };
        prop_assert!(head.fin && head.mask.is_none() && head.rsv1 == rsv1);
        prop_assert_eq!(head.payload_len as usize, payload.len());
        prop_assert_eq!(&frame[head.header_len..], &payload[..]);
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        wire in prop::collection::vec(any::<u8>(), 0..2000),
        reads in prop::collection::vec(1usize..300, 1..6),
        deflate: bool,
    ) {
        let config = deflate_config();
        let mut reader = MessageReader::new(4096, deflate.then_some(&config));
        let _ = feed(&mut reader, &wire, &reads);
    }

    #[test]
    fn mutated_valid_streams_never_panic(
        plan in plan(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        deflate: bool,
    ) {
        let mut compress = Compress::new_with_window_bits(Compression::default(), false, 15);
        let (mut wire, _) = encode_plan(&plan, deflate.then_some(&mut compress));
        if !wire.is_empty() {
            for (index, value) in flips {
                let at = index.index(wire.len());
                wire[at] ^= value;
            }
        }
        let config = deflate_config();
        let mut reader = MessageReader::new(4096, deflate.then_some(&config));
        let _ = feed(&mut reader, &wire, &[64]);
    }
}
