// Recovery on every transport: after a dropped connection, a disconnect()/connect(), or
// a position the server no longer has, the subscription resumes with no gap and no
// duplicate, or says `unrecovered`.
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

const TRANSPORTS = ['websocket', 'sse', 'long-poll', 'poll'];

/** @type {import('./support/server.mjs').RunningServer} */
let server;
before(async () => {
  server = await startServer();
});
after(() => server?.stop());

/** @param {number} from @param {number} to */
const range = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => ({ n: from + i }));

for (const transport of TRANSPORTS) {
  describe(`${transport} recovery`, () => {
    test('drops the transport twice while 50 publications flow, and gets each exactly once', async (t) => {
      const client = makeClient(t, server.url, { transports: [transport] });
      const channel = uniqueChannel(`drop-${transport}`);
      const sub = client.subscribe(channel);
      const got = collect(sub);
      /** @type {Array<boolean | undefined>} */
      const resubscribes = [];
      sub.on('subscribed', ({ recovered }) => resubscribes.push(recovered));
      const unrecovered = [];
      sub.on('unrecovered', (e) => unrecovered.push(e));
      const first = waitFor(sub, 'subscribed');
      client.connect();
      await first;

      // Drop on arrival of #10 and #30, from inside the delivery: the publisher keeps going,
      // so some publications are made while the client is reconnecting.
      sub.on('publication', (pub) => {
        const n = /** @type {{n: number}} */ (pub.data).n;
        if (n === 10 || n === 30) client._debugDropTransport();
      });
      for (let n = 1; n <= 50; n++) await apiPublish(server.url, channel, { n });
      await got.waitForCount(50);

      assert.deepEqual(got.data(), range(1, 50));
      assertConsecutive(assert, got.items);
      assert.deepEqual(unrecovered, []);
      assert.deepEqual(resubscribes, [undefined, true, true], 'a fresh subscribe, then two recoveries');
      // Anything still in flight after the last one would be a duplicate: one more
      // publication proves the stream is live and nothing else came in between.
      await apiPublish(server.url, channel, { n: 51 });
      await got.waitForCount(51);
      assert.deepEqual(got.data(), range(1, 51));
    });

    test('resumes after disconnect() and connect() with what was published meanwhile', async (t) => {
      const client = makeClient(t, server.url, { transports: [transport] });
      const channel = uniqueChannel(`reconnect-${transport}`);
      const sub = client.subscribe(channel);
      const got = collect(sub);
      const first = waitFor(sub, 'subscribed');
      client.connect();
      await first;
      for (let n = 1; n <= 5; n++) await apiPublish(server.url, channel, { n });
      await got.waitForCount(5);

      client.disconnect();
      assert.equal(client.state, 'disconnected');
      assert.equal(sub.state, 'subscribing');
      for (let n = 6; n <= 15; n++) await apiPublish(server.url, channel, { n });

      const again = waitFor(sub, 'subscribed');
      client.connect();
      const event = await again;
      assert.equal(event.recovered, true);
      await got.waitForCount(15);
      await apiPublish(server.url, channel, { n: 16 });
      await got.waitForCount(16);
      assert.deepEqual(got.data(), range(1, 16));
      assertConsecutive(assert, got.items);
    });

    test('reports unrecovered when the position it resumes from is not in the stream', async (t) => {
      const channel = uniqueChannel(`unrecovered-${transport}`);
      await apiPublish(server.url, channel, { n: 1 });
      const client = makeClient(t, server.url, { transports: [transport] });
      // An epoch the channel never had: what a client sees after the stream restarted.
      const sub = client.subscribe(channel, { since: { offset: 1, epoch: 'gone0000' } });
      const got = collect(sub);
      const subscribed = waitFor(sub, 'subscribed');
      const unrecovered = waitFor(sub, 'unrecovered');
      client.connect();
      const event = await subscribed;
      assert.equal(event.recovered, false);
      const lost = await unrecovered;
      assert.equal(lost.channel, channel);
      assert.equal(lost.offset, 1);
      assert.notEqual(lost.epoch, 'gone0000');
      assert.deepEqual(sub.position, { offset: 1, epoch: lost.epoch });

      await apiPublish(server.url, channel, { n: 2 });
      await got.waitForCount(1);
      assert.deepEqual(got.data(), [{ n: 2 }], 'live publications follow the new position');
    });
  });
}

test('a client that moves from one transport to another keeps its position', async (t) => {
  // First connected over WebSocket, then (as if it were refused) forced onto long-poll:
  // the subscription's position carries over.
  const channel = uniqueChannel('switch');
  const ws = makeClient(t, server.url, { transports: ['websocket'] });
  const sub = ws.subscribe(channel);
  const got = collect(sub);
  const first = waitFor(sub, 'subscribed');
  ws.connect();
  await first;
  await apiPublish(server.url, channel, { n: 1 });
  await got.waitForCount(1);
  ws.disconnect();
  await apiPublish(server.url, channel, { n: 2 });

  const poll = makeClient(t, server.url, { transports: ['long-poll'] });
  const resumed = poll.subscribe(channel, { since: sub.position });
  const gotAfter = collect(resumed);
  const subscribed = waitFor(resumed, 'subscribed');
  poll.connect();
  await connected(poll, 'long-poll');
  assert.equal((await subscribed).recovered, true);
  await gotAfter.waitForCount(1);
  assert.deepEqual(gotAfter.data(), [{ n: 2 }]);
});
