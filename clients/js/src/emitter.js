/**
 * @module emitter
 *
 * A small typed event emitter shared by the client and its subscriptions. `Events` maps
 * each event name to its payload type, so `on('state', e => …)` knows what `e` is. A
 * listener that throws does not stop the others nor the client's own bookkeeping: the error
 * is rethrown on a fresh task, where the host reports it as uncaught.
 */

/**
 * @template {object} Events map from event name to payload type
 */
export class Emitter {
  constructor() {
    /** @type {Map<keyof Events, Set<(payload: any) => void>>} */
    this._listeners = new Map();
  }

  /**
   * Calls `listener` on every `event` until removed.
   *
   * @template {keyof Events} K
   * @param {K} event
   * @param {(payload: Events[K]) => void} listener
   * @returns {() => void} a function that removes the listener
   */
  on(event, listener) {
    let set = this._listeners.get(event);
    if (!set) {
      set = new Set();
      this._listeners.set(event, set);
    }
    set.add(listener);
    return () => this.off(event, listener);
  }

  /**
   * Removes a listener added with `on` or `once`.
   *
   * @template {keyof Events} K
   * @param {K} event
   * @param {(payload: Events[K]) => void} listener
   */
  off(event, listener) {
    const set = this._listeners.get(event);
    if (!set) return;
    set.delete(listener);
    for (const wrapped of set) {
      if (/** @type {any} */ (wrapped)._original === listener) set.delete(wrapped);
    }
    if (set.size === 0) this._listeners.delete(event);
  }

  /**
   * Calls `listener` on the next `event` only.
   *
   * @template {keyof Events} K
   * @param {K} event
   * @param {(payload: Events[K]) => void} listener
   * @returns {() => void} a function that removes the listener
   */
  once(event, listener) {
    /** @param {Events[K]} payload */
    const wrapped = (payload) => {
      this.off(event, wrapped);
      listener(payload);
    };
    /** @type {any} */ (wrapped)._original = listener;
    return this.on(event, wrapped);
  }

  /**
   * Calls every listener of `event` with `payload`, in the order they were added.
   *
   * @protected
   * @template {keyof Events} K
   * @param {K} event
   * @param {Events[K]} payload
   */
  _emit(event, payload) {
    const set = this._listeners.get(event);
    if (!set) return;
    for (const listener of [...set]) {
      try {
        listener(payload);
      } catch (err) {
        setTimeout(() => {
          throw err;
        }, 0);
      }
    }
  }

  /**
   * Whether `event` has any listener.
   *
   * @protected
   * @param {keyof Events} event
   * @returns {boolean}
   */
  _hasListeners(event) {
    return (this._listeners.get(event)?.size ?? 0) > 0;
  }
}
