/**
 * @module helpers
 *
 * What the Node tests share: a client wired to Node's WebSocket/EventSource implementations
 * with short reconnect delays, event waits with deadlines, a publication collector, and the
 * server's HTTP API for publishing. Every wait here is on an event and has a timeout.
 */

import WebSocket from 'ws';
import { EventSource } from 'eventsource';
import { Switchboard } from '../../../clients/js/src/switchboard.js';

export { Switchboard };

/** Default deadline of one wait. */
export const WAIT_MS = 10_000;

let counter = 0;

/**
 * A channel name no other test uses.
 *
 * @param {string} prefix
 */
export function uniqueChannel(prefix) {
  counter += 1;
  return `test:${prefix}-${process.pid}-${counter}-${Math.random().toString(36).slice(2, 8)}`;
}

/**
 * A client for `url` using the `ws` and `eventsource` packages when Node lacks the globals,
 * with reconnect delays short enough for tests. Disconnects it when the test ends.
 *
 * @param {import('node:test').TestContext} t
 * @param {string} url
 * @param {import('../../../clients/js/src/switchboard.js').SwitchboardOptions} [options]
 */
export function makeClient(t, url, options = {}) {
  const client = new Switchboard(url, {
    WebSocket: globalThis.WebSocket ?? /** @type {any} */ (WebSocket),
    EventSource: globalThis.EventSource ?? /** @type {any} */ (EventSource),
    minReconnectDelayMs: 50,
    maxReconnectDelayMs: 500,
    pollIntervalMs: 100,
    longPollWaitSeconds: 10,
    timeoutMs: 5_000,
    ...options,
  });
  t.after(() => client.disconnect());
  return client;
}

/**
 * Resolves with the next `event` payload that satisfies `predicate`.
 *
 * @template T
 * @param {{on: (event: any, fn: (payload: any) => void) => () => void}} emitter
 * @param {string} event
 * @param {{predicate?: (payload: any) => boolean, timeoutMs?: number, what?: string}} [options]
 * @returns {Promise<any>}
 */
export function waitFor(emitter, event, { predicate = () => true, timeoutMs = WAIT_MS, what = event } = {}) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
    }, timeoutMs);
    const off = emitter.on(event, (payload) => {
      if (!predicate(payload)) return;
      clearTimeout(timer);
      off();
      resolve(payload);
    });
  });
}

/**
 * Resolves once the client is connected (over `transport`, if given).
 *
 * @param {Switchboard} client
 * @param {string} [transport]
 */
export function connected(client, transport) {
  if (client.state === 'connected' && (!transport || client.transport === transport)) {
    return Promise.resolve({ state: 'connected', transport: client.transport });
  }
  return waitFor(client, 'state', {
    predicate: (e) => e.state === 'connected' && (!transport || e.transport === transport),
    what: `connected${transport ? ` over ${transport}` : ''}`,
  });
}

/**
 * Records every publication of `sub` and lets a test wait for a count.
 *
 * @param {import('../../../clients/js/src/subscription.js').Subscription} sub
 */
export function collect(sub) {
  /** @type {import('../../../clients/js/src/publication.js').Publication[]} */
  const items = [];
  /** @type {Array<() => void>} */
  const checks = [];
  sub.on('publication', (pub) => {
    items.push(pub);
    for (const check of [...checks]) check();
  });
  return {
    items,
    /** @returns {unknown[]} */
    data: () => items.map((p) => p.data),
    /**
     * @param {number} n
     * @param {number} [timeoutMs]
     * @returns {Promise<void>}
     */
    waitForCount(n, timeoutMs = WAIT_MS) {
      if (items.length >= n) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const check = () => {
          if (items.length < n) return;
          clearTimeout(timer);
          checks.splice(checks.indexOf(check), 1);
          resolve();
        };
        const timer = setTimeout(() => {
          checks.splice(checks.indexOf(check), 1);
          reject(
            new Error(
              `timed out after ${timeoutMs} ms: ${items.length} of ${n} publications on ${sub.channel} ` +
                `(offsets ${items.map((p) => p.offset).join(',')})`,
            ),
          );
        }, timeoutMs);
        checks.push(check);
      });
    },
  };
}

/**
 * Publishes through the server HTTP API (`POST /api/publish`).
 *
 * @param {string} url
 * @param {string} channel
 * @param {unknown} data
 * @returns {Promise<{offset: number, epoch: string}>}
 */
export async function apiPublish(url, channel, data) {
  const response = await fetch(`${url}/api/publish`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ channel, data }),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`POST /api/publish: HTTP ${response.status} ${text}`);
  return JSON.parse(text);
}

/**
 * Asserts that publications have consecutive offsets in one epoch.
 *
 * @param {import('node:assert')} assert
 * @param {import('../../../clients/js/src/publication.js').Publication[]} items
 */
export function assertConsecutive(assert, items) {
  for (let i = 1; i < items.length; i++) {
    assert.equal(items[i].epoch, items[0].epoch, `epoch of publication ${i}`);
    assert.equal(items[i].offset, items[i - 1].offset + 1, `offset after ${items[i - 1].offset}`);
  }
}
