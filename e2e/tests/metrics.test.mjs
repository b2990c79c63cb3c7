// The operator's view: Prometheus metrics (parsed by the Prometheus
// project's own OpenMetrics parser, python prometheus_client) that move
// while a scripted session runs, and /admin/metrics on one node and on a
// three-node cluster.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { startServer, ROOT } from '../lib/server.mjs';
import { startCluster } from '../lib/cluster.mjs';
import { api, connect, eventually, guest, matchedPair, once, request, upload } from '../lib/client.mjs';
import { startPeer, uclient } from '../lib/turn.mjs';

const ADMIN_KEY = 'metrics-admin-key-0123456789';
const SECRET = 'turn-test-secret-0123456789abcdef';
const PYTHON = process.env.TANDEM_TEST_PYTHON || 'python3';

/** Parses a /metrics body with prometheus_client's strict parser; the samples as {"name{labels}": value}. */
function parse(text) {
  return new Promise((resolve, reject) => {
    const p = spawn(PYTHON, [path.join(ROOT, 'e2e', 'python', 'metrics_check.py')], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { err += d; });
    p.once('exit', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`metrics rejected: ${err}\n${text.slice(0, 3000)}`))));
    p.stdin.end(text);
  });
}

async function scrape(url, key) {
  const res = await fetch(`${url}/metrics`, { headers: key ? { 'x-admin-key': key } : {} });
  const text = await res.text();
  return { status: res.status, type: res.headers.get('content-type'), text };
}

const value = (m, key) => m[key] ?? 0;

describe('Prometheus /metrics', () => {
  let srv;
  let peer;
  before(async () => {
    srv = await startServer({
      ADMIN_KEY, METRICS_LISTEN: '127.0.0.1:0',
      TURN_MODE: 'internal', TURN_PORT: '0', TURN_SECRET: SECRET, TURN_ALLOWED_PEERS: '127.0.0.0/8',
    });
    peer = await startPeer();
  });
  after(async () => {
    peer?.stop();
    await srv?.stop();
  });

  test('served with the admin key on the main port, and without one on METRICS_LISTEN', async () => {
    assert.ok(srv.metricsUrl, 'the metrics address is logged');
    assert.equal((await scrape(srv.url)).status, 401);
    assert.equal((await scrape(srv.url, 'wrong')).status, 401);
    const keyed = await scrape(srv.url, ADMIN_KEY);
    assert.equal(keyed.status, 200);
    assert.match(keyed.type, /^application\/openmetrics-text/);
    const open = await scrape(srv.metricsUrl);
    assert.equal(open.status, 200);
    await parse(open.text);
    // The metrics address serves nothing else.
    assert.equal((await fetch(`${srv.metricsUrl}/api/auth/me`)).status, 404);
    const bare = await startServer({});
    try {
      assert.equal((await scrape(bare.url, 'anything')).status, 404, 'no ADMIN_KEY: no /metrics on the main port');
    } finally {
      await bare.stop();
    }
  });

  test('values move while a session runs: connections, a match, messages, a file, refusals, TURN', async () => {
    const before = await parse((await scrape(srv.metricsUrl)).text);
    const { a, b, ga } = await matchedPair(srv.url);
    for (let i = 0; i < 3; i += 1) {
      assert.equal((await request(a, 'chat:message', { content: `hello ${i}` })).success, true);
    }
    const bytes = Buffer.from('%PDF-1.4\n% a tiny document\n'.padEnd(2000, 'x'));
    const up = await upload(srv.url, ga.token, bytes, { name: 'doc.pdf', type: 'application/pdf' });
    assert.equal(up.status, 201, up.text);
    const got = once(b, 'chat:message');
    assert.equal((await request(a, 'chat:message', { type: 'file', fileId: up.body.data.id })).success, true);
    await got;
    assert.equal((await request(a, 'user:match')).error.code, 'already_in_chat');
    assert.equal((await upload(srv.url, ga.token, Buffer.alloc(0))).status, 400);

    // TURN: scrape while turnutils_uclient's allocations live.
    const g = await guest(srv.url);
    const creds = (await api(srv.url, 'GET', '/api/turn/credentials', { token: g.token })).body.data;
    assert.ok(creds.uris.length > 0);
    let live = null;
    let stop = false;
    const watcher = (async () => {
      while (!stop && !live) {
        const m = await parse((await scrape(srv.metricsUrl)).text);
        if (value(m, 'tandem_turn_allocations') >= 1 && value(m, 'tandem_turn_relayed_bytes_total{direction="to_peer"}') > 0) live = m;
      }
    })();
    const r = await uclient({ turnPort: srv.turnPort, peerPort: peer.port, secret: SECRET, messages: 400, clients: 2 });
    stop = true;
    await watcher;
    assert.ok(r.received > 0, r.out.slice(-1000));
    assert.ok(live, 'relayed bytes were seen while an allocation was alive');

    const m = await parse((await scrape(srv.url, ADMIN_KEY)).text);
    const moved = (key, by = 1) => assert.ok(value(m, key) - value(before, key) >= by, `${key}: ${value(before, key)} -> ${value(m, key)}`);
    moved('tandem_socketio_connections_total', 2);
    moved('tandem_matches_total');
    moved('tandem_match_wait_seconds_count');
    moved('tandem_messages_relayed_total{type="text"}', 3);
    moved('tandem_messages_relayed_total{type="file"}');
    moved('tandem_upload_bytes_total', bytes.length);
    moved('tandem_uploads_refused_total{code="validation_error"}');
    moved('tandem_events_refused_total{code="already_in_chat"}');
    moved('tandem_http_requests_total{method="POST",route="/api/files",status="201"}');
    moved('tandem_http_request_duration_seconds_count{method="POST",route="/api/auth/guest"}', 3);
    moved('tandem_store_operation_duration_seconds_count{op="create_user"}', 3);
    moved('tandem_turn_relayed_packets_total{direction="to_client"}');
    moved('tandem_turn_allocations_created_total');
    assert.ok(value(m, 'tandem_sockets_connected{transport="websocket"}') >= 2);
    assert.ok(value(m, 'tandem_users_online') >= 2);
    assert.ok(value(m, 'tandem_chats_active') >= 1);
    assert.equal(value(m, 'tandem_password_hash_queue'), 0);
    assert.ok(value(m, 'tandem_process_resident_memory_bytes') > 1e6);
    assert.ok(value(m, 'tandem_process_open_fds') > 5);
    assert.ok('tandem_process_cpu_seconds_total' in m);
    assert.ok(!Object.keys(m).some((k) => k.includes(ga.user.id)), 'no user id in any label');
    a.close(); b.close();
  });
});

const SHAPE = {
  totalConnections: 'number', totalMessages: 'number', totalReports: 'number', peakConcurrentUsers: 'number',
  messagesPerSecond: 'number', activeRooms: 'object', flaggedUsers: 'object', hourlyStats: 'object',
  matchmaking: 'object', sessions: 'object', nodes: 'object', matchWait: 'object', matchesPerMinute: 'number',
};

function assertShape(d) {
  for (const [k, t] of Object.entries(SHAPE)) assert.equal(typeof d[k], t, `${k} in ${JSON.stringify(d)}`);
  assert.ok(Array.isArray(d.activeRooms) && Array.isArray(d.flaggedUsers) && Array.isArray(d.hourlyStats) && Array.isArray(d.nodes));
  assert.equal(typeof d.matchmaking.totalWaiting, 'number');
  assert.equal(typeof d.matchmaking.byMode, 'object');
  assert.equal(typeof d.sessions.active, 'number');
  for (const h of d.hourlyStats) {
    for (const k of ['timestamp', 'totalMessages', 'peakUsers', 'activeRooms', 'matches']) assert.equal(typeof h[k], 'number', k);
  }
  for (const n of d.nodes) {
    for (const k of ['id', 'health', 'sockets', 'rssBytes', 'messagesPerSecond']) assert.ok(k in n, `${k} in node ${JSON.stringify(n)}`);
  }
}

/** A session on `url`s (one per user, round robin): a match, messages, a report, someone waiting for video. */
async function session(urls) {
  const at = (i) => urls[i % urls.length];
  const ga = await guest(at(0));
  const gb = await guest(at(1));
  const { socket: a } = await connect(at(0), ga.token);
  const { socket: b } = await connect(at(1), gb.token);
  const matched = once(b, 'user:matched');
  assert.equal((await request(a, 'user:match')).data.status, 'waiting');
  assert.equal((await request(b, 'user:match')).data.status, 'matched');
  await matched;
  for (let i = 0; i < 5; i += 1) assert.equal((await request(a, 'chat:message', { content: `m${i}` })).success, true);
  assert.equal((await request(b, 'user:report', { userId: ga.user.id, reason: 'spam' })).success, true);
  assert.equal((await request(a, 'room:join', { roomId: 'general-en' })).success, true);
  const gv = await guest(at(2));
  const { socket: v } = await connect(at(2), gv.token);
  assert.equal((await request(v, 'user:match', { mode: 'video' })).data.status, 'waiting');
  return { flagged: ga.user.id, close: () => { a.close(); b.close(); v.close(); } };
}

async function adminMetrics(url) {
  const r = await api(url, 'GET', '/admin/metrics', { headers: { 'x-admin-key': ADMIN_KEY } });
  assert.equal(r.status, 200, r.text);
  return r.body.data;
}

test('/admin/metrics on one node: seed 000\'s fields, moving with the session', async () => {
  const srv = await startServer({ ADMIN_KEY, REPORT_THRESHOLD: '0' });
  try {
    assert.equal((await api(srv.url, 'GET', '/admin/metrics')).status, 401);
    assertShape(await adminMetrics(srv.url));
    const s = await session([srv.url]);
    const d = await eventually(async () => {
      const d = await adminMetrics(srv.url);
      return d.totalMessages >= 5 && d.nodes[0].sockets >= 3 ? d : null;
    }, 5000, 'the console to sample the session');
    assertShape(d);
    assert.ok(d.totalConnections >= 3 && d.totalReports >= 1, JSON.stringify(d));
    assert.ok(d.peakConcurrentUsers >= 3);
    assert.deepEqual(d.matchmaking, { totalWaiting: 1, byMode: { video: 1 } });
    assert.equal(d.sessions.active, 3);
    assert.equal(d.activeChats, 1);
    assert.deepEqual(d.activeRooms.map((r) => [r.id, r.name, r.users]), [['general-en', 'general (en)', 1]]);
    assert.ok(d.flaggedUsers.includes(s.flagged));
    assert.equal(d.nodes.length, 1);
    assert.equal(d.nodes[0].health, 'up');
    assert.equal(d.hourlyStats.at(-1).totalMessages, d.totalMessages);
    assert.ok(d.matchWait.p50Ms !== null && d.matchesPerMinute >= 0);
    s.close();
  } finally {
    await srv.stop();
  }
});

test('/admin/metrics on a three-node cluster: the same answer from any node, summed over the nodes', { skip: process.env.TANDEM_SKIP_CLUSTER ? 'TANDEM_SKIP_CLUSTER set' : false }, async () => {
  const c = await startCluster(3, { ADMIN_KEY, REPORT_THRESHOLD: '0' });
  try {
    const urls = c.nodes.map((n) => n.url);
    const s = await session(urls);
    for (const url of urls) {
      const d = await eventually(async () => {
        const d = await adminMetrics(url);
        return d.nodes.length === 3 && d.totalMessages >= 5 && d.nodes.every((n) => n.sockets >= 1) ? d : null;
      }, 8000, `node ${url} to see the cluster`);
      assertShape(d);
      assert.ok(d.totalConnections >= 3 && d.totalReports >= 1, JSON.stringify(d));
      assert.deepEqual(d.matchmaking, { totalWaiting: 1, byMode: { video: 1 } });
      assert.equal(d.sessions.active, 3);
      assert.ok(d.flaggedUsers.includes(s.flagged));
      assert.deepEqual(d.nodes.map((n) => n.id).sort(), [...new Set(d.nodes.map((n) => n.id))].sort());
      assert.ok(d.nodes.every((n) => n.health === 'up' && n.redisUp === true), JSON.stringify(d.nodes));
    }
    s.close();
  } finally {
    await c.stop();
  }
});
