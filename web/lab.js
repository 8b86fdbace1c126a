/**
 * @module lab
 *
 * The transports lab: four `Switchboard` clients on one channel, each forced onto one
 * transport, rendered side by side. Every publication shows its offset, its text, its
 * latency (publish time → arrival, from the `sentAt` the publish form embeds) and each
 * column shows its transport's RTT and bytes. User data is only ever set with `textContent`.
 */

import { Switchboard, TRANSPORT_NAMES } from '/client/switchboard.js';
import { describeError, find } from './dom.js';

/** @typedef {import('/client/switchboard.js').Subscription} Subscription */
/** @typedef {import('/client/switchboard.js').TransportName} TransportName */

/** @type {Record<TransportName, string>} */
const LABELS = { websocket: 'WebSocket', sse: 'Server-Sent Events', 'long-poll': 'Long-poll', poll: 'Short poll' };
const MAX_SHOWN = 200;

const columnsEl = find(document, '#columns', HTMLElement);
const template = find(document, '#column-template', HTMLTemplateElement);
const channelForm = find(document, '#channel-form', HTMLFormElement);
const channelInput = find(document, '#channel', HTMLInputElement);
const publishForm = find(document, '#publish-form', HTMLFormElement);
const publishInput = find(document, '#publish-text', HTMLInputElement);
const publishStatus = find(document, '#publish-status', HTMLElement);

const params = new URLSearchParams(location.search);
let channel = params.get('channel') || 'lab';
channelInput.value = channel;

/**
 * @typedef {object} Column
 * @property {TransportName} name
 * @property {Switchboard} client
 * @property {HTMLElement} el the column, `#col-<transport>`
 * @property {HTMLElement} messages its list of publications (`.msg` items, newest first)
 * @property {Subscription | null} sub
 * @property {number} count publications shown since the channel was chosen
 */

/** @type {Column[]} */
const columns = TRANSPORT_NAMES.map((name) => {
  const el = find(template.content, '.column', HTMLElement).cloneNode(true);
  if (!(el instanceof HTMLElement)) throw new Error('page bug: column template');
  el.id = `col-${name}`;
  el.dataset.transport = name;
  find(el, 'h2', HTMLElement).textContent = LABELS[name];
  columnsEl.append(el);
  const client = new Switchboard(location.origin, {
    transports: [name],
    name: `lab-${name}`,
    pingIntervalMs: 2000,
    pollIntervalMs: 1000,
    minReconnectDelayMs: 300,
  });
  /** @type {Column} */
  const column = { name, client, el, messages: find(el, '.messages', HTMLElement), sub: null, count: 0 };
  const stateEl = find(el, '.state', HTMLElement);
  client.on('state', ({ state }) => {
    stateEl.textContent = state;
    stateEl.dataset.state = state;
    if (state !== 'connected') el.dataset.subscribed = 'false';
    showBytes(column);
  });
  client.on('rtt', ({ rtt }) => {
    find(el, '.rtt', HTMLElement).textContent = `${rtt.toFixed(1)} ms`;
    showBytes(column);
  });
  client.on('error', ({ error }) => console.warn(`[${name}]`, describeError(error)));
  find(el, '.drop', HTMLButtonElement).addEventListener('click', () => client._debugDropTransport());
  return column;
});

/** @param {Column} column */
function showBytes(column) {
  find(column.el, '.bytes-received', HTMLElement).textContent = formatBytes(column.client.bytes.received);
  find(column.el, '.bytes-sent', HTMLElement).textContent = formatBytes(column.client.bytes.sent);
}

/** @param {number} n */
function formatBytes(n) {
  if (n < 10_000) return `${n} B`;
  if (n < 10_000_000) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

/**
 * Adds a line at the top of a column.
 *
 * @param {Column} column
 * @param {string} text
 * @param {string} className
 * @returns {HTMLLIElement}
 */
function addLine(column, text, className) {
  const li = document.createElement('li');
  li.className = className;
  li.textContent = text;
  column.messages.prepend(li);
  while (column.messages.children.length > MAX_SHOWN) column.messages.lastElementChild?.remove();
  return li;
}

/**
 * @param {string} className
 * @param {string} text
 */
function span(className, text) {
  const el = document.createElement('span');
  el.className = className;
  el.textContent = text;
  return el;
}

/** @param {Column} column */
function subscribe(column) {
  const sub = column.client.subscribe(channel);
  column.sub = sub;
  column.count = 0;
  column.messages.replaceChildren();
  find(column.el, '.count', HTMLElement).textContent = '0';
  column.el.dataset.subscribed = 'false';
  sub.on('subscribed', ({ recovered }) => {
    column.el.dataset.subscribed = 'true';
    if (recovered !== undefined) addLine(column, recovered ? 'resubscribed, recovered' : 'resubscribed', 'notice');
  });
  sub.on('unrecovered', ({ offset }) => addLine(column, `missed publications, now at offset ${offset}`, 'notice'));
  sub.on('error', ({ error }) => addLine(column, `error: ${describeError(error)}`, 'notice error'));
  sub.on('publication', (pub) => {
    const arrived = Date.now();
    const data = /** @type {{text?: unknown, sentAt?: unknown} | null} */ (pub.data);
    const text =
      pub.bytes ? `(${pub.bytes.length} binary bytes)`
      : data && typeof data === 'object' && typeof data.text === 'string' ? data.text
      : JSON.stringify(pub.data);
    const latency =
      data && typeof data === 'object' && typeof data.sentAt === 'number' ? `${Math.max(0, arrived - data.sentAt)} ms` : '';
    const li = addLine(column, '', 'msg');
    li.dataset.offset = String(pub.offset);
    li.append(span('offset', `#${pub.offset}`), span('text', text), span('latency', latency));
    column.count++;
    find(column.el, '.count', HTMLElement).textContent = String(column.count);
    showBytes(column);
  });
}

/** The lab publishes over the WebSocket column's client. */
const publisher = columns.find((c) => c.name === 'websocket') ?? columns[0];

for (const column of columns) {
  subscribe(column);
  column.client.connect();
}
setInterval(() => columns.forEach(showBytes), 1000);

channelForm.addEventListener('submit', (event) => {
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

publishForm.addEventListener('submit', async (event) => {
  event.preventDefault();
  const text = publishInput.value;
  if (!text) return;
  publishInput.value = '';
  publishStatus.textContent = 'publishing…';
  try {
    const { offset } = await publisher.client.publish(channel, { text, sentAt: Date.now() });
    publishStatus.textContent = `published at offset ${offset}`;
  } catch (err) {
    publishStatus.textContent = `publish failed: ${describeError(err)}`;
  }
});
