/**
 * @module chat
 *
 * A minimal chat on channel `chat:<room>`: recent history on join (oldest first), live
 * messages `{nick, text}`, and who is here (presence plus join/leave events). Everything
 * users typed is put on the page with `textContent` only, never parsed as HTML.
 */

import { Switchboard } from '/client/switchboard.js';
import { describeError, errorCode, find } from './dom.js';

/** @typedef {import('/client/switchboard.js').Publication} Publication */
/** @typedef {import('/client/switchboard.js').ClientInfo} ClientInfo */

const HISTORY_LIMIT = 50;

const joinForm = find(document, '#join-form', HTMLFormElement);
const nickInput = find(document, '#nick', HTMLInputElement);
const roomInput = find(document, '#room', HTMLInputElement);
const chatEl = find(document, '#chat', HTMLElement);
const statusEl = find(document, '#chat-status', HTMLElement);
const messagesEl = find(document, '#messages', HTMLElement);
const presenceEl = find(document, '#presence', HTMLElement);
const presenceCountEl = find(document, '#presence-count', HTMLElement);
const sendForm = find(document, '#send-form', HTMLFormElement);
const textInput = find(document, '#text', HTMLInputElement);

const params = new URLSearchParams(location.search);
roomInput.value = params.get('room') || roomInput.value;
nickInput.value = params.get('nick') || sessionStorage.getItem('switchboard-nick') || '';

/** @type {Switchboard | null} */
let client = null;
let channel = '';
/** `epoch:offset` of the messages on the page, so history and live ones never repeat. */
const shown = new Set();
/** @type {Map<string, ClientInfo>} client id → who */
const present = new Map();

joinForm.addEventListener('submit', (event) => {
  event.preventDefault();
  const nick = nickInput.value.trim();
  const room = roomInput.value.trim();
  if (!nick || !room) return;
  sessionStorage.setItem('switchboard-nick', nick);
  join(nick, room);
});

sendForm.addEventListener('submit', async (event) => {
  event.preventDefault();
  const text = textInput.value.trim();
  if (!text || !client) return;
  textInput.value = '';
  try {
    await client.publish(channel, { nick: nickInput.value.trim(), text });
  } catch (err) {
    setStatus(`not sent: ${describeError(err)}`);
  }
});

/**
 * @param {string} nick
 * @param {string} room
 */
function join(nick, room) {
  client?.disconnect();
  channel = `chat:${room}`;
  shown.clear();
  present.clear();
  messagesEl.replaceChildren();
  renderPresence();
  chatEl.hidden = false;
  chatEl.dataset.channel = channel;
  document.title = `switchboard · ${room}`;

  const c = new Switchboard(location.origin, { name: 'chat', info: { nick } });
  client = c;
  c.on('state', ({ state, transport }) => {
    chatEl.dataset.state = state;
    setStatus(state === 'connected' ? `connected over ${transport}` : `${state}…`);
  });
  const sub = c.subscribe(channel, { joinLeave: true });
  sub.on('subscribed', ({ offset, recovered }) => {
    if (client !== c) return;
    // A first subscribe loads recent history; a resubscribe gets what it missed pushed
    // (or an `unrecovered` event, handled below).
    if (recovered === undefined) void load(c, offset);
    void refreshPresence(c);
  });
  sub.on('unrecovered', ({ offset }) => {
    if (client !== c) return;
    // The stream moved on without us: start over from its current history.
    shown.clear();
    messagesEl.replaceChildren();
    void load(c, offset);
  });
  sub.on('publication', (pub) => {
    if (client === c) addMessage(pub);
  });
  sub.on('join', ({ info }) => {
    present.set(info.client, info);
    renderPresence();
  });
  sub.on('leave', ({ info }) => {
    present.delete(info.client);
    renderPresence();
  });
  c.connect();
  textInput.focus();
}

/**
 * Loads the latest messages up to `offset` (the position the subscription starts from);
 * live ones follow it.
 *
 * @param {Switchboard} c
 * @param {number} offset
 */
async function load(c, offset) {
  if (offset === 0) return;
  try {
    const page = await c.history(channel, { before: offset + 1, limit: HISTORY_LIMIT });
    if (client !== c) return;
    for (const pub of page.publications) addMessage(pub);
  } catch (err) {
    setStatus(errorCode(err) === 'unsupported' ? 'history needs a WebSocket connection' : `history: ${describeError(err)}`);
  }
}

/** @param {Switchboard} c */
async function refreshPresence(c) {
  try {
    const clients = await c.presence(channel);
    if (client !== c) return;
    present.clear();
    for (const info of clients) present.set(info.client, info);
    renderPresence();
  } catch (err) {
    presenceCountEl.textContent = errorCode(err) === 'unsupported' ? '(needs WebSocket)' : '';
  }
}

/**
 * Puts a message in its place by offset, since history may arrive after live messages.
 *
 * @param {Publication} pub
 */
function addMessage(pub) {
  const key = `${pub.epoch}:${pub.offset}`;
  if (shown.has(key)) return;
  shown.add(key);
  const data = /** @type {{nick?: unknown, text?: unknown} | null} */ (pub.data);
  const li = document.createElement('li');
  li.className = 'msg';
  li.dataset.offset = String(pub.offset);
  const nick = document.createElement('span');
  nick.className = 'nick';
  nick.textContent = typeof data?.nick === 'string' ? data.nick : '?';
  const text = document.createElement('span');
  text.className = 'text';
  text.textContent = typeof data?.text === 'string' ? data.text : JSON.stringify(pub.data);
  li.append(nick, text);
  const next = [...messagesEl.children].find((el) => el instanceof HTMLElement && Number(el.dataset.offset) > pub.offset);
  messagesEl.insertBefore(li, next ?? null);
  li.scrollIntoView({ block: 'nearest' });
}

function renderPresence() {
  const items = [...present.values()]
    .map((info) => ({ info, nick: nickOf(info) }))
    .sort((a, b) => a.nick.localeCompare(b.nick));
  presenceEl.replaceChildren(
    ...items.map(({ info, nick }) => {
      const li = document.createElement('li');
      li.textContent = nick;
      li.dataset.client = info.client;
      if (client && info.client === client.clientId) li.classList.add('me');
      return li;
    }),
  );
  presenceCountEl.textContent = `(${items.length})`;
}

/** @param {ClientInfo} info */
function nickOf(info) {
  const extra = /** @type {{nick?: unknown} | null | undefined} */ (info.info);
  return typeof extra?.nick === 'string' ? extra.nick : info.user ?? info.client;
}

/** @param {string} text */
function setStatus(text) {
  statusEl.textContent = text;
}

if (params.get('nick') && params.get('room')) join(nickInput.value.trim(), roomInput.value.trim());
