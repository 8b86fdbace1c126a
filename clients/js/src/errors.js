/**
 * @module errors
 *
 * The one error type of the client. Every rejected promise and every `error` event carries a
 * {@link SwitchboardError} whose `code` is either a server code ({@link ErrorCode}) or a
 * client code ({@link ClientErrorCode}), so callers branch on `code`, never on messages.
 */

/**
 * @typedef {import('./codes.js').ErrorCode[keyof import('./codes.js').ErrorCode]
 *   | import('./codes.js').ClientErrorCode[keyof import('./codes.js').ClientErrorCode]
 *   | string} SwitchboardErrorCode
 */

export class SwitchboardError extends Error {
  /**
   * @param {SwitchboardErrorCode} code server or client error code
   * @param {string} message what happened, for people
   * @param {{status?: number, cause?: unknown}} [extra] HTTP status when the error came over
   *   HTTP, and the underlying error if any
   */
  constructor(code, message, extra = {}) {
    super(message, extra.cause === undefined ? undefined : { cause: extra.cause });
    this.name = 'SwitchboardError';
    /** @type {SwitchboardErrorCode} */
    this.code = code;
    /** @type {number | undefined} */
    this.status = extra.status;
  }
}

/**
 * Turns a server `error` object (`{code, message}`) into a {@link SwitchboardError}.
 *
 * @param {unknown} error
 * @param {number} [status]
 * @returns {SwitchboardError}
 */
export function fromWireError(error, status) {
  const e = /** @type {{code?: unknown, message?: unknown}} */ (error ?? {});
  const code = typeof e.code === 'string' ? e.code : 'bad_reply';
  const message = typeof e.message === 'string' ? e.message : `server error ${code}`;
  return new SwitchboardError(code, message, { status });
}
