// Debian's Chromium driven by playwright-core (no browser download), with
// fake camera and microphone. Run inside a loopback-only network namespace
// (scripts/test does) so that ICE only ever sees 127.0.0.1.
import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

export function launch() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
      '--allow-loopback-in-peer-connection',
    ],
  });
}

/** A page of our app in its own context, signed in as a guest. */
export async function guestPage(browser, url, name) {
  const context = await browser.newContext({ permissions: ['camera', 'microphone'] });
  const page = await context.newPage();
  page.on('pageerror', (e) => console.error(`[${name}] page error:`, e.message));
  await page.goto(url);
  await page.fill('#guest-name', name);
  await page.click('#guest-btn');
  await page.waitForSelector('#app:not([hidden])');
  await page.waitForFunction(() => window.tandem.socket?.connected === true);
  return page;
}

/** Waits in the page until media flows in; returns what getStats saw. */
export function inboundMedia(page, timeoutMs = 20000) {
  return page.evaluate(async (timeout) => {
    const deadline = Date.now() + timeout;
    for (;;) {
      const pc = window.tandem.pc;
      const out = { video: { bytes: 0, frames: 0 }, audio: { bytes: 0 }, local: null, remote: null };
      if (pc) {
        const stats = await pc.getStats();
        let pair;
        stats.forEach((s) => {
          if (s.type === 'inbound-rtp' && s.kind === 'video') { out.video.bytes += s.bytesReceived || 0; out.video.frames += s.framesDecoded || 0; }
          if (s.type === 'inbound-rtp' && s.kind === 'audio') out.audio.bytes += s.bytesReceived || 0;
          if (s.type === 'transport' && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId);
          if (!pair && s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') pair = s;
        });
        if (pair) {
          out.local = stats.get(pair.localCandidateId)?.candidateType;
          out.remote = stats.get(pair.remoteCandidateId)?.candidateType;
        }
        out.state = pc.connectionState;
        if (out.video.bytes > 0 && out.video.frames > 0 && out.audio.bytes > 0) return out;
        if (pc.connectionState === 'failed') return out;
      }
      if (Date.now() > deadline) return out;
      await new Promise((r) => setTimeout(r, 100)); // poll interval
    }
  }, timeoutMs);
}

/** Two guest pages matched with each other; `relay` ticks "Relay only" first. */
export async function matchedPages(browser, url, { relay = false } = {}) {
  const tag = Date.now() % 100000;
  const a = await guestPage(browser, url, `a${tag}`);
  const b = await guestPage(browser, url, `b${tag}`);
  if (relay) for (const p of [a, b]) await p.check('#relay-only');
  await a.click('#start-btn');
  await a.waitForFunction(() => window.tandem.queued === true);
  await b.click('#start-btn');
  await a.waitForSelector('#chat-input:not([disabled])');
  await b.waitForSelector('#chat-input:not([disabled])');
  const [ra, rb] = await Promise.all([a.evaluate(() => window.tandem.room), b.evaluate(() => window.tandem.room)]);
  if (ra.roomId !== rb.roomId) throw new Error(`pages in different rooms: ${ra.roomId} ${rb.roomId}`);
  return ra.role === 'caller' ? { caller: a, callee: b } : { caller: b, callee: a };
}
