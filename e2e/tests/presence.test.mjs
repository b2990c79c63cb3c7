import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../lib/server.mjs';
import { api, register, guest, connect, eventually, uniqueUser } from '../lib/client.mjs';

let srv;
before(async () => { srv = await startServer(); });
after(async () => { await srv?.stop(); });

const get = (path, token) => api(srv.url, 'GET', path, { token });

test('online and available lists follow sockets', async () => {
  const a = await register(srv.url, uniqueUser('pa'));
  const b = await guest(srv.url);
  const { socket: sa } = await connect(srv.url, a.token);
  const { socket: sb } = await connect(srv.url, b.token);
  const { socket: sa2 } = await connect(srv.url, a.token);

  const online = await get('/api/users/online', a.token);
  assert.equal(online.status, 200, online.text);
  const ids = online.body.data.users.map((u) => u.id);
  assert.ok(ids.includes(a.user.id) && ids.includes(b.user.id));
  const ua = online.body.data.users.find((u) => u.id === a.user.id);
  assert.equal(ua.username, a.username);
  assert.equal(ua.status, 'idle');
  assert.equal(ua.sockets, 2);
  assert.equal(ua.email, undefined, 'no emails in presence lists');

  const avail = await get('/api/users/available', a.token);
  const availIds = avail.body.data.users.map((u) => u.id);
  assert.ok(!availIds.includes(a.user.id), 'the caller is not listed as available to itself');
  assert.ok(availIds.includes(b.user.id));

  const me = await get('/api/auth/me', a.token);
  assert.equal(me.body.data.user.isOnline, true);

  sa.close();
  const still = await get('/api/users/online', b.token);
  assert.ok(still.body.data.users.some((u) => u.id === a.user.id), 'one socket left keeps the user online');
  sa2.close();
  await eventually(async () => {
    const r = await get('/api/users/online', b.token);
    return !r.body.data.users.some((u) => u.id === a.user.id);
  }, 5000, 'a to go offline');
  const after = await eventually(async () => {
    const r = await get('/api/auth/me', a.token);
    return r.body.data.user.lastSeen ? r : null;
  }, 5000, 'lastSeen');
  assert.equal(after.body.data.user.isOnline, false);
  sb.close();
});

test('lists need a token and accept a limit', async () => {
  assert.equal((await get('/api/users/online')).status, 401);
  assert.equal((await get('/api/users/available')).status, 401);
  const g = await guest(srv.url);
  const socks = [];
  for (let i = 0; i < 3; i += 1) socks.push((await connect(srv.url, (await guest(srv.url)).token)).socket);
  const r = await get('/api/users/online?limit=2', g.token);
  assert.equal(r.body.data.users.length, 2);
  assert.equal(r.body.data.count, 2);
  socks.forEach((s) => s.close());
});

test('user and socket stats count accounts and connections', async () => {
  const g = await guest(srv.url);
  const { socket } = await connect(srv.url, g.token);
  const stats = await get('/api/users/stats', g.token);
  assert.equal(stats.status, 200, stats.text);
  const d = stats.body.data;
  assert.ok(d.totalUsers >= 1);
  assert.ok(d.guestUsers >= 1);
  assert.equal(d.totalUsers, d.registeredUsers + d.guestUsers);
  assert.ok(d.onlineUsers >= 1);
  for (const k of ['availableUsers', 'queuedUsers', 'inChatUsers']) assert.equal(typeof d[k], 'number');

  const ss = await get('/api/socket/stats', g.token);
  assert.equal(ss.status, 200, ss.text);
  assert.ok(ss.body.data.connectedSockets >= 1);
  assert.ok(ss.body.data.localSockets >= 1);
  assert.ok(ss.body.data.rssBytes > 0);
  assert.ok(ss.body.data.heap.allocatedBytes > 0 && ss.body.data.heap.residentBytes >= ss.body.data.heap.allocatedBytes);
  assert.equal((await get('/api/users/stats')).status, 401);
  assert.equal((await get('/api/socket/stats')).status, 401);
  socket.close();
});

test('devices are recorded with user agent and IP', async () => {
  const g = await guest(srv.url);
  const res = await api(srv.url, 'POST', '/api/users/device', {
    token: g.token, body: { deviceId: 'device-abc' }, headers: { 'user-agent': 'TandemTest/1.0' },
  });
  assert.equal(res.status, 200, res.text);
  assert.equal(res.body.data.deviceId, 'device-abc');
  assert.equal(res.body.data.userAgent, 'TandemTest/1.0');
  assert.equal(res.body.data.ip, '127.0.0.1');
  assert.ok(Date.parse(res.body.data.lastSeen));
  const again = await api(srv.url, 'POST', '/api/users/device', { token: g.token, body: { deviceId: 'device-abc' } });
  assert.equal(again.status, 200);
  for (const body of [{}, { deviceId: '' }, { deviceId: 7 }, { deviceId: 'x'.repeat(129) }]) {
    const bad = await api(srv.url, 'POST', '/api/users/device', { token: g.token, body });
    assert.equal(bad.status, 400, JSON.stringify(body));
    assert.equal(bad.body.error.field, 'deviceId');
  }
  assert.equal((await api(srv.url, 'POST', '/api/users/device', { body: { deviceId: 'x' } })).status, 401);
});
