// Three nodes behind nginx with Redis: one server to their users.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { io } from 'socket.io-client';
import { ROOT } from '../lib/server.mjs';
import { startCluster } from '../lib/cluster.mjs';
import { api, guest, connect, once, request, upload, eventually } from '../lib/client.mjs';
import { png } from '../lib/fixtures.mjs';

const required = process.env.TANDEM_REQUIRE_MONGODB === '1';
const skip = !process.env.TANDEM_TEST_MONGOD && !required && 'TANDEM_TEST_MONGOD unset';

let c;
before(async () => { if (!skip) c = await startCluster(3, { RECONNECT_GRACE: '5s' }); });
after(async () => { await c?.stop(); });

async function userOn(node) {
  const g = await guest(node.url);
  const { socket } = await connect(node.url, g.token);
  return { ...g, socket, node };
}

test('the shipped nginx.conf passes nginx -t', { skip }, () => {
  const out = execFileSync('nginx', ['-t', '-c', path.join(ROOT, 'nginx.conf')], { stdio: 'pipe' }).toString();
  void out;
});

test('users on different nodes are matched, chat, share a file and signal', { skip }, async () => {
  const [n1, n2] = c.nodes;
  const a = await userOn(n1);
  const b = await userOn(n2);
  const ma = once(a.socket, 'user:matched');
  const mb = once(b.socket, 'user:matched');
  assert.equal((await request(a.socket, 'user:match')).data.status, 'waiting');
  assert.equal((await request(b.socket, 'user:match')).data.status, 'matched');
  const [ea, eb] = await Promise.all([ma, mb]);
  assert.equal(ea.roomId, eb.roomId);
  assert.equal(ea.matchedUser.id, b.user.id);
  assert.equal(ea.role, 'caller');

  const got = once(b.socket, 'chat:message');
  await request(a.socket, 'chat:message', { type: 'text', content: 'hello across nodes' });
  assert.equal((await got).content, 'hello across nodes');

  const file = (await upload(n1.url, a.token, png, { name: 'x.png' })).body.data;
  const gotFile = once(b.socket, 'chat:message');
  assert.equal((await request(a.socket, 'chat:message', { type: 'file', fileId: file.id })).success, true);
  assert.equal((await gotFile).file.id, file.id);
  const dl = await fetch(n2.url + file.url, { headers: { authorization: `Bearer ${b.token}` } });
  assert.equal(dl.status, 200, 'the file is served by the other node');
  assert.deepEqual(Buffer.from(await dl.arrayBuffer()), png);

  const offer = once(b.socket, 'webrtc:offer');
  await request(a.socket, 'webrtc:offer', { offer: { type: 'offer', sdp: 'v=0' }, type: 'video' });
  assert.equal((await offer).from, a.user.id);
  const answer = once(a.socket, 'webrtc:answer');
  await request(b.socket, 'webrtc:answer', { answer: { type: 'answer', sdp: 'v=0' } });
  assert.equal((await answer).from, b.user.id);

  const left = once(b.socket, 'partner:left');
  await request(a.socket, 'user:end');
  assert.equal((await left).reason, 'ended');
  a.socket.close(); b.socket.close();
});

test('presence is the same from every node', { skip }, async () => {
  const users = await Promise.all(c.nodes.map((n) => userOn(n)));
  const views = await eventually(async () => {
    const lists = await Promise.all(c.nodes.map((n) => api(n.url, 'GET', '/api/users/online?limit=1000', { token: users[0].token })));
    const sets = lists.map((l) => l.body.data.users.map((u) => u.id).sort().join(','));
    return users.every((u) => sets[0].includes(u.user.id)) && sets.every((s) => s === sets[0]) ? sets : null;
  }, 5000, 'identical presence');
  assert.equal(views.length, 3);
  const stats = await Promise.all(c.nodes.map((n) => api(n.url, 'GET', '/api/socket/stats', { token: users[0].token })));
  assert.ok(stats.every((s) => s.body.data.onlineUsers === stats[0].body.data.onlineUsers));
  users.forEach((u) => u.socket.close());
});

test('a session recovers on another node', { skip }, async () => {
  const [n1, n2, n3] = c.nodes;
  const a = await userOn(n1);
  const b = await userOn(n2);
  const mb = once(b.socket, 'user:matched');
  await request(a.socket, 'user:match');
  await request(b.socket, 'user:match');
  const { roomId } = await mb;
  const away = once(b.socket, 'partner:reconnecting');
  a.socket.close();
  await away;
  await request(b.socket, 'chat:message', { type: 'text', content: 'kept for you' });
  const back = once(b.socket, 'partner:reconnected');
  const a2 = io(n3.url, { auth: { token: a.token }, reconnection: false, forceNew: true });
  const kept = once(a2, 'chat:message');
  const m = await once(a2, 'user:matched');
  assert.equal(m.roomId, roomId);
  assert.equal(m.recovered, true);
  assert.equal((await kept).content, 'kept for you');
  await back;
  a2.close(); b.socket.close();
});

test('100 users spread over the nodes are all paired exactly once', { skip }, async () => {
  const accounts = await Promise.all(Array.from({ length: 100 }, (_, i) => guest(c.nodes[i % 3].url)));
  const conns = await Promise.all(accounts.map((g, i) => connect(c.nodes[i % 3].url, g.token)));
  const matched = conns.map(({ socket }) => once(socket, 'user:matched', 20000));
  await Promise.all(conns.map(({ socket }) => request(socket, 'user:match', {}, 20000)));
  const events = await Promise.all(matched);
  const byUser = new Map(accounts.map((g, i) => [g.user.id, events[i]]));
  const rooms = new Map();
  for (const [id, e] of byUser) {
    assert.notEqual(e.matchedUser.id, id);
    assert.equal(byUser.get(e.matchedUser.id).matchedUser.id, id);
    rooms.set(e.roomId, (rooms.get(e.roomId) || 0) + 1);
  }
  assert.equal(rooms.size, 50);
  assert.ok([...rooms.values()].every((k) => k === 2));
  conns.forEach(({ socket }) => socket.close());
});

test('nginx reaches the cluster: HTTP and Socket.IO (polling and WebSocket)', { skip }, async () => {
  const g = await guest(c.nginx.url);
  const h = await api(c.nginx.url, 'GET', '/health');
  assert.equal(h.status, 200, h.text);
  assert.equal(h.body.data.redis.status, 'up');
  for (const transports of [['polling'], ['websocket'], ['polling', 'websocket']]) {
    const { socket, info } = await connect(c.nginx.url, g.token, { transports });
    assert.equal(info.userId, g.user.id);
    socket.close();
  }
});

test('rate limits count across nodes', { skip }, async () => {
  const own = await startCluster(2, { RATE_LIMIT_AUTH_MAX: '4' });
  try {
    const [x, y] = own.nodes;
    const body = { email: 'nobody@example.com', password: 'Nope12345' };
    const statuses = [];
    for (let i = 0; i < 6; i += 1) statuses.push((await api([x, y][i % 2].url, 'POST', '/api/auth/login', { body })).status);
    assert.deepEqual(statuses, [401, 401, 401, 401, 429, 429]);
  } finally {
    await own.stop();
  }
});
