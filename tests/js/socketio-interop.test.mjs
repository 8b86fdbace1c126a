// Socket.IO clients share the hub with every other client (docs/socketio.md, "Rooms and
// channels"): an HTTP API publication reaches a room's sockets, a Socket.IO relay reaches the
// channel's native WebSocket and SSE subscribers, native publications reach sockets, the
// channel's presence lists Socket.IO members, and events the namespace does not handle go to
// the application's backend, whose answer is the client's ack.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { startServer } from './support/server.mjs';
import {
  api,
  ask,
  connected,
  join,
  makeSocket,
  nativeSubscriber,
  nextEvent,
  publish,
  record,
  settle,
  sseReader,
  uniqueRoom,
} from './support/socketio.mjs';

/**
 * The application backend of the event forwarding tests: records what it is sent and answers
 * by event name.
 */
/** @type {Array<Record<string, any>>} */
const forwarded = [];
/** @type {import('node:http').Server} */
let backend;
/** @type {Set<import('node:net').Socket>} */
const backendConnections = new Set();

/**
 * The backend's answer to one forwarded event.
 *
 * @param {Record<string, any>} body
 * @returns {Promise<{status?: number, json?: unknown}>}
 */
async function answer(body) {
  switch (body.event) {
    case 'order':
      return { json: { ack: [{ accepted: true, item: body.args?.[0]?.item }, 'second ack argument'] } };
    case 'slow':
      await settle(3_000);
      return { json: { ack: ['too late'] } };
    case 'broken':
      return { status: 500, json: { oops: true } };
    case 'act':
      return {
        json: {
          ack: ['done'],
          actions: [
            { emit: { event: 'from-backend', args: ['hello', body.client], sockets: [body.client] } },
            { join: body.args[0] },
          ],
        },
      };
    case 'kick':
      return { json: { actions: [{ disconnect: true }] } };
    default:
      return { json: {} };
  }
}

/** @type {import('./support/server.mjs').RunningServer} */
let server;
before(async () => {
  backend = createServer(async (req, res) => {
    let text = '';
    for await (const chunk of req) text += chunk;
    const body = JSON.parse(text || '{}');
    forwarded.push(body);
    const { status = 200, json } = await answer(body);
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(json));
  });
  backend.on('connection', (c) => {
    backendConnections.add(c);
    c.on('close', () => backendConnections.delete(c));
  });
  await new Promise((resolve) => backend.listen(0, '127.0.0.1', () => resolve(undefined)));
  const address = /** @type {import('node:net').AddressInfo} */ (backend.address());
  server = await startServer({
    args: ['--store', 'memory'],
    config: `
[hooks]
event_url = "http://127.0.0.1:${address.port}/events"
timeout_ms = 1000

[socketio.namespaces."/"]
rooms = true
relay = ["chat message"]
direct = true
members = true

[socketio.namespaces."/chat"]
rooms = true
relay = ["chat message"]
members = true
`,
  });
});
after(async () => {
  await server?.stop();
  for (const c of backendConnections) c.destroy();
  await new Promise((resolve) => backend?.close(() => resolve(undefined)));
});

/**
 * A connected socket of `namespace`.
 *
 * @param {import('node:test').TestContext} t
 * @param {Parameters<typeof makeSocket>[2] & {namespace?: string}} [options]
 */
async function open(t, { namespace = '', ...options } = {}) {
  const socket = makeSocket(t, `${server.url}${namespace}`, options);
  await connected(socket);
  return socket;
}

describe('hub publications reach sockets', () => {
  test('POST /api/publish of ["news", {a:1}] to channel "<room>" is event news({a:1}) in room <room> of /', async (t) => {
    const room = uniqueRoom('lobby');
    const inRoom = await Promise.all([
      open(t, { transports: ['websocket'] }),
      open(t, { transports: ['polling'] }),
      open(t),
    ]);
    const outside = await open(t);
    for (const s of inRoom) await join(s, room);
    const got = inRoom.map((s) => record(s, 'news'));
    const notThere = record(outside, 'news');
    await publish(server.url, room, ['news', { a: 1 }]);
    for (const g of got) assert.deepEqual(await g.waitForCount(1), [[{ a: 1 }]]);
    await settle(200);
    assert.deepEqual(notThere.items, [], 'a socket outside the room gets nothing');
  });

  test('data that is not an ["event", …] array is event "message" with the data as its one argument', async (t) => {
    const room = uniqueRoom('plain');
    const socket = await open(t);
    await join(socket, room);
    const messages = record(socket, 'message');
    for (const data of [{ x: 1 }, 'text', 42, [1, 2], null, []]) await publish(server.url, room, data);
    await messages.waitForCount(6);
    assert.deepEqual(messages.items, [[{ x: 1 }], ['text'], [42], [[1, 2]], [null], [[]]]);
  });

  test('a native /ws publication in the channel reaches the room as its event', async (t) => {
    const room = uniqueRoom('fromnative');
    const socket = await open(t);
    await join(socket, room);
    const native = await nativeSubscriber(t, server.url, room);
    const got = nextEvent(socket, 'chat message', { what: 'a native publication as "chat message"' });
    await native.call({ cmd: 'publish', channel: room, data: ['chat message', 'from native', { n: 1 }] });
    assert.deepEqual(await got, ['from native', { n: 1 }]);
  });

  test('POST /api/publish to "/chat:<room>" reaches room <room> of namespace /chat', async (t) => {
    const room = uniqueRoom('nschan');
    const socket = await open(t, { namespace: '/chat' });
    await join(socket, room);
    const got = nextEvent(socket, 'news', { what: `news from channel /chat:${room}` });
    await publish(server.url, `/chat:${room}`, ['news', 'hi /chat']);
    assert.deepEqual(await got, ['hi /chat']);
  });
});

describe('socket relays reach native subscribers', () => {
  test('a relay reaches the /ws subscriber and the SSE reader of the channel as ["chat message", …]', async (t) => {
    const room = uniqueRoom('tonative');
    const [a, b] = [await open(t), await open(t)];
    await join(a, room);
    await join(b, room);
    const native = await nativeSubscriber(t, server.url, room);
    const sse = await sseReader(t, server.url, room);
    const atB = nextEvent(b, 'chat message', { what: 'the relay at b' });
    assert.deepEqual(await ask(a, 'chat message', ['hello', { n: 1 }]), { ok: true });
    await atB;
    await native.waitForCount(1);
    await sse.waitForCount(1);
    for (const [who, data] of [['/ws', native.data()[0]], ['SSE', sse.data()[0]]]) {
      assert.ok(Array.isArray(data), `${who} gets the event as a JSON array, got ${JSON.stringify(data)}`);
      const arr = /** @type {unknown[]} */ (data);
      assert.equal(arr[0], 'chat message', `${who}: event name first`);
      assert.deepEqual(arr.slice(-2), ['hello', { n: 1 }], `${who}: the arguments last, got ${JSON.stringify(arr)}`);
      // docs/socketio.md does not say whether the publication carries the sender argument; if
      // it does, it is the relaying socket's.
      if (arr.length === 4) assert.deepEqual(arr[1], { id: a.id, user: null }, `${who}: sender argument`);
      else assert.equal(arr.length, 3, `${who}: ["chat message", sender?, "hello", {n:1}], got ${JSON.stringify(arr)}`);
    }
  });

  test('POST /api/socketio/emit to a room is published on its channel', async (t) => {
    const room = uniqueRoom('emitnative');
    const socket = await open(t);
    await join(socket, room);
    const native = await nativeSubscriber(t, server.url, room);
    const got = nextEvent(socket, 'update', { what: 'update at the socket' });
    await api(server.url, 'POST', '/api/socketio/emit', { namespace: '/', rooms: [room], event: 'update', args: [{ v: 2 }, 'x'] });
    assert.deepEqual(await got, [{ v: 2 }, 'x']);
    await native.waitForCount(1);
    assert.deepEqual(native.data(), [['update', { v: 2 }, 'x']]);
  });

  test('binary relays reach native subscribers as binary (MessagePack) publications', async (t) => {
    const room = uniqueRoom('binnative');
    const socket = await open(t);
    await join(socket, room);
    const native = await nativeSubscriber(t, server.url, room);
    socket.emit('chat message', Buffer.from([1, 2, 3]));
    await native.waitForCount(1);
    const [pub] = native.publications;
    assert.equal(typeof pub.b64, 'string', `a binary publication (b64) on /ws, got ${JSON.stringify(pub)}`);
    const raw = Buffer.from(pub.b64, 'base64');
    // MessagePack of an array starts with a fixarray (0x9N) or array16/32 header, then the
    // event name as a string.
    assert.ok((raw[0] & 0xf0) === 0x90 || raw[0] === 0xdc || raw[0] === 0xdd, `MessagePack array, first byte 0x${raw[0].toString(16)}`);
    assert.ok(raw.includes(Buffer.from('chat message')), 'the event name is in it');
    assert.ok(raw.includes(Buffer.from([0xc4, 3, 1, 2, 3])), 'the bytes as MessagePack bin 8');
  });
});

describe('presence and members', () => {
  test('GET /api/presence lists the room sockets; members lists native clients too', async (t) => {
    const room = uniqueRoom('presence');
    const a = await open(t, { transports: ['websocket'] });
    const b = await open(t, { transports: ['polling'] });
    await join(a, room);
    await join(b, room);
    const presence = await api(server.url, 'GET', `/api/presence?channel=${encodeURIComponent(room)}`);
    const clients = presence.clients.map((/** @type {{client: string}} */ c) => c.client).sort();
    assert.deepEqual(clients, [a.id, b.id].sort(), `presence of ${room} is the two sockets (by socket id): ${JSON.stringify(presence)}`);
    const count = await api(server.url, 'GET', `/api/presence_count?channel=${encodeURIComponent(room)}`);
    assert.equal(count.clients, 2, `presence_count ${JSON.stringify(count)}`);

    const native = await nativeSubscriber(t, server.url, room);
    const members = await ask(a, 'members', [room]);
    assert.equal(members?.ok, true, JSON.stringify(members));
    assert.deepEqual(
      members.members.map((/** @type {{id: string}} */ m) => m.id).sort(),
      [a.id, b.id, native.client].sort(),
      `members of ${room}: the sockets and the native client: ${JSON.stringify(members)}`,
    );

    // Leaving removes the socket from the channel's presence.
    await ask(b, 'leave', [room]);
    const later = await api(server.url, 'GET', `/api/presence?channel=${encodeURIComponent(room)}`);
    assert.deepEqual(
      later.clients.map((/** @type {{client: string}} */ c) => c.client).sort(),
      [a.id, native.client].sort(),
      `presence after b left: ${JSON.stringify(later)}`,
    );
  });
});

describe('event forwarding', () => {
  test("an unhandled event goes to the backend with the socket's identity; its ack is the client's ack", async (t) => {
    const room = uniqueRoom('fwd');
    const socket = await open(t);
    await join(socket, room);
    const [first, second] = await new Promise((resolve, reject) =>
      socket.timeout(5_000).emit('order', { item: 'tea' }, (/** @type {Error | null} */ err, /** @type {unknown[]} */ ...ack) =>
        err ? reject(new Error(`order: no ack within 5000 ms (${err.message}); the backend got ${JSON.stringify(forwarded)}`)) : resolve(ack),
      ),
    );
    assert.deepEqual(first, { accepted: true, item: 'tea' }, 'first ack argument from the backend');
    assert.equal(second, 'second ack argument');
    const call = forwarded.find((b) => b.event === 'order' && b.client === socket.id);
    assert.ok(call, `the backend got the event: ${JSON.stringify(forwarded)}`);
    assert.equal(call.transport, 'socketio');
    assert.equal(call.namespace, '/');
    assert.deepEqual(call.args, [{ item: 'tea' }]);
    assert.ok(call.rooms.includes(room), `rooms of the socket in the call: ${JSON.stringify(call.rooms)}`);
  });

  test('a backend slower than the client deadline: timeout(ms).emitWithAck rejects', async (t) => {
    const socket = await open(t);
    await assert.rejects(socket.timeout(300).emitWithAck('slow'), /operation has timed out/);
  });

  test('a backend slower than hooks.timeout_ms or failing acks backend_unavailable', async (t) => {
    const socket = await open(t);
    const slow = await ask(socket, 'slow', [], 5_000);
    assert.equal(slow?.error?.code, 'backend_unavailable', `slow backend: ${JSON.stringify(slow)}`);
    const broken = await ask(socket, 'broken', [], 5_000);
    assert.equal(broken?.error?.code, 'backend_unavailable', `HTTP 500 backend: ${JSON.stringify(broken)}`);
  });

  test("the backend's actions: emit to the socket, join a room, disconnect", async (t) => {
    const room = uniqueRoom('action');
    const socket = await open(t);
    const hello = nextEvent(socket, 'from-backend', { what: 'the emit action' });
    assert.equal(await ask(socket, 'act', [room], 5_000), 'done', 'the ack from the backend');
    assert.deepEqual(await hello, ['hello', socket.id]);
    const news = nextEvent(socket, 'news', { what: `news in ${room}, joined by the backend's action` });
    await publish(server.url, room, ['news', 'joined by backend']);
    assert.deepEqual(await news, ['joined by backend']);

    const gone = nextEvent(socket, 'disconnect', { what: 'the disconnect action' });
    socket.emit('kick');
    const [reason] = await gone;
    assert.equal(reason, 'io server disconnect');
  });
});
