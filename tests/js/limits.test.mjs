// The server's limits as the client meets them: an oversize publish (WebSocket close 1009,
// HTTP 413), too many subscriptions (limit_exceeded), and history too short to recover
// from (unrecovered).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from './support/server.mjs';
import { apiPublish, collect, connected, makeClient, uniqueChannel, waitFor } from './support/helpers.mjs';
import { ClientErrorCode, CloseCode, ErrorCode, SwitchboardError } from '../../clients/js/src/switchboard.js';

/** @type {import('./support/server.mjs').RunningServer} */
let server;
before(async () => {
  server = await startServer({
    env: {
      SWITCHBOARD_CHANNELS__HISTORY_SIZE: '5',
      SWITCHBOARD_HUB__MAX_SUBSCRIPTIONS_PER_CLIENT: '2',
      SWITCHBOARD_WEBSOCKET__MAX_MESSAGE_BYTES: '4096',
    },
  });
});
after(() => server?.stop());

const big = { text: 'x'.repeat(8000) };

test('an oversize publish closes the WebSocket with 1009; the client reconnects', async (t) => {
  const client = makeClient(t, server.url, { transports: ['websocket'] });
  client.connect();
  await connected(client);
  const reconnecting = waitFor(client, 'state', { predicate: (e) => e.state === 'connecting' });
  await assert.rejects(client.publish(uniqueChannel('big'), big), (err) => {
    assert.ok(err instanceof SwitchboardError);
    assert.equal(err.code, ClientErrorCode.connection_lost);
    return true;
  });
  assert.equal((await reconnecting).code, CloseCode.message_too_big);
  await connected(client, 'websocket');
  const result = await client.publish(uniqueChannel('small'), { ok: true });
  assert.equal(result.offset, 1);
});

test('an oversize publish over HTTP rejects with too_large', async (t) => {
  const client = makeClient(t, server.url, { transports: ['long-poll'] });
  client.connect();
  await connected(client);
  await assert.rejects(client.publish(uniqueChannel('big-http'), big), (err) => {
    assert.ok(err instanceof SwitchboardError);
    assert.equal(err.code, ErrorCode.too_large);
    assert.equal(err.status, 413);
    return true;
  });
  assert.equal(client.state, 'connected');
});

test('a subscription over the per-connection limit fails with limit_exceeded', async (t) => {
  const client = makeClient(t, server.url, { transports: ['websocket'] });
  const a = client.subscribe(uniqueChannel('limit-a'));
  const b = client.subscribe(uniqueChannel('limit-b'));
  const c = client.subscribe(uniqueChannel('limit-c'));
  const subscribed = Promise.all([waitFor(a, 'subscribed'), waitFor(b, 'subscribed')]);
  const failed = waitFor(c, 'error');
  const dropped = waitFor(c, 'unsubscribed');
  client.connect();
  await subscribed;
  const { error } = await failed;
  assert.equal(error.code, ErrorCode.limit_exceeded);
  await dropped;
  assert.equal(c.state, 'unsubscribed');
  assert.deepEqual(client.subscriptions.map((s) => s.channel), [a.channel, b.channel]);
});

for (const transport of ['websocket', 'sse', 'long-poll', 'poll']) {
  test(`a ${transport} client that missed more than history holds is told unrecovered`, async (t) => {
    const channel = uniqueChannel(`trimmed-${transport}`);
    const client = makeClient(t, server.url, { transports: [transport] });
    const sub = client.subscribe(channel);
    const got = collect(sub);
    const first = waitFor(sub, 'subscribed');
    client.connect();
    await first;
    await apiPublish(server.url, channel, { n: 1 });
    await got.waitForCount(1);
    client.disconnect();
    // History keeps 5: publications 2..4 are gone by the time the client is back.
    for (let n = 2; n <= 10; n++) await apiPublish(server.url, channel, { n });
    const resubscribed = waitFor(sub, 'subscribed');
    const unrecovered = waitFor(sub, 'unrecovered');
    client.connect();
    assert.equal((await resubscribed).recovered, false);
    const lost = await unrecovered;
    assert.equal(lost.offset, 10);
    await apiPublish(server.url, channel, { n: 11 });
    await got.waitForCount(2);
    assert.deepEqual(got.data(), [{ n: 1 }, { n: 11 }]);
  });
}
