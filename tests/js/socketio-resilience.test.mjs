// Socket.IO clients when things go wrong (docs/socketio.md): a connection cut by the server
// is reconnected by the client, which rejoins its rooms in its `connect` handler; with
// connection state recovery the client comes back with the same id and rooms and gets what
// was published while it was away, in order (even when it had received nothing before the
// cut); JWT authentication refuses bad tokens with a `connect_error` that says why; and a
// client that stops reading is disconnected while the others keep receiving everything.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { startServer } from './support/server.mjs';
import { newSecret, nowSeconds, signHs256 } from './support/jwt.mjs';
import {
  api,
  ask,
  connectError,
  connected,
  eventually,
  join,
  listSockets,
  makeSocket,
  nextEvent,
  publish,
  record,
  settle,
  uniqueRoom,
  WAIT_MS,
} from './support/socketio.mjs';

const NAMESPACE = `
[socketio.namespaces."/"]
rooms = true
relay = ["chat message", "flood"]
members = true

[socketio.namespaces."/chat"]
rooms = true
`;

describe('reconnection', () => {
  /** @type {import('./support/server.mjs').RunningServer} */
  let server;
  before(async () => {
    server = await startServer({ args: ['--store', 'memory'], config: NAMESPACE });
  });
  after(() => server?.stop());

  /**
   * A socket that joins `room` in its `connect` handler, as an application would, and records
   * each connection's id and join ack.
   *
   * @param {import('node:test').TestContext} t
   * @param {string} url
   * @param {string} room
   * @param {Parameters<typeof makeSocket>[2]} options
   */
  async function rejoiningSocket(t, url, room, options) {
    const socket = makeSocket(t, url, options);
    /** @type {Array<{id: string | undefined, ack: unknown}>} */
    const connects = [];
    socket.on('connect', async () => {
      const id = socket.id;
      const ack = await socket.timeout(WAIT_MS).emitWithAck('join', room).catch((err) => String(err));
      connects.push({ id, ack });
    });
    await connected(socket);
    await eventually(() => connects.length === 1, { what: 'the first join' });
    assert.deepEqual(connects[0].ack, { ok: true }, 'the first join is acked');
    return { socket, connects };
  }

  /**
   * After a reconnect: the join in the connect handler was acked and the socket gets what the
   * room's channel receives; the old socket id is gone from the room.
   *
   * @param {string} url
   * @param {string} room
   * @param {import('socket.io-client').Socket} socket
   * @param {Array<{id: string | undefined, ack: unknown}>} connects
   */
  async function assertRejoined(url, room, socket, connects) {
    await eventually(() => connects.length === 2, { what: `the reconnect and the second join (connects: ${JSON.stringify(connects)})` });
    assert.deepEqual(connects[1].ack, { ok: true }, 'the join after the reconnect is acked');
    assert.notEqual(connects[1].id, connects[0].id, 'without recovery the socket gets a new id');
    const news = nextEvent(socket, 'news', { what: 'news in the rejoined room' });
    await publish(url, room, ['news', 'after reconnect']);
    assert.deepEqual(await news, ['after reconnect']);
    const ids = (await listSockets(url, { room })).map((s) => s.id);
    assert.deepEqual(ids, [socket.id], 'the old socket is gone from the room, the new one is in it');
  }

  for (const transports of [['websocket'], ['polling']]) {
    test(`a server restart: the client reconnects and rejoins in its connect handler (${transports[0]})`, async (t) => {
      const first = await startServer({ args: ['--store', 'memory'], config: NAMESPACE });
      t.after(() => first.stop());
      const room = uniqueRoom('restart');
      const { socket, connects } = await rejoiningSocket(t, first.url, room, { transports });
      const disconnected = nextEvent(socket, 'disconnect', { what: 'the disconnect when the server stops' });
      await first.stop();
      const [reason] = await disconnected;
      assert.match(reason, /transport close|transport error/, 'a lost server is a transport close or error');
      assert.equal(socket.active, true, 'the client will reconnect');
      const second = await startServer({ listen: first.listen, args: ['--store', 'memory'], config: NAMESPACE });
      t.after(() => second.stop());
      await assertRejoined(second.url, room, socket, connects);
    });
  }

  test('a dropped network connection: the client reconnects and rejoins (websocket)', async (t) => {
    const room = uniqueRoom('drop');
    const { socket, connects } = await rejoiningSocket(t, server.url, room, { transports: ['websocket'] });
    const disconnected = nextEvent(socket, 'disconnect', { what: 'the disconnect' });
    /** @type {any} */ (socket.io.engine.transport).ws._socket.destroy();
    const [reason] = await disconnected;
    assert.equal(reason, 'transport close');
    await assertRejoined(server.url, room, socket, connects);
  });

  test('POST /api/socketio/disconnect with close: true ends the whole connection, every namespace of it', async (t) => {
    const socket = makeSocket(t, server.url, { transports: ['websocket'] });
    // A second namespace multiplexed on the same Engine.IO connection.
    const chat = socket.io.socket('/chat');
    chat.connect();
    t.after(() => chat.disconnect());
    await connected(socket);
    await connected(chat, { what: 'the /chat socket on the same connection to connect' });
    const engine = socket.io.engine;
    const both = Promise.all([
      nextEvent(socket, 'disconnect', { what: 'the / socket to be disconnected' }),
      nextEvent(chat, 'disconnect', { what: 'the /chat socket on the same connection to be disconnected too (close: true)' }),
      nextEvent(engine, 'close', { what: 'the Engine.IO connection to close' }),
    ]);
    await api(server.url, 'POST', '/api/socketio/disconnect', { namespace: '/', sockets: [socket.id], close: true });
    const [[reason], [chatReason]] = await both;
    // The reference server sends DISCONNECT to each namespace before closing ("io server
    // disconnect", and the client does not reconnect); a bare close is a "transport close",
    // which the client reconnects from. Either ends the connection.
    assert.match(reason, /io server disconnect|transport close/);
    assert.match(chatReason, /io server disconnect|transport close/);
  });

  test('a server-side disconnect (close: false) disconnects the namespace only; the client does not reconnect', async (t) => {
    const socket = makeSocket(t, server.url, { transports: ['websocket'] });
    const chat = socket.io.socket('/chat');
    chat.connect();
    t.after(() => chat.disconnect());
    await connected(socket);
    await connected(chat, { what: 'the /chat socket on the same connection to connect' });
    const disconnected = nextEvent(socket, 'disconnect', { what: 'the disconnect' });
    const chatGone = record(chat, 'disconnect');
    await api(server.url, 'POST', '/api/socketio/disconnect', { namespace: '/', sockets: [socket.id], close: false });
    const [reason] = await disconnected;
    assert.equal(reason, 'io server disconnect');
    assert.equal(socket.active, false, 'the client does not reconnect by itself after a server disconnect');
    await settle(500);
    assert.equal(socket.connected, false);
    assert.deepEqual(chatGone.items, [], 'the /chat socket on the same connection stays connected');
    assert.equal(chat.connected, true);
    // It may reconnect when the application says so.
    socket.connect();
    await connected(socket);
  });

  test('heartbeats at ping_interval_ms keep the connection up; once they stop coming the client reconnects', async (t) => {
    // A server with a short ping interval; the client closes a connection that stays silent
    // for pingInterval + pingTimeout, so one that stays up over many intervals gets its pings.
    const quick = await startServer({
      args: ['--store', 'memory'],
      config: `[socketio]\nping_interval_ms = 300\nping_timeout_ms = 300\n${NAMESPACE}`,
    });
    t.after(() => quick.stop());
    const socket = makeSocket(t, quick.url, { transports: ['websocket'] });
    await connected(socket);
    const firstId = socket.id;
    // The handshake told the client the server's timings.
    assert.equal(socket.io.engine._pingInterval ?? socket.io.engine.pingInterval, 300);
    // Heartbeats flow: the connection stays up over several intervals.
    await settle(1_500);
    assert.ok(socket.connected && socket.id === firstId, 'still the same connection after 5 ping intervals');
    // The client stops answering pings: the server closes the session, the client reconnects.
    const ws = /** @type {any} */ (socket.io.engine.transport).ws;
    ws._socket.pause();
    const disconnected = nextEvent(socket, 'disconnect', { what: 'a disconnect once pings go unanswered', timeoutMs: 5_000 });
    const [reason] = await disconnected;
    assert.match(reason, /ping timeout|transport close|transport error/);
    await connected(socket, { what: 'the reconnect after the ping timeout' });
    assert.notEqual(socket.id, firstId);
  });
});

describe('connection state recovery', () => {
  /** @type {import('./support/server.mjs').RunningServer} */
  let server;
  before(async () => {
    server = await startServer({
      args: ['--store', 'memory'],
      config: `[socketio.recovery]\nenabled = true\nmax_disconnection_ms = 20000\n${NAMESPACE}`,
    });
  });
  after(() => server?.stop());

  /**
   * Cuts the socket's connection the way a network failure would (the TCP connection of a
   * WebSocket is destroyed; a polling session is closed by the client's engine), with the
   * client's own reconnection held back until `resume` is called.
   *
   * @param {import('socket.io-client').Socket} socket
   */
  async function cut(socket) {
    socket.io.reconnection(false);
    const disconnected = nextEvent(socket, 'disconnect', { what: 'the cut' });
    const engine = socket.io.engine;
    const transport = /** @type {any} */ (engine.transport);
    if (transport.name === 'websocket') transport.ws._socket.destroy();
    else engine.close();
    const [reason] = await disconnected;
    return {
      reason,
      /** Lets the client reconnect now, and resolves once it is connected again. */
      resume: async () => {
        socket.io.reconnection(true);
        socket.connect();
        await connected(socket, { what: 'the reconnect after the cut' });
      },
    };
  }

  /**
   * The `n` of `item` events, checking each carries the recovery offset as a trailing string
   * argument (as the reference server appends it when recovery is on).
   *
   * @param {any[][]} items
   */
  const numbers = (items) =>
    items.map((args) => {
      assert.equal(typeof args.at(-1), 'string', `with recovery on, each event's last argument is its offset: ${JSON.stringify(args)}`);
      return args[0].n;
    });

  /**
   * The server offered recovery: its CONNECT answer carried a `pid` (which the client keeps in
   * `_pid` and sends back on reconnect). Without it, "not recovered" would prove nothing.
   *
   * @param {import('socket.io-client').Socket} socket
   */
  function assertRecoveryOn(socket) {
    const pid = /** @type {any} */ (socket)._pid;
    assert.equal(typeof pid, 'string', `with [socketio.recovery] enabled, the CONNECT answer carries a pid (got ${JSON.stringify(pid)})`);
  }

  for (const transports of [['websocket'], ['polling']]) {
    test(`recovers id, rooms and missed events in order after a cut (${transports[0]})`, async (t) => {
      const room = uniqueRoom('recover');
      const socket = makeSocket(t, server.url, { transports });
      await connected(socket);
      assertRecoveryOn(socket);
      assert.equal(socket.recovered, false, 'a first connection is not a recovery');
      await join(socket, room);
      const id = socket.id;
      const got = record(socket, 'item');
      for (let n = 1; n <= 3; n++) await publish(server.url, room, ['item', { n }]);
      await got.waitForCount(3);

      const { resume } = await cut(socket);
      for (let n = 4; n <= 10; n++) await publish(server.url, room, ['item', { n }]);
      await resume();
      assert.equal(socket.recovered, true, 'socket.recovered after the reconnect');
      assert.equal(socket.id, id, 'the same socket id');
      await got.waitForCount(10);
      await publish(server.url, room, ['item', { n: 11 }]);
      await got.waitForCount(11);
      assert.deepEqual(numbers(got.items), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], 'each event once, in order');
      const listed = (await listSockets(server.url, { room })).map((s) => s.id);
      assert.deepEqual(listed, [id], 'still in the room under the same id');
    });
  }

  test('recovers a client that had received nothing before the cut', async (t) => {
    const room = uniqueRoom('recover-empty');
    const socket = makeSocket(t, server.url, { transports: ['websocket'] });
    await connected(socket);
    assertRecoveryOn(socket);
    await join(socket, room);
    const id = socket.id;
    const got = record(socket, 'item');
    const { resume } = await cut(socket);
    for (let n = 1; n <= 5; n++) await publish(server.url, room, ['item', { n }]);
    await resume();
    assert.equal(socket.recovered, true, 'socket.recovered although the client sent no offset');
    assert.equal(socket.id, id);
    await got.waitForCount(5);
    await settle(200);
    assert.deepEqual(numbers(got.items), [1, 2, 3, 4, 5]);
  });

  test('events relayed by another socket while cut off are recovered too, with their sender', async (t) => {
    const room = uniqueRoom('recover-relay');
    const socket = makeSocket(t, server.url, { transports: ['websocket'] });
    const other = makeSocket(t, server.url, { transports: ['websocket'] });
    await Promise.all([connected(socket), connected(other)]);
    assertRecoveryOn(socket);
    await join(socket, room);
    await join(other, room);
    const got = record(socket, 'chat message');
    const { resume } = await cut(socket);
    for (const text of ['one', 'two', 'three']) assert.deepEqual(await ask(other, 'chat message', [text]), { ok: true });
    await resume();
    assert.equal(socket.recovered, true, 'socket.recovered after the reconnect');
    await got.waitForCount(3);
    assert.deepEqual(got.items.map((args) => args.slice(0, 2)), ['one', 'two', 'three'].map((text) => [{ id: other.id, user: null }, text]));
  });

  test('a socket disconnected on purpose is not recovered', async (t) => {
    const socket = makeSocket(t, server.url, { transports: ['websocket'] });
    await connected(socket);
    assertRecoveryOn(socket);
    const id = socket.id;
    socket.disconnect();
    socket.connect();
    await connected(socket);
    assert.ok(!socket.recovered, 'a client-side disconnect() discards the session');
    assert.notEqual(socket.id, id);
  });

  test('a client that comes back after max_disconnection_ms is not recovered', async (t) => {
    const short = await startServer({
      args: ['--store', 'memory'],
      config: `[socketio.recovery]\nenabled = true\nmax_disconnection_ms = 300\n${NAMESPACE}`,
    });
    t.after(() => short.stop());
    const socket = makeSocket(t, short.url, { transports: ['websocket'] });
    await connected(socket);
    assertRecoveryOn(socket);
    const id = socket.id;
    const { resume } = await cut(socket);
    await settle(1_000);
    await resume();
    assert.ok(!socket.recovered, 'too late to recover');
    assert.notEqual(socket.id, id, 'a new id');
  });
});

describe('authentication', () => {
  const SECRET = newSecret();
  /** @type {import('./support/server.mjs').RunningServer} */
  let server;
  before(async () => {
    server = await startServer({
      args: ['--store', 'memory'],
      env: { SWITCHBOARD_AUTH__HMAC_SECRET: SECRET, SWITCHBOARD_AUTH__LEEWAY_SECONDS: '0' },
      config: NAMESPACE,
    });
  });
  after(() => server?.stop());

  /** @param {string} sub */
  const token = (sub) => signHs256({ sub, exp: nowSeconds() + 600 }, SECRET);

  test('a socket whose token expires is disconnected; an auth callback reconnects it with a fresh token', async (t) => {
    let issued = 0;
    const socket = makeSocket(t, server.url, {
      transports: ['websocket'],
      // socket.io-client calls this on every (re)connection: a fresh short-lived token.
      auth: (/** @type {(a: object) => void} */ cb) => {
        issued += 1;
        cb({ token: signHs256({ sub: 'shortlived', exp: nowSeconds() + 2 }, SECRET) });
      },
    });
    await connected(socket, { what: 'the short-lived token to connect' });
    const started = Date.now();
    const [reason] = await nextEvent(socket, 'disconnect', { what: 'the disconnect at expiry', timeoutMs: 6_000 });
    assert.equal(reason, 'io server disconnect');
    assert.ok(Date.now() - started < 4_000, `disconnected within the token's life, after ${Date.now() - started} ms`);
    // The application reconnects (a server disconnect is not retried by the client itself).
    socket.connect();
    await connected(socket, { what: 'the reconnection with a fresh token' });
    assert.equal(issued, 2, 'a fresh token was fetched for the reconnection');
  });

  test('a valid token in auth connects as its user; relays and members name the user', async (t) => {
    const room = uniqueRoom('auth');
    const alice = makeSocket(t, server.url, { auth: { token: token('alice') } });
    const bob = makeSocket(t, server.url, { auth: { token: token('bob') }, transports: ['websocket'] });
    await connected(alice, { what: 'alice to connect with a valid token' });
    await connected(bob, { what: 'bob to connect with a valid token' });
    await join(alice, room);
    await join(bob, room);
    const got = nextEvent(bob, 'chat message', { what: "alice's relay at bob" });
    alice.emit('chat message', 'hi bob');
    assert.deepEqual(await got, [{ id: alice.id, user: 'alice' }, 'hi bob']);
    const members = await ask(bob, 'members', [room]);
    assert.deepEqual(
      members.members.map((/** @type {{id: string, user: string}} */ m) => [m.id, m.user]).sort(),
      [[alice.id, 'alice'], [bob.id, 'bob']].sort(),
    );
    const listed = await listSockets(server.url, { room });
    assert.deepEqual(listed.map((s) => s.user).sort(), ['alice', 'bob']);
  });

  test('a token in ?token= or Authorization: Bearer of the handshake is accepted too', async (t) => {
    const viaQuery = makeSocket(t, server.url, { query: { token: token('q') }, transports: ['polling'] });
    await connected(viaQuery, { what: 'a socket with ?token= to connect' });
    const viaHeader = makeSocket(t, server.url, { extraHeaders: { Authorization: `Bearer ${token('h')}` }, transports: ['websocket'] });
    await connected(viaHeader, { what: 'a socket with Authorization: Bearer to connect' });
    const users = Object.fromEntries((await listSockets(server.url)).map((s) => [s.id, s.user]));
    assert.equal(users[viaQuery.id ?? ''], 'q');
    assert.equal(users[viaHeader.id ?? ''], 'h');
  });

  for (const [what, auth, code] of /** @type {const} */ ([
    ['a forged token', () => ({ token: signHs256({ sub: 'mallory', exp: nowSeconds() + 600 }, newSecret()) }), 'unauthorized'],
    ['a malformed token', () => ({ token: 'not.a.jwt' }), 'unauthorized'],
    ['an expired token', () => ({ token: signHs256({ sub: 'late', exp: nowSeconds() - 60 }, SECRET) }), 'token_expired'],
    ['no token', () => ({}), 'unauthorized'],
  ])) {
    test(`${what} gets connect_error with err.data.code`, async (t) => {
      const socket = makeSocket(t, server.url, { auth: auth(), reconnection: false });
      const err = await connectError(socket);
      assert.equal(typeof err.message, 'string');
      assert.ok(err.data && typeof err.data.code === 'string', `connect_error has data.code: message ${JSON.stringify(err.message)}, data ${JSON.stringify(err.data)}`);
      if (code) assert.equal(err.data.code, code, `data.code for ${what}`);
      assert.equal(socket.connected, false);
      assert.equal(socket.id, undefined);
    });
  }
});

describe('slow consumer', () => {
  /** @type {import('./support/server.mjs').RunningServer} */
  let server;
  before(async () => {
    server = await startServer({
      args: ['--store', 'memory'],
      env: {
        SWITCHBOARD_HUB__OUTBOX_MAX_BYTES: String(256 << 10),
        SWITCHBOARD_WEBSOCKET__WRITE_TIMEOUT_SECONDS: '2',
      },
      config: `[socketio]\nmax_buffered_packets = 50\n${NAMESPACE}`,
    });
  });
  after(() => server?.stop());

  /**
   * A polling session driven by hand (Engine.IO v4 over HTTP): handshake, CONNECT to `/`, join
   * `room`, and then no more GETs, as a client that stopped polling.
   *
   * @param {string} room
   */
  async function stalledPoller(room) {
    const base = `${server.url}/socket.io/?EIO=4&transport=polling`;
    const open = await (await fetch(base)).text();
    assert.equal(open[0], '0', `an Engine.IO OPEN packet, got ${open}`);
    const { sid } = JSON.parse(open.slice(1));
    const url = `${base}&sid=${sid}`;
    /** @param {string} body */
    const post = async (body) => {
      const response = await fetch(url, { method: 'POST', body, headers: { 'content-type': 'text/plain;charset=UTF-8' } });
      assert.equal(response.status, 200, `POST ${body}: ${await response.text()}`);
    };
    /** Reads packets until one starts with `prefix`. */
    const readUntil = async (/** @type {string} */ prefix) => {
      for (let i = 0; i < 10; i++) {
        const packets = (await (await fetch(url, { signal: AbortSignal.timeout(WAIT_MS) })).text()).split('\x1e');
        const found = packets.find((p) => p.startsWith(prefix));
        if (found) return found;
      }
      throw new Error(`polling by hand: no packet starting with ${prefix}`);
    };
    await post('40');
    const connect = await readUntil('40{');
    await post(`421["join",${JSON.stringify(room)}]`);
    await readUntil('431[');
    return { sid, url, id: JSON.parse(connect.slice(2)).sid };
  }

  test('a polling client that stops polling is dropped past max_buffered_packets; the others get everything', async (t) => {
    const room = uniqueRoom('poll-flood');
    const stalled = await stalledPoller(room);
    const good = makeSocket(t, server.url, { transports: ['polling'] });
    await connected(good);
    await join(good, room);
    const got = record(good, 'flood');
    for (let n = 0; n < 200; n++) await publish(server.url, room, ['flood', n]);
    await got.waitForCount(200, 20_000);
    assert.deepEqual(got.items.map(([n]) => n), Array.from({ length: 200 }, (_, n) => n), 'the polling client that keeps polling got every event once, in order');
    await eventually(async () => !(await listSockets(server.url, { room })).some((s) => s.id === stalled.id), {
      what: 'the stalled polling socket to be disconnected (gone from GET /api/socketio/sockets)',
    });
    const response = await fetch(stalled.url);
    const body = await response.text();
    assert.equal(response.status, 400, `a GET on the dropped session: ${body}`);
    assert.equal(JSON.parse(body).code, 1, `"Session ID unknown": ${body}`);
  });

  /**
   * A raw WebSocket speaking Engine.IO v4 and Socket.IO v5 by hand: opens a session, connects
   * to `/` and joins `room` (answering pings meanwhile). Returns the `ws` socket and its
   * Socket.IO id.
   *
   * @param {import('node:test').TestContext} t
   * @param {string} room
   */
  async function rawSocket(t, room) {
    const ws = new WebSocket(`${server.url.replace(/^http/, 'ws')}/socket.io/?EIO=4&transport=websocket`);
    t.after(() => ws.terminate());
    /** @type {string[]} */
    const frames = [];
    /** @type {Array<() => void>} */
    const waiters = [];
    ws.on('message', (data, isBinary) => {
      const text = isBinary ? '' : data.toString();
      if (text === '2') ws.send('3');
      frames.push(text);
      for (const w of [...waiters]) w();
    });
    /** @param {(f: string) => boolean} match @param {string} what */
    const frame = (match, what) =>
      new Promise((resolve, reject) => {
        const found = frames.find(match);
        if (found) return resolve(found);
        const timer = setTimeout(() => reject(new Error(`raw Engine.IO client: no ${what} within ${WAIT_MS} ms; frames: ${frames.join(' | ').slice(0, 500)}`)), WAIT_MS);
        const w = () => {
          const f = frames.find(match);
          if (!f) return;
          clearTimeout(timer);
          waiters.splice(waiters.indexOf(w), 1);
          resolve(f);
        };
        waiters.push(w);
      });
    await frame((f) => f.startsWith('0{'), 'Engine.IO OPEN');
    ws.send('40');
    const connect = /** @type {string} */ (await frame((f) => f.startsWith('40{'), 'Socket.IO CONNECT'));
    const sid = JSON.parse(connect.slice(2)).sid;
    ws.send(`421["join",${JSON.stringify(room)}]`);
    await frame((f) => f.startsWith('431['), 'join ack');
    return { ws, sid };
  }

  test('a client that stops reading is disconnected; the others get everything, in order, promptly', async (t) => {
    const room = uniqueRoom('flood');
    const { ws: stalled, sid: stalledId } = await rawSocket(t, room);
    const good = await Promise.all([1, 2, 3].map(() => makeSocket(t, server.url, { transports: ['websocket'] })));
    await Promise.all(good.map((s) => connected(s)));
    for (const s of good) await join(s, room);
    assert.ok((await listSockets(server.url, { room })).some((s) => s.id === stalledId), 'the stalled socket is in the room');

    // It stops reading: the server's writes to it fill the kernel buffers, then its queue.
    /** @type {any} */ (stalled)._socket.pause();
    const total = 640;
    const payload = 'y'.repeat(32_000);
    /** @type {number[][]} */
    const received = good.map(() => []);
    /** @type {number[]} */
    const lateness = [];
    /** @type {number[]} */
    const sentAt = [];
    good.forEach((s, i) =>
      s.on('flood', (/** @type {{n: number}} */ item) => {
        received[i].push(item.n);
        lateness.push(Date.now() - sentAt[item.n]);
      }),
    );
    // Loopback buffers absorb about 10 MB before a write blocks: publish twice that.
    for (let n = 0; n < total; n++) {
      sentAt[n] = Date.now();
      await publish(server.url, room, ['flood', { n, payload }]);
    }
    await eventually(() => received.every((r) => r.length >= total), {
      timeoutMs: 30_000,
      what: `every good client to get the ${total} events (got ${received.map((r) => r.length).join(', ')})`,
    });
    const expected = Array.from({ length: total }, (_, n) => n);
    received.forEach((r, i) => assert.deepEqual(r, expected, `good client ${i} got every event once, in order`));
    lateness.sort((a, b) => a - b);
    const p99 = lateness[Math.floor(lateness.length * 0.99)];
    assert.ok(p99 < 5_000, `99% of events reached the good clients within 5 s of their publication (p99 ${p99} ms)`);

    await eventually(async () => !(await listSockets(server.url, { room })).some((s) => s.id === stalledId), {
      timeoutMs: 15_000,
      what: 'the stalled socket to be disconnected (gone from GET /api/socketio/sockets)',
    });
    // Counted as a slow consumer, under either name the metrics use for it.
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    const counted = metrics
      .split('\n')
      .filter(
        (l) =>
          l.startsWith('switchboard_slow_consumer_disconnects_total{') ||
          (l.startsWith('switchboard_errors_total{') && l.includes('code="slow_consumer"')),
      )
      .filter((l) => l.includes('transport="socketio"') && Number(l.split(/\s+/).at(-1)) >= 1);
    assert.ok(
      counted.length > 0,
      'switchboard_slow_consumer_disconnects_total{transport="socketio"} or switchboard_errors_total{transport="socketio",code="slow_consumer"} counts it; socketio metrics:\n' +
        metrics.split('\n').filter((l) => l.includes('socketio') && !l.startsWith('#')).join('\n'),
    );
  });
});

describe('floods', () => {
  /** @type {import('./support/server.mjs').RunningServer} */
  let server;
  before(async () => {
    server = await startServer({
      args: ['--store', 'memory'],
      env: {
        SWITCHBOARD_LIMITS__COMMANDS_PER_SECOND: '20',
        SWITCHBOARD_LIMITS__COMMANDS_BURST: '20',
        SWITCHBOARD_LIMITS__MAX_RATE_LIMITED_IN_A_ROW: '50',
      },
      config: NAMESPACE,
    });
  });
  after(() => server?.stop());

  test('a socket flooding events is refused with rate_limited, then disconnected; its room neighbour is unaffected', async (t) => {
    const room = uniqueRoom('flood');
    const flooder = makeSocket(t, server.url, { transports: ['websocket'], reconnection: false });
    const calm = makeSocket(t, server.url, { transports: ['websocket'] });
    await Promise.all([connected(flooder), connected(calm)]);
    await join(flooder, room);
    await join(calm, room);
    const acks = [];
    const gone = nextEvent(flooder, 'disconnect', { what: 'the flooder disconnected' });
    for (let i = 0; i < 200; i++) {
      flooder.emit('flood', i, (/** @type {any} */ a) => acks.push(a));
    }
    assert.equal((await gone)[0], 'io server disconnect', 'the server disconnected the flooder');
    assert.ok(acks.some((a) => a?.error?.code === 'rate_limited'), `some acks say rate_limited: ${JSON.stringify(acks.slice(-3))}`);
    assert.ok(acks.filter((a) => a?.ok).length <= 25, `at most the burst was relayed: ${acks.filter((a) => a?.ok).length}`);
    // The neighbour still relays and receives.
    const other = makeSocket(t, server.url, { transports: ['websocket'] });
    await connected(other);
    await join(other, room);
    const got = nextEvent(other, 'chat message', { what: 'a relay after the flood' });
    assert.deepEqual(await ask(calm, 'chat message', ['still here']), { ok: true });
    assert.deepEqual((await got).slice(1), ['still here']);
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    assert.match(metrics, /switchboard_security_refusals_total\{[^}]*reason="commands_rate"[^}]*\} [1-9]/, "rate refusals are counted");
  });
});
