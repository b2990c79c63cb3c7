import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, JWT_SECRET } from '../lib/server.mjs';
import { api, register, guest, uniqueUser, signJwt } from '../lib/client.mjs';

let srv;
before(async () => { srv = await startServer(); });
after(async () => { await srv?.stop(); });

const post = (path, body, opts) => api(srv.url, 'POST', path, { body, ...opts });

function assertError(res, status, code, field) {
  assert.equal(res.status, status, res.text);
  assert.equal(res.body.success, false);
  assert.equal(typeof res.body.message, 'string');
  assert.ok(res.body.message.length > 0);
  assert.equal(res.body.error.code, code);
  if (field) assert.equal(res.body.error.field, field);
}

test('register returns tokens and the user without the hash', async () => {
  const u = uniqueUser('reg');
  const res = await post('/api/auth/register', u);
  assert.equal(res.status, 201, res.text);
  assert.equal(res.body.success, true);
  const { token, refreshToken, user } = res.body.data;
  assert.equal(token.split('.').length, 3);
  assert.ok(refreshToken.length >= 32);
  assert.equal(user.username, u.username);
  assert.equal(user.email, u.email);
  assert.equal(user.isGuest, false);
  assert.equal(typeof user.isOnline, 'boolean');
  assert.ok('lastSeen' in user);
  assert.ok(!Number.isNaN(Date.parse(user.createdAt)));
  assert.ok(!res.text.includes('$2'), 'no bcrypt hash in the response');
  assert.ok(!/password/i.test(JSON.stringify(user)));
});

test('register names the bad field', async () => {
  const ok = uniqueUser('val');
  const cases = [
    [{ ...ok, username: undefined }, 'username'],
    [{ ...ok, username: 'ab' }, 'username'],
    [{ ...ok, username: 'x'.repeat(31) }, 'username'],
    [{ ...ok, username: 'bad name!' }, 'username'],
    [{ ...ok, username: 42 }, 'username'],
    [{ ...ok, email: undefined }, 'email'],
    [{ ...ok, email: 'not-an-email' }, 'email'],
    [{ ...ok, email: 'a@b' }, 'email'],
    [{ ...ok, password: undefined }, 'password'],
    [{ ...ok, password: 'Pass1' }, 'password'],
    [{ ...ok, password: 'passwordonly' }, 'password'],
    [{ ...ok, password: '1234567890' }, 'password'],
    [{ ...ok, password: `A1${'x'.repeat(80)}` }, 'password'],
  ];
  for (const [body, field] of cases) {
    const res = await post('/api/auth/register', body);
    assertError(res, 400, 'validation_error', field);
    assert.match(res.body.message, new RegExp(field));
  }
});

test('malformed bodies get clear errors', async () => {
  assertError(await api(srv.url, 'POST', '/api/auth/register', { raw: '{"username":', headers: { 'content-type': 'application/json' } }), 400, 'bad_request');
  assertError(await api(srv.url, 'POST', '/api/auth/register', { raw: '[1,2]', headers: { 'content-type': 'application/json' } }), 400, 'bad_request');
  assertError(await api(srv.url, 'POST', '/api/auth/register', { raw: 'username=x', headers: { 'content-type': 'application/x-www-form-urlencoded' } }), 415, 'unsupported_media_type');
  const huge = JSON.stringify({ username: 'x'.repeat(200 * 1024) });
  assertError(await api(srv.url, 'POST', '/api/auth/register', { raw: huge, headers: { 'content-type': 'application/json' } }), 413, 'payload_too_large');
});

test('usernames and emails are unique case-insensitively', async () => {
  const u = await register(srv.url, uniqueUser('dup'));
  const sameName = { ...uniqueUser('dup2'), username: u.username.toUpperCase() };
  assertError(await post('/api/auth/register', sameName), 409, 'conflict', 'username');
  const sameEmail = { ...uniqueUser('dup3'), email: u.email.toUpperCase() };
  assertError(await post('/api/auth/register', sameEmail), 409, 'conflict', 'email');
});

test('concurrent registrations of one username create one account', async () => {
  const base = uniqueUser('race');
  const attempts = await Promise.all(Array.from({ length: 8 }, (_, i) => post('/api/auth/register', {
    ...base, email: `race${i}.${base.email}`,
  })));
  assert.equal(attempts.filter((r) => r.status === 201).length, 1);
  assert.equal(attempts.filter((r) => r.status === 409).length, 7);
});

test('login succeeds with the right password only, with one message for both failures', async () => {
  const u = await register(srv.url, uniqueUser('log'));
  const good = await post('/api/auth/login', { email: u.email.toUpperCase(), password: u.password });
  assert.equal(good.status, 200, good.text);
  assert.equal(good.body.data.user.id, u.user.id);
  assert.ok(good.body.data.token);
  const wrong = await post('/api/auth/login', { email: u.email, password: 'Wrong12345' });
  assertError(wrong, 401, 'invalid_credentials');
  const unknown = await post('/api/auth/login', { email: 'nobody@example.com', password: 'Wrong12345' });
  assertError(unknown, 401, 'invalid_credentials');
  assert.equal(wrong.body.message, unknown.body.message);
  assertError(await post('/api/auth/login', { email: u.email }), 400, 'validation_error', 'password');
});

test('me returns the own account with email; bad tokens get 401', async () => {
  const u = await register(srv.url, uniqueUser('me'));
  const me = await api(srv.url, 'GET', '/api/auth/me', { token: u.token });
  assert.equal(me.status, 200, me.text);
  assert.equal(me.body.data.user.id, u.user.id);
  assert.equal(me.body.data.user.email, u.email);

  const now = Math.floor(Date.now() / 1000);
  const claims = { sub: u.user.id, name: u.username, guest: false, iat: now };
  const [h, p] = u.token.split('.');
  const tampered = `${h}.${Buffer.from(JSON.stringify({ ...claims, sub: 'someone-else', exp: now + 600 })).toString('base64url')}.${u.token.split('.')[2]}`;
  const cases = [
    [{}, 'unauthorized'],
    [{ headers: { authorization: `Token ${u.token}` } }, 'invalid_token'],
    [{ headers: { authorization: 'Bearer' } }, 'invalid_token'],
    [{ token: 'not.a.jwt' }, 'invalid_token'],
    [{ token: signJwt({ ...claims, exp: now - 3600 }, JWT_SECRET) }, 'token_expired'],
    [{ token: tampered }, 'invalid_token'],
    [{ token: signJwt({ ...claims, exp: now + 600 }, 'some-other-secret-0123456789abcdef') }, 'invalid_token'],
    [{ token: `${Buffer.from('{"alg":"none","typ":"JWT"}').toString('base64url')}.${p}.` }, 'invalid_token'],
    [{ token: signJwt({ ...claims, exp: now + 600 }, JWT_SECRET, { alg: 'HS512', typ: 'JWT' }) }, 'invalid_token'],
  ];
  for (const [opts, code] of cases) {
    assertError(await api(srv.url, 'GET', '/api/auth/me', opts), 401, code);
  }
});

test('refresh rotates the pair; a used or revoked refresh token is refused', async () => {
  const u = await register(srv.url, uniqueUser('ref'));
  const r1 = await post('/api/auth/refresh', { refreshToken: u.refreshToken });
  assert.equal(r1.status, 200, r1.text);
  assert.notEqual(r1.body.data.refreshToken, u.refreshToken);
  const me = await api(srv.url, 'GET', '/api/auth/me', { token: r1.body.data.token });
  assert.equal(me.status, 200);
  assertError(await post('/api/auth/refresh', { refreshToken: u.refreshToken }), 401, 'invalid_refresh_token');

  const out = await post('/api/auth/logout', { refreshToken: r1.body.data.refreshToken });
  assert.equal(out.status, 200, out.text);
  assertError(await post('/api/auth/refresh', { refreshToken: r1.body.data.refreshToken }), 401, 'invalid_refresh_token');
  assertError(await post('/api/auth/refresh', { refreshToken: 'made-up' }), 401, 'invalid_refresh_token');
  assertError(await post('/api/auth/refresh', {}), 400, 'validation_error', 'refreshToken');
  assertError(await post('/api/auth/logout', {}), 400, 'validation_error', 'refreshToken');
});

test('guest accounts need no email or password', async () => {
  const g = await guest(srv.url);
  assert.equal(g.user.isGuest, true);
  assert.equal(g.user.email, null);
  assert.match(g.user.username, /^guest_[a-z0-9]+$/);
  const me = await api(srv.url, 'GET', '/api/auth/me', { token: g.token });
  assert.equal(me.status, 200);
  assert.equal(me.body.data.user.isGuest, true);

  const name = uniqueUser('gst').username;
  const named = await guest(srv.url, name);
  assert.equal(named.user.username, name);
  assertError(await post('/api/auth/guest', { username: name.toLowerCase() === name ? name.toUpperCase() : name.toLowerCase() }), 409, 'conflict', 'username');
  assertError(await post('/api/auth/guest', { username: 'no spaces allowed' }), 400, 'validation_error', 'username');
  const twice = await Promise.all([guest(srv.url), guest(srv.url)]);
  assert.notEqual(twice[0].user.id, twice[1].user.id);
  const r = await post('/api/auth/refresh', { refreshToken: g.refreshToken });
  assert.equal(r.status, 200);
});

test('unknown routes and methods get JSON errors; every response has security headers', async () => {
  const res = await api(srv.url, 'GET', '/api/nope');
  assertError(res, 404, 'not_found');
  assertError(await api(srv.url, 'GET', '/api/auth/register'), 405, 'method_not_allowed');
  for (const r of [res, await api(srv.url, 'GET', '/health')]) {
    assert.equal(r.headers.get('x-content-type-options'), 'nosniff');
    assert.equal(r.headers.get('x-frame-options'), 'DENY');
    assert.ok(r.headers.get('content-security-policy'));
    assert.ok(r.headers.get('referrer-policy'));
  }
});

test('health reports the store and Redis', async () => {
  const res = await api(srv.url, 'GET', '/health');
  assert.equal(res.status, 200);
  assert.equal(res.body.data.status, 'ok');
  assert.deepEqual(res.body.data.store, { backend: 'embedded', status: 'up' });
  assert.equal(res.body.data.redis.status, 'disabled');
});
