// Lounges: public rooms with history, cursor pagination and recovery, on
// one node and across two nodes of a cluster.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, runToExit } from '../lib/server.mjs';
import { startCluster } from '../lib/cluster.mjs';
import { api, connect, eventually, guest, once, request } from '../lib/client.mjs';

const ADMIN_KEY = 'lounge-admin-key-0123456789';
const FAST = { ROOM_MESSAGE_RATE: '100000', ROOM_MESSAGE_BURST: '100000', SOCKET_EVENT_LIMIT: '100000' };

async function member(url, name) {
  const g = await guest(url, name);
  const { socket } = await connect(url, g.token);
  return { ...g, socket, url };
}

/** Collects one event's payloads. */
function collect(socket, event) {
  const got = [];
  socket.on(event, (m) => got.push(m));
  return got;
}

const join = (u, roomId, extra = {}) => request(u.socket, 'room:join', { roomId, ...extra });
const say = (u, roomId, content) => request(u.socket, 'room:message', { roomId, content });

describe('one node', () => {
  let srv;
  before(async () => {
    srv = await startServer({
      LOUNGES: 'general:en,es;music:en@2s', ROOM_MAX_JOINED: '2', ROOM_HISTORY_SIZE: '5000',
      ADMIN_KEY, REPORT_THRESHOLD: '0', SOCKET_EVENT_LIMIT: '100000',
    });
  });
  after(async () => { await srv?.stop(); });

  test('GET /api/rooms and /api/rooms/{id}: the configured rooms with their members', async () => {
    const r = await api(srv.url, 'GET', '/api/rooms');
    assert.equal(r.status, 200);
    assert.deepEqual(r.body.data.rooms.map((x) => [x.id, x.lounge, x.language]), [
      ['general-en', 'general', 'en'], ['general-es', 'general', 'es'], ['music-en', 'music', 'en']]);
    const one = await api(srv.url, 'GET', '/api/rooms/music-en');
    assert.equal(one.status, 200);
    assert.equal(one.body.data.slowModeSeconds, 2);
    assert.equal(typeof one.body.data.epoch, 'string');
    const none = await api(srv.url, 'GET', '/api/rooms/nope-en');
    assert.equal(none.status, 404);
    assert.equal(none.body.error.code, 'not_found');
  });

  test('join, chat, typing and leave: everyone in the room hears, in order, with offsets', async () => {
    const a = await member(srv.url);
    const b = await member(srv.url);
    const joinedEvents = collect(a.socket, 'room:joined');
    const updates = collect(a.socket, 'rooms:update');
    const ja = await join(a, 'general-es');
    assert.equal(ja.success, true, JSON.stringify(ja));
    assert.equal(ja.data.room.id, 'general-es');
    assert.ok(Array.isArray(ja.data.messages) && Array.isArray(ja.data.members));
    assert.ok(ja.data.members.some((m) => m.id === a.user.id));
    const jb = await join(b, 'general-es');
    assert.equal(jb.data.epoch, ja.data.epoch);
    await eventually(() => joinedEvents.some((e) => e.user.id === b.user.id), 3000, 'room:joined');
    // Counts go to every socket, at most once a second.
    await eventually(() => updates.some((u) => u.rooms.find((r) => r.id === 'general-es')?.members === 2), 3000, 'rooms:update with two members');
    assert.deepEqual(updates.at(-1).rooms.map((r) => r.id), ['general-en', 'general-es', 'music-en']);
    const heardA = collect(a.socket, 'room:message');
    const heardB = collect(b.socket, 'room:message');
    const acks = [];
    for (let i = 0; i < 3; i += 1) acks.push((await say(i % 2 ? b : a, 'general-es', `m${i}`)).data);
    await eventually(() => heardA.length === 3 && heardB.length === 3, 3000, 'three messages each');
    assert.deepEqual(heardA, heardB);
    assert.deepEqual(heardA.map((m) => m.content), ['m0', 'm1', 'm2']);
    assert.deepEqual(heardA.map((m) => m.offset), acks.map((x) => x.offset));
    assert.ok(acks[1].offset > acks[0].offset && acks[2].offset > acks[1].offset);
    assert.deepEqual(heardA[0].from, { id: a.user.id, username: a.user.username });
    assert.equal(heardA[0].roomId, 'general-es');
    const typing = once(b.socket, 'room:typing');
    assert.equal((await request(a.socket, 'room:typing', { roomId: 'general-es', isTyping: true })).success, true);
    assert.deepEqual(await typing, { roomId: 'general-es', user: { id: a.user.id, username: a.user.username }, isTyping: true });
    const left = once(a.socket, 'room:left');
    assert.equal((await request(b.socket, 'room:leave', { roomId: 'general-es' })).success, true);
    assert.equal((await left).user.id, b.user.id);
    assert.equal((await say(b, 'general-es', 'gone')).error.code, 'not_in_room');
    a.socket.close(); b.socket.close();
  });

  test('every error code', async () => {
    const a = await member(srv.url);
    for (const bad of [undefined, null, {}, { roomId: 5 }, { roomId: '' }]) {
      assert.equal((await request(a.socket, 'room:join', bad)).error.code, 'invalid_payload', JSON.stringify(bad));
    }
    assert.equal((await join(a, 'general-en', { since: { offset: 'x' } })).error.code, 'invalid_payload');
    assert.equal((await join(a, 'nope-en')).error.code, 'room_not_found');
    assert.equal((await request(a.socket, 'room:leave', { roomId: 'general-en' })).error.code, 'not_in_room');
    assert.equal((await request(a.socket, 'room:typing', { roomId: 'general-en', isTyping: true })).error.code, 'not_in_room');
    assert.equal((await say(a, 'general-en', 'hi')).error.code, 'not_in_room');
    assert.equal((await join(a, 'general-en')).success, true);
    assert.equal((await join(a, 'general-es')).success, true);
    const third = await join(a, 'music-en');
    assert.equal(third.error.code, 'room_limit');
    assert.equal((await join(a, 'general-en')).success, true, 'rejoining a room one is in is fine');
    assert.equal((await request(a.socket, 'room:message', { roomId: 'general-en' })).error.code, 'invalid_payload');
    assert.equal((await request(a.socket, 'room:typing', { roomId: 'general-en' })).error.code, 'invalid_payload');
    assert.equal((await say(a, 'general-en', '   ')).error.code, 'empty_message');
    assert.equal((await say(a, 'general-en', 'x'.repeat(1001))).error.code, 'message_too_long');
    // 1 a second, burst 5: the sixth at once is refused, with when to retry.
    let limited;
    for (let i = 0; i < 6 && !limited; i += 1) {
      const r = await say(a, 'general-en', `burst ${i}`);
      if (!r.success) limited = r;
    }
    assert.equal(limited?.error.code, 'rate_limited');
    assert.ok(Date.parse(limited.error.resetAt) > Date.now() - 1000);
    // Slow mode (music-en: 2 s).
    assert.equal((await request(a.socket, 'room:leave', { roomId: 'general-es' })).success, true);
    const b = await member(srv.url);
    assert.equal((await join(b, 'music-en')).success, true);
    assert.equal((await say(b, 'music-en', 'one')).success, true);
    const slow = await say(b, 'music-en', 'two');
    assert.equal(slow.error.code, 'slow_mode');
    assert.ok(Date.parse(slow.error.resetAt) - Date.now() > 500);
    // History cursors and limits.
    const h = (q) => api(srv.url, 'GET', `/api/rooms/general-en/messages${q}`, { token: a.token });
    assert.equal((await h('?limit=0')).status, 400);
    assert.equal((await h('?limit=101')).status, 400);
    assert.equal((await h('?before=garbage')).body.error.code, 'validation_error');
    assert.equal((await api(srv.url, 'GET', '/api/rooms/general-en/messages')).status, 401);
    assert.equal((await api(srv.url, 'GET', '/api/rooms/nope/messages', { token: a.token })).status, 404);
    a.socket.close(); b.socket.close();
  });

  test('content filters and spam rules apply to room messages', async () => {
    const f = await startServer({ FILTER_PII: 'mask', FILTER_PROFANITY: 'block', ...FAST });
    try {
      const a = await member(f.url);
      assert.equal((await join(a, 'general-en')).success, true);
      assert.equal((await say(a, 'general-en', 'mail me at jo@example.com')).data.content, 'mail me at ***');
      assert.equal((await say(a, 'general-en', 'f u c k you')).error.code, 'profanity_blocked');
      assert.equal((await say(a, 'general-en', 'z'.repeat(30))).error.code, 'spam');
      a.socket.close();
    } finally {
      await f.stop();
    }
  });
});

test('bad LOUNGES stop the server with a message; room names go through the profanity filter', async () => {
  for (const [env, want] of [
    [{ LOUNGES: 'general' }, /LOUNGES: 'general': expected name:languages/],
    [{ LOUNGES: 'general:en,en' }, /given twice/],
    [{ LOUNGES: 'fuck:en', FILTER_PROFANITY: 'block' }, /refused by FILTER_PROFANITY/],
    [{ LOUNGES_FILE: '/nonexistent/lounges' }, /LOUNGES_FILE/],
  ]) {
    const r = await runToExit(env);
    assert.notEqual(r.code, 0, JSON.stringify(env));
    assert.match(r.stdout + r.stderr, want);
  }
});

describe('history and recovery', () => {
  let srv;
  before(async () => { srv = await startServer({ ...FAST, LOUNGES: 'general:en,es', ROOM_HISTORY_SIZE: '5000' }); });
  after(async () => { await srv?.stop(); });

  test('a client away while 100 messages are sent recovers exactly those 100, in order', async () => {
    const a = await member(srv.url);
    let b = await member(srv.url);
    assert.equal((await join(a, 'general-en')).success, true);
    const jb = await join(b, 'general-en');
    for (let i = 0; i < 5; i += 1) await say(a, 'general-en', `before ${i}`);
    const seen = collect(b.socket, 'room:message');
    await say(a, 'general-en', 'last seen');
    const lastSeen = await eventually(() => seen.find((m) => m.content === 'last seen'), 3000, 'b sees the last message');
    const since = { offset: lastSeen.offset, epoch: jb.data.epoch };
    b.socket.close();
    const sent = [];
    for (let i = 0; i < 100; i += 1) sent.push((await say(a, 'general-en', `while away ${i}`)).data);
    b = { ...b, ...(await connect(srv.url, b.token)) };
    const back = await join(b, 'general-en', { since });
    assert.equal(back.data.recovered, true);
    assert.deepEqual(back.data.messages.map((m) => m.offset), sent.map((s) => s.offset));
    assert.deepEqual(back.data.messages.map((m) => m.content), sent.map((s) => s.content));
    // Another epoch, or an offset from the future: not recovered, the latest 50 instead.
    const other = await join(b, 'general-en', { since: { offset: 3, epoch: 'not-this-one' } });
    assert.equal(other.data.recovered, false);
    assert.equal(other.data.messages.length, 50);
    assert.equal(other.data.messages.at(-1).offset, sent.at(-1).offset);
    a.socket.close(); b.socket.close();
  });

  test('walking history back through 1,000 messages while new ones arrive: no gap, no duplicate', async () => {
    const a = await member(srv.url);
    assert.equal((await join(a, 'general-es')).success, true);
    for (let i = 0; i < 1000; i += 1) assert.equal((await say(a, 'general-es', `h${i}`)).success, true);
    let writing = true;
    const writer = (async () => {
      for (let i = 0; writing; i += 1) await say(a, 'general-es', `new ${i}`);
    })();
    const offsets = [];
    let cursor = null;
    let pages = 0;
    do {
      const q = cursor ? `?limit=100&before=${encodeURIComponent(cursor)}` : '?limit=100';
      const r = await api(srv.url, 'GET', `/api/rooms/general-es/messages${q}`, { token: a.token });
      assert.equal(r.status, 200, r.text);
      offsets.push(...r.body.data.messages.map((m) => m.offset));
      cursor = r.body.data.nextCursor;
      pages += 1;
    } while (cursor && pages < 100);
    writing = false;
    await writer;
    assert.ok(offsets.length >= 1000, `${offsets.length}`);
    assert.equal(new Set(offsets).size, offsets.length, 'no duplicate');
    for (let i = 1; i < offsets.length; i += 1) assert.equal(offsets[i], offsets[i - 1] - 1, `gap after ${offsets[i - 1]}`);
    assert.equal(offsets.at(-1), 1);
    a.socket.close();
  });

  test('ROOM_HISTORY_SIZE caps a room: older messages go, and recovering past them is refused', async () => {
    const s = await startServer({ ...FAST, ROOM_HISTORY_SIZE: '10' });
    try {
      const a = await member(s.url);
      const ja = await join(a, 'general-en');
      for (let i = 0; i < 25; i += 1) await say(a, 'general-en', `c${i}`);
      const r = await eventually(async () => {
        const r = await api(s.url, 'GET', '/api/rooms/general-en/messages?limit=100', { token: a.token });
        return r.body.data.messages.length <= 10 ? r : null;
      }, 3000, 'the history trimmed to 10');
      assert.deepEqual(r.body.data.messages.map((m) => m.offset), [25, 24, 23, 22, 21, 20, 19, 18, 17, 16]);
      const back = await join(a, 'general-en', { since: { offset: 2, epoch: ja.data.epoch } });
      assert.equal(back.data.recovered, false);
      assert.equal((await join(a, 'general-en', { since: { offset: 20, epoch: ja.data.epoch } })).data.recovered, true);
      a.socket.close();
    } finally {
      await s.stop();
    }
  });

  test('reports name a room message (it and its neighbours are the evidence); moderators delete messages and remove members', async () => {
    const s = await startServer({ ...FAST, ADMIN_KEY, REPORT_THRESHOLD: '0' });
    try {
      const a = await member(s.url);
      const b = await member(s.url);
      for (const u of [a, b]) assert.equal((await join(u, 'general-en')).success, true);
      const ids = [];
      for (let i = 0; i < 12; i += 1) ids.push((await say(a, 'general-en', `x${i}`)).data.id);
      const target = ids[6];
      const rep = await request(b.socket, 'user:report', { userId: a.user.id, reason: 'harassment', messageId: target });
      assert.equal(rep.success, true, JSON.stringify(rep));
      assert.equal((await request(b.socket, 'user:report', { userId: b.user.id, reason: 'spam', messageId: ids[7] })).error.code, 'not_reportable', 'not its author');
      assert.equal((await request(b.socket, 'user:report', { userId: a.user.id, reason: 'spam', messageId: 'general-en.99999' })).error.code, 'not_reportable');
      const admin = (method, path) => api(s.url, method, path, { headers: { 'x-admin-key': ADMIN_KEY } });
      const reports = (await admin('GET', '/admin/reports?status=open')).body.data.reports;
      const mine = reports.find((r) => r.id === rep.data.reportId);
      assert.equal(mine.roomId, 'general-en');
      assert.deepEqual(mine.evidence.map((e) => e.text), ['x1', 'x2', 'x3', 'x4', 'x5', 'x6', 'x7', 'x8', 'x9', 'x10', 'x11']);
      // Delete: members are told, history forgets.
      const deleted = once(b.socket, 'room:message-deleted');
      const del = await admin('DELETE', `/admin/rooms/general-en/messages/${encodeURIComponent(target)}`);
      assert.equal(del.status, 200, del.text);
      assert.deepEqual(await deleted, { roomId: 'general-en', id: target });
      const hist = await api(s.url, 'GET', '/api/rooms/general-en/messages?limit=100', { token: a.token });
      assert.ok(!hist.body.data.messages.some((m) => m.id === target));
      assert.equal((await admin('DELETE', `/admin/rooms/general-en/messages/${encodeURIComponent(target)}`)).status, 404);
      // Remove: the user and the room hear it; the user is out.
      const told = once(b.socket, 'room:left');
      const removed = await admin('DELETE', `/admin/rooms/general-en/members/${b.user.id}`);
      assert.equal(removed.status, 200, removed.text);
      const ev = await told;
      assert.equal(ev.user.id, b.user.id);
      assert.equal(ev.removed, true);
      assert.equal((await say(b, 'general-en', 'still here?')).error.code, 'not_in_room');
      const audit = (await admin('GET', '/admin/audit')).body.data.entries.map((e) => e.action);
      assert.ok(audit.includes('delete_room_message') && audit.includes('remove_from_room'), audit.join());
      a.socket.close(); b.socket.close();
    } finally {
      await s.stop();
    }
  });
});

test('cluster: three users on two nodes in one room see the same messages in the same order; history and recovery from any node', { skip: process.env.TANDEM_SKIP_CLUSTER ? 'TANDEM_SKIP_CLUSTER set' : false }, async () => {
  const c = await startCluster(2, { ...FAST, ADMIN_KEY });
  try {
    const [n1, n2] = c.nodes.map((n) => n.url);
    const users = [await member(n1), await member(n1), await member(n2)];
    const heard = users.map((u) => collect(u.socket, 'room:message'));
    let epoch;
    for (const u of users) epoch = (await join(u, 'general-en')).data.epoch;
    // Member counts reach every node.
    await eventually(async () => {
      const counts = await Promise.all([n1, n2].map(async (url) => (await api(url, 'GET', '/api/rooms')).body.data.rooms[0].members));
      return counts.every((n) => n === 3);
    }, 5000, 'both nodes to count three members');
    // Everyone writes at once.
    await Promise.all(users.map(async (u, k) => {
      for (let i = 0; i < 10; i += 1) assert.equal((await say(u, 'general-en', `u${k}-${i}`)).success, true);
    }));
    await eventually(() => heard.every((h) => h.length === 30), 5000, 'thirty messages each');
    const order = heard.map((h) => h.map((m) => m.id).join(','));
    assert.equal(order[1], order[0]);
    assert.equal(order[2], order[0]);
    assert.deepEqual([...new Set(heard[0].map((m) => m.offset))].sort((x, y) => x - y), Array.from({ length: 30 }, (_, i) => i + 1));
    // History from either node is the same.
    const page = async (url) => (await api(url, 'GET', '/api/rooms/general-en/messages?limit=100', { token: users[0].token })).body.data.messages.map((m) => m.offset);
    assert.deepEqual(await page(n1), await page(n2));
    // The node-2 user drops; recovers through node 1.
    const last = heard[2].at(-1).offset;
    users[2].socket.close();
    for (let i = 0; i < 5; i += 1) await say(users[0], 'general-en', `while away ${i}`);
    const back = { ...users[2], ...(await connect(n1, users[2].token)) };
    const r = await join(back, 'general-en', { since: { offset: Math.max(...heard[2].map((m) => m.offset)), epoch } });
    assert.equal(r.data.recovered, true);
    assert.deepEqual(r.data.messages.map((m) => m.content), ['while away 0', 'while away 1', 'while away 2', 'while away 3', 'while away 4']);
    void last;
    // A moderator on node 2 removes a node-1 user: members on both nodes hear it.
    const u4 = await member(n2);
    assert.equal((await join(u4, 'general-en')).success, true);
    const heardOn2 = once(u4.socket, 'room:left');
    const heardOn1 = once(users[1].socket, 'room:left');
    const told = once(users[0].socket, 'room:left');
    const rm = await api(n2, 'DELETE', `/admin/rooms/general-en/members/${users[0].user.id}`, { headers: { 'x-admin-key': ADMIN_KEY } });
    assert.equal(rm.status, 200, rm.text);
    for (const ev of await Promise.all([heardOn2, heardOn1, told])) {
      assert.equal(ev.user.id, users[0].user.id);
      assert.equal(ev.removed, true);
    }
    assert.equal((await say(users[0], 'general-en', 'still here?')).error.code, 'not_in_room');
    for (const u of [users[0], users[1], back, u4]) u.socket.close();
  } finally {
    await c.stop();
  }
});
