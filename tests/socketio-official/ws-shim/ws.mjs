// The `ws` client, delivering at most one event per tick, as a browser does.
//
// A browser's WebSocket dispatches each "open", "message", "error" and "close" event as its
// own task, so promise continuations (`await waitFor(socket, "message")` in the official
// suites) run between two messages and register the next listener in time. Node's `ws` emits
// every frame of a TCP read synchronously, one after the other: when two packets of the server
// arrive together (a Socket.IO CONNECT answer and the `auth` event the conformance server emits
// right after it, say), the second is emitted before the suite listens for it, and is lost.
//
// This subclass emits an event at once when none was emitted in the current tick, and queues
// the others, emitting one per `setImmediate` tick, in order. A lone frame is thus delivered
// exactly as the plain `ws` would (some cases rely on a frame being dropped because nobody
// listens yet, e.g. the engine.io suite's "3probe" in "ignores HTTP requests with same sid
// after upgrade"), and a burst is spread over ticks. Everything else is the real `ws`.
const realUrl = new URL(import.meta.url).searchParams.get("real");
if (!realUrl) {
  throw new Error("ws shim: import it through hooks.mjs (the real package URL is missing)");
}
const real = await import(realUrl);
const RealWebSocket = real.WebSocket ?? real.default;

const DEFERRED = new Set(["open", "message", "error", "close"]);
const queue = Symbol("queue");
const busy = Symbol("busy");

export class WebSocket extends RealWebSocket {
  emit(event, ...args) {
    if (!DEFERRED.has(event)) {
      return super.emit(event, ...args);
    }
    const q = (this[queue] ??= []);
    if (!this[busy]) {
      // The first event of this tick: now; the next one waits for the next tick.
      this[busy] = true;
      setImmediate(() => this.#next());
      return super.emit(event, ...args);
    }
    q.push([event, args]);
    return true;
  }

  #next() {
    const q = this[queue];
    if (q.length === 0) {
      this[busy] = false;
      return;
    }
    const [event, args] = q.shift();
    setImmediate(() => this.#next());
    super.emit(event, ...args);
  }
}

export const { WebSocketServer, createWebSocketStream, Receiver, Sender } = real;
export default WebSocket;
