// A cluster on loopback: Redis, a MongoDB-speaking server, N Tandem nodes
// sharing them (and an upload directory), and nginx in front built from
// the repository's own nginx.conf.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, mkdirSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ROOT, startServer } from './server.mjs';
import { freePort, startMongo } from './mongo.mjs';

function accepts(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

async function waitPort(port, proc, what, timeoutMs = 15000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await accepts(port))) {
    if (proc.exitCode !== null) throw new Error(`${what} exited`);
    if (Date.now() > deadline) throw new Error(`${what} not up on ${port}`);
    await new Promise((r) => setTimeout(r, 25)); // poll interval
  }
}

export async function startRedis() {
  const port = await freePort();
  let proc;
  const launch = async () => {
    proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
      { stdio: 'ignore' });
    await waitPort(port, proc, 'redis-server');
  };
  await launch();
  const stop = async () => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    const gone = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGKILL');
    await gone;
  };
  return { port, url: `redis://127.0.0.1:${port}`, stop, restart: launch };
}

/** nginx with the shipped nginx.conf, pointed at `ports`, listening on a free port. */
export async function startNginx(ports) {
  const dir = mkdtempSync(path.join(tmpdir(), 'tandem-nginx-'));
  mkdirSync(path.join(dir, 'tmp'));
  const listen = await freePort();
  let conf = readFileSync(path.join(ROOT, 'nginx.conf'), 'utf8');
  const servers = ports.map((p) => `        server 127.0.0.1:${p} max_fails=1 fail_timeout=5s;`).join('\n');
  conf = conf.replace(/( {8}server 127\.0\.0\.1:300\d[^\n]*\n)+/, `${servers}\n`)
    .replace('listen 8080;', `listen 127.0.0.1:${listen};`)
    .replaceAll('/tmp/tandem-nginx', path.join(dir, 'tmp', 'n'));
  const file = path.join(dir, 'nginx.conf');
  writeFileSync(file, conf);
  const proc = spawn('nginx', ['-c', file, '-g', 'daemon off;'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  proc.stderr.on('data', (d) => { err += d; });
  await waitPort(listen, proc, `nginx (${err})`);
  return {
    url: `http://127.0.0.1:${listen}`,
    async stop() {
      if (proc.exitCode !== null) return;
      const gone = new Promise((r) => proc.once('exit', r));
      // SIGTERM: the master stops its workers too (SIGKILL would orphan them).
      proc.kill('SIGTERM');
      await gone;
    },
  };
}

/** Redis, Mongo, `n` nodes with a shared upload dir, nginx in front. */
export async function startCluster(n = 3, env = {}) {
  const redis = await startRedis();
  const mongo = await startMongo();
  const shared = mkdtempSync(path.join(tmpdir(), 'tandem-cluster-'));
  const nodes = [];
  for (let i = 0; i < n; i += 1) {
    nodes.push(await startServer({
      REDIS_URL: redis.url,
      MONGODB_URI: mongo.uri,
      UPLOAD_DIR: path.join(shared, 'uploads'),
      TRUST_PROXY: 'true',
      SOCKET_EVENT_LIMIT: '100000',
      MATCH_FALLBACK: '300ms',
      ...env,
    }));
  }
  const nginx = await startNginx(nodes.map((s) => s.port));
  return {
    redis,
    mongo,
    nodes,
    nginx,
    async stop() {
      await nginx.stop();
      await Promise.all(nodes.map((s) => s.stop('SIGKILL')));
      await redis.stop();
      await mongo.stop();
      rmSync(shared, { recursive: true, force: true });
    },
  };
}
