use flate2::{Compress, Compression, FlushCompress};

use super::*;

fn negotiate(offer: &str) -> Option<(DeflateConfig, String)> {
    negotiate_deflate(offer, &DeflatePolicy::default())
}

fn response(offer: &str) -> Option<String> {
    negotiate(offer).map(|(_, response)| response)
}

fn config(server: u8, client: u8, client_no_context_takeover: bool) -> DeflateConfig {
    DeflateConfig {
        server_max_window_bits: server,
        client_max_window_bits: client,
        client_no_context_takeover,
    }
}

#[test]
fn a_bare_offer_is_answered_with_server_no_context_takeover() {
    let (agreed, response) = negotiate("permessage-deflate").expect("accepted");
    assert_eq!(response, "permessage-deflate; server_no_context_takeover");
    assert_eq!(agreed, config(15, 15, false));
}

#[test]
fn a_browser_offer_is_accepted() {
    let offer = "permessage-deflate; client_max_window_bits";
    assert_eq!(
        response(offer).as_deref(),
        Some("permessage-deflate; server_no_context_takeover")
    );
}

#[test]
fn server_max_window_bits_is_answered_with_at_most_the_offer() {
    let (agreed, response) =
        negotiate("permessage-deflate; server_max_window_bits=10").expect("accepted");
    assert_eq!(
        response,
        "permessage-deflate; server_no_context_takeover; server_max_window_bits=10"
    );
    assert_eq!(agreed.server_max_window_bits, 10);
    let policy = DeflatePolicy {
        server_max_window_bits: 12,
        ..DeflatePolicy::default()
    };
    let answer = negotiate_deflate("permessage-deflate; server_max_window_bits=14", &policy);
    assert_eq!(answer.map(|(c, _)| c.server_max_window_bits), Some(12));
}

#[test]
fn a_smaller_server_window_is_announced_unasked() {
    let policy = DeflatePolicy {
        server_max_window_bits: 11,
        ..DeflatePolicy::default()
    };
    let answer = negotiate_deflate("permessage-deflate", &policy).map(|(_, r)| r);
    assert_eq!(
        answer.as_deref(),
        Some("permessage-deflate; server_no_context_takeover; server_max_window_bits=11")
    );
}

#[test]
fn an_offer_requiring_an_eight_bit_server_window_is_declined_for_the_next() {
    assert_eq!(
        response("permessage-deflate; server_max_window_bits=8"),
        None
    );
    let offers = "permessage-deflate; server_max_window_bits=8; client_no_context_takeover, \
                  permessage-deflate; server_max_window_bits=9";
    assert_eq!(
        response(offers).as_deref(),
        Some("permessage-deflate; server_no_context_takeover; server_max_window_bits=9")
    );
}

#[test]
fn client_max_window_bits_is_sent_only_if_offered() {
    let policy = DeflatePolicy {
        client_max_window_bits: 10,
        ..DeflatePolicy::default()
    };
    let unoffered = negotiate_deflate("permessage-deflate", &policy);
    assert_eq!(
        unoffered.clone().map(|(c, _)| c.client_max_window_bits),
        Some(15)
    );
    assert!(unoffered.is_some_and(|(_, r)| !r.contains("client_max_window_bits")));
    let offered = negotiate_deflate("permessage-deflate; client_max_window_bits", &policy);
    assert_eq!(
        offered,
        Some((
            config(15, 10, false),
            "permessage-deflate; server_no_context_takeover; client_max_window_bits=10".to_owned()
        ))
    );
    let smaller = negotiate("permessage-deflate; client_max_window_bits=8");
    assert_eq!(smaller.map(|(c, _)| c.client_max_window_bits), Some(8));
}

#[test]
fn client_no_context_takeover_is_echoed_or_requested_by_policy() {
    let echoed = negotiate("permessage-deflate; client_no_context_takeover");
    assert_eq!(
        echoed,
        Some((
            config(15, 15, true),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover".to_owned()
        ))
    );
    let policy = DeflatePolicy {
        client_no_context_takeover: true,
        ..DeflatePolicy::default()
    };
    let requested = negotiate_deflate("permessage-deflate", &policy);
    assert_eq!(
        requested.map(|(c, _)| c.client_no_context_takeover),
        Some(true)
    );
}

#[test]
fn invalid_offers_are_declined() {
    let invalid = [
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        "permessage-deflate; client_max_window_bits; client_max_window_bits=10",
        "permessage-deflate; unknown_param",
        "permessage-deflate; server_max_window_bits",
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; server_max_window_bits=7",
        "permessage-deflate; server_max_window_bits=010",
        "permessage-deflate; client_max_window_bits=abc",
        "permessage-deflate; client_max_window_bits=\"10",
        "permessage-deflate; server_no_context_takeover=1",
        "permessage-deflate;",
        "x-webkit-deflate-frame",
        "",
    ];
    for offer in invalid {
        assert_eq!(response(offer), None, "{offer}");
    }
}

#[test]
fn parsing_tolerates_case_spaces_quotes_and_other_extensions() {
    let offers = "foo; bar=\"a, permessage-deflate\", PerMessage-Deflate ;  Server_Max_Window_Bits = \"12\" ";
    let answer = negotiate(offers);
    assert_eq!(answer.map(|(c, _)| c.server_max_window_bits), Some(12));
}

#[test]
fn compressed_output_drops_the_sync_flush_tail() {
    let compressed = compress_message(b"hello", 15);
    assert!(!compressed.ends_with(&SYNC_FLUSH_TAIL));
    // RFC 7692 §7.2.3.6: an empty message compresses to a single 0x00.
    assert_eq!(&compress_message(b"", 15)[..], &[0x00]);
}

#[test]
fn the_rfc_example_inflates() {
    // RFC 7692 §7.2.3.1: "Hello" compressed.
    let mut inflater = Inflater::new(&config(15, 15, false));
    let hello = inflater.decompress(&[0xF2, 0x48, 0xCD, 0xC9, 0xC9, 0x07, 0x00], 5);
    assert_eq!(hello.as_deref(), Ok(&b"Hello"[..]));
    // §7.2.3.2: the second "Hello" refers to the first through the window.
    let again = inflater.decompress(&[0xF2, 0x00, 0x11, 0x00, 0x00], 5);
    assert_eq!(again.as_deref(), Ok(&b"Hello"[..]));
}

#[test]
fn a_deflater_is_reset_between_messages() {
    let mut deflater = Deflater::new(15);
    let first = deflater.compress(b"abcabcabc");
    assert_eq!(deflater.compress(b"abcabcabc"), first);
    assert_eq!(compress_message(b"abcabcabc", 15), first);
}

#[test]
fn window_bits_are_clamped_to_what_zlib_supports() {
    assert_eq!(Deflater::new(8).window_bits(), 9);
    assert_eq!(Deflater::new(30).window_bits(), 15);
    let small = compress_message(&[7; 5000], 9);
    let back = Inflater::new(&config(15, 8, false)).decompress(&small, 5000);
    assert_eq!(back.map(|b| b.len()), Ok(5000));
}

#[test]
fn the_inflater_allocates_on_first_use_only() {
    let mut inflater = Inflater::new(&config(15, 15, false));
    assert!(!inflater.is_allocated());
    assert!(inflater.decompress(&compress_message(b"x", 15), 10).is_ok());
    assert!(inflater.is_allocated());
    let mut stateless = Inflater::new(&config(15, 15, true));
    assert!(
        stateless
            .decompress(&compress_message(b"x", 15), 10)
            .is_ok()
    );
    assert!(!stateless.is_allocated());
}

#[test]
fn output_is_capped_exactly_at_the_limit() {
    let compressed = compress_message(&vec![b'z'; 100_000], 15);
    let config = config(15, 15, true);
    let exact = Inflater::new(&config).decompress(&compressed, 100_000);
    assert_eq!(exact.map(|b| b.len()), Ok(100_000));
    let short = Inflater::new(&config).decompress(&compressed, 99_999);
    assert_eq!(
        short,
        Err(ProtocolError::MessageTooLarge {
            max_message_bytes: 99_999
        })
    );
}

#[test]
fn a_zip_bomb_fails_without_inflating_it() {
    // 16 MiB of zeros compresses to about 16 KiB.
    let bomb = compress_message(&vec![0; 16 << 20], 15);
    let mut inflater = Inflater::new(&config(15, 15, false));
    let mut out = Vec::new();
    let err = inflater.inflate_chunk(&bomb, &mut out, 1 << 20);
    assert_eq!(
        err,
        Err(ProtocolError::MessageTooLarge {
            max_message_bytes: 1 << 20
        })
    );
    assert!(out.capacity() <= (1 << 20) + 1);
}

#[test]
fn a_message_ended_with_a_bfinal_block_is_accepted() {
    // RFC 7692 §7.2.3.4: "Hello" in a BFINAL block, then a 0x00 octet.
    let mut inflater = Inflater::new(&config(15, 15, false));
    let hello = [0xF3, 0x48, 0xCD, 0xC9, 0xC9, 0x07, 0x00, 0x00];
    assert_eq!(inflater.decompress(&hello, 5).as_deref(), Ok(&b"Hello"[..]));
    let mut compress = Compress::new_with_window_bits(Compression::default(), false, 15);
    let mut out = Vec::with_capacity(64);
    let status = compress.compress_vec(b"final block", &mut out, FlushCompress::Finish);
    assert!(status.is_ok());
    out.push(0x00);
    assert_eq!(
        inflater.decompress(&out, 100).as_deref(),
        Ok(&b"final block"[..])
    );
    let next = inflater.decompress(&compress_message(b"next", 15), 100);
    assert_eq!(next.as_deref(), Ok(&b"next"[..]));
}

#[test]
fn garbage_is_invalid_compressed_data() {
    let mut inflater = Inflater::new(&config(15, 15, false));
    let err = inflater.decompress(&[0xFF; 8], 100);
    assert_eq!(err, Err(ProtocolError::InvalidCompressedData));
}
