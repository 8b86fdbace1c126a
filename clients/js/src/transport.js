/**
 * @module transport
 *
 * The seam between the client ({@link module:switchboard}) and its transports
 * (`websocket.js`, `sse.js`, `poll.js`). A transport moves frames and maps the wire onto the
 * host's callbacks; the host owns subscriptions, positions, dedup, the publish queue and
 * reconnects. A transport never reconnects by itself: it reports loss once and goes quiet.
 */

import { SwitchboardError } from './errors.js';

/** @typedef {'websocket' | 'sse' | 'long-poll' | 'poll'} TransportName */

/** The transports, in the default order of the fallback chain. */
export const TRANSPORT_NAMES = /** @type {const} */ (['websocket', 'sse', 'long-poll', 'poll']);

/**
 * @typedef {object} TransportPaths
 * @property {string} websocket path of the WebSocket endpoint
 * @property {string} sse path of the SSE endpoint
 * @property {string} poll path of the polling endpoint (also used for HTTP publishes)
 */

/**
 * The resolved options transports read (see the `Switchboard` constructor for each).
 *
 * @typedef {object} TransportConfig
 * @property {string} baseUrl http(s) base, without a trailing slash
 * @property {TransportPaths} paths
 * @property {typeof WebSocket | undefined} WebSocket
 * @property {typeof EventSource | undefined} EventSource
 * @property {typeof fetch} fetch
 * @property {string} name
 * @property {string} version
 * @property {unknown} info
 * @property {number} timeoutMs
 * @property {number} pingIntervalMs
 * @property {number} serverSilenceMarginMs
 * @property {number} longPollWaitSeconds
 * @property {number} pollIntervalMs
 * @property {number} pollLimit
 */

/**
 * What `open()` resolves with.
 *
 * @typedef {object} OpenResult
 * @property {string | null} client the client id, when the transport learns it
 */

/**
 * How a transport ended. Reported once, through {@link TransportHost.lost}.
 *
 * @typedef {object} TransportLoss
 * @property {number} code WebSocket close code, or the `code` of a `disconnect` event; 0 when
 *   an HTTP request failed
 * @property {string} reason
 * @property {boolean} reconnect false when the server said not to come back
 * @property {boolean} [failedToOpen] the transport never opened a stream (an SSE or polling
 *   transport that started idle, with no channel): the host tries the next transport at once
 * @property {SwitchboardError} [error] set when the connection itself was refused or could
 *   not authenticate (`unauthorized`, `token_expired`, `forbidden`, `origin_not_allowed`,
 *   `token_unavailable`, `backend_unavailable`, see `endsAttempt` in codes.js): the host then
 *   neither falls back to another transport nor reconnects blindly
 */

/**
 * The result of subscribing, as a transport reports it.
 *
 * @typedef {object} SubscribeResult
 * @property {import('./cursor.js').StreamPosition} position where the subscription stands
 *   once `publications` are delivered
 * @property {boolean} [recovered] the server's answer to a recovery (absent without one)
 * @property {import('./publication.js').Publication[]} [publications] missed publications,
 *   oldest first
 */

/**
 * The host's side of the seam: what a transport may call.
 *
 * @typedef {object} TransportHost
 * @property {TransportConfig} config
 * @property {import('./token.js').TokenSource} tokens the connection token: `get()` before
 *   every connection, stream or request that carries it, `fresh()` on a `refresh` push
 * @property {(user: string | null | undefined) => void} authenticated the server accepted the
 *   connection token (a WebSocket `connect` or `refresh`, an SSE stream, a poll): `user` is
 *   who it says (null: anonymous; undefined: unchanged)
 * @property {() => import('./subscription.js').Subscription[]} subscriptions the current
 *   subscriptions, in the order they were made
 * @property {(channel: string) => import('./subscription.js').Subscription | undefined} subscription
 * @property {(sub: import('./subscription.js').Subscription, result: SubscribeResult) => void} subscribed
 * @property {(sub: import('./subscription.js').Subscription, error: SwitchboardError) => void} subscribeFailed
 * @property {(pub: import('./publication.js').Publication) => void} publication
 * @property {(channel: string, position: import('./cursor.js').StreamPosition) => void} unrecovered
 * @property {(type: 'join' | 'leave', channel: string, info: import('./publication.js').ClientInfo) => void} presence
 * @property {(message: {data?: unknown, bytes?: Uint8Array}) => void} message
 * @property {(loss: TransportLoss) => void} lost
 * @property {(ms: number) => void} rtt
 * @property {(sent: number, received: number) => void} bytes
 * @property {(error: SwitchboardError) => void} error
 */

/**
 * A transport instance lives for one connection: opened once, then closed or lost.
 *
 * @typedef {object} Transport
 * @property {TransportName} name
 * @property {boolean} closed true once closed, dropped or lost: it reports nothing more
 * @property {() => Promise<OpenResult>} open resolves when ready to carry subscriptions and
 *   publishes; rejects when it cannot open, with the server's refusal as is when it refused
 *   the connection (see {@link TransportLoss.error})
 * @property {(sub: import('./subscription.js').Subscription) => void} subscribe starts
 *   delivering `sub`'s channel (no-op when already delivering it)
 * @property {(sub: import('./subscription.js').Subscription) => void} unsubscribe
 * @property {(channel: string, body: import('./publication.js').PublishBody) => Promise<import('./publication.js').PublishResult>} publish
 * @property {(cmd: string, fields: Record<string, unknown>) => Promise<unknown>} request a
 *   command with a reply (WebSocket only; others reject with `unsupported`)
 * @property {() => void} close ends it without reporting loss
 * @property {() => void} drop ends it as a network failure would: reports a reconnectable loss
 */

/**
 * Rejects with a `timeout` error unless `promise` settles within `ms`. The original
 * promise's later rejection is swallowed (its owner is told through `onTimeout`).
 *
 * @template T
 * @param {Promise<T>} promise
 * @param {number} ms
 * @param {string} what described in the error message
 * @param {() => void} [onTimeout]
 * @returns {Promise<T>}
 */
export function withTimeout(promise, ms, what, onTimeout) {
  promise.catch(() => {});
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      onTimeout?.();
      reject(new SwitchboardError('timeout', `${what}: no answer within ${ms} ms`));
    }, ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (err) => {
        clearTimeout(timer);
        reject(err);
      },
    );
  });
}

/**
 * Rejects every command of a transport that is not WebSocket.
 *
 * @param {TransportName} name
 * @param {string} cmd
 * @returns {Promise<never>}
 */
export function unsupportedCommand(name, cmd) {
  return Promise.reject(
    new SwitchboardError(
      'unsupported',
      `${cmd} needs the WebSocket transport; this client is connected over ${name}, ` +
        'which has no client endpoint for it',
    ),
  );
}
