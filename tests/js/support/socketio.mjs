/**
 * @module socketio
 *
 * What the Socket.IO tests share: official `socket.io-client` sockets with short reconnect
 * delays that are closed when the test ends, bounded waits for events, acks and connection
 * outcomes, an event recorder, the server's Socket.IO API (`/api/socketio/*`), and a native
 * `/ws` subscriber and an SSE reader to see what other transports receive. Every wait has a
 * deadline and says what it was waiting for when it fails.
 */

import { createRequire } from 'node:module';
import WebSocket from 'ws';
import { EventSource } from 'eventsource';
import { io } from 'socket.io-client';

export { io };

const require = createRequire(import.meta.url);
/** `socket.io-msgpack-parser` (a CommonJS module), for the client's `parser` option. */
export const msgpackParser = require('socket.io-msgpack-parser');

/** Default deadline of one wait. */
export const WAIT_MS = 10_000;

let counter = 0;

/**
 * A room name no other test uses (also a valid channel name: letters, digits and `-`).
 *
 * @param {string} prefix
 */
export function uniqueRoom(prefix) {
  counter += 1;
  return `${prefix}-${process.pid}-${counter}-${Math.random().toString(36).slice(2, 8)}`;
}

/**
 * A socket of the official client for `url` (which may end with a namespace, e.g.
 * `http://127.0.0.1:1234/chat`), on its own connection (`forceNew`), with reconnect delays
 * short enough for tests. It is not connected yet unless `autoConnect` is left on (the
 * default); it is closed when the test ends.
 *
 * @param {import('node:test').TestContext} t
 * @param {string} url
 * @param {Partial<import('socket.io-client').ManagerOptions & import('socket.io-client').SocketOptions>} [options]
 * @returns {import('socket.io-client').Socket}
 */
export function makeSocket(t, url, options = {}) {
  const socket = io(url, {
    forceNew: true,
    reconnectionDelay: 100,
    reconnectionDelayMax: 500,
    randomizationFactor: 0,
    timeout: 5_000,
    ...options,
  });
  t.after(() => {
    socket.disconnect();
    socket.io.engine?.close();
  });
  return socket;
}

/**
 * Resolves with the arguments of the next `event` of `emitter` that satisfy `predicate`.
 *
 * @param {{on: Function, off: Function}} emitter a Socket.IO socket or manager, or any emitter
 * @param {string} event
 * @param {{predicate?: (...args: any[]) => boolean, timeoutMs?: number, what?: string}} [options]
 * @returns {Promise<any[]>} rejects only for whoever awaits it
 */
export function nextEvent(emitter, event, { predicate = () => true, timeoutMs = WAIT_MS, what = `event "${event}"` } = {}) {
  const waiting = new Promise((resolve, reject) => {
    /** @param {any[]} args */
    const listener = (...args) => {
      if (!predicate(...args)) return;
      clearTimeout(timer);
      emitter.off(event, listener);
      resolve(args);
    };
    const timer = setTimeout(() => {
      emitter.off(event, listener);
      reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
    }, timeoutMs);
    emitter.on(event, listener);
  });
  // Tests set waits up before the action that should trigger them; when an earlier step
  // fails, the abandoned wait must not surface later as an unhandled rejection.
  waiting.catch(() => {});
  return waiting;
}

/**
 * Resolves once `socket` is connected; rejects with the server's `connect_error` (message
 * and `data`) or after `timeoutMs`.
 *
 * @param {import('socket.io-client').Socket} socket
 * @param {{timeoutMs?: number, what?: string}} [options]
 */
export function connected(socket, { timeoutMs = WAIT_MS, what = 'the socket to connect' } = {}) {
  if (socket.connected) return Promise.resolve(socket);
  return new Promise((resolve, reject) => {
    const done = () => {
      clearTimeout(timer);
      socket.off('connect', onConnect);
      socket.off('connect_error', onError);
    };
    const onConnect = () => {
      done();
      resolve(socket);
    };
    /** @param {Error & {data?: unknown}} err */
    const onError = (err) => {
      // The client retries a failed connection by itself; a test that expects success fails
      // at once with the server's reason rather than at the deadline.
      done();
      reject(new Error(`expected ${what}, got connect_error ${JSON.stringify(err.message)} data ${JSON.stringify(err.data)}`));
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
    }, timeoutMs);
    socket.on('connect', onConnect);
    socket.on('connect_error', onError);
  });
}

/**
 * Resolves with the next `connect_error` of `socket` (an `Error` with the server's `message`
 * and `data`); rejects if the socket connects instead, or after `timeoutMs`.
 *
 * @param {import('socket.io-client').Socket} socket
 * @param {{timeoutMs?: number}} [options]
 * @returns {Promise<Error & {data?: any}>}
 */
export function connectError(socket, { timeoutMs = WAIT_MS } = {}) {
  return new Promise((resolve, reject) => {
    const done = () => {
      clearTimeout(timer);
      socket.off('connect', onConnect);
      socket.off('connect_error', onError);
    };
    const onConnect = () => {
      done();
      reject(new Error(`expected a connect_error, but the socket connected (id ${socket.id})`));
    };
    /** @param {Error} err */
    const onError = (err) => {
      done();
      resolve(err);
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(`timed out after ${timeoutMs} ms waiting for a connect_error`));
    }, timeoutMs);
    socket.on('connect', onConnect);
    socket.on('connect_error', onError);
  });
}

/**
 * Emits `event` with an ack and a deadline (`socket.timeout(ms).emitWithAck`), and resolves
 * with the ack's first argument. A missing ack fails with what was emitted.
 *
 * @param {import('socket.io-client').Socket} socket
 * @param {string} event
 * @param {unknown[]} args
 * @param {number} [timeoutMs]
 */
export async function ask(socket, event, args, timeoutMs = WAIT_MS) {
  try {
    return await socket.timeout(timeoutMs).emitWithAck(event, ...args);
  } catch (err) {
    throw new Error(`no ack within ${timeoutMs} ms for ${event}(${args.map((a) => JSON.stringify(a)).join(', ')}): ${err}`);
  }
}

/**
 * Joins `room` with the declarative `join` event and asserts the contract's `{"ok":true}` ack.
 *
 * @param {import('socket.io-client').Socket} socket
 * @param {string} room
 */
export async function join(socket, room) {
  const answer = await ask(socket, 'join', [room]);
  if (!answer || answer.ok !== true) {
    throw new Error(`join(${JSON.stringify(room)}): expected ack {"ok":true}, got ${JSON.stringify(answer)}`);
  }
  return answer;
}

/**
 * Records every `event` of `socket` (its argument lists) and lets a test wait for a count.
 *
 * @param {import('socket.io-client').Socket} socket
 * @param {string} event
 */
export function record(socket, event) {
  /** @type {any[][]} */
  const items = [];
  /** @type {Array<() => void>} */
  const checks = [];
  socket.on(event, (...args) => {
    items.push(args);
    for (const check of [...checks]) check();
  });
  return {
    items,
    /**
     * @param {number} n
     * @param {number} [timeoutMs]
     * @returns {Promise<any[][]>}
     */
    waitForCount(n, timeoutMs = WAIT_MS) {
      if (items.length >= n) return Promise.resolve(items);
      return new Promise((resolve, reject) => {
        const check = () => {
          if (items.length < n) return;
          clearTimeout(timer);
          checks.splice(checks.indexOf(check), 1);
          resolve(items);
        };
        const timer = setTimeout(() => {
          checks.splice(checks.indexOf(check), 1);
          reject(
            new Error(
              `timed out after ${timeoutMs} ms: socket ${socket.id} got ${items.length} of ${n} "${event}" events: ` +
                JSON.stringify(items).slice(0, 500),
            ),
          );
        }, timeoutMs);
        checks.push(check);
      });
    },
  };
}

/**
 * Calls the server HTTP API and returns its JSON answer; fails with the status and body
 * unless it is 2xx.
 *
 * @param {string} url the server's http base
 * @param {string} method
 * @param {string} path e.g. `/api/socketio/emit`
 * @param {unknown} [body]
 */
export async function api(url, method, path, body = undefined) {
  const response = await fetch(`${url}${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path} ${JSON.stringify(body) ?? ''}: HTTP ${response.status} ${text.slice(0, 300)}`);
  return text ? JSON.parse(text) : null;
}

/**
 * Publishes `data` to `channel` through `POST /api/publish`.
 *
 * @param {string} url
 * @param {string} channel
 * @param {unknown} data
 */
export function publish(url, channel, data) {
  return api(url, 'POST', '/api/publish', { channel, data });
}

/**
 * The Socket.IO sockets the server lists (`GET /api/socketio/sockets`).
 *
 * @param {string} url
 * @param {{namespace?: string, room?: string}} [query]
 * @returns {Promise<Array<{id: string, user: string | null, rooms: string[], transport: string}>>}
 */
export async function listSockets(url, { namespace = '/', room } = {}) {
  const q = new URLSearchParams({ namespace });
  if (room !== undefined) q.set('room', room);
  const answer = await api(url, 'GET', `/api/socketio/sockets?${q}`);
  if (!answer || !Array.isArray(answer.sockets)) {
    throw new Error(`GET /api/socketio/sockets?${q}: expected {"sockets":[…]}, got ${JSON.stringify(answer)}`);
  }
  return answer.sockets;
}

/**
 * Polls `check` every 50 ms until it returns a truthy value, and resolves with it.
 *
 * @template T
 * @param {() => Promise<T> | T} check
 * @param {{timeoutMs?: number, what: string}} options
 * @returns {Promise<T>}
 */
export async function eventually(check, { timeoutMs = WAIT_MS, what }) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
      last = value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${last})`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * A native WebSocket client (`/ws`, JSON frames) subscribed to `channel`; records the data of
 * every publication pushed on it. Closed when the test ends.
 *
 * @param {import('node:test').TestContext} t
 * @param {string} url the server's http base
 * @param {string} channel
 */
export async function nativeSubscriber(t, url, channel) {
  const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/ws`);
  t.after(() => ws.terminate());
  /** @type {any[]} */
  const publications = [];
  /** @type {Map<number, (reply: any) => void>} */
  const replies = new Map();
  /** @type {Array<() => void>} */
  const checks = [];
  let nextId = 1;
  ws.on('message', (raw) => {
    const msg = JSON.parse(raw.toString());
    if (msg.push === 'ping') ws.send(JSON.stringify({ cmd: 'pong' }));
    if (msg.push === 'publication' && msg.channel === channel) {
      publications.push(msg);
      for (const check of [...checks]) check();
    }
    if (msg.id !== undefined) replies.get(msg.id)?.(msg);
  });
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`native /ws client did not open within ${WAIT_MS} ms`)), WAIT_MS);
    ws.once('open', () => {
      clearTimeout(timer);
      resolve(undefined);
    });
    ws.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
  /**
   * Sends a command and resolves with its reply.
   *
   * @param {Record<string, unknown>} cmd
   */
  const call = (cmd) =>
    new Promise((resolve, reject) => {
      const id = nextId++;
      const timer = setTimeout(() => reject(new Error(`no reply to ${JSON.stringify(cmd)} within ${WAIT_MS} ms`)), WAIT_MS);
      replies.set(id, (reply) => {
        clearTimeout(timer);
        replies.delete(id);
        if (reply.error) reject(new Error(`${cmd.cmd} ${channel}: ${JSON.stringify(reply.error)}`));
        else resolve(reply.result);
      });
      ws.send(JSON.stringify({ id, ...cmd }));
    });
  const connectReply = /** @type {{client: string}} */ (await call({ cmd: 'connect', name: 'native-test' }));
  await call({ cmd: 'subscribe', channel });
  return {
    ws,
    call,
    client: connectReply.client,
    publications,
    /** @returns {unknown[]} the data of the publications so far */
    data: () => publications.map((p) => p.data ?? { b64: p.b64 }),
    /**
     * @param {number} n
     * @returns {Promise<void>}
     */
    waitForCount(n, timeoutMs = WAIT_MS) {
      if (publications.length >= n) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const check = () => {
          if (publications.length < n) return;
          clearTimeout(timer);
          checks.splice(checks.indexOf(check), 1);
          resolve();
        };
        const timer = setTimeout(() => {
          checks.splice(checks.indexOf(check), 1);
          reject(new Error(`timed out after ${timeoutMs} ms: native /ws subscriber of ${channel} got ${publications.length} of ${n} publications: ${JSON.stringify(publications).slice(0, 500)}`));
        }, timeoutMs);
        checks.push(check);
      });
    },
  };
}

/**
 * An SSE reader (`/sse?channel=…`) of `channel`; resolves once its `subscribed` event came,
 * and records the data of every publication. Closed when the test ends.
 *
 * @param {import('node:test').TestContext} t
 * @param {string} url
 * @param {string} channel
 */
export async function sseReader(t, url, channel) {
  const source = new EventSource(`${url}/sse?channel=${encodeURIComponent(channel)}`);
  t.after(() => source.close());
  /** @type {any[]} */
  const publications = [];
  /** @type {Array<() => void>} */
  const checks = [];
  source.addEventListener('message', (e) => {
    publications.push(JSON.parse(e.data));
    for (const check of [...checks]) check();
  });
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`SSE stream of ${channel} sent no "subscribed" event within ${WAIT_MS} ms`)), WAIT_MS);
    source.addEventListener('subscribed', () => {
      clearTimeout(timer);
      resolve(undefined);
    });
  });
  return {
    publications,
    /** @returns {unknown[]} */
    data: () => publications.map((p) => p.data ?? { b64: p.b64 }),
    /**
     * @param {number} n
     * @returns {Promise<void>}
     */
    waitForCount(n, timeoutMs = WAIT_MS) {
      if (publications.length >= n) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const check = () => {
          if (publications.length < n) return;
          clearTimeout(timer);
          checks.splice(checks.indexOf(check), 1);
          resolve();
        };
        const timer = setTimeout(() => {
          checks.splice(checks.indexOf(check), 1);
          reject(new Error(`timed out after ${timeoutMs} ms: SSE reader of ${channel} got ${publications.length} of ${n} publications: ${JSON.stringify(publications).slice(0, 500)}`));
        }, timeoutMs);
        checks.push(check);
      });
    },
  };
}

/**
 * Waits `ms` (only to let something that must *not* happen have its chance; never to wait
 * for something that must happen).
 *
 * @param {number} ms
 */
export function settle(ms) {
  return new Promise((r) => setTimeout(r, ms));
}
