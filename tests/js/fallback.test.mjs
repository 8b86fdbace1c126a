// The transport chain: when a transport is refused (its path answers 404, a real refusal
// by the real server), the client falls back to the next one and works there.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from './support/server.mjs';
import { apiPublish, collect, connected, makeClient, uniqueChannel, waitFor } from './support/helpers.mjs';

/** @type {import('./support/server.mjs').RunningServer} */
let server;
before(async () => {
  server = await startServer();
});
after(() => server?.stop());

/**
 * @param {import('../../clients/js/src/switchboard.js').Switchboard} client
 * @returns {string[]} names of the transports that reported an error
 */
function failures(client) {
  const names = [];
  client.on('error', ({ transport }) => names.push(transport));
  return names;
}

test('falls back to SSE when the WebSocket is refused', async (t) => {
  const client = makeClient(t, server.url, { paths: { websocket: '/nope' } });
  const failed = failures(client);
  const channel = uniqueChannel('fallback-sse');
  const sub = client.subscribe(channel);
  const got = collect(sub);
  const subscribed = waitFor(sub, 'subscribed');
  const state = connected(client);
  client.connect();
  assert.equal((await state).transport, 'sse');
  await subscribed;
  assert.deepEqual(failed, ['websocket']);
  await apiPublish(server.url, channel, { via: 'sse' });
  await got.waitForCount(1);
  assert.deepEqual(got.data(), [{ via: 'sse' }]);
  // Publishing goes over HTTP on this transport.
  await client.publish(channel, { from: 'client' });
  await got.waitForCount(2);
  assert.deepEqual(got.items[1].data, { from: 'client' });
});

test('falls back to long-poll when the WebSocket and SSE are refused', async (t) => {
  const client = makeClient(t, server.url, { paths: { websocket: '/nope', sse: '/nope' } });
  const failed = failures(client);
  const channel = uniqueChannel('fallback-long-poll');
  const sub = client.subscribe(channel);
  const got = collect(sub);
  const subscribed = waitFor(sub, 'subscribed');
  const state = connected(client);
  client.connect();
  assert.equal((await state).transport, 'long-poll');
  await subscribed;
  assert.deepEqual(failed, ['websocket', 'sse']);
  await apiPublish(server.url, channel, { via: 'long-poll' });
  await got.waitForCount(1);
  assert.deepEqual(got.data(), [{ via: 'long-poll' }]);
});

test('falls back from an idle SSE transport when its first stream is refused', async (t) => {
  // With no subscription, SSE has no stream to open and counts as open at once; the
  // refusal shows when the first subscription opens the stream.
  const client = makeClient(t, server.url, { paths: { websocket: '/nope', sse: '/nope' } });
  const idle = connected(client, 'sse');
  client.connect();
  await idle;
  const channel = uniqueChannel('fallback-idle');
  const sub = client.subscribe(channel);
  const got = collect(sub);
  const subscribed = waitFor(sub, 'subscribed');
  await connected(client, 'long-poll');
  await subscribed;
  await apiPublish(server.url, channel, { n: 1 });
  await got.waitForCount(1);
  assert.deepEqual(got.data(), [{ n: 1 }]);
});

test('follows the configured order of transports', async (t) => {
  const client = makeClient(t, server.url, { transports: ['poll', 'websocket'] });
  client.subscribe(uniqueChannel('order'));
  const state = connected(client);
  client.connect();
  assert.equal((await state).transport, 'poll');
});

test('keeps trying with backoff while every transport is refused, until disconnect()', async (t) => {
  const client = makeClient(t, server.url, {
    paths: { websocket: '/nope', sse: '/nope', poll: '/nope' },
  });
  const failed = failures(client);
  client.subscribe(uniqueChannel('refused'));
  const states = [];
  client.on('state', ({ state }) => states.push(state));
  // Two full rounds of the chain: the second one comes from the reconnect timer.
  const secondRound = waitFor(client, 'error', {
    predicate: () => failed.length >= 8,
    what: 'two rounds of failures',
  });
  client.connect();
  await secondRound;
  assert.deepEqual(failed.slice(0, 8), [
    'websocket', 'sse', 'long-poll', 'poll',
    'websocket', 'sse', 'long-poll', 'poll',
  ]);
  assert.equal(client.state, 'connecting');
  client.disconnect();
  assert.deepEqual(states, ['connecting', 'disconnected']);
});
