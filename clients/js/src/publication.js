/**
 * @module publication
 *
 * What a subscription receives: {@link Publication}s, and the {@link ClientInfo} of
 * publishers and present clients. Turns the wire shape (`data` JSON or `b64` binary) into
 * the shape handed to listeners, filling what a reply left implicit (channel, epoch).
 */

import { base64ToBytes, bytesToBase64 } from './encoding.js';
import { SwitchboardError } from './errors.js';

/**
 * @typedef {object} ClientInfo
 * @property {string} client the connection's client id
 * @property {string} [user] the user id, for authenticated connections
 * @property {unknown} [info] what the client sent as `info` when it connected
 */

/**
 * @typedef {object} Publication
 * @property {string} channel
 * @property {number} offset position in the channel's stream: 1, 2, 3… without gaps
 * @property {string} epoch the stream's epoch
 * @property {unknown} [data] the JSON payload (absent for binary publications)
 * @property {Uint8Array} [bytes] the binary payload (absent for JSON publications)
 * @property {ClientInfo} [info] the publisher, when the server reports it
 */

/**
 * The body of a publish: JSON `data`, or binary as base64 `b64`.
 *
 * @typedef {{data: unknown} | {b64: string}} PublishBody
 */

/**
 * Where a publish landed.
 *
 * @typedef {object} PublishResult
 * @property {number} offset
 * @property {string} epoch
 */

/**
 * Builds the wire body of a publish: a `Uint8Array` goes as `b64`, anything else as JSON
 * `data`. `undefined` is refused because it has no JSON form.
 *
 * @param {unknown} data
 * @returns {PublishBody}
 */
export function publishBody(data) {
  if (data instanceof Uint8Array) return { b64: bytesToBase64(data) };
  if (data === undefined) throw new SwitchboardError('invalid_data', 'cannot publish undefined: it has no JSON form');
  return { data };
}

/**
 * `JSON.stringify`, failing with `invalid_data` (cycles, BigInt) instead of a TypeError.
 *
 * @param {unknown} value
 * @returns {string}
 */
export function toJson(value) {
  try {
    return JSON.stringify(value);
  } catch (err) {
    throw new SwitchboardError('invalid_data', `data has no JSON form: ${String(err)}`, { cause: err });
  }
}

/**
 * Turns a publication from the wire into a {@link Publication}, or returns null when it
 * lacks an offset (not a publication at all).
 *
 * @param {unknown} raw
 * @param {{channel?: string, epoch?: string}} [context] values to use when `raw` omits them
 *   (history and recovery replies may leave them implicit)
 * @returns {Publication | null}
 */
export function toPublication(raw, context = {}) {
  if (raw === null || typeof raw !== 'object') return null;
  const r = /** @type {Record<string, unknown>} */ (raw);
  const channel = typeof r.channel === 'string' ? r.channel : context.channel;
  const epoch = typeof r.epoch === 'string' ? r.epoch : context.epoch;
  if (typeof r.offset !== 'number' || channel === undefined || epoch === undefined) return null;
  /** @type {Publication} */
  const pub = { channel, offset: r.offset, epoch };
  if (typeof r.b64 === 'string') pub.bytes = base64ToBytes(r.b64);
  else pub.data = r.data;
  if (r.info && typeof r.info === 'object') pub.info = /** @type {ClientInfo} */ (r.info);
  return pub;
}

/**
 * @param {unknown} raw
 * @returns {PublishResult}
 */
export function toPublishResult(raw) {
  const r = /** @type {Record<string, unknown>} */ (raw ?? {});
  if (typeof r.offset !== 'number' || typeof r.epoch !== 'string') {
    throw new SwitchboardError('bad_reply', `publish reply without offset/epoch: ${JSON.stringify(raw)}`);
  }
  return { offset: r.offset, epoch: r.epoch };
}
