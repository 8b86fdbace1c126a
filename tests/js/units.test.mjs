// The client's pure helpers, which need no server: backoff delays, cursors, channel names,
// and the UTF-8 byte count behind the byte counters.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { backoffDelay, isTerminalCloseCode, isValidChannel, CloseCode } from '../../clients/js/src/switchboard.js';
import { formatCursor, parseCursor, isAhead } from '../../clients/js/src/cursor.js';
import { utf8Length, bytesToBase64, base64ToBytes } from '../../clients/js/src/encoding.js';

test('backoff bounds double from the minimum up to the cap, with full jitter below', () => {
  const top = () => 0.999999;
  assert.deepEqual(
    [0, 1, 2, 3, 4, 5, 6].map((n) => backoffDelay(n, 500, 10_000, top)),
    [499, 999, 1999, 3999, 7999, 9999, 9999],
  );
  assert.equal(backoffDelay(3, 500, 10_000, () => 0), 0);
  assert.equal(backoffDelay(1_000, 500, 10_000, top), 9999, 'huge attempt counts stay capped');
});

test('cursors round-trip and malformed ones are refused', () => {
  const positions = [
    { epoch: 'q8d2x0aa', offset: 7 },
    { epoch: 'm1n2b3v4', offset: 0 },
  ];
  assert.equal(formatCursor(positions), 'q8d2x0aa:7,m1n2b3v4:0');
  assert.deepEqual(parseCursor('q8d2x0aa:7,m1n2b3v4:0'), positions);
  for (const bad of ['', 'nocolon', 'e:x', 'e:-1', 'e:1.5']) assert.throws(() => parseCursor(bad), /bad cursor/);
  assert.ok(isAhead(null, { epoch: 'a', offset: 0 }));
  assert.ok(isAhead({ epoch: 'a', offset: 1 }, { epoch: 'a', offset: 2 }));
  assert.ok(!isAhead({ epoch: 'a', offset: 2 }, { epoch: 'a', offset: 2 }));
  assert.ok(isAhead({ epoch: 'a', offset: 9 }, { epoch: 'b', offset: 1 }), 'a new epoch wins');
});

test('channel names follow the protocol character set and length', () => {
  for (const ok of ['news', 'chat:lobby', 'a/b.c-d_e@f=g,h#i', 'x'.repeat(255)]) assert.ok(isValidChannel(ok), ok);
  for (const bad of ['', 'has space', 'é', 'x'.repeat(256), 'a\nb']) assert.ok(!isValidChannel(bad), bad);
});

test('only the 4500–4999 close codes forbid reconnecting', () => {
  assert.ok(isTerminalCloseCode(CloseCode.disconnected_terminal));
  assert.ok(isTerminalCloseCode(4999));
  for (const code of [1000, 1001, 1006, 1009, 4001, 4002, 4004, 4499, 5000]) assert.ok(!isTerminalCloseCode(code), code);
});

test('utf8Length counts bytes as TextEncoder does, base64 round-trips bytes', () => {
  for (const s of ['', 'abc', 'é', '€', '😀', 'a😀é€\u{10FFFF}', '\ud800 lone surrogate', '\ud800', 'x\udc00y', '\ud800\ud800\udc00']) {
    assert.equal(utf8Length(s), new TextEncoder().encode(s).length, JSON.stringify(s));
  }
  const bytes = new Uint8Array(100_000).map((_, i) => i % 256);
  assert.deepEqual(base64ToBytes(bytesToBase64(bytes)), bytes);
});
