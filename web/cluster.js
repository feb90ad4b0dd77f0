// The Sandbar cluster page: hosts (suspect ones marked) and their workers
// (sessions, shards, rates, event-loop delay, NATS connection), graphs of the
// last minutes drawn from the states received, the shard map, recent
// failovers and handoffs, and a search for a user or room. Live over the
// `cluster:live` channel, which needs the admin token (admin.token) to join.
import { Socket } from '/assets/phoenix.mjs';
import { el } from '/dom.js';
import { History, lineChart } from '/charts.js';

const root = document.getElementById('sandbar-app');
const store = window.sessionStorage;
const PALETTE = ['#3490dc', '#e3342f', '#38c172', '#f6993f', '#9561e2', '#4dc0b5', '#f66d9b', '#ffed4a', '#6574cd', '#a0aec0'];
/** States kept for the graphs: one a second, the last five minutes. */
const HISTORY = 300;

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

/** A stable color per host (by sorted host id). */
function colors(hostIds) {
  const m = new Map();
  [...hostIds].sort().forEach((h, i) => m.set(h, PALETTE[i % PALETTE.length]));
  return m;
}

function natsText(w) {
  if (!w.answered || !w.nats) return '…';
  return w.nats.connected ? `up${w.nats.reconnects ? ` (${w.nats.reconnects} reconn.)` : ''}` : 'DOWN';
}

function live(adminToken, token) {
  const status = el('span', { id: 'status', class: 'status connecting', text: 'connecting…' });
  const banner = el('div', { id: 'banner', class: 'banner hidden', text: 'Connection lost — reconnecting…' });
  const hosts = el('div', { id: 'hosts', class: 'hosts' });
  const totals = el('p', { id: 'totals' });
  const charts = el('div', { id: 'charts', class: 'charts' });
  const legend = el('div', { class: 'legend' });
  const map = el('div', { id: 'shardmap', class: 'shardmap' });
  const events = el('tbody', { id: 'events' });
  const kind = el('select', { id: 'lookup-kind' }, el('option', { value: 'user', text: 'user' }), el('option', { value: 'room', text: 'room' }));
  const query = el('input', { id: 'lookup-id', placeholder: 'user or room id', autocomplete: 'off' });
  const found = el('div', { id: 'lookup-result', class: 'lookup' });
  const search = el('form', { id: 'lookup', on: { submit: (e) => { e.preventDefault(); lookup(kind.value, query.value.trim()); } } },
    kind, query, el('button', { type: 'submit', text: 'Find' }));
  root.replaceChildren(
    el('header', {}, el('strong', { text: 'Sandbar cluster' }), status, el('span', { id: 'served-by' })),
    banner,
    el('div', { class: 'cluster' },
      el('div', { class: 'card' }, el('h3', { text: 'Hosts and workers' }), totals, hosts),
      el('div', { class: 'card' }, el('h3', { text: 'Last minutes' }), charts),
      el('div', { class: 'card' }, el('h3', { text: 'Find a user or room' }), search, found),
      el('div', { class: 'card' }, el('h3', { text: 'Shard map (fill: master, border: first replica)' }), legend, map),
      el('div', { class: 'card' }, el('h3', { text: 'Recent failovers and handoffs' }),
        el('table', { class: 'events' }, el('thead', {}, el('tr', {}, ...['when', 'kind', 'from', 'to', 'shards', 'duration'].map((t) => el('th', { text: t })))), events))));

  const history = new History(HISTORY);
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
  window.sandbarCluster = { socket, last: null, history };

  function lookup(k, id) {
    if (!id) return;
    found.replaceChildren(el('p', { text: `looking up ${k} ${id}…` }));
    ch.push('lookup', { kind: k, id })
      .receive('ok', (r) => found.replaceChildren(describe(r)))
      .receive('error', (e) => found.replaceChildren(el('p', { class: 'error', text: `${e.code ?? 'error'}: ${e.reason ?? ''}` })))
      .receive('timeout', () => found.replaceChildren(el('p', { class: 'error', text: 'no answer' })));
  }

  function describe(r) {
    const rows = [
      ['shard', r.shard],
      ['master', r.record ? `${r.record.master} (epoch ${r.record.epoch})` : 'none'],
      ['replicas', r.record ? r.record.replicas.join(', ') || 'none' : '—'],
      ['exists', r.exists ? 'yes' : 'no (no state on its master)'],
    ];
    if (r.kind === 'user') rows.push(['online', r.online ? 'yes' : 'no'], ['inbox', r.inbox ?? 0], ['seq', r.seq ?? 0]);
    else rows.push(['members', r.members ?? 0], ['history', r.history ?? 0], ['seq', r.seq ?? 0]);
    const presence = Object.entries(r.presence ?? {}).map(([who, p]) => `${who}: ${p.metas.map((m) => m.device ?? m.phx_ref).join(', ')}`);
    rows.push(['presence', presence.length ? presence.join('; ') : 'nobody']);
    return el('table', { class: 'lookup-table', 'data-kind': r.kind },
      el('tbody', {}, ...rows.map(([k, v]) => el('tr', {}, el('th', { text: k }), el('td', { text: String(v) })))));
  }

  function render(s) {
    window.sandbarCluster.last = s;
    document.getElementById('served-by').textContent = `served by ${s.self}`;
    const hostIds = new Set([...s.hosts.map((h) => h.hostId), ...s.shards.addrs.map((a) => a.slice(0, a.lastIndexOf('.')))]);
    const color = colors(hostIds);
    let sessions = 0, inRate = 0, outRate = 0, dmRate = 0;
    const sample = {};
    hosts.replaceChildren(...s.hosts.map((h) => {
      const rows = h.workers.map((w) => {
        sessions += w.sessions; inRate += w.inPerS ?? 0; outRate += w.outPerS ?? 0; dmRate += w.dmPerS ?? 0;
        if (w.loopDelayMs !== null) sample[`loop:${w.addr}`] = w.loopDelayMs;
        const cls = [w.fenced ? 'fenced' : '', w.nats && !w.nats.connected ? 'nats-down' : ''].join(' ').trim();
        return el('tr', { 'data-worker': w.addr, class: cls, title: w.nats?.server ? `NATS: ${w.nats.server}` : '' },
          ...[`w${w.index}${w.fenced ? ' (fenced)' : ''}`, w.sessions, w.longpoll, w.masterShards, w.replicaShards, w.inPerS ?? '…', w.outPerS ?? '…', w.dmPerS ?? '…',
            w.loopDelayMs === null ? '…' : `${w.loopDelayMs} ms`, natsText(w), `${Math.round(w.heapUsed / 1048576)} MB`].map((v) => el('td', { text: String(v) })));
      });
      return el('div', { class: `host${h.suspect ? ' suspect' : ''}`, 'data-host': h.hostId, style: `border-color: ${color.get(h.hostId)}` },
        el('strong', { text: h.hostId }),
        h.suspect ? el('span', { class: 'badge', text: 'suspect: heartbeats missing' }) : '',
        el('span', { class: 'restarts', text: h.restarts === null ? '' : ` ${h.restarts} restart(s)` }),
        el('table', {}, el('thead', {}, el('tr', {}, ...['', 'sessions', 'longpoll', 'master', 'replica', 'in/s', 'out/s', 'dm/s', 'loop', 'nats', 'heap'].map((t) => el('th', { text: t })))), el('tbody', {}, ...rows)));
    }));
    const suspects = s.hosts.filter((h) => h.suspect).length;
    totals.textContent = `${s.hosts.length} host(s)${suspects ? ` (${suspects} suspect)` : ''}, ${sessions} session(s), ${inRate} frames/s in, ${outRate} frames/s out, ${dmRate} dm/s`;
    history.push(s.at, { sessions, frames: inRate + outRate, dms: dmRate, ...sample });
    drawCharts(color);
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

  function drawCharts(color) {
    const one = (name, c) => [{ name, color: c, points: history.get(name) }];
    const loops = history.names('loop:').sort().map((name, i) => {
      const addr = name.slice(5);
      return { name, color: color.get(addr.slice(0, addr.lastIndexOf('.'))) ?? PALETTE[i % PALETTE.length], points: history.get(name) };
    });
    charts.replaceChildren(
      lineChart({ id: 'sessions', title: 'sessions', lines: one('sessions', '#3490dc') }),
      lineChart({ id: 'frames', title: 'frames', unit: 'per s', lines: one('frames', '#38c172') }),
      lineChart({ id: 'dms', title: 'dm', unit: 'per s', lines: one('dms', '#9561e2') }),
      lineChart({ id: 'loop', title: 'event-loop delay per worker', unit: 'ms', lines: loops }),
    );
  }
}

const saved = store.getItem('sandbar.admin');
const fromHash = location.hash.startsWith('#token=') ? decodeURIComponent(location.hash.slice(7)) : null;
if (fromHash) { history.replaceState(null, '', location.pathname); open(fromHash); }
else if (saved) open(saved);
else askToken();
