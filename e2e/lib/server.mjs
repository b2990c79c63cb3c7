// Starts the real tandem binary on 127.0.0.1 with a free port and waits for
// its "listening" log line (never a fixed sleep).
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.resolve(here, '..', '..');
export const BIN = process.env.TANDEM_BIN || path.join(ROOT, 'target', 'debug', 'tandem');
export const JWT_SECRET = 'e2e-test-secret-0123456789abcdef-0123456789';

/** Environment shared by every test server; tests override what they probe. */
export function baseEnv(dir) {
  return {
    HOST: '127.0.0.1',
    PORT: '0',
    TANDEM_ENV: 'test',
    DATA_DIR: path.join(dir, 'data'),
    LOG_DIR: path.join(dir, 'logs'),
    UPLOAD_DIR: path.join(dir, 'uploads'),
    LOG_LEVEL: 'info',
    BCRYPT_COST: '4',
    JWT_SECRET,
    RATE_LIMIT_AUTH_MAX: '100000',
    RATE_LIMIT_API_MAX: '100000',
    SHUTDOWN_GRACE: '3s',
    // Tests that need the relay turn it on with TURN_PORT=0.
    TURN_MODE: 'off',
    // Group-call media on a free port (3479 may be taken).
    SFU_UDP_PORT: '0',
  };
}

/**
 * Starts a server. `env` entries override the base; a value of null removes it.
 * Returns {url, port, dir, proc, output(), stop()}.
 */
export async function startServer(env = {}, { dir, timeoutMs = 20000, wrap = [] } = {}) {
  dir = dir || mkdtempSync(path.join(tmpdir(), 'tandem-e2e-'));
  const merged = { ...process.env, ...baseEnv(dir), ...env };
  for (const [k, v] of Object.entries(merged)) if (v === null) delete merged[k];
  delete merged.RUST_LOG;
  // `wrap`: a command that execs the binary (e.g. prlimit), so the pid is the server's.
  const proc = wrap.length
    ? spawn(wrap[0], [...wrap.slice(1), BIN], { env: merged, cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] })
    : spawn(BIN, [], { env: merged, cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout.on('data', (d) => { out += d; });
  proc.stderr.on('data', (d) => { out += d; });
  const addr = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start in ${timeoutMs} ms:\n${out}`)), timeoutMs);
    const onData = () => {
      const m = out.match(/(?<!metrics )listening addr=(\S+)/);
      if (m) { clearTimeout(timer); proc.stdout.off('data', onData); resolve(m[1]); }
    };
    proc.stdout.on('data', onData);
    proc.once('exit', (code) => { clearTimeout(timer); reject(new Error(`server exited with ${code}:\n${out}`)); });
  });
  proc.removeAllListeners('exit');
  let stopping = false;
  const exited = new Promise((resolve) => proc.once('exit', (code, signal) => {
    if (!stopping) console.error(`tandem exited unexpectedly (code ${code}, signal ${signal}); its output:\n${out.slice(-4000)}`);
    resolve({ code, signal });
  }));
  const url = `http://${addr}`;
  const turn = out.match(/turn listening udp=(\S+)/);
  const metrics = out.match(/metrics listening addr=(\S+)/);
  return {
    metricsUrl: metrics ? `http://${metrics[1]}` : null,
    turnPort: turn ? Number(turn[1].split(':').pop()) : null,
    url,
    port: Number(addr.split(':').pop()),
    dir,
    proc,
    exited,
    output: () => out,
    async stop(signal = 'SIGTERM', timeoutMs = 10000) {
      if (proc.exitCode !== null || proc.signalCode !== null) return exited;
      stopping = true;
      proc.kill(signal);
      const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
      const res = await exited;
      clearTimeout(timer);
      return res;
    },
  };
}

/** Runs the binary to completion (for configuration errors). */
export function runToExit(env = {}, args = [], timeoutMs = 15000, cwd = undefined) {
  const dir = cwd || mkdtempSync(path.join(tmpdir(), 'tandem-e2e-'));
  const merged = { ...process.env, ...baseEnv(dir), ...env };
  for (const [k, v] of Object.entries(merged)) if (v === null) delete merged[k];
  return new Promise((resolve, reject) => {
    const proc = spawn(BIN, args, { env: merged, cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (d) => { stdout += d; });
    proc.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => { proc.kill('SIGKILL'); reject(new Error('binary did not exit')); }, timeoutMs);
    proc.once('exit', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }); });
  });
}
