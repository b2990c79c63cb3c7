// Connection shards (src/shards.rs): connections are served on SOCKET_THREADS
// event loops in turn, and two people chatting are moved onto one of them
// by their messages. A move must lose nothing: messages both ways, in
// order, and the heartbeat, before and after it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startServer } from '../lib/server.mjs';
import { api, guest, connect, once, request, eventually } from '../lib/client.mjs';

let srv;
before(async () => {
  srv = await startServer({
    SOCKET_THREADS: '2',
    LOG_LEVEL: 'info,tandem::sio=debug',
    // Pings while the test runs, so the moved session's timer is seen to work.
    PING_INTERVAL: '300ms',
    PING_TIMEOUT: '2s',
    SOCKET_EVENT_LIMIT: '100000',
  });
});
after(async () => { await srv?.stop(); });

/** The shards a session's task has run on, in order (from the server's debug log). */
function shardsOf(sid) {
  return srv.output().split('\n')
    .filter((l) => l.includes('session on shard') && l.includes(`sid=${sid}`))
    .map((l) => Number(l.match(/shard=(\d+)/)[1]));
}

/** A guest on a WebSocket: opened as one, or (`upgrade`) long-polling first, then upgraded. */
async function websocketGuest({ upgrade = false } = {}) {
  const g = await guest(srv.url);
  const { socket } = await connect(srv.url, g.token, upgrade ? {} : { transports: ['websocket'] });
  if (upgrade) await eventually(() => socket.io.engine.transport.name === 'websocket', 5000, 'the upgrade');
  const sid = socket.io.engine.id;
  const shards = await eventually(() => { const s = shardsOf(sid); return s.length ? s : null; }, 5000, `shard of ${sid}`);
  return { g, socket, sid, shard: shards[0] };
}

/**
 * Two guests on WebSockets, on different shards if five tries can. A guest
 * opens the same number of connections each time and connections go to the
 * shards in turn, so a bare connection between two tries shifts the next
 * guest's shard.
 */
async function guestsOnTwoShards(opts = {}) {
  const a = await websocketGuest(opts);
  let b;
  for (let i = 0; i < 5; i++) {
    b = await websocketGuest(opts);
    if (a.shard !== b.shard) break;
    b.socket.close();
    await new Promise((resolve, reject) => {
      const c = net.connect(srv.port, '127.0.0.1', () => { c.destroy(); resolve(); });
      c.on('error', reject);
    });
  }
  return { a, b };
}

test('two people chatting from different shards end on one, and lose nothing on the way', async () => {
  const { a, b } = await guestsOnTwoShards();
  assert.notEqual(a.shard, b.shard, 'two sessions on different shards');

  const ma = once(a.socket, 'user:matched');
  const mb = once(b.socket, 'user:matched');
  assert.equal((await request(a.socket, 'user:match', {})).data.status, 'waiting');
  assert.equal((await request(b.socket, 'user:match', {})).data.status, 'matched');
  await Promise.all([ma, mb]);

  // Messages both ways while the move happens and after it, each in order.
  const exchange = async (n, tag) => {
    const gotB = []; const gotA = [];
    const onB = (m) => gotB.push(m.content);
    const onA = (m) => gotA.push(m.content);
    b.socket.on('chat:message', onB);
    a.socket.on('chat:message', onA);
    const acks = [];
    for (let i = 0; i < n; i++) {
      acks.push(request(a.socket, 'chat:message', { content: `${tag} a${i}` }));
      acks.push(request(b.socket, 'chat:message', { content: `${tag} b${i}` }));
    }
    for (const ack of await Promise.all(acks)) assert.equal(ack.success, true, JSON.stringify(ack));
    await eventually(() => gotA.length === n && gotB.length === n, 5000, 'every message delivered');
    assert.deepEqual(gotB, [...Array(n).keys()].map((i) => `${tag} a${i}`));
    assert.deepEqual(gotA, [...Array(n).keys()].map((i) => `${tag} b${i}`));
    b.socket.off('chat:message', onB);
    a.socket.off('chat:message', onA);
  };
  await exchange(20, 'during');

  // (Shard 0 is falsy: `eventually` waits for a truthy value.)
  const { on } = await eventually(() => {
    const sa = shardsOf(a.sid); const sb = shardsOf(b.sid);
    return sa.at(-1) === sb.at(-1) ? { on: sa.at(-1) } : null;
  }, 5000, 'both sessions on one shard');
  assert.ok(shardsOf(a.sid).length + shardsOf(b.sid).length === 3, 'one of them moved, once');

  await exchange(20, 'after');
  // The moved session's heartbeat goes on (the client answers two pings).
  for (const s of [a, b]) {
    await once(s.socket.io, 'ping', 3000);
    await once(s.socket.io, 'ping', 3000);
  }
  assert.equal(shardsOf(a.sid).at(-1), on);
  assert.equal(shardsOf(b.sid).at(-1), on);
  assert.ok(a.socket.connected && b.socket.connected);
  a.socket.close(); b.socket.close();
});

test('a session moved to another shard is cleaned up when it leaves', async () => {
  const { a, b } = await guestsOnTwoShards();
  assert.notEqual(a.shard, b.shard);
  const mb = once(b.socket, 'user:matched');
  await request(a.socket, 'user:match', {});
  await request(b.socket, 'user:match', {});
  await mb;
  // Matched, not yet moved: the first message moves them.
  assert.notEqual(shardsOf(a.sid).at(-1), shardsOf(b.sid).at(-1));
  const got = once(b.socket, 'chat:message');
  assert.equal((await request(a.socket, 'chat:message', { content: 'hi' })).success, true);
  await got;
  await eventually(() => shardsOf(a.sid).at(-1) === shardsOf(b.sid).at(-1), 5000, 'both on one shard');
  const moved = shardsOf(a.sid).length > 1 ? a : b;
  const stayed = moved === a ? b : a;
  // The one who leaves ran its disconnect handler on the shard it was
  // moved to: the partner is told, and the session is gone.
  const told = new Promise((resolve) => {
    stayed.socket.once('partner:reconnecting', resolve);
    stayed.socket.once('partner:left', resolve);
  });
  moved.socket.close();
  await told;
  stayed.socket.close();
  await eventually(async () => {
    const r = await api(srv.url, 'GET', '/api/socket/stats', { token: stayed.g.token });
    return r.body.data.localSockets === 0;
  }, 8000, 'no socket left');
});

test('a session upgraded from long-polling moves like one opened as a WebSocket', async () => {
  const { a, b } = await guestsOnTwoShards({ upgrade: true });
  assert.notEqual(a.shard, b.shard, 'two upgraded sessions on different shards');
  const mb = once(b.socket, 'user:matched');
  await request(a.socket, 'user:match', {});
  await request(b.socket, 'user:match', {});
  await mb;
  const got = [];
  b.socket.on('chat:message', (m) => got.push(m.content));
  for (let i = 0; i < 10; i++) {
    assert.equal((await request(a.socket, 'chat:message', { content: `m${i}` })).success, true);
  }
  await eventually(() => got.length === 10, 5000, 'every message delivered');
  assert.deepEqual(got, [...Array(10).keys()].map((i) => `m${i}`));
  await eventually(() => shardsOf(a.sid).at(-1) === shardsOf(b.sid).at(-1), 5000, 'both on one shard');
  // Still served after the move: an answer comes back on the moved socket.
  const back = once(a.socket, 'chat:message');
  assert.equal((await request(b.socket, 'chat:message', { content: 'back' })).success, true);
  assert.equal((await back).content, 'back');
  a.socket.close(); b.socket.close();
});
