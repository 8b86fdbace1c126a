// Commands with replies (presence, presence_count, history) and join/leave events; the
// HTTP transports, which have no client endpoint for the commands, reject them clearly.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from './support/server.mjs';
import { apiPublish, connected, makeClient, uniqueChannel, waitFor } from './support/helpers.mjs';
import { ClientErrorCode, ErrorCode, SwitchboardError } from '../../clients/js/src/switchboard.js';

/** @type {import('./support/server.mjs').RunningServer} */
let server;
before(async () => {
  server = await startServer();
});
after(() => server?.stop());

/**
 * @param {import('node:test').TestContext} t
 * @param {string} channel
 * @param {import('../../clients/js/src/switchboard.js').SwitchboardOptions} [options]
 * @param {{joinLeave?: boolean}} [subscribeOptions]
 */
async function subscribed(t, channel, options = {}, subscribeOptions = {}) {
  const client = makeClient(t, server.url, { transports: ['websocket'], ...options });
  const sub = client.subscribe(channel, subscribeOptions);
  const done = waitFor(sub, 'subscribed');
  client.connect();
  await done;
  return { client, sub };
}

test('presence lists the subscribed clients with their info, presenceCount counts them', async (t) => {
  const channel = uniqueChannel('presence');
  const alice = await subscribed(t, channel, { info: { nick: 'alice' } });
  const bob = await subscribed(t, channel, { info: { nick: 'bob' } });
  const clients = await alice.client.presence(channel);
  assert.deepEqual(clients.map((c) => c.client).sort(), [alice.client.clientId, bob.client.clientId].sort());
  const nicks = clients.map((c) => /** @type {{nick: string}} */ (c.info).nick).sort();
  assert.deepEqual(nicks, ['alice', 'bob']);
  const count = await bob.client.presenceCount(channel);
  assert.equal(count.clients, 2);
  assert.equal(count.users, 0, 'anonymous connections are not users');
});

test('join and leave events reach subscriptions made with joinLeave', async (t) => {
  const channel = uniqueChannel('join-leave');
  const watcher = await subscribed(t, channel, {}, { joinLeave: true });
  const joined = waitFor(watcher.sub, 'join');
  const other = await subscribed(t, channel, { info: { nick: 'carol' } });
  const join = await joined;
  assert.equal(join.channel, channel);
  assert.equal(join.info.client, other.client.clientId);
  assert.deepEqual(join.info.info, { nick: 'carol' });
  const left = waitFor(watcher.sub, 'leave');
  other.sub.unsubscribe();
  assert.equal((await left).info.client, other.client.clientId);
});

test('join and leave events reach an SSE subscription made with joinLeave', async (t) => {
  const channel = uniqueChannel('join-leave-sse');
  const watcher = await subscribed(t, channel, { transports: ['sse'] }, { joinLeave: true });
  const joined = waitFor(watcher.sub, 'join');
  const other = await subscribed(t, channel);
  const otherId = other.client.clientId;
  assert.equal((await joined).info.client, otherId);
  const left = waitFor(watcher.sub, 'leave');
  other.client.disconnect();
  assert.equal((await left).info.client, otherId);
});

test('history reads forwards, after an offset, and backwards before one', async (t) => {
  const channel = uniqueChannel('history');
  for (let n = 1; n <= 10; n++) await apiPublish(server.url, channel, { n });
  const { client } = await subscribed(t, channel);

  const oldest = await client.history(channel, { limit: 3 });
  assert.deepEqual(oldest.publications.map((p) => p.offset), [1, 2, 3]);
  assert.deepEqual(oldest.publications.map((p) => p.data), [{ n: 1 }, { n: 2 }, { n: 3 }]);
  assert.equal(oldest.offset, 10);
  assert.equal(typeof oldest.epoch, 'string');
  assert.ok(oldest.publications.every((p) => p.channel === channel && p.epoch === oldest.epoch));

  const after = await client.history(channel, { after: 7 });
  assert.deepEqual(after.publications.map((p) => p.offset), [8, 9, 10]);

  const before = await client.history(channel, { before: 5, limit: 2 });
  assert.deepEqual(before.publications.map((p) => p.offset), [4, 3], 'newest first');

  const latest = await client.history(channel, { before: 11, limit: 50 });
  assert.deepEqual(latest.publications.map((p) => p.offset), [10, 9, 8, 7, 6, 5, 4, 3, 2, 1]);
});

test('commands wait for the connection in progress', async (t) => {
  const channel = uniqueChannel('early');
  const client = makeClient(t, server.url, { transports: ['websocket'] });
  client.connect();
  assert.equal(client.state, 'connecting');
  const count = await client.presenceCount(channel);
  assert.deepEqual(count, { clients: 0, users: 0 });
});

test('commands reject with disconnected when the client is not connecting', async (t) => {
  const client = makeClient(t, server.url, { transports: ['websocket'] });
  await assert.rejects(client.history(uniqueChannel('idle')), { code: ClientErrorCode.disconnected });
});

for (const transport of ['sse', 'long-poll', 'poll']) {
  test(`history, presence and presenceCount reject with unsupported over ${transport}`, async (t) => {
    const channel = uniqueChannel(`unsupported-${transport}`);
    const client = makeClient(t, server.url, { transports: [transport] });
    client.subscribe(channel);
    client.connect();
    await connected(client, transport);
    for (const call of [
      () => client.history(channel),
      () => client.presence(channel),
      () => client.presenceCount(channel),
    ]) {
      await assert.rejects(call(), (err) => {
        assert.ok(err instanceof SwitchboardError);
        assert.equal(err.code, ClientErrorCode.unsupported);
        assert.match(err.message, new RegExp(`WebSocket.*${transport}`));
        return true;
      });
    }
  });
}

test('invalid channel names are refused before reaching the server', async (t) => {
  const client = makeClient(t, server.url, { transports: ['websocket'] });
  assert.throws(() => client.subscribe('has space'), { code: ErrorCode.invalid_channel });
  assert.throws(() => client.subscribe(''), { code: ErrorCode.invalid_channel });
  assert.throws(() => client.subscribe('x'.repeat(256)), { code: ErrorCode.invalid_channel });
  await assert.rejects(client.publish('bad channel', {}), { code: ErrorCode.invalid_channel });
});

test('subscribing twice to one channel throws already_subscribed', async (t) => {
  const client = makeClient(t, server.url, { transports: ['websocket'] });
  const sub = client.subscribe(uniqueChannel('twice'));
  assert.throws(() => client.subscribe(sub.channel), { code: ErrorCode.already_subscribed });
  sub.unsubscribe();
  client.subscribe(sub.channel);
});

test('server errors reject the command with the server code', async (t) => {
  const channel = uniqueChannel('server-error');
  const { client } = await subscribed(t, channel);
  // history's limit is at most 1000: the server refuses 5000 with bad_request.
  await assert.rejects(client.history(channel, { limit: 5000 }), (err) => {
    assert.ok(err instanceof SwitchboardError);
    assert.equal(err.code, ErrorCode.bad_request);
    return true;
  });
});

for (const transport of ['websocket', 'long-poll']) {
  test(`data with no JSON form rejects with invalid_data (${transport})`, async (t) => {
    const client = makeClient(t, server.url, { transports: [transport] });
    client.connect();
    await connected(client, transport);
    /** @type {Record<string, unknown>} */
    const cyclic = {};
    cyclic.self = cyclic;
    await assert.rejects(client.publish(uniqueChannel('cyclic'), cyclic), { code: ErrorCode.invalid_data });
    await assert.rejects(client.publish(uniqueChannel('bigint'), { n: 1n }), { code: ErrorCode.invalid_data });
    await assert.rejects(client.publish(uniqueChannel('undefined'), undefined), { code: ErrorCode.invalid_data });
    assert.equal((await client.publish(uniqueChannel('fine'), { ok: 1 })).offset, 1);
  });
}
