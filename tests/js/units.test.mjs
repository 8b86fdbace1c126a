// The client's pure helpers, which need no server: backoff delays, cursors, channel names,
// the UTF-8 byte count behind the byte counters, and where tokens come from.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  backoffDelay,
  isTerminalCloseCode,
  isValidChannel,
  isRefusalCode,
  endsAttempt,
  refusalCloseCode,
  refusalErrorCode,
  tokenExpiry,
  tokenSubject,
  ClientErrorCode,
  CloseCode,
  ErrorCode,
  MAX_EXPIRED_IN_A_ROW,
} from '../../clients/js/src/switchboard.js';
import { TokenSource } from '../../clients/js/src/token.js';
import { signHs256 } from './support/jwt.mjs';
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

test('tokens: exp and sub are read without verifying; refusal codes map to close codes', () => {
  const token = signHs256({ sub: 'u1', exp: 2_000_000_000 }, 'k'.repeat(32));
  assert.equal(tokenExpiry(token), 2_000_000_000);
  assert.equal(tokenSubject(token), 'u1');
  for (const bad of ['', 'opaque', 'a.b.c', 'a.bm90IGpzb24.c']) {
    assert.equal(tokenExpiry(bad), null, bad);
    assert.equal(tokenSubject(bad), null, bad);
  }
  assert.equal(tokenSubject(signHs256({ sub: '' }, 'k'.repeat(32))), null, 'an empty sub is anonymous');
  assert.equal(refusalCloseCode(ErrorCode.unauthorized), CloseCode.unauthorized);
  assert.equal(refusalCloseCode(ErrorCode.token_expired), CloseCode.token_expired);
  assert.equal(refusalCloseCode(ErrorCode.forbidden), CloseCode.forbidden);
  assert.equal(refusalErrorCode(CloseCode.unauthorized), ErrorCode.unauthorized);
  assert.equal(refusalErrorCode(CloseCode.no_pong), null);
  for (const code of ['unauthorized', 'token_expired', 'forbidden', 'origin_not_allowed']) assert.ok(isRefusalCode(code));
  for (const code of ['permission_denied', 'transport_failed', 'not_found']) assert.ok(!endsAttempt(code), code);
  assert.ok(endsAttempt(ClientErrorCode.token_unavailable));
});

test('tokens: one call of the function serves concurrent callers; renewal at half a short lifetime', async () => {
  let calls = 0;
  /** @type {(token: string) => void} */
  let answer = () => {};
  const source = new TokenSource(
    () => {
      calls++;
      return new Promise((resolve) => {
        answer = resolve;
      });
    },
    { timeoutMs: 5_000 },
  );
  const both = Promise.all([source.get(), source.get(), source.fresh()]);
  await Promise.resolve();
  await Promise.resolve();
  const token = signHs256({ sub: 'u', exp: Math.floor(Date.now() / 1000) + 20 }, 'k'.repeat(32));
  answer(token);
  assert.deepEqual(await both, [token, token, token]);
  assert.equal(calls, 1);
  assert.equal(await source.get(), token, 'kept until due');
  assert.equal(calls, 1);
  const renewAt = /** @type {number} */ (source.renewAt);
  const exp = /** @type {number} */ (tokenExpiry(token)) * 1000;
  assert.ok(renewAt > Date.now() && renewAt < exp - 8_000, 'about half of a 20 s lifetime');
});

test('tokens: a token already expired by the local clock is never renewed by the clock', async () => {
  let calls = 0;
  const source = new TokenSource(() => {
    calls++;
    return signHs256({ sub: 'u', exp: 1 }, 'k'.repeat(32));
  });
  await source.get();
  await source.get();
  await source.get();
  assert.equal(calls, 1, 'no call per request: the server decides');
  assert.equal(source.renewAt, null);
  assert.ok(source.expired(), 'refused as expired: try a new one');
  await source.get();
  assert.equal(calls, 2);
  assert.ok(source.expired());
  assert.ok(!source.expired(), `given up after ${MAX_EXPIRED_IN_A_ROW} in a row`);
  assert.ok(!new TokenSource('fixed').expired(), 'a fixed string cannot be renewed');
});

test('tokens: a function that throws, returns no string or hangs gives token_unavailable', async () => {
  const cases = [
    () => {
      throw new Error('boom');
    },
    async () => /** @type {any} */ (42),
    () => '',
    () => new Promise(() => {}),
  ];
  for (const fn of cases) {
    const source = new TokenSource(/** @type {any} */ (fn), { timeoutMs: 50 });
    await assert.rejects(source.get(), { code: ClientErrorCode.token_unavailable });
  }
  assert.throws(() => new TokenSource(/** @type {any} */ (42)), { code: ErrorCode.bad_request });
  assert.equal(await new TokenSource(undefined).get(), undefined);
});
