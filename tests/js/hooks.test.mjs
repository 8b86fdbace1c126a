// Backend hooks through the JS client: a real HTTP backend (node:http, as an application's
// backend would be) answers the server's rpc, publish and connect hooks.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startServer } from './support/server.mjs';
import { connected, makeClient, uniqueChannel, waitFor } from './support/helpers.mjs';
import { SwitchboardError } from '../../clients/js/src/switchboard.js';

/** @type {http.Server} */
let backend;
/** @type {string} */
let backendUrl;
/** @type {import('./support/server.mjs').RunningServer} */
let server;
/** @type {import('./support/server.mjs').RunningServer} */
let guarded;

before(async () => {
  backend = http.createServer(async (req, res) => {
    let body = '';
    for await (const chunk of req) body += chunk;
    const call = JSON.parse(body);
    /** @type {unknown} */
    let answer = {};
    if (req.url === '/rpc') {
      answer =
        call.method === 'sum'
          ? { data: { sum: call.data.a + call.data.b, transport: call.transport } }
          : { error: { message: `no method ${call.method}` } };
    } else if (req.url === '/publish') {
      answer = { data: { text: String(call.data.text).toUpperCase() } };
    } else if (req.url === '/connect') {
      answer = { error: { message: 'sign in first' } };
    }
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(answer));
  });
  await new Promise((resolve) => backend.listen(0, '127.0.0.1', () => resolve(undefined)));
  const address = /** @type {import('node:net').AddressInfo} */ (backend.address());
  backendUrl = `http://127.0.0.1:${address.port}`;
  server = await startServer({
    config: `[hooks]
rpc_url = "${backendUrl}/rpc"
publish_url = "${backendUrl}/publish"

[namespaces.shout]
publish_hook = true
`,
  });
  guarded = await startServer({ config: `[hooks]\nconnect_url = "${backendUrl}/connect"\n` });
});

after(async () => {
  await server?.stop();
  await guarded?.stop();
  backend?.close();
});

test('rpc resolves with the backend answer and rejects with its refusal', async (t) => {
  const client = makeClient(t, server.url, { transports: ['websocket'] });
  client.connect();
  await connected(client, 'websocket');
  assert.deepEqual(await client.rpc('sum', { a: 2, b: 40 }), { sum: 42, transport: 'websocket' });
  await assert.rejects(client.rpc('divide', {}), (e) => {
    assert.ok(e instanceof SwitchboardError);
    assert.equal(e.code, 'permission_denied');
    assert.match(e.message, /no method divide/);
    return true;
  });
});

test('the publish hook rewrites what subscribers receive', async (t) => {
  const channel = `shout:${uniqueChannel('room')}`;
  const reader = makeClient(t, server.url, { transports: ['websocket'] });
  const sub = reader.subscribe(channel);
  const subscribed = waitFor(sub, 'subscribed');
  reader.connect();
  await subscribed;
  const writer = makeClient(t, server.url, { transports: ['websocket'] });
  writer.connect();
  await connected(writer, 'websocket');
  const received = waitFor(sub, 'publication');
  await writer.publish(channel, { text: 'quiet please' });
  assert.deepEqual((await received).data, { text: 'QUIET PLEASE' });
});

test('a connection the connect hook refuses stops with forbidden and tries no other transport', async (t) => {
  const client = makeClient(t, guarded.url);
  const stopped = waitFor(client, 'state', { predicate: (e) => e.state === 'disconnected' });
  client.connect();
  const state = await stopped;
  assert.equal(state.error?.code, 'forbidden', JSON.stringify(state));
  assert.equal(state.code, 4503);
});
