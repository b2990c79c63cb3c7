// Fault tests of the cluster: a node killed with SIGKILL mid-chat, and
// Redis stopped and started again. Everything on 127.0.0.1.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { io } from 'socket.io-client';
import { startCluster } from '../lib/cluster.mjs';
import { api, guest, connect, once, request, eventually } from '../lib/client.mjs';

const required = process.env.TANDEM_REQUIRE_MONGODB === '1';
const skip = !process.env.TANDEM_TEST_MONGOD && !required && 'TANDEM_TEST_MONGOD unset';

async function userOn(node) {
  const g = await guest(node.url);
  const { socket } = await connect(node.url, g.token);
  return { ...g, socket };
}

/** A user on each node, matched with each other. */
async function matchedAcross(nodeA, nodeB) {
  const a = await userOn(nodeA);
  const b = await userOn(nodeB);
  const mb = once(b.socket, 'user:matched');
  await request(a.socket, 'user:match');
  await request(b.socket, 'user:match');
  const { roomId } = await mb;
  return { a, b, roomId };
}

test('a node killed mid-chat leaves no ghosts; its clients come back through nginx', { skip }, async () => {
  const c = await startCluster(3, { RECONNECT_GRACE: '3s' });
  try {
    // The node nginx sends this host to is the one that dies.
    const probe = await guest(c.nginx.url);
    const viaNginx = await api(c.nginx.url, 'GET', '/api/socket/stats', { token: probe.token });
    const victim = c.nodes.find((n) => viaNginx.body.data.node.endsWith(`-${n.proc.pid}`));
    assert.ok(victim, viaNginx.text);
    const survivor = c.nodes.find((n) => n !== victim);

    const { a, b, roomId } = await matchedAcross(survivor, victim);
    const ghost = await userOn(victim);
    assert.equal((await request(ghost.socket, 'user:match')).data.status, 'waiting');

    // A client through nginx (landing on the victim) that reconnects by itself.
    const e = await guest(c.nginx.url);
    const es = io(c.nginx.url, { auth: { token: e.token }, reconnectionDelay: 100, reconnectionDelayMax: 500, transports: ['websocket'] });
    const first = await once(es, 'connection:established');
    assert.ok(first.userId);

    const reconnecting = once(a.socket, 'partner:reconnecting', 15000);
    const left = once(a.socket, 'partner:left', 25000);
    const eBack = once(es, 'connection:established', 20000);
    await victim.stop('SIGKILL');

    assert.equal((await reconnecting).roomId, roomId);
    // The dead node's queue entry is gone: a newcomer waits instead of meeting the ghost.
    const d = await userOn(survivor);
    assert.equal((await request(d.socket, 'user:match')).data.status, 'waiting');
    const l = await left;
    assert.deepEqual(l, { reason: 'disconnected', roomId });
    await eventually(async () => {
      const s = await api(survivor.url, 'GET', '/api/socket/stats', { token: a.token });
      return s.body.data.queuedUsers === 1 && !(await api(survivor.url, 'GET', '/api/users/online?limit=1000', { token: a.token }))
        .body.data.users.some((u) => u.id === b.user.id || u.id === ghost.user.id);
    }, 10000, 'the dead node to leave no queue entry or presence');

    // The partner re-queues cleanly and meets the newcomer.
    const ma = once(a.socket, 'user:matched');
    assert.equal((await request(a.socket, 'user:match')).data.status, 'matched');
    assert.equal((await ma).matchedUser.id, d.user.id);

    // The nginx client is back on a living node and can be matched again.
    await eBack;
    assert.equal((await request(es, 'user:match')).data.status, 'waiting');
    const f = await userOn(survivor);
    const me = once(es, 'user:matched');
    assert.equal((await request(f.socket, 'user:match')).data.status, 'matched');
    assert.equal((await me).matchedUser.id, f.user.id);
    for (const s of [a.socket, d.socket, f.socket, es]) s.close();
  } finally {
    await c.stop();
  }
});

test('Redis down: health says so, matching fails clearly, clients are told; it recovers without a restart', { skip }, async () => {
  const c = await startCluster(2);
  try {
    const [n1, n2] = c.nodes;
    const x = await userOn(n1);
    const y = await userOn(n2);
    const degraded = once(x.socket, 'server:degraded', 15000);
    await c.redis.stop();
    assert.deepEqual(await degraded, { redis: 'down', matching: false });
    const h = await api(n1.url, 'GET', '/health');
    assert.equal(h.status, 503);
    assert.equal(h.body.data.redis.status, 'down');
    const m = await request(x.socket, 'user:match', {}, 10000);
    assert.equal(m.success, false);
    assert.equal(m.error.code, 'service_unavailable');
    assert.equal(x.socket.connected, true, 'connected users stay connected');

    const recovered = once(x.socket, 'server:recovered', 20000);
    await c.redis.restart();
    assert.deepEqual(await recovered, { redis: 'up', matching: true });
    await eventually(async () => (await api(n1.url, 'GET', '/health')).status === 200, 10000, 'health to recover');
    // Cross-node delivery works again (the adapter resubscribed).
    const mx = once(x.socket, 'user:matched', 10000);
    assert.equal((await request(x.socket, 'user:match')).data.status, 'waiting');
    assert.equal((await request(y.socket, 'user:match')).data.status, 'matched');
    assert.equal((await mx).matchedUser.id, y.user.id);
    x.socket.close(); y.socket.close();
  } finally {
    await c.stop();
  }
});

test('a node killed while its user is inside the reconnect grace: the partner is still told, no key of the chat outlives it', { skip }, async () => {
  const c = await startCluster(2, { RECONNECT_GRACE: '3s' });
  try {
    const [survivor, victim] = c.nodes;
    const { a, b, roomId } = await matchedAcross(survivor, victim);
    // Every key of the chat expires by itself if no node refreshes it.
    const ttl = await new Promise((resolve, reject) => {
      execFile('redis-cli', ['-p', String(c.redis.port), 'TTL', `tandem:room:${roomId}`], (err, out) => (err ? reject(err) : resolve(Number(out.trim()))));
    });
    assert.ok(ttl > 0 && ttl <= 120, `the room key has a TTL (${ttl})`);

    // b drops: its node starts the grace, then dies inside it.
    const reconnecting = once(a.socket, 'partner:reconnecting', 10000);
    const left = once(a.socket, 'partner:left', 3000 + 10000);
    b.socket.close();
    assert.equal((await reconnecting).roomId, roomId);
    await victim.stop('SIGKILL');
    const started = Date.now();
    assert.deepEqual(await left, { reason: 'disconnected', roomId });
    assert.ok(Date.now() - started < 13000);

    // Nothing of that chat is left in Redis.
    const keys = await new Promise((resolve, reject) => {
      execFile('redis-cli', ['-p', String(c.redis.port), '--scan', '--pattern', `*${roomId}*`], (err, out) => (err ? reject(err) : resolve(out.trim())));
    });
    assert.equal(keys, '', `keys of the chat remain: ${keys}`);
    const graces = await new Promise((resolve, reject) => {
      execFile('redis-cli', ['-p', String(c.redis.port), 'ZRANGE', 'tandem:graces', '0', '-1'], (err, out) => (err ? reject(err) : resolve(out.trim())));
    });
    assert.equal(graces, '');
    a.socket.close();
  } finally {
    await c.stop();
  }
});
