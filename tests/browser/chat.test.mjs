// The chat page in a real Chromium against the real server: two people see each other's
// messages and presence, a late joiner gets recent history, and markup typed by users is
// shown as text, never run.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../js/support/server.mjs';
import { launchBrowser, openPage } from './support/browser.mjs';

const WAIT_MS = 15_000;

/** @type {import('../js/support/server.mjs').RunningServer} */
let server;
/** @type {import('playwright-core').Browser} */
let browser;

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

/**
 * Opens the chat and joins `room` as `nick`.
 *
 * @param {string} nick
 * @param {string} room
 */
async function join(nick, room) {
  const opened = await openPage(browser);
  const { page } = opened;
  await page.goto(`${server.url}/chat.html`);
  await page.fill('#nick', nick);
  await page.fill('#room', room);
  await page.click('#join-form button[type="submit"]');
  await page.waitForSelector('#chat[data-state="connected"]', { timeout: WAIT_MS });
  return opened;
}

/**
 * @param {import('playwright-core').Page} page
 * @param {string} text
 */
async function send(page, text) {
  await page.fill('#text', text);
  await page.click('#send-form button[type="submit"]');
}

test("two people see each other's messages and presence", async () => {
  const room = `room${Date.now()}`;
  const alice = await join('alice', room);
  const bob = await join('bob', room);

  await alice.page.locator('#presence li', { hasText: 'bob' }).waitFor({ timeout: WAIT_MS });
  await bob.page.locator('#presence li', { hasText: 'alice' }).waitFor({ timeout: WAIT_MS });
  assert.equal(await bob.page.locator('#presence li').count(), 2);

  await send(alice.page, 'hi bob');
  const atBob = bob.page.locator('#messages .msg', { hasText: 'hi bob' });
  await atBob.waitFor({ timeout: WAIT_MS });
  assert.equal(await atBob.locator('.nick').textContent(), 'alice');

  await send(bob.page, 'hello alice');
  await alice.page.locator('#messages .msg', { hasText: 'hello alice' }).waitFor({ timeout: WAIT_MS });
  const texts = await alice.page.locator('#messages .msg .text').allTextContents();
  assert.deepEqual(texts, ['hi bob', 'hello alice']);

  await bob.context.close();
  await alice.page.locator('#presence li', { hasText: 'bob' }).waitFor({ state: 'detached', timeout: WAIT_MS });
  assert.deepEqual(alice.errors, []);
  await alice.context.close();
});

test('a late joiner sees the recent history, oldest first', async () => {
  const room = `history${Date.now()}`;
  for (const text of ['first', 'second', 'third']) {
    const response = await fetch(`${server.url}/api/publish`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ channel: `chat:${room}`, data: { nick: 'backend', text } }),
    });
    assert.equal(response.status, 200);
  }
  const carol = await join('carol', room);
  await carol.page.locator('#messages .msg', { hasText: 'third' }).waitFor({ timeout: WAIT_MS });
  assert.deepEqual(await carol.page.locator('#messages .msg .text').allTextContents(), ['first', 'second', 'third']);
  await send(carol.page, 'fourth');
  await carol.page.locator('#messages .msg', { hasText: 'fourth' }).waitFor({ timeout: WAIT_MS });
  assert.deepEqual(await carol.page.locator('#messages .msg .text').allTextContents(), [
    'first',
    'second',
    'third',
    'fourth',
  ]);
  assert.deepEqual(carol.errors, []);
  await carol.context.close();
});

test('markup in messages and nicknames is shown as text and never run', async () => {
  const room = `xss${Date.now()}`;
  const attack = '<img src=x onerror=alert(1)>';
  const mallory = await join('<b>mallory</b>', room);
  const victim = await join('victim', room);
  await send(mallory.page, attack);
  const msg = victim.page.locator('#messages .msg', { hasText: attack });
  await msg.waitFor({ timeout: WAIT_MS });
  assert.equal(await msg.locator('.text').textContent(), attack);
  assert.equal(await msg.locator('.nick').textContent(), '<b>mallory</b>');
  await victim.page.locator('#presence li', { hasText: '<b>mallory</b>' }).waitFor({ timeout: WAIT_MS });
  for (const { page, dialogs } of [mallory, victim]) {
    assert.equal(await page.locator('#messages img, #messages b, #presence b').count(), 0, 'no element created');
    assert.deepEqual(dialogs, [], 'no alert ran');
  }
  await mallory.context.close();
  await victim.context.close();
});
