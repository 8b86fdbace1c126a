/**
 * @module codes
 *
 * The wire codes of the switchboard protocol (docs/protocol.md), one table each, keyed by
 * the names the doc uses: WebSocket close codes and the error codes found in replies, SSE
 * events and HTTP bodies. Also the codes this client adds for failures that never reach the
 * wire (timeouts, a full publish queue…). Nothing here talks to the network.
 */

/**
 * WebSocket close codes. 4000–4499 mean "reconnect with backoff and recover", 4500–4999
 * mean "do not reconnect".
 */
export const CloseCode = Object.freeze({
  /** The client closed. */
  normal: 1000,
  /** The server is shutting down. */
  going_away: 1001,
  /** WebSocket framing violated. */
  protocol_error: 1002,
  /** A text frame or close reason that is not UTF-8. */
  invalid_payload: 1007,
  /** A frame or message over the server's size limit. */
  message_too_big: 1009,
  /** A server bug. */
  internal_error: 1011,
  /** The client fell behind and its outgoing queue overflowed. */
  slow_consumer: 4001,
  /** The server received nothing for `ping_interval + pong_timeout`. */
  no_pong: 4002,
  /** The connection token expired without a `refresh`: reconnect with a new token. */
  token_expired: 4003,
  /** Disconnected by the application; may reconnect. */
  disconnected: 4004,
  /** A token is required and no `connect` came within the server's connect timeout. */
  connect_timeout: 4005,
  /** The client kept exceeding its rate limits: reconnect after a pause. */
  rate_limited: 4008,
  /** Disconnected by the application; must not reconnect. */
  disconnected_terminal: 4500,
  /** The connection token was refused, or none was sent where one is required. */
  unauthorized: 4501,
  /** The application's connect hook refused the connection. */
  forbidden: 4503,
});

/** First close code of the "reconnect and recover" range. */
export const RECONNECT_CODES_FIRST = 4000;
/** First close code of the "do not reconnect" range. */
export const TERMINAL_CODES_FIRST = 4500;
/** Last close code of the "do not reconnect" range. */
export const TERMINAL_CODES_LAST = 4999;

/**
 * Whether a close code (WebSocket close frame or SSE `disconnect` event) forbids
 * reconnecting. 1000 is only terminal when this client closed; a server that ends a
 * connection with 1000 is treated as any other drop.
 *
 * @param {number} code
 * @returns {boolean}
 */
export function isTerminalCloseCode(code) {
  return code >= TERMINAL_CODES_FIRST && code <= TERMINAL_CODES_LAST;
}

/** Error codes sent by the server, with the HTTP status the doc gives each. */
export const ErrorCode = Object.freeze({
  /** 400: malformed JSON, missing or wrong-typed field, bad query parameter. */
  bad_request: 'bad_request',
  /** 400: `cmd` is not a known command. */
  unknown_command: 'unknown_command',
  /** 400: channel name empty, too long or with a character outside the set. */
  invalid_channel: 'invalid_channel',
  /** 400: `data` is not valid JSON, `b64` is not valid base64, or both/neither given. */
  invalid_data: 'invalid_data',
  /** 413: message over the size limit. */
  too_large: 'too_large',
  /** 429: too many channels or subscriptions. */
  limit_exceeded: 'limit_exceeded',
  /** 409: subscribed twice to one channel on one connection. */
  already_subscribed: 'already_subscribed',
  /** 409: unsubscribed from a channel not subscribed. */
  not_subscribed: 'not_subscribed',
  /**
   * 401: a connection or subscription token that is malformed, forged, not yet valid, for
   * another audience, issuer, user or channel; or no token where one is required.
   */
  unauthorized: 'unauthorized',
  /** 401: the token's `exp` is past: get a new one. */
  token_expired: 'token_expired',
  /** 429: too many commands, publications or connections in too short a time. */
  rate_limited: 'rate_limited',
  /** 502: the application's backend (a hook, the JWKS endpoint) failed or did not answer. */
  backend_unavailable: 'backend_unavailable',
  /** 403: the request's `Origin` is not allowed (or a cookie-authenticated publish has none). */
  origin_not_allowed: 'origin_not_allowed',
  /** 404: no such endpoint. */
  not_found: 'not_found',
  /** 503: the server is shutting down. */
  unavailable: 'unavailable',
  /** 503: the server's store could not take or give the data (database down, disk full); retry. */
  store_unavailable: 'store_unavailable',
  /** 403: the channel's options turn this off (presence, join/leave events). */
  not_available: 'not_available',
  /** 403: the channel's options do not let clients do this (publish, read history). */
  permission_denied: 'permission_denied',
  /** 403: the application's connect hook refused the connection (WebSocket close 4503). */
  forbidden: 'forbidden',
  /** 500: a server bug. */
  internal: 'internal',
});

/** Error codes of failures this client detects itself; they never appear on the wire. */
export const ClientErrorCode = Object.freeze({
  /** No reply within `timeoutMs`. */
  timeout: 'timeout',
  /** The connection was lost before the reply: the command may or may not have run. */
  connection_lost: 'connection_lost',
  /** The client is disconnected (by `disconnect()` or a terminal close) and not reconnecting. */
  disconnected: 'disconnected',
  /** A publish made while disconnected found the queue full (`maxQueuedPublishes`). */
  queue_full: 'queue_full',
  /** The command needs a transport this client is not using (e.g. `history` over SSE). */
  unsupported: 'unsupported',
  /** A transport could not open (refused, closed or errored before it was ready). */
  transport_failed: 'transport_failed',
  /** The server answered with something that does not follow the protocol. */
  bad_reply: 'bad_reply',
  /** A publication arrived with a higher offset than the next expected one. */
  gap: 'gap',
  /**
   * The `token` function threw, timed out or returned something else than a non-empty
   * string. The client retries with backoff; it does not move to another transport.
   */
  token_unavailable: 'token_unavailable',
});

/**
 * The error codes that refuse the connection itself, whatever the transport: a transport
 * that meets one is not failing, so the client never falls back to the next transport for
 * it. `token_expired` is retried with a newly fetched token (a bounded number of times);
 * the others end the connection for good.
 */
const REFUSAL_CODES = new Set(['unauthorized', 'token_expired', 'forbidden', 'origin_not_allowed']);

/**
 * Whether an error code refuses the connection (see {@link REFUSAL_CODES}) rather than
 * reporting a transport failure.
 *
 * @param {string} code
 * @returns {boolean}
 */
export function isRefusalCode(code) {
  return REFUSAL_CODES.has(code);
}

/**
 * Whether an error met while connecting ends the attempt instead of moving down the chain
 * of transports, since another transport would meet it too: a refusal (see
 * {@link isRefusalCode}), a `token` function that gave no token (`token_unavailable`), or
 * the server's own backend (the JWKS endpoint) failing (`backend_unavailable`).
 *
 * @param {string} code
 * @returns {boolean}
 */
export function endsAttempt(code) {
  return REFUSAL_CODES.has(code) || code === 'token_unavailable' || code === 'backend_unavailable';
}

/**
 * The close code that stands for a refusal's error code, reported on every transport
 * (HTTP transports have no close frame): 4501, 4003, 4503, or 0 for the others.
 *
 * @param {string} code
 * @returns {number}
 */
export function refusalCloseCode(code) {
  switch (code) {
    case 'unauthorized':
      return CloseCode.unauthorized;
    case 'token_expired':
      return CloseCode.token_expired;
    case 'forbidden':
      return CloseCode.forbidden;
    default:
      return 0;
  }
}

/**
 * The error code that stands for an authentication close code (4003, 4501, 4503), or null.
 *
 * @param {number} code
 * @returns {'token_expired' | 'unauthorized' | 'forbidden' | null}
 */
export function refusalErrorCode(code) {
  switch (code) {
    case CloseCode.token_expired:
      return 'token_expired';
    case CloseCode.unauthorized:
      return 'unauthorized';
    case CloseCode.forbidden:
      return 'forbidden';
    default:
      return null;
  }
}

/** Characters allowed in a channel name besides ASCII letters and digits. */
const CHANNEL_RE = /^[A-Za-z0-9:_\-./@=,#]{1,255}$/;

/**
 * Whether `channel` is a valid channel name: 1–255 bytes of `A-Z a-z 0-9` and
 * `: _ - . / @ = , #` (all ASCII, so characters and bytes count alike).
 *
 * @param {string} channel
 * @returns {boolean}
 */
export function isValidChannel(channel) {
  return typeof channel === 'string' && CHANNEL_RE.test(channel);
}
