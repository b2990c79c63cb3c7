// The page's Report and Block buttons, and how it shows a ban.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../lib/server.mjs';
import { api } from '../lib/client.mjs';
import { launch, guestPage } from '../lib/browser.mjs';

const ADMIN_KEY = 'browser-admin-key-0123456789';
let srv;
let browser;
before(async () => {
  srv = await startServer({ ADMIN_KEY, SOCKET_EVENT_LIMIT: '100000' });
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await srv?.stop();
});

test('report and block the partner from the page; a ban is shown plainly', async () => {
  const tag = Date.now() % 100000;
  const a = await guestPage(browser, srv.url, `rep${tag}`);
  const b = await guestPage(browser, srv.url, `bad${tag}`);
  assert.equal(await a.isDisabled('#report-btn'), true, 'nobody to report yet');
  await a.click('#start-btn');
  await a.waitForFunction(() => window.tandem.queued === true);
  await b.click('#start-btn');
  await a.waitForSelector('#report-btn:not([disabled])');
  await b.fill('#chat-input', 'something rude');
  await b.click('#send-btn');
  await a.waitForSelector('#messages li:text("something rude")');

  await a.selectOption('#report-reason', 'harassment');
  await a.click('#report-btn');
  await a.waitForSelector('#messages li:text("the report was sent")');

  const reports = await api(srv.url, 'GET', '/admin/reports?status=open', { headers: { 'x-admin-key': ADMIN_KEY } });
  const report = reports.body.data.reports[0];
  assert.equal(report.reason, 'harassment');
  assert.deepEqual(report.evidence.map((e) => e.text), ['something rude']);

  const banned = await api(srv.url, 'POST', `/admin/reports/${report.id}/resolve`, {
    body: { action: 'ban', duration: '2h' }, headers: { 'x-admin-key': ADMIN_KEY },
  });
  assert.equal(banned.status, 200);
  await b.waitForSelector('#banned:not([hidden])');
  assert.match(await b.textContent('#banned'), /^You are banned until .+ \(harassment\)\.$/);
  assert.equal(await b.isDisabled('#start-btn'), true);

  await a.click('#block-btn');
  await a.waitForSelector('#messages li:text("Blocked")');
  await a.context().close();
  await b.context().close();
});
