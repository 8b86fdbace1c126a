/**
 * @module backoff
 *
 * Reconnect delays: exponential backoff with full jitter ("Exponential Backoff And Jitter",
 * AWS Architecture Blog). Attempt n waits a uniformly random time in
 * `[0, min(max, min * 2^n)]`, which spreads a crowd of clients reconnecting after a server
 * restart instead of having them knock in waves.
 */

/**
 * The delay before reconnect attempt `attempt` (0 for the first).
 *
 * @param {number} attempt attempts already failed since the last successful connection
 * @param {number} minDelayMs bound of the first attempt's delay
 * @param {number} maxDelayMs cap of every bound
 * @param {() => number} [random] source of numbers in [0, 1)
 * @returns {number} milliseconds
 */
export function backoffDelay(attempt, minDelayMs, maxDelayMs, random = Math.random) {
  const bound = Math.min(maxDelayMs, minDelayMs * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * bound);
}
