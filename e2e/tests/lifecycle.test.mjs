import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { startServer, runToExit } from '../lib/server.mjs';
import { api, register, connect, uniqueUser } from '../lib/client.mjs';

test('invalid configuration exits with one line naming the setting', async () => {
  const cases = [
    [{ PORT: 'abc' }, /^tandem: invalid configuration: PORT: /],
    [{ BCRYPT_COST: '99' }, /BCRYPT_COST/],
    [{ JWT_EXPIRES_IN: 'soon' }, /JWT_EXPIRES_IN/],
    [{ TANDEM_ENV: 'production', JWT_SECRET: null }, /JWT_SECRET is required when TANDEM_ENV=production/],
    [{ TANDEM_ENV: 'production', JWT_SECRET: 'short' }, /JWT_SECRET must be at least 32/],
    [{ CORS_ORIGIN: 'app.example.com' }, /CORS_ORIGIN/],
    [{ LOG_LEVEL: 'tandem=loud' }, /LOG_LEVEL/],
    [{ TRUST_PROXY: 'maybe' }, /TRUST_PROXY/],
  ];
  for (const [env, pattern] of cases) {
    const r = await runToExit(env);
    assert.equal(r.code, 2, `${JSON.stringify(env)}: ${r.stderr}`);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0], pattern);
  }
});

test('--help documents every setting with its environment variable', async () => {
  const r = await runToExit({}, ['--help']);
  assert.equal(r.code, 0);
  for (const v of ['PORT', 'HOST', 'MONGODB_URI', 'REDIS_URL', 'JWT_SECRET', 'JWT_EXPIRES_IN', 'CORS_ORIGIN',
    'BCRYPT_COST', 'LOG_DIR', 'LOG_LEVEL', 'UPLOAD_DIR', 'MAX_FILE_SIZE', 'MAX_VOICE_DURATION',
    'RATE_LIMIT_AUTH_MAX', 'RATE_LIMIT_API_MAX', 'RATE_LIMIT_WINDOW', 'DATA_DIR', 'TANDEM_ENV']) {
    assert.match(r.stdout, new RegExp(`\\[env: ${v}[=\\]]`), `--help lacks ${v}`);
  }
});

test('a .env file in the working directory is read', async () => {
  const { mkdtempSync, writeFileSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const dir = mkdtempSync(path.join(tmpdir(), 'tandem-dotenv-'));
  writeFileSync(path.join(dir, '.env'), 'PORT=notaport\n');
  const r = await runToExit({ PORT: null }, [], 15000, dir);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /PORT/);
});

test('the embedded store and the generated secret survive a restart; logs hold no secrets', async () => {
  const first = await startServer({ JWT_SECRET: null });
  const dir = first.dir;
  const u = await register(first.url, uniqueUser('persist'));
  const { socket } = await connect(first.url, u.token);
  socket.close();
  assert.match(first.output(), /JWT_SECRET is not set/);
  assert.equal((await first.stop()).code, 0);
  const secretFile = path.join(dir, 'data', 'jwt_secret');
  assert.ok(existsSync(secretFile));
  assert.equal(statSync(secretFile).mode & 0o077, 0, 'the secret file is private');

  const second = await startServer({ JWT_SECRET: null }, { dir });
  try {
    const me = await api(second.url, 'GET', '/api/auth/me', { token: u.token });
    assert.equal(me.status, 200, 'a token from before the restart still verifies');
    const login = await api(second.url, 'POST', '/api/auth/login', { body: { email: u.email, password: u.password } });
    assert.equal(login.status, 200, login.text);
    const dupe = await api(second.url, 'POST', '/api/auth/register', { body: { ...uniqueUser('p2'), username: u.username } });
    assert.equal(dupe.status, 409);
  } finally {
    await second.stop();
  }

  const logDir = path.join(dir, 'logs');
  const files = readdirSync(logDir).filter((f) => f.startsWith('tandem.log'));
  assert.ok(files.length >= 1, 'a daily log file exists');
  const logs = files.map((f) => readFileSync(path.join(logDir, f), 'utf8')).join('\n');
  assert.match(logs, /request\{method=POST path="\/api\/auth\/register"\}/, 'request spans are logged');
  assert.match(logs, /socket\{sid=/, 'socket spans are logged');
  for (const secret of [u.password, u.token, u.refreshToken, readFileSync(secretFile, 'utf8').trim()]) {
    assert.ok(!logs.includes(secret), 'no password, token or secret in logs');
    assert.ok(!first.output().includes(secret) && !second.output().includes(secret));
  }
});
