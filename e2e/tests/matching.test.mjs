import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../lib/server.mjs';
import { api, guest, connect, once, request, matchedPair, eventually } from '../lib/client.mjs';

let srv;
before(async () => { srv = await startServer({ MATCH_FALLBACK: '400ms', SOCKET_EVENT_LIMIT: '100000' }); });
after(async () => { await srv?.stop(); });

async function user() {
  const g = await guest(srv.url);
  const { socket } = await connect(srv.url, g.token);
  return { ...g, socket };
}

async function statusOf(token, id) {
  const r = await api(srv.url, 'GET', '/api/users/online?limit=1000', { token });
  return r.body.data.users.find((u) => u.id === id)?.status;
}

test('two users are matched: roles, partner, room', async () => {
  const { a, b, ga, gb, ea, eb } = await matchedPair(srv.url);
  assert.equal(ea.roomId, eb.roomId);
  assert.equal(ea.role, 'caller');
  assert.equal(eb.role, 'callee');
  assert.deepEqual(ea.matchedUser, { id: gb.user.id, username: gb.user.username });
  assert.deepEqual(eb.matchedUser, { id: ga.user.id, username: ga.user.username });
  assert.deepEqual(ea.commonInterests, []);
  assert.equal(await statusOf(ga.token, ga.user.id), 'inChat');
  const again = await request(a, 'user:match', {});
  assert.equal(again.success, false);
  assert.equal(again.error.code, 'already_in_chat');
  a.close(); b.close();
});

test('cancel leaves the queue; a user is never queued twice nor matched with themselves', async () => {
  const u = await user();
  assert.equal((await request(u.socket, 'user:match')).data.status, 'waiting');
  assert.equal((await request(u.socket, 'user:match')).data.status, 'waiting');
  const { socket: tab2 } = await connect(srv.url, u.token);
  assert.equal((await request(tab2, 'user:match')).data.status, 'waiting', 'own second tab is not a partner');
  const stats = await api(srv.url, 'GET', '/api/socket/stats', { token: u.token });
  assert.equal(stats.body.data.queuedUsers, 1);
  assert.equal(await statusOf(u.token, u.user.id), 'queued');
  const c = await request(u.socket, 'user:cancel');
  assert.deepEqual(c.data, { status: 'idle', wasQueued: true });
  assert.equal(await statusOf(u.token, u.user.id), 'idle');
  assert.equal((await request(u.socket, 'user:cancel')).data.wasQueued, false);
  u.socket.close(); tab2.close();
});

test('skip ends the chat for both and re-queues the skipper, never with the same partner', async () => {
  const { a, b, ga, gb } = await matchedPair(srv.url);
  const left = once(b, 'partner:left');
  const skip = await request(a, 'user:skip');
  assert.equal(skip.success, true, JSON.stringify(skip));
  assert.equal(skip.data.status, 'waiting');
  assert.equal((await left).reason, 'skipped');
  assert.equal(await statusOf(gb.token, gb.user.id), 'idle');
  // b asks again: a is waiting but was b's last partner.
  assert.equal((await request(b, 'user:match')).data.status, 'waiting');
  const c = await user();
  const res = await request(c.socket, 'user:match');
  assert.equal(res.data.status, 'matched');
  a.close(); b.close(); c.socket.close();
  void ga;
});

test('end leaves both idle; end and skip outside a chat are errors', async () => {
  const { a, b, ga, gb } = await matchedPair(srv.url);
  const left = once(b, 'partner:left');
  const end = await request(a, 'user:end');
  assert.deepEqual(end.data, { status: 'idle' });
  assert.equal((await left).reason, 'ended');
  assert.equal(await statusOf(ga.token, ga.user.id), 'idle');
  assert.equal(await statusOf(gb.token, gb.user.id), 'idle');
  for (const ev of ['user:end', 'user:skip']) {
    const r = await request(a, ev);
    assert.equal(r.success, false);
    assert.equal(r.error.code, 'not_in_chat');
  }
  a.close(); b.close();
});

test('blocked users never meet, even after the fallback', async () => {
  const x = await user();
  const y = await user();
  const blocked = await request(x.socket, 'user:block', { userId: y.user.id });
  assert.deepEqual(blocked.data, { blocked: y.user.id });
  assert.equal((await request(x.socket, 'user:match')).data.status, 'waiting');
  assert.equal((await request(y.socket, 'user:match')).data.status, 'waiting');
  // Past the fallback both are still waiting: the ticker never pairs them.
  const z = await user();
  const zm = once(z.socket, 'user:matched');
  assert.equal((await request(z.socket, 'user:match')).data.status, 'matched');
  const withWhom = (await zm).matchedUser.id;
  assert.ok([x.user.id, y.user.id].includes(withWhom));
  for (const bad of [{}, { userId: '' }, { userId: 5 }, { userId: x.user.id }]) {
    const r = await request(x.socket, 'user:block', bad);
    assert.equal(r.success, false);
    assert.equal(r.error.code, 'invalid_payload');
  }
  x.socket.close(); y.socket.close(); z.socket.close();
});

test('blocks are listed and lifted; an unblocked pair can meet again', async () => {
  const x = await user();
  const y = await user();
  assert.equal((await request(x.socket, 'user:block', { userId: y.user.id })).success, true);
  const list = await api(srv.url, 'GET', '/api/users/blocks', { token: x.token });
  assert.equal(list.status, 200);
  assert.deepEqual(list.body.data, { count: 1, blocks: [{ id: y.user.id, username: y.user.username }] });
  assert.equal((await request(x.socket, 'user:match', { mode: 'text' })).data.status, 'waiting');
  // Lifting the block re-issues x's ticket: y is paired with x at once.
  const u = await request(x.socket, 'user:unblock', { userId: y.user.id });
  assert.deepEqual(u.data, { unblocked: y.user.id, wasBlocked: true });
  assert.equal((await request(x.socket, 'user:unblock', { userId: y.user.id })).data.wasBlocked, false);
  assert.deepEqual((await api(srv.url, 'GET', '/api/users/blocks', { token: x.token })).body.data, { count: 0, blocks: [] });
  const m = await request(y.socket, 'user:match', { mode: 'text' });
  assert.equal(m.data.status, 'matched');
  for (const bad of [undefined, null, {}, { userId: 7 }]) {
    const r = bad === undefined
      ? await x.socket.timeout(5000).emitWithAck('user:unblock')
      : await request(x.socket, 'user:unblock', bad);
    assert.equal(r.error.code, 'invalid_payload');
  }
  assert.equal((await api(srv.url, 'GET', '/api/users/blocks')).status, 401);
  x.socket.close(); y.socket.close();
});

test('blocking the partner ends the chat', async () => {
  const { a, b, gb } = await matchedPair(srv.url);
  const left = once(b, 'partner:left');
  const r = await request(a, 'user:block', { userId: gb.user.id });
  assert.equal(r.success, true);
  assert.equal((await left).reason, 'ended');
  a.close(); b.close();
});

test('shared interests are preferred; others fall back to anyone after MATCH_FALLBACK', async () => {
  const chess = await user();
  const music = await user();
  assert.equal((await request(chess.socket, 'user:match', { interests: ['Chess', 'go'] })).data.status, 'waiting');
  assert.equal((await request(music.socket, 'user:match', { interests: ['music'] })).data.status, 'waiting');
  const newcomer = await user();
  const m = once(newcomer.socket, 'user:matched');
  const r = await request(newcomer.socket, 'user:match', { interests: ['MUSIC', 'cooking'], language: 'en', mode: 'text' });
  assert.equal(r.data.status, 'matched');
  const e = await m;
  assert.equal(e.matchedUser.id, music.user.id);
  assert.deepEqual(e.commonInterests, ['music']);
  // chess waits alone; a knitter shares nothing, and the fallback pairs them.
  const knit = await user();
  const km = once(knit.socket, 'user:matched', 5000);
  const cm = once(chess.socket, 'user:matched', 5000);
  await request(knit.socket, 'user:match', { interests: ['knitting'] });
  const [k, c] = await Promise.all([km, cm]);
  assert.equal(k.matchedUser.id, chess.user.id);
  assert.equal(c.role, 'caller', 'the one who waited longer calls');
  assert.deepEqual(k.commonInterests, []);
  for (const s of [chess, music, newcomer, knit]) s.socket.close();
});

test('invalid match preferences are refused', async () => {
  const u = await user();
  for (const bad of [
    { interests: 'chess' }, { interests: [1] }, { interests: Array(11).fill('x') }, { interests: ['x'.repeat(31)] },
    { language: 7 }, { language: 'english language!' }, { mode: 'audio' }, 'text',
  ]) {
    const r = await request(u.socket, 'user:match', bad);
    assert.equal(r.success, false, JSON.stringify(bad));
    assert.equal(r.error.code, 'invalid_payload');
  }
  u.socket.close();
});

test('a user who disconnects while queued leaves the queue', async () => {
  const u = await user();
  await request(u.socket, 'user:match');
  u.socket.close();
  const watcher = await guest(srv.url);
  await eventually(async () => {
    const r = await api(srv.url, 'GET', '/api/socket/stats', { token: watcher.token });
    return r.body.data.queuedUsers === 0;
  }, 3000, 'the queue to empty');
});

test('200 users matching at once are paired exactly once', async () => {
  const users = [];
  for (let i = 0; i < 200; i += 1) users.push(guest(srv.url));
  const accounts = await Promise.all(users);
  const conns = await Promise.all(accounts.map((g) => connect(srv.url, g.token)));
  const matched = conns.map(({ socket }) => once(socket, 'user:matched', 15000));
  await Promise.all(conns.map(({ socket }) => request(socket, 'user:match', {}, 15000)));
  const events = await Promise.all(matched);
  const byUser = new Map(accounts.map((g, i) => [g.user.id, events[i]]));
  const rooms = new Map();
  for (const [id, e] of byUser) {
    assert.notEqual(e.matchedUser.id, id, 'never themselves');
    assert.equal(byUser.get(e.matchedUser.id).matchedUser.id, id, 'partners agree');
    assert.equal(byUser.get(e.matchedUser.id).roomId, e.roomId);
    rooms.set(e.roomId, (rooms.get(e.roomId) || 0) + 1);
  }
  assert.equal(rooms.size, 100);
  assert.ok([...rooms.values()].every((n) => n === 2));
  conns.forEach(({ socket }) => socket.close());
});
