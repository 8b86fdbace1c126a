// Each transport, forced alone, against the real server: delivery of publications made
// through the HTTP API, publishing from the client, round-trip time and byte counters, and
// subscription changes on the transports whose channel set is fixed per request.
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

for (const transport of TRANSPORTS) {
  describe(`${transport} transport`, () => {
    test('receives publications made through the HTTP API, in order', async (t) => {
      const client = makeClient(t, server.url, { transports: [transport] });
      const channel = uniqueChannel(transport);
      const sub = client.subscribe(channel);
      const got = collect(sub);
      const subscribed = waitFor(sub, 'subscribed');
      const state = connected(client, transport);
      client.connect();
      const event = await state;
      assert.equal(event.transport, transport);
      assert.equal(client.transport, transport);
      const first = await subscribed;
      assert.equal(first.recovered, undefined, 'a first subscribe recovers nothing');

      const sent = [];
      for (let n = 1; n <= 5; n++) sent.push(await apiPublish(server.url, channel, { n }));
      await got.waitForCount(5);
      assert.deepEqual(got.data(), [1, 2, 3, 4, 5].map((n) => ({ n })));
      assert.deepEqual(
        got.items.map((p) => [p.offset, p.epoch]),
        sent.map((s) => [s.offset, s.epoch]),
      );
      assertConsecutive(assert, got.items);
      assert.ok(got.items.every((p) => p.channel === channel));
      assert.ok(client.bytes.received > 0, 'bytes received are counted');
      assert.ok(client.bytes.sent > 0, 'bytes sent are counted');
    });

    test('publishes from the client and receives its own publication', async (t) => {
      const client = makeClient(t, server.url, { transports: [transport] });
      const channel = uniqueChannel(transport);
      const sub = client.subscribe(channel);
      const got = collect(sub);
      const subscribed = waitFor(sub, 'subscribed');
      client.connect();
      await subscribed;
      const result = await client.publish(channel, { hello: transport });
      assert.equal(typeof result.offset, 'number');
      assert.equal(typeof result.epoch, 'string');
      await got.waitForCount(1);
      assert.deepEqual(got.items[0].data, { hello: transport });
      assert.equal(got.items[0].offset, result.offset);
      assert.equal(got.items[0].epoch, result.epoch);
    });

    test('publishes and receives binary data', async (t) => {
      const client = makeClient(t, server.url, { transports: [transport] });
      const channel = uniqueChannel(transport);
      const sub = client.subscribe(channel);
      const got = collect(sub);
      const subscribed = waitFor(sub, 'subscribed');
      client.connect();
      await subscribed;
      const bytes = new Uint8Array([0, 1, 2, 254, 255]);
      await client.publish(channel, bytes);
      await got.waitForCount(1);
      assert.deepEqual(got.items[0].bytes, bytes);
      assert.equal(got.items[0].data, undefined);
    });

    test('measures the round-trip time', async (t) => {
      const client = makeClient(t, server.url, { transports: [transport], pingIntervalMs: 200 });
      client.subscribe(uniqueChannel(transport));
      const rtt = waitFor(client, 'rtt');
      client.connect();
      const event = await rtt;
      assert.equal(event.transport, transport);
      assert.ok(event.rtt >= 0 && event.rtt < 5_000, `rtt ${event.rtt}`);
      assert.equal(client.rtt, event.rtt);
    });

    test('adds and removes channels without losing or repeating publications', async (t) => {
      const client = makeClient(t, server.url, { transports: [transport] });
      const a = uniqueChannel(`${transport}-a`);
      const b = uniqueChannel(`${transport}-b`);
      const subA = client.subscribe(a);
      const gotA = collect(subA);
      const subscribedA = waitFor(subA, 'subscribed');
      client.connect();
      await subscribedA;
      await apiPublish(server.url, a, { n: 1 });
      await gotA.waitForCount(1);

      // Subscribing to b changes the channel set (a new SSE stream, a new poll request)
      // while a keeps being published to: a must go on from where it was.
      const subB = client.subscribe(b);
      const gotB = collect(subB);
      const subscribedB = waitFor(subB, 'subscribed');
      const publishing = (async () => {
        for (let n = 2; n <= 20; n++) await apiPublish(server.url, a, { n });
      })();
      await subscribedB;
      await publishing;
      await apiPublish(server.url, b, { n: 1 });
      await gotA.waitForCount(20);
      await gotB.waitForCount(1);
      assert.deepEqual(gotA.data(), Array.from({ length: 20 }, (_, i) => ({ n: i + 1 })));
      assertConsecutive(assert, gotA.items);
      assert.deepEqual(gotB.data(), [{ n: 1 }]);

      const unsubscribed = waitFor(subA, 'unsubscribed');
      subA.unsubscribe();
      await unsubscribed;
      assert.equal(subA.state, 'unsubscribed');
      await apiPublish(server.url, a, { n: 21 });
      await apiPublish(server.url, b, { n: 2 });
      await gotB.waitForCount(2);
      assert.equal(gotA.items.length, 20, 'nothing arrives after unsubscribe');
      assert.equal(client.getSubscription(a), undefined);
    });
  });
}
