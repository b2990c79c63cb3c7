// Group calls' signaling with socket.io-client (the media itself is in
// e2e/browser/groupcall.test.mjs): who may start and join, the limits,
// the server's offer, participants events, leaving, idling out, bans, and
// a 1-to-1 chat's call with an invitation.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../lib/server.mjs';
import { api, connect, guest, matchedPair, once, request } from '../lib/client.mjs';

const ADMIN_KEY = 'group-call-admin-key-0123456789';
let srv;
before(async () => {
  srv = await startServer({
    LOUNGES: 'general:en', SOCKET_EVENT_LIMIT: '100000', CALL_MAX_PARTICIPANTS: '3',
    ADMIN_KEY,
  });
});
after(async () => { await srv?.stop(); });

async function member(name, { join = true } = {}) {
  const g = await guest(srv.url, name);
  const { socket } = await connect(srv.url, g.token);
  if (join) assert.equal((await request(socket, 'room:join', { roomId: 'general-en' })).success, true);
  return { ...g, socket };
}

const code = (res) => (res.success ? 'ok' : res.error.code);

/** The next call:participants whose user ids (sorted) are `ids`. */
function participantsBecome(socket, ids, ms = 5000) {
  const want = JSON.stringify([...ids].sort());
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { socket.off('call:participants', on); reject(new Error(`participants never became ${want}`)); }, ms);
    function on(ev) {
      if (JSON.stringify(ev.participants.map((p) => p.userId).sort()) !== want) return;
      clearTimeout(timer);
      socket.off('call:participants', on);
      resolve(ev);
    }
    socket.on('call:participants', on);
  });
}

test('start: a joined lounge room or the current chat; one call per room', async () => {
  const a = await member('cs_a');
  const outsider = await member('cs_out', { join: false });
  assert.equal(code(await request(outsider.socket, 'call:start', { roomId: 'general-en' })), 'not_in_room');
  assert.equal(code(await request(a.socket, 'call:start', { roomId: 'nowhere' })), 'room_not_found');
  for (const payload of [undefined, null, {}]) {
    const res = await a.socket.timeout(5000).emitWithAck('call:start', ...(payload === undefined ? [] : [payload]));
    assert.equal(code(res), 'invalid_payload', JSON.stringify(res));
  }
  const s1 = await request(a.socket, 'call:start', { roomId: 'general-en' });
  const s2 = await request(a.socket, 'call:start', { roomId: 'general-en' });
  assert.equal(s1.success, true, JSON.stringify(s1));
  assert.equal(s1.data.roomId, 'general-en');
  assert.equal(s1.data.callId, s2.data.callId);
  a.socket.close(); outsider.socket.close();
});

test('join: the server offers, participants are told, limits hold, leaving ends it', async () => {
  const [a, b, c, d] = await Promise.all(['cj_a', 'cj_b', 'cj_c', 'cj_d'].map((n) => member(n)));
  const outsider = await member('cj_out', { join: false });
  const { data: { callId } } = await request(a.socket, 'call:start', { roomId: 'general-en' });
  assert.equal(code(await request(a.socket, 'call:join', { callId: 'nope' })), 'call_not_found');
  assert.equal(code(await request(outsider.socket, 'call:join', { callId })), 'not_allowed');
  assert.equal(code(await request(a.socket, 'call:join', { callId, sdp: { type: 'answer', sdp: 'v=0' } })), 'invalid_payload');
  assert.equal(code(await request(a.socket, 'call:join', { callId, sdp: { type: 'offer', sdp: 'not an sdp' } })), 'invalid_payload');

  const joined = await request(a.socket, 'call:join', { callId });
  assert.equal(joined.success, true, JSON.stringify(joined));
  assert.equal(joined.data.sdp.type, 'offer');
  assert.match(joined.data.sdp.sdp, /a=ice-lite/);
  assert.match(joined.data.sdp.sdp, /a=candidate:.* 127\.0\.0\.1 \d+ typ host/);
  assert.deepEqual(joined.data.participants.map((p) => p.userId), [a.user.id]);
  assert.equal(code(await request(a.socket, 'call:join', { callId })), 'already_in_call');

  const told = participantsBecome(a.socket, [a.user.id, b.user.id]);
  assert.equal((await request(b.socket, 'call:join', { callId })).success, true);
  const ev = await told;
  assert.equal(ev.callId, callId);
  assert.equal(ev.roomId, 'general-en');
  assert.deepEqual(ev.participants.map((p) => p.username).sort(), ['cj_a', 'cj_b']);
  assert.equal((await request(c.socket, 'call:join', { callId })).success, true);
  assert.equal(code(await request(d.socket, 'call:join', { callId })), 'call_full');

  // Signaling from someone not in it, and an answer nobody asked for.
  assert.equal(code(await request(d.socket, 'call:signal', { callId, candidate: null })), 'not_in_call');
  assert.equal(code(await request(b.socket, 'call:signal', { callId })), 'invalid_payload');
  assert.equal(code(await request(b.socket, 'call:signal', { callId, candidate: null })), 'ok');
  assert.equal(code(await request(b.socket, 'call:signal', { callId, candidate: { candidate: 'candidate:1 1 udp 1 127.0.0.1 9 typ host', sdpMid: '0' } })), 'ok');
  assert.equal(code(await request(b.socket, 'call:signal', { callId, candidate: 'garbage' })), 'invalid_payload');

  // Leaving: the others are told; a socket closing leaves too.
  const less = participantsBecome(b.socket, [a.user.id, b.user.id]);
  assert.deepEqual((await request(c.socket, 'call:leave', { callId })).data, { callId, left: true });
  await less;
  assert.equal(code(await request(c.socket, 'call:leave', { callId })), 'not_in_call');
  const gone = participantsBecome(b.socket, [b.user.id]);
  a.socket.close();
  await gone;
  // Room for d now.
  assert.equal((await request(d.socket, 'call:join', { callId })).success, true);
  for (const u of [b, c, d, outsider]) u.socket.close();
});

test('a participant that sends no media is removed after CALL_IDLE_TIMEOUT', async () => {
  const idle = await startServer({ LOUNGES: 'general:en', CALL_IDLE_TIMEOUT: '1s' });
  const g = await guest(idle.url, 'ci_a');
  const a = { ...g, socket: (await connect(idle.url, g.token)).socket };
  assert.equal((await request(a.socket, 'room:join', { roomId: 'general-en' })).success, true);
  const { data: { callId } } = await request(a.socket, 'call:start', { roomId: 'general-en' });
  const left = once(a.socket, 'call:left', 15000);
  assert.equal((await request(a.socket, 'call:join', { callId })).success, true);
  const ev = await left;
  assert.equal(ev.callId, callId);
  assert.ok(['idle', 'disconnected'].includes(ev.reason), JSON.stringify(ev));
  a.socket.close();
  await idle.stop();
});

test('a 1-to-1 chat\'s call: its two people join, and whom they invite', async () => {
  const { a, b, ga, roomId } = await matchedPair(srv.url);
  const x = await member('cc_x', { join: false });
  const started = await request(a, 'call:start', { roomId });
  assert.equal(started.success, true, JSON.stringify(started));
  const { callId } = started.data;
  assert.equal(code(await request(x.socket, 'call:start', { roomId })), 'room_not_found');
  assert.equal(code(await request(x.socket, 'call:join', { callId })), 'not_allowed');
  assert.equal(code(await request(a, 'call:invite', { callId, userId: x.user.id })), 'not_in_call');
  assert.equal((await request(a, 'call:join', { callId })).success, true);
  assert.equal((await request(b, 'call:join', { callId })).success, true);
  const invited = once(x.socket, 'call:invited');
  assert.deepEqual((await request(a, 'call:invite', { callId, userId: x.user.id })).data, { callId, invited: true });
  const inv = await invited;
  assert.equal(inv.callId, callId);
  assert.equal(inv.from.id, ga.user.id);
  assert.equal((await request(x.socket, 'call:join', { callId })).success, true);
  a.close(); b.close(); x.socket.close();
});

test('a banned user is out of the call at once', async () => {
  const [a, b] = await Promise.all([member('cb_a'), member('cb_b')]);
  const { data: { callId } } = await request(a.socket, 'call:start', { roomId: 'general-en' });
  for (const u of [a, b]) assert.equal((await request(u.socket, 'call:join', { callId })).success, true);
  const told = participantsBecome(a.socket, [a.user.id]);
  const res = await api(srv.url, 'POST', `/admin/users/${b.user.id}/ban`, { headers: { 'x-admin-key': ADMIN_KEY }, body: { reason: 'test', duration: '1h' } });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  await told;
  a.socket.close(); b.socket.close();
  // The ban covers this IP: lift it for whatever runs next.
  await api(srv.url, 'DELETE', `/admin/users/${b.user.id}/ban`, { headers: { 'x-admin-key': ADMIN_KEY } });
});

test('cluster: a call lives on one node; sockets on the other node join, signal and leave through it', async () => {
  const { startCluster } = await import('../lib/cluster.mjs');
  const c = await startCluster(2, { LOUNGES: 'general:en', SOCKET_EVENT_LIMIT: '100000' });
  try {
    const [n1, n2] = c.nodes.map((n) => n.url);
    const on = async (url, name) => {
      const g = await guest(url, name);
      const { socket } = await connect(url, g.token);
      assert.equal((await request(socket, 'room:join', { roomId: 'general-en' })).success, true);
      return { ...g, socket };
    };
    const a = await on(n1, 'cl_a');
    const b = await on(n2, 'cl_b');
    const started = await request(a.socket, 'call:start', { roomId: 'general-en' });
    assert.equal(started.success, true, JSON.stringify(started));
    const { callId } = started.data;
    // The other node finds the same call.
    assert.equal((await request(b.socket, 'call:start', { roomId: 'general-en' })).data.callId, callId);
    const joinedA = await request(a.socket, 'call:join', { callId });
    assert.equal(joinedA.success, true, JSON.stringify(joinedA));
    const hostCandidate = joinedA.data.sdp.sdp.match(/a=candidate:.* (\d+) typ host/)[1];
    const toldA = participantsBecome(a.socket, [a.user.id, b.user.id]);
    const joinedB = await request(b.socket, 'call:join', { callId });
    assert.equal(joinedB.success, true, JSON.stringify(joinedB));
    // Media goes to the call's node: the same media port in both offers.
    assert.equal(joinedB.data.sdp.sdp.match(/a=candidate:.* (\d+) typ host/)[1], hostCandidate);
    assert.deepEqual(joinedB.data.participants.map((p) => p.userId).sort(), [a.user.id, b.user.id].sort());
    await toldA;
    // Errors cross nodes with their codes.
    assert.equal(code(await request(b.socket, 'call:join', { callId })), 'already_in_call');
    assert.equal(code(await request(b.socket, 'call:signal', { callId, sdp: { type: 'answer', sdp: 'v=0' } })), 'invalid_payload');
    assert.equal(code(await request(b.socket, 'call:signal', { callId, candidate: null })), 'ok');
    // b's socket closing on node 2 takes it out of the call on node 1.
    const left = participantsBecome(a.socket, [a.user.id]);
    b.socket.close();
    await left;
    const b2 = await on(n2, 'cl_c');
    assert.equal((await request(b2.socket, 'call:join', { callId })).success, true);
    const gone = participantsBecome(a.socket, [a.user.id]);
    assert.deepEqual((await request(b2.socket, 'call:leave', { callId })).data, { callId, left: true });
    await gone;
    a.socket.close(); b2.socket.close();
  } finally {
    await c.stop();
  }
});
