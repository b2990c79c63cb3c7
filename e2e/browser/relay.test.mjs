// The Chromium call again, forced through our TURN relay
// (iceTransportPolicy 'relay' with credentials from /api/turn/credentials).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../lib/server.mjs';
import { launch, matchedPages, inboundMedia } from '../lib/browser.mjs';

let srv;
let browser;
before(async () => {
  srv = await startServer({
    SOCKET_EVENT_LIMIT: '100000',
    TURN_MODE: 'internal',
    TURN_PORT: '0',
    TURN_ALLOWED_PEERS: '127.0.0.0/8',
  });
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await srv?.stop();
});

test('a video call relayed through our TURN: the selected pair is relay on both sides', async () => {
  const { caller, callee } = await matchedPages(browser, srv.url, { relay: true });
  await caller.click('#call-btn');
  const [mc, me] = await Promise.all([inboundMedia(caller), inboundMedia(callee)]);
  for (const [who, m] of [['caller', mc], ['callee', me]]) {
    assert.equal(m.state, 'connected', `${who}: ${JSON.stringify(m)}`);
    assert.ok(m.video.bytes > 0 && m.video.frames > 0, `${who} receives video: ${JSON.stringify(m)}`);
    assert.ok(m.audio.bytes > 0, `${who} receives audio: ${JSON.stringify(m)}`);
    assert.equal(m.local, 'relay', `${who} local candidate: ${JSON.stringify(m)}`);
    assert.equal(m.remote, 'relay', `${who} remote candidate: ${JSON.stringify(m)}`);
  }
  const g = await caller.evaluate(() => window.tandem.token);
  const stats = await fetch(`${srv.url}/api/socket/stats`, { headers: { authorization: `Bearer ${g}` } }).then((r) => r.json());
  assert.ok(stats.data.turn.metrics.bytesToClients > 10000, JSON.stringify(stats.data.turn));
  await caller.context().close();
  await callee.context().close();
});
