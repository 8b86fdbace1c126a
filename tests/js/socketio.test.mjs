// Socket.IO compatibility with the official `socket.io-client` against the real server
// (docs/socketio.md): the three ways of connecting (WebSocket only, polling only, polling
// upgraded to WebSocket), rooms and relays among many clients, private messages, members,
// acks with deadlines, binary arguments, the MessagePack parser, and the namespaces and
// errors a client meets.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from './support/server.mjs';
import {
  api,
  ask,
  connectError,
  connected,
  join,
  listSockets,
  makeSocket,
  msgpackParser,
  nextEvent,
  publish,
  record,
  settle,
  uniqueRoom,
  WAIT_MS,
} from './support/socketio.mjs';

/** The declarative namespaces these tests use. */
const CONFIG = `
[socketio.namespaces."/"]
rooms = true
relay = ["chat message", "bin"]
direct = true
members = true

[socketio.namespaces."/echo"]
rooms = true
relay = ["chat message"]
echo = true

[socketio.namespaces."/anon"]
rooms = true
relay = ["chat message"]
sender = false

[socketio.namespaces."/everyone"]
relay = ["shout"]
relay_to = "namespace"

[socketio.namespaces."/chat"]
rooms = true
relay = ["*"]

[socketio.namespaces."/game-*"]
rooms = true
relay = ["move"]

[socketio.namespaces."/quiet"]

[socketio.namespaces."/few"]
rooms = true
max_rooms = 2

[namespaces.private]
subscribe = "nobody"

[namespaces.readonly]
publish = "nobody"
`;

/** How the client may be told to connect, and the transport it must end up on. */
const TRANSPORTS = /** @type {const} */ ([
  { name: 'websocket only', options: { transports: ['websocket'] }, final: 'websocket' },
  { name: 'polling only', options: { transports: ['polling'] }, final: 'polling' },
  { name: 'default (polling, upgraded)', options: {}, final: 'websocket' },
]);

/** @type {import('./support/server.mjs').RunningServer} */
let server;
before(async () => {
  server = await startServer({ args: ['--store', 'memory'], config: CONFIG });
});
after(() => server?.stop());

/**
 * A connected socket of `namespace` (default `/`).
 *
 * @param {import('node:test').TestContext} t
 * @param {Parameters<typeof makeSocket>[2] & {namespace?: string}} [options]
 */
async function open(t, { namespace = '', ...options } = {}) {
  const socket = makeSocket(t, `${server.url}${namespace}`, options);
  await connected(socket, { what: `a socket of namespace "${namespace || '/'}" to connect (${JSON.stringify(options.transports ?? 'default transports')})` });
  return socket;
}

/**
 * Resolves once `socket` runs over `name` (a default client starts on polling and upgrades).
 *
 * @param {import('socket.io-client').Socket} socket
 * @param {string} name
 */
async function onTransport(socket, name) {
  const engine = socket.io.engine;
  if (engine.transport.name === name) return;
  await nextEvent(engine, 'upgrade', {
    what: `the Engine.IO transport to become ${name} (it is ${engine.transport.name})`,
    timeoutMs: WAIT_MS,
  });
  assert.equal(engine.transport.name, name);
}

describe('transports', () => {
  for (const { name, options, final } of TRANSPORTS) {
    test(`${name}: connects, joins a room, relays and receives API publications and emits`, async (t) => {
      const room = uniqueRoom('transport');
      const a = await open(t, options);
      const b = await open(t, options);
      await onTransport(a, final);
      await onTransport(b, final);
      assert.match(a.id ?? '', /\S/, 'a socket id');
      assert.notEqual(a.id, b.id);
      assert.deepEqual(await ask(a, 'join', [room]), { ok: true }, 'join ack');
      assert.deepEqual(await ask(b, 'join', [room]), { ok: true }, 'join ack');

      const atB = record(b, 'chat message');
      const relayAck = await ask(a, 'chat message', ['hello over ' + final]);
      assert.deepEqual(relayAck, { ok: true }, 'relay ack');
      const [[from, text]] = await atB.waitForCount(1);
      assert.deepEqual(from, { id: a.id, user: null }, 'sender is {id, user} of the relaying socket');
      assert.equal(text, 'hello over ' + final);

      // A hub publication to the room's channel, and an emit through the Socket.IO API.
      const news = nextEvent(a, 'news', { what: `"news" from POST /api/publish on ${final}` });
      await publish(server.url, room, ['news', { a: 1 }]);
      assert.deepEqual(await news, [{ a: 1 }]);
      const alert = nextEvent(b, 'alert', { what: `"alert" from POST /api/socketio/emit on ${final}` });
      const emitted = await api(server.url, 'POST', '/api/socketio/emit', { namespace: '/', rooms: [room], event: 'alert', args: [1, 'two', null] });
      assert.equal(emitted?.ok, true, `POST /api/socketio/emit answers {"ok":true}: ${JSON.stringify(emitted)}`);
      assert.deepEqual(await alert, [1, 'two', null]);

      const listed = await listSockets(server.url, { room });
      assert.deepEqual(listed.map((s) => s.id).sort(), [a.id, b.id].sort(), `GET /api/socketio/sockets?room=${room}`);
      for (const s of listed) {
        assert.equal(s.transport, final, `transport of ${s.id} in GET /api/socketio/sockets`);
        assert.ok(s.rooms.includes(room), `rooms of ${s.id} include ${room}: ${JSON.stringify(s.rooms)}`);
      }
      assert.equal(atB.items.length, 1, 'b got the relay exactly once');
    });
  }

  test('the default client starts on polling and reports the upgrade to websocket', async (t) => {
    const socket = makeSocket(t, server.url);
    const first = await nextEvent(socket.io, 'open', { what: 'the manager to open' }).then(() => socket.io.engine.transport.name);
    assert.equal(first, 'polling', 'a default client first connects with polling');
    await connected(socket);
    await onTransport(socket, 'websocket');
    // The socket survives the upgrade: a room joined before and after works.
    const room = uniqueRoom('upgrade');
    await join(socket, room);
    const news = nextEvent(socket, 'news', { what: 'news after the upgrade' });
    await publish(server.url, room, ['news', 'after upgrade']);
    assert.deepEqual(await news, ['after upgrade']);
  });
});

describe('the polling → websocket upgrade', () => {
  test('nothing sent either way while the upgrade is under way is lost', async (t) => {
    // Repeated, since the window is short: each round a fresh default client fires acks and
    // receives emits from the moment it connects, across its upgrade.
    for (let round = 1; round <= 5; round++) {
      const room = uniqueRoom(`upgrading-${round}`);
      const socket = makeSocket(t, server.url);
      await connected(socket);
      const toSocket = record(socket, 'tick');
      const asks = [];
      // The server's emits, one after the other (so their order is known), meanwhile.
      const emits = (async () => {
        for (let i = 0; i < 20; i++) {
          await api(server.url, 'POST', '/api/socketio/emit', { namespace: '/', sockets: [socket.id], event: 'tick', args: [i] });
        }
      })();
      for (let i = 0; i < 20; i++) {
        asks.push(ask(socket, 'join', [`${room}-${i}`], 5_000).catch((err) => `round ${round}, join ${i}: ${err.message}`));
        await settle(5);
      }
      const acks = await Promise.all(asks);
      await emits;
      assert.deepEqual(acks, acks.map(() => ({ ok: true })), `round ${round}: every join across the upgrade is acked`);
      await toSocket.waitForCount(20, 5_000);
      assert.deepEqual(toSocket.items.map(([i]) => i), Array.from({ length: 20 }, (_, i) => i), `round ${round}: every emit arrives once, in order`);
      await onTransport(socket, 'websocket');
      socket.disconnect();
    }
  });
});

describe('rooms and relays', () => {
  test('20 clients join a room with acks; a relay reaches the 19 others exactly once, not the sender', async (t) => {
    const room = uniqueRoom('crowd');
    const sockets = await Promise.all(
      Array.from({ length: 20 }, (_, i) => open(t, TRANSPORTS[i % TRANSPORTS.length].options)),
    );
    const acks = await Promise.all(sockets.map((s) => ask(s, 'join', [room])));
    assert.deepEqual(acks, sockets.map(() => ({ ok: true })), 'every join acked {"ok":true}');
    const got = sockets.map((s) => record(s, 'chat message'));
    const [sender] = sockets;

    assert.deepEqual(await ask(sender, 'chat message', ['hello everyone']), { ok: true });
    assert.deepEqual(await ask(sender, 'chat message', ['end']), { ok: true });
    await Promise.all(got.slice(1).map((g) => g.waitForCount(2)));
    // Relays from one socket arrive in order, so any duplicate of the first came before "end".
    for (const [i, g] of got.entries()) {
      if (i === 0) continue;
      assert.deepEqual(
        g.items.map(([, text]) => text),
        ['hello everyone', 'end'],
        `client ${i} (${sockets[i].id}) got each relay once, in order`,
      );
      assert.deepEqual(g.items[0][0], { id: sender.id, user: null });
    }
    await settle(200);
    assert.deepEqual(got[0].items, [], 'the sender does not get its own relay (echo = false)');

    // Leaving stops delivery to that socket only.
    assert.deepEqual(await ask(sockets[1], 'leave', [room]), { ok: true }, 'leave ack');
    assert.deepEqual(await ask(sockets[2], 'chat message', ['after leave']), { ok: true });
    await got[0].waitForCount(1);
    await Promise.all(got.filter((_, i) => i > 2).map((g) => g.waitForCount(3)));
    await settle(200);
    assert.deepEqual(got[0].items.map(([, text]) => text), ['after leave'], 'the first sender gets the third relay');
    assert.equal(got[1].items.length, 2, 'a socket that left gets nothing more');
    assert.equal(got[2].items.length, 2, 'the sender of the third relay does not get it');
  });

  test('with echo = true the sender gets its own relay too', async (t) => {
    const room = uniqueRoom('echo');
    const a = await open(t, { namespace: '/echo' });
    const b = await open(t, { namespace: '/echo' });
    await join(a, room);
    await join(b, room);
    const atA = record(a, 'chat message');
    const atB = record(b, 'chat message');
    await ask(a, 'chat message', ['me too']);
    await atA.waitForCount(1);
    await atB.waitForCount(1);
    assert.deepEqual(atA.items, [[{ id: a.id, user: null }, 'me too']]);
    assert.deepEqual(atB.items, [[{ id: a.id, user: null }, 'me too']]);
  });

  test('with sender = false relays carry only the arguments the client sent', async (t) => {
    const room = uniqueRoom('anon');
    const a = await open(t, { namespace: '/anon' });
    const b = await open(t, { namespace: '/anon' });
    await join(a, room);
    await join(b, room);
    const got = nextEvent(b, 'chat message', { what: 'relay in /anon' });
    a.emit('chat message', 'just this', { and: 'that' });
    assert.deepEqual(await got, ['just this', { and: 'that' }]);
  });

  test('a client cannot forge the sender argument', async (t) => {
    const room = uniqueRoom('forge');
    const a = await open(t);
    const b = await open(t);
    await join(a, room);
    await join(b, room);
    const got = nextEvent(b, 'chat message', { what: 'the relay' });
    a.emit('chat message', { id: b.id, user: 'admin' }, 'forged?');
    const [from, ...rest] = await got;
    assert.deepEqual(from, { id: a.id, user: null }, 'the server sets the first argument');
    assert.deepEqual(rest, [{ id: b.id, user: 'admin' }, 'forged?'], 'what the client sent follows it unchanged');
  });

  test('relay_to = "namespace" reaches every socket of the namespace without rooms', async (t) => {
    const [a, b, c] = await Promise.all([1, 2, 3].map(() => open(t, { namespace: '/everyone' })));
    const atB = nextEvent(b, 'shout', { what: 'shout at b' });
    const atC = nextEvent(c, 'shout', { what: 'shout at c' });
    a.emit('shout', 'hey');
    const [gotB, gotC] = await Promise.all([atB, atC]);
    assert.deepEqual(gotB, [{ id: a.id, user: null }, 'hey']);
    assert.deepEqual(gotC, [{ id: a.id, user: null }, 'hey']);
  });

  test('an event that is not in `relay` is not relayed', async (t) => {
    const room = uniqueRoom('norelay');
    const a = await open(t);
    const b = await open(t);
    await join(a, room);
    await join(b, room);
    const other = record(b, 'secret');
    const marker = nextEvent(b, 'chat message', { what: 'the marker relay' });
    a.emit('secret', 'must stay with the server');
    a.emit('chat message', 'marker');
    await marker;
    assert.deepEqual(other.items, [], '"secret" is not in relay and must not reach b');
  });

  test('join does nothing without rooms = true, nor members without members = true', async (t) => {
    // Not enabled, they are ordinary events (forwarded to a backend when there is one): no
    // ack, or an error ack; never a join or a member list.
    const room = uniqueRoom('quiet');
    const quiet = await open(t, { namespace: '/quiet' });
    const answer = await quiet.timeout(500).emitWithAck('join', room).catch(() => 'no ack');
    assert.ok(answer === 'no ack' || answer?.error, `join in /quiet (rooms = false): expected no ack or an error, got ${JSON.stringify(answer)}`);
    const [listed] = await listSockets(server.url, { namespace: '/quiet' }).then((all) => all.filter((s) => s.id === quiet.id));
    assert.ok(listed, `GET /api/socketio/sockets?namespace=/quiet lists ${quiet.id}`);
    assert.ok(!listed.rooms.includes(room), `not in ${room}: ${JSON.stringify(listed.rooms)}`);
    const echo = await open(t, { namespace: '/echo' });
    await join(echo, room);
    const members = await echo.timeout(500).emitWithAck('members', room).catch(() => 'no ack');
    assert.ok(members === 'no ack' || members?.error, `members in /echo (members = false): expected no ack or an error, got ${JSON.stringify(members)}`);
  });

  test('a room name that is not channel-safe maps to an escaped channel', async (t) => {
    const room = `General Chat ${uniqueRoom('esc')}`;
    const socket = await open(t);
    await join(socket, room);
    const news = nextEvent(socket, 'news', { what: `news on channel ${room.replace(/ /g, '=20')}` });
    await publish(server.url, room.replace(/ /g, '=20'), ['news', 'escaped']);
    assert.deepEqual(await news, ['escaped']);
    const rooms = await api(server.url, 'GET', '/api/socketio/rooms?namespace=/');
    const entry = rooms.rooms.find((/** @type {{name: string}} */ r) => r.name === room);
    assert.ok(entry, `GET /api/socketio/rooms lists ${JSON.stringify(room)}: ${JSON.stringify(rooms)}`);
    assert.equal(entry.channel, room.replace(/ /g, '=20'));
    // `members`: every subscriber of the room's channel (sockets and native clients).
    assert.equal(entry.members, 1, 'one member in the room');
  });

  test('rooms of another namespace are channels "<namespace>:<room>"', async (t) => {
    const room = uniqueRoom('ns');
    const a = await open(t, { namespace: '/chat' });
    const b = await open(t, { namespace: '/chat' });
    const root = await open(t);
    await join(a, room);
    await join(b, room);
    await join(root, room);
    const atRoot = record(root, 'news');
    const atB = nextEvent(b, 'news', { what: `news on channel /chat:${room}` });
    await publish(server.url, `/chat:${room}`, ['news', 'for /chat']);
    assert.deepEqual(await atB, ['for /chat']);
    // relay = ["*"] relays any event name in /chat.
    const any = nextEvent(b, 'whatever-event', { what: 'a relay of any event in /chat' });
    a.emit('whatever-event', 1, 2);
    assert.deepEqual(await any, [{ id: a.id, user: null }, 1, 2]);
    await settle(200);
    assert.deepEqual(atRoot.items, [], `room ${room} of / is another channel than room ${room} of /chat`);
  });

  test('dynamic namespaces match a `*` pattern; other namespaces are refused', async (t) => {
    const room = uniqueRoom('game');
    const a = await open(t, { namespace: '/game-42' });
    const b = await open(t, { namespace: '/game-42' });
    await join(a, room);
    await join(b, room);
    const move = nextEvent(b, 'move', { what: 'a move relayed in /game-42' });
    a.emit('move', 'e2e4');
    assert.deepEqual(await move, [{ id: a.id, user: null }, 'e2e4']);

    const nope = makeSocket(t, `${server.url}/nope`);
    const err = await connectError(nope);
    assert.equal(err.message, 'Invalid namespace');
  });
});

describe('channel rules and limits', () => {
  test("a join is refused by the channel's subscribe rule", async (t) => {
    const socket = await open(t);
    const room = `private:${uniqueRoom('closed')}`;
    const answer = await ask(socket, 'join', [room]);
    assert.equal(answer?.error?.code, 'permission_denied', `join of ${room} (subscribe = "nobody"): ${JSON.stringify(answer)}`);
    const listed = (await listSockets(server.url)).find((s) => s.id === socket.id);
    assert.ok(listed && !listed.rooms.includes(room), `not in ${room}: ${JSON.stringify(listed)}`);
  });

  test("a relay is refused by the channel's publish rule and reaches nobody", async (t) => {
    const room = `readonly:${uniqueRoom('ro')}`;
    const a = await open(t);
    const b = await open(t);
    await join(a, room);
    await join(b, room);
    const atB = record(b, 'chat message');
    const answer = await ask(a, 'chat message', ['not allowed']);
    assert.ok(answer?.error, `relay into ${room} (publish = "nobody"): expected an error ack, got ${JSON.stringify(answer)}`);
    // The server API may publish there: b still gets that, and nothing else.
    const news = nextEvent(b, 'news', { what: `news published by the API in ${room}` });
    await publish(server.url, room, ['news', 'from the API']);
    await news;
    assert.deepEqual(atB.items, [], 'the refused relay reached nobody');
  });

  test('max_rooms bounds the rooms one socket may be in', async (t) => {
    const socket = await open(t, { namespace: '/few' });
    await join(socket, uniqueRoom('few'));
    await join(socket, uniqueRoom('few'));
    const third = await ask(socket, 'join', [uniqueRoom('few')]);
    assert.ok(third?.error?.code, `a third join with max_rooms = 2: expected an error ack, got ${JSON.stringify(third)}`);
  });
});

describe('private messages and members', () => {
  test('`to` a socket id reaches only that socket, with the sender', async (t) => {
    const [a, b, c] = await Promise.all([1, 2, 3].map(() => open(t)));
    const atC = record(c, 'private');
    const got = nextEvent(b, 'private', { what: 'the private message at b' });
    assert.deepEqual(await ask(a, 'to', [b.id, 'private', 'psst', { n: 1 }]), { ok: true }, 'ack of to');
    assert.deepEqual(await got, [{ id: a.id, user: null }, 'psst', { n: 1 }]);
    // b answers to a's id.
    const back = nextEvent(a, 'private', { what: 'the answer at a' });
    b.emit('to', a.id, 'private', 'hi back');
    assert.deepEqual(await back, [{ id: b.id, user: null }, 'hi back']);
    await settle(200);
    assert.deepEqual(atC.items, [], 'a third socket gets nothing');
  });

  test('`to` a room works only for a sender in that room; unknown targets get an error ack', async (t) => {
    const room = uniqueRoom('to-room');
    const [a, b, outsider] = await Promise.all([1, 2, 3].map(() => open(t)));
    await join(a, room);
    await join(b, room);
    const got = nextEvent(b, 'note', { what: `note to room ${room}` });
    assert.deepEqual(await ask(a, 'to', [room, 'note', 'for the room']), { ok: true });
    assert.deepEqual(await got, [{ id: a.id, user: null }, 'for the room']);

    const refused = await ask(outsider, 'to', [room, 'note', 'let me in']);
    assert.ok(refused?.error?.code, `to a room the sender is not in: expected an error ack, got ${JSON.stringify(refused)}`);
    const unknown = await ask(a, 'to', ['no-such-socket-or-room', 'note', 'x']);
    assert.ok(unknown?.error?.code, `to an unknown target: expected an error ack, got ${JSON.stringify(unknown)}`);
  });

  test('`members` lists the room; joined and left are announced to members', async (t) => {
    const room = uniqueRoom('members');
    const a = await open(t);
    await join(a, room);
    const joined = nextEvent(a, 'joined', { what: `joined announcement in ${room}` });
    const b = await open(t, { transports: ['polling'] });
    await join(b, room);
    assert.deepEqual(await joined, [{ room, id: b.id, user: null }]);

    const answer = await ask(a, 'members', [room]);
    assert.equal(answer?.ok, true, `members ack: ${JSON.stringify(answer)}`);
    assert.deepEqual(answer.members.map((/** @type {{id: string}} */ m) => m.id).sort(), [a.id, b.id].sort(), 'members are the two sockets');
    for (const m of answer.members) assert.ok('user' in m && 'info' in m, `member has id, user and info: ${JSON.stringify(m)}`);

    const bId = b.id;
    const left = nextEvent(a, 'left', { what: `left announcement in ${room}` });
    b.disconnect();
    assert.deepEqual(await left, [{ room, id: bId, user: null }], 'left when b disconnects');
    const after = await ask(a, 'members', [room]);
    assert.deepEqual(after.members.map((/** @type {{id: string}} */ m) => m.id), [a.id], 'members after b left');
  });
});

describe('acks', () => {
  test('client → server acks: join, relay and errors all answer within the timeout', async (t) => {
    const socket = await open(t);
    const room = uniqueRoom('ack');
    // emitWithAck with a deadline, and the callback form with (err, answer).
    assert.deepEqual(await socket.timeout(2_000).emitWithAck('join', room), { ok: true });
    const viaCallback = await new Promise((resolve, reject) =>
      socket.timeout(2_000).emit('leave', room, (/** @type {Error|null} */ err, /** @type {unknown} */ answer) =>
        err ? reject(new Error(`leave: no ack within 2000 ms (${err.message})`)) : resolve(answer),
      ),
    );
    assert.deepEqual(viaCallback, { ok: true });
    // A bad room name (over 255 bytes once mapped) is an error ack, not silence.
    const tooLong = await socket.timeout(2_000).emitWithAck('join', 'x'.repeat(300));
    assert.ok(tooLong?.error?.code, `join of a 300-byte room: expected {"error":…}, got ${JSON.stringify(tooLong)}`);
  });

  test('an event nobody answers makes timeout(ms).emitWithAck reject after the deadline', async (t) => {
    // No [hooks] event_url: the event is neither handled nor forwarded, so no ack comes.
    const socket = await open(t, { namespace: '/quiet' });
    const started = Date.now();
    await assert.rejects(socket.timeout(300).emitWithAck('unanswered', 1), /operation has timed out/);
    const took = Date.now() - started;
    assert.ok(took >= 250 && took < 2_000, `rejected after ${took} ms, expected about 300`);
    assert.ok(socket.connected, 'the socket stays connected');
  });

  test('ackTimeout and retries: every emit is acked, the room gets each relay once', async (t) => {
    const room = uniqueRoom('retries');
    const sender = await open(t, { ackTimeout: 1_000, retries: 3 });
    const receiver = await open(t);
    await join(sender, room);
    await join(receiver, room);
    const got = record(receiver, 'chat message');
    for (let n = 1; n <= 5; n++) sender.emit('chat message', n);
    await got.waitForCount(5);
    await settle(300);
    assert.deepEqual(got.items.map(([, n]) => n), [1, 2, 3, 4, 5], 'each relay once, in order');
  });

  test('server → client acks: POST /api/socketio/emit with ack_timeout_ms returns the client\'s answer', async (t) => {
    const socket = await open(t);
    socket.on('question', (/** @type {string} */ q, /** @type {(a: unknown) => void} */ answer) => answer({ echo: q, n: 42 }));
    const answered = await api(server.url, 'POST', '/api/socketio/emit', {
      sockets: [socket.id], event: 'question', args: ['life?'], ack_timeout_ms: 2_000,
    });
    assert.deepEqual(answered, { ok: true, ack: [{ echo: 'life?', n: 42 }] });
    // A client that never answers: the API says so after the deadline, and the socket stays.
    const silent = await open(t);
    silent.on('question', () => {});
    const started = Date.now();
    const res = await fetch(`${server.url}/api/socketio/emit`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ sockets: [silent.id], event: 'question', args: [1], ack_timeout_ms: 300 }),
    });
    const took = Date.now() - started;
    assert.equal(res.status, 503, `no ack: HTTP 503, got ${res.status} ${await res.clone().text()}`);
    assert.equal((await res.json()).error.code, 'unavailable');
    assert.ok(took >= 250 && took < 3_000, `answered after ${took} ms, expected about 300`);
    assert.ok(silent.connected, 'the silent socket stays connected');
  });
});

describe('binary', () => {
  const bytes = Buffer.from(Array.from({ length: 300 }, (_, i) => (i * 7) & 0xff));

  for (const { name, options } of TRANSPORTS) {
    test(`binary arguments relayed among clients arrive intact (${name})`, async (t) => {
      const room = uniqueRoom('bin');
      const a = await open(t, options);
      const b = await open(t, options);
      const c = await open(t, { transports: ['polling'] });
      await join(a, room);
      await join(b, room);
      await join(c, room);
      const atB = nextEvent(b, 'bin', { what: 'binary relay at b' });
      const atC = nextEvent(c, 'bin', { what: 'binary relay at c (polling)' });
      const nested = { name: 'file.bin', parts: [new Uint8Array([0, 255, 1]), 'text'] };
      assert.deepEqual(await ask(a, 'bin', [bytes, nested]), { ok: true });
      const [gotB, gotC] = await Promise.all([atB, atC]);
      for (const [who, got] of [['b', gotB], ['c', gotC]]) {
        const [from, buf, obj] = /** @type {any[]} */ (got);
        assert.deepEqual(from, { id: a.id, user: null }, `sender at ${who}`);
        assert.ok(Buffer.isBuffer(buf), `${who} gets a Buffer, got ${Object.prototype.toString.call(buf)}`);
        assert.ok(buf.equals(bytes), `the 300 bytes arrive intact at ${who}`);
        assert.equal(obj.name, 'file.bin');
        assert.ok(Buffer.from(obj.parts[0]).equals(Buffer.from([0, 255, 1])), `nested bytes intact at ${who}`);
        assert.equal(obj.parts[1], 'text');
      }
    });
  }

  test('binary published through the API arrives as event "message" with a Buffer', async (t) => {
    const room = uniqueRoom('binapi');
    const socket = await open(t);
    await join(socket, room);
    const got = nextEvent(socket, 'message', { what: 'binary API publication as "message"' });
    await api(server.url, 'POST', '/api/publish', { channel: room, b64: bytes.toString('base64') });
    const [buf] = await got;
    assert.ok(Buffer.isBuffer(buf) && buf.equals(bytes), `the published bytes, got ${JSON.stringify(buf)}`);
  });
});

describe('msgpack parser', () => {
  for (const transports of [['websocket'], ['polling']]) {
    test(`msgpack and JSON clients talk both ways over ${transports[0]}`, async (t) => {
      const room = uniqueRoom('msgpack');
      const packed = await open(t, { parser: msgpackParser, transports });
      const plain = await open(t, { transports });
      assert.deepEqual(await ask(packed, 'join', [room]), { ok: true }, 'join ack over msgpack');
      await join(plain, room);

      const atPlain = nextEvent(plain, 'chat message', { what: 'msgpack → json relay' });
      assert.deepEqual(await ask(packed, 'chat message', ['from msgpack', { n: 1.5, list: [true, null] }]), { ok: true });
      assert.deepEqual(await atPlain, [{ id: packed.id, user: null }, 'from msgpack', { n: 1.5, list: [true, null] }]);

      const atPacked = nextEvent(packed, 'chat message', { what: 'json → msgpack relay' });
      plain.emit('chat message', 'from json', 42);
      assert.deepEqual(await atPacked, [{ id: plain.id, user: null }, 'from json', 42]);

      const binAtPlain = nextEvent(plain, 'bin', { what: 'msgpack binary → json' });
      packed.emit('bin', new Uint8Array([1, 2, 3, 250]));
      const [, buf] = await binAtPlain;
      assert.ok(Buffer.from(buf).equals(Buffer.from([1, 2, 3, 250])), `bytes intact msgpack → json, got ${JSON.stringify(buf)}`);

      const binAtPacked = nextEvent(packed, 'bin', { what: 'json binary → msgpack' });
      plain.emit('bin', Buffer.from([9, 8, 7]));
      const [, buf2] = await binAtPacked;
      assert.ok(Buffer.from(buf2).equals(Buffer.from([9, 8, 7])), `bytes intact json → msgpack, got ${JSON.stringify(buf2)}`);

      const news = nextEvent(packed, 'news', { what: 'API publication at the msgpack client' });
      await publish(server.url, room, ['news', { a: 1 }]);
      assert.deepEqual(await news, [{ a: 1 }]);
    });
  }
});

describe('server API', () => {
  test('emit to sockets, rooms with except, and the whole namespace', async (t) => {
    const [r1, r2] = [uniqueRoom('api'), uniqueRoom('api-except')];
    const [a, b, c] = await Promise.all([1, 2, 3].map(() => open(t)));
    await join(a, r1);
    await join(b, r1);
    await join(b, r2);
    const seen = [a, b, c].map((s) => record(s, 'api-event'));

    await api(server.url, 'POST', '/api/socketio/emit', { namespace: '/', sockets: [c.id], event: 'api-event', args: ['to c'] });
    await seen[2].waitForCount(1);
    await api(server.url, 'POST', '/api/socketio/emit', { namespace: '/', rooms: [r1], except: [r2], event: 'api-event', args: ['r1 but not r2'] });
    await seen[0].waitForCount(1);
    await api(server.url, 'POST', '/api/socketio/emit', { namespace: '/', event: 'api-event', args: ['everyone'] });
    await Promise.all([seen[0].waitForCount(2), seen[1].waitForCount(1), seen[2].waitForCount(2)]);
    await settle(200);
    // Other tests' sockets are connected too; these three must each see exactly their share.
    assert.deepEqual(seen[0].items, [['r1 but not r2'], ['everyone']], 'a');
    assert.deepEqual(seen[1].items, [['everyone']], 'b is in r2, excepted');
    assert.deepEqual(seen[2].items, [['to c'], ['everyone']], 'c');
  });

  test('join and leave through the API put sockets in rooms', async (t) => {
    const room = uniqueRoom('apijoin');
    const socket = await open(t);
    await api(server.url, 'POST', '/api/socketio/join', { namespace: '/', sockets: [socket.id], rooms: [room] });
    const news = nextEvent(socket, 'news', { what: `news in ${room} after API join` });
    await publish(server.url, room, ['news', 1]);
    assert.deepEqual(await news, [1]);
    await api(server.url, 'POST', '/api/socketio/leave', { namespace: '/', sockets: [socket.id], rooms: [room] });
    const later = record(socket, 'news');
    await publish(server.url, room, ['news', 2]);
    await settle(300);
    assert.deepEqual(later.items, [], 'nothing after the API leave');
  });
});

describe('Engine.IO errors', () => {
  /** @param {string} query */
  const handshake = (query, init = {}) => fetch(`${server.url}/socket.io/?${query}`, init);

  test('bad handshakes get the reference error codes', async () => {
    for (const [query, init, status, code, what] of /** @type {const} */ ([
      ['EIO=4&transport=carrier-pigeon', {}, 400, 0, 'unknown transport'],
      ['EIO=4&transport=polling&sid=nope', {}, 400, 1, 'unknown sid'],
      ['EIO=4&transport=polling', { method: 'PUT', body: 'x' }, 400, 2, 'handshake with PUT'],
      ['EIO=3&transport=polling', {}, 400, 5, 'EIO=3'],
    ])) {
      const response = await handshake(query, init);
      const body = await response.text();
      assert.equal(response.status, status, `${what}: status (body ${body})`);
      assert.equal(JSON.parse(body).code, code, `${what}: code in ${body}`);
    }
  });

  test('a polling handshake opens a session with the configured timings', async () => {
    const response = await handshake('EIO=4&transport=polling');
    assert.equal(response.status, 200);
    const body = await response.text();
    assert.equal(body[0], '0', `an Engine.IO OPEN packet, got ${body}`);
    const open = JSON.parse(body.slice(1));
    assert.equal(typeof open.sid, 'string');
    assert.deepEqual(open.upgrades, ['websocket']);
    assert.equal(open.pingInterval, 25_000);
    assert.equal(open.pingTimeout, 20_000);
    assert.equal(open.maxPayload, 1_000_000);
  });
});
