// The operator console in headless Chromium: sign in with the key, watch
// the charts move while socket.io-client users chat, check a screenshot
// of the charts for drawn lines, and ban a reported user from the queue.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { PNG } from 'pngjs';
import { startServer } from '../lib/server.mjs';
import { connect, guest, once, request } from '../lib/client.mjs';
import { launch } from '../lib/browser.mjs';

const ADMIN_KEY = 'console-admin-key-0123456789';
let srv;
let browser;
before(async () => {
  srv = await startServer({ ADMIN_KEY, REPORT_THRESHOLD: '0', SOCKET_EVENT_LIMIT: '1000' });
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await srv?.stop();
});

/** Pixels of a PNG drawn in a saturated colour (the series lines; the grid and labels are grey). */
function colouredPixels(png) {
  const img = PNG.sync.read(png);
  let n = 0;
  for (let i = 0; i < img.data.length; i += 4) {
    const [r, g, b] = [img.data[i], img.data[i + 1], img.data[i + 2]];
    if (Math.max(r, g, b) - Math.min(r, g, b) > 60) n += 1;
  }
  return n;
}

test('sign in, live charts under load, and a ban from the reports queue', async () => {
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`${srv.url}/admin`);
  await page.fill('#admin-key', 'not-the-key');
  await page.click('#signin-btn');
  await page.waitForFunction(() => document.getElementById('signin-error').textContent === 'wrong key');
  await page.fill('#admin-key', ADMIN_KEY);
  await page.click('#signin-btn');
  await page.waitForSelector('#console:not([hidden])');

  // Load: two users matched, one writing to the other; the other reports.
  const ga = await guest(srv.url);
  const gb = await guest(srv.url);
  const { socket: a } = await connect(srv.url, ga.token);
  const { socket: b } = await connect(srv.url, gb.token);
  const matched = once(b, 'user:matched');
  assert.equal((await request(a, 'user:match')).data.status, 'waiting');
  assert.equal((await request(b, 'user:match')).data.status, 'matched');
  await matched;
  let writing = true;
  const writer = (async () => {
    for (let i = 0; writing; i += 1) {
      // Ends when a is banned (an error, or no answer from a closed socket).
      const r = await request(a, 'chat:message', { content: `message ${i}` }, 1000).catch(() => null);
      if (!r?.success) break;
      await new Promise((r) => setTimeout(r, 20)); // pace: about 40 messages a second
    }
  })();
  // The charts move: users online and messages per second reach the page.
  await page.waitForFunction(() => {
    const s = window.tandemConsole.series;
    const mps = Object.values(s['c-mps'] || {}).flat();
    return (s['c-users']?.online || []).some((v) => v >= 2) && mps.some((v) => v > 5);
  }, null, { timeout: 15000 });
  const shot = await page.screenshot({ fullPage: true });
  assert.ok(shot.length > 10000);
  if (process.env.TANDEM_CONSOLE_SHOT) (await import('node:fs')).writeFileSync(process.env.TANDEM_CONSOLE_SHOT, shot);
  for (const id of ['c-users', 'c-mps', 'c-sockets']) {
    const n = colouredPixels(await page.locator(`#${id}`).screenshot());
    assert.ok(n > 100, `chart ${id} has lines drawn (${n} coloured pixels)`);
  }
  assert.match(await page.textContent('#t-users'), /^[2-9]/);
  assert.equal(await page.locator('#nodes tbody tr').count(), 1);
  // A lounge with someone in it is listed.
  assert.equal((await request(b, 'room:join', { roomId: 'general-en' })).success, true);
  await page.waitForSelector('#lounges tbody tr[data-room-id="general-en"]');
  assert.equal(await page.textContent('#nodes tbody tr td:nth-child(2)'), 'up');

  // b reports a; the report shows with its evidence; Ban ends a's session.
  assert.equal((await request(b, 'user:report', { userId: ga.user.id, reason: 'harassment', details: 'rude' })).success, true);
  const item = page.locator(`#reports li[data-target="${ga.user.id}"]`);
  await item.waitFor({ timeout: 10000 });
  assert.ok((await item.locator('.evidence li').count()) > 0, 'the evidence is listed');
  const banned = once(a, 'moderation:banned', 10000);
  const gone = once(a, 'disconnect', 10000);
  await item.locator('button[data-action="ban"]').click();
  const ev = await banned;
  assert.ok(Date.parse(ev.until) > Date.now());
  await gone;
  await item.waitFor({ state: 'detached', timeout: 10000 });
  writing = false;
  await writer;
  b.close();
  assert.deepEqual(errors, []);
  await page.close();
});

test('/docs renders every operation and event of the two documents', async () => {
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`${srv.url}/docs`);
  await page.waitForSelector('body[data-ready="true"]');
  const openapi = await (await fetch(`${srv.url}/api/openapi.json`)).json();
  const ops = Object.values(openapi.paths).reduce((n, item) => n + Object.keys(item).length, 0);
  assert.equal(await page.locator('#rest details.op').count(), ops);
  const asyncapi = await (await fetch(`${srv.url}/api/asyncapi.json`)).json();
  assert.equal(await page.locator('#events details.op').count(), Object.keys(asyncapi.operations).length);
  await page.locator('#rest details.op[data-path="/api/auth/register"] summary').click();
  assert.match(await page.locator('#rest details.op[data-path="/api/auth/register"] pre').first().textContent(), /"username"/);
  assert.deepEqual(errors, []);
  await page.close();
});
