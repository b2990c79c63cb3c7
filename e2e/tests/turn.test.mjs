import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import dgram from 'node:dgram';
import { startServer } from '../lib/server.mjs';
import { api, guest } from '../lib/client.mjs';
import { startPeer, uclient } from '../lib/turn.mjs';

const SECRET = 'turn-test-secret-0123456789abcdef';
const LOOPBACK = { TURN_MODE: 'internal', TURN_PORT: '0', TURN_SECRET: SECRET, TURN_ALLOWED_PEERS: '127.0.0.0/8' };

let srv;
let peer;
before(async () => {
  srv = await startServer(LOOPBACK);
  peer = await startPeer();
});
after(async () => {
  peer?.stop();
  await srv?.stop();
});

const restPassword = (secret, username) => createHmac('sha1', secret).update(username).digest('base64');

test('credentials follow the TURN REST API scheme', async () => {
  const g = await guest(srv.url);
  const res = await api(srv.url, 'GET', '/api/turn/credentials', { token: g.token });
  assert.equal(res.status, 200, res.text);
  const c = res.body.data;
  const [expiry, userId] = c.username.split(':');
  assert.equal(userId, g.user.id);
  const now = Math.floor(Date.now() / 1000);
  assert.ok(Math.abs(Number(expiry) - (now + 3600)) <= 5, c.username);
  assert.equal(c.ttl, 3600);
  assert.equal(c.password, restPassword(SECRET, c.username));
  assert.deepEqual(c.uris, [`stun:127.0.0.1:${srv.turnPort}`, `turn:127.0.0.1:${srv.turnPort}?transport=udp`, `turn:127.0.0.1:${srv.turnPort}?transport=tcp`]);
  assert.deepEqual(c.iceServers, [{ urls: c.uris, username: c.username, credential: c.password }]);
  assert.equal((await api(srv.url, 'GET', '/api/turn/credentials')).status, 401);
});

test('external mode points at another TURN server; off mode has none', async () => {
  const ext = await startServer({ TURN_MODE: 'external', TURN_URLS: 'turn:turn.example.com:3478?transport=udp,turns:turn.example.com:5349', TURN_SECRET: 'shared-with-coturn', TURN_CREDENTIAL_TTL: '10m' });
  const off = await startServer({ TURN_MODE: 'off' });
  try {
    const g = await guest(ext.url);
    const c = (await api(ext.url, 'GET', '/api/turn/credentials', { token: g.token })).body.data;
    assert.deepEqual(c.uris, ['turn:turn.example.com:3478?transport=udp', 'turns:turn.example.com:5349']);
    assert.equal(c.ttl, 600);
    assert.equal(c.password, restPassword('shared-with-coturn', c.username));
    const h = await guest(off.url);
    const r = await api(off.url, 'GET', '/api/turn/credentials', { token: h.token });
    assert.equal(r.status, 404);
    assert.equal(r.body.error.code, 'not_found');
  } finally {
    await Promise.all([ext.stop(), off.stop()]);
  }
});

for (const tcp of [false, true]) {
  test(`turnutils_uclient over ${tcp ? 'TCP' : 'UDP'}: every message echoed, none lost`, async () => {
    const r = await uclient({ turnPort: srv.turnPort, peerPort: peer.port, secret: SECRET, tcp, messages: 50, clients: 2 });
    assert.ok(r.sent > 0, r.out.slice(-1500));
    assert.equal(r.received, r.sent, r.out.slice(-1500));
    assert.equal(r.lost, 0);
  });
}

test('junk sent to the TURN port does not disturb a running relay', async () => {
  const junk = dgram.createSocket('udp4');
  const blast = setInterval(() => {
    for (const b of [Buffer.alloc(0), Buffer.from('GET / HTTP/1.1\r\n\r\n'), Buffer.alloc(20), Buffer.from([0x40, 0x01, 0xff, 0xff, 1]), Buffer.alloc(300, 0xff)]) {
      junk.send(b, srv.turnPort, '127.0.0.1');
    }
  }, 5);
  try {
    const r = await uclient({ turnPort: srv.turnPort, peerPort: peer.port, secret: SECRET, messages: 50, clients: 2 });
    assert.equal(r.received, r.sent, r.out.slice(-1500));
    assert.equal(r.lost, 0);
  } finally {
    clearInterval(blast);
    junk.close();
  }
  const g = await guest(srv.url);
  const stats = (await api(srv.url, 'GET', '/api/socket/stats', { token: g.token })).body.data.turn;
  assert.equal(stats.mode, 'internal');
  assert.ok(stats.metrics.droppedMalformed > 0);
  assert.ok(stats.metrics.allocationsTotal > 0);
  assert.ok(stats.metrics.bytesToPeers > 0 && stats.metrics.bytesToClients > 0);
  assert.ok(stats.metrics.packetsToPeers > 0 && stats.metrics.packetsToClients > 0);
});

test('a wrong secret is refused', async () => {
  const r = await uclient({ turnPort: srv.turnPort, peerPort: peer.port, secret: 'not-the-secret', messages: 5, clients: 1, timeoutMs: 30000 });
  assert.match(r.out, /Cannot complete Allocation/);
  assert.ok(!r.received);
});

test('loopback peers are refused unless TURN_ALLOWED_PEERS names them', async () => {
  const strict = await startServer({ ...LOOPBACK, TURN_ALLOWED_PEERS: null });
  try {
    const r = await uclient({ turnPort: strict.turnPort, peerPort: peer.port, secret: SECRET, messages: 5, clients: 1, timeoutMs: 30000 });
    assert.match(r.out, /403/, r.out.slice(-1500));
    assert.ok(!r.received);
    const g = await guest(strict.url);
    const m = (await api(strict.url, 'GET', '/api/socket/stats', { token: g.token })).body.data.turn.metrics;
    assert.ok(m.refusedPeer > 0);
  } finally {
    await strict.stop();
  }
});

test('a user over TURN_USER_QUOTA allocations is refused', async () => {
  // One uclient client allocates twice (RTP and RTCP): over a quota of 1.
  const tight = await startServer({ ...LOOPBACK, TURN_USER_QUOTA: '1' });
  try {
    const q = await uclient({ turnPort: tight.turnPort, peerPort: peer.port, secret: SECRET, messages: 5, clients: 1, timeoutMs: 30000 });
    assert.match(q.out, /486/, q.out.slice(-1500));
    const g = await guest(tight.url);
    const m = (await api(tight.url, 'GET', '/api/socket/stats', { token: g.token })).body.data.turn.metrics;
    assert.ok(m.refusedQuota > 0);
  } finally {
    await tight.stop();
  }
});
