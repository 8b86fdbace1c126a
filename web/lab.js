/**
 * @module lab
 *
 * The transports lab: four `Switchboard` clients on one channel, each forced onto one
 * transport, rendered side by side. Every publication shows its offset, its text, its
 * latency (publish time → arrival, from the `sentAt` the publish form embeds) and each
 * column shows its transport's RTT and bytes. User data is only ever set with `textContent`.
 */

import { Switchboard, TRANSPORT_NAMES } from '/client/switchboard.js';

/** @typedef {import('/client/switchboard.js').Subscription} Subscription */

const LABELS = { websocket: 'WebSocket', sse: 'Server-Sent Events', 'long-poll': 'Long-poll', poll: 'Short poll' };
const MAX_SHOWN = 200;

const columnsEl = document.getElementById('columns');
const template = document.getElementById('column-template');
const channelInput = document.getElementById('channel');
const publishInput = document.getElementById('publish-text');
const publishStatus = document.getElementById('publish-status');

const params = new URLSearchParams(location.search);
let channel = params.get('channel') || 'lab';
channelInput.value = channel;

/**
 * @typedef {object} Column
 * @property {string} name
 * @property {Switchboard} client
 * @property {HTMLElement} el
 * @property {Subscription | null} sub
 * @property {number} count
 */

/** @type {Column[]} */
const columns = TRANSPORT_NAMES.map((name) => {
  const el = /** @type {HTMLElement} */ (template.content.firstElementChild.cloneNode(true));
  el.id = `col-${name}`;
  el.dataset.transport = name;
  el.querySelector('h2').textContent = LABELS[name];
  columnsEl.append(el);
  const client = new Switchboard(location.origin, {
    transports: [name],
    name: `lab-${name}`,
    pingIntervalMs: 2000,
    pollIntervalMs: 1000,
    minReconnectDelayMs: 300,
  });
  const column = { name, client, el, sub: null, count: 0 };
  client.on('state', ({ state }) => {
    const stateEl = el.querySelector('.state');
    stateEl.textContent = state;
    stateEl.dataset.state = state;
    if (state !== 'connected') el.dataset.subscribed = 'false';
    showBytes(column);
  });
  client.on('rtt', ({ rtt }) => {
    el.querySelector('.rtt').textContent = `${rtt.toFixed(1)} ms`;
    showBytes(column);
  });
  client.on('error', ({ error }) => console.warn(`[${name}]`, error.code, error.message));
  el.querySelector('.drop').addEventListener('click', () => client._debugDropTransport());
  return column;
});

/** @param {Column} column */
function showBytes(column) {
  column.el.querySelector('.bytes-received').textContent = formatBytes(column.client.bytes.received);
  column.el.querySelector('.bytes-sent').textContent = formatBytes(column.client.bytes.sent);
}

/** @param {number} n */
function formatBytes(n) {
  if (n < 10_000) return `${n} B`;
  if (n < 10_000_000) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

/**
 * @param {Column} column
 * @param {string} text
 * @param {string} className
 * @returns {HTMLLIElement}
 */
function addLine(column, text, className) {
  const list = column.el.querySelector('.messages');
  const li = document.createElement('li');
  li.className = className;
  li.textContent = text;
  list.prepend(li);
  while (list.children.length > MAX_SHOWN) list.lastElementChild?.remove();
  return li;
}

/** @param {Column} column */
function subscribe(column) {
  const sub = column.client.subscribe(channel);
  column.sub = sub;
  column.count = 0;
  column.el.querySelector('.messages').replaceChildren();
  column.el.querySelector('.count').textContent = '0';
  column.el.dataset.subscribed = 'false';
  sub.on('subscribed', ({ recovered }) => {
    column.el.dataset.subscribed = 'true';
    if (recovered !== undefined) addLine(column, recovered ? 'resubscribed, recovered' : 'resubscribed', 'notice');
  });
  sub.on('unrecovered', ({ offset }) => addLine(column, `missed publications, now at offset ${offset}`, 'notice'));
  sub.on('error', ({ error }) => addLine(column, `error: ${error.code} ${error.message}`, 'notice error'));
  sub.on('publication', (pub) => {
    const arrived = Date.now();
    const data = /** @type {any} */ (pub.data);
    const li = addLine(column, '', 'msg');
    li.dataset.offset = String(pub.offset);
    const offset = document.createElement('span');
    offset.className = 'offset';
    offset.textContent = `#${pub.offset}`;
    const text = document.createElement('span');
    text.className = 'text';
    text.textContent =
      pub.bytes ? `(${pub.bytes.length} binary bytes)`
      : data && typeof data === 'object' && typeof data.text === 'string' ? data.text
      : JSON.stringify(data);
    const latency = document.createElement('span');
    latency.className = 'latency';
    latency.textContent =
      data && typeof data === 'object' && typeof data.sentAt === 'number' ? `${Math.max(0, arrived - data.sentAt)} ms` : '';
    li.append(offset, text, latency);
    column.count++;
    column.el.querySelector('.count').textContent = String(column.count);
    showBytes(column);
  });
}

for (const column of columns) {
  subscribe(column);
  column.client.connect();
}
setInterval(() => columns.forEach(showBytes), 1000);

document.getElementById('channel-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const next = channelInput.value.trim();
  if (!next || next === channel) return;
  channel = next;
  const url = new URL(location.href);
  url.searchParams.set('channel', channel);
  history.replaceState(null, '', url);
  for (const column of columns) {
    column.sub?.unsubscribe();
    subscribe(column);
  }
});

document.getElementById('publish-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const text = publishInput.value;
  if (!text) return;
  publishInput.value = '';
  publishStatus.textContent = 'publishing…';
  try {
    const { offset } = await columns[0].client.publish(channel, { text, sentAt: Date.now() });
    publishStatus.textContent = `published at offset ${offset}`;
  } catch (err) {
    publishStatus.textContent = `publish failed: ${err.code ?? ''} ${err.message}`;
  }
});
