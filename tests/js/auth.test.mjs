// Authentication as a client application meets it, on every transport the client can be
// forced to, against a server that requires HS256 tokens: a token function, tokens renewed
// before they expire without a reconnect or a gap, an expiry that the client recovers from,
// expired and forged tokens that stop the client (once, on the transport that met them),
// a token function that fails, and private channels opened by subscription tokens (a
// WebSocket feature) or by the connection token's `channels` claim.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from './support/server.mjs';
import {
  apiPublish,
  assertConsecutive,
  collect,
  connected,
  makeClient,
  uniqueChannel,
  waitFor,
} from './support/helpers.mjs';
import { newSecret, nowSeconds, refusals, signHs256 } from './support/jwt.mjs';
import {
  ClientErrorCode,
  CloseCode,
  ErrorCode,
  MAX_EXPIRED_IN_A_ROW,
  SwitchboardError,
} from '../../clients/js/src/switchboard.js';

const TRANSPORTS = /** @type {const} */ (['websocket', 'sse', 'long-poll', 'poll']);
/** The `transport` label the server's metrics give each transport. */
const LABEL = { websocket: 'websocket', sse: 'sse', 'long-poll': 'poll', poll: 'poll' };
const SECRET = newSecret();
/** Time a test may spend running past token expiries. */
const SLOW_MS = 30_000;

/** @type {import('./support/server.mjs').RunningServer} */
let server;
before(async () => {
  server = await startServer({
    args: ['--store', 'memory'],
    env: {
      SWITCHBOARD_AUTH__HMAC_SECRET: SECRET,
      // The refresh push comes 1 s before expiry (at most half the lifetime), and an expired
      // token is refused at once: short-lived tokens make the tests quick and strict.
      SWITCHBOARD_AUTH__REFRESH_BEFORE_SECONDS: '1',
      SWITCHBOARD_AUTH__LEEWAY_SECONDS: '0',
    },
    config: ['[namespaces.private]', 'subscribe = "nobody"', ''].join('\n'),
  });
});
after(() => server?.stop());

/**
 * A token function as an application would write one (async, as if fetched from its
 * backend), recording what it issued.
 *
 * @param {Record<string, unknown>} claims
 * @param {{lifetime?: number, secret?: string}} [options] `lifetime`: seconds until `exp`
 */
function tokenFunction(claims, { lifetime = 600, secret = SECRET } = {}) {
  /** @type {Array<{token: string, exp: number, context: unknown}>} */
  const issued = [];
  /** @param {{channel?: string}} context */
  const fn = async (context) => {
    const exp = nowSeconds() + lifetime;
    const token = signHs256({ ...claims, ...(context.channel ? { channel: context.channel } : {}), exp }, secret);
    issued.push({ token, exp, context });
    return token;
  };
  return { fn, issued };
}

/**
 * Records a client's `state` and `error` events from now on.
 *
 * @param {import('../../clients/js/src/switchboard.js').Switchboard} client
 */
function record(client) {
  /** @type {import('../../clients/js/src/switchboard.js').StateEvent[]} */
  const states = [];
  /** @type {Array<{error: SwitchboardError, transport: string | null}>} */
  const errors = [];
  client.on('state', (e) => states.push(e));
  client.on('error', (e) => errors.push(e));
  return { states, errors };
}

/**
 * What changed in the server's refusal counters.
 *
 * @param {Map<string, number>} before
 * @param {Map<string, number>} after
 * @param {string} key a transport label, or `label/reason`
 */
function delta(before, after, key) {
  return (after.get(key) ?? 0) - (before.get(key) ?? 0);
}

/**
 * A whole round trip of another, well-authenticated client over `transport`: connect,
 * subscribe, receive a publication. A client that were to retry a refused connection (they
 * are made with reconnect delays of at most 20 ms) would have done so by the end of it.
 *
 * @param {import('node:test').TestContext} t
 * @param {string} transport
 */
async function roundTrip(t, transport) {
  const { fn } = tokenFunction({ sub: 'bystander' });
  const other = makeClient(t, server.url, { transports: [transport], token: fn });
  const channel = uniqueChannel('bystander');
  const sub = other.subscribe(channel);
  const got = collect(sub);
  const subscribed = waitFor(sub, 'subscribed');
  other.connect();
  await connected(other, transport);
  await subscribed;
  await apiPublish(server.url, channel, { ok: true });
  await got.waitForCount(1);
  other.disconnect();
}

/**
 * Asserts that no message the client produced carries `token`.
 *
 * @param {string} token
 * @param {{states: Array<{reason?: string, error?: Error}>, errors: Array<{error: Error}>}} events
 */
function assertNoToken(token, { states, errors }) {
  const texts = [
    ...states.flatMap((e) => [e.reason ?? '', e.error?.message ?? '']),
    ...errors.map((e) => `${e.error.message} ${String(/** @type {any} */ (e.error).cause ?? '')}`),
  ];
  for (const text of texts) assert.ok(!text.includes(token), `a message carries the token: ${text}`);
  const signature = token.split('.')[2];
  for (const text of texts) assert.ok(!text.includes(signature), `a message carries the token's signature: ${text}`);
}

/** Other transports after `transport`: the chain a client falls back along. */
function chainFrom(/** @type {string} */ transport) {
  return [transport, ...TRANSPORTS.filter((x) => x !== transport)];
}

for (const transport of TRANSPORTS) {
  describe(`${transport}: authentication`, () => {
    test('connects with a token function; the server knows the user', async (t) => {
      const user = `alice-${transport}`;
      const { fn, issued } = tokenFunction({ sub: user });
      const client = makeClient(t, server.url, { transports: [transport], token: fn });
      const channel = uniqueChannel(`auth-${transport}`);
      const sub = client.subscribe(channel);
      const got = collect(sub);
      const subscribed = waitFor(sub, 'subscribed');
      assert.equal(client.user, null);
      client.connect();
      await connected(client, transport);
      await subscribed;
      assert.equal(client.user, user);
      assert.equal(issued.length, 1, 'one token for one connection');
      assert.deepEqual(issued[0].context, {}, 'a connection token is asked for with {}');

      // The server publishes in the name of the token's user: it authenticated the
      // connection (or the request) with the token the function gave.
      await client.publish(channel, { from: 'client' });
      await got.waitForCount(1);
      assert.equal(got.items[0].info?.user, user);

      client.disconnect();
      assert.equal(client.user, null, 'no user once disconnected');
    });

    test('renews a short-lived token before it expires: no reconnect, no gap', { timeout: SLOW_MS }, async (t) => {
      const user = `renew-${transport}`;
      const { fn, issued } = tokenFunction({ sub: user }, { lifetime: 3 });
      const client = makeClient(t, server.url, { transports: [transport], token: fn });
      const channel = uniqueChannel(`renew-${transport}`);
      const sub = client.subscribe(channel);
      const got = collect(sub);
      const subscribed = waitFor(sub, 'subscribed');
      client.connect();
      await connected(client, transport);
      await subscribed;
      const events = record(client);
      const clientId = client.clientId;
      const before = await refusals(server.url);

      // Publish, each publication once the previous one arrived, until the second token
      // has expired too: the connection then runs on the third.
      let n = 0;
      while (issued.length < 2 || Date.now() < issued[1].exp * 1000 + 500) {
        n++;
        await apiPublish(server.url, channel, { n });
        await got.waitForCount(n);
      }

      assert.deepEqual(
        events.states.map((e) => `${e.state} ${e.code ?? ''} ${e.reason ?? ''}`),
        [],
        'the client stayed connected',
      );
      assert.deepEqual(
        events.errors.map((e) => e.error.code),
        [],
        'no error',
      );
      assert.equal(client.transport, transport);
      assert.equal(client.clientId, clientId);
      assert.equal(client.user, user);
      assert.ok(issued.length >= 3, `${issued.length} tokens issued`);
      assert.equal(got.items.length, n, 'every publication arrived, once');
      assert.deepEqual(
        got.items.map((p) => /** @type {any} */ (p.data).n),
        Array.from({ length: n }, (_, i) => i + 1),
      );
      assertConsecutive(assert, got.items);
      const after = await refusals(server.url);
      assert.equal(delta(before, after, LABEL[transport]), 0, 'the server refused no token');
    });

    test('reconnects with a new token after its token expired, and recovers the gap', { timeout: SLOW_MS }, async (t) => {
      // The token function fails from its second call until the first token has expired:
      // the renewal cannot happen in time, the connection ends, and the client comes back
      // with a new token once the function works again.
      let firstExp = 0;
      let calls = 0;
      const token = async () => {
        calls++;
        const now = nowSeconds();
        if (calls === 1) {
          firstExp = now + 3;
          return signHs256({ sub: `late-${transport}`, exp: firstExp }, SECRET);
        }
        // Down until after the server's deadline, which it counts in whole seconds (a
        // long-poll may be held up to 1 s past `exp`, and then renew on time).
        if (Date.now() < firstExp * 1000 + 1500) throw new Error('token backend down');
        return signHs256({ sub: `late-${transport}`, exp: now + 600 }, SECRET);
      };
      const client = makeClient(t, server.url, { transports: [transport], token });
      const channel = uniqueChannel(`expiry-${transport}`);
      const sub = client.subscribe(channel);
      const got = collect(sub);
      const subscribed = waitFor(sub, 'subscribed');
      client.connect();
      await connected(client, transport);
      await subscribed;
      const events = record(client);
      await apiPublish(server.url, channel, { n: 1 });
      await got.waitForCount(1);

      const lost = await waitFor(client, 'state', { predicate: (e) => e.state === 'connecting' });
      assert.ok(Date.now() >= firstExp * 1000 - 1000, 'the connection lasted until about the expiry');
      if (transport === 'websocket' || transport === 'sse') {
        assert.equal(lost.code, CloseCode.token_expired, 'the server ended it with 4003');
      }
      const resubscribed = waitFor(sub, 'subscribed', { timeoutMs: SLOW_MS / 2 });
      await apiPublish(server.url, channel, { n: 2 });
      await apiPublish(server.url, channel, { n: 3 });
      await connected(client, transport);
      const again = await resubscribed;
      assert.equal(again.recovered, true);
      await got.waitForCount(3);
      assert.deepEqual(got.data(), [{ n: 1 }, { n: 2 }, { n: 3 }]);
      assertConsecutive(assert, got.items);
      const codes = events.errors.map((e) => e.error.code);
      assert.ok(codes.includes(ClientErrorCode.token_unavailable), `errors: ${codes}`);
      for (const e of events.errors) {
        if (e.error.code === ClientErrorCode.token_unavailable) assert.match(e.error.message, /token backend down/);
      }
      assert.equal(client.transport, transport);
    });

    test('an expired fixed token ends with token_expired, presented once', async (t) => {
      const token = signHs256({ sub: `expired-${transport}`, exp: nowSeconds() - 60 }, SECRET);
      const client = makeClient(t, server.url, {
        transports: [transport],
        token,
        minReconnectDelayMs: 1,
        maxReconnectDelayMs: 20,
      });
      client.subscribe(uniqueChannel('expired'));
      const events = record(client);
      const queued = client.publish(uniqueChannel('expired-queued'), { n: 1 });
      const before = await refusals(server.url);
      const ended = waitFor(client, 'state', { predicate: (e) => e.state === 'disconnected' });
      client.connect();
      const event = await ended;
      assert.ok(event.error instanceof SwitchboardError);
      assert.equal(event.error.code, ErrorCode.token_expired);
      assert.equal(event.code, CloseCode.token_expired);
      await assert.rejects(queued, { code: ErrorCode.token_expired });

      await roundTrip(t, transport);
      assert.equal(client.state, 'disconnected');
      assert.deepEqual(
        events.states.map((e) => e.state),
        ['connecting', 'disconnected'],
      );
      assert.deepEqual(
        events.errors.map((e) => [e.transport, e.error.code]),
        [[transport, ErrorCode.token_expired]],
      );
      const after = await refusals(server.url);
      assert.equal(delta(before, after, `${LABEL[transport]}/expired`), 1, 'the server saw the token once');
      assertNoToken(token, events);
    });

    test('a token function that keeps giving expired tokens is given up after a few', async (t) => {
      let calls = 0;
      const token = () => {
        calls++;
        return signHs256({ sub: `stale-${transport}`, exp: nowSeconds() - 60 }, SECRET);
      };
      const client = makeClient(t, server.url, {
        transports: [transport],
        token,
        minReconnectDelayMs: 1,
        maxReconnectDelayMs: 20,
      });
      client.subscribe(uniqueChannel('stale'));
      const events = record(client);
      const ended = waitFor(client, 'state', { predicate: (e) => e.state === 'disconnected' });
      client.connect();
      const event = await ended;
      assert.equal(event.error?.code, ErrorCode.token_expired);
      await roundTrip(t, transport);
      assert.equal(calls, MAX_EXPIRED_IN_A_ROW, 'a new token for every try, and no more tries');
      assert.deepEqual(
        events.errors.map((e) => e.error.code),
        Array(MAX_EXPIRED_IN_A_ROW).fill(ErrorCode.token_expired),
      );
      assert.equal(client.state, 'disconnected');
    });

    test('a forged token is refused: unauthorized, for good, and no other transport is tried', async (t) => {
      const forged = signHs256({ sub: 'mallory', exp: nowSeconds() + 600 }, newSecret());
      let calls = 0;
      const client = makeClient(t, server.url, {
        transports: chainFrom(transport),
        token: () => {
          calls++;
          return forged;
        },
        minReconnectDelayMs: 1,
        maxReconnectDelayMs: 20,
      });
      client.subscribe(uniqueChannel('forged'));
      const events = record(client);
      const before = await refusals(server.url);
      const ended = waitFor(client, 'state', { predicate: (e) => e.state === 'disconnected' });
      client.connect();
      const event = await ended;
      assert.equal(event.error?.code, ErrorCode.unauthorized);
      assert.equal(event.code, CloseCode.unauthorized);
      assert.equal(event.error?.status, transport === 'websocket' ? undefined : 401);

      await roundTrip(t, transport);
      assert.equal(client.state, 'disconnected');
      assert.equal(calls, 1, 'the token function was called once');
      assert.deepEqual(
        events.errors.map((e) => [e.transport, e.error.code]),
        [[transport, ErrorCode.unauthorized]],
        'only the first transport was tried',
      );
      assert.deepEqual(
        events.states.map((e) => e.state),
        ['connecting', 'disconnected'],
      );
      const after = await refusals(server.url);
      assert.equal(delta(before, after, `${LABEL[transport]}/signature`), 1, 'the server saw the token once');
      for (const other of ['websocket', 'sse', 'poll'].filter((l) => l !== LABEL[transport])) {
        // An SSE client asks /poll once why its stream failed.
        const expected = transport === 'sse' && other === 'poll' ? 1 : 0;
        assert.equal(delta(before, after, other), expected, `refusals on ${other}`);
      }
      assertNoToken(forged, events);
    });

    test('without a token, a server that requires one refuses the client for good', async (t) => {
      const client = makeClient(t, server.url, {
        transports: chainFrom(transport),
        minReconnectDelayMs: 1,
        maxReconnectDelayMs: 20,
      });
      client.subscribe(uniqueChannel('anonymous'));
      const events = record(client);
      const ended = waitFor(client, 'state', { predicate: (e) => e.state === 'disconnected' });
      client.connect();
      const event = await ended;
      assert.equal(event.error?.code, ErrorCode.unauthorized);
      await roundTrip(t, transport);
      assert.deepEqual(
        events.errors.map((e) => [e.transport, e.error.code]),
        [[transport, ErrorCode.unauthorized]],
      );
      assert.equal(client.state, 'disconnected');
    });

    test('a failing token function gives token_unavailable, is retried with backoff, then connects', async (t) => {
      let calls = 0;
      const client = makeClient(t, server.url, {
        transports: chainFrom(transport),
        token: async () => {
          calls++;
          if (calls <= 2) throw new Error(`token backend down (${calls})`);
          return signHs256({ sub: `patient-${transport}`, exp: nowSeconds() + 600 }, SECRET);
        },
      });
      const channel = uniqueChannel('patient');
      const sub = client.subscribe(channel);
      const got = collect(sub);
      const subscribed = waitFor(sub, 'subscribed');
      const events = record(client);
      client.connect();
      await connected(client);
      assert.equal(client.transport, transport, 'no fallback to another transport');
      assert.equal(calls, 3);
      assert.deepEqual(
        events.errors.map((e) => [e.transport, e.error.code]),
        [
          [null, ClientErrorCode.token_unavailable],
          [null, ClientErrorCode.token_unavailable],
        ],
      );
      assert.match(events.errors[0].error.message, /token backend down \(1\)/);
      assert.deepEqual(
        events.states.map((e) => e.state),
        ['connecting', 'connected'],
      );
      await subscribed;
      await apiPublish(server.url, channel, { n: 1 });
      await got.waitForCount(1);
      assert.equal(client.user, `patient-${transport}`);
    });
  });
}

test('a token function that does not answer within timeoutMs gives token_unavailable', async (t) => {
  let calls = 0;
  const client = makeClient(t, server.url, {
    transports: ['websocket'],
    timeoutMs: 1_000,
    token: () => {
      calls++;
      if (calls === 1) return new Promise(() => {}); // never settles
      return signHs256({ sub: 'slow', exp: nowSeconds() + 600 }, SECRET);
    },
  });
  const unavailable = waitFor(client, 'error');
  client.connect();
  const { error, transport } = await unavailable;
  assert.equal(error.code, ClientErrorCode.token_unavailable);
  assert.equal(transport, null);
  await connected(client, 'websocket');
  assert.equal(client.user, 'slow');
  assert.equal(calls, 2);
});

test('websocket: a refresh with another user\'s token is refused: unauthorized, for good', { timeout: SLOW_MS }, async (t) => {
  let calls = 0;
  const client = makeClient(t, server.url, {
    transports: ['websocket'],
    minReconnectDelayMs: 1,
    maxReconnectDelayMs: 20,
    token: () => {
      calls++;
      return signHs256({ sub: calls === 1 ? 'frank' : 'not-frank', exp: nowSeconds() + 3 }, SECRET);
    },
  });
  client.connect();
  await connected(client, 'websocket');
  assert.equal(client.user, 'frank');
  const events = record(client);
  const event = await waitFor(client, 'state', { predicate: (e) => e.state === 'disconnected' });
  assert.equal(event.code, CloseCode.unauthorized);
  assert.equal(event.error?.code, ErrorCode.unauthorized);
  await roundTrip(t, 'websocket');
  assert.equal(calls, 2, 'one token to connect, one to refresh, none after the refusal');
  assert.deepEqual(
    events.states.map((e) => e.state),
    ['disconnected'],
  );
});

test('websocket: a subscription token opens a private channel and is fetched again for every resubscribe', async (t) => {
  const user = 'carol';
  const { fn } = tokenFunction({ sub: user });
  const client = makeClient(t, server.url, { transports: ['websocket'], token: fn });
  const secret = uniqueChannel('x').replace(/^test:/, 'private:');
  const subTokens = tokenFunction({ sub: user });
  const sub = client.subscribe(secret, { token: subTokens.fn });
  const got = collect(sub);
  const subscribed = waitFor(sub, 'subscribed');
  client.connect();
  await connected(client, 'websocket');
  await subscribed;
  assert.deepEqual(subTokens.issued.map((i) => i.context), [{ channel: secret }]);
  const events = record(client);

  // Without a token, the namespace's rule (subscribe = "nobody") refuses; with a token for
  // another channel, the token is refused. The connection stays.
  const closed = client.subscribe(secret.replace('private:', 'private:closed-'));
  const closedFailed = waitFor(closed, 'error');
  const wrong = client.subscribe(secret.replace('private:', 'private:wrong-'), {
    token: signHs256({ sub: user, channel: secret, exp: nowSeconds() + 600 }, SECRET),
  });
  const wrongFailed = waitFor(wrong, 'error');
  assert.equal((await closedFailed).error.code, ErrorCode.permission_denied);
  assert.equal((await wrongFailed).error.code, ErrorCode.unauthorized);
  assert.equal(closed.state, 'unsubscribed');
  assert.equal(wrong.state, 'unsubscribed');

  await apiPublish(server.url, secret, { n: 1 });
  await got.waitForCount(1);

  // A reconnect resubscribes with a new subscription token, from where it was.
  const resubscribed = waitFor(sub, 'subscribed');
  client._debugDropTransport();
  await apiPublish(server.url, secret, { n: 2 });
  const again = await resubscribed;
  assert.equal(again.recovered, true);
  await got.waitForCount(2);
  assert.deepEqual(got.data(), [{ n: 1 }, { n: 2 }]);
  assert.equal(subTokens.issued.length, 2, 'a new subscription token for the resubscribe');
  assert.deepEqual(
    events.states.map((e) => e.state),
    ['connecting', 'connected'],
    'only the dropped transport made the client reconnect',
  );
});

test('websocket: a subscription token function that fails is retried; an expired one is replaced', async (t) => {
  const { fn } = tokenFunction({ sub: 'erin' });
  const client = makeClient(t, server.url, { transports: ['websocket'], token: fn });
  const secret = uniqueChannel('y').replace(/^test:/, 'private:');
  let calls = 0;
  const sub = client.subscribe(secret, {
    token: ({ channel }) => {
      calls++;
      if (calls === 1) throw new Error('no token yet');
      // The second is expired: the server refuses it, the client asks for another.
      const exp = nowSeconds() + (calls === 2 ? -60 : 600);
      return signHs256({ sub: 'erin', channel, exp }, SECRET);
    },
  });
  /** @type {string[]} */
  const errors = [];
  sub.on('error', ({ error }) => errors.push(error.code));
  const subscribed = waitFor(sub, 'subscribed');
  client.connect();
  await subscribed;
  assert.deepEqual(errors, [ClientErrorCode.token_unavailable, ErrorCode.token_expired]);
  assert.equal(calls, 3);
  assert.equal(sub.state, 'subscribed');
});

for (const transport of ['sse', 'long-poll', 'poll']) {
  test(`${transport}: a private channel opens with the connection token's channels claim; a subscription token cannot be sent`, async (t) => {
    const user = `dave-${transport}`;
    const open = uniqueChannel('z').replace(/^test:/, 'private:');
    const { fn } = tokenFunction({ sub: user, channels: [open] });
    const client = makeClient(t, server.url, { transports: chainFrom(transport), token: fn });
    const publicChannel = uniqueChannel(`public-${transport}`);
    const pub = client.subscribe(publicChannel);
    const gotPublic = collect(pub);
    const granted = client.subscribe(open);
    const gotGranted = collect(granted);
    const closedChannel = open.replace('private:', 'private:closed-');
    const subTokens = tokenFunction({ sub: user });
    const closed = client.subscribe(closedChannel, { token: subTokens.fn });
    const closedFailed = waitFor(closed, 'error');
    const events = record(client);
    client.connect();
    const { error } = await closedFailed;
    assert.equal(error.code, ErrorCode.permission_denied);
    assert.match(error.message, /WebSocket/);
    assert.equal(closed.state, 'unsubscribed');
    await connected(client, transport);

    // A channel refused later, on a stream already open, fails alone too.
    const late = client.subscribe(closedChannel.replace('closed-', 'late-'));
    const lateFailed = waitFor(late, 'error');
    assert.equal((await lateFailed).error.code, ErrorCode.permission_denied);

    await apiPublish(server.url, open, { n: 1 });
    await apiPublish(server.url, publicChannel, { n: 1 });
    await gotGranted.waitForCount(1);
    await gotPublic.waitForCount(1);
    assert.equal(client.transport, transport, 'no fallback');
    assert.deepEqual(
      events.states.map((e) => `${e.state} ${e.transport}`),
      [`connecting null`, `connected ${transport}`],
    );
    assert.deepEqual(events.errors, [], 'the client itself met no error');
  });
}
