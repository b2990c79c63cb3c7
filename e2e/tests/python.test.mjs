// python-socketio, a client nobody here wrote, calling every event the way
// Python apps do (e2e/python/events.py), over long-polling and WebSocket.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { startServer, ROOT } from '../lib/server.mjs';

const PYTHON = process.env.TANDEM_TEST_PYTHON || path.join(ROOT, '.tools', 'py-venv', 'bin', 'python');

let srv;
before(async () => { srv = await startServer({ SOCKET_EVENT_LIMIT: '100000' }); });
after(async () => { await srv?.stop(); });

test('python-socketio: events with no argument, None and {}, polling and WebSocket', async () => {
  const { code, out } = await new Promise((resolve, reject) => {
    const p = spawn(PYTHON, [path.join(ROOT, 'e2e', 'python', 'events.py'), srv.url], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { out += d; });
    const timer = setTimeout(() => { p.kill('SIGKILL'); reject(new Error(`python client hung:\n${out}`)); }, 120000);
    p.on('error', reject);
    p.on('exit', (c) => { clearTimeout(timer); resolve({ code: c, out }); });
  });
  assert.equal(code, 0, out);
});
