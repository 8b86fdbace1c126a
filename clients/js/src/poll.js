/**
 * @module poll
 *
 * The polling transports over `GET /poll`: long-poll (`wait` > 0, the server holds the
 * request until a publication arrives) and short poll (`wait=0`, one request every
 * `pollIntervalMs`). Each request names the subscribed channels and the cursor built from
 * their positions, so a change of subscriptions just changes the next request; the request
 * in flight is aborted and nothing is lost. Publishes go over `POST /poll`.
 *
 * Every request carries the connection token as `Authorization: Bearer`, asked of the token
 * source each time, so a token from a function is renewed before it expires (the server
 * holds a long-poll no longer than its token lives). A refusal (401) goes to the host as is;
 * channels the connection may not read (403) fail their subscriptions alone.
 */

import { endsAttempt, refusalCloseCode } from './codes.js';
import { formatCursor, parseCursor } from './cursor.js';
import { SwitchboardError } from './errors.js';
import {
  HttpPinger,
  HttpPublisher,
  buildUrl,
  failDenied,
  fetchPositions,
  requestJson,
  toPollReply,
} from './http.js';
import { toPublication } from './publication.js';
import { tokenSubject } from './token.js';
import { unsupportedCommand } from './transport.js';

/** @typedef {import('./transport.js').Transport} Transport */

/** @implements {Transport} */
export class PollTransport {
  /**
   * @param {import('./transport.js').TransportHost} host
   * @param {'long-poll' | 'poll'} name long-poll holds each request, poll does not
   */
  constructor(host, name) {
    /** @type {import('./transport.js').TransportName} */
    this.name = name;
    /** @private */
    this._host = host;
    /** @private bumped on every restart; replies of older loops are dropped */
    this._generation = 0;
    /** @private @type {string[]} channels of the current loop's requests */
    this._channels = [];
    /** @private @type {AbortController | null} */
    this._controller = null;
    /** @private @type {(() => void) | null} ends the current pause between short polls */
    this._wake = null;
    /** @private */
    this._restartScheduled = false;
    /** @private whether any request of this transport succeeded */
    this._everOpened = false;
    /** @private */
    this._done = false;
    /** @private */
    this._publisher = new HttpPublisher(host);
    /** @private */
    this._pinger = new HttpPinger(host, () => this._channels[0]);
    /** @private whether open() resolved */
    this._opened = false;
    /** @private @type {(error: SwitchboardError) => void} settles a pending open() */
    this._rejectOpen = () => {};
  }

  /** Whether it was closed, dropped or lost. */
  get closed() {
    return this._done;
  }

  /** @returns {Promise<import('./transport.js').OpenResult>} */
  open() {
    const generation = ++this._generation;
    return new Promise((resolve, reject) => {
      this._rejectOpen = reject;
      /** @param {import('./transport.js').OpenResult} result */
      const opened = (result) => {
        if (this._done) return;
        this._opened = true;
        if (this.name === 'long-poll') {
          this._pinger.ping();
          this._pinger.start();
        }
        resolve(result);
      };
      void this._loop(generation, { resolve: opened, reject });
    });
  }

  /** @param {import('./subscription.js').Subscription} sub */
  subscribe(sub) {
    if (!this._done && !this._channels.includes(sub.channel)) this._scheduleRestart();
  }

  /** @param {import('./subscription.js').Subscription} sub */
  unsubscribe(sub) {
    if (!this._done && this._channels.includes(sub.channel)) this._scheduleRestart();
  }

  /**
   * @param {string} channel
   * @param {import('./publication.js').PublishBody} body
   */
  publish(channel, body) {
    return this._publisher.publish(channel, body);
  }

  /**
   * @param {string} cmd
   * @returns {Promise<never>}
   */
  request(cmd) {
    return unsupportedCommand(this.name, cmd);
  }

  close() {
    if (this._done) return;
    this._done = true;
    this._rejectOpen(new SwitchboardError('disconnected', 'closed while opening'));
    this._generation++;
    this._controller?.abort();
    this._wake?.();
    this._publisher.close('disconnected');
    this._pinger.stop();
  }

  drop() {
    this._lose({ code: 0, reason: 'dropped by _debugDropTransport()', reconnect: true });
  }

  // === internals ===

  /** @private */
  _scheduleRestart() {
    if (this._restartScheduled) return;
    this._restartScheduled = true;
    // Coalesces the subscribe/unsubscribe calls of one task into one new request.
    setTimeout(() => {
      this._restartScheduled = false;
      if (this._done) return;
      const generation = ++this._generation;
      this._controller?.abort();
      this._wake?.();
      this._loop(generation, null);
    }, 0);
  }

  /**
   * Polls until superseded, closed or failed. `first` is settled by the first reply (or
   * at once when there is no channel to poll).
   *
   * @private
   * @param {number} generation
   * @param {{resolve: (r: import('./transport.js').OpenResult) => void, reject: (e: unknown) => void} | null} first
   */
  async _loop(generation, first) {
    const host = this._host;
    const { config } = host;
    const controller = new AbortController();
    this._controller = controller;
    const current = () => !this._done && generation === this._generation;
    let opened = false;
    try {
      while (current()) {
        const subs = host.subscriptions();
        const channels = subs.map((s) => s.channel);
        this._channels = channels;
        if (channels.length === 0) break;
        const token = await host.tokens.get();
        if (!current()) return;

        // A cursor names every channel: a fresh channel beside resumed ones starts from its
        // current position, looked up first.
        /** @type {Map<string, import('./cursor.js').StreamPosition>} */
        const passed = new Map();
        for (const s of subs) if (s.position) passed.set(s.channel, s.position);
        /** @type {string | null} */
        let cursor = null;
        let wait = 0;
        let started = 0;
        /** @type {unknown} */
        let raw;
        try {
          if (passed.size > 0 && passed.size < channels.length) {
            const fresh = channels.filter((c) => !passed.has(c));
            const { positions } = await fetchPositions(host, fresh, controller.signal, token);
            if (!current()) return;
            for (const [c, p] of positions) passed.set(c, p);
          }
          cursor = passed.size > 0 ? formatCursor(channels.map((c) => /** @type {any} */ (passed.get(c)))) : null;
          wait = cursor === null || this.name === 'poll' ? 0 : config.longPollWaitSeconds;
          /** @type {Array<[string, string]>} */
          const params = channels.map((c) => ['channel', c]);
          if (cursor !== null) params.push(['cursor', cursor]);
          params.push(['wait', String(wait)], ['limit', String(config.pollLimit)]);

          started = performance.now();
          raw = await requestJson(host, buildUrl(config.baseUrl, config.paths.poll, params), {
            timeoutMs: wait * 1000 + config.timeoutMs,
            signal: controller.signal,
            token,
          });
        } catch (err) {
          // Channels this connection may not read fail alone; the others go on polling.
          if (current() && err instanceof SwitchboardError && err.code === 'permission_denied') {
            const failed = await failDenied(host, channels, token, this.name, controller.signal);
            if (!current()) return;
            if (failed > 0) continue;
          }
          throw err;
        }
        if (!current()) return;
        host.authenticated(token === undefined ? null : tokenSubject(token));
        if (wait === 0) host.rtt(performance.now() - started);
        const reply = toPollReply(raw);
        const positions = parseCursor(reply.cursor);
        if (positions.length !== channels.length) {
          throw new SwitchboardError('bad_reply', `cursor ${reply.cursor} does not match ${channels.length} channels`);
        }
        this._deliver(channels, positions, reply, cursor !== null);
        if (!current()) return; // a listener dropped or closed the transport
        this._everOpened = true;
        if (!opened) {
          opened = true;
          first?.resolve({ client: null });
        }
        if (reply.more) continue;
        if (this.name === 'poll') await this._pause(config.pollIntervalMs);
      }
      if (!opened) first?.resolve({ client: null });
    } catch (err) {
      if (!current()) {
        first?.reject(new SwitchboardError('disconnected', 'closed while opening'));
        return;
      }
      const message = err instanceof Error ? err.message : String(err);
      // A refusal, or no token to be had: the host's to handle, not a failure of polling.
      const refusal = err instanceof SwitchboardError && endsAttempt(err.code) ? err : null;
      if (!opened && first) {
        first.reject(refusal ?? new SwitchboardError('transport_failed', `${this.name}: ${message}`, { cause: err }));
        return;
      }
      /** @type {import('./transport.js').TransportLoss} */
      const loss = {
        code: refusal ? refusalCloseCode(refusal.code) : 0,
        reason: message,
        reconnect: true,
        failedToOpen: !this._everOpened,
      };
      if (refusal) loss.error = refusal;
      this._lose(loss);
    }
  }

  /**
   * Hands one reply to the host, channel by channel.
   *
   * @private
   * @param {string[]} channels
   * @param {import('./cursor.js').StreamPosition[]} positions
   * @param {import('./http.js').PollReply} reply
   * @param {boolean} resumed whether the request carried a cursor
   */
  _deliver(channels, positions, reply, resumed) {
    const host = this._host;
    /** @type {Map<string, import('./publication.js').Publication[]>} */
    const byChannel = new Map();
    for (const raw of reply.publications) {
      const pub = toPublication(raw);
      if (!pub) continue;
      const list = byChannel.get(pub.channel);
      if (list) list.push(pub);
      else byChannel.set(pub.channel, [pub]);
    }
    channels.forEach((channel, i) => {
      const sub = host.subscription(channel);
      if (!sub) return;
      const position = positions[i];
      const lost = reply.unrecovered.includes(channel);
      const publications = byChannel.get(channel) ?? [];
      if (sub.state === 'subscribing') {
        host.subscribed(sub, { position, recovered: resumed ? !lost : undefined, publications });
        return;
      }
      if (lost) host.unrecovered(channel, position);
      for (const pub of publications) host.publication(pub);
    });
  }

  /**
   * @private
   * @param {number} ms
   * @returns {Promise<void>}
   */
  _pause(ms) {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this._wake = done;
    });
  }

  /**
   * @private
   * @param {import('./transport.js').TransportLoss} loss
   */
  _lose(loss) {
    if (this._done) return;
    if (!this._opened) {
      // Lost while opening: that is a failure to open, reported through open().
      this._rejectOpen(loss.error ?? new SwitchboardError('transport_failed', `${this.name}: ${loss.reason}`));
      this.close();
      return;
    }
    this._publisher.close('connection_lost');
    this.close();
    this._host.lost(loss);
  }
}
