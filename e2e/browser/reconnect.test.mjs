// The page's own Socket.IO client (web/sio.js) when the network path dies
// without a close: it must notice by the ping timeout the handshake
// announced, buffer what the user sends meanwhile, and deliver it after
// reconnecting.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../lib/server.mjs';
import { startProxy } from '../lib/proxy.mjs';
import { launch, guestPage } from '../lib/browser.mjs';

let srv;
let proxy;
let browser;
before(async () => {
  // Short pings so a dead path shows within ~2 s.
  srv = await startServer({ SOCKET_EVENT_LIMIT: '100000', PING_INTERVAL: '1s', PING_TIMEOUT: '1s' });
  proxy = await startProxy(srv.port);
  browser = await launch();
});
after(async () => {
  await browser?.close();
  proxy?.close();
  await srv?.stop();
});

test('a cut connection is noticed, and what was sent meanwhile arrives after reconnecting', async () => {
  const tag = Date.now() % 100000;
  const a = await guestPage(browser, proxy.url, `cut${tag}`); // through the proxy
  const b = await guestPage(browser, srv.url, `ok${tag}`);
  await a.click('#start-btn');
  await a.waitForFunction(() => window.tandem.queued === true);
  await b.click('#start-btn');
  await a.waitForSelector('#chat-input:not([disabled])');
  await b.waitForSelector('#chat-input:not([disabled])');

  await a.fill('#chat-input', 'before the cut');
  await a.click('#send-btn');
  await b.waitForSelector('#messages li:text("before the cut")');

  // The path dies silently: no FIN, no RST; the page's socket still says open.
  proxy.freeze();
  await a.waitForFunction(() => window.tandem.socket.connected === false, null, { timeout: 10000 });

  // Sent while disconnected: buffered, not lost.
  await a.fill('#chat-input', 'sent while cut off');
  await a.click('#send-btn');
  proxy.thaw();

  await a.waitForFunction(() => window.tandem.socket.connected === true, null, { timeout: 15000 });
  await b.waitForSelector('#messages li:text("sent while cut off")', { timeout: 15000 });
  await a.waitForSelector('#messages li.mine:text("sent while cut off")');
  const notSent = await a.evaluate(() => [...document.querySelectorAll('#messages li')].some((li) => li.textContent.startsWith('Not sent')));
  assert.equal(notSent, false);
  await a.context().close();
  await b.context().close();
});
