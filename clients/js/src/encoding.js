/**
 * @module encoding
 *
 * Byte-level helpers shared by the transports: the UTF-8 length of a string (for the byte
 * counters, without allocating an encoded copy) and base64 for binary payloads (`b64` on the
 * wire). Only uses `atob`/`btoa`, present in browsers and Node ≥ 16.
 */

/**
 * UTF-8 byte length of `text`.
 *
 * @param {string} text
 * @returns {number}
 */
export function utf8Length(text) {
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c < 0xdc00 && isLowSurrogate(text.charCodeAt(i + 1))) {
      n += 4;
      i++;
    } else n += 3; // includes lone surrogates, sent as U+FFFD
  }
  return n;
}

/** @param {number} c */
function isLowSurrogate(c) {
  return c >= 0xdc00 && c < 0xe000;
}

/**
 * @param {Uint8Array} bytes
 * @returns {string}
 */
export function bytesToBase64(bytes) {
  let binary = '';
  const chunk = 0x8000;
  for (let i = 0; i < bytes.length; i += chunk) {
    binary += String.fromCharCode(...bytes.subarray(i, i + chunk));
  }
  return btoa(binary);
}

/**
 * @param {string} b64
 * @returns {Uint8Array}
 */
export function base64ToBytes(b64) {
  const binary = atob(b64);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}
