// The publish queue: publishes made while disconnected wait (boundedly) and go out in
// order once connected; a full queue rejects at once.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from './support/server.mjs';
import { collect, connected, makeClient, uniqueChannel, waitFor } from './support/helpers.mjs';
import { ClientErrorCode, SwitchboardError } from '../../clients/js/src/switchboard.js';

/** @type {import('./support/server.mjs').RunningServer} */
let server;
before(async () => {
  server = await startServer();
});
after(() => server?.stop());

/**
 * A WebSocket client subscribed to `channel`, to watch what lands there.
 *
 * @param {import('node:test').TestContext} t
 * @param {string} channel
 */
async function watcher(t, channel) {
  const client = makeClient(t, server.url, { transports: ['websocket'] });
  const sub = client.subscribe(channel);
  const got = collect(sub);
  const subscribed = waitFor(sub, 'subscribed');
  client.connect();
  await subscribed;
  return got;
}

for (const transport of ['websocket', 'long-poll']) {
  test(`publishes made before connecting are sent in order once connected (${transport})`, async (t) => {
    const channel = uniqueChannel(`queue-${transport}`);
    const got = await watcher(t, channel);
    const client = makeClient(t, server.url, { transports: [transport] });
    const pending = [1, 2, 3, 4, 5].map((n) => client.publish(channel, { n }));
    assert.equal(client.state, 'disconnected');
    client.connect();
    const results = await Promise.all(pending);
    assert.deepEqual(
      results.map((r) => r.offset),
      [1, 2, 3, 4, 5],
    );
    await got.waitForCount(5);
    assert.deepEqual(got.data(), [1, 2, 3, 4, 5].map((n) => ({ n })));
  });
}

test('a publish beyond maxQueuedPublishes rejects with queue_full', async (t) => {
  const channel = uniqueChannel('queue-full');
  const client = makeClient(t, server.url, { transports: ['websocket'], maxQueuedPublishes: 2 });
  const a = client.publish(channel, { n: 1 });
  const b = client.publish(channel, { n: 2 });
  await assert.rejects(client.publish(channel, { n: 3 }), (err) => {
    assert.ok(err instanceof SwitchboardError);
    assert.equal(err.code, ClientErrorCode.queue_full);
    assert.match(err.message, /maxQueuedPublishes/);
    return true;
  });
  client.connect();
  assert.deepEqual(
    (await Promise.all([a, b])).map((r) => r.offset),
    [1, 2],
  );
});

test('a publish made while reconnecting waits and is sent after the reconnect', async (t) => {
  const channel = uniqueChannel('queue-reconnect');
  const got = await watcher(t, channel);
  const client = makeClient(t, server.url, { transports: ['websocket'], minReconnectDelayMs: 200 });
  client.connect();
  await connected(client);
  const reconnecting = waitFor(client, 'state', { predicate: (e) => e.state === 'connecting' });
  client._debugDropTransport();
  await reconnecting;
  const published = client.publish(channel, { queued: true });
  assert.equal(client.state, 'connecting');
  const result = await published;
  assert.equal(client.state, 'connected');
  assert.equal(result.offset, 1);
  await got.waitForCount(1);
  assert.deepEqual(got.data(), [{ queued: true }]);
});

test('queued publishes wait across disconnect() for the next connect()', async (t) => {
  const channel = uniqueChannel('queue-kept');
  const client = makeClient(t, server.url, { transports: ['websocket'] });
  client.connect();
  await connected(client);
  client.disconnect();
  const pending = client.publish(channel, { n: 1 });
  client.connect();
  assert.equal((await pending).offset, 1);
});
