// Group calls through the media server (SFU) in headless Chromium: four
// pages in one lounge call each receive video and audio from the other
// three; a fifth joins late and gets all four, with a keyframe asked of
// every publisher; one leaves and its tracks end for the others; then the
// same forced through our TURN relay.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../lib/server.mjs';
import { launch, guestPage } from '../lib/browser.mjs';
import { startCluster } from '../lib/cluster.mjs';

let srv;
let browser;
before(async () => {
  srv = await startServer({
    LOUNGES: 'general:en',
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

/** A guest page in the lounge's call (relay: through our TURN only). */
async function inCall(name, { relay = false, url = srv.url } = {}) {
  const page = await guestPage(browser, url, name);
  if (relay) await page.check('#relay-only');
  await page.waitForSelector('#room-list li[data-room-id="general-en"]');
  await page.click('#room-list li[data-room-id="general-en"] button');
  await page.waitForSelector('#room-input:not([disabled])');
  await page.waitForSelector('#group-call-btn:not([disabled])');
  await page.click('#group-call-btn');
  await page.waitForFunction(() => window.tandem.groupCall.id !== null, null, { timeout: 15000 });
  return page;
}

/**
 * Waits until the page decodes video and receives audio from every user in
 * `from` (getStats per inbound track, mapped to its publisher by the
 * track's stream id); returns what it saw per user.
 */
function receivesFrom(page, from, timeoutMs = 30000) {
  return page.evaluate(async ({ from, timeoutMs }) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const call = window.tandem.groupCall;
      const seen = {};
      let pair = null;
      if (call.pc) {
        const stats = await call.pc.getStats();
        stats.forEach((s) => {
          if (s.type === 'inbound-rtp') {
            const t = call.tracks.get(s.trackIdentifier);
            if (!t) return;
            const u = (seen[t.userId] ||= { frames: 0, audioBytes: 0 });
            if (s.kind === 'video') u.frames += s.framesDecoded || 0;
            if (s.kind === 'audio') u.audioBytes += s.bytesReceived || 0;
          }
          if (s.type === 'transport' && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId);
        });
        if (pair) seen.localCandidate = stats.get(pair.localCandidateId)?.candidateType;
      }
      if (from.every((u) => seen[u]?.frames > 0 && seen[u]?.audioBytes > 0)) return seen;
      if (Date.now() > deadline) return seen;
      await new Promise((r) => setTimeout(r, 100)); // poll interval
    }
  }, { from, timeoutMs });
}

const userId = (page) => page.evaluate(() => window.tandem.user.id);

/** Keyframe requests the publisher's video sender got (outbound-rtp pliCount + firCount). */
const keyframeRequests = (page) => page.evaluate(async () => {
  let n = 0;
  (await window.tandem.groupCall.pc.getStats()).forEach((s) => {
    if (s.type === 'outbound-rtp' && s.kind === 'video') n += (s.pliCount || 0) + (s.firCount || 0);
  });
  return n;
});

test('four in a call see and hear each other; a late fifth gets all four; a leaver\'s tracks end', async () => {
  const tag = Date.now() % 10000;
  const pages = [];
  for (let i = 0; i < 4; i += 1) pages.push(await inCall(`g${i}x${tag}`));
  const ids = await Promise.all(pages.map(userId));
  const seen = await Promise.all(pages.map((p, i) => receivesFrom(p, ids.filter((_, j) => j !== i))));
  seen.forEach((s, i) => {
    for (const u of ids.filter((_, j) => j !== i)) {
      assert.ok(s[u]?.frames > 0, `page ${i} decodes video from ${u}: ${JSON.stringify(s)}`);
      assert.ok(s[u]?.audioBytes > 0, `page ${i} receives audio from ${u}: ${JSON.stringify(s)}`);
    }
  });
  // Everyone sees four participants with their tracks.
  const parts = await pages[0].evaluate(() => window.tandem.groupCall.participants);
  assert.equal(parts.length, 4);
  for (const p of parts) assert.deepEqual(p.tracks.map((t) => t.kind).sort(), ['audio', 'video'], JSON.stringify(parts));
  assert.equal(await pages[0].locator('#call-grid figure').count(), 4);

  // A fifth joins late: every publisher is asked for a keyframe, so the
  // newcomer's video starts without waiting for the next periodic one.
  const before = await Promise.all(pages.map(keyframeRequests));
  const t0 = Date.now();
  const late = await inCall(`g4x${tag}`);
  const lateSeen = await receivesFrom(late, ids);
  const took = Date.now() - t0;
  for (const u of ids) assert.ok(lateSeen[u]?.frames > 0 && lateSeen[u]?.audioBytes > 0, `late joiner gets ${u}: ${JSON.stringify(lateSeen)}`);
  const afterKf = await Promise.all(pages.map(keyframeRequests));
  afterKf.forEach((n, i) => assert.ok(n > before[i], `publisher ${i} got a keyframe request (${before[i]} -> ${n})`));
  console.log(`# late joiner: video and audio from all four ${took} ms after clicking join`);
  const token = await late.evaluate(() => window.tandem.token);
  const stats = await fetch(`${srv.url}/api/socket/stats`, { headers: { authorization: `Bearer ${token}` } }).then((r) => r.json());
  const gc = stats.data.groupCalls;
  assert.equal(gc.calls, 1, JSON.stringify(gc));
  assert.equal(gc.participants, 5, JSON.stringify(gc));
  assert.equal(gc.media.sessions, 5, JSON.stringify(gc));
  assert.ok(gc.media.framesForwarded > 1000 && gc.media.keyframeRequests >= 4, JSON.stringify(gc));

  // One leaves: its tracks end for the others, and it leaves the list.
  await pages[0].click('#group-call-leave');
  for (const p of [...pages.slice(1), late]) {
    await p.waitForFunction((gone) => {
      const call = window.tandem.groupCall;
      const mine = [...call.tracks.values()].filter((t) => t.userId === gone);
      return mine.length > 0 && mine.every((t) => t.track.readyState === 'ended')
        && !call.participants.some((x) => x.userId === gone);
    }, ids[0], { timeout: 15000 });
  }
  for (const p of [...pages, late]) await p.context().close();
});

test('four in a call forced through our TURN relay see and hear each other', async () => {
  const tag = Date.now() % 10000;
  const pages = [];
  for (let i = 0; i < 4; i += 1) pages.push(await inCall(`r${i}x${tag}`, { relay: true }));
  const ids = await Promise.all(pages.map(userId));
  const seen = await Promise.all(pages.map((p, i) => receivesFrom(p, ids.filter((_, j) => j !== i))));
  seen.forEach((s, i) => {
    for (const u of ids.filter((_, j) => j !== i)) assert.ok(s[u]?.frames > 0 && s[u]?.audioBytes > 0, `page ${i} gets ${u}: ${JSON.stringify(s)}`);
    assert.equal(s.localCandidate, 'relay', `page ${i} goes through TURN: ${JSON.stringify(s)}`);
  });
  for (const p of pages) await p.context().close();
});

test('two pages whose sockets are on different cluster nodes are in one call', async () => {
  const c = await startCluster(2, { LOUNGES: 'general:en' });
  try {
    const tag = Date.now() % 10000;
    const a = await inCall(`k1x${tag}`, { url: c.nodes[0].url });
    const b = await inCall(`k2x${tag}`, { url: c.nodes[1].url });
    const [ia, ib] = await Promise.all([a, b].map(userId));
    assert.equal(await a.evaluate(() => window.tandem.groupCall.id), await b.evaluate(() => window.tandem.groupCall.id));
    const [sa, sb] = await Promise.all([receivesFrom(a, [ib]), receivesFrom(b, [ia])]);
    assert.ok(sa[ib]?.frames > 0 && sa[ib]?.audioBytes > 0, JSON.stringify(sa));
    assert.ok(sb[ia]?.frames > 0 && sb[ia]?.audioBytes > 0, JSON.stringify(sb));
    for (const p of [a, b]) await p.context().close();
  } finally {
    await c.stop();
  }
});
