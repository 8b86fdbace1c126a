/**
 * @module token
 *
 * Where the client's JWTs come from. A {@link TokenSource} wraps a `token` option — a string,
 * or a function (possibly async) that fetches one from the application's backend — and
 * keeps the last token fetched. The client asks it for a token when it connects (and, over
 * SSE and polling, for every stream or request), for a new one when the server pushes
 * `refresh`, and tells it when the server refused one as expired, so that the next
 * connection brings a fresh token. It never verifies a token: it only reads the unverified
 * `exp` claim, to fetch the next token before the current one runs out, and `sub`, to name
 * the user of a connection the server accepted over HTTP. Tokens never appear in messages.
 * Nothing here talks to switchboard.
 */

import { backoffDelay } from './backoff.js';
import { SwitchboardError } from './errors.js';

/**
 * A token, or a function returning one (or a promise of one). The function is called with
 * what the token is for: `{}` for the connection token, `{channel}` for a subscription token.
 *
 * @typedef {string | ((context: TokenContext) => string | Promise<string>)} TokenOption
 */

/**
 * @typedef {object} TokenContext
 * @property {string} [channel] the channel, for a subscription token
 */

/**
 * Times in a row the server may refuse this source's tokens as expired (without accepting
 * one in between) before the client gives up with `token_expired`: a function that keeps
 * returning expired tokens must not make the client reconnect forever.
 */
export const MAX_EXPIRED_IN_A_ROW = 3;

/**
 * How long before a kept token's `exp` the source fetches the next one (at most half the
 * lifetime the token had left when it was fetched), as the server's default
 * `auth.refresh_before_seconds`. Only the SSE and polling transports renew by the clock;
 * a WebSocket waits for the server's `refresh` push.
 */
export const RENEW_BEFORE_MS = 60_000;

/** Bound of the first pause before a failed renewal is tried again (then doubling, jittered). */
export const RENEW_RETRY_MIN_MS = 500;
/** Cap of the pauses between renewal tries. */
export const RENEW_RETRY_MAX_MS = 10_000;

/** Longest `setTimeout` delay that does not overflow (about 24.8 days). */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * The unverified claims of a JWT, or null when it is not a JWT the client can read.
 *
 * @param {string} token
 * @returns {Record<string, unknown> | null}
 */
function claimsOf(token) {
  const payload = token.split('.')[1];
  if (!payload) return null;
  try {
    const b64 = payload.replace(/-/g, '+').replace(/_/g, '/');
    const binary = atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4));
    const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes));
    return claims && typeof claims === 'object' && !Array.isArray(claims) ? claims : null;
  } catch {
    return null;
  }
}

/**
 * The unverified `exp` claim (unix seconds) of a JWT, or null when it has none or is not a
 * JWT the client can read.
 *
 * @param {string} token
 * @returns {number | null}
 */
export function tokenExpiry(token) {
  const exp = claimsOf(token)?.exp;
  return typeof exp === 'number' && Number.isFinite(exp) ? exp : null;
}

/**
 * The unverified `sub` claim of a JWT: the user id the server gives a connection that
 * presents it (null when empty, absent or unreadable: anonymous).
 *
 * @param {string} token
 * @returns {string | null}
 */
export function tokenSubject(token) {
  const sub = claimsOf(token)?.sub;
  return typeof sub === 'string' && sub !== '' ? sub : null;
}

/**
 * `text` with every occurrence of `token` replaced, for messages built from things (URLs,
 * errors of a library) that may carry it.
 *
 * @param {string} text
 * @param {string | undefined} token
 * @returns {string}
 */
export function redact(text, token) {
  return token ? text.split(token).join('[token]') : text;
}

/**
 * A `setTimeout` that may be longer than the timer limit: it fires at `at` (epoch ms), or
 * at once when that is past.
 *
 * @param {number} at
 * @param {() => void} fn
 * @returns {{cancel: () => void}}
 */
export function timerAt(at, fn) {
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let timer;
  const arm = () => {
    const left = at - Date.now();
    if (left > MAX_TIMER_MS) timer = setTimeout(arm, MAX_TIMER_MS);
    else timer = setTimeout(fn, Math.max(0, left));
  };
  arm();
  return { cancel: () => clearTimeout(timer) };
}

export class TokenSource {
  /**
   * @param {TokenOption | undefined} option
   * @param {{context?: TokenContext, timeoutMs?: number, what?: string,
   *   onRenewalError?: (error: SwitchboardError) => void}} [settings]
   *   `context`: passed to the function; `timeoutMs`: deadline of one call; `what`: named in
   *   error messages; `onRenewalError`: told when {@link TokenSource.get} could not renew a
   *   token and gave the kept one, still valid, instead
   * @throws {SwitchboardError} `bad_request` when `option` is neither a string nor a function
   */
  constructor(option, { context = {}, timeoutMs = 10_000, what = 'connection token', onRenewalError } = {}) {
    if (option !== undefined && option !== null && typeof option !== 'string' && typeof option !== 'function') {
      throw new SwitchboardError('bad_request', `${what}: token must be a string or a function`);
    }
    /** @private @type {TokenOption | undefined} */
    this._option = option ?? undefined;
    /** @private */
    this._context = context;
    /** @private */
    this._timeoutMs = timeoutMs;
    /** @private */
    this._what = what;
    /** @private */
    this._onRenewalError = onRenewalError;
    /** @private calls of the function failed in a row */
    this._failures = 0;
    /** @private no renewal is tried before this (epoch ms) after a failed one */
    this._retryAt = 0;
    /** @private @type {string | null} the last token the function returned */
    this._value = null;
    /**
     * @private when (epoch ms) the kept token should be replaced: `RENEW_BEFORE_MS` before
     * its `exp`, at most half the lifetime it had left when fetched; Infinity when it has no
     * `exp`, or had already passed it by the local clock (a skewed clock must not make the
     * client fetch a token for every request: the server decides then).
     */
    this._renewAt = Infinity;
    /** @private @type {Promise<string> | null} the call in progress, shared by every caller */
    this._pending = null;
    /** @private refusals as expired since the server last accepted a token */
    this._expiredInARow = 0;
  }

  /** Whether a token was given at all. */
  get configured() {
    return this._option !== undefined;
  }

  /** Whether a new token can be had (a function was given, not a fixed string). */
  get refreshable() {
    return typeof this._option === 'function';
  }

  /**
   * When (epoch ms) the kept token should be replaced by a new one, or null when never
   * (no token, a fixed string, no `exp`).
   */
  get renewAt() {
    if (!this.refreshable || this._value === null || this._renewAt === Infinity) return null;
    return this._renewAt;
  }

  /**
   * The token to present: the kept one, unless there is none yet or it is due for renewal
   * (see {@link TokenSource.renewAt}), in which case the function is called. When a renewal
   * fails while the kept token has not expired yet, that one is given instead (the failure
   * goes to `onRenewalError`), and the function is not asked again before a backoff delay.
   * Undefined when no token is configured.
   *
   * @returns {Promise<string | undefined>} rejects with `token_unavailable`
   */
  get() {
    if (typeof this._option !== 'function') return Promise.resolve(this._option);
    const kept = this._value;
    if (kept === null) return this.fresh();
    const now = Date.now();
    if (now < this._renewAt) return Promise.resolve(kept);
    if (now < this._retryAt && isValid(kept)) return Promise.resolve(kept);
    return this.fresh().catch((err) => {
      if (this._value !== kept || !isValid(kept)) throw err;
      this._onRenewalError?.(err);
      return kept;
    });
  }

  /**
   * A newly fetched token (the fixed string, when that is what was given). Concurrent calls
   * share one call of the function.
   *
   * @returns {Promise<string | undefined>} rejects with `token_unavailable`
   */
  fresh() {
    const fn = this._option;
    if (typeof fn !== 'function') return Promise.resolve(fn);
    if (this._pending) return this._pending;
    const what = this._what;
    const timeoutMs = this._timeoutMs;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    let timer;
    /** @type {Promise<string>} */
    const call = new Promise((resolve, reject) => {
      timer = setTimeout(
        () => reject(new SwitchboardError('token_unavailable', `${what}: the token function did not answer within ${timeoutMs} ms`)),
        timeoutMs,
      );
      Promise.resolve()
        .then(() => fn({ ...this._context }))
        .then(resolve, reject);
    })
      .then((value) => {
        if (typeof value !== 'string' || value === '') {
          throw new SwitchboardError(
            'token_unavailable',
            `${what}: the token function returned ${value === '' ? 'an empty string' : typeof value}, not a token`,
          );
        }
        this._keep(value);
        this._failures = 0;
        this._retryAt = 0;
        return value;
      })
      .catch((err) => {
        this._retryAt =
          Date.now() + RENEW_RETRY_MIN_MS / 2 + backoffDelay(this._failures++, RENEW_RETRY_MIN_MS, RENEW_RETRY_MAX_MS);
        if (err instanceof SwitchboardError && err.code === 'token_unavailable') throw err;
        throw new SwitchboardError('token_unavailable', `${what}: the token function failed: ${describe(err)}`, {
          cause: err,
        });
      })
      .finally(() => {
        clearTimeout(timer);
        if (this._pending === call) this._pending = null;
      });
    this._pending = call;
    return call;
  }

  /**
   * The server refused `token` (or, without it, the kept token) as expired: forget it so the
   * next {@link TokenSource.get} fetches another.
   *
   * @param {string} [token]
   * @returns {boolean} whether trying again with a new token may help: false for a fixed
   *   string, and after {@link MAX_EXPIRED_IN_A_ROW} refusals in a row
   */
  expired(token) {
    this._expiredInARow++;
    if (token === undefined || token === this._value) this._value = null;
    return this.refreshable && this._expiredInARow < MAX_EXPIRED_IN_A_ROW;
  }

  /** The server accepted a token: refusals as expired count from zero again. */
  accepted() {
    this._expiredInARow = 0;
  }

  /** Forgets the kept token, the refusals and the failures: the next `get()` calls the function. */
  reset() {
    this._value = null;
    this._renewAt = Infinity;
    this._expiredInARow = 0;
    this._failures = 0;
    this._retryAt = 0;
  }

  /**
   * When (epoch ms) a failed call of the function may be tried again: after a backoff
   * delay, 0 when the last call succeeded.
   */
  get retryAt() {
    return this._retryAt;
  }

  /**
   * @private
   * @param {string} value
   */
  _keep(value) {
    this._value = value;
    const exp = tokenExpiry(value);
    const left = exp === null ? 0 : exp * 1000 - Date.now();
    this._renewAt = left > 0 ? Date.now() + left - Math.min(RENEW_BEFORE_MS, left / 2) : Infinity;
  }
}

/**
 * Whether `token` has not reached its `exp` by the local clock (true without a readable
 * `exp`: the server decides).
 *
 * @param {string} token
 * @returns {boolean}
 */
function isValid(token) {
  const exp = tokenExpiry(token);
  return exp === null || exp * 1000 > Date.now();
}

/**
 * @param {unknown} err
 * @returns {string}
 */
function describe(err) {
  return err instanceof Error ? err.message : String(err);
}
