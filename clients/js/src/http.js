/**
 * @module http
 *
 * The HTTP side of the SSE and polling transports: JSON over `fetch` with a deadline, byte
 * counting and the server's error bodies turned into {@link SwitchboardError}s; the position
 * look-up (`GET /poll` without a cursor) that starts a channel "from now" when it joins a
 * stream whose other channels resume from a cursor; publishing over `POST /poll`, in order;
 * the round-trip-time probe of transports whose own requests are held open; and, when a
 * request or an SSE stream fails, the look-ups that tell a refused connection or a channel
 * this connection may not read from a transport that does not work. Every request carries
 * the connection token, if any, as `Authorization: Bearer`.
 */

import { parseCursor } from './cursor.js';
import { utf8Length } from './encoding.js';
import { SwitchboardError, fromWireError } from './errors.js';
import { toJson, toPublishResult } from './publication.js';
import { redact } from './token.js';

/**
 * @param {string} baseUrl http(s) base without trailing slash
 * @param {string} path
 * @param {Array<[string, string]>} [params]
 * @returns {string}
 */
export function buildUrl(baseUrl, path, params = []) {
  const query = new URLSearchParams(params).toString();
  return `${baseUrl}${path.startsWith('/') ? path : `/${path}`}${query ? `?${query}` : ''}`;
}

/**
 * Sends one request and parses the JSON reply.
 *
 * Rejects with `invalid_data` when `body` has no JSON form, `timeout` past `timeoutMs`, the
 * abort reason (or `disconnected`) when `signal` aborts, `connection_lost` when the network
 * fails, and the server's code (and `status`) on a non-2xx reply.
 *
 * @param {import('./transport.js').TransportHost} host
 * @param {string} url
 * @param {{method?: 'GET' | 'POST', body?: unknown, timeoutMs: number, signal?: AbortSignal, token?: string}} request
 *   `token`: the connection token, sent as `Authorization: Bearer`
 * @returns {Promise<unknown>}
 */
export async function requestJson(host, url, { method = 'GET', body, timeoutMs, signal, token }) {
  if (signal?.aborted) throw abortError(signal, method, url);
  const text = body === undefined ? undefined : toJson(body);
  const controller = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort();
  }, timeoutMs);
  const onAbort = () => controller.abort();
  signal?.addEventListener('abort', onAbort);
  try {
    host.bytes(utf8Length(url) + (text === undefined ? 0 : utf8Length(text)), 0);
    let response;
    let replyText;
    try {
      const fetchImpl = host.config.fetch; // detached: some fetch implementations reject a foreign `this`
      /** @type {Record<string, string>} */
      const headers = text === undefined ? { accept: 'application/json' } : { 'content-type': 'application/json' };
      if (token) headers.authorization = `Bearer ${token}`;
      response = await fetchImpl(url, {
        method,
        headers,
        body: text,
        signal: controller.signal,
        cache: 'no-store',
      });
      replyText = await response.text();
    } catch (err) {
      if (timedOut) throw new SwitchboardError('timeout', `${method} ${url}: no answer within ${timeoutMs} ms`);
      if (signal?.aborted) throw abortError(signal, method, url);
      throw new SwitchboardError('connection_lost', `${method} ${url}: ${redact(describe(err), token)}`, {
        cause: err,
      });
    }
    host.bytes(0, utf8Length(replyText));
    /** @type {unknown} */
    let json;
    try {
      json = replyText === '' ? null : JSON.parse(replyText);
    } catch {
      json = undefined;
    }
    if (!response.ok) {
      const error = json && typeof json === 'object' && 'error' in json ? json.error : json;
      if (error && typeof error === 'object' && 'code' in error) throw fromWireError(error, response.status);
      throw new SwitchboardError(
        `http_${response.status}`,
        `${method} ${url}: HTTP ${response.status} ${replyText.slice(0, 200)}`,
        { status: response.status },
      );
    }
    if (json === undefined) {
      throw new SwitchboardError('bad_reply', `${method} ${url}: reply is not JSON: ${replyText.slice(0, 200)}`);
    }
    return json;
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener('abort', onAbort);
  }
}

/**
 * @typedef {object} PollReply
 * @property {string} cursor
 * @property {unknown[]} publications
 * @property {string[]} unrecovered
 * @property {boolean} more
 */

/**
 * Checks the shape of a `GET /poll` reply.
 *
 * @param {unknown} raw
 * @returns {PollReply}
 */
export function toPollReply(raw) {
  const r = /** @type {Record<string, unknown>} */ (raw ?? {});
  if (typeof r.cursor !== 'string') {
    throw new SwitchboardError('bad_reply', `poll reply without cursor: ${JSON.stringify(raw).slice(0, 200)}`);
  }
  return {
    cursor: r.cursor,
    publications: Array.isArray(r.publications) ? r.publications : [],
    unrecovered: Array.isArray(r.unrecovered) ? r.unrecovered.filter((c) => typeof c === 'string') : [],
    more: r.more === true,
  };
}

/**
 * The current positions of `channels` (`GET /poll` without a cursor).
 *
 * @param {import('./transport.js').TransportHost} host
 * @param {readonly string[]} channels
 * @param {AbortSignal} [signal]
 * @param {string} [token] the connection token
 * @returns {Promise<{positions: Map<string, import('./cursor.js').StreamPosition>, elapsedMs: number}>}
 */
export async function fetchPositions(host, channels, signal, token) {
  const { config } = host;
  const url = buildUrl(config.baseUrl, config.paths.poll, channels.map((c) => ['channel', c]));
  const started = performance.now();
  const reply = toPollReply(await requestJson(host, url, { timeoutMs: config.timeoutMs, signal, token }));
  const elapsedMs = performance.now() - started;
  const list = parseCursor(reply.cursor);
  if (list.length !== channels.length) {
    throw new SwitchboardError('bad_reply', `cursor ${reply.cursor} does not match ${channels.length} channels`);
  }
  return { positions: new Map(channels.map((c, i) => [c, list[i]])), elapsedMs };
}

/**
 * Why a request or stream for `channels` failed, asked of `GET /poll` (no cursor: it only
 * reads positions, through the same authentication and `subscribe` rules as `/sse`): the
 * server's error, or null when that request works (the failure was the transport's).
 *
 * @param {import('./transport.js').TransportHost} host
 * @param {readonly string[]} channels
 * @param {string | undefined} token
 * @param {AbortSignal} [signal]
 * @returns {Promise<SwitchboardError | null>}
 */
export async function probe(host, channels, token, signal) {
  try {
    await fetchPositions(host, channels, signal, token);
    return null;
  } catch (err) {
    return err instanceof SwitchboardError && err.status !== undefined ? err : null;
  }
}

/**
 * After a `permission_denied` for a set of channels: asks about each one alone, and fails
 * the subscriptions the server will not let this connection read (through
 * `host.subscribeFailed`, which drops them). A subscription with a token is told that its
 * token could not be sent: subscription tokens travel in the WebSocket `subscribe` command
 * only.
 *
 * @param {import('./transport.js').TransportHost} host
 * @param {readonly string[]} channels
 * @param {string | undefined} token the connection token
 * @param {string} transport named in the message of a subscription with a token
 * @param {AbortSignal} [signal]
 * @returns {Promise<number>} how many subscriptions failed
 */
export async function failDenied(host, channels, token, transport, signal) {
  let failed = 0;
  for (const channel of channels) {
    const error = await probe(host, [channel], token, signal);
    if (signal?.aborted) break;
    const sub = host.subscription(channel);
    if (!error || error.code !== 'permission_denied' || !sub) continue;
    failed++;
    host.subscribeFailed(
      sub,
      sub._tokens.configured
        ? new SwitchboardError(
            'permission_denied',
            `${error.message} (the subscription token was not sent: subscription tokens need the ` +
              `WebSocket transport; over ${transport}, the connection token's channels claim must name ${channel})`,
            { status: error.status },
          )
        : error,
    );
  }
  return failed;
}

/**
 * The error of a request aborted through `signal`: its reason when that is one of ours.
 *
 * @param {AbortSignal} signal
 * @param {string} method
 * @param {string} url
 * @returns {SwitchboardError}
 */
function abortError(signal, method, url) {
  return signal.reason instanceof SwitchboardError
    ? signal.reason
    : new SwitchboardError('disconnected', `${method} ${url}: aborted`);
}

/**
 * @param {unknown} err
 * @returns {string}
 */
function describe(err) {
  if (err instanceof Error) {
    const cause = /** @type {{cause?: unknown}} */ (err).cause;
    return cause instanceof Error ? `${err.message} (${cause.message})` : err.message;
  }
  return String(err);
}

/**
 * Publishes over HTTP (`POST /poll`), for the SSE and polling transports. Publishes run one
 * after the other so they land in the order they were made, as over a WebSocket.
 */
export class HttpPublisher {
  /**
   * @param {import('./transport.js').TransportHost} host
   */
  constructor(host) {
    /** @private */
    this._host = host;
    /** @private @type {Promise<unknown>} */
    this._tail = Promise.resolve();
    /** @private */
    this._controller = new AbortController();
  }

  /**
   * @param {string} channel
   * @param {import('./publication.js').PublishBody} body
   * @returns {Promise<import('./publication.js').PublishResult>}
   */
  publish(channel, body) {
    const run = async () => {
      const { config } = this._host;
      const token = await this._host.tokens.get();
      const started = performance.now();
      const reply = await requestJson(this._host, buildUrl(config.baseUrl, config.paths.poll), {
        method: 'POST',
        body: { channel, ...body },
        timeoutMs: config.timeoutMs,
        signal: this._controller.signal,
        token,
      });
      this._host.rtt(performance.now() - started);
      return toPublishResult(reply);
    };
    const result = this._tail.then(run, run);
    this._tail = result.catch(() => {});
    return result;
  }

  /**
   * Rejects the publishes in flight or waiting with `code`: `connection_lost` when the
   * transport failed (they may or may not have landed), `disconnected` on `close()`.
   *
   * @param {'connection_lost' | 'disconnected'} code
   */
  close(code) {
    this._controller.abort(new SwitchboardError(code, 'the connection ended before the publish was answered'));
  }
}

/**
 * Measures the round-trip time every `pingIntervalMs` with a cursor-less `GET /poll` on one
 * subscribed channel (no side effect: it only reads positions). For the SSE and long-poll
 * transports, whose own requests are held open and so cannot be timed.
 */
export class HttpPinger {
  /**
   * @param {import('./transport.js').TransportHost} host
   * @param {() => string | undefined} channel a channel to ask about, if any
   */
  constructor(host, channel) {
    /** @private */
    this._host = host;
    /** @private */
    this._channel = channel;
    /** @private */
    this._controller = new AbortController();
    /** @private @type {ReturnType<typeof setInterval> | undefined} */
    this._timer = undefined;
  }

  start() {
    if (this._timer !== undefined) return;
    this._timer = setInterval(() => this.ping(), this._host.config.pingIntervalMs);
  }

  /** Measures once now. Failures are ignored: the stream itself reports a dead server. */
  ping() {
    const channel = this._channel();
    if (channel === undefined) return;
    const signal = this._controller.signal;
    this._host.tokens
      .get()
      .then((token) => fetchPositions(this._host, [channel], signal, token))
      .then(
        ({ elapsedMs }) => {
          if (!signal.aborted) this._host.rtt(elapsedMs);
        },
        () => {},
      );
  }

  stop() {
    clearInterval(this._timer);
    this._controller.abort();
  }
}
