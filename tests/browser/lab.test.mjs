// The transports lab in a real Chromium against the real server: four columns, each a
// client forced onto one transport, all showing what is published to the channel.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../js/support/server.mjs';
import { launchBrowser, openPage } from './support/browser.mjs';

const TRANSPORTS = ['websocket', 'sse', 'long-poll', 'poll'];
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
 * @param {string} channel
 * @param {unknown} data
 */
async function apiPublish(channel, data) {
  const response = await fetch(`${server.url}/api/publish`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ channel, data }),
  });
  assert.equal(response.status, 200, await response.text());
}

/**
 * Opens the lab on `channel` and waits until every column is subscribed.
 *
 * @param {string} channel
 */
async function openLab(channel) {
  const opened = await openPage(browser);
  await opened.page.goto(`${server.url}/?channel=${encodeURIComponent(channel)}`);
  for (const t of TRANSPORTS) {
    await opened.page.waitForSelector(`#col-${t}[data-subscribed="true"]`, { timeout: WAIT_MS });
    await opened.page.waitForSelector(`#col-${t} .state[data-state="connected"]`, { timeout: WAIT_MS });
  }
  return opened;
}

test('a publication made through the HTTP API shows in all four columns', async () => {
  const channel = `lab-${Date.now()}`;
  const { page, context, errors } = await openLab(channel);
  await apiPublish(channel, { text: 'hello from the API' });
  for (const t of TRANSPORTS) {
    const msg = page.locator(`#col-${t} .msg`, { hasText: 'hello from the API' });
    await msg.waitFor({ timeout: WAIT_MS });
    assert.equal(await msg.getAttribute('data-offset'), '1', `${t} offset`);
  }
  for (const t of TRANSPORTS) {
    assert.equal(await page.locator(`#col-${t} .msg`).count(), 1, `${t} shows it once`);
    assert.equal(await page.textContent(`#col-${t} .count`), '1');
    assert.notEqual(await page.textContent(`#col-${t} .bytes-received`), '0 B', `${t} counts bytes`);
  }
  assert.deepEqual(errors, []);
  await context.close();
});

test('the publish form reaches every column with a measured latency and RTT', async () => {
  const channel = `lab-form-${Date.now()}`;
  const { page, context, errors } = await openLab(channel);
  await page.fill('#publish-text', 'typed in the lab');
  await page.click('#publish-form button[type="submit"]');
  for (const t of TRANSPORTS) {
    const msg = page.locator(`#col-${t} .msg`, { hasText: 'typed in the lab' });
    await msg.waitFor({ timeout: WAIT_MS });
    assert.match(await msg.locator('.latency').textContent(), /^\d+ ms$/, `${t} latency`);
  }
  await page.waitForSelector('#publish-status:has-text("published at offset 1")', { timeout: WAIT_MS });
  // The lab pings every 2 s; the short poll measures every request.
  for (const t of TRANSPORTS) {
    await page.waitForFunction((id) => /ms$/.test(document.querySelector(`${id} .rtt`)?.textContent ?? ''), `#col-${t}`, {
      timeout: WAIT_MS,
    });
  }
  assert.deepEqual(errors, []);
  await context.close();
});

test('each column recovers what was published while its connection was dropped', async () => {
  const channel = `lab-drop-${Date.now()}`;
  const { page, context, errors } = await openLab(channel);
  for (const t of TRANSPORTS) await page.click(`#col-${t} .drop`);
  for (let n = 1; n <= 5; n++) await apiPublish(channel, { text: `missed ${n}` });
  for (const t of TRANSPORTS) {
    await page.locator(`#col-${t} .msg`, { hasText: 'missed 5' }).waitFor({ timeout: WAIT_MS });
    const offsets = await page.locator(`#col-${t} .msg`).evaluateAll((els) => els.map((e) => e.dataset.offset));
    // Newest first in the column.
    assert.deepEqual(offsets, ['5', '4', '3', '2', '1'], `${t} got each once, in order`);
  }
  assert.deepEqual(errors, []);
  await context.close();
});

test('switching the channel moves every column to the new channel', async () => {
  const first = `lab-first-${Date.now()}`;
  const second = `lab-second-${Date.now()}`;
  const { page, context, errors } = await openLab(first);
  await apiPublish(first, { text: 'on the first channel' });
  for (const t of TRANSPORTS) {
    await page.locator(`#col-${t} .msg`, { hasText: 'on the first channel' }).waitFor({ timeout: WAIT_MS });
  }
  await page.fill('#channel', second);
  await page.click('#channel-form button[type="submit"]');
  for (const t of TRANSPORTS) {
    await page.waitForSelector(`#col-${t}[data-subscribed="true"]`, { timeout: WAIT_MS });
  }
  await apiPublish(first, { text: 'not shown' });
  await apiPublish(second, { text: 'on the second channel' });
  for (const t of TRANSPORTS) {
    await page.locator(`#col-${t} .msg`, { hasText: 'on the second channel' }).waitFor({ timeout: WAIT_MS });
    assert.deepEqual(await page.locator(`#col-${t} .msg .text`).allTextContents(), ['on the second channel']);
  }
  assert.match(page.url(), new RegExp(`channel=${second}`));
  assert.deepEqual(errors, []);
  await context.close();
});
