// Short runs of every tandem-bench scenario, against Tandem and against the
// Node baseline, so the benchmark tools keep working. Not a performance test.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import path from 'node:path';
import os from 'node:os';
import { mkdtemp, rm } from 'node:fs/promises';
import { ROOT, JWT_SECRET, startServer } from '../lib/server.mjs';
import { freePort } from '../lib/mongo.mjs';

// The binaries `cargo test --no-run` built (scripts/test): a `cargo build --bins`
// here would compile again with other features, minutes on a fresh clone.
const BENCH = path.join(ROOT, 'target', 'debug', 'tandem-bench');
const SMALL = { connections: ['--connections', '50'], relay: ['--pairs', '5', '--duration', '1'], 'match-storm': ['--users', '40'],
  'login-storm': ['--pairs', '2', '--duration', '1', '--accounts', '1', '--login-concurrency', '2'],
  upload: ['--uploads', '2', '--upload-size', '200000'] };

function bench(scenario, url, pid) {
  return new Promise((resolve, reject) => {
    execFile(BENCH, [scenario, '--url', url, '--jwt-secret', JWT_SECRET, '--server-pid', String(pid), ...SMALL[scenario]],
      { timeout: 60000 }, (err, stdout, stderr) => {
        if (err) return reject(new Error(`${err.message}\n${stderr}`));
        const line = stdout.split('\n').find((l) => l.startsWith('RESULT '));
        resolve(JSON.parse(line.slice(7)));
      });
  });
}

let tandem;
let node;
let tmpdir;
before(async () => {
  tmpdir = await mkdtemp(path.join(os.tmpdir(), 'bench-smoke-'));
  tandem = await startServer({ SOCKET_EVENT_LIMIT: '1000000', RATE_LIMIT_AUTH_MAX: '1000000', RATE_LIMIT_UPLOAD_MAX: '1000000' });
  const port = await freePort();
  const proc = spawn(process.execPath, [path.join(ROOT, 'bench', 'node-baseline', 'server.js')],
    { env: { ...process.env, PORT: String(port), JWT_SECRET, UPLOAD_DIR: path.join(tmpdir, 'node-uploads') }, stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('baseline did not start')), 15000);
    proc.stdout.on('data', (d) => { if (String(d).includes('baseline listening')) { clearTimeout(timer); resolve(); } });
    proc.once('exit', () => reject(new Error('baseline exited')));
  });
  node = { url: `http://127.0.0.1:${port}`, pid: proc.pid, proc };
});
after(async () => {
  await tandem?.stop();
  node?.proc.kill('SIGKILL');
  if (tmpdir) await rm(tmpdir, { recursive: true, force: true });
});

for (const scenario of Object.keys(SMALL)) {
  test(`tandem-bench ${scenario} runs against both servers`, async () => {
    for (const [name, url, pid] of [['tandem', tandem?.url, tandem?.proc.pid], ['node', node?.url, node?.pid]]) {
      const r = await bench(scenario, url, pid);
      assert.equal(r.scenario, scenario, name);
      if (scenario === 'connections') assert.equal(r.connections, 50, name);
      if (scenario === 'relay') {
        assert.equal(r.pairs, 5, name);
        assert.ok(r.msgPerSec > 0, name);
        // Both latencies are read off the frames as the connection's task reads them.
        assert.ok(r.p50Ms > 0 && r.p99Ms >= r.p50Ms, `${name}: ${JSON.stringify(r)}`);
        assert.ok(r.ackP50Ms > 0 && r.ackP99Ms >= r.ackP50Ms, `${name}: ${JSON.stringify(r)}`);
      }
      if (scenario === 'match-storm') assert.equal(r.pairs, 20, name);
      if (scenario === 'login-storm') { assert.equal(r.pairs, 2, name); assert.ok(r.loginsPerSec > 0, name); }
      if (scenario === 'upload') { assert.equal(r.uploads, 2, name); assert.equal(r.failed, 0, name); }
    }
  });
}

test('tandem-bench floor-server pairs a match-storm, each user exactly once', async () => {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const floor = spawn(BENCH, ['floor-server', '--url', url, '--jwt-secret', JWT_SECRET], { stdio: ['ignore', 'ignore', 'pipe'] });
  try {
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('floor-server did not start')), 15000);
      floor.stderr.on('data', (d) => { if (String(d).includes('floor-server listening')) { clearTimeout(timer); resolve(); } });
      floor.once('exit', (code) => reject(new Error(`floor-server exited ${code}`)));
    });
    const r = await bench('match-storm', url, floor.pid);
    assert.equal(r.pairs, 20);
    assert.equal(r.exactlyOnce, true);
  } finally {
    floor.kill('SIGKILL');
  }
});

test('scripts/bench-cluster opens connections across a two-node cluster', async () => {
  const out = await new Promise((resolve, reject) => {
    execFile(path.join(ROOT, 'scripts', 'bench-cluster'), ['2', '50'],
      { timeout: 120000, env: { ...process.env, BENCH_BIN: path.join(ROOT, 'target', 'debug'), BENCH_HOLD: '1' } },
      (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout)));
  });
  const line = out.split('\n').find((l) => l.startsWith('RESULT '));
  const r = JSON.parse(line.slice(7));
  assert.equal(r.connections, 100);
  assert.equal(r.clusterConnectedSockets, 100);
});

test('scripts/bench-presence and scripts/bench-match-cluster run on a two-node cluster', async () => {
  const run = (script, args) => new Promise((resolve, reject) => {
    execFile(path.join(ROOT, 'scripts', script), args,
      { timeout: 180000, env: { ...process.env, BENCH_BIN: path.join(ROOT, 'target', 'debug'), REQUESTS: '20' } },
      (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout)));
  });
  const presence = await run('bench-presence', ['2', '4', '20']);
  const rows = presence.split('\n').filter((l) => /^\s+\d+\s/.test(l));
  assert.equal(rows.length, 2, presence);
  const storm = await run('bench-match-cluster', ['2', '40']);
  const line = storm.split('\n').find((l) => l.startsWith('RESULT '));
  const r = JSON.parse(line.slice(7));
  assert.equal(r.nodes, 2);
  assert.equal(r.pairs, 20);
  assert.equal(r.exactlyOnce, true);
});

test('scripts/bench-instructions counts instructions per message under callgrind', async () => {
  const out = await new Promise((resolve, reject) => {
    execFile(path.join(ROOT, 'scripts', 'bench-instructions'), [],
      { timeout: 300000, env: { ...process.env, BENCH_BIN: path.join(ROOT, 'target', 'debug'), PAIRS: '2', RATE: '5', SHORT: '2', LONG: '4' } },
      (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout)));
  });
  const r = JSON.parse(out.split('\n').find((l) => l.startsWith('RESULT ')).slice(7));
  assert.equal(r.scenario, 'instructions');
  assert.equal(r.pairs, 2);
  assert.ok(r.instructionsPerMsg > 0, out);
});

test('tandem-bench connections --guest-accounts uses real accounts and reports the disconnect drain', async () => {
  const out = await new Promise((resolve, reject) => {
    execFile(BENCH, ['connections', '--url', tandem.url, '--jwt-secret', JWT_SECRET, '--server-pid', String(tandem.proc.pid),
      '--connections', '20', '--guest-accounts'], { timeout: 60000 },
    (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout)));
  });
  const r = JSON.parse(out.split('\n').find((l) => l.startsWith('RESULT ')).slice(7));
  assert.equal(r.connections, 20);
  assert.ok(r.disconnectBusySec >= 0 && r.disconnectCpuSec >= 0);
});

test('scripts/bench alternates both servers over rounds and prints medians side by side', async () => {
  const out = await new Promise((resolve, reject) => {
    execFile(path.join(ROOT, 'scripts', 'bench'), ['relay', '--pairs', '3', '--rate', '20', '--window', '1', '--duration', '1'],
      { timeout: 180000, env: { ...process.env, BENCH_BIN: path.join(ROOT, 'target', 'debug'), ROUNDS: '2' } },
      (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout)));
  });
  assert.match(out, /median of 2 round\(s\)/);
  const p50 = out.split('\n').find((l) => l.startsWith('p50Ms'));
  assert.ok(p50, out);
  const [, t, n] = p50.trim().split(/\s+/);
  assert.ok(Number(t) > 0 && Number(n) > 0, out);
});

test('tandem-bench call: three participants through the SFU receive each other', async () => {
  const out = await new Promise((resolve, reject) => {
    execFile(BENCH, ['call', '--url', tandem.url, '--jwt-secret', JWT_SECRET, '--server-pid', String(tandem.proc.pid),
      '--participants', '3', '--duration', '1'], { timeout: 60000 },
    (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout)));
  });
  const r = JSON.parse(out.split('\n').find((l) => l.startsWith('RESULT ')).slice(7));
  assert.equal(r.participants, 3);
  assert.equal(r.forwardedStreams, 12);
  assert.equal(r.receivingFromAll, 3, JSON.stringify(r));
  assert.equal(r.failed, 0);
  assert.ok(r.framesPerSec > 0 && r.deliveredShare > 0.5, JSON.stringify(r));
});

test('tandem-bench screen: the profanity screen against rustrict on the chat lines, and relay with them', async () => {
  const run = (args) => new Promise((resolve, reject) => {
    execFile(BENCH, args, { timeout: 120000 },
      (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout)));
  });
  const lines = path.join(ROOT, 'bench', 'chat-lines.txt');
  const out = await run(['screen', '--jwt-secret', JWT_SECRET, '--text-file', lines]);
  const r = JSON.parse(out.split('\n').find((l) => l.startsWith('RESULT ')).slice(7));
  assert.ok(r.lines > 100, out);
  assert.ok(r.screenedOut > 0 && r.screenedOut < r.lines, out);
  const relay = await run(['relay', '--url', tandem.url, '--jwt-secret', JWT_SECRET, '--server-pid', String(tandem.proc.pid),
    '--pairs', '3', '--duration', '1', '--text-file', lines]);
  const rr = JSON.parse(relay.split('\n').find((l) => l.startsWith('RESULT ')).slice(7));
  assert.ok(rr.msgPerSec > 0, relay);
});

test('tandem-bench room-fanout: every member receives every message', async () => {
  const s = await startServer({ ROOM_MESSAGE_RATE: '1000', ROOM_MESSAGE_BURST: '1000', SOCKET_EVENT_LIMIT: '100000' });
  try {
    const out = await new Promise((resolve, reject) => {
      execFile(BENCH, ['room-fanout', '--url', s.url, '--jwt-secret', JWT_SECRET, '--server-pid', String(s.proc.pid),
        '--members', '30', '--senders', '2', '--rate', '10', '--duration', '2'], { timeout: 60000 },
      (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout)));
    });
    const r = JSON.parse(out.split('\n').find((l) => l.startsWith('RESULT ')).slice(7));
    assert.equal(r.members, 30);
    // Each message sent reaches all 30 members (a little slack at the window's edges).
    assert.ok(r.msgPerSec >= r.sentPerSec * 30 * 0.8, out);
    assert.ok(r.p99Ms > 0, out);
  } finally {
    await s.stop();
  }
});

test('tandem-bench soak: guests churn for a minute, nothing acked is lost, fds come back', async () => {
  const r = await new Promise((resolve, reject) => {
    execFile(BENCH, ['soak', '--url', tandem.url, '--jwt-secret', JWT_SECRET, '--server-pid', String(tandem.proc.pid),
      '--users', '20', '--minutes', '1', '--sample-secs', '15', '--settle', '3',
      '--store-file', path.join(tandem.dir, 'data', 'tandem.redb'), '--upload-dir', path.join(tandem.dir, 'uploads')],
    { timeout: 150000 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`${err.message}\n${stderr}`));
      const line = stdout.split('\n').find((l) => l.startsWith('RESULT '));
      resolve({ ...JSON.parse(line.slice(7)), stdout });
    });
  });
  assert.equal(r.scenario, 'soak');
  assert.ok(r.sessions > 20, r.stdout);
  assert.ok(r.guests > 10, r.stdout);
  assert.ok(r.acked > 50, r.stdout);
  assert.equal(r.lost, 0, r.stdout);
  assert.equal(r.ackTimeouts, 0, r.stdout);
  assert.ok(r.fdsAfter <= r.fdsStart + 2, r.stdout);
  assert.match(r.stdout, /rss MB/);
  assert.ok(r.anonStart > 0 && r.anonStart < r.rssStart, r.stdout);
});
