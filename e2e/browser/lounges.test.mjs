// The page's Lounges view in headless Chromium: the list, join, chat
// between two pages, and scrolling back through the history.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../lib/server.mjs';
import { connect, guest, request } from '../lib/client.mjs';
import { launch, guestPage } from '../lib/browser.mjs';

let srv;
let browser;
before(async () => {
  srv = await startServer({ LOUNGES: 'general:en;music:en', ROOM_MESSAGE_RATE: '1000', ROOM_MESSAGE_BURST: '1000', SOCKET_EVENT_LIMIT: '100000' });
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await srv?.stop();
});

test('list, join, chat, and scroll back through history', async () => {
  // 80 older messages from a socket.io-client user.
  const g = await guest(srv.url);
  const { socket } = await connect(srv.url, g.token);
  assert.equal((await request(socket, 'room:join', { roomId: 'general-en' })).success, true);
  for (let i = 0; i < 80; i += 1) assert.equal((await request(socket, 'room:message', { roomId: 'general-en', content: `old ${i}` })).success, true);

  const a = await guestPage(browser, srv.url, `la${Date.now() % 1000}`);
  const b = await guestPage(browser, srv.url, `lb${Date.now() % 1000}`);
  for (const p of [a, b]) {
    await p.waitForSelector('#room-list li[data-room-id="general-en"]');
    assert.equal(await p.locator('#room-list li').count(), 2);
    await p.click('#room-list li[data-room-id="general-en"] button');
    await p.waitForSelector('#room-input:not([disabled])');
  }
  // The latest 50 are shown; the rest is one click back.
  assert.equal(await b.locator('#room-messages li').count(), 50);
  await b.click('#room-older');
  await b.waitForFunction(() => document.querySelectorAll('#room-messages li').length === 80);
  const offsets = await b.$$eval('#room-messages li', (lis) => lis.map((li) => Number(li.dataset.offset)));
  assert.deepEqual(offsets, Array.from({ length: 80 }, (_, i) => i + 1));
  assert.ok(await b.locator('#room-older').isHidden(), 'nothing older');
  // Chat between the two pages.
  await a.fill('#room-input', 'hello from a');
  await a.click('#room-send');
  await b.waitForFunction(() => [...document.querySelectorAll('#room-messages li')].some((li) => li.textContent.endsWith('hello from a')));
  // Member counts reach the list.
  await a.waitForFunction(() => Number(document.querySelector('#room-list li[data-room-id="general-en"] .pill').textContent) === 3);
  socket.close();
  await a.context().close();
  await b.context().close();
});
