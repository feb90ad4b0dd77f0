// The Sandbar demo chat page: sign in with a dev token, chat in rooms with a
// live presence list, send direct messages with their delivery state. Plain
// browser JavaScript with the official phoenix client, no build step.
//
// Delivery states of a direct message: "sending" (pushed), "stored" (the
// server's ok: the recipient's user actor holds it in the inbox, seq n),
// "delivered" (a receipt came back from one of the recipient's pages),
// "failed" (an error reply or a timeout). Messages sent while the recipient
// was away wait in the inbox and arrive when they come back.
import { Socket, LongPoll, Presence } from '/assets/phoenix.mjs';
import { el } from '/dom.js';

const root = document.getElementById('sandbar-app');
const params = new URLSearchParams(location.search);
const store = window.sessionStorage;

function time(at) {
  return new Date(at).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

// ---------------------------------------------------------------- sign in

function signInView(error) {
  const name = el('input', { id: 'name', placeholder: 'your name (a-z 0-9 _ - . @)', autocomplete: 'off', value: params.get('user') ?? '' });
  const form = el('form', { id: 'signin', on: { submit: (e) => { e.preventDefault(); signIn(name.value.trim()); } } },
    el('h1', { text: 'Sandbar' }),
    el('p', { text: 'Sign in as anyone: this page uses the development token endpoint (auth.devTokenEndpoint).' }),
    name, el('button', { type: 'submit', text: 'Sign in' }),
    el('p', { class: 'error', id: 'signin-error', text: error ?? '' }));
  root.replaceChildren(form);
  name.focus();
}

async function signIn(user) {
  let res;
  try {
    res = await fetch('/dev/token', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ user }) });
  } catch (err) {
    return signInView(`the server did not answer: ${err.message}`);
  }
  const body = await res.json().catch(() => ({}));
  if (!res.ok) {
    const why = res.status === 404 ? 'the dev token endpoint is off (auth.devTokenEndpoint = false)' : body.error?.message ?? `HTTP ${res.status}`;
    return signInView(why);
  }
  store.setItem('sandbar.user', body.user);
  store.setItem('sandbar.token', body.token);
  start(body.user, body.token);
}

// ---------------------------------------------------------------- chat

function start(me, token) {
  const state = { rooms: new Map(), current: null, dms: new Map(), lastSeq: Number(store.getItem(`sandbar.lastSeq.${me}`) ?? 0) };
  const status = el('span', { id: 'status', class: 'status connecting', text: 'connecting…' });
  const banner = el('div', { id: 'banner', class: 'banner hidden', text: 'Connection lost — reconnecting…' });
  const roomList = el('ul', { id: 'room-list' });
  const presenceList = el('ul', { id: 'presence' });
  const messages = el('ol', { id: 'messages', class: 'messages' });
  const roomTitle = el('h2', { id: 'room-title' });
  const msgInput = el('input', { id: 'msg-input', placeholder: 'message the room', autocomplete: 'off' });
  const roomInput = el('input', { id: 'room-input', placeholder: 'room name', autocomplete: 'off' });
  const dmTo = el('input', { id: 'dm-to', placeholder: 'to (user name)', autocomplete: 'off' });
  const dmInput = el('input', { id: 'dm-input', placeholder: 'direct message', autocomplete: 'off' });
  const dmList = el('ol', { id: 'dm-list', class: 'messages' });

  root.replaceChildren(
    el('header', {}, el('strong', { text: 'Sandbar' }), el('span', { id: 'me', text: `signed in as ${me}` }), status,
      el('button', { id: 'signout', text: 'Sign out', on: { click: () => { store.removeItem('sandbar.token'); location.reload(); } } })),
    banner,
    el('main', {},
      el('nav', {},
        el('h3', { text: 'Rooms' }), roomList,
        el('form', { id: 'join-room', on: { submit: (e) => { e.preventDefault(); if (roomInput.value.trim()) joinRoom(roomInput.value.trim()); roomInput.value = ''; } } },
          roomInput, el('button', { type: 'submit', text: 'Join' })),
        el('h3', { text: 'Here now' }), presenceList),
      el('section', { id: 'room' }, roomTitle, messages,
        el('form', { id: 'send-msg', on: { submit: (e) => { e.preventDefault(); sendMsg(); } } }, msgInput, el('button', { type: 'submit', text: 'Send' }))),
      el('aside', {}, el('h3', { text: 'Direct messages' }), dmList,
        el('form', { id: 'send-dm', on: { submit: (e) => { e.preventDefault(); sendDm(); } } }, dmTo, dmInput, el('button', { type: 'submit', text: 'Send' })))));

  const transport = params.get('transport') === 'longpoll' ? LongPoll : undefined;
  const socket = new Socket('/socket', { params: { token }, longPollFallbackMs: transport ? undefined : 2500, ...(transport ? { transport } : {}) });
  let everOpen = false;
  socket.onOpen(() => {
    everOpen = true;
    banner.classList.add('hidden');
    presenceList.classList.remove('stale');
    status.className = 'status online';
    status.textContent = `online (${socket.transport === LongPoll ? 'LongPoll' : 'WebSocket'})`;
  });
  const down = () => {
    status.className = 'status offline';
    status.textContent = 'offline';
    if (everOpen) banner.classList.remove('hidden');
    // Who is here is unknown while offline; the rejoin's presence_state refreshes it.
    presenceList.classList.add('stale');
  };
  socket.onError(down);
  socket.onClose(down);
  socket.connect();
  window.sandbar = { socket, state, me };

  // Own channel: dms in, receipts, the inbox replayed after an absence.
  const userCh = socket.channel(`user:${me}`, () => ({ device: 'browser', last_seq: state.lastSeq }));
  userCh.on('dm', (m) => {
    if (m.seq > state.lastSeq) {
      state.lastSeq = m.seq;
      store.setItem(`sandbar.lastSeq.${me}`, String(m.seq));
    }
    userCh.push('ack', { seq: m.seq });
    if (m.body && typeof m.body === 'object' && typeof m.body.receipt === 'string') {
      const mine = state.dms.get(m.body.receipt);
      if (mine) setDmState(mine, 'delivered');
      return;
    }
    if (document.getElementById(`dm-${m.from}-${m.id}`)) return;
    const text = typeof m.body === 'object' && m.body ? m.body.text : String(m.body);
    dmList.append(el('li', { id: `dm-${m.from}-${m.id}`, class: 'dm in', 'data-from': m.from },
      el('span', { class: 'who', text: m.from }), el('span', { class: 'body', text: text ?? '' }), el('time', { text: time(m.at) })));
    dmList.scrollTop = dmList.scrollHeight;
    if (!dmTo.value) dmTo.value = m.from;
    // A receipt back to the sender: its page shows "delivered".
    userCh.push('dm', { to: m.from, id: `r-${m.id}`, body: { receipt: m.id } });
  });
  userCh.join().receive('error', (e) => { status.textContent = `user channel refused: ${e.reason}`; });

  function setDmState(item, s) {
    item.state = s;
    item.node.dataset.state = s;
    item.node.querySelector('.state').textContent = s === 'stored' ? `stored #${item.seq}` : s;
  }

  function sendDm() {
    const to = dmTo.value.trim();
    const text = dmInput.value;
    if (!to || !text) return;
    dmInput.value = '';
    const id = `${me}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
    const node = el('li', { id: `dm-out-${id}`, class: 'dm out', 'data-to': to },
      el('span', { class: 'who', text: `→ ${to}` }), el('span', { class: 'body', text }), el('span', { class: 'state' }));
    dmList.append(node);
    dmList.scrollTop = dmList.scrollHeight;
    const item = { node, seq: null, state: 'sending' };
    state.dms.set(id, item);
    setDmState(item, 'sending');
    userCh.push('dm', { to, id, body: { text } }, 10000)
      .receive('ok', (r) => { item.seq = r.seq; if (item.state !== 'delivered') setDmState(item, 'stored'); })
      .receive('error', (e) => setDmState(item, `failed: ${e.reason}`))
      .receive('timeout', () => setDmState(item, 'failed: timeout'));
  }

  // Rooms: each with its Presence; the shown one is state.current.
  function joinRoom(name) {
    if (state.rooms.has(name)) return showRoom(name);
    const ch = socket.channel(`room:${name}`, () => ({ device: 'browser', last_seq: room.lastSeq }));
    const room = { name, ch, presence: new Presence(ch), messages: [], lastSeq: 0, item: null };
    room.item = el('li', { 'data-room': name }, el('a', { href: '#', text: `# ${name}`, on: { click: (e) => { e.preventDefault(); showRoom(name); } } }));
    roomList.append(room.item);
    state.rooms.set(name, room);
    ch.on('msg', (m) => {
      if (m.seq <= room.lastSeq) return;
      room.lastSeq = m.seq;
      room.messages.push(m);
      if (room.messages.length > 500) room.messages.shift();
      if (state.current === name) appendMsg(m);
    });
    room.presence.onSync(() => { if (state.current === name) renderPresence(room); });
    ch.join().receive('error', (e) => { room.item.textContent = `# ${name} (refused: ${e.reason})`; });
    showRoom(name);
  }

  function showRoom(name) {
    state.current = name;
    const room = state.rooms.get(name);
    for (const li of roomList.children) li.classList.toggle('current', li.dataset.room === name);
    roomTitle.textContent = `# ${name}`;
    messages.replaceChildren();
    for (const m of room.messages) appendMsg(m);
    renderPresence(room);
    msgInput.focus();
  }

  function appendMsg(m) {
    const text = typeof m.body === 'object' && m.body ? m.body.text : String(m.body);
    messages.append(el('li', { class: m.from === me ? 'msg mine' : 'msg', 'data-seq': String(m.seq) },
      el('span', { class: 'who', text: m.from }), el('span', { class: 'body', text: text ?? '' }), el('time', { text: time(m.at) })));
    messages.scrollTop = messages.scrollHeight;
  }

  function renderPresence(room) {
    const list = room.presence.list((id, { metas }) => ({ id, n: metas.length }));
    list.sort((a, b) => a.id.localeCompare(b.id));
    presenceList.replaceChildren(...list.map((p) => el('li', { 'data-user': p.id, text: p.n > 1 ? `${p.id} (${p.n})` : p.id })));
  }

  function sendMsg() {
    const text = msgInput.value;
    const room = state.rooms.get(state.current);
    if (!text || !room) return;
    msgInput.value = '';
    const id = `${me}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
    room.ch.push('msg', { id, body: { text } }, 10000).receive('error', (e) => appendMsg({ from: 'system', seq: 0, body: `not sent: ${e.reason}`, at: Date.now() }));
  }

  joinRoom(params.get('room') ?? 'lobby');
}

const savedUser = store.getItem('sandbar.user');
const savedToken = store.getItem('sandbar.token');
if (savedUser && savedToken && !params.has('user')) start(savedUser, savedToken);
else if (params.has('user') && params.get('autologin') === '1') signIn(params.get('user'));
else signInView();
