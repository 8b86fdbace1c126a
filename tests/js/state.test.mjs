// Connection state events, and what a server restart looks like to a client: it goes
// back to connecting, reconnects with backoff to the new process, and, since the new
// process's streams have new epochs, reports its subscriptions as unrecovered.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from './support/server.mjs';
import { apiPublish, collect, connected, makeClient, uniqueChannel, waitFor } from './support/helpers.mjs';

/** @type {import('./support/server.mjs').RunningServer} */
let shared;
before(async () => {
  shared = await startServer();
});
after(() => shared?.stop());

for (const transport of ['websocket', 'sse', 'long-poll', 'poll']) {
  test(`state goes connecting, connected over ${transport}, disconnected`, async (t) => {
    const server = shared;
    const client = makeClient(t, server.url, { transports: [transport] });
    client.subscribe(uniqueChannel('state'));
    /** @type {Array<{state: string, previous: string, transport: string | null}>} */
    const events = [];
    client.on('state', ({ state, previous, transport: via }) => events.push({ state, previous, transport: via }));
    assert.equal(client.state, 'disconnected');
    assert.equal(client.transport, null);
    client.connect();
    await connected(client);
    assert.equal(client.transport, transport);
    if (transport === 'websocket' || transport === 'sse') assert.equal(typeof client.clientId, 'string');
    client.disconnect();
    assert.deepEqual(events, [
      { state: 'connecting', previous: 'disconnected', transport: null },
      { state: 'connected', previous: 'connecting', transport },
      { state: 'disconnected', previous: 'connected', transport: null },
    ]);
    assert.equal(client.transport, null);
    assert.equal(client.clientId, null);
  });
}

for (const transport of ['websocket', 'sse', 'long-poll']) {
  test(`a ${transport} client reconnects after a server restart and reports the lost stream`, async (t) => {
    let server = await startServer();
    const listen = server.listen;
    t.after(() => server.stop());
    const client = makeClient(t, server.url, { transports: [transport], maxReconnectDelayMs: 200 });
    const channel = uniqueChannel('restart');
    const sub = client.subscribe(channel);
    const got = collect(sub);
    const first = waitFor(sub, 'subscribed');
    client.connect();
    await first;
    await apiPublish(server.url, channel, { n: 1 });
    await got.waitForCount(1);

    const reconnecting = waitFor(client, 'state', { predicate: (e) => e.state === 'connecting' });
    await server.stop();
    const lost = await reconnecting;
    assert.equal(lost.previous, 'connected');

    // Same address, new process: its memory hub starts every stream over.
    const unrecovered = waitFor(sub, 'unrecovered', { timeoutMs: 20_000 });
    server = await startServer({ listen });
    await connected(client, transport);
    const event = await unrecovered;
    assert.equal(event.channel, channel);
    await apiPublish(server.url, channel, { n: 'after restart' });
    await got.waitForCount(2);
    assert.deepEqual(got.items[1].data, { n: 'after restart' });
    assert.equal(got.items[1].epoch, event.epoch);
  });
}
