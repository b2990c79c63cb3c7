import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../lib/server.mjs';
import { api, guest, uniqueUser, eventually } from '../lib/client.mjs';

test('credential routes allow RATE_LIMIT_AUTH_MAX per IP, then 429 with Retry-After', async () => {
  const srv = await startServer({ RATE_LIMIT_AUTH_MAX: '5', RATE_LIMIT_WINDOW: '15m' });
  try {
    for (let i = 0; i < 5; i += 1) {
      const r = await api(srv.url, 'POST', '/api/auth/login', { body: { email: 'x@example.com', password: 'Nope12345' } });
      assert.equal(r.status, 401);
      assert.equal(r.headers.get('ratelimit-limit'), '5');
      assert.equal(r.headers.get('ratelimit-remaining'), String(4 - i));
    }
    const limited = await api(srv.url, 'POST', '/api/auth/register', { body: uniqueUser('rl') });
    assert.equal(limited.status, 429);
    assert.equal(limited.body.success, false);
    assert.equal(limited.body.error.code, 'rate_limited');
    const retry = Number(limited.headers.get('retry-after'));
    assert.ok(retry > 0 && retry <= 900, `Retry-After ${retry}`);
    assert.equal((await api(srv.url, 'POST', '/api/auth/guest', { body: {} })).status, 429);
    // Other buckets and /health are not affected.
    assert.equal((await api(srv.url, 'GET', '/health')).status, 200);
    assert.equal((await api(srv.url, 'GET', '/api/users/online')).status, 401);
  } finally {
    await srv.stop();
  }
});

test('other API routes allow RATE_LIMIT_API_MAX per IP; the window resets', async () => {
  const srv = await startServer({ RATE_LIMIT_API_MAX: '3', RATE_LIMIT_WINDOW: '2s' });
  try {
    const g = await guest(srv.url);
    for (let i = 0; i < 3; i += 1) {
      assert.equal((await api(srv.url, 'GET', '/api/users/online', { token: g.token })).status, 200);
    }
    const limited = await api(srv.url, 'GET', '/api/users/online', { token: g.token });
    assert.equal(limited.status, 429);
    assert.equal(limited.body.error.code, 'rate_limited');
    const wait = Number(limited.headers.get('retry-after'));
    assert.ok(wait >= 1 && wait <= 2);
    // The window resets: polling gets a 200 again within Retry-After (+ slack).
    await eventually(async () => (await api(srv.url, 'GET', '/api/users/online', { token: g.token })).status === 200,
      wait * 1000 + 2000, 'the window to reset');
  } finally {
    await srv.stop();
  }
});

test('X-Real-IP is trusted only with TRUST_PROXY', async () => {
  const direct = await startServer({ RATE_LIMIT_AUTH_MAX: '1' });
  const proxied = await startServer({ RATE_LIMIT_AUTH_MAX: '1', TRUST_PROXY: 'true' });
  try {
    const body = { email: 'x@example.com', password: 'Nope12345' };
    const hit = (srv, ip) => api(srv.url, 'POST', '/api/auth/login', { body, headers: { 'x-real-ip': ip } });
    assert.equal((await hit(direct, '10.0.0.1')).status, 401);
    assert.equal((await hit(direct, '10.0.0.2')).status, 429, 'spoofed header ignored without TRUST_PROXY');
    assert.equal((await hit(proxied, '10.0.0.1')).status, 401);
    assert.equal((await hit(proxied, '10.0.0.2')).status, 401, 'each proxied client has its own budget');
    assert.equal((await hit(proxied, '10.0.0.1')).status, 429);
  } finally {
    await Promise.all([direct.stop(), proxied.stop()]);
  }
});

test('CORS allows only CORS_ORIGIN', async () => {
  const srv = await startServer({ CORS_ORIGIN: 'http://app.example.com,https://other.example.com' });
  try {
    const pre = (origin) => fetch(`${srv.url}/api/auth/login`, {
      method: 'OPTIONS',
      headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' },
    });
    const ok = await pre('http://app.example.com');
    assert.equal(ok.headers.get('access-control-allow-origin'), 'http://app.example.com');
    assert.equal(ok.headers.get('access-control-allow-credentials'), 'true');
    const other = await pre('https://other.example.com');
    assert.equal(other.headers.get('access-control-allow-origin'), 'https://other.example.com');
    const evil = await pre('http://evil.example.com');
    assert.equal(evil.headers.get('access-control-allow-origin'), null);
    const poll = await fetch(`${srv.url}/socket.io/?EIO=4&transport=polling`, { headers: { origin: 'http://app.example.com' } });
    assert.equal(poll.headers.get('access-control-allow-origin'), 'http://app.example.com');
  } finally {
    await srv.stop();
  }
});
