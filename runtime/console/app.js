// The console: plain JavaScript over the admin API's JSON (no framework, no build step, nothing
// fetched from anywhere but this daemon). Views by URL hash: #/ flows, #/flow/NAME, #/dlq.
'use strict';

const view = document.getElementById('view');
let timer = null, tap = null, last = {}, dlqStatus = '';

const h = (tag, attrs = {}, ...kids) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null) e.setAttribute(k, v);
  }
  for (const k of kids.flat()) e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  return e;
};

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers);
  const token = sessionStorage.getItem('edgeflow-token');
  if (token) headers.Authorization = 'Bearer ' + token;
  const res = await fetch(path, Object.assign({}, options, { headers }));
  if (res.status === 401) {
    document.getElementById('login').hidden = false;
    const e = new Error('the admin API wants its token');
    e.auth = true;
    throw e;
  }
  const text = await res.text();
  let body;
  try { body = JSON.parse(text); } catch { body = { error: text }; }
  if (!res.ok) throw new Error(body.error || res.statusText);
  return body;
}
// Actions take their parameters in the query and no body; JSON is what marks them as no form post.
const post = (path) => api(path, { method: 'POST', headers: { 'Content-Type': 'application/json' } });

document.getElementById('login').addEventListener('submit', (ev) => {
  ev.preventDefault();
  sessionStorage.setItem('edgeflow-token', document.getElementById('token').value);
  document.getElementById('login').hidden = true;
  route();
});

const metric = (f, name) => (f.plugin_metrics || []).find((m) => m.name === name);
const fmt = (x, digits = 0) => (x === undefined || x === null ? '' : Number(x).toLocaleString(undefined, { maximumFractionDigits: digits }));

// Messages per second from the last two readings of a counter.
function rate(key, value, now) {
  const prev = last[key];
  last[key] = { value, now };
  if (!prev || now <= prev.now) return '';
  return fmt((value - prev.value) / ((now - prev.now) / 1000), 1);
}

async function reloadStatus() {
  try {
    const r = await api('/reload');
    const el = document.getElementById('reload');
    if (r.status === 'none') { el.textContent = ''; return; }
    el.textContent = `last reload ${r.at}: ${r.status}` + (r.errors && r.errors.length ? ` (${r.errors.length} error(s))` : '');
    el.title = (r.errors || []).join('\n');
    el.className = r.status === 'invalid' ? 'error' : '';
  } catch { /* the flows view says why */ }
}

async function flowsView() {
  const now = Date.now();
  const { flows } = await api('/flows');
  const rows = flows.map((f) => {
    const lagBytes = metric(f, 'replication_lag_bytes'), lagSeconds = metric(f, 'replication_lag_seconds'), lag = metric(f, 'lag');
    const lagText = [lagBytes && `${fmt(lagBytes.value)} B`, lagSeconds && `${fmt(lagSeconds.value, 1)} s`, lag && `${fmt(lag.value)} msgs`]
      .filter(Boolean).join(' / ');
    return h('tr', { 'data-flow': f.name },
      h('td', {}, h('a', { href: '#/flow/' + encodeURIComponent(f.name) }, f.name)),
      h('td', { class: 'state-' + f.state }, f.state),
      h('td', { class: 'num', 'data-field': 'in_rate' }, rate(f.name + '/in', f.emitted, now)),
      h('td', { class: 'num', 'data-field': 'out_rate' }, rate(f.name + '/out', f.delivered, now)),
      h('td', { class: 'num', 'data-field': 'emitted' }, fmt(f.emitted)),
      h('td', { class: 'num', 'data-field': 'delivered' }, fmt(f.delivered)),
      h('td', { class: 'num', 'data-field': 'in_flight' }, fmt(f.in_flight)),
      h('td', { 'data-field': 'lag' }, lagText),
      h('td', { class: 'num', 'data-field': 'dead_lettered' }, fmt(f.dead_lettered)),
      h('td', { class: 'num', 'data-field': 'restarts' }, fmt(f.restarts)),
      h('td', { class: 'error' }, f.last_error || ''));
  });
  view.replaceChildren(h('h1', {}, 'Flows'), h('table', { id: 'flows' },
    h('thead', {}, h('tr', {}, ['flow', 'state', 'in/s', 'out/s', 'emitted', 'delivered', 'in flight', 'lag', 'dead letters', 'restarts', 'last error']
      .map((t, i) => h('th', { scope: 'col', class: i >= 2 && i !== 7 && i !== 10 ? 'num' : '' }, t)))),
    h('tbody', {}, rows)));
}

function stageBox(st) {
  return h('div', { class: 'stage', 'data-stage': st.stage },
    h('h3', {}, st.stage), h('small', {}, st.type),
    h('small', {}, `in ${fmt(st.in)} · out ${fmt(st.out)}`),
    (st.rejected || st.dropped) ? h('small', {}, `rejected ${fmt(st.rejected)} · dropped ${fmt(st.dropped)}`) : '',
    st.buffer ? h('small', {}, `buffer ${fmt(st.buffer.records)} msgs`) : '');
}

async function flowView(name) {
  const f = await api('/flows/' + encodeURIComponent(name));
  const stages = f.stages || [];
  const source = stages.filter((s) => s.stage === 'source');
  const steps = stages.filter((s) => s.stage.startsWith('steps['));
  const sinks = stages.filter((s) => s.stage.startsWith('sinks.'));
  const dead = stages.filter((s) => s.stage === 'dead_letter');
  const chain = [];
  for (const st of [...source, ...steps]) chain.push(stageBox(st), h('div', { class: 'edge' }, '→', h('br'), fmt(st.out)));
  chain.push(h('div', { class: 'sinks' }, sinks.map(stageBox)), h('div', { class: 'edge' }, '⇢'), h('div', { class: 'sinks' }, dead.map(stageBox)));
  const select = h('select', { id: 'tap-stage', 'aria-label': 'Stage to tap' }, stages.map((s) => h('option', { value: s.stage }, s.stage)));
  const events = h('ol', { id: 'tap-events' });
  const start = h('button', { id: 'tap-start', onclick: () => startTap(name, select.value, events) }, 'Tap');
  view.replaceChildren(
    h('h1', {}, 'Flow ', name, ' ', h('span', { class: 'state-' + f.state }, f.state)),
    f.last_error ? h('p', { class: 'error' }, f.last_error) : '',
    h('div', { class: 'pipeline', id: 'pipeline' }, chain),
    h('h2', {}, 'Live tap'), h('p', {}, select, ' ', start), events,
    h('h2', {}, 'Configuration (secrets redacted)'), h('pre', { id: 'config' }, f.config || ''));
}

async function startTap(name, stage, list) {
  if (tap) tap.abort();
  tap = new AbortController();
  const headers = {};
  const token = sessionStorage.getItem('edgeflow-token');
  if (token) headers.Authorization = 'Bearer ' + token;
  list.replaceChildren();
  try {
    const res = await fetch(`/flows/${encodeURIComponent(name)}/tap?stage=${encodeURIComponent(stage)}&rate=20`, { headers, signal: tap.signal });
    if (!res.ok) throw new Error((await res.text()) || res.statusText);
    const reader = res.body.getReader(), dec = new TextDecoder();
    let buf = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let at;
      while ((at = buf.indexOf('\n\n')) >= 0) {
        const chunk = buf.slice(0, at);
        buf = buf.slice(at + 2);
        const data = chunk.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n');
        if (!data) continue;
        list.prepend(h('li', {}, h('pre', {}, data)));
        while (list.children.length > 50) list.lastChild.remove();
      }
    }
  } catch (e) {
    if (e.name !== 'AbortError') list.prepend(h('li', { class: 'error' }, e.message));
  }
}

async function dlqView(params) {
  const form = h('form', { id: 'dlq-filter' },
    h('label', {}, 'flow ', h('input', { name: 'flow', value: params.get('flow') || '' })), ' ',
    h('label', {}, 'reason ', h('input', { name: 'reason', value: params.get('reason') || '' })), ' ',
    h('label', {}, 'state ', h('select', { name: 'state' }, ['', 'new', 'replayed'].map((s) => h('option', { value: s }, s || 'any')))), ' ',
    h('button', {}, 'Filter'));
  form.state.value = params.get('state') || '';
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const q = new URLSearchParams();
    for (const k of ['flow', 'reason', 'state']) if (form[k].value) q.set(k, form[k].value);
    location.hash = '#/dlq?' + q.toString();
  });
  const q = new URLSearchParams();
  for (const k of ['flow', 'reason', 'state']) if (params.get(k)) q.set(k, params.get(k));
  q.set('limit', '200');
  const { letters } = await api('/dlq?' + q.toString());
  const detail = h('pre', { id: 'letter' });
  // The outcome of the last replay or purge, kept across the redraw that shows its effect.
  const status = h('p', { id: 'dlq-status', role: 'status' }, dlqStatus);
  const act = async (what, id) => {
    if (what === 'purge' && !confirm(`Forget dead letter ${id}?`)) return;
    try {
      dlqStatus = `${what} ${id}: ${JSON.stringify(await post(`/dlq/${what}?id=${id}`))}`;
    } catch (e) { dlqStatus = `${what} ${id}: ${e.message}`; }
    route();
  };
  const rows = letters.map((l) => h('tr', { 'data-letter': l.id },
    h('td', { class: 'num' }, h('a', { href: '#', onclick: async (ev) => { ev.preventDefault(); detail.textContent = JSON.stringify(await api('/dlq/' + l.id), null, 2); } }, l.id)),
    h('td', {}, l.flow), h('td', {}, l.stage), h('td', {}, l.reason), h('td', {}, l.failed_at), h('td', {}, l.state),
    h('td', {}, h('button', { class: 'replay', onclick: () => act('replay', l.id) }, 'Replay'), ' ',
      h('button', { class: 'purge', onclick: () => act('purge', l.id) }, 'Purge'))));
  view.replaceChildren(h('h1', {}, 'Dead letters'), form, status,
    h('table', { id: 'letters' }, h('thead', {}, h('tr', {}, ['id', 'flow', 'stage', 'reason', 'failed at', 'state', ''].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, rows)), detail);
}

async function route() {
  clearTimeout(timer);
  const hash = location.hash || '#/';
  const [path, query] = hash.slice(1).split('?');
  if (!path.startsWith('/flow/') && tap) { tap.abort(); tap = null; }
  try {
    if (path.startsWith('/flow/')) {
      if (!view.querySelector('#pipeline') || view.dataset.flow !== path) await flowView(decodeURIComponent(path.slice(6)));
      view.dataset.flow = path;
    } else if (path === '/dlq') {
      view.dataset.flow = '';
      await dlqView(new URLSearchParams(query || ''));
      return;  // no live refresh: it would reset a letter being read
    } else {
      view.dataset.flow = '';
      await flowsView();
    }
    await reloadStatus();
  } catch (e) {
    view.replaceChildren(h('p', { class: 'error', role: 'alert' }, e.message));
    if (e.auth) return;  // no polling until the token is given
  }
  timer = setTimeout(refresh, 2000);
}

// Live numbers: the flows view is redrawn, a flow's pipeline counters too (its tap keeps going).
async function refresh() {
  const path = (location.hash || '#/').slice(1).split('?')[0];
  if (path.startsWith('/flow/')) {
    try {
      const f = await api('/flows/' + encodeURIComponent(decodeURIComponent(path.slice(6))));
      for (const st of f.stages || []) {
        const box = view.querySelector(`[data-stage="${CSS.escape(st.stage)}"]`);
        if (box) box.replaceWith(stageBox(st));
      }
    } catch { /* shown at the next full draw */ }
    timer = setTimeout(refresh, 2000);
    return;
  }
  route();
}

window.addEventListener('hashchange', () => { view.dataset.flow = ''; route(); });
route();
