// Heartbeats over WebSocket: the client answers the server's pings (so an otherwise idle
// client is not closed with 4002), and takes a server silent past its ping interval plus
// the margin for dead: the server process is paused with SIGSTOP, a real silence.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from './support/server.mjs';
import { apiPublish, collect, connected, makeClient, uniqueChannel, waitFor } from './support/helpers.mjs';

/** @type {import('./support/server.mjs').RunningServer} */
let server;
before(async () => {
  server = await startServer({
    env: {
      SWITCHBOARD_WEBSOCKET__PING_INTERVAL_SECONDS: '1',
      SWITCHBOARD_WEBSOCKET__PONG_TIMEOUT_SECONDS: '1',
    },
  });
});
after(() => server?.stop());

test('an idle client answers server pings and is not closed', async (t) => {
  // The client's own round-trip pings are off (1 h), so only its pongs keep it alive.
  const client = makeClient(t, server.url, { transports: ['websocket'], pingIntervalMs: 3_600_000 });
  const channel = uniqueChannel('idle');
  const sub = client.subscribe(channel);
  const got = collect(sub);
  const subscribed = waitFor(sub, 'subscribed');
  client.connect();
  await subscribed;
  const received = client.bytes.received;
  // Four ping intervals, twice what the server allows a silent client (ping + pong timeout).
  await assert.rejects(
    waitFor(client, 'state', { timeoutMs: 4_000, what: 'a state change' }),
    /timed out after 4000 ms waiting for a state change/,
  );
  assert.equal(client.state, 'connected');
  assert.ok(client.bytes.received > received, 'server pings arrived');
  await apiPublish(server.url, channel, { still: 'here' });
  await got.waitForCount(1);
});

test('a server silent past its ping interval plus the margin is dropped and reconnected', async (t) => {
  const client = makeClient(t, server.url, {
    transports: ['websocket'],
    serverSilenceMarginMs: 500,
    pingIntervalMs: 3_600_000,
    timeoutMs: 30_000,
  });
  client.connect();
  await connected(client);
  const lost = waitFor(client, 'state', { predicate: (e) => e.state === 'connecting', timeoutMs: 5_000 });
  const started = performance.now();
  server.child.kill('SIGSTOP');
  try {
    const event = await lost;
    const elapsed = performance.now() - started;
    assert.match(event.reason, /silent/);
    assert.ok(elapsed >= 1_000 && elapsed < 4_000, `dropped after ${Math.round(elapsed)} ms`);
  } finally {
    server.child.kill('SIGCONT');
  }
  await connected(client, 'websocket');
});
