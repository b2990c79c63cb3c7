import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../lib/server.mjs';
import { guest, connect, once, request, matchedPair, eventually } from '../lib/client.mjs';
import { startProxy } from '../lib/proxy.mjs';

let srv;
before(async () => { srv = await startServer({ SOCKET_EVENT_LIMIT: '100000' }); });
after(async () => { await srv?.stop(); });

function expectError(res, code) {
  assert.equal(res.success, false, JSON.stringify(res));
  assert.equal(res.error.code, code);
  assert.equal(typeof res.error.message, 'string');
}

test('text messages are cleaned, relayed to the partner only, and acked', async () => {
  const { a, b, ga } = await matchedPair(srv.url);
  const got = once(b, 'chat:message');
  const ack = await request(a, 'chat:message', { type: 'text', content: '  hello <b>there</b>\u0007  ' });
  assert.equal(ack.success, true);
  assert.match(ack.data.id, /^[0-9a-f]{32}$/);
  assert.ok(Date.parse(ack.data.timestamp));
  const msg = await got;
  assert.deepEqual(msg, { id: ack.data.id, from: ga.user.id, type: 'text', content: 'hello there', timestamp: ack.data.timestamp });
  // Without a type, text is assumed.
  const got2 = once(b, 'chat:message');
  await request(a, 'chat:message', { content: 'plain' });
  assert.equal((await got2).content, 'plain');
  a.close(); b.close();
});

test('bad messages get clear errors, by ack or error event', async () => {
  const { a, b } = await matchedPair(srv.url);
  expectError(await request(a, 'chat:message', { type: 'text', content: '   ' }), 'empty_message');
  expectError(await request(a, 'chat:message', { type: 'text', content: '<p></p>' }), 'empty_message');
  expectError(await request(a, 'chat:message', { type: 'text', content: 'x'.repeat(1001) }), 'message_too_long');
  // 1000 characters are allowed (not one repeated: a long run of one character is spam, see safety).
  assert.equal((await request(a, 'chat:message', { type: 'text', content: ` ${'yz'.repeat(500)} ` })).success, true);
  expectError(await request(a, 'chat:message', { type: 'text', content: 42 }), 'invalid_payload');
  expectError(await request(a, 'chat:message', { type: 'sticker', content: 'x' }), 'invalid_payload');
  expectError(await request(a, 'chat:message', 'just a string'), 'invalid_payload');
  expectError(await request(a, 'chat:message', { type: 'file', fileId: 'nope' }), 'file_not_found');
  const err = once(a, 'error');
  a.emit('chat:message', { type: 'text', content: '' });
  assert.equal((await err).code, 'empty_message');
  a.close(); b.close();
});

test('chat and signaling outside a chat fail with not_in_chat', async () => {
  const g = await guest(srv.url);
  const { socket } = await connect(srv.url, g.token);
  for (const [ev, data] of [
    ['chat:message', { type: 'text', content: 'hi' }], ['chat:typing', { isTyping: true }], ['chat:clear', {}],
    ['webrtc:offer', { offer: { type: 'offer', sdp: 'v=0' }, type: 'video' }], ['webrtc:answer', { answer: { type: 'answer', sdp: 'v=0' } }],
    ['webrtc:ice-candidate', { candidate: { candidate: 'c' } }], ['webrtc:hangup', {}],
  ]) {
    expectError(await request(socket, ev, data), 'not_in_chat');
  }
  socket.close();
});

test('typing is relayed and switches itself off after 3 s', async () => {
  const { a, b, ga } = await matchedPair(srv.url);
  const on = once(b, 'chat:typing');
  assert.deepEqual((await request(a, 'chat:typing', { isTyping: true })).data, { isTyping: true });
  assert.deepEqual(await on, { isTyping: true, from: ga.user.id });
  const started = Date.now();
  const off = await once(b, 'chat:typing', 6000);
  assert.deepEqual(off, { isTyping: false, from: ga.user.id });
  assert.ok(Date.now() - started >= 2500, 'auto-off comes after about 3 s');
  expectError(await request(a, 'chat:typing', { isTyping: 'yes' }), 'invalid_payload');
  a.close(); b.close();
});

test('chat:clear tells the partner', async () => {
  const { a, b, ga } = await matchedPair(srv.url);
  const cleared = once(b, 'chat:cleared');
  const r = await request(a, 'chat:clear');
  assert.equal(r.success, true);
  assert.equal(r.data.deletedFiles, 0);
  const e = await cleared;
  assert.equal(e.by, ga.user.id);
  a.close(); b.close();
});

test('WebRTC signaling is forwarded to the partner with from', async () => {
  const { a, b, ga, gb } = await matchedPair(srv.url);
  const offer = { type: 'offer', sdp: 'v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n' };
  const gotOffer = once(b, 'webrtc:offer');
  assert.equal((await request(a, 'webrtc:offer', { offer, type: 'video' })).success, true);
  assert.deepEqual(await gotOffer, { offer, type: 'video', from: ga.user.id });
  const answer = { type: 'answer', sdp: 'v=0\r\n' };
  const gotAnswer = once(a, 'webrtc:answer');
  await request(b, 'webrtc:answer', { answer });
  assert.deepEqual(await gotAnswer, { answer, from: gb.user.id });
  const candidate = { candidate: 'candidate:1 1 udp 2122260223 127.0.0.1 5000 typ host', sdpMid: '0', sdpMLineIndex: 0 };
  const gotCand = once(b, 'webrtc:ice-candidate');
  await request(a, 'webrtc:ice-candidate', { candidate });
  assert.deepEqual(await gotCand, { candidate, from: ga.user.id });
  const gotEnd = once(b, 'webrtc:ice-candidate');
  await request(a, 'webrtc:ice-candidate', { candidate: null });
  assert.deepEqual(await gotEnd, { candidate: null, from: ga.user.id });
  const hang = once(b, 'webrtc:hangup');
  await request(a, 'webrtc:hangup');
  assert.deepEqual(await hang, { from: ga.user.id });
  a.close(); b.close();
});

test('oversized or malformed signaling is refused', async () => {
  const { a, b } = await matchedPair(srv.url);
  const huge = { type: 'offer', sdp: 'a'.repeat(65 * 1024) };
  expectError(await request(a, 'webrtc:offer', { offer: huge, type: 'video' }), 'payload_too_large');
  expectError(await request(a, 'webrtc:ice-candidate', { candidate: { candidate: 'c'.repeat(5000) } }), 'payload_too_large');
  expectError(await request(a, 'webrtc:offer', { type: 'video' }), 'invalid_payload');
  expectError(await request(a, 'webrtc:offer', { offer: 5, type: 'video' }), 'invalid_payload');
  expectError(await request(a, 'webrtc:offer', { offer: { sdp: 'v=0' }, type: 'hologram' }), 'invalid_payload');
  expectError(await request(a, 'webrtc:answer', {}), 'invalid_payload');
  assert.equal(a.connected, true);
  a.close(); b.close();
});

test('each user has an event budget: rate_limited past it', async () => {
  const own = await startServer({ SOCKET_EVENT_LIMIT: '5' });
  try {
    const g = await guest(own.url);
    const { socket } = await connect(own.url, g.token);
    for (let i = 0; i < 5; i += 1) assert.equal((await request(socket, 'user:cancel')).success, true);
    expectError(await request(socket, 'user:cancel'), 'rate_limited');
    const err = once(socket, 'error');
    socket.emit('user:cancel');
    assert.equal((await err).code, 'rate_limited');
    // Another user has their own budget.
    const h = await guest(own.url);
    const { socket: other } = await connect(own.url, h.token);
    assert.equal((await request(other, 'user:cancel')).success, true);
    socket.close(); other.close();
  } finally {
    await own.stop();
  }
});

// Each side's socket writes its partner's messages and its own acks from
// one queue: both sending at once, each gets the other's messages once and
// in order, and every ack comes back.
test('both partners sending at once: every message arrives once, in order, with its ack', async () => {
  const { a, b } = await matchedPair(srv.url);
  const n = 300;
  const gotA = [], gotB = [];
  a.on('chat:message', (m) => gotA.push(m.content));
  b.on('chat:message', (m) => gotB.push(m.content));
  const sends = [];
  for (let i = 0; i < n; i++) {
    sends.push(request(a, 'chat:message', { content: `from a, number ${i}` }));
    sends.push(request(b, 'chat:message', { content: `from b, number ${i}` }));
  }
  const acks = await Promise.all(sends);
  assert.ok(acks.every((r) => r.success), JSON.stringify(acks.find((r) => !r.success)));
  await eventually(() => gotA.length === n && gotB.length === n, 10000, 'every message delivered');
  assert.deepEqual(gotB, Array.from({ length: n }, (_, i) => `from a, number ${i}`));
  assert.deepEqual(gotA, Array.from({ length: n }, (_, i) => `from b, number ${i}`));
  a.close(); b.close();
});

// A receiver that stops reading: the server's writes back up (a write is
// left half done, later frames queue), and all of it comes out in order
// once it reads again.
test('a receiver that stops reading gets every message, in order, when it reads again', async () => {
  const proxy = await startProxy(srv.port);
  try {
    const ga = await guest(srv.url);
    const gb = await guest(srv.url);
    const { socket: a } = await connect(srv.url, ga.token, { transports: ['websocket'] });
    const { socket: b } = await connect(proxy.url, gb.token, { transports: ['websocket'] });
    const matched = once(b, 'user:matched');
    assert.equal((await request(a, 'user:match', {})).data.status, 'waiting');
    assert.equal((await request(b, 'user:match', {})).data.status, 'matched');
    await matched;
    const got = [];
    b.on('chat:message', (m) => got.push(m.content));
    proxy.hold();
    // ~900 KB: more than loopback takes in while nobody reads, fewer
    // frames than a session queues.
    const n = 900;
    const text = (i) => `${i} ${'abcdefghij'.repeat(99)}`;
    const acks = await Promise.all(Array.from({ length: n }, (_, i) => request(a, 'chat:message', { content: text(i) }, 20000)));
    assert.ok(acks.every((r) => r.success), JSON.stringify(acks.find((r) => !r.success)));
    proxy.release();
    await eventually(() => got.length === n, 20000, 'every message delivered');
    for (let i = 0; i < n; i++) assert.equal(got[i], text(i), `message ${i}`);
    a.close(); b.close();
  } finally {
    proxy.close();
  }
});
