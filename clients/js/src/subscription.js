/**
 * @module subscription
 *
 * A {@link Subscription} is the application's handle on one channel: it emits the channel's
 * publications in offset order, join/leave events, and tells when the client had to
 * resubscribe (`subscribed`, with `recovered`) or lost publications (`unrecovered`). Its
 * `position` is the last offset/epoch delivered; the client resubscribes from it after a
 * reconnect, on whatever transport. It may carry a subscription token (a string, or a
 * function called with `{channel}` before every subscribe), sent in the WebSocket
 * `subscribe` command. Made by `Switchboard.subscribe`, never directly.
 */

import { Emitter } from './emitter.js';
import { TokenSource } from './token.js';

/**
 * @typedef {'subscribing' | 'subscribed' | 'unsubscribed'} SubscriptionState
 */

/**
 * @typedef {object} SubscribedEvent
 * @property {string} channel
 * @property {number} offset the stream position the subscription starts (or resumes) from
 * @property {string} epoch
 * @property {boolean | undefined} recovered `true` when everything missed since the last
 *   position was (or is being) delivered, `false` when some is lost (an `unrecovered` event
 *   follows), `undefined` for a first subscribe, which starts "from now"
 */

/**
 * @typedef {object} UnrecoveredEvent
 * @property {string} channel
 * @property {number} offset the position the subscription jumped to
 * @property {string} epoch
 */

/**
 * @typedef {object} PresenceEvent
 * @property {string} channel
 * @property {import('./publication.js').ClientInfo} info who joined or left
 */

/**
 * Events of a {@link Subscription}.
 *
 * @typedef {object} SubscriptionEvents
 * @property {import('./publication.js').Publication} publication a publication, in offset
 *   order, never twice
 * @property {PresenceEvent} join a client subscribed (only with `joinLeave: true`)
 * @property {PresenceEvent} leave a client unsubscribed (only with `joinLeave: true`)
 * @property {SubscribedEvent} subscribed the server accepted the subscription (again after
 *   every reconnect)
 * @property {UnrecoveredEvent} unrecovered publications were lost: reload the state this
 *   channel feeds
 * @property {{channel: string, error: import('./errors.js').SwitchboardError}} error the
 *   server refused the subscription (it is then unsubscribed), the stream misbehaved, or
 *   something the client retries failed (`store_unavailable`, `token_unavailable`, an
 *   expired subscription token)
 * @property {{channel: string}} unsubscribed `unsubscribe()` was called or the server
 *   refused the subscription
 */

/**
 * What a subscription needs from its client.
 *
 * @typedef {object} SubscriptionOwner
 * @property {(sub: Subscription) => void} _removeSubscription
 */

/**
 * @extends {Emitter<SubscriptionEvents>}
 */
export class Subscription extends Emitter {
  /**
   * @param {SubscriptionOwner} owner
   * @param {string} channel
   * @param {{joinLeave: boolean, since: import('./cursor.js').StreamPosition | null,
   *   token?: import('./token.js').TokenOption, timeoutMs?: number}} options
   * @throws {import('./errors.js').SwitchboardError} `bad_request` for a `token` that is
   *   neither a string nor a function
   */
  constructor(owner, channel, { joinLeave, since, token, timeoutMs }) {
    super();
    /** @private */
    this._owner = owner;
    /** The channel, as given to `subscribe`. */
    this.channel = channel;
    /** Whether join/leave events were asked for. */
    this.joinLeave = joinLeave;
    /** @type {SubscriptionState} */
    this.state = 'subscribing';
    /**
     * The last delivered position (or the one subscribed from); null before the first
     * subscribe reply of a fresh subscription.
     *
     * @type {import('./cursor.js').StreamPosition | null}
     */
    this.position = since;
    /**
     * Publications pushed while the subscribe reply was outstanding, delivered after it.
     * Bounded by the reply's deadline: the transport is dropped when it passes.
     *
     * @type {import('./publication.js').Publication[]}
     */
    this._early = [];
    /**
     * @internal The subscription token, fetched again for every subscribe.
     * @type {TokenSource}
     */
    this._tokens = new TokenSource(token, { context: { channel }, timeoutMs, what: `subscription token for ${channel}` });
    /**
     * @internal Subscribes failed in a row for a passing reason (the server's store down, no
     * subscription token to be had), for backoff.
     */
    this._storeRetries = 0;
    /** @type {string | null} the last `unrecovered` position emitted, to emit it once */
    this._lastUnrecovered = null;
  }

  /** Stops receiving this channel. Safe to call more than once. */
  unsubscribe() {
    if (this.state === 'unsubscribed') return;
    this._owner._removeSubscription(this);
  }

  /**
   * @template {keyof SubscriptionEvents} K
   * @param {K} event
   * @param {SubscriptionEvents[K]} payload
   */
  _dispatch(event, payload) {
    this._emit(event, payload);
  }
}
