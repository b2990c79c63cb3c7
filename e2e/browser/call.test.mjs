// End to end in headless Chromium: two pages of our own web page meet,
// chat, share a file and a recorded voice note, and make a video call with
// media flowing both ways.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../lib/server.mjs';
import { launch, matchedPages, inboundMedia } from '../lib/browser.mjs';
import { png } from '../lib/fixtures.mjs';

let srv;
let browser;
before(async () => {
  srv = await startServer({ SOCKET_EVENT_LIMIT: '100000' });
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await srv?.stop();
});

test('two pages meet, chat, share a file and a voice note, and make a video call', async () => {
  const { caller, callee } = await matchedPages(browser, srv.url);

  await caller.fill('#chat-input', 'hello from the caller');
  await caller.click('#send-btn');
  await callee.waitForSelector('#messages li:text("hello from the caller")');

  // The callee shares an image; the caller sees it (fetched with the token).
  await callee.setInputFiles('#file-input', { name: 'dot.png', mimeType: 'image/png', buffer: png });
  await caller.waitForSelector('#messages li.file img');
  const shared = await caller.evaluate(() => document.querySelector('#messages li.file').textContent);
  assert.match(shared, /dot\.png/);

  // A voice note recorded with MediaRecorder from the fake microphone.
  await caller.click('#voice-btn');
  await caller.waitForFunction(() => window.tandem.recorder?.state === 'recording');
  await caller.evaluate(() => new Promise((r) => { const recordingLength = 1200; setTimeout(r, recordingLength); }));
  await caller.click('#voice-btn');
  await callee.waitForSelector('#messages li.file audio');
  const voice = await callee.evaluate(() => document.querySelector('#messages li.file:last-child').textContent);
  assert.match(voice, /voice note \((1\.\d|2\.\d) s\)/, voice);

  // The caller starts the call; the callee answers by itself.
  await caller.click('#call-btn');
  const [mc, me] = await Promise.all([inboundMedia(caller), inboundMedia(callee)]);
  for (const [who, m] of [['caller', mc], ['callee', me]]) {
    assert.equal(m.state, 'connected', `${who}: ${JSON.stringify(m)}`);
    assert.ok(m.video.bytes > 0 && m.video.frames > 0, `${who} receives video: ${JSON.stringify(m)}`);
    assert.ok(m.audio.bytes > 0, `${who} receives audio: ${JSON.stringify(m)}`);
  }

  await caller.click('#hangup-btn');
  await callee.waitForFunction(() => window.tandem.pc === null);
  await caller.click('#stop-btn');
  await callee.waitForSelector('#messages li.system:text("Your partner left.")');
  await caller.context().close();
  await callee.context().close();
});
