// coturn's test tools (Debian package coturn): turnutils_peer echoes UDP,
// turnutils_uclient drives a TURN server with REST API credentials.
import { spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { freePort } from './mongo.mjs';

/** Starts turnutils_peer on a free loopback port and waits until it echoes. */
export async function startPeer(timeoutMs = 10000) {
  const port = await freePort();
  const proc = spawn('turnutils_peer', ['-L', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' });
  const sock = dgram.createSocket('udp4');
  const deadline = Date.now() + timeoutMs;
  try {
    for (;;) {
      const echoed = await new Promise((resolve) => {
        const t = setTimeout(() => { sock.removeAllListeners('message'); resolve(false); }, 100); // poll interval
        sock.once('message', () => { clearTimeout(t); resolve(true); });
        sock.send('ping', port, '127.0.0.1');
      });
      if (echoed) break;
      if (Date.now() > deadline || proc.exitCode !== null) throw new Error('turnutils_peer did not start');
    }
  } finally {
    sock.close();
  }
  return { port, stop: () => proc.kill('SIGKILL') };
}

/** Runs turnutils_uclient to completion; returns {code, out, sent, received, lost}. */
export function uclient({ turnPort, peerPort, secret, user = 'bob', tcp = false, messages = 50, clients = 2, extra = [], timeoutMs = 60000 }) {
  const args = ['-e', '127.0.0.1', '-r', String(peerPort), '-W', secret, '-u', user,
    '-n', String(messages), '-m', String(clients), '-l', '170', '-p', String(turnPort), ...extra];
  if (tcp) args.unshift('-t');
  args.push('127.0.0.1');
  return new Promise((resolve, reject) => {
    const proc = spawn('turnutils_uclient', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    proc.stdout.on('data', (d) => { out += d; });
    proc.stderr.on('data', (d) => { out += d; });
    const timer = setTimeout(() => { proc.kill('SIGKILL'); reject(new Error(`uclient hung:\n${out.slice(-2000)}`)); }, timeoutMs);
    proc.once('exit', (code) => {
      clearTimeout(timer);
      const totals = out.match(/tot_send_msgs=(\d+), tot_recv_msgs=(\d+)\s*$/m);
      const lost = out.match(/Total lost packets (\d+)/);
      const rtt = out.match(/Average round trip delay ([\d.]+) ms/);
      resolve({
        code,
        out,
        sent: totals ? Number(totals[1]) : null,
        received: totals ? Number(totals[2]) : null,
        lost: lost ? Number(lost[1]) : null,
        rttMs: rtt ? Number(rtt[1]) : null,
      });
    });
  });
}
