import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../lib/server.mjs';
import { io } from 'socket.io-client';
import { api, once, request, matchedPair } from '../lib/client.mjs';

let srv;
before(async () => { srv = await startServer({ RECONNECT_GRACE: '2s', SOCKET_EVENT_LIMIT: '100000' }); });
after(async () => { await srv?.stop(); });

test('a dropped member who comes back in time rejoins the same room and gets the messages sent meanwhile', async () => {
  const { a, b, ga, gb, roomId } = await matchedPair(srv.url);
  const reconnecting = once(b, 'partner:reconnecting');
  a.close();
  const r = await reconnecting;
  assert.equal(r.roomId, roomId);
  assert.equal(r.graceSeconds, 2);
  for (let i = 0; i < 25; i += 1) {
    const ack = await request(b, 'chat:message', { type: 'text', content: `while away ${i}` });
    assert.equal(ack.success, true);
  }
  const back = once(b, 'partner:reconnected');
  // A new socket with the same token: connect and collect what arrives.
  const a2 = io(srv.url, { auth: { token: ga.token }, reconnection: false, forceNew: true });
  const messages = [];
  a2.on('chat:message', (m) => messages.push(m));
  const matched = await once(a2, 'user:matched');
  assert.equal(matched.roomId, roomId);
  assert.equal(matched.role, 'caller');
  assert.equal(matched.recovered, true);
  assert.deepEqual(matched.matchedUser, { id: gb.user.id, username: gb.user.username });
  assert.equal((await back).roomId, roomId);
  // The last 20 of the 25 messages, in order; then the chat goes on.
  const live = once(a2, 'chat:message');
  const last = await request(b, 'chat:message', { type: 'text', content: 'live again' });
  assert.equal(last.success, true);
  const liveMsg = await live.then(() => messages[messages.length - 1]);
  assert.equal(liveMsg.content, 'live again');
  const kept = messages.slice(0, -1).map((m) => m.content);
  assert.deepEqual(kept, Array.from({ length: 20 }, (_, i) => `while away ${i + 5}`));
  const stats = await api(srv.url, 'GET', '/api/users/online', { token: gb.token });
  assert.equal(stats.body.data.users.find((u) => u.id === ga.user.id).status, 'inChat');
  a2.close(); b.close();
});

test('a member who does not come back within the grace period leaves the chat', async () => {
  const { a, b, roomId } = await matchedPair(srv.url);
  const reconnecting = once(b, 'partner:reconnecting');
  const left = once(b, 'partner:left', 6000);
  a.close();
  await reconnecting;
  const started = Date.now();
  const l = await left;
  assert.deepEqual(l, { reason: 'disconnected', roomId });
  assert.ok(Date.now() - started >= 1500, 'not before the grace period');
  const r = await request(b, 'chat:message', { type: 'text', content: 'anyone?' });
  assert.equal(r.error.code, 'not_in_chat');
  assert.equal((await request(b, 'user:match')).data.status, 'waiting');
  b.close();
});

test('a second tab of a member in a chat joins it too', async () => {
  const { a, b, ga, roomId } = await matchedPair(srv.url);
  const tab = io(srv.url, { auth: { token: ga.token }, reconnection: false, forceNew: true });
  const m = await once(tab, 'user:matched');
  assert.equal(m.roomId, roomId);
  const both = [once(a, 'chat:message'), once(tab, 'chat:message')];
  await request(b, 'chat:message', { type: 'text', content: 'to every tab' });
  const got = await Promise.all(both);
  assert.ok(got.every((x) => x.content === 'to every tab'));
  a.close(); b.close(); tab.close();
});
