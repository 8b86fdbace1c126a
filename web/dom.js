/**
 * @module dom
 *
 * Typed DOM look-ups shared by the pages. A missing element is a bug in the page, so a
 * look-up throws rather than returning null. Never used to insert markup: the pages put
 * user data on screen with `textContent` only.
 */

/**
 * The first element under `root` matching `selector`, checked to be a `type`.
 *
 * @template {Element} T
 * @param {ParentNode} root
 * @param {string} selector
 * @param {{new (...args: any[]): T, name: string}} type
 * @returns {T}
 */
export function find(root, selector, type) {
  const el = root.querySelector(selector);
  if (!(el instanceof type)) throw new Error(`page bug: ${selector} is missing or not a ${type.name}`);
  return el;
}

/**
 * A short description of a caught error, with its switchboard code when it has one.
 *
 * @param {unknown} err
 * @returns {string}
 */
export function describeError(err) {
  if (err instanceof Error) {
    const code = /** @type {{code?: unknown}} */ (err).code;
    return typeof code === 'string' ? `${code}: ${err.message}` : err.message;
  }
  return String(err);
}

/**
 * The `code` of a caught switchboard error, if any.
 *
 * @param {unknown} err
 * @returns {string | undefined}
 */
export function errorCode(err) {
  const code = err instanceof Error ? /** @type {{code?: unknown}} */ (err).code : undefined;
  return typeof code === 'string' ? code : undefined;
}
