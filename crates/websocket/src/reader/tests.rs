use flate2::{Compress, Compression, FlushCompress};

use super::*;
use crate::testing::{FIN, MASK, RSV1, client_frame, masked};

const LIMIT: usize = 1024;

fn deflate_config(client_no_context_takeover: bool) -> DeflateConfig {
    DeflateConfig {
        server_max_window_bits: 15,
        client_max_window_bits: 15,
        client_no_context_takeover,
    }
}

/// Feeds all of `wire` at once and collects messages until the first error.
fn decode_all(reader: &mut MessageReader, wire: &[u8]) -> Result<Vec<Message>, ProtocolError> {
    let mut buf = BytesMut::from(wire);
    let mut out = Vec::new();
    loop {
        match reader.read(&mut buf)? {
            Decoded::Message(message) => out.push(message),
            Decoded::Incomplete => return Ok(out),
        }
    }
}

fn decode(wire: &[u8]) -> Result<Vec<Message>, ProtocolError> {
    decode_all(&mut MessageReader::new(LIMIT, None), wire)
}

fn decode_deflate(wire: &[u8]) -> Result<Vec<Message>, ProtocolError> {
    decode_all(
        &mut MessageReader::new(LIMIT, Some(&deflate_config(false))),
        wire,
    )
}

fn text(s: &str) -> Message {
    Message::Text(Bytes::copy_from_slice(s.as_bytes()))
}

/// A client-side compressor that keeps its context, as browsers do.
fn client_compress(compress: &mut Compress, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 64);
    let result = compress.compress_vec(payload, &mut out, FlushCompress::Sync);
    assert!(result.is_ok() && out.len() < out.capacity());
    assert!(out.ends_with(&[0, 0, 0xFF, 0xFF]));
    out.truncate(out.len() - 4);
    out
}

fn raw_compressor() -> Compress {
    Compress::new_with_window_bits(Compression::default(), false, 15)
}

#[test]
fn a_masked_text_frame_decodes_to_text() {
    assert_eq!(
        decode(&masked(FIN | 0x1, b"hello")),
        Ok(vec![text("hello")])
    );
}

#[test]
fn several_messages_in_one_read_all_come_out() {
    let mut wire = masked(FIN | 0x1, b"one");
    wire.extend(masked(FIN | 0x2, &[1, 2, 3]));
    wire.extend(masked(FIN | 0x9, b"ping"));
    wire.extend(masked(FIN | 0xA, b""));
    let expected = vec![
        text("one"),
        Message::Binary(Bytes::from_static(&[1, 2, 3])),
        Message::Ping(Bytes::from_static(b"ping")),
        Message::Pong(Bytes::new()),
    ];
    assert_eq!(decode(&wire), Ok(expected));
}

#[test]
fn bytes_fed_one_at_a_time_give_the_same_messages() {
    let mut wire = masked(0x1, "héllo ".as_bytes());
    wire.extend(masked(FIN | 0x9, b"p"));
    wire.extend(masked(FIN, "wörld".as_bytes()));
    wire.extend(masked(FIN | 0x2, &[9; 300]));
    let mut reader = MessageReader::new(LIMIT, None);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for byte in wire {
        buf.extend_from_slice(&[byte]);
        while let Ok(Decoded::Message(message)) = reader.read(&mut buf) {
            out.push(message);
        }
    }
    let expected = vec![
        Message::Ping(Bytes::from_static(b"p")),
        text("héllo wörld"),
        Message::Binary(Bytes::from(vec![9; 300])),
    ];
    assert_eq!(out, expected);
    assert!(buf.is_empty());
}

#[test]
fn sixty_four_bit_lengths_decode() {
    let payload = vec![b'x'; 70_000];
    let wire = masked(FIN | 0x2, &payload);
    let mut reader = MessageReader::new(100_000, None);
    assert_eq!(
        decode_all(&mut reader, &wire),
        Ok(vec![Message::Binary(payload.into())])
    );
}

#[test]
fn unmasked_client_frames_are_rejected() {
    let wire = client_frame(FIN | 0x1, None, b"hi");
    assert_eq!(decode(&wire), Err(ProtocolError::Unmasked));
    assert_eq!(ProtocolError::Unmasked.close_code(), 1002);
}

#[test]
fn rsv2_and_rsv3_are_always_rejected() {
    for rsv in [0x20, 0x10, 0x70] {
        assert_eq!(
            decode(&masked(FIN | rsv | 0x1, b"x")),
            Err(ProtocolError::ReservedBits)
        );
        assert_eq!(
            decode_deflate(&masked(FIN | rsv | 0x1, b"x")),
            Err(ProtocolError::ReservedBits)
        );
    }
}

#[test]
fn rsv1_without_negotiated_deflate_is_rejected() {
    assert_eq!(
        decode(&masked(FIN | RSV1 | 0x1, b"x")),
        Err(ProtocolError::ReservedBits)
    );
}

#[test]
fn rsv1_on_control_or_continuation_frames_is_rejected() {
    let ping = masked(FIN | RSV1 | 0x9, b"");
    assert_eq!(
        decode_deflate(&ping),
        Err(ProtocolError::MisplacedCompressionBit)
    );
    let mut wire = masked(RSV1 | 0x2, &[0x02]);
    wire.extend(masked(FIN | RSV1, &[0x00]));
    assert_eq!(
        decode_deflate(&wire),
        Err(ProtocolError::MisplacedCompressionBit)
    );
}

#[test]
fn reserved_opcodes_are_rejected() {
    for op in [3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF] {
        assert_eq!(
            decode(&masked(FIN | op, b"")),
            Err(ProtocolError::ReservedOpcode(op))
        );
    }
}

#[test]
fn control_frames_over_125_bytes_are_rejected_before_their_payload() {
    let wire = masked(FIN | 0x9, &[0; 126]);
    // The 8-byte header alone is enough.
    assert_eq!(
        decode(&wire[..8]),
        Err(ProtocolError::ControlFrameTooLong(126))
    );
    assert_eq!(
        decode(&masked(FIN | 0x9, &[0; 125])).map(|m| m.len()),
        Ok(1)
    );
}

#[test]
fn fragmented_control_frames_are_rejected() {
    for op in [0x8, 0x9, 0xA] {
        assert_eq!(
            decode(&masked(op, b"")),
            Err(ProtocolError::FragmentedControl)
        );
    }
}

#[test]
fn a_partial_control_frame_waits_without_consuming() {
    let wire = masked(FIN | 0x9, b"abc");
    let mut reader = MessageReader::new(LIMIT, None);
    let mut buf = BytesMut::from(&wire[..wire.len() - 1]);
    assert_eq!(reader.read(&mut buf), Ok(Decoded::Incomplete));
    assert_eq!(buf.len(), wire.len() - 1);
    buf.extend_from_slice(&wire[wire.len() - 1..]);
    let ping = Message::Ping(Bytes::from_static(b"abc"));
    assert_eq!(reader.read(&mut buf), Ok(Decoded::Message(ping)));
}

#[test]
fn continuation_without_a_started_message_is_rejected() {
    assert_eq!(
        decode(&masked(FIN, b"x")),
        Err(ProtocolError::UnexpectedContinuation)
    );
    let mut wire = masked(FIN | 0x1, b"done");
    wire.extend(masked(FIN, b"x"));
    assert_eq!(decode(&wire), Err(ProtocolError::UnexpectedContinuation));
}

#[test]
fn a_new_data_frame_inside_a_fragmented_message_is_rejected() {
    for op in [0x1, 0x2] {
        let mut wire = masked(0x1, b"first");
        wire.extend(masked(FIN | op, b"second"));
        assert_eq!(decode(&wire), Err(ProtocolError::UnfinishedMessage));
    }
}

#[test]
fn fragments_reassemble_around_interleaved_control_frames() {
    let mut wire = masked(0x2, &[1]);
    wire.extend(masked(FIN | 0x9, b"a"));
    wire.extend(masked(0x0, &[]));
    wire.extend(masked(FIN | 0xA, b"b"));
    wire.extend(masked(0x0, &[2, 3]));
    wire.extend(masked(FIN | 0x8, &[0x03, 0xE8]));
    wire.extend(masked(FIN, &[4]));
    let expected = vec![
        Message::Ping(Bytes::from_static(b"a")),
        Message::Pong(Bytes::from_static(b"b")),
        Message::Close(Some(CloseFrame {
            code: 1000,
            reason: String::new(),
        })),
        Message::Binary(Bytes::from_static(&[1, 2, 3, 4])),
    ];
    assert_eq!(decode(&wire), Ok(expected));
}

#[test]
fn a_declared_length_over_the_limit_fails_before_any_payload() {
    let header = &masked(FIN | 0x2, &[0; LIMIT + 1])[..8];
    let too_large = ProtocolError::MessageTooLarge {
        max_message_bytes: LIMIT,
    };
    assert_eq!(decode(header), Err(too_large.clone()));
    assert_eq!(too_large.close_code(), 1009);
    // A 2^62-byte declaration is refused just the same, without allocating.
    let mut huge = vec![0x82, 0xFF];
    huge.extend((1u64 << 62).to_be_bytes());
    huge.extend(MASK);
    assert_eq!(decode(&huge), Err(too_large));
    assert_eq!(
        decode(&masked(FIN | 0x2, &[0; LIMIT])).map(|m| m.len()),
        Ok(1)
    );
}

#[test]
fn fragments_summing_over_the_limit_are_rejected() {
    let mut wire = masked(0x2, &[0; LIMIT / 2]);
    wire.extend(masked(0x0, &[0; LIMIT / 2]));
    wire.extend(&masked(FIN, &[0; 1])[..6]);
    let err = decode(&wire);
    assert_eq!(
        err,
        Err(ProtocolError::MessageTooLarge {
            max_message_bytes: LIMIT
        })
    );
}

#[test]
fn invalid_utf8_in_a_text_frame_is_rejected_with_1007() {
    let err = decode(&masked(FIN | 0x1, &[b'a', 0xC0, 0xAF]));
    assert_eq!(err, Err(ProtocolError::InvalidUtf8));
    assert_eq!(ProtocolError::InvalidUtf8.close_code(), 1007);
    assert_eq!(
        decode(&masked(FIN | 0x2, &[0xC0, 0xAF])).map(|m| m.len()),
        Ok(1)
    );
}

#[test]
fn a_code_point_split_across_fragments_is_valid() {
    let euro = "€".as_bytes();
    let mut wire = masked(0x1, &euro[..1]);
    wire.extend(masked(0x0, &euro[1..2]));
    wire.extend(masked(FIN, &euro[2..]));
    assert_eq!(decode(&wire), Ok(vec![text("€")]));
}

#[test]
fn a_text_message_ending_inside_a_code_point_is_rejected() {
    let mut wire = masked(0x1, b"ok");
    wire.extend(masked(FIN, &"€".as_bytes()[..2]));
    assert_eq!(decode(&wire), Err(ProtocolError::InvalidUtf8));
}

#[test]
fn invalid_utf8_fails_at_the_first_bad_fragment() {
    // The message never finishes: the error comes from its second fragment.
    let mut wire = masked(0x1, b"fine");
    wire.extend(masked(0x0, &[0xED, 0xA0, 0x80])); // a surrogate
    assert_eq!(decode(&wire), Err(ProtocolError::InvalidUtf8));
}

#[test]
fn invalid_utf8_fails_before_its_frame_has_fully_arrived() {
    let mut payload = b"valid ".to_vec();
    payload.extend([0xF4, 0x90]); // above U+10FFFF
    payload.extend([b'x'; 100]);
    let wire = masked(FIN | 0x1, &payload);
    // Header, mask and the first 8 payload bytes only.
    assert_eq!(decode(&wire[..2 + 4 + 8]), Err(ProtocolError::InvalidUtf8));
}

#[test]
fn a_valid_prefix_of_a_code_point_at_a_read_boundary_waits() {
    let wire = masked(FIN | 0x1, "a€".as_bytes());
    let mut reader = MessageReader::new(LIMIT, None);
    let mut buf = BytesMut::from(&wire[..wire.len() - 1]);
    assert_eq!(reader.read(&mut buf), Ok(Decoded::Incomplete));
    buf.extend_from_slice(&wire[wire.len() - 1..]);
    assert_eq!(reader.read(&mut buf), Ok(Decoded::Message(text("a€"))));
}

#[test]
fn close_frames_are_parsed_and_checked() {
    assert_eq!(
        decode(&masked(FIN | 0x8, b"")),
        Ok(vec![Message::Close(None)])
    );
    let with_reason = decode(&masked(FIN | 0x8, &[0x0B, 0xB8, b'b', b'y', b'e']));
    let expected = CloseFrame {
        code: 3000,
        reason: "bye".into(),
    };
    assert_eq!(with_reason, Ok(vec![Message::Close(Some(expected))]));
    assert_eq!(
        decode(&masked(FIN | 0x8, &[0x03])),
        Err(ProtocolError::TruncatedCloseCode)
    );
    for code in [0u16, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000] {
        let err = decode(&masked(FIN | 0x8, &code.to_be_bytes()));
        assert_eq!(err, Err(ProtocolError::InvalidCloseCode(code)));
    }
    let bad_reason = decode(&masked(FIN | 0x8, &[0x03, 0xE8, 0xCE, 0xBA, 0xE1, 0xBD]));
    assert_eq!(bad_reason, Err(ProtocolError::InvalidUtf8));
}

#[test]
fn every_error_maps_to_its_close_code() {
    let cases = [
        (ProtocolError::ReservedBits, 1002),
        (ProtocolError::MisplacedCompressionBit, 1002),
        (ProtocolError::ReservedOpcode(3), 1002),
        (ProtocolError::FragmentedControl, 1002),
        (ProtocolError::ControlFrameTooLong(200), 1002),
        (ProtocolError::NonMinimalLength, 1002),
        (ProtocolError::UnexpectedContinuation, 1002),
        (ProtocolError::UnfinishedMessage, 1002),
        (ProtocolError::InvalidCloseCode(5), 1002),
        (ProtocolError::TruncatedCloseCode, 1002),
        (ProtocolError::InvalidCompressedData, 1007),
    ];
    for (error, code) in cases {
        assert_eq!(error.close_code(), code, "{error}");
    }
}

#[test]
fn compressed_messages_are_inflated_with_context_takeover() {
    let mut compress = raw_compressor();
    let mut wire = Vec::new();
    for _ in 0..3 {
        let payload = client_compress(&mut compress, b"the same words again and again");
        wire.extend(masked(FIN | RSV1 | 0x1, &payload));
    }
    let expected = vec![text("the same words again and again"); 3];
    let mut reader = MessageReader::new(LIMIT, Some(&deflate_config(false)));
    assert_eq!(decode_all(&mut reader, &wire), Ok(expected));
    assert!(reader.inflater.as_ref().is_some_and(Inflater::is_allocated));
}

#[test]
fn no_context_takeover_drops_inflate_state_between_messages() {
    let mut reader = MessageReader::new(LIMIT, Some(&deflate_config(true)));
    assert!(!reader.inflater.as_ref().is_some_and(Inflater::is_allocated));
    let payload = client_compress(&mut raw_compressor(), b"standalone");
    let wire = masked(FIN | RSV1 | 0x2, &payload);
    let expected = vec![Message::Binary(Bytes::from_static(b"standalone"))];
    assert_eq!(decode_all(&mut reader, &wire), Ok(expected));
    assert!(!reader.inflater.as_ref().is_some_and(Inflater::is_allocated));
}

#[test]
fn a_fragmented_compressed_message_inflates_across_fragments() {
    let payload = client_compress(&mut raw_compressor(), "ünïcode ".repeat(20).as_bytes());
    let (a, b) = payload.split_at(payload.len() / 2);
    let mut wire = masked(RSV1 | 0x1, a);
    wire.extend(masked(FIN | 0x9, b""));
    wire.extend(masked(FIN, b));
    let expected = vec![Message::Ping(Bytes::new()), text(&"ünïcode ".repeat(20))];
    assert_eq!(decode_deflate(&wire), Ok(expected));
}

#[test]
fn an_uncompressed_message_passes_through_when_deflate_is_negotiated() {
    assert_eq!(
        decode_deflate(&masked(FIN | 0x1, b"plain")),
        Ok(vec![text("plain")])
    );
}

#[test]
fn a_compressed_bomb_stops_at_the_limit() {
    let payload = client_compress(&mut raw_compressor(), &vec![0; 100 * LIMIT]);
    assert!(payload.len() < LIMIT);
    let err = decode_deflate(&masked(FIN | RSV1 | 0x2, &payload));
    assert_eq!(
        err,
        Err(ProtocolError::MessageTooLarge {
            max_message_bytes: LIMIT
        })
    );
}

#[test]
fn corrupt_compressed_data_is_rejected_with_1007() {
    // BTYPE 11 is reserved in DEFLATE.
    let err = decode_deflate(&masked(FIN | RSV1 | 0x2, &[0xFF, 0xFF, 0xFF]));
    assert_eq!(err, Err(ProtocolError::InvalidCompressedData));
}

#[test]
fn invalid_utf8_inside_compressed_text_is_rejected() {
    let payload = client_compress(&mut raw_compressor(), &[b'a', 0xFF, b'b']);
    let err = decode_deflate(&masked(FIN | RSV1 | 0x1, &payload));
    assert_eq!(err, Err(ProtocolError::InvalidUtf8));
}

#[test]
fn an_empty_compressed_message_keeps_the_stream_intact() {
    let mut compress = raw_compressor();
    let mut wire = masked(FIN | RSV1 | 0x1, &[0x00]); // what browsers send
    wire.extend(masked(FIN | RSV1 | 0x1, &[])); // not DEFLATE, tolerated
    wire.extend(masked(
        FIN | RSV1 | 0x1,
        &client_compress(&mut compress, b"after"),
    ));
    let expected = vec![text(""), text(""), text("after")];
    assert_eq!(decode_deflate(&wire), Ok(expected));
}

#[test]
fn an_idle_reader_is_small() {
    // No heap memory while idle; this is the whole per-connection cost.
    assert!(std::mem::size_of::<MessageReader>() <= 128);
}
