/**
 * @module sse
 *
 * The Server-Sent Events transport (`/sse`), with publishes over `POST /poll`. An SSE stream
 * carries a fixed set of channels named in its URL, so when the subscriptions change the
 * stream is reopened with a cursor (`lastEventId`) built from each subscription's position:
 * nothing is lost between the two streams and duplicates are dropped by offset. Reconnects
 * are the host's job, not `EventSource`'s: the stream is closed on its first error.
 *
 * The connection token goes as `?token=` (an `EventSource` cannot set headers). A stream ends
 * at its token's `exp`, so a token from a function is renewed shortly before and the stream
 * reopened with it, the same way. An `EventSource` does not say why a stream failed to open,
 * so the transport asks `GET /poll` for the same channels with the same token: a refusal
 * (401) goes to the host as is, and channels the connection may not read (403) fail their
 * subscriptions alone; only a failure that request does not share is the transport's.
 */

import { endsAttempt, isTerminalCloseCode, refusalErrorCode } from './codes.js';
import { formatCursor } from './cursor.js';
import { utf8Length } from './encoding.js';
import { SwitchboardError } from './errors.js';
import { HttpPinger, HttpPublisher, buildUrl, failDenied, fetchPositions, probe } from './http.js';
import { toPublication } from './publication.js';
import { redact, timerAt, tokenSubject } from './token.js';
import { unsupportedCommand } from './transport.js';

/** Most channels one SSE stream may carry (protocol limit). */
export const MAX_SSE_CHANNELS = 32;

/**
 * Thrown by one try at a stream when some of its channels were refused (their subscriptions
 * failed): the next try goes without them.
 */
class ChannelsRefused extends Error {}

/** @typedef {import('./transport.js').Transport} Transport */

/** @implements {Transport} */
export class SseTransport {
  /**
   * @param {import('./transport.js').TransportHost} host
   */
  constructor(host) {
    /** @type {import('./transport.js').TransportName} */
    this.name = 'sse';
    /** @private */
    this._host = host;
    /** @private @type {EventSource | null} */
    this._es = null;
    /** @private bumped for every stream started; events of older streams are ignored */
    this._generation = 0;
    /** @private @type {string[]} channels of the latest stream started (opening or open) */
    this._channels = [];
    /** @private */
    this._joinLeave = false;
    /** @private whether any stream of this transport reached its `subscribed` event */
    this._everOpened = false;
    /** @private */
    this._reopenScheduled = false;
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
    /** @private @type {{cancel: () => void} | null} renews the token before the stream ends */
    this._renewal = null;
  }

  /** Whether it was closed, dropped or lost. */
  get closed() {
    return this._done;
  }

  /** @returns {Promise<import('./transport.js').OpenResult>} */
  open() {
    if (!this._host.config.EventSource) {
      return Promise.reject(new SwitchboardError('transport_failed', 'no EventSource implementation'));
    }
    return new Promise((resolve, reject) => {
      this._rejectOpen = reject;
      this._openStream(++this._generation).then((result) => {
        if (this._done) return;
        this._opened = true;
        this._pinger.ping();
        this._pinger.start();
        resolve(result);
      }, reject);
    });
  }

  /** @param {import('./subscription.js').Subscription} sub */
  subscribe(sub) {
    if (this._done) return;
    const carried = this._channels.includes(sub.channel) && (!sub.joinLeave || this._joinLeave);
    if (!carried) this._scheduleReopen();
  }

  /** @param {import('./subscription.js').Subscription} sub */
  unsubscribe(sub) {
    if (this._done) return;
    if (this._channels.includes(sub.channel)) this._scheduleReopen();
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
    this._es?.close();
    this._es = null;
    this._renewal?.cancel();
    this._publisher.close('disconnected');
    this._pinger.stop();
  }

  drop() {
    this._lose({ code: 0, reason: 'dropped by _debugDropTransport()', reconnect: true });
  }

  // === internals ===

  /** @private */
  _scheduleReopen() {
    if (this._reopenScheduled) return;
    this._reopenScheduled = true;
    // Coalesces the subscribe/unsubscribe calls of one task into one new stream.
    setTimeout(() => {
      this._reopenScheduled = false;
      if (this._done) return;
      const generation = ++this._generation;
      this._openStream(generation).catch((err) => {
        if (this._done || generation !== this._generation) return;
        /** @type {import('./transport.js').TransportLoss} */
        const loss = {
          code: 0,
          reason: err instanceof Error ? err.message : String(err),
          reconnect: true,
          failedToOpen: !this._everOpened,
        };
        if (err instanceof SwitchboardError && endsAttempt(err.code)) loss.error = err;
        this._lose(loss);
      });
    }, 0);
  }

  /**
   * Reopens the stream with a new token when the current one is due for renewal, shortly
   * before the server would end the stream at its `exp`. A token function that fails is
   * asked again after the token source's backoff delay; meanwhile the stream goes on, and if
   * it ends at `exp` first, the host reconnects.
   *
   * @private
   */
  _scheduleRenewal() {
    this._renewal?.cancel();
    this._renewal = null;
    const { tokens } = this._host;
    const at = tokens.renewAt;
    if (at === null || this._done) return;
    const generation = this._generation;
    this._renewal = timerAt(Math.max(at, tokens.retryAt), () => {
      if (this._done || generation !== this._generation) return;
      const renewed = tokens.renewAt;
      if (renewed !== null && Date.now() < renewed) {
        // Renewed meanwhile (by a publish or a round-trip probe): the stream only needs it.
        this._scheduleReopen();
        return;
      }
      tokens.fresh().then(
        () => {
          if (!this._done && generation === this._generation) this._scheduleReopen();
        },
        (err) => {
          if (this._done || generation !== this._generation) return;
          this._host.error(err);
          this._scheduleRenewal();
        },
      );
    });
  }

  /**
   * Opens a stream for the current subscriptions, replacing the previous one. Resolves at
   * its `subscribed` event (at once when there is no channel); rejects when it fails before,
   * with the server's refusal when there is one. Channels the server will not let this
   * connection read fail their subscriptions, and the stream opens without them.
   *
   * @private
   * @param {number} generation
   * @returns {Promise<import('./transport.js').OpenResult>}
   */
  async _openStream(generation) {
    for (;;) {
      try {
        return await this._tryStream(generation);
      } catch (err) {
        if (!(err instanceof ChannelsRefused)) throw err;
        if (this._done || generation !== this._generation) throw stale();
      }
    }
  }

  /**
   * One try at {@link SseTransport._openStream}.
   *
   * @private
   * @param {number} generation
   * @returns {Promise<import('./transport.js').OpenResult>}
   */
  async _tryStream(generation) {
    const host = this._host;
    const { config } = host;
    const EventSourceImpl = /** @type {typeof EventSource} */ (config.EventSource);
    this._es?.close();
    this._es = null;
    const all = host.subscriptions();
    for (const extra of all.slice(MAX_SSE_CHANNELS)) {
      host.subscribeFailed(
        extra,
        new SwitchboardError('limit_exceeded', `an SSE stream carries at most ${MAX_SSE_CHANNELS} channels`),
      );
    }
    const subs = all.slice(0, MAX_SSE_CHANNELS);
    const channels = subs.map((s) => s.channel);
    const joinLeave = subs.some((s) => s.joinLeave);
    this._channels = channels;
    this._joinLeave = joinLeave;
    if (channels.length === 0) return { client: null };
    const token = await host.tokens.get();
    if (this._done || generation !== this._generation) throw stale();

    // Resume every channel that has a position; a fresh one joining such a stream starts
    // from its current position, looked up first, since a cursor names every channel.
    /** @type {Map<string, import('./cursor.js').StreamPosition>} */
    const passed = new Map();
    for (const s of subs) if (s.position) passed.set(s.channel, s.position);
    if (passed.size > 0 && passed.size < channels.length) {
      const fresh = channels.filter((c) => !passed.has(c));
      /** @type {Map<string, import('./cursor.js').StreamPosition>} */
      let positions;
      try {
        ({ positions } = await fetchPositions(host, fresh, undefined, token));
      } catch (err) {
        if (this._done || generation !== this._generation) throw stale();
        throw await this._explain(fresh, token, err instanceof SwitchboardError ? err : null);
      }
      if (this._done || generation !== this._generation) throw stale();
      for (const [c, p] of positions) passed.set(c, p);
    }
    /** @type {Array<[string, string]>} */
    const params = channels.map((c) => ['channel', c]);
    if (joinLeave) params.push(['join_leave', '1']);
    if (passed.size > 0) {
      params.push(['lastEventId', formatCursor(channels.map((c) => /** @type {any} */ (passed.get(c))))]);
    }
    if (token !== undefined) params.push(['token', token]);
    const url = buildUrl(config.baseUrl, config.paths.sse, params);

    return new Promise((resolve, reject) => {
      let es;
      try {
        es = new EventSourceImpl(url);
      } catch (err) {
        reject(new SwitchboardError('transport_failed', `EventSource: ${redact(String(err), token)}`));
        return;
      }
      this._es = es;
      host.bytes(utf8Length(url), 0);
      let subscribed = false;
      /** @type {{code: number, reason: string, reconnect: boolean} | null} */
      let disconnect = null;
      const current = () => !this._done && generation === this._generation;

      /**
       * @param {string} type
       * @param {(data: Record<string, unknown>) => void} handle
       */
      const on = (type, handle) =>
        es.addEventListener(type, (event) => {
          if (!current()) return;
          const text = /** @type {MessageEvent} */ (event).data;
          if (typeof text !== 'string') return;
          host.bytes(0, utf8Length(text));
          let data;
          try {
            data = JSON.parse(text);
          } catch {
            host.error(new SwitchboardError('bad_reply', `SSE ${type} event is not JSON: ${text.slice(0, 200)}`));
            return;
          }
          if (data && typeof data === 'object') handle(data);
        });

      on('subscribed', (data) => {
        subscribed = true;
        this._everOpened = true;
        host.authenticated(token === undefined ? null : tokenSubject(token));
        this._scheduleRenewal();
        for (const entry of Array.isArray(data.channels) ? data.channels : []) {
          const sub = typeof entry?.channel === 'string' ? host.subscription(entry.channel) : undefined;
          if (!sub || typeof entry.offset !== 'number' || typeof entry.epoch !== 'string') continue;
          const position = { offset: entry.offset, epoch: entry.epoch };
          const recovered = typeof entry.recovered === 'boolean' ? entry.recovered : undefined;
          if (sub.state === 'subscribing') {
            // After a cursor, missed publications follow as events: resume from the cursor,
            // not from the reported position, or they would be taken for duplicates.
            const from = passed.get(sub.channel);
            host.subscribed(sub, { position: from && recovered !== false ? from : position, recovered });
          } else if (recovered === false) {
            host.unrecovered(sub.channel, position);
          }
        }
        resolve({ client: typeof data.client === 'string' ? data.client : null });
      });
      on('message', (data) => {
        const pub = toPublication(data);
        if (pub) host.publication(pub);
      });
      on('unrecovered', (data) => {
        if (typeof data.channel === 'string' && typeof data.offset === 'number' && typeof data.epoch === 'string') {
          host.unrecovered(data.channel, { offset: data.offset, epoch: data.epoch });
        }
      });
      for (const type of /** @type {const} */ (['join', 'leave'])) {
        on(type, (data) => {
          const sub = typeof data.channel === 'string' ? host.subscription(data.channel) : undefined;
          if (sub?.joinLeave && data.info && typeof data.info === 'object') {
            host.presence(type, sub.channel, /** @type {import('./publication.js').ClientInfo} */ (data.info));
          }
        });
      }
      on('disconnect', (data) => {
        disconnect = {
          code: typeof data.code === 'number' ? data.code : 0,
          reason: typeof data.reason === 'string' ? data.reason : '',
          reconnect: data.reconnect !== false,
        };
      });
      es.onerror = () => {
        es.close();
        if (!current()) return;
        if (!subscribed) {
          this._explain(channels, token, null).then(reject);
          return;
        }
        const code = disconnect?.code ?? 0;
        const refusal = refusalErrorCode(code);
        /** @type {import('./transport.js').TransportLoss} */
        const loss = {
          code,
          reason: disconnect?.reason || 'SSE stream ended',
          reconnect: (disconnect?.reconnect ?? true) && !isTerminalCloseCode(code),
        };
        if (refusal) loss.error = new SwitchboardError(refusal, `the server ended the SSE stream: ${loss.reason}`);
        this._lose(loss);
      };
    });
  }

  /**
   * Why a stream (or the look-up before it) for `channels` failed: the server's refusal of
   * the connection, as is; {@link ChannelsRefused} when channels were refused (their
   * subscriptions failed); else a `transport_failed` error.
   *
   * @private
   * @param {string[]} channels
   * @param {string | undefined} token
   * @param {SwitchboardError | null} known the server's error, when the failure came with one
   * @returns {Promise<Error>}
   */
  async _explain(channels, token, known) {
    const { config } = this._host;
    const cause = known?.status !== undefined ? known : await probe(this._host, channels, token);
    if (cause && endsAttempt(cause.code)) return cause;
    if (cause?.code === 'permission_denied' && !this._done) {
      const failed = await failDenied(this._host, channels, token, this.name);
      if (failed > 0) return new ChannelsRefused();
    }
    const why = known?.message ?? `SSE stream ${config.paths.sse} failed before it was ready`;
    return new SwitchboardError('transport_failed', why, { cause: known ?? cause ?? undefined });
  }

  /**
   * @private
   * @param {import('./transport.js').TransportLoss} loss
   */
  _lose(loss) {
    if (this._done) return;
    if (!this._opened) {
      // Lost while opening: that is a failure to open, reported through open().
      this._rejectOpen(loss.error ?? new SwitchboardError('transport_failed', `SSE: ${loss.reason}`));
      this.close();
      return;
    }
    this._publisher.close('connection_lost');
    this.close();
    this._host.lost(loss);
  }
}

function stale() {
  return new SwitchboardError('disconnected', 'superseded by a newer stream');
}
