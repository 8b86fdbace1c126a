/**
 * @module switchboard
 *
 * The switchboard client for browsers and Node ≥ 20: one {@link Switchboard} per server,
 * carrying any number of {@link Subscription}s over the first transport that works —
 * WebSocket, then SSE (publishing over HTTP), then long-poll, then short poll. It reconnects
 * with jittered exponential backoff, resubscribes from each subscription's last position so
 * nothing is missed or repeated, queues publishes made while disconnected, and measures the
 * round-trip time and the bytes on the wire. With a `token` function it authenticates every
 * transport, answers the server's `refresh` pushes (renews SSE and polling tokens before they
 * expire), reconnects with a fresh token after an expiry, and stops for good when the server
 * refuses the connection. Plain ES module, no dependency.
 *
 * ```js
 * import { Switchboard } from '/client/switchboard.js';
 * const client = new Switchboard('https://rt.example.com', {
 *   token: async () => (await fetch('/rt-token')).text(),
 * });
 * const sub = client.subscribe('news');
 * sub.on('publication', (pub) => console.log(pub.offset, pub.data));
 * client.connect();
 * await client.publish('news', { title: 'hello' });
 * ```
 */

import { backoffDelay } from './backoff.js';
import { CloseCode, endsAttempt, isValidChannel, refusalCloseCode } from './codes.js';
import { isAhead } from './cursor.js';
import { Emitter } from './emitter.js';
import { SwitchboardError } from './errors.js';
import { PollTransport } from './poll.js';
import { publishBody, toPublication } from './publication.js';
import { SseTransport } from './sse.js';
import { Subscription } from './subscription.js';
import { TokenSource } from './token.js';
import { TRANSPORT_NAMES, withTimeout } from './transport.js';
import { WebSocketTransport } from './websocket.js';

export {
  CloseCode,
  ErrorCode,
  ClientErrorCode,
  RECONNECT_CODES_FIRST,
  TERMINAL_CODES_FIRST,
  TERMINAL_CODES_LAST,
  isTerminalCloseCode,
  isValidChannel,
  isRefusalCode,
  endsAttempt,
  refusalCloseCode,
  refusalErrorCode,
} from './codes.js';
export { SwitchboardError } from './errors.js';
export { Subscription } from './subscription.js';
export { TRANSPORT_NAMES } from './transport.js';
export { backoffDelay } from './backoff.js';
export { MAX_EXPIRED_IN_A_ROW, RENEW_BEFORE_MS, tokenExpiry, tokenSubject } from './token.js';

/** Version of this client, sent in `connect`. */
export const VERSION = '0.1.0';

/** @typedef {import('./transport.js').TransportName} TransportName */
/** @typedef {import('./transport.js').TransportPaths} TransportPaths */
/** @typedef {import('./cursor.js').StreamPosition} StreamPosition */
/** @typedef {import('./publication.js').Publication} Publication */
/** @typedef {import('./publication.js').PublishResult} PublishResult */
/** @typedef {import('./publication.js').ClientInfo} ClientInfo */
/** @typedef {import('./subscription.js').SubscriptionEvents} SubscriptionEvents */
/** @typedef {import('./subscription.js').SubscribedEvent} SubscribedEvent */
/** @typedef {import('./subscription.js').UnrecoveredEvent} UnrecoveredEvent */
/** @typedef {import('./token.js').TokenOption} TokenOption */
/** @typedef {import('./token.js').TokenContext} TokenContext */

/** @typedef {'disconnected' | 'connecting' | 'connected'} ConnectionState */

/**
 * @typedef {object} StateEvent
 * @property {ConnectionState} state
 * @property {ConnectionState} previous
 * @property {TransportName | null} transport the transport in use (null unless connected)
 * @property {number} [code] close code of the connection that just ended, if any (4003,
 *   4501, 4503 for a refusal met over SSE or polling too)
 * @property {string} [reason] why the connection ended, if it did
 * @property {SwitchboardError} [error] on the `disconnected` state that ends a refused
 *   connection: the refusal (`unauthorized`, `forbidden`, `origin_not_allowed`, or
 *   `token_expired` when no new token helps); the client does not reconnect by itself
 */

/**
 * Events of a {@link Switchboard}.
 *
 * @typedef {object} ClientEvents
 * @property {StateEvent} state the connection state or transport changed
 * @property {{rtt: number, transport: TransportName}} rtt a round-trip time was measured (ms)
 * @property {{data?: unknown, bytes?: Uint8Array}} message a message addressed to this
 *   connection's user
 * @property {{error: SwitchboardError, transport: TransportName | null}} error something
 *   failed that the client handles by itself (a transport that would not open, a bad frame,
 *   the `token` function failing: `token_unavailable`, a token refused as expired), or the
 *   refusal that stops it (then also in the `disconnected` state event)
 */

/**
 * @typedef {object} SwitchboardOptions
 * @property {TransportName[]} [transports] transports to try, in order (default all four:
 *   websocket, sse, long-poll, poll)
 * @property {Partial<TransportPaths>} [paths] endpoint paths (default `/ws`, `/sse`, `/poll`)
 * @property {typeof WebSocket} [WebSocket] WebSocket constructor (default
 *   `globalThis.WebSocket`; in Node 20 pass the `ws` package's); without one, the WebSocket
 *   transport is skipped
 * @property {typeof EventSource} [EventSource] EventSource constructor (default
 *   `globalThis.EventSource`; in Node pass the `eventsource` package's); without one, SSE is
 *   skipped
 * @property {typeof fetch} [fetch] fetch function (default `globalThis.fetch`)
 * @property {TokenOption} [token] the connection JWT, or a function (possibly async) that
 *   fetches one from the application's backend, called with `{}`. A function is called
 *   before connecting, on the server's `refresh` push, before an SSE or polling token
 *   expires and after the server refused one as expired; it has `timeoutMs` to answer.
 *   Sent in the WebSocket `connect` command, as `?token=` to `/sse` (EventSource cannot set
 *   headers) and as `Authorization: Bearer` to `/poll`. Default: none (anonymous)
 * @property {string} [name] client name sent in `connect`
 * @property {string} [version] client version sent in `connect`
 * @property {unknown} [info] JSON sent in `connect`, shown to others in presence (WebSocket)
 * @property {number} [timeoutMs] deadline of every command, publish and transport opening
 * @property {number} [minReconnectDelayMs] bound of the first reconnect's random delay;
 *   each failed attempt doubles the bound
 * @property {number} [maxReconnectDelayMs] cap of the reconnect delay bound
 * @property {number} [pingIntervalMs] how often to measure the round-trip time
 * @property {number} [serverSilenceMarginMs] a WebSocket server silent for its
 *   `ping_interval` plus this is taken for dead
 * @property {number} [maxQueuedPublishes] publishes kept while disconnected; past it,
 *   `publish` rejects with `queue_full`
 * @property {number} [longPollWaitSeconds] how long the server may hold a long-poll (0–60)
 * @property {number} [pollIntervalMs] pause between two short polls
 * @property {number} [pollLimit] most publications in one poll reply (1–1000)
 */

/**
 * @typedef {object} QueuedPublish
 * @property {string} channel
 * @property {import('./publication.js').PublishBody} body
 * @property {(result: PublishResult) => void} resolve
 * @property {(error: unknown) => void} reject
 */

/**
 * @typedef {object} HistoryOptions
 * @property {number} [limit] most publications (server default 100, at most 1000)
 * @property {number} [after] read forwards from this offset (exclusive), oldest first
 * @property {number} [before] read backwards from this offset (exclusive), newest first
 */

/**
 * @typedef {object} HistoryPage
 * @property {Publication[]} publications in the order asked for: oldest first, or newest
 *   first with `before`
 * @property {number} offset the channel's current offset
 * @property {string} epoch the channel's current epoch
 */

/**
 * A connection to one switchboard server.
 *
 * @extends {Emitter<ClientEvents>}
 */
export class Switchboard extends Emitter {
  /**
   * @param {string} url the server's http(s) base, e.g. `http://127.0.0.1:8000`
   * @param {SwitchboardOptions} [options]
   */
  constructor(
    url,
    {
      transports = [...TRANSPORT_NAMES],
      paths = {},
      WebSocket = globalThis.WebSocket,
      EventSource = globalThis.EventSource,
      fetch = globalThis.fetch,
      token = undefined,
      name = 'switchboard-js',
      version = VERSION,
      info = undefined,
      timeoutMs = 10_000,
      minReconnectDelayMs = 500,
      maxReconnectDelayMs = 20_000,
      pingIntervalMs = 10_000,
      serverSilenceMarginMs = 10_000,
      maxQueuedPublishes = 100,
      longPollWaitSeconds = 25,
      pollIntervalMs = 1_000,
      pollLimit = 100,
    } = {},
  ) {
    super();
    const base = new URL(url);
    if (base.protocol !== 'http:' && base.protocol !== 'https:') {
      throw new SwitchboardError('bad_request', `the server URL must be http(s)://, not ${base.protocol}`);
    }
    for (const t of transports) {
      if (!TRANSPORT_NAMES.includes(t)) throw new SwitchboardError('bad_request', `unknown transport ${t}`);
    }
    if (typeof fetch !== 'function' && transports.some((t) => t !== 'websocket')) {
      throw new SwitchboardError('bad_request', 'no fetch function: pass options.fetch');
    }
    /** @private @type {readonly TransportName[]} */
    this._transports = Object.freeze([...transports]);
    /** @private @type {import('./transport.js').TransportConfig} */
    this._config = {
      baseUrl: `${base.origin}${base.pathname.replace(/\/+$/, '')}`,
      paths: { websocket: '/ws', sse: '/sse', poll: '/poll', ...paths },
      WebSocket,
      EventSource,
      fetch,
      name,
      version,
      info,
      timeoutMs,
      pingIntervalMs,
      serverSilenceMarginMs,
      longPollWaitSeconds,
      pollIntervalMs,
      pollLimit,
    };
    /** @private */
    this._minReconnectDelayMs = minReconnectDelayMs;
    /** @private */
    this._maxReconnectDelayMs = maxReconnectDelayMs;
    /** @private */
    this._maxQueuedPublishes = maxQueuedPublishes;
    /** @private the connection token */
    this._tokens = new TokenSource(token, {
      timeoutMs,
      what: 'connection token',
      onRenewalError: (error) => this._emit('error', { error, transport: this._transportName }),
    });

    /** @type {ConnectionState} */
    this.state = 'disconnected';
    /** The client id the server gave this connection (WebSocket and SSE), or null. @type {string | null} */
    this.clientId = null;
    /**
     * The user id of the connection (the token's `sub`) once the server accepted its token,
     * or null (anonymous, or not connected). Over WebSocket the server says it in the
     * `connect` reply; over SSE and polling, which do not echo it, it is the `sub` claim of
     * the token the server accepted.
     *
     * @type {string | null}
     */
    this.user = null;
    /** Last measured round-trip time in ms, or null before the first. @type {number | null} */
    this.rtt = null;
    /**
     * Bytes on the wire as far as JavaScript can see them: WebSocket message payloads, SSE
     * event data, HTTP request URLs and bodies, HTTP response bodies; not headers, framing
     * or compression.
     */
    this.bytes = { sent: 0, received: 0 };
    /** Publications dropped because they had been delivered already. */
    this.duplicatesDropped = 0;

    /** @private @type {Map<string, Subscription>} in the order subscribed */
    this._subs = new Map();
    /** @private @type {QueuedPublish[]} */
    this._queue = [];
    /** @private @type {import('./transport.js').Transport | null} the connected transport */
    this._transport = null;
    /** @private @type {import('./transport.js').Transport | null} the transport being opened */
    this._opening = null;
    /** @private @type {TransportName | null} */
    this._transportName = null;
    /** @private index in `_transports` of the transport last opened */
    this._transportIndex = 0;
    /** @private bumped by every connection attempt and by disconnect(): stale attempts stop */
    this._run = 0;
    /** @private failed attempts since the last successful connection */
    this._attempts = 0;
    /** @private @type {ReturnType<typeof setTimeout> | undefined} */
    this._reconnectTimer = undefined;
  }

  /** The name of the transport in use, or null when not connected. */
  get transport() {
    return this._transportName;
  }

  /** The subscriptions, in the order they were made. */
  get subscriptions() {
    return [...this._subs.values()];
  }

  /**
   * @param {string} channel
   * @returns {Subscription | undefined}
   */
  getSubscription(channel) {
    return this._subs.get(channel);
  }

  /**
   * Starts connecting (no-op unless disconnected). Then reconnects until `disconnect()` or a
   * refusal. A `token` function is called afresh.
   */
  connect() {
    if (this.state !== 'disconnected') return;
    this._attempts = 0;
    this._tokens.reset();
    this._setState('connecting', null);
    void this._attempt(0);
  }

  /**
   * Closes the connection (code 1000) and stops reconnecting. Subscriptions and queued
   * publishes are kept for the next `connect()`; commands waiting for a reply reject.
   */
  disconnect() {
    if (this.state === 'disconnected') return;
    this._run++;
    clearTimeout(this._reconnectTimer);
    const t = this._transport ?? this._opening;
    this._transport = null;
    this._opening = null;
    t?.close();
    this._resetSubscriptions();
    this._setState('disconnected', null, { code: CloseCode.normal, reason: 'disconnect() called' });
  }

  /**
   * Subscribes to `channel`. Publications are delivered in offset order with no duplicate;
   * after a reconnect the client resubscribes from the last one delivered.
   *
   * @param {string} channel
   * @param {{joinLeave?: boolean, since?: StreamPosition | null, token?: TokenOption}} [options]
   *   `joinLeave`: also receive `join`/`leave` events (WebSocket and SSE); `since`: recover
   *   from this position instead of starting from now; `token`: a subscription JWT (its
   *   `channel` claim is this channel), or a function called with `{channel}` before every
   *   subscribe and resubscribe (WebSocket only: SSE and polling have no place for it, so
   *   there the connection token's `channels` claim must grant the channel)
   * @returns {Subscription}
   * @throws {SwitchboardError} `invalid_channel`, `already_subscribed` when this client
   *   has a subscription to `channel` (see {@link Switchboard.getSubscription}), or
   *   `bad_request` for a `token` that is neither a string nor a function
   */
  subscribe(channel, { joinLeave = false, since = null, token = undefined } = {}) {
    if (!isValidChannel(channel)) {
      throw new SwitchboardError('invalid_channel', `invalid channel name ${JSON.stringify(channel)}`);
    }
    if (this._subs.has(channel)) {
      throw new SwitchboardError('already_subscribed', `already subscribed to ${channel}`);
    }
    const sub = new Subscription(this, channel, { joinLeave, since, token, timeoutMs: this._config.timeoutMs });
    this._subs.set(channel, sub);
    this._transport?.subscribe(sub);
    return sub;
  }

  /**
   * Publishes `data` (any JSON value, or a `Uint8Array` sent as binary) to `channel`. While
   * disconnected, the publish waits in a bounded queue and is sent on reconnect.
   *
   * @param {string} channel
   * @param {unknown} data
   * @returns {Promise<PublishResult>} where it landed; rejects with the server's error code,
   *   `timeout`, `connection_lost` (the connection dropped before the reply: it may or may
   *   not have been published) or `queue_full`
   */
  publish(channel, data) {
    /** @type {import('./publication.js').PublishBody} */
    let body;
    try {
      if (!isValidChannel(channel)) {
        throw new SwitchboardError('invalid_channel', `invalid channel name ${JSON.stringify(channel)}`);
      }
      body = publishBody(data);
    } catch (err) {
      return Promise.reject(err);
    }
    if (this._transport) return this._transport.publish(channel, body);
    if (this._queue.length >= this._maxQueuedPublishes) {
      return Promise.reject(
        new SwitchboardError(
          'queue_full',
          `not connected and ${this._queue.length} publishes already wait (maxQueuedPublishes)`,
        ),
      );
    }
    return new Promise((resolve, reject) => this._queue.push({ channel, body, resolve, reject }));
  }

  /**
   * Who is subscribed to `channel` (WebSocket only).
   *
   * @param {string} channel
   * @returns {Promise<ClientInfo[]>}
   */
  async presence(channel) {
    const result = /** @type {{clients?: unknown}} */ (await this._command('presence', { channel }));
    return Array.isArray(result?.clients) ? /** @type {ClientInfo[]} */ (result.clients) : [];
  }

  /**
   * How many connections and distinct users are subscribed to `channel` (WebSocket only).
   *
   * @param {string} channel
   * @returns {Promise<{clients: number, users: number}>}
   */
  async presenceCount(channel) {
    const result = /** @type {{clients?: unknown, users?: unknown}} */ (
      await this._command('presence_count', { channel })
    );
    return {
      clients: typeof result?.clients === 'number' ? result.clients : 0,
      users: typeof result?.users === 'number' ? result.users : 0,
    };
  }

  /**
   * A page of `channel`'s history (WebSocket only; there is no client HTTP endpoint for it).
   *
   * @param {string} channel
   * @param {HistoryOptions} [options]
   * @returns {Promise<HistoryPage>}
   */
  async history(channel, { limit, after, before } = {}) {
    /** @type {Record<string, unknown>} */
    const fields = { channel };
    if (limit !== undefined) fields.limit = limit;
    if (after !== undefined) fields.after = after;
    if (before !== undefined) fields.before = before;
    const r = /** @type {Record<string, unknown>} */ ((await this._command('history', fields)) ?? {});
    if (typeof r.offset !== 'number' || typeof r.epoch !== 'string' || !Array.isArray(r.publications)) {
      throw new SwitchboardError('bad_reply', `history reply without publications/offset/epoch`);
    }
    const context = { channel, epoch: r.epoch };
    return {
      publications: r.publications.map((p) => toPublication(p, context)).filter((p) => p !== null),
      offset: r.offset,
      epoch: r.epoch,
    };
  }

  /**
   * Calls `method` on the application's backend (the server's rpc hook, `docs/hooks.md`)
   * and resolves with the data it answered (WebSocket only). Rejects with the server's
   * error: `permission_denied` when the backend refused (its message says why),
   * `backend_unavailable` when it did not answer in time, `not_available` when the server
   * has no rpc hook.
   *
   * @param {string} method 1 to 255 bytes
   * @param {unknown} [data] any JSON value
   * @returns {Promise<unknown>}
   */
  async rpc(method, data = null) {
    if (typeof method !== 'string' || method.length === 0) {
      throw new SwitchboardError('bad_request', 'rpc: method must be a non-empty string');
    }
    const r = /** @type {{data?: unknown} | null} */ (await this._command('rpc', { method, data }));
    return r?.data ?? null;
  }

  /**
   * Ends the current transport as a network failure would, to exercise reconnects and
   * recovery in tests and demos. Not part of the stable API.
   */
  _debugDropTransport() {
    if (this._transport) {
      this._transport.drop();
    } else if (this._opening) {
      // A failure while opening: nothing more may be delivered from it, even from the batch
      // being delivered right now.
      this._resetSubscriptions();
      this._opening.drop();
    }
  }

  // === subscriptions ===

  /**
   * Called by {@link Subscription.unsubscribe}.
   *
   * @param {Subscription} sub
   */
  _removeSubscription(sub) {
    if (this._subs.get(sub.channel) === sub) this._subs.delete(sub.channel);
    sub.state = 'unsubscribed';
    sub._early = [];
    this._transport?.unsubscribe(sub);
    sub._dispatch('unsubscribed', { channel: sub.channel });
  }

  /** @private */
  _resetSubscriptions() {
    for (const sub of this._subs.values()) {
      sub.state = 'subscribing';
      sub._early = [];
    }
  }

  /**
   * @private
   * @param {Subscription} sub
   * @param {import('./transport.js').SubscribeResult} result
   */
  _subscribed(sub, { position, recovered, publications = [] }) {
    if (this._subs.get(sub.channel) !== sub || sub.state !== 'subscribing') return;
    const fresh = sub.position === null;
    sub.state = 'subscribed';
    sub._storeRetries = 0;
    sub._tokens.accepted();
    if (fresh) sub.position = position;
    sub._dispatch('subscribed', {
      channel: sub.channel,
      offset: position.offset,
      epoch: position.epoch,
      recovered: fresh ? undefined : recovered,
    });
    if (recovered === false && !fresh) this._unrecovered(sub.channel, position);
    for (const pub of publications) this._deliver(sub, pub);
    if (isAhead(sub.position, position) && sub.state === 'subscribed') sub.position = position;
    const early = sub._early;
    sub._early = [];
    for (const pub of early) this._deliver(sub, pub);
  }

  /**
   * @private
   * @param {Subscription} sub
   * @param {SwitchboardError} error
   */
  _subscribeFailed(sub, error) {
    if (this._subs.get(sub.channel) !== sub) return;
    if (
      error.code === 'store_unavailable' ||
      error.code === 'token_unavailable' ||
      (error.code === 'token_expired' && sub._tokens.expired())
    ) {
      // The server's store is down for a moment, the subscription token function failed, or
      // the server refused its token as expired (a new one is fetched, a few times in a
      // row at most): try again on this connection, backing off.
      sub._dispatch('error', { channel: sub.channel, error });
      const attempt = ++sub._storeRetries;
      const delay = Math.min(10000, 500 * 2 ** Math.min(attempt, 5)) * (0.5 + Math.random() / 2);
      setTimeout(() => {
        if (this._subs.get(sub.channel) === sub && sub.state === 'subscribing') this._transport?.subscribe(sub);
      }, delay);
      return;
    }
    if (error.code === 'unavailable' || error.code === 'internal') {
      // The server is going away or hit a bug: keep the subscription for the next connection.
      sub._dispatch('error', { channel: sub.channel, error });
      return;
    }
    this._subs.delete(sub.channel);
    sub.state = 'unsubscribed';
    sub._early = [];
    sub._dispatch('error', { channel: sub.channel, error });
    sub._dispatch('unsubscribed', { channel: sub.channel });
  }

  /**
   * @private
   * @param {Publication} pub
   */
  _publication(pub) {
    const sub = this._subs.get(pub.channel);
    if (!sub) return;
    // Pushes that overtake the subscribe reply wait for it (bounded by its deadline).
    if (sub.state === 'subscribing') sub._early.push(pub);
    else this._deliver(sub, pub);
  }

  /**
   * Delivers `pub` unless it was delivered already; moves the position.
   *
   * @private
   * @param {Subscription} sub
   * @param {Publication} pub
   */
  _deliver(sub, pub) {
    if (sub.state !== 'subscribed') return;
    const p = sub.position;
    if (p && p.epoch === pub.epoch) {
      if (pub.offset <= p.offset) {
        this.duplicatesDropped++;
        return;
      }
      if (pub.offset > p.offset + 1) {
        sub._dispatch('error', {
          channel: sub.channel,
          error: new SwitchboardError('gap', `expected offset ${p.offset + 1}, got ${pub.offset}`),
        });
      }
    }
    sub.position = { offset: pub.offset, epoch: pub.epoch };
    sub._dispatch('publication', pub);
  }

  /**
   * @private
   * @param {string} channel
   * @param {StreamPosition} position
   */
  _unrecovered(channel, position) {
    const sub = this._subs.get(channel);
    if (!sub || sub.state === 'unsubscribed') return;
    const key = `${position.epoch}:${position.offset}`;
    if (sub._lastUnrecovered === key) return;
    sub._lastUnrecovered = key;
    sub.position = { ...position };
    sub._dispatch('unrecovered', { channel, offset: position.offset, epoch: position.epoch });
  }

  // === connection ===

  /**
   * Tries the transports from index `start`; on success the client is connected, otherwise
   * a reconnect is scheduled. The connection token is fetched first, so that no transport
   * waits for it (a WebSocket would meet the server's connect timeout) and a token function
   * that fails is not taken for a transport that fails. A refusal ends the attempt: the
   * next transport would be refused too.
   *
   * @private
   * @param {number} start
   */
  async _attempt(start) {
    const run = ++this._run;
    if (this._tokens.configured) {
      try {
        await this._tokens.get();
      } catch (err) {
        if (run !== this._run) return;
        this._refused(asSwitchboardError(err), null);
        return;
      }
      if (run !== this._run) return;
    }
    for (let i = start; i < this._transports.length; i++) {
      const name = this._transports[i];
      const t = this._createTransport(name);
      if (!t) continue;
      this._opening = t;
      /** @type {import('./transport.js').OpenResult} */
      let opened;
      try {
        opened = await withTimeout(t.open(), this._config.timeoutMs, `opening ${name}`);
      } catch (err) {
        t.close();
        if (run !== this._run) return;
        this._opening = null;
        this._resetSubscriptions();
        const error = asSwitchboardError(err);
        if (endsAttempt(error.code)) {
          this._refused(error, name);
          return;
        }
        this._emit('error', { error, transport: name });
        continue;
      }
      if (run !== this._run) {
        t.close();
        return;
      }
      this._opening = null;
      this._transportIndex = i;
      this._onOpen(t, opened);
      return;
    }
    if (run !== this._run) return;
    this._opening = null;
    this._scheduleReconnect();
  }

  /**
   * @private
   * @param {import('./transport.js').Transport} t
   * @param {import('./transport.js').OpenResult} opened
   */
  _onOpen(t, opened) {
    this._transport = t;
    this._attempts = 0;
    this.clientId = opened.client;
    this._setState('connected', t.name);
    for (const sub of [...this._subs.values()]) {
      if (sub.state === 'subscribing' && this._transport === t) t.subscribe(sub);
    }
    const queued = this._queue;
    this._queue = [];
    for (const q of queued) {
      if (this._transport === t) t.publish(q.channel, q.body).then(q.resolve, q.reject);
      else this._queue.push(q);
    }
  }

  /**
   * @private
   * @param {import('./transport.js').Transport} t
   * @param {import('./transport.js').TransportLoss} loss
   */
  _lost(t, loss) {
    if (this._transport !== t) return;
    this._transport = null;
    this._resetSubscriptions();
    const ended = { code: loss.code, reason: loss.reason };
    if (loss.error) {
      this._refused(loss.error, t.name, ended);
      return;
    }
    if (!loss.reconnect) {
      this._run++;
      const queued = this._queue;
      this._queue = [];
      for (const q of queued) {
        q.reject(new SwitchboardError('disconnected', `the server ended the connection for good: ${loss.reason}`));
      }
      this._setState('disconnected', null, ended);
      return;
    }
    this._setState('connecting', null, ended);
    if (loss.failedToOpen) {
      this._emit('error', {
        error: new SwitchboardError('transport_failed', `${t.name}: ${loss.reason}`),
        transport: t.name,
      });
      void this._attempt(this._transportIndex + 1);
    } else {
      this._scheduleReconnect();
    }
  }

  /**
   * The connection was refused, or could not authenticate: `token_unavailable` (the token
   * function failed) and `backend_unavailable` (the server could not check the token) are
   * retried with backoff; `token_expired` too, with a new token, unless the token cannot be
   * renewed (a fixed string) or was refused as expired {@link MAX_EXPIRED_IN_A_ROW} times in a
   * row; anything else (`unauthorized`, `forbidden`, `origin_not_allowed`) stops the client,
   * which reports the refusal in its `error` event and `disconnected` state and rejects the
   * queued publishes with it. Never a move to another transport.
   *
   * @private
   * @param {SwitchboardError} error
   * @param {TransportName | null} transport where it was met (null: the token function)
   * @param {{code?: number, reason?: string}} [ended] the connection that just ended
   */
  _refused(error, transport, ended = {}) {
    const retry =
      error.code === 'token_unavailable' ||
      error.code === 'backend_unavailable' ||
      (error.code === 'token_expired' && this._tokens.expired());
    this._emit('error', { error, transport });
    if (this.state === 'disconnected') return; // a listener called disconnect()
    if (retry) {
      this._setState('connecting', null, ended);
      this._scheduleReconnect();
      return;
    }
    this._run++;
    clearTimeout(this._reconnectTimer);
    this._resetSubscriptions();
    const queued = this._queue;
    this._queue = [];
    for (const q of queued) q.reject(error);
    this._setState('disconnected', null, {
      code: refusalCloseCode(error.code) || ended.code,
      reason: error.message,
      error,
    });
  }

  /** @private */
  _scheduleReconnect() {
    clearTimeout(this._reconnectTimer);
    const delay = backoffDelay(this._attempts++, this._minReconnectDelayMs, this._maxReconnectDelayMs);
    const run = this._run;
    this._reconnectTimer = setTimeout(() => {
      if (run === this._run && this.state === 'connecting') void this._attempt(0);
    }, delay);
  }

  /**
   * @private
   * @param {ConnectionState} state
   * @param {TransportName | null} transport
   * @param {{code?: number, reason?: string, error?: SwitchboardError}} [ended]
   */
  _setState(state, transport, ended = {}) {
    const previous = this.state;
    if (previous === state && this._transportName === transport) return;
    this.state = state;
    this._transportName = transport;
    if (state !== 'connected') {
      this.clientId = null;
      this.user = null;
    }
    this._emit('state', { state, previous, transport, ...ended });
  }

  /**
   * Waits until connected (at most `timeoutMs`) and sends a command with a reply.
   *
   * @private
   * @param {string} cmd
   * @param {Record<string, unknown>} fields
   * @returns {Promise<unknown>}
   */
  async _command(cmd, fields) {
    if (typeof fields.channel === 'string' && !isValidChannel(fields.channel)) {
      throw new SwitchboardError('invalid_channel', `invalid channel name ${JSON.stringify(fields.channel)}`);
    }
    if (!this._transport) {
      if (this.state === 'disconnected') {
        throw new SwitchboardError('disconnected', `${cmd}: not connected (call connect())`);
      }
      await withTimeout(
        new Promise((resolve) => {
          const off = this.on('state', ({ state }) => {
            if (state === 'connecting') return;
            off();
            resolve(undefined);
          });
        }),
        this._config.timeoutMs,
        `${cmd}: waiting for a connection`,
      );
    }
    const t = this._transport;
    if (!t) throw new SwitchboardError('disconnected', `${cmd}: not connected`);
    return t.request(cmd, fields);
  }

  /**
   * Builds a transport and the host callbacks it may use; callbacks from a transport that
   * is neither opening nor connected are ignored. Null when its constructor is missing.
   *
   * @private
   * @param {TransportName} name
   * @returns {import('./transport.js').Transport | null}
   */
  _createTransport(name) {
    const config = this._config;
    /** @type {import('./transport.js').Transport | null} */
    let self = null;
    const live = () => self !== null && !self.closed && (self === this._transport || self === this._opening);
    /** @type {import('./transport.js').TransportHost} */
    const host = {
      config,
      tokens: this._tokens,
      authenticated: (user) => {
        if (!live()) return;
        this._tokens.accepted();
        if (user !== undefined) this.user = user;
      },
      subscriptions: () => [...this._subs.values()],
      subscription: (channel) => this._subs.get(channel),
      subscribed: (sub, result) => live() && this._subscribed(sub, result),
      subscribeFailed: (sub, error) => live() && this._subscribeFailed(sub, error),
      publication: (pub) => live() && this._publication(pub),
      unrecovered: (channel, position) => live() && this._unrecovered(channel, position),
      presence: (type, channel, info) => {
        const sub = this._subs.get(channel);
        if (live() && sub?.joinLeave && sub.state !== 'unsubscribed') sub._dispatch(type, { channel, info });
      },
      message: (message) => live() && this._emit('message', message),
      lost: (loss) => self && this._lost(self, loss),
      rtt: (ms) => {
        if (!live() || !self) return;
        this.rtt = Math.round(ms * 10) / 10;
        this._emit('rtt', { rtt: this.rtt, transport: self.name });
      },
      bytes: (sent, received) => {
        this.bytes.sent += sent;
        this.bytes.received += received;
      },
      error: (error) => live() && this._emit('error', { error, transport: self?.name ?? null }),
    };
    switch (name) {
      case 'websocket':
        if (!config.WebSocket) return null;
        self = new WebSocketTransport(host);
        break;
      case 'sse':
        if (!config.EventSource) return null;
        self = new SseTransport(host);
        break;
      case 'long-poll':
      case 'poll':
        self = new PollTransport(host, name);
        break;
    }
    return self;
  }
}

/**
 * @param {unknown} err
 * @returns {SwitchboardError}
 */
function asSwitchboardError(err) {
  if (err instanceof SwitchboardError) return err;
  return new SwitchboardError('transport_failed', err instanceof Error ? err.message : String(err), { cause: err });
}
