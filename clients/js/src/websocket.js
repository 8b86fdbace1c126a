/**
 * @module websocket
 *
 * The WebSocket transport (`/ws`, subprotocol `switchboard.json`): JSON commands with ids
 * and deadlines, pushes, subscriptions with recovery (`since`) and subscription tokens,
 * the connection token in `connect` and a new one in `refresh` when the server pushes
 * `refresh`, answers to server pings, a periodic `ping` command for the round-trip time,
 * and a watchdog that drops a server silent for longer than its `ping_interval` plus a
 * margin. Reports loss to the host once (with the refusal, for 4003, 4501, 4503); never
 * reconnects by itself.
 */

import { CloseCode, isRefusalCode, isTerminalCloseCode, refusalErrorCode } from './codes.js';
import { base64ToBytes, utf8Length } from './encoding.js';
import { SwitchboardError, fromWireError } from './errors.js';
import { toJson, toPublication, toPublishResult } from './publication.js';

/** The subprotocol asking for JSON frames. */
export const JSON_SUBPROTOCOL = 'switchboard.json';

/**
 * @typedef {object} PendingCommand
 * @property {(result: unknown) => void} resolve
 * @property {(error: SwitchboardError) => void} reject
 * @property {ReturnType<typeof setTimeout>} timer
 */

/**
 * @param {string} baseUrl
 * @param {string} path
 * @returns {string}
 */
export function webSocketUrl(baseUrl, path) {
  return `${baseUrl.replace(/^http/, 'ws')}${path.startsWith('/') ? path : `/${path}`}`;
}

/** @typedef {import('./transport.js').Transport} Transport */

/** @implements {Transport} */
export class WebSocketTransport {
  /**
   * @param {import('./transport.js').TransportHost} host
   */
  constructor(host) {
    /** @type {import('./transport.js').TransportName} */
    this.name = 'websocket';
    /** @private */
    this._host = host;
    /** @private @type {WebSocket | null} */
    this._ws = null;
    /** @private */
    this._nextId = 1;
    /** @private @type {Map<number, PendingCommand>} */
    this._pending = new Map();
    /** @private set once closed or lost: no callback reaches the host after it */
    this._done = false;
    /** @private */
    this._opened = false;
    /** @private @type {{code: number, reason: string, reconnect: boolean} | null} */
    this._disconnectPush = null;
    /** @private @type {ReturnType<typeof setTimeout> | undefined} */
    this._watchdog = undefined;
    /** @private */
    this._silenceLimitMs = 0;
    /** @private @type {ReturnType<typeof setInterval> | undefined} */
    this._pinger = undefined;
    /** @private @type {(error: SwitchboardError) => void} settles a pending `open()` on close */
    this._rejectOpen = () => {};
    /** @private @type {Set<string>} channels whose subscribe waits for its token */
    this._fetchingToken = new Set();
    /** @private @type {ReturnType<typeof setTimeout> | undefined} next try of a failed refresh */
    this._refreshRetry = undefined;
    /** @private bumped by every `refresh` push: an older refresh in progress gives up */
    this._refreshRound = 0;
  }

  /** Whether it was closed, dropped or lost. */
  get closed() {
    return this._done;
  }

  /** @returns {Promise<import('./transport.js').OpenResult>} */
  open() {
    const { config } = this._host;
    const WS = config.WebSocket;
    if (!WS) return Promise.reject(new SwitchboardError('transport_failed', 'no WebSocket implementation'));
    return new Promise((resolve, reject) => {
      this._rejectOpen = reject;
      // The token first (the host fetched it just before: this is the kept one), so that
      // `connect` follows the upgrade at once, well within the server's connect timeout.
      this._host.tokens.get().then((token) => {
        if (this._done) return;
        let ws;
        try {
          ws = new WS(webSocketUrl(config.baseUrl, config.paths.websocket), [JSON_SUBPROTOCOL]);
        } catch (err) {
          reject(new SwitchboardError('transport_failed', `WebSocket: ${String(err)}`, { cause: err }));
          return;
        }
        this._ws = ws;
        ws.onopen = () => {
          if (this._done) return;
          if (ws.protocol && ws.protocol !== JSON_SUBPROTOCOL) {
            reject(new SwitchboardError('transport_failed', `WebSocket: server chose subprotocol ${ws.protocol}`));
            this.close();
            return;
          }
          /** @type {Record<string, unknown>} */
          const fields = { name: config.name, version: config.version };
          if (config.info !== undefined) fields.info = config.info;
          if (token !== undefined) fields.token = token;
          this._request('connect', fields).then(
            (raw) => {
              if (this._done) return;
              const result = /** @type {{client?: unknown, ping_interval?: unknown, user?: unknown}} */ (raw ?? {});
              const pingInterval = typeof result.ping_interval === 'number' ? result.ping_interval : 25;
              this._silenceLimitMs = pingInterval * 1000 + config.serverSilenceMarginMs;
              this._opened = true;
              this._host.authenticated(typeof result.user === 'string' ? result.user : null);
              this._feedWatchdog();
              this._startPinging();
              resolve({ client: typeof result.client === 'string' ? result.client : null });
            },
            (err) => {
              // A refusal (`unauthorized`, `token_expired`…) goes to the host as is: it is not
              // the transport's failure, and the close that follows adds nothing.
              reject(err);
              this.close();
            },
          );
        };
        ws.onmessage = (event) => this._onFrame(event.data);
        ws.onerror = () => {
          // The close event follows with the code; nothing to add here.
        };
        ws.onclose = (event) => this._onClose(event, reject);
      }, reject);
    });
  }

  /**
   * @private
   * @param {CloseEvent} event
   * @param {(error: SwitchboardError) => void} reject settles `open()` when not open yet
   */
  _onClose(event, reject) {
    if (this._done) return;
    const push = this._disconnectPush;
    const code = push?.code ?? event.code;
    const refusal = refusalErrorCode(code);
    const reason = push?.reason || event.reason;
    if (!this._opened) {
      this._finish();
      this._rejectPending('connection_lost', 'the WebSocket closed');
      reject(
        refusal
          ? new SwitchboardError(refusal, `the server refused the connection (code ${code}${reason ? `, ${reason}` : ''})`)
          : new SwitchboardError(
              'transport_failed',
              `WebSocket closed before it was ready (code ${event.code}${event.reason ? `, ${event.reason}` : ''})`,
            ),
      );
      return;
    }
    const reconnect = push ? push.reconnect && !isTerminalCloseCode(code) : !isTerminalCloseCode(code);
    /** @type {import('./transport.js').TransportLoss} */
    const loss = { code, reason, reconnect };
    if (refusal) loss.error = new SwitchboardError(refusal, `the server closed the connection: ${reason || `code ${code}`}`);
    this._lose(loss);
  }

  /** @param {import('./subscription.js').Subscription} sub */
  subscribe(sub) {
    if (this._done || sub.state !== 'subscribing') return;
    if (!sub._tokens.configured) {
      this._subscribe(sub, undefined);
      return;
    }
    // A new subscription token for every subscribe: the last one may have expired since.
    if (this._fetchingToken.has(sub.channel)) return;
    this._fetchingToken.add(sub.channel);
    sub._tokens.fresh().then(
      (token) => {
        this._fetchingToken.delete(sub.channel);
        if (this._done || sub.state !== 'subscribing' || this._host.subscription(sub.channel) !== sub) return;
        this._subscribe(sub, token);
      },
      (err) => {
        this._fetchingToken.delete(sub.channel);
        if (this._done || this._host.subscription(sub.channel) !== sub) return;
        this._host.subscribeFailed(sub, err);
      },
    );
  }

  /**
   * @private
   * @param {import('./subscription.js').Subscription} sub
   * @param {string | undefined} token the subscription token
   */
  _subscribe(sub, token) {
    /** @type {Record<string, unknown>} */
    const fields = { channel: sub.channel };
    if (sub.position) fields.since = { offset: sub.position.offset, epoch: sub.position.epoch };
    if (sub.joinLeave) fields.join_leave = true;
    if (token !== undefined) fields.token = token;
    this._request('subscribe', fields).then(
      (raw) => {
        if (this._done || this._host.subscription(sub.channel) !== sub) return;
        const r = /** @type {Record<string, unknown>} */ (raw ?? {});
        if (typeof r.offset !== 'number' || typeof r.epoch !== 'string') {
          this._host.subscribeFailed(sub, new SwitchboardError('bad_reply', `subscribe reply without offset/epoch`));
          return;
        }
        const context = { channel: sub.channel, epoch: r.epoch };
        const publications = (Array.isArray(r.publications) ? r.publications : [])
          .map((p) => toPublication(p, context))
          .filter((p) => p !== null);
        this._host.subscribed(sub, {
          position: { offset: r.offset, epoch: r.epoch },
          recovered: typeof r.recovered === 'boolean' ? r.recovered : undefined,
          publications,
        });
      },
      (err) => {
        if (this._done || this._host.subscription(sub.channel) !== sub) return;
        if (err.code === 'timeout') {
          // A subscribe without an answer leaves the stream in an unknown state: start over.
          this._lose({ code: 0, reason: `subscribe ${sub.channel}: no answer`, reconnect: true });
          return;
        }
        this._host.subscribeFailed(sub, err);
      },
    );
  }

  /** @param {import('./subscription.js').Subscription} sub */
  unsubscribe(sub) {
    if (this._done) return;
    // Errors (e.g. not_subscribed when the subscribe had failed) change nothing here.
    this._request('unsubscribe', { channel: sub.channel }).catch(() => {});
  }

  /**
   * @param {string} channel
   * @param {import('./publication.js').PublishBody} body
   * @returns {Promise<import('./publication.js').PublishResult>}
   */
  async publish(channel, body) {
    return toPublishResult(await this._request('publish', { channel, ...body }));
  }

  /**
   * @param {string} cmd
   * @param {Record<string, unknown>} fields
   * @returns {Promise<unknown>}
   */
  request(cmd, fields) {
    return this._request(cmd, fields);
  }

  close() {
    if (this._done) return;
    this._finish();
    this._rejectPending('disconnected', 'the client disconnected');
    this._rejectOpen(new SwitchboardError('disconnected', 'closed while opening'));
    try {
      this._ws?.close(CloseCode.normal, 'client closed');
    } catch {
      // Closing a socket that never opened may throw in some implementations; it is gone.
    }
  }

  drop() {
    if (this._done) return;
    try {
      this._ws?.close();
    } catch {
      // As in close().
    }
    this._lose({ code: 0, reason: 'dropped by _debugDropTransport()', reconnect: true });
  }

  // === internals ===

  /**
   * @private
   * @param {string} cmd
   * @param {Record<string, unknown>} fields
   * @returns {Promise<unknown>}
   */
  _request(cmd, fields) {
    if (this._done || !this._ws) {
      return Promise.reject(new SwitchboardError('connection_lost', `${cmd}: the WebSocket is closed`));
    }
    const id = this._nextId++;
    const { timeoutMs } = this._host.config;
    /** @type {string} */
    let text;
    try {
      text = toJson({ id, cmd, ...fields });
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this._pending.delete(id);
        reject(new SwitchboardError('timeout', `${cmd}: no reply within ${timeoutMs} ms`));
      }, timeoutMs);
      this._pending.set(id, { resolve, reject, timer });
      this._sendText(text);
    });
  }

  /**
   * @private
   * @param {Record<string, unknown>} message
   */
  _send(message) {
    this._sendText(JSON.stringify(message));
  }

  /**
   * @private
   * @param {string} text
   */
  _sendText(text) {
    const ws = this._ws;
    if (!ws || this._done) return;
    try {
      ws.send(text);
      this._host.bytes(utf8Length(text), 0);
    } catch (err) {
      this._lose({ code: 0, reason: `send failed: ${String(err)}`, reconnect: true });
    }
  }

  /**
   * @private
   * @param {unknown} data
   */
  _onFrame(data) {
    if (this._done) return;
    if (typeof data !== 'string') {
      this._host.error(new SwitchboardError('bad_reply', 'binary frame on a JSON connection'));
      return;
    }
    this._host.bytes(0, utf8Length(data));
    this._feedWatchdog();
    /** @type {Record<string, unknown>} */
    let msg;
    try {
      msg = JSON.parse(data);
    } catch {
      this._host.error(new SwitchboardError('bad_reply', `frame is not JSON: ${data.slice(0, 200)}`));
      return;
    }
    if (typeof msg.id === 'number') {
      const pending = this._pending.get(msg.id);
      if (!pending) return; // timed out already
      this._pending.delete(msg.id);
      clearTimeout(pending.timer);
      if (msg.error) pending.reject(fromWireError(msg.error));
      else pending.resolve(msg.result);
      return;
    }
    if (msg.error) {
      this._host.error(fromWireError(msg.error));
      return;
    }
    this._onPush(msg);
  }

  /**
   * @private
   * @param {Record<string, unknown>} msg
   */
  _onPush(msg) {
    const host = this._host;
    switch (msg.push) {
      case 'publication': {
        const pub = toPublication(msg);
        if (pub) host.publication(pub);
        break;
      }
      case 'join':
      case 'leave':
        if (typeof msg.channel === 'string' && msg.info && typeof msg.info === 'object') {
          host.presence(msg.push, msg.channel, /** @type {import('./publication.js').ClientInfo} */ (msg.info));
        }
        break;
      case 'message':
        host.message(typeof msg.b64 === 'string' ? { bytes: base64ToBytes(msg.b64) } : { data: msg.data });
        break;
      case 'ping':
        this._send({ cmd: 'pong' });
        break;
      case 'refresh':
        this._refresh(++this._refreshRound);
        break;
      case 'disconnect':
        this._disconnectPush = {
          code: typeof msg.code === 'number' ? msg.code : 0,
          reason: typeof msg.reason === 'string' ? msg.reason : '',
          reconnect: msg.reconnect !== false,
        };
        break;
      default:
        host.error(new SwitchboardError('bad_reply', `unknown push ${JSON.stringify(msg.push)}`));
    }
  }

  /**
   * Answers a `refresh` push: a new token from the token function, sent with `refresh`. A
   * function that fails is asked again after the token source's backoff delay, until the
   * server gives up on the token (close 4003, after which the host reconnects with a new
   * one). A fixed string cannot be renewed: the server closes with 4003 at its `exp`, and
   * the host reports `token_expired`.
   *
   * @private
   * @param {number} round the push being answered
   */
  _refresh(round) {
    const { tokens } = this._host;
    if (this._done || round !== this._refreshRound || !tokens.refreshable) return;
    clearTimeout(this._refreshRetry);
    tokens
      .fresh()
      .then((token) => {
        if (this._done || round !== this._refreshRound) return undefined;
        return this._request('refresh', { token: /** @type {string} */ (token) }).then(() => {
          if (!this._done) this._host.authenticated(undefined);
        });
      })
      .catch((err) => {
        if (this._done || round !== this._refreshRound) return;
        // A refused token closes the connection (4501, or 4003): the close reports it.
        if (isRefusalCode(err.code) || err.code === 'connection_lost') return;
        this._host.error(err);
        this._refreshRetry = setTimeout(() => this._refresh(round), Math.max(0, tokens.retryAt - Date.now()));
      });
  }

  /** @private */
  _feedWatchdog() {
    if (!this._opened || this._done) return;
    clearTimeout(this._watchdog);
    this._watchdog = setTimeout(() => {
      try {
        this._ws?.close();
      } catch {
        // The socket is being abandoned either way.
      }
      this._lose({
        code: 0,
        reason: `server silent for more than ${this._silenceLimitMs} ms`,
        reconnect: true,
      });
    }, this._silenceLimitMs);
  }

  /** @private */
  _startPinging() {
    const ping = () => {
      const started = performance.now();
      this._request('ping', {}).then(
        () => {
          if (!this._done) this._host.rtt(performance.now() - started);
        },
        (err) => {
          if (err.code === 'timeout') this.drop();
        },
      );
    };
    ping();
    this._pinger = setInterval(ping, this._host.config.pingIntervalMs);
  }

  /**
   * @private
   * @param {import('./transport.js').TransportLoss} loss
   */
  _lose(loss) {
    if (this._done) return;
    if (!this._opened) {
      // Lost while opening: that is a failure to open, reported through open().
      this._rejectOpen(loss.error ?? new SwitchboardError('transport_failed', `WebSocket: ${loss.reason}`));
      this.close();
      return;
    }
    this._finish();
    this._rejectPending('connection_lost', `connection lost before the reply (${loss.reason || `code ${loss.code}`})`);
    this._host.lost(loss);
  }

  /** @private */
  _finish() {
    this._done = true;
    clearTimeout(this._watchdog);
    clearTimeout(this._refreshRetry);
    clearInterval(this._pinger);
    const ws = this._ws;
    if (ws) {
      ws.onmessage = null;
      ws.onopen = null;
    }
  }

  /**
   * @private
   * @param {import('./errors.js').SwitchboardErrorCode} code
   * @param {string} message
   */
  _rejectPending(code, message) {
    for (const [id, pending] of this._pending) {
      clearTimeout(pending.timer);
      pending.reject(new SwitchboardError(code, `${message} (command ${id})`));
    }
    this._pending.clear();
  }
}
