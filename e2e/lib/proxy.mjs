// A loopback TCP proxy that can "cut the cable": frozen, it forwards nothing
// either way but keeps every connection open (a half-open connection as a
// client sees it when a network path dies), and refuses new ones.
import net from 'node:net';

export async function startProxy(targetPort) {
  const conns = new Set();
  let frozen = false;
  const server = net.createServer((client) => {
    if (frozen) { client.destroy(); return; }
    const upstream = net.connect(targetPort, '127.0.0.1');
    const pair = { client, upstream, frozen: false };
    conns.add(pair);
    client.on('data', (d) => { if (!pair.frozen) upstream.write(d); });
    upstream.on('data', (d) => { if (!pair.frozen) client.write(d); });
    const end = () => { conns.delete(pair); client.destroy(); upstream.destroy(); };
    client.on('close', end); upstream.on('close', end);
    client.on('error', end); upstream.on('error', end);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: server.address().port,
    url: `http://127.0.0.1:${server.address().port}`,
    /** Stops forwarding on every open connection; refuses new ones. */
    freeze() { frozen = true; for (const p of conns) p.frozen = true; },
    /** Stops reading what the server sends, so it backs up into the server's socket. */
    hold() { for (const p of conns) p.upstream.pause(); },
    /** Reads (and forwards) again after hold(). */
    release() { for (const p of conns) p.upstream.resume(); },
    /** Drops the frozen connections and lets new ones through again. */
    thaw() {
      frozen = false;
      for (const p of [...conns]) if (p.frozen) { p.client.destroy(); p.upstream.destroy(); }
    },
    close() { for (const p of conns) { p.client.destroy(); p.upstream.destroy(); } server.close(); },
  };
}
