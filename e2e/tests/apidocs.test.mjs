// The API descriptions: OpenAPI 3.1 generated from the handlers' own
// annotations (linted by Redocly's recommended rules), every documented
// operation served by the router, and the AsyncAPI document of the
// Socket.IO events (validated by @asyncapi/parser) listing every event of
// docs/API.md.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Parser } from '@asyncapi/parser';
import { startServer, ROOT } from '../lib/server.mjs';

let srv;
before(async () => { srv = await startServer({ ADMIN_KEY: 'docs-admin-key-0123456789' }); });
after(async () => { await srv?.stop(); });

const get = async (p) => (await fetch(`${srv.url}${p}`)).json();

test('the OpenAPI document passes `redocly lint` (recommended rules)', async () => {
  const doc = await get('/api/openapi.json');
  assert.equal(doc.openapi, '3.1.0');
  const dir = mkdtempSync(path.join(tmpdir(), 'openapi-'));
  const file = path.join(dir, 'openapi.json');
  writeFileSync(file, JSON.stringify(doc));
  const bin = path.join(ROOT, 'e2e', 'node_modules', '.bin', 'redocly');
  try {
    const { stdout, stderr } = await promisify(execFile)(bin, ['lint', file, '--format=summary'], { env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' } })
      .catch((e) => assert.fail(`redocly lint failed:\n${e.stdout}\n${e.stderr}`));
    assert.match(stdout + stderr, /valid/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('every documented operation is served (not the fallback), with its method', async () => {
  const doc = await get('/api/openapi.json');
  const ops = Object.entries(doc.paths).flatMap(([p, item]) => Object.keys(item).map((m) => [m, p]));
  assert.ok(ops.length >= 27, `${ops.length} operations`);
  for (const [method, p] of ops) {
    const url = p.replace(/\{[^}]+\}/g, '000000000000000000000000');
    const res = await fetch(`${srv.url}${url}`, { method: method.toUpperCase(), headers: { 'content-type': 'application/json' }, body: method === 'get' ? undefined : '{}' });
    const body = await res.text();
    assert.ok(!(res.status === 404 && body.includes('no such route')), `${method} ${p} fell through to the fallback`);
    assert.notEqual(res.status, 405, `${method} ${p}: method not allowed`);
  }
  // And an undocumented one does fall through.
  const res = await fetch(`${srv.url}/api/not-a-route`);
  assert.equal(res.status, 404);
  assert.match(await res.text(), /no such route/);
});

/** Every `name:like-this` in backticks in docs/API.md's Socket.IO part. */
function documentedEvents() {
  const api = readFileSync(path.join(ROOT, 'docs', 'API.md'), 'utf8');
  const part = api.slice(api.indexOf('## Socket.IO'));
  const names = new Set();
  for (const m of part.matchAll(/`([a-z]+:[a-z-]+)/g)) names.add(m[1]);
  return names;
}

test('the AsyncAPI document validates and lists every event of docs/API.md', async () => {
  const raw = await (await fetch(`${srv.url}/api/asyncapi.json`)).text();
  const { document, diagnostics } = await new Parser().parse(raw);
  assert.ok(document, JSON.stringify(diagnostics));
  assert.deepEqual(diagnostics.filter((d) => d.severity <= 1).map((d) => d.message), []);
  const names = new Set(document.allMessages().all().map((m) => m.name()));
  const documented = documentedEvents();
  assert.ok(documented.size >= 25, [...documented].join(' '));
  for (const ev of documented) assert.ok(names.has(ev), `${ev} is in docs/API.md but not in the AsyncAPI document`);
  assert.ok(names.has('error'));
});

test('/docs is a page of ours that renders both documents', async () => {
  const res = await fetch(`${srv.url}/docs`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /text\/html/);
  const html = await res.text();
  assert.match(html, /<script src="\/docs.js"><\/script>/);
  assert.doesNotMatch(html, /https?:\/\//, 'no CDN');
  assert.equal((await fetch(`${srv.url}/docs.js`)).status, 200);
});
