// Starts a MongoDB-speaking server (SecantusDB, installed by scripts/test)
// on a free loopback port and waits until it accepts connections.
import { spawn } from 'node:child_process';
import net from 'node:net';

export const MONGOD = process.env.TANDEM_TEST_MONGOD;

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function accepts(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

export async function startMongo(timeoutMs = 30000) {
  if (!MONGOD) throw new Error('TANDEM_TEST_MONGOD is not set (scripts/test sets it)');
  const port = await freePort();
  const proc = spawn(MONGOD, ['--host', '127.0.0.1', '--port', String(port), '--storage-path', ':memory:'],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout.on('data', (d) => { out += d; });
  proc.stderr.on('data', (d) => { out += d; });
  const exited = new Promise((resolve) => proc.once('exit', resolve));
  const deadline = Date.now() + timeoutMs;
  while (!(await accepts(port))) {
    if (proc.exitCode !== null) throw new Error(`MongoDB server exited:\n${out}`);
    if (Date.now() > deadline) { proc.kill('SIGKILL'); throw new Error(`MongoDB server not up in ${timeoutMs} ms:\n${out}`); }
    await new Promise((r) => setTimeout(r, 50)); // poll interval
  }
  return {
    uri: `mongodb://127.0.0.1:${port}/tandem_e2e`,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
      await exited;
    },
  };
}
