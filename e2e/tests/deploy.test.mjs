// The deployment files really run: PM2 starts the three processes of
// ecosystem.config.js and they form one cluster.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { ROOT, BIN } from '../lib/server.mjs';
import { startRedis } from '../lib/cluster.mjs';
import { startMongo } from '../lib/mongo.mjs';
import { api, guest, connect, eventually } from '../lib/client.mjs';

const required = process.env.TANDEM_REQUIRE_MONGODB === '1';
const skip = !process.env.TANDEM_TEST_MONGOD && !required && 'TANDEM_TEST_MONGOD unset';
const require = createRequire(import.meta.url);
const PM2 = path.join(path.dirname(require.resolve('pm2/package.json')), 'bin', 'pm2');

test('ecosystem.config.js describes three processes on 3001-3003', () => {
  const config = require(path.join(ROOT, 'ecosystem.config.js'));
  assert.deepEqual(config.apps.map((a) => a.env.PORT), ['3001', '3002', '3003']);
  assert.deepEqual(config.apps.map((a) => a.env.TURN_PORT), ['3478', '3479', '3480']);
  assert.deepEqual(config.apps.map((a) => a.env.SFU_UDP_PORT), ['3490', '3491', '3492']);
});

test('PM2 runs ecosystem.config.js as one cluster', { skip }, async () => {
  const redis = await startRedis();
  const mongo = await startMongo();
  const dir = mkdtempSync(path.join(tmpdir(), 'tandem-pm2-'));
  const env = {
    ...process.env,
    PM2_HOME: path.join(dir, 'pm2'),
    TANDEM_BIN: BIN,
    REDIS_URL: redis.url,
    MONGODB_URI: mongo.uri,
    JWT_SECRET: 'pm2-test-secret-0123456789abcdef-0123',
    TURN_SECRET: 'pm2-turn-secret',
    DATA_DIR: path.join(dir, 'data'),
    UPLOAD_DIR: path.join(dir, 'uploads'),
    LOG_DIR: path.join(dir, 'logs'),
  };
  const pm2 = (...args) => execFileSync(process.execPath, [PM2, ...args], { cwd: ROOT, env, stdio: 'pipe' }).toString();
  try {
    pm2('start', 'ecosystem.config.js');
    const urls = [3001, 3002, 3003].map((p) => `http://127.0.0.1:${p}`);
    await eventually(async () => {
      const hs = await Promise.all(urls.map((u) => api(u, 'GET', '/health').catch(() => null)));
      return hs.every((h) => h && h.status === 200 && h.body.data.redis.status === 'up');
    }, 30000, 'three healthy processes');
    const g = await guest(urls[0]);
    const { socket } = await connect(urls[0], g.token);
    await eventually(async () => {
      const r = await api(urls[2], 'GET', '/api/users/online', { token: g.token });
      return r.body.data.users.some((u) => u.id === g.user.id);
    }, 5000, 'presence to be shared');
    socket.close();
  } finally {
    try { pm2('kill'); } catch { /* already gone */ }
    await redis.stop();
    await mongo.stop();
  }
});
