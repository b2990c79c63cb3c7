// Safety: blocks are covered in matching.test.mjs; here bans and the
// moderator API, on one node and across a cluster. Each user gets an
// address of its own through X-Real-IP (TRUST_PROXY), so a ban of one
// address does not touch the other tests' users.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../lib/server.mjs';
import { startCluster } from '../lib/cluster.mjs';
import { api, connect, once, request } from '../lib/client.mjs';

const ADMIN_KEY = 'test-admin-key-0123456789';
/** Where the suite runs: one process, or three nodes on Redis and MongoDB
 *  where each `url` read is the next node (so a test's users, requests
 *  and moderator calls land on different nodes). */
const single = { start: (env) => startServer(env) };
const cluster = {
  async start(env) {
    const c = await startCluster(3, env);
    let i = 0;
    return {
      get url() { const u = c.nodes[i % c.nodes.length].url; i += 1; return u; },
      stop: () => c.stop(),
    };
  },
};

let nextIp = 10;
/** A guest from an address (and optionally a device) of its own. */
async function guestFrom(base, { ip = `10.9.0.${nextIp++}`, device } = {}) {
  const headers = { 'x-real-ip': ip };
  if (device) headers['x-device-id'] = device;
  const r = await api(base, 'POST', '/api/auth/guest', { body: {}, headers });
  return { ...r, ip, headers, data: r.body?.data };
}

function connectFrom(base, g, opts = {}) {
  return connect(base, g.data.token, { extraHeaders: { 'x-real-ip': g.ip }, ...opts });
}

/** socket.io-client's `disconnect` gives (reason, details). */
const reasonOf = (args) => (Array.isArray(args) ? args[0] : args);

const admin = (base, method, path, body, key = ADMIN_KEY, headers = {}) =>
  api(base, method, path, { body, headers: { 'x-admin-key': key, ...headers } });

function suite(name, T, options = {}) {
  describe(name, options, () => {
    let srv;
    before(async () => {
      srv = await T.start({ ADMIN_KEY, TRUST_PROXY: 'true', BAN_DURATION: '1h', BAN_MAX: '10h', RATE_LIMIT_AUTH_MAX: '1000' });
    });
    after(async () => { await srv?.stop(); });

    test('the admin API wants the key: 401 for a wrong one, counted against the auth limit; 404 without ADMIN_KEY', async () => {
      const g = await guestFrom(srv.url);
      for (const key of ['', 'wrong']) {
        const r = await admin(srv.url, 'POST', `/admin/users/${g.data.user.id}/kick`, {}, key, { 'x-real-ip': '10.8.0.1' });
        assert.equal(r.status, 401);
        assert.equal(r.body.error.code, 'invalid_admin_key');
      }
      const plain = await T.start({ TRUST_PROXY: 'true', RATE_LIMIT_AUTH_MAX: '2' });
      try {
        const r = await admin(plain.url, 'GET', '/admin/audit');
        assert.equal(r.status, 404);
        assert.equal(r.body.error.code, 'not_found');
      } finally {
        await plain.stop();
      }
      const strict = await T.start({ ADMIN_KEY, TRUST_PROXY: 'true', RATE_LIMIT_AUTH_MAX: '2' });
      try {
        const codes = [];
        for (let i = 0; i < 3; i += 1) {
          codes.push((await admin(strict.url, 'GET', '/admin/audit', undefined, 'nope', { 'x-real-ip': '10.8.0.2' })).status);
        }
        assert.deepEqual(codes, [401, 401, 429]);
        assert.equal((await admin(strict.url, 'GET', '/admin/audit', undefined, ADMIN_KEY, { 'x-real-ip': '10.8.0.3' })).status, 200);
      } finally {
        await strict.stop();
      }
    });

    test('a ban tells and disconnects the user, refuses their token, device and address, and is audited; lifting it lets them back', async () => {
      const g = await guestFrom(srv.url, { device: 'dev-banned-1' });
      assert.equal(g.status, 201);
      const { socket } = await connectFrom(srv.url, g);
      const dev = await api(srv.url, 'POST', '/api/users/device', { token: g.data.token, body: { deviceId: 'dev-banned-2' }, headers: { 'x-real-ip': g.ip } });
      assert.equal(dev.status, 200);
      const notice = once(socket, 'moderation:banned');
      const gone = once(socket, 'disconnect');
      const b = await admin(srv.url, 'POST', `/admin/users/${g.data.user.id}/ban`, { duration: '2h', reason: 'spam' });
      assert.equal(b.status, 200);
      assert.equal(b.body.data.durationSeconds, 7200);
      const n = await notice;
      assert.equal(n.reason, 'spam');
      assert.equal(n.until, b.body.data.until);
      assert.equal(reasonOf(await gone), 'io server disconnect');

      // The handshake is refused.
      await assert.rejects(connectFrom(srv.url, g), (e) => e.message === 'banned');
      // Refresh, as the same account: 403 with until; the token stays usable later.
      const r = await api(srv.url, 'POST', '/api/auth/refresh', { body: { refreshToken: g.data.refreshToken }, headers: { 'x-real-ip': '10.7.0.1' } });
      assert.equal(r.status, 403);
      assert.equal(r.body.error.code, 'banned');
      assert.equal(r.body.until, b.body.data.until);
      // A new guest from the same address, or from a registered device elsewhere.
      for (const from of [{ ip: g.ip }, { ip: '10.7.0.2', device: 'dev-banned-2' }]) {
        const again = await guestFrom(srv.url, from);
        assert.equal(again.status, 403, JSON.stringify(from));
        assert.equal(again.body.error.code, 'banned');
      }
      // Someone else is untouched.
      assert.equal((await guestFrom(srv.url)).status, 201);

      const audit = await admin(srv.url, 'GET', '/admin/audit?limit=5');
      const entry = audit.body.data.entries.find((e) => e.action === 'ban' && e.target === g.data.user.id);
      assert.equal(entry.actor, 'admin');
      assert.equal(entry.detail.reason, 'spam');

      const lifted = await admin(srv.url, 'DELETE', `/admin/users/${g.data.user.id}/ban`);
      assert.deepEqual(lifted.body.data, { userId: g.data.user.id, lifted: true });
      assert.equal((await admin(srv.url, 'DELETE', `/admin/users/${g.data.user.id}/ban`)).body.data.lifted, false);
      const back = await api(srv.url, 'POST', '/api/auth/refresh', { body: { refreshToken: g.data.refreshToken }, headers: { 'x-real-ip': g.ip } });
      assert.equal(back.status, 200);
      const again = await connect(srv.url, back.body.data.token, { extraHeaders: { 'x-real-ip': g.ip } });
      assert.equal(again.info.userId, g.data.user.id);
      again.socket.close();
    });

    test('bans escalate: without a duration, BAN_DURATION, then 4x the last, up to BAN_MAX', async () => {
      const g = await guestFrom(srv.url);
      const id = g.data.user.id;
      const seconds = [];
      for (let i = 0; i < 3; i += 1) {
        const b = await admin(srv.url, 'POST', `/admin/users/${id}/ban`, { reason: 'again' });
        assert.equal(b.status, 200);
        seconds.push(b.body.data.durationSeconds);
        assert.equal(b.body.data.count, i + 1);
        await admin(srv.url, 'DELETE', `/admin/users/${id}/ban`);
      }
      assert.deepEqual(seconds, [3600, 4 * 3600, 10 * 3600]);
    });

    test('admin requests are validated: unknown users 404, bad durations 400, kick disconnects', async () => {
      const missing = await admin(srv.url, 'POST', '/admin/users/000000000000000000000000/ban', { duration: '1h' });
      assert.equal(missing.status, 404);
      const g = await guestFrom(srv.url);
      for (const duration of ['soon', -5, 0, {}]) {
        const r = await admin(srv.url, 'POST', `/admin/users/${g.data.user.id}/ban`, { duration });
        assert.equal(r.status, 400, JSON.stringify(duration));
        assert.equal(r.body.error.field, 'duration');
      }
      const { socket } = await connectFrom(srv.url, g);
      const gone = once(socket, 'disconnect');
      assert.equal((await admin(srv.url, 'POST', `/admin/users/${g.data.user.id}/kick`)).status, 200);
      assert.equal(reasonOf(await gone), 'io server disconnect');
      // A kick is not a ban.
      const back = await connectFrom(srv.url, g);
      back.socket.close();
    });

    /** Two users from addresses of their own, connected and matched. */
    async function pairFrom(base) {
      const a = await guestFrom(base);
      const b = await guestFrom(base);
      a.socket = (await connectFrom(base, a)).socket;
      b.socket = (await connectFrom(base, b)).socket;
      assert.equal((await request(a.socket, 'user:match', { mode: 'text' })).data.status, 'waiting');
      assert.equal((await request(b.socket, 'user:match', { mode: 'text' })).data.status, 'matched');
      return { a, b };
    }

    test('user:report: the current or a recent partner, once a day, with the chat\'s last messages as evidence; moderators resolve', async () => {
      const { a, b } = await pairFrom(srv.url);
      const c = await guestFrom(srv.url);
      for (const [who, text] of [[a, 'hello'], [b, 'buy my stuff'], [a, 'no thanks']]) {
        assert.equal((await request(who.socket, 'chat:message', { content: text })).success, true);
      }
      const r = await request(a.socket, 'user:report', { userId: b.data.user.id, reason: 'spam', details: 'kept selling' });
      assert.equal(r.success, true, JSON.stringify(r));
      const reportId = r.data.reportId;
      assert.match(reportId, /^[0-9a-f]{24}$/);
      const again = await request(a.socket, 'user:report', { userId: b.data.user.id, reason: 'hate' });
      assert.equal(again.error.code, 'already_reported');
      const stranger = await request(a.socket, 'user:report', { userId: c.data.user.id, reason: 'spam' });
      assert.equal(stranger.error.code, 'not_reportable');
      const self = await request(a.socket, 'user:report', { userId: a.data.user.id, reason: 'spam' });
      assert.equal(self.error.code, 'not_reportable');
      for (const bad of [undefined, null, {}, { userId: b.data.user.id }, { userId: b.data.user.id, reason: 'rude' },
        { userId: b.data.user.id, reason: 'spam', details: 5 }, { userId: b.data.user.id, reason: 'spam', details: 'x'.repeat(1001) }]) {
        const res = bad === undefined
          ? await a.socket.timeout(5000).emitWithAck('user:report')
          : await request(a.socket, 'user:report', bad);
        assert.equal(res.error.code, 'invalid_payload', JSON.stringify(bad));
      }
      // After the chat, b may still report a (a recent partner).
      assert.equal((await request(a.socket, 'user:end')).success, true);
      const back = await request(b.socket, 'user:report', { userId: a.data.user.id, reason: 'harassment' });
      assert.equal(back.success, true, JSON.stringify(back));

      const list = await admin(srv.url, 'GET', '/admin/reports?status=open&limit=10');
      const mine = list.body.data.reports.find((x) => x.id === reportId);
      assert.equal(mine.reporter, a.data.user.id);
      assert.equal(mine.target, b.data.user.id);
      assert.equal(mine.reason, 'spam');
      assert.equal(mine.details, 'kept selling');
      assert.deepEqual(mine.evidence.map((e) => [e.from, e.text]), [
        [a.data.user.id, 'hello'], [b.data.user.id, 'buy my stuff'], [a.data.user.id, 'no thanks'],
      ]);
      const warned = once(b.socket, 'moderation:warning');
      const res = await admin(srv.url, 'POST', `/admin/reports/${reportId}/resolve`, { action: 'warn' });
      assert.equal(res.status, 200);
      assert.equal(res.body.data.report.status, 'resolved');
      assert.deepEqual(await warned, { reason: 'spam' });
      assert.equal((await admin(srv.url, 'POST', `/admin/reports/${reportId}/resolve`, { action: 'dismiss' })).status, 404);
      assert.equal((await admin(srv.url, 'POST', `/admin/reports/${back.data.reportId}/resolve`, { action: 'nuke' })).status, 400);
      assert.equal((await admin(srv.url, 'POST', `/admin/reports/${back.data.reportId}/resolve`, { action: 'dismiss' })).status, 200);
      const resolved = await admin(srv.url, 'GET', '/admin/reports?status=resolved&limit=500');
      assert.ok(resolved.body.data.reports.some((x) => x.id === reportId && x.resolution === 'warn'));
      assert.equal((await admin(srv.url, 'GET', '/admin/reports?status=maybe')).status, 400);
      a.socket.close(); b.socket.close();
    });

    test('reports from 3 distinct users within the window ban the reported user automatically', async () => {
      const t = await guestFrom(srv.url);
      t.socket = (await connectFrom(srv.url, t)).socket;
      const banned = once(t.socket, 'moderation:banned', 10000);
      for (let i = 0; i < 3; i += 1) {
        const u = await guestFrom(srv.url);
        u.socket = (await connectFrom(srv.url, u)).socket;
        assert.equal((await request(t.socket, 'user:match', { mode: 'text' })).data.status, 'waiting');
        assert.equal((await request(u.socket, 'user:match', { mode: 'text' })).data.status, 'matched');
        const r = await request(u.socket, 'user:report', { userId: t.data.user.id, reason: 'harassment' });
        assert.equal(r.success, true, JSON.stringify(r));
        if (i < 2) assert.equal((await request(u.socket, 'user:end')).success, true);
        u.socket.close();
      }
      const n = await banned;
      assert.equal(n.reason, 'reported by several users');
      const audit = await admin(srv.url, 'GET', '/admin/audit?limit=50');
      const entry = audit.body.data.entries.find((e) => e.action === 'ban' && e.target === t.data.user.id);
      assert.equal(entry.actor, 'system');
      assert.equal(entry.detail.durationS, 3600, 'BAN_DURATION');
    });

    test('filters mask or refuse, spam is refused, profane usernames are not allowed', async () => {
      const f = await T.start({ TRUST_PROXY: 'true', FILTER_PII: 'mask', FILTER_PROFANITY: 'block', SPAM_LINKS_PER_MINUTE: '3' });
      try {
        const bad = await api(f.url, 'POST', '/api/auth/guest', { body: { username: 'fuckface' } });
        assert.equal(bad.status, 400);
        assert.equal(bad.body.error.code, 'username_not_allowed');
        assert.equal(bad.body.error.field, 'username');
        assert.equal((await api(f.url, 'POST', '/api/auth/guest', { body: { username: 'scunthorpe_fan' } })).status, 201);
        const { a, b } = await pairFrom(f.url);
        const got = once(b.socket, 'chat:message');
        const masked = await request(a.socket, 'chat:message', { content: 'mail me at jo@example.com or call (555) 555-5555' });
        assert.equal(masked.data.content, 'mail me at *** or call ***');
        assert.equal((await got).content, 'mail me at *** or call ***');
        for (const ok of ['Scunthorpe at 10:30 costs $19.99', 'class starts 2026-11-23']) {
          assert.equal((await request(a.socket, 'chat:message', { content: ok })).data.content, ok);
        }
        assert.equal((await request(a.socket, 'chat:message', { content: 'f u c k you' })).error.code, 'profanity_blocked');
        assert.equal((await request(a.socket, 'chat:message', { content: 'z'.repeat(25) })).error.code, 'spam');
        assert.equal((await request(a.socket, 'chat:message', { content: 'buy now' })).success, true);
        assert.equal((await request(a.socket, 'chat:message', { content: 'buy now' })).success, true);
        assert.equal((await request(a.socket, 'chat:message', { content: 'buy now' })).error.code, 'spam');
        assert.equal((await request(a.socket, 'chat:message', { content: 'see shop.com and deals.com' })).success, true);
        assert.equal((await request(a.socket, 'chat:message', { content: 'and more.com' })).error.code, 'spam', 'over 3 links a minute (the address counted too)');
        // Three messages refused as spam: 5 points each off the sender's standing.
        const standingOf = async (u) => (await api(f.url, 'GET', '/api/users/me/standing', { token: u.data.token })).body.data;
        assert.equal((await standingOf(a)).score, 85);
        assert.equal((await standingOf(b)).score, 100);
        const rep = await request(b.socket, 'user:report', { userId: a.data.user.id, reason: 'spam', details: 'he said fuck' });
        assert.equal(rep.error.code, 'profanity_blocked');
        a.socket.close(); b.socket.close();
      } finally {
        await f.stop();
      }
    });

    test('FILTER_PII=block refuses a message carrying an address or a number; FILTER_PII_LINKS adds links and handles', async () => {
      const f = await T.start({ TRUST_PROXY: 'true', FILTER_PII: 'block', FILTER_PII_LINKS: 'true' });
      try {
        const { a, b } = await pairFrom(f.url);
        for (const text of ['jo at gmail dot com', 'ring +44 20 7946 0958', 'see https://example.com/x', 'insta: jo.doe']) {
          assert.equal((await request(a.socket, 'chat:message', { content: text })).error.code, 'pii_blocked', text);
        }
        assert.equal((await request(a.socket, 'chat:message', { content: 'see you at 10:30' })).success, true);
        const rep = await request(b.socket, 'user:report', { userId: a.data.user.id, reason: 'other', details: 'mail me at x@y.com' });
        assert.equal(rep.error.code, 'pii_blocked');
        a.socket.close(); b.socket.close();
      } finally {
        await f.stop();
      }
    });

    test('DAILY_MATCH_LIMIT counts per account and per device; past it daily_limit with resetAt', async () => {
      const d = await T.start({ TRUST_PROXY: 'true', DAILY_MATCH_LIMIT: '2' });
      try {
        const y = await guestFrom(d.url);
        y.socket = (await connectFrom(d.url, y, { auth: { token: y.data.token, deviceId: 'shared-device' } })).socket;
        for (let i = 0; i < 2; i += 1) {
          assert.equal((await request(y.socket, 'user:match', { mode: 'text' })).data.status, 'waiting');
          assert.equal((await request(y.socket, 'user:cancel')).success, true);
        }
        const over = await request(y.socket, 'user:match', { mode: 'text' });
        assert.equal(over.error.code, 'daily_limit');
        const resetIn = Date.parse(over.error.resetAt) - Date.now();
        assert.ok(resetIn > 23 * 3600e3 && resetIn <= 24 * 3600e3, over.error.resetAt);
        // Another account on the same device shares the device's budget.
        const z = await guestFrom(d.url);
        z.socket = (await connectFrom(d.url, z, { auth: { token: z.data.token, deviceId: 'shared-device' } })).socket;
        assert.equal((await request(z.socket, 'user:match', { mode: 'text' })).error.code, 'daily_limit');
        // Elsewhere, nothing changes.
        const w = await guestFrom(d.url);
        w.socket = (await connectFrom(d.url, w)).socket;
        assert.equal((await request(w.socket, 'user:match', { mode: 'text' })).data.status, 'waiting');
        for (const u of [y, z, w]) u.socket.close();
      } finally {
        await d.stop();
      }
    });

    test('reputation: reports and quick skips cost points; restricted users are not matched with RESTRICTED_MATCHING=none', async () => {
      const r = await T.start({ TRUST_PROXY: 'true', REPORT_THRESHOLD: '0', RESTRICTED_MATCHING: 'none', MATCH_FALLBACK: '200ms' });
      try {
        const standing = async (u) => (await api(r.url, 'GET', '/api/users/me/standing', { token: u.data.token })).body.data;
        const t = await guestFrom(r.url);
        t.socket = (await connectFrom(r.url, t)).socket;
        assert.deepEqual(await standing(t), { score: 100, restricted: false, bannedUntil: null, openReports: 0 });
        for (let i = 0; i < 4; i += 1) {
          const u = await guestFrom(r.url);
          u.socket = (await connectFrom(r.url, u)).socket;
          assert.equal((await request(t.socket, 'user:match', { mode: 'text' })).data.status, 'waiting');
          assert.equal((await request(u.socket, 'user:match', { mode: 'text' })).data.status, 'matched');
          assert.equal((await request(u.socket, 'user:report', { userId: t.data.user.id, reason: 'other' })).success, true);
          if (i === 0) {
            // The reporter skips within 10 s of being matched: 3 points of theirs.
            assert.equal((await request(u.socket, 'user:skip', { mode: 'text' })).success, true);
            assert.equal((await standing(u)).score, 97);
            assert.equal((await request(u.socket, 'user:cancel')).success, true);
          } else {
            assert.equal((await request(u.socket, 'user:end')).success, true);
          }
          u.socket.close();
        }
        const s = await standing(t);
        assert.deepEqual(s, { score: 40, restricted: true, bannedUntil: null, openReports: 4 });
        const m = await request(t.socket, 'user:match', { mode: 'text' });
        assert.equal(m.error.code, 'restricted');
        assert.equal((await api(r.url, 'GET', '/api/users/me/standing')).status, 401);
        t.socket.close();
      } finally {
        await r.stop();
      }
    });

    test('RESTRICTED_MATCHING=restricted: restricted users are matched with each other, never with others', async () => {
      const r = await T.start({ TRUST_PROXY: 'true', REPORT_THRESHOLD: '0', MATCH_FALLBACK: '200ms' });
      try {
        const standing = async (u) => (await api(r.url, 'GET', '/api/users/me/standing', { token: u.data.token })).body.data;
        const online = async () => {
          const u = await guestFrom(r.url);
          u.socket = (await connectFrom(r.url, u)).socket;
          return u;
        };
        const [t1, t2] = [await online(), await online()];
        // Four reporters each meet t1 and then t2 and report both: more
        // than 3 open reports restricts them.
        for (let i = 0; i < 4; i += 1) {
          const u = await online();
          for (const t of [t1, t2]) {
            assert.equal((await request(t.socket, 'user:match', { mode: 'text' })).data.status, 'waiting');
            const met = once(u.socket, 'user:matched');
            assert.equal((await request(u.socket, 'user:match', { mode: 'text' })).data.status, 'matched');
            assert.equal((await met).matchedUser.id, t.data.user.id);
            assert.equal((await request(u.socket, 'user:report', { userId: t.data.user.id, reason: 'other' })).success, true);
            assert.equal((await request(u.socket, 'user:end')).success, true);
          }
          u.socket.close();
        }
        for (const t of [t1, t2]) assert.equal((await standing(t)).restricted, true);
        // An ordinary user waits beside a restricted one instead of meeting them.
        const w = await online();
        assert.equal((await request(t1.socket, 'user:match', { mode: 'text' })).data.status, 'waiting');
        assert.equal((await request(w.socket, 'user:match', { mode: 'text' })).data.status, 'waiting');
        // The other restricted user is matched with the first, not with w.
        const met = once(t2.socket, 'user:matched');
        assert.equal((await request(t2.socket, 'user:match', { mode: 'text' })).data.status, 'matched');
        assert.equal((await met).matchedUser.id, t1.data.user.id);
        for (const u of [t1, t2, w]) u.socket.close();
      } finally {
        await r.stop();
      }
    });
  });
}

const skip = process.env.TANDEM_SKIP_CLUSTER ? 'TANDEM_SKIP_CLUSTER set' : false;
suite('one node', single);
suite('three-node cluster (users and moderator calls spread over the nodes)', cluster, { skip });


test('cluster: reported on node A, banned through node B while connected to A; lifted on B, back on A', { skip }, async () => {
  const c = await startCluster(2, { ADMIN_KEY });
  try {
    const [a, b] = c.nodes;
    const g = await guestFrom(a.url);
    const { socket } = await connectFrom(a.url, g);
    const reporter = await guestFrom(b.url);
    reporter.socket = (await connectFrom(b.url, reporter)).socket;
    assert.equal((await request(socket, 'user:match', { mode: 'text' })).data.status, 'waiting');
    assert.equal((await request(reporter.socket, 'user:match', { mode: 'text' })).data.status, 'matched');
    assert.equal((await request(socket, 'chat:message', { content: 'rude words' })).success, true);
    const r = await request(reporter.socket, 'user:report', { userId: g.data.user.id, reason: 'harassment' });
    assert.equal(r.success, true, JSON.stringify(r));
    const listed = await admin(a.url, 'GET', '/admin/reports?status=open');
    const report = listed.body.data.reports.find((x) => x.id === r.data.reportId);
    assert.deepEqual(report.evidence.map((e) => e.text), ['rude words'], 'evidence kept across nodes');
    const notice = once(socket, 'moderation:banned', 10000);
    const gone = once(socket, 'disconnect', 10000);
    const ban = await admin(b.url, 'POST', `/admin/reports/${r.data.reportId}/resolve`, { action: 'ban', duration: '1h' });
    assert.equal(ban.status, 200);
    assert.ok(ban.body.data.bannedUntil);
    reporter.socket.close();
    assert.equal((await notice).reason, 'harassment');
    assert.equal(reasonOf(await gone), 'io server disconnect');
    await assert.rejects(connectFrom(a.url, g), (e) => e.message === 'banned');
    assert.equal((await guestFrom(a.url, { ip: g.ip })).status, 403);
    assert.equal((await admin(b.url, 'DELETE', `/admin/users/${g.data.user.id}/ban`)).body.data.lifted, true);
    const back = await connectFrom(a.url, g);
    back.socket.close();
  } finally {
    await c.stop();
  }
});
