import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { startServer } from '../lib/server.mjs';
import { api, guest, once, request, matchedPair, upload, eventually } from '../lib/client.mjs';
import { wav, png, pdf, exe } from '../lib/fixtures.mjs';

let srv;
before(async () => { srv = await startServer({ SOCKET_EVENT_LIMIT: '100000', RATE_LIMIT_UPLOAD_MAX: '1000' }); });
after(async () => { await srv?.stop(); });

const uploadDir = () => path.join(srv.dir, 'uploads');
const leftovers = () => readdirSync(uploadDir()).filter((f) => !/^[0-9a-f]{32}(\.json)?$/.test(f));

function expectError(res, status, code) {
  assert.equal(res.status, status, res.text);
  assert.equal(res.body.success, false);
  assert.equal(res.body.error.code, code);
  assert.ok(res.body.message);
}

test('allowed types are detected from the bytes, not the client', async () => {
  const g = await guest(srv.url);
  const cases = [
    [png, 'photo.png', 'image/png'],
    [pdf, 'doc.pdf', 'application/pdf'],
    [Buffer.from('plain words\n'), 'notes', 'text/plain'],
    [wav(2), 'sound.wav', 'audio/wav'],
  ];
  for (const [bytes, name, mime] of cases) {
    const r = await upload(srv.url, g.token, bytes, { name, type: 'application/x-whatever' });
    assert.equal(r.status, 201, r.text);
    const d = r.body.data;
    assert.match(d.id, /^[0-9a-f]{32}$/);
    assert.equal(d.name, name);
    assert.equal(d.mime, mime);
    assert.equal(d.size, bytes.length);
    assert.equal(d.url, `/api/files/${d.id}`);
  }
  const sound = await upload(srv.url, g.token, wav(2), { name: 'sound.wav' });
  assert.equal(sound.body.data.duration, 2);
  const named = await upload(srv.url, g.token, png, { name: '../../etc/passwd' });
  assert.equal(named.body.data.name, 'passwd', 'the client name is display-only and cleaned');
  assert.ok(!readdirSync(uploadDir()).includes('passwd'));
});

test('spoofed and disallowed types get 415; nothing partial stays', async () => {
  const g = await guest(srv.url);
  expectError(await upload(srv.url, g.token, exe, { name: 'cute.png', type: 'image/png' }), 415, 'unsupported_media_type');
  expectError(await upload(srv.url, g.token, Buffer.from([0x50, 0x4b, 3, 4, 0, 0, 0xff, 0xfe]), { name: 'a.zip' }), 415, 'unsupported_media_type');
  expectError(await upload(srv.url, g.token, png, { kind: 'voice', name: 'v.webm', type: 'audio/webm' }), 415, 'unsupported_media_type');
  expectError(await upload(srv.url, g.token, Buffer.from('not audio'), { kind: 'voice' }), 415, 'unsupported_media_type');
  assert.deepEqual(leftovers(), []);
});

test('voice notes must be audio no longer than MAX_VOICE_DURATION', async () => {
  const g = await guest(srv.url);
  const ok = await upload(srv.url, g.token, wav(3), { kind: 'voice', name: 'note.wav' });
  assert.equal(ok.status, 201, ok.text);
  assert.equal(ok.body.data.duration, 3);
  assert.equal(ok.body.data.kind, 'voice');
  const long = await upload(srv.url, g.token, wav(301), { kind: 'voice', name: 'long.wav' });
  expectError(long, 422, 'unprocessable');
  assert.match(long.body.message, /301/);
  assert.equal((await upload(srv.url, g.token, wav(301), { kind: 'file', name: 'long.wav' })).status, 201, 'the limit is for voice notes');
  expectError(await upload(srv.url, g.token, wav(1), { kind: 'podcast' }), 400, 'validation_error');
  assert.deepEqual(leftovers(), []);
});

test('uploads over MAX_FILE_SIZE get 413 and leave nothing on disk', async () => {
  const g = await guest(srv.url);
  const max = 10485760;
  const exact = await upload(srv.url, g.token, Buffer.alloc(max, 'a'), { name: 'max.txt' });
  assert.equal(exact.status, 201, exact.text);
  const before = readdirSync(uploadDir()).length;
  expectError(await upload(srv.url, g.token, Buffer.alloc(max + 1, 'a'), { name: 'big.txt' }), 413, 'payload_too_large');
  assert.equal(readdirSync(uploadDir()).length, before);
  assert.deepEqual(leftovers(), []);
});

test('bad upload requests get clear errors', async () => {
  const g = await guest(srv.url);
  expectError(await api(srv.url, 'POST', '/api/files', { token: g.token, body: { file: 'x' } }), 415, 'unsupported_media_type');
  const noFile = new FormData();
  noFile.append('kind', 'file');
  const r = await fetch(`${srv.url}/api/files`, { method: 'POST', headers: { authorization: `Bearer ${g.token}` }, body: noFile });
  assert.equal(r.status, 400);
  assert.equal((await r.json()).error.field, 'file');
  expectError(await upload(srv.url, g.token, Buffer.alloc(0), { name: 'empty.txt' }), 400, 'validation_error');
  const anon = await upload(srv.url, 'not-a-token', png);
  assert.equal(anon.status, 401);
});

test('shared files reach the partner only, as attachments; they go when the chat ends', async () => {
  const { a, b, ga, gb } = await matchedPair(srv.url);
  const stranger = await guest(srv.url);
  const up = await upload(srv.url, ga.token, png, { name: 'pic of me.png' });
  const file = up.body.data;
  const get = (token) => api(srv.url, 'GET', file.url, { token });
  assert.equal((await get(ga.token)).status, 200, 'the uploader can read it');
  expectError(await get(gb.token), 404, 'not_found');

  const got = once(b, 'chat:message');
  const ack = await request(a, 'chat:message', { type: 'file', fileId: file.id });
  assert.equal(ack.success, true, JSON.stringify(ack));
  const msg = await got;
  assert.equal(msg.type, 'file');
  assert.equal(msg.from, ga.user.id);
  assert.deepEqual(msg.file, { id: file.id, name: 'pic of me.png', mime: 'image/png', size: png.length, url: file.url, kind: 'file' });

  const res = await fetch(srv.url + file.url, { headers: { authorization: `Bearer ${gb.token}` } });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'image/png');
  assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
  assert.match(res.headers.get('content-disposition'), /^attachment; filename="pic of me.png"/);
  assert.deepEqual(Buffer.from(await res.arrayBuffer()), png);
  expectError(await get(stranger.token), 404, 'not_found');
  expectError(await api(srv.url, 'GET', '/api/files/../../etc/passwd', { token: gb.token }), 404, 'not_found');

  // Only the uploader may share it.
  const r = await request(b, 'chat:message', { type: 'file', fileId: file.id });
  assert.equal(r.error.code, 'file_not_found');

  const left = once(b, 'partner:left');
  await request(a, 'user:end');
  await left;
  expectError(await get(gb.token), 404, 'not_found');
  expectError(await get(ga.token), 404, 'not_found');
  assert.ok(!readdirSync(uploadDir()).some((f) => f.startsWith(file.id)));
  a.close(); b.close();
});

test('voice messages carry their duration; chat:clear deletes the chat files', async () => {
  const { a, b, ga, gb } = await matchedPair(srv.url);
  const note = (await upload(srv.url, ga.token, wav(4), { kind: 'voice', name: 'hi.wav' })).body.data;
  const plain = (await upload(srv.url, ga.token, png, { name: 'p.png' })).body.data;
  const bad = await request(a, 'chat:message', { type: 'voice', fileId: plain.id });
  assert.equal(bad.error.code, 'invalid_payload');
  const got = once(b, 'chat:message');
  await request(a, 'chat:message', { type: 'voice', fileId: note.id });
  const msg = await got;
  assert.equal(msg.type, 'voice');
  assert.equal(msg.file.duration, 4);
  assert.equal(msg.file.mime, 'audio/wav');
  await request(a, 'chat:message', { type: 'file', fileId: plain.id });
  const cleared = once(a, 'chat:cleared');
  const r = await request(b, 'chat:clear');
  assert.equal(r.data.deletedFiles, 2);
  await cleared;
  assert.equal((await api(srv.url, 'GET', note.url, { token: gb.token })).status, 404);
  a.close(); b.close();
});

test('uploads are limited per IP, and expire after FILE_TTL', async () => {
  const own = await startServer({ RATE_LIMIT_UPLOAD_MAX: '2', FILE_TTL: '1s' });
  try {
    const g = await guest(own.url);
    const first = await upload(own.url, g.token, png);
    assert.equal(first.status, 201);
    assert.equal((await upload(own.url, g.token, png)).status, 201);
    const limited = await upload(own.url, g.token, png);
    expectError(limited, 429, 'rate_limited');
    assert.ok(Number(limited.headers.get('retry-after')) > 0);
    await eventually(async () => (await api(own.url, 'GET', first.body.data.url, { token: g.token })).status === 404,
      8000, 'the sweeper to remove an expired upload');
  } finally {
    await own.stop();
  }
});
