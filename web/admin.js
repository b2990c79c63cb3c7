// The operator console: signs in with the admin key, polls
// /admin/metrics every second and draws the last few minutes, lists the
// open reports with their evidence and acts on them. No build step, no
// dependency: canvas charts drawn here.
(() => {
  'use strict';
  const $ = (id) => document.getElementById(id);
  const HISTORY = 180; // samples kept per series (3 minutes at 1 s)
  const POLL_MS = 1000;
  const REPORTS_MS = 5000;
  const COLORS = ['#3b5bdb', '#2e9d5b', '#e8590c', '#ae3ec9', '#c92a2a', '#1098ad', '#f08c00', '#5c940d'];

  const state = {
    key: sessionStorage.getItem('tandem-admin-key') || '',
    series: {}, // chart id -> { name -> [values] }
    timer: null,
    reportsTimer: null,
    last: null,
  };
  window.tandemConsole = state;

  async function call(method, path, body) {
    const res = await fetch(path, {
      method,
      headers: { 'x-admin-key': state.key, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    let json = null;
    try { json = await res.json(); } catch { /* not JSON */ }
    if (!res.ok) {
      const err = new Error(json?.error?.message || json?.message || `HTTP ${res.status}`);
      err.status = res.status;
      throw err;
    }
    return json?.data;
  }

  // ---- charts -------------------------------------------------------------
  function push(chart, name, v) {
    const s = (state.series[chart] ||= {});
    const arr = (s[name] ||= []);
    arr.push(Number.isFinite(v) ? v : null);
    while (arr.length > HISTORY) arr.shift();
  }

  /** Keeps every series of a chart the same length (a node that left stops). */
  function pad(chart, names) {
    const s = state.series[chart] || {};
    for (const n of Object.keys(s)) if (!names.includes(n)) push(chart, n, null);
  }

  function fmt(v) {
    if (v === null || v === undefined || !Number.isFinite(v)) return '–';
    const a = Math.abs(v);
    if (a >= 1e9) return `${(v / 1e9).toFixed(1)}G`;
    if (a >= 1e6) return `${(v / 1e6).toFixed(1)}M`;
    if (a >= 1e4) return `${(v / 1e3).toFixed(0)}k`;
    if (a >= 100 || Number.isInteger(v)) return String(Math.round(v));
    return v.toFixed(1);
  }

  function draw(id) {
    const canvas = $(id);
    const ctx = canvas.getContext('2d');
    // Drawn at the size shown, in device pixels, so text stays sharp.
    const dpr = window.devicePixelRatio || 1;
    const cw = Math.round((canvas.clientWidth || 460) * dpr);
    const ch = Math.round((canvas.clientHeight || 160) * dpr);
    if (canvas.width !== cw || canvas.height !== ch) { canvas.width = cw; canvas.height = ch; }
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    const w = canvas.width / dpr;
    const h = canvas.height / dpr;
    const pad = { l: 44, r: 8, t: 8, b: 18 };
    ctx.clearRect(0, 0, w, h);
    ctx.fillStyle = '#fff';
    ctx.fillRect(0, 0, w, h);
    const series = Object.entries(state.series[id] || {});
    let max = 0;
    for (const [, vals] of series) for (const v of vals) if (v !== null && v > max) max = v;
    max = max <= 0 ? 1 : max * 1.15;
    // grid and axis labels
    ctx.strokeStyle = '#e3e6ec';
    ctx.fillStyle = '#6b7285';
    ctx.font = '11px system-ui, sans-serif';
    ctx.lineWidth = 1;
    for (let i = 0; i <= 4; i += 1) {
      const y = pad.t + ((h - pad.t - pad.b) * i) / 4;
      ctx.beginPath(); ctx.moveTo(pad.l, y); ctx.lineTo(w - pad.r, y); ctx.stroke();
      ctx.fillText(fmt(max * (1 - i / 4)), 2, y + 4);
    }
    ctx.fillText(`last ${HISTORY} s`, pad.l, h - 4);
    const x = (i) => pad.l + ((w - pad.l - pad.r) * i) / (HISTORY - 1);
    const y = (v) => pad.t + (h - pad.t - pad.b) * (1 - v / max);
    series.forEach(([name, vals], k) => {
      const color = COLORS[k % COLORS.length];
      ctx.strokeStyle = color;
      ctx.lineWidth = 2;
      ctx.beginPath();
      let pen = false;
      const offset = HISTORY - vals.length;
      vals.forEach((v, i) => {
        if (v === null) { pen = false; return; }
        if (pen) ctx.lineTo(x(offset + i), y(v)); else ctx.moveTo(x(offset + i), y(v));
        pen = true;
      });
      ctx.stroke();
      // legend
      ctx.fillStyle = color;
      const label = name.length > 22 ? `${name.slice(0, 21)}…` : name;
      ctx.fillText(`● ${label}`, w - pad.r - 150, pad.t + 12 + 13 * k);
    });
  }

  // ---- metrics ------------------------------------------------------------
  function render(d) {
    state.last = d;
    $('t-users').textContent = fmt(d.sessions.active);
    $('t-mps').textContent = fmt(d.messagesPerSecond);
    $('t-mpm').textContent = fmt(d.matchesPerMinute);
    $('t-wait').textContent = `${fmt(d.matchWait.p50Ms)} / ${fmt(d.matchWait.p99Ms)} ms`;
    $('t-waiting').textContent = fmt(d.matchmaking.totalWaiting);
    $('t-turn').textContent = `${fmt(d.turnBytesPerSecond)} B/s`;
    $('t-peak').textContent = fmt(d.peakConcurrentUsers);
    $('t-totals').textContent = `${fmt(d.totalMessages)} / ${fmt(d.totalReports)}`;
    const nodes = d.nodes.map((n) => n.id);
    $('cluster-pill').textContent = `${d.nodes.length} node${d.nodes.length === 1 ? '' : 's'}`;
    $('cluster-pill').className = d.nodes.every((n) => n.health === 'up') ? 'pill on' : 'pill';

    push('c-users', 'online', d.sessions.active ?? 0);
    push('c-mpm', 'cluster', d.matchesPerMinute);
    push('c-wait', 'p50', d.matchWait.p50Ms);
    push('c-wait', 'p99', d.matchWait.p99Ms);
    for (const n of d.nodes) {
      push('c-mps', n.id, n.messagesPerSecond);
      push('c-turn', n.id, n.turnBytesPerSecond);
      push('c-sockets', n.id, n.sockets);
    }
    for (const c of ['c-mps', 'c-turn', 'c-sockets']) pad(c, nodes);
    for (const c of ['c-users', 'c-mps', 'c-mpm', 'c-wait', 'c-turn', 'c-sockets']) draw(c);

    $('lounges').querySelector('tbody').replaceChildren(...d.activeRooms.map((r) => {
      const tr = document.createElement('tr');
      tr.dataset.roomId = r.id;
      for (const c of [r.name, fmt(r.users), r.lastUpdated ? new Date(r.lastUpdated).toLocaleTimeString() : '–']) {
        const td = document.createElement('td');
        td.textContent = c;
        tr.append(td);
      }
      return tr;
    }));

    const body = $('nodes').querySelector('tbody');
    body.replaceChildren(...d.nodes.map((n) => {
      const tr = document.createElement('tr');
      const cells = [n.id, n.health, `${fmt(n.uptimeSeconds)} s`, fmt(n.sockets), `${fmt(n.rssBytes)}B`, fmt(n.messagesPerSecond),
        n.redisUp === null ? '–' : (n.redisUp ? 'up' : 'down')];
      cells.forEach((c, i) => {
        const td = document.createElement('td');
        td.textContent = c;
        if (i === 1) td.className = `health-${n.health}`;
        tr.append(td);
      });
      return tr;
    }));
  }

  async function poll() {
    try {
      render(await call('GET', '/admin/metrics'));
    } catch (e) {
      if (e.status === 401) signOut('the key was refused');
    }
  }

  // ---- reports ------------------------------------------------------------
  async function loadReports() {
    try {
      const d = await call('GET', '/admin/reports?status=open&limit=50');
      $('reports-error').textContent = '';
      $('reports-count').textContent = String(d.reports.length);
      $('reports').replaceChildren(...d.reports.map(reportItem));
    } catch (e) {
      $('reports-error').textContent = e.message;
    }
  }

  function reportItem(r) {
    const li = document.createElement('li');
    li.dataset.reportId = r.id;
    li.dataset.target = r.target;
    const head = document.createElement('div');
    head.textContent = `${new Date(r.createdAt).toLocaleString()} — ${r.reason}: ${r.target} reported by ${r.reporter}`;
    li.append(head);
    if (r.details) {
      const p = document.createElement('div');
      p.textContent = `“${r.details}”`;
      li.append(p);
    }
    const ev = document.createElement('ol');
    ev.className = 'evidence';
    for (const m of r.evidence || []) {
      const item = document.createElement('li');
      item.textContent = `${new Date(m.at).toLocaleTimeString()} ${m.from === r.target ? 'reported' : 'other'}: ${m.text}`;
      ev.append(item);
    }
    li.append(ev);
    const actions = document.createElement('div');
    actions.className = 'actions';
    const act = (label, cls, fn) => {
      const b = document.createElement('button');
      b.textContent = label;
      b.className = cls;
      b.dataset.action = label.toLowerCase();
      b.addEventListener('click', async () => {
        b.disabled = true;
        try { await fn(); } catch (e) { $('reports-error').textContent = e.message; }
        await loadReports();
      });
      actions.append(b);
    };
    act('Dismiss', '', () => call('POST', `/admin/reports/${r.id}/resolve`, { action: 'dismiss' }));
    act('Ban', 'danger', () => call('POST', `/admin/reports/${r.id}/resolve`, { action: 'ban' }));
    act('Kick', '', () => call('POST', `/admin/users/${r.target}/kick`));
    li.append(actions);
    return li;
  }

  // ---- sign in / out ------------------------------------------------------
  async function signIn(key) {
    state.key = key;
    try {
      render(await call('GET', '/admin/metrics'));
    } catch (e) {
      $('signin-error').textContent = e.status === 404
        ? 'the moderator API is off on this server (ADMIN_KEY is not set)'
        : e.status === 401 ? 'wrong key' : e.message;
      state.key = '';
      return;
    }
    sessionStorage.setItem('tandem-admin-key', key);
    $('signin-error').textContent = '';
    $('signin').hidden = true;
    $('console').hidden = false;
    $('signout-btn').hidden = false;
    state.timer = setInterval(poll, POLL_MS);
    state.reportsTimer = setInterval(loadReports, REPORTS_MS);
    await loadReports();
  }

  function signOut(why) {
    clearInterval(state.timer);
    clearInterval(state.reportsTimer);
    sessionStorage.removeItem('tandem-admin-key');
    state.key = '';
    state.series = {};
    $('console').hidden = true;
    $('signin').hidden = false;
    $('signout-btn').hidden = true;
    $('cluster-pill').textContent = 'signed out';
    $('cluster-pill').className = 'pill';
    $('signin-error').textContent = why || '';
  }

  $('signin-form').addEventListener('submit', (e) => {
    e.preventDefault();
    signIn($('admin-key').value);
  });
  $('signout-btn').addEventListener('click', () => signOut());
  if (state.key) signIn(state.key);
})();
