// The Sandbar cluster page: hosts, workers, sessions, the shard map, recent
// failovers and handoffs, message rates. Live over the `cluster:live`
// channel, which needs the admin token (admin.token) to join.
import { Socket } from '/assets/phoenix.mjs';
import { el } from '/dom.js';

const root = document.getElementById('sandbar-app');
const store = window.sessionStorage;
const PALETTE = ['#3490dc', '#e3342f', '#38c172', '#f6993f', '#9561e2', '#4dc0b5', '#f66d9b', '#ffed4a', '#6574cd', '#a0aec0'];

function askToken(error) {
  const input = el('input', { id: 'admin-token', type: 'password', placeholder: 'admin.token' });
  root.replaceChildren(el('form', { id: 'signin', on: { submit: (e) => { e.preventDefault(); open(input.value); } } },
    el('h1', { text: 'Sandbar cluster' }), input, el('button', { type: 'submit', text: 'Open' }), el('p', { class: 'error', text: error ?? '' })));
  input.focus();
}

async function open(adminToken) {
  const res = await fetch('/cluster/token', { method: 'POST', headers: { authorization: `Bearer ${adminToken}` } });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) return askToken(body.error?.message ?? `HTTP ${res.status}`);
  store.setItem('sandbar.admin', adminToken);
  live(adminToken, body.token);
}

/** A stable color per host (hue by host order in the shard map's addresses). */
function colors(hostIds) {
  const m = new Map();
  [...hostIds].sort().forEach((h, i) => m.set(h, PALETTE[i % PALETTE.length]));
  return m;
}

function live(adminToken, token) {
  const status = el('span', { id: 'status', class: 'status connecting', text: 'connecting…' });
  const banner = el('div', { id: 'banner', class: 'banner hidden', text: 'Connection lost — reconnecting…' });
  const hosts = el('div', { id: 'hosts', class: 'hosts' });
  const totals = el('p', { id: 'totals' });
  const legend = el('div', { class: 'legend' });
  const map = el('div', { id: 'shardmap', class: 'shardmap' });
  const events = el('tbody', { id: 'events' });
  root.replaceChildren(
    el('header', {}, el('strong', { text: 'Sandbar cluster' }), status, el('span', { id: 'served-by' })),
    banner,
    el('div', { class: 'cluster' },
      el('div', { class: 'card' }, el('h3', { text: 'Hosts and workers' }), totals, hosts),
      el('div', { class: 'card' }, el('h3', { text: 'Shard map (fill: master, border: first replica)' }), legend, map),
      el('div', { class: 'card' }, el('h3', { text: 'Recent failovers and handoffs' }),
        el('table', { class: 'events' }, el('thead', {}, el('tr', {}, ...['when', 'kind', 'from', 'to', 'shards', 'duration'].map((t) => el('th', { text: t })))), events))));

  const socket = new Socket('/socket', { params: { token }, longPollFallbackMs: 2500 });
  let everOpen = false;
  socket.onOpen(() => { everOpen = true; banner.classList.add('hidden'); status.className = 'status online'; status.textContent = 'live'; });
  const down = () => { status.className = 'status offline'; status.textContent = 'offline'; if (everOpen) banner.classList.remove('hidden'); };
  socket.onError(down);
  socket.onClose(down);
  socket.connect();
  const ch = socket.channel('cluster:live', { admin_token: adminToken });
  ch.on('state', render);
  ch.join().receive('error', (e) => { socket.disconnect(); store.removeItem('sandbar.admin'); askToken(e.reason); });
  window.sandbarCluster = { socket, last: null };

  function render(s) {
    window.sandbarCluster.last = s;
    document.getElementById('served-by').textContent = `served by ${s.self}`;
    const hostIds = new Set([...s.hosts.map((h) => h.hostId), ...s.shards.addrs.map((a) => a.slice(0, a.lastIndexOf('.')))]);
    const color = colors(hostIds);
    let sessions = 0, inRate = 0, outRate = 0;
    hosts.replaceChildren(...s.hosts.map((h) => {
      const rows = h.workers.map((w) => {
        sessions += w.sessions; inRate += w.inPerS ?? 0; outRate += w.outPerS ?? 0;
        return el('tr', { 'data-worker': w.addr }, ...[`w${w.index}`, w.sessions, w.longpoll, w.masterShards, w.replicaShards, w.inPerS ?? '…', w.outPerS ?? '…', `${Math.round(w.heapUsed / 1048576)} MB`].map((v) => el('td', { text: String(v) })));
      });
      return el('div', { class: 'host', 'data-host': h.hostId, style: `border-color: ${color.get(h.hostId)}` },
        el('strong', { text: h.hostId }),
        el('table', {}, el('thead', {}, el('tr', {}, ...['', 'sessions', 'longpoll', 'master', 'replica', 'in/s', 'out/s', 'heap'].map((t) => el('th', { text: t })))), el('tbody', {}, ...rows)));
    }));
    totals.textContent = `${s.hosts.length} host(s), ${sessions} session(s), ${inRate} frames/s in, ${outRate} frames/s out`;
    legend.replaceChildren(...[...color].map(([h, c]) => el('span', {}, el('i', { style: `background: ${c}` }), h)));
    const cells = [];
    for (let n = 0; n < s.shards.count; n++) {
      const m = s.shards.master[n];
      const r = s.shards.replicas[n]?.[0];
      const host = (i) => (i === undefined || i < 0 ? null : s.shards.addrs[i].slice(0, s.shards.addrs[i].lastIndexOf('.')));
      const mh = host(m), rh = host(r);
      cells.push(el('div', { class: 'shard', 'data-master': mh ?? '', title: `shard ${n}: master ${m >= 0 ? s.shards.addrs[m] : 'none'}${r !== undefined ? `, replica ${s.shards.addrs[r]}` : ''}`,
        style: `background: ${mh ? color.get(mh) : '#dae1e7'}; outline: 2px solid ${rh ? color.get(rh) : 'transparent'}; outline-offset: -2px` }));
    }
    map.replaceChildren(...cells);
    events.replaceChildren(...s.events.map((e) => el('tr', { class: `event ${e.kind}` },
      ...[new Date(e.startedAt).toLocaleTimeString(), e.kind, e.from, e.to.join(', '), e.shards, `${e.durationMs} ms`].map((v) => el('td', { text: String(v) })))));
  }
}

const saved = store.getItem('sandbar.admin');
const fromHash = location.hash.startsWith('#token=') ? decodeURIComponent(location.hash.slice(7)) : null;
if (fromHash) { history.replaceState(null, '', location.pathname); open(fromHash); }
else if (saved) open(saved);
else askToken();
