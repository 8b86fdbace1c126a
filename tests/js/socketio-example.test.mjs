/**
 * The embeddable Rust API, through its example (`examples/socketio-chat`): a chat written as
 * Rust handlers on namespace `/chat`, served next to an axum route, driven by the official
 * `socket.io-client`. Typed payloads, rooms, `socket.to(room).emit`, acks both ways, a
 * refused payload, and the hub underneath (an HTTP API publication reaches the room).
 */

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { REPO } from './support/server.mjs';
import { makeSocket, nextEvent, connected, publish } from './support/socketio.mjs';

const BIN = process.env.SOCKETIO_CHAT_BIN ?? `${REPO}target/debug/socketio-chat`;

/** @type {import('node:child_process').ChildProcess} */
let child;
/** @type {string} */
let url;

before(async () => {
  if (!existsSync(BIN)) throw new Error(`no example binary at ${BIN}: run \`cargo build -p socketio-chat\``);
  child = spawn(BIN, ['127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  url = await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`the example did not start: ${out}`)), 20_000);
    child.stdout?.on('data', (chunk) => {
      out += chunk;
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    child.on('exit', (code) => reject(new Error(`the example exited (${code}): ${out}`)));
  });
});

after(() => child?.kill());

/** A connected `/chat` socket and its `welcome` event. */
async function chatter(t) {
  const socket = makeSocket(t, `${url}/chat`, { transports: ['websocket'], autoConnect: false });
  const welcome = nextEvent(socket, 'welcome', { what: 'the welcome event of the connect handler' });
  socket.connect();
  await connected(socket);
  const [body] = await welcome;
  assert.equal(body.id, socket.id, 'welcome carries the socket id');
  return socket;
}

test('a chat written with the Rust handler API: rooms, typed messages, acks both ways', async (t) => {
  const a = await chatter(t);
  const b = await chatter(t);
  assert.deepEqual(await a.timeout(2_000).emitWithAck('join', 'lobby'), { ok: true });
  const joined = nextEvent(a, 'joined', { what: 'joined announcement from the Rust handler' });
  assert.deepEqual(await b.timeout(2_000).emitWithAck('join', 'lobby'), { ok: true });
  assert.deepEqual(await joined, [b.id]);

  const atB = nextEvent(b, 'message', { what: 'the message at b' });
  assert.deepEqual(await a.timeout(2_000).emitWithAck('message', { room: 'lobby', text: 'hi' }), { ok: true });
  assert.deepEqual(await atB, [{ from: a.id, text: 'hi' }]);

  // Not in the room: refused by the handler.
  const refused = await a.timeout(2_000).emitWithAck('message', { room: 'elsewhere', text: 'x' });
  assert.equal(refused.ok, false);
  // Data that does not fit the handler's type: an invalid_data ack, the handler never runs.
  const wrong = await a.timeout(2_000).emitWithAck('message', { nope: 1 });
  assert.equal(wrong.error.code, 'invalid_data');

  // Server → client ack inside a client → server ack.
  a.on('question', (q, answer) => answer(`42 is the answer to ${q}`));
  assert.deepEqual(await a.timeout(5_000).emitWithAck('ask me', 'life'), { answer: '42 is the answer to life' });

  // The room is the hub channel /chat:lobby: an HTTP API publication reaches it.
  const fromApi = nextEvent(b, 'message', { what: 'an API publication to /chat:lobby' });
  await publish(url, '/chat:lobby', ['message', { from: 'api', text: 'hello' }]);
  assert.deepEqual(await fromApi, [{ from: 'api', text: 'hello' }]);
});

test('the application\'s axum routes are served on the same port', async () => {
  const res = await fetch(`${url}/hello`);
  assert.equal(res.status, 200);
  assert.equal(await res.text(), 'hello from axum\n');
});
