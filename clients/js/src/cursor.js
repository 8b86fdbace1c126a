/**
 * @module cursor
 *
 * Stream positions and the cursor format of the SSE and polling transports: for each
 * channel of the request, in request order, `epoch:offset`, joined by `,`
 * (`q8d2x0aa:7,m1n2b3v4:0`). The client keeps one position per subscription and builds
 * cursors from them, so switching transports never loses the place.
 */

/**
 * @typedef {object} StreamPosition
 * @property {number} offset offset of the last publication seen (0 before the first)
 * @property {string} epoch the stream's epoch; offsets compare only within one epoch
 */

/**
 * @param {readonly StreamPosition[]} positions one per channel, in request order
 * @returns {string}
 */
export function formatCursor(positions) {
  return positions.map((p) => `${p.epoch}:${p.offset}`).join(',');
}

/**
 * Parses a cursor into one position per channel. Throws on anything malformed.
 *
 * @param {string} cursor
 * @returns {StreamPosition[]}
 */
export function parseCursor(cursor) {
  if (typeof cursor !== 'string' || cursor === '') throw new Error(`bad cursor ${JSON.stringify(cursor)}`);
  return cursor.split(',').map((part) => {
    const colon = part.lastIndexOf(':');
    const offset = Number(part.slice(colon + 1));
    if (colon < 0 || !Number.isSafeInteger(offset) || offset < 0) {
      throw new Error(`bad cursor part ${JSON.stringify(part)}`);
    }
    return { epoch: part.slice(0, colon), offset };
  });
}

/**
 * Whether `next` is ahead of `current` (a later offset in the same epoch, or another epoch:
 * the stream restarted, so the server's position wins).
 *
 * @param {StreamPosition | null} current
 * @param {StreamPosition} next
 * @returns {boolean}
 */
export function isAhead(current, next) {
  return current === null || current.epoch !== next.epoch || next.offset > current.offset;
}
