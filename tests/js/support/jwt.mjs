/**
 * @module jwt
 *
 * HS256 JSON Web Tokens for the authentication tests, signed with Node's `crypto` as an
 * application backend would sign them (no dependency), and the server's refusal counters
 * (`switchboard_security_refusals_total` on `GET /metrics`), by transport.
 */

import { createHmac, randomBytes } from 'node:crypto';

/** A fresh HMAC secret (the server wants at least 32 bytes). */
export function newSecret() {
  return randomBytes(32).toString('hex');
}

/**
 * @param {string | Buffer} data
 * @returns {string}
 */
function b64url(data) {
  return Buffer.from(data).toString('base64url');
}

/**
 * Signs `claims` with HS256.
 *
 * @param {Record<string, unknown>} claims
 * @param {string} secret
 * @returns {string}
 */
export function signHs256(claims, secret) {
  const head = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const body = b64url(JSON.stringify(claims));
  const signature = createHmac('sha256', secret).update(`${head}.${body}`).digest('base64url');
  return `${head}.${body}.${signature}`;
}

/** Now, in unix seconds (the unit of `exp`). */
export function nowSeconds() {
  return Math.floor(Date.now() / 1000);
}

/**
 * The server's refusals so far, summed by transport label (`websocket`, `sse`, `poll`) and by
 * `transport/reason`.
 *
 * @param {string} url the server's http base
 * @returns {Promise<Map<string, number>>}
 */
export async function refusals(url) {
  const response = await fetch(`${url}/metrics`);
  const text = await response.text();
  if (!response.ok) throw new Error(`GET /metrics: HTTP ${response.status} ${text.slice(0, 200)}`);
  /** @type {Map<string, number>} */
  const counts = new Map();
  for (const line of text.split('\n')) {
    const m = line.match(/^switchboard_security_refusals_total\{([^}]*)\}\s+(\S+)/);
    if (!m) continue;
    const labels = Object.fromEntries([...m[1].matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1], l[2]]));
    const n = Number(m[2]);
    for (const key of [labels.transport, `${labels.transport}/${labels.reason}`]) {
      counts.set(key, (counts.get(key) ?? 0) + n);
    }
  }
  return counts;
}
