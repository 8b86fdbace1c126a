// The official Socket.IO browser client (socket.io-client's dist bundle) in a real Chromium
// against the real server's /socket.io/ endpoint (docs/socketio.md): a page on the server's
// origin connects with default options (polling, upgraded to WebSocket), joins a room, and
// shows what reaches it: an HTTP API publication and a relay from a Node client.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { io } from 'socket.io-client';
import { startServer } from '../js/support/server.mjs';
import { launchBrowser, openPage } from './support/browser.mjs';

const WAIT_MS = 15_000;
const require = createRequire(import.meta.url);
/** The official client's browser bundle, which defines the global `io` (the minified one is
 * not in the package's `exports`, so it is found next to its package.json). */
const BUNDLE = join(dirname(require.resolve('socket.io-client/package.json')), 'dist', 'socket.io.min.js');

/** @type {import('../js/support/server.mjs').RunningServer} */
let server;
/** @type {import('playwright-core').Browser} */
let browser;

before(async () => {
  server = await startServer({
    args: ['--store', 'memory'],
    config: ['[socketio.namespaces."/"]', 'rooms = true', 'relay = ["chat message"]', ''].join('\n'),
  });
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

/**
 * What the page runs once the bundle is in: connect, join `room` in the `connect` handler,
 * and list every `news` and `chat message` in `#log`. `body[data-state]` says how far it got
 * and `body[data-transport]` which transport it runs on.
 *
 * @param {string} room
 */
function pageScript(room) {
  return `
    const log = document.getElementById('log');
    const show = (text) => { const li = document.createElement('li'); li.textContent = text; log.append(li); };
    const socket = io({ reconnectionDelay: 100 });
    window.socket = socket;
    socket.on('connect', async () => {
      document.body.dataset.state = 'connected';
      try {
        const answer = await socket.timeout(5000).emitWithAck('join', ${JSON.stringify(room)});
        document.body.dataset.state = answer && answer.ok ? 'joined' : 'join refused: ' + JSON.stringify(answer);
      } catch (err) {
        document.body.dataset.state = 'join not acked within 5000 ms: ' + err.message;
      }
    });
    socket.on('connect_error', (err) => { document.body.dataset.state = 'connect_error: ' + err.message; });
    socket.io.on('open', () => {
      const engine = socket.io.engine;
      document.body.dataset.transport = engine.transport.name;
      engine.on('upgrade', (t) => { document.body.dataset.transport = t.name; });
    });
    socket.on('news', (data) => show('news: ' + JSON.stringify(data)));
    socket.on('chat message', (from, text) => show('chat: ' + text + ' (from ' + (from && from.id) + ')'));
  `;
}

test('a page with the official client joins a room and shows an API publication and a Node relay', async (t) => {
  const room = `browser-${process.pid}-${Date.now()}`;
  const { page, context, errors } = await openPage(browser);
  t.after(() => context.close());
  // A page of the server's own origin, fetched from it (Chromium's local network access
  // checks refuse a loopback WebSocket to a page that did not come from the network), with
  // the app's own script left out and its markup replaced: only the official client runs.
  await page.route(`${server.url}/chat.js`, (route) => route.fulfill({ contentType: 'text/javascript', body: '' }));
  await page.goto(`${server.url}/chat.html`);
  await page.evaluate(() => {
    document.body.innerHTML = '<ul id="log"></ul>';
  });
  await page.addScriptTag({ path: BUNDLE });
  assert.equal(await page.evaluate(() => typeof (/** @type {any} */ (window).io)), 'function', 'the bundle defines io');
  await page.addScriptTag({ content: pageScript(room) });

  await page.waitForSelector('body[data-state="joined"]', { state: 'attached', timeout: WAIT_MS }).catch(async (err) => {
    throw new Error(`the page did not join ${room}: state ${await page.getAttribute('body', 'data-state')} (${err.message})`);
  });
  await page.waitForSelector('body[data-transport="websocket"]', { state: 'attached', timeout: WAIT_MS }).catch(async (err) => {
    throw new Error(`the page's client did not upgrade to websocket: transport ${await page.getAttribute('body', 'data-transport')} (${err.message})`);
  });

  const response = await fetch(`${server.url}/api/publish`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ channel: room, data: ['news', { headline: 'from the API' }] }),
  });
  assert.equal(response.status, 200, await response.text());
  await page.locator('#log li', { hasText: 'news: {"headline":"from the API"}' }).waitFor({ timeout: WAIT_MS });

  // A Node client of the same room relays a chat message to the page.
  const node = io(server.url, { forceNew: true, transports: ['websocket'], reconnection: false });
  t.after(() => node.disconnect());
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the Node client did not connect within ${WAIT_MS} ms`)), WAIT_MS);
    node.once('connect', () => {
      clearTimeout(timer);
      resolve(undefined);
    });
  });
  assert.deepEqual(await node.timeout(WAIT_MS).emitWithAck('join', room), { ok: true });
  assert.deepEqual(await node.timeout(WAIT_MS).emitWithAck('chat message', 'hello browser'), { ok: true });
  await page.locator('#log li', { hasText: `chat: hello browser (from ${node.id})` }).waitFor({ timeout: WAIT_MS });

  assert.deepEqual(await page.locator('#log li').allTextContents(), [
    'news: {"headline":"from the API"}',
    `chat: hello browser (from ${node.id})`,
  ]);
  assert.deepEqual(errors, [], 'the page ran without errors');
});
