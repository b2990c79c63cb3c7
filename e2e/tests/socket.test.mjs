import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import crypto from 'node:crypto';
import { io } from 'socket.io-client';
import { startServer, JWT_SECRET } from '../lib/server.mjs';
import { api, register, guest, connect, once, request, signJwt, uniqueUser } from '../lib/client.mjs';

let srv;
before(async () => { srv = await startServer(); });
after(async () => { await srv?.stop(); });

test('a JWT in auth gets connection:established', async () => {
  const u = await register(srv.url, uniqueUser('sock'));
  const { socket, info } = await connect(srv.url, u.token);
  assert.deepEqual(info, { userId: u.user.id, username: u.username, socketId: socket.id });
  socket.close();
});

test('long-polling only works too', async () => {
  const g = await guest(srv.url);
  const { socket, info } = await connect(srv.url, g.token, { transports: ['polling'] });
  assert.equal(info.userId, g.user.id);
  assert.equal(socket.io.engine.transport.name, 'polling');
  socket.close();
});

test('a long-polling session closed by the client: its last poll gets a noop, later polls 400 (unknown session)', async () => {
  const open = await fetch(`${srv.url}/socket.io/?EIO=4&transport=polling`);
  assert.equal(open.status, 200);
  const { sid } = JSON.parse((await open.text()).slice(1));
  const url = `${srv.url}/socket.io/?EIO=4&transport=polling&sid=${sid}`;
  // The GET and the closing POST at once, as socket.io-protocol's suite
  // sends them: the GET ends with a noop whichever the server reads first
  // (or finds the session already gone).
  const [last, close] = await Promise.all([fetch(url), fetch(url, { method: 'POST', body: '1' })]);
  assert.equal(close.status, 200);
  assert.ok(last.status === 200 || last.status === 400, `last poll: ${last.status}`);
  if (last.status === 200) assert.equal(await last.text(), '6');
  // Whether or not the session's task has finished cleaning up, nothing
  // more comes: a second noop would have the client poll on.
  const poll = await fetch(url);
  assert.equal(poll.status, 400);
  assert.deepEqual(await poll.json(), { code: 1, message: 'Session ID unknown' });
});

test('missing, malformed, forged and expired tokens fail the handshake with "unauthorized"', async () => {
  const g = await guest(srv.url);
  const now = Math.floor(Date.now() / 1000);
  const claims = { sub: g.user.id, name: g.user.username, guest: true, iat: now };
  const bad = [
    undefined,
    '',
    'garbage',
    signJwt({ ...claims, exp: now - 3600 }, JWT_SECRET),
    signJwt({ ...claims, exp: now + 3600 }, 'wrong-secret-wrong-secret-wrong-secret'),
    `${Buffer.from('{"alg":"none"}').toString('base64url')}.${g.token.split('.')[1]}.`,
  ];
  for (const token of bad) {
    const socket = io(srv.url, { auth: token === undefined ? undefined : { token }, reconnection: false, forceNew: true });
    const err = await once(socket, 'connect_error');
    assert.equal(err.message, 'unauthorized', `token ${token}`);
    assert.equal(socket.connected, false);
    socket.close();
  }
});

test('a payload holding JSON the server cannot read as a value is refused, and the connection stays', async () => {
  const g = await guest(srv.url);
  const { socket } = await connect(srv.url, g.token);
  // JSON.stringify cannot write 1e400: the Socket.IO packet as is (write adds Engine.IO's 4).
  for (const raw of ['2["user:cancel",{"x":1e400}]', '2["chat:message",{"content":"hi","x":-1e400}]']) {
    const errEvent = once(socket, 'error');
    socket.io.engine.write(raw);
    const e = await errEvent;
    assert.equal(e.code, raw.includes('chat:message') ? 'not_in_chat' : 'invalid_payload', `${raw}: ${JSON.stringify(e)}`);
    if (e.code === 'invalid_payload') assert.match(e.message, /unreadable payload/);
  }
  const ok = await request(socket, 'user:cancel');
  assert.equal(socket.connected, true);
  assert.equal(typeof ok.success, 'boolean');
  socket.close();
});

test('unknown events get an unknown_event error by ack, or an error event without one', async () => {
  const g = await guest(srv.url);
  const { socket } = await connect(srv.url, g.token);
  const ack = await request(socket, 'no:such-event', { x: 1 });
  assert.deepEqual(ack.success, false);
  assert.equal(ack.error.code, 'unknown_event');
  assert.match(ack.error.message, /no:such-event/);
  const errEvent = once(socket, 'error');
  socket.emit('no:such-event');
  const e = await errEvent;
  assert.equal(e.code, 'unknown_event');
  assert.equal(socket.connected, true);
  socket.close();
});

test('an oversized packet closes only that connection', async () => {
  const a = await guest(srv.url);
  const b = await guest(srv.url);
  const { socket: big } = await connect(srv.url, a.token);
  const { socket: other } = await connect(srv.url, b.token);
  const closed = once(big, 'disconnect');
  big.emit('chat:message', { type: 'text', content: 'x'.repeat(300 * 1024) });
  await closed;
  const ack = await request(other, 'still:alive');
  assert.equal(ack.error.code, 'unknown_event');
  const h = await api(srv.url, 'GET', '/health');
  assert.equal(h.status, 200);
  other.close();
});

test('shutdown tells clients before closing', async () => {
  const own = await startServer();
  const g = await guest(own.url);
  const { socket } = await connect(own.url, g.token, { transports: ['websocket'] });
  const told = once(socket, 'server:shutdown');
  const gone = once(socket, 'disconnect');
  const exited = own.stop('SIGTERM');
  assert.deepEqual(await told, { reconnect: true });
  await gone;
  assert.equal((await exited).code, 0);
});

// A client may send its first WebSocket frame right behind the upgrade
// request, before the 101: hyper has read it already, and the session
// must read it first.
test('a WebSocket frame sent in the same write as the upgrade request is read', async () => {
  const g = await guest(srv.url);
  const masked = (text) => {
    const p = Buffer.from(text);
    const mask = crypto.randomBytes(4);
    const head = p.length < 126
      ? Buffer.from([0x81, 0x80 | p.length])
      : Buffer.from([0x81, 0x80 | 126, p.length >> 8, p.length & 255]);
    return Buffer.concat([head, mask, Buffer.from(p.map((b, i) => b ^ mask[i % 4]))]);
  };
  const request = Buffer.from('GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: 127.0.0.1\r\n'
    + 'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n'
    + 'Sec-WebSocket-Version: 13\r\n\r\n');
  const s = net.connect(srv.port, '127.0.0.1', () => s.write(Buffer.concat([request, masked(`40${JSON.stringify({ token: g.token })}`)])));
  let got = Buffer.alloc(0);
  const texts = () => {
    const at = got.indexOf('\r\n\r\n');
    if (at < 0) return [];
    const out = [];
    let i = at + 4;
    while (i + 2 <= got.length) {
      let len = got[i + 1] & 127, off = 2;
      if (len === 126) { if (i + 4 > got.length) break; len = got.readUInt16BE(i + 2); off = 4; }
      if (i + off + len > got.length) break;
      out.push(got.subarray(i + off, i + off + len).toString());
      i += off + len;
    }
    return out;
  };
  try {
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no connection:established in ${JSON.stringify(texts())}`)), 5000);
      s.on('data', (d) => {
        got = Buffer.concat([got, d]);
        if (texts().some((t) => t.startsWith('42["connection:established"'))) { clearTimeout(timer); resolve(); }
      });
      s.on('error', reject);
    });
    assert.match(got.toString('latin1'), /^HTTP\/1\.1 101/);
    const [open, connected] = texts();
    assert.match(open, /^0\{"sid":/);
    assert.match(connected, /^40\{"sid":/);
  } finally {
    s.destroy();
  }
});
