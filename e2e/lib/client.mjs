// HTTP and Socket.IO helpers over the real clients.
import { createHmac } from 'node:crypto';
import { io } from 'socket.io-client';

let counter = 0;
/** A unique, valid username and email for this test process. */
export function uniqueUser(prefix = 'u') {
  counter += 1;
  const tag = `${prefix}${process.pid.toString(36)}${counter}${Math.random().toString(36).slice(2, 6)}`.slice(0, 30);
  return { username: tag, email: `${tag}@example.com`, password: 'Password123' };
}

/** fetch + JSON; returns {status, headers, body}. */
export async function api(base, method, path, { body, token, headers = {}, raw } = {}) {
  const h = { ...headers };
  if (token) h.authorization = `Bearer ${token}`;
  let payload;
  if (raw !== undefined) payload = raw;
  else if (body !== undefined) { h['content-type'] = 'application/json'; payload = JSON.stringify(body); }
  const res = await fetch(base + path, { method, headers: h, body: payload });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status, headers: res.headers, body: json, text };
}

export async function register(base, user = uniqueUser()) {
  const res = await api(base, 'POST', '/api/auth/register', { body: user });
  if (res.status !== 201) throw new Error(`register failed: ${res.status} ${res.text}`);
  return { ...user, ...res.body.data };
}

export async function guest(base, username) {
  const res = await api(base, 'POST', '/api/auth/guest', { body: username ? { username } : {} });
  if (res.status !== 201) throw new Error(`guest failed: ${res.status} ${res.text}`);
  return res.body.data;
}

/**
 * Resolves with the first `event` on `emitter`, or rejects after `ms`. The
 * promise has `cancel()` to stop waiting (and free the timer) early.
 */
export function once(emitter, event, ms = 5000) {
  let cancel;
  const p = new Promise((resolve, reject) => {
    const handler = (...args) => { clearTimeout(timer); resolve(args.length > 1 ? args : args[0]); };
    const timer = setTimeout(() => {
      emitter.off(event, handler);
      reject(new Error(`timed out after ${ms} ms waiting for '${event}'`));
    }, ms);
    cancel = () => { clearTimeout(timer); emitter.off(event, handler); };
    emitter.once(event, handler);
  });
  p.cancel = cancel;
  return p;
}

/** Connects with a token and waits for `connection:established`. */
export async function connect(base, token, opts = {}) {
  const socket = io(base, { auth: token === undefined ? undefined : { token }, reconnection: false, forceNew: true, ...opts });
  const established = once(socket, 'connection:established', 8000);
  const failed = once(socket, 'connect_error', 8000);
  try {
    const info = await Promise.race([established, failed.then((e) => { throw e; })]);
    return { socket, info };
  } catch (e) {
    socket.close(); // a refused handshake leaves the Engine.IO connection open
    throw e;
  } finally {
    established.cancel();
    failed.cancel();
    established.catch(() => {});
    failed.catch(() => {});
  }
}

/** Emits with an ack and resolves with the ack payload. */
export function request(socket, event, data, ms = 5000) {
  return socket.timeout(ms).emitWithAck(event, data);
}

/** An HS256 JWT signed by the test, for expired / forged token cases. */
export function signJwt(payload, secret, header = { alg: 'HS256', typ: 'JWT' }) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const data = `${b64(header)}.${b64(payload)}`;
  return `${data}.${createHmac('sha256', secret).update(data).digest('base64url')}`;
}

/** Polls `fn` until it returns a truthy value, or throws after `ms`. */
export async function eventually(fn, ms = 5000, what = 'condition') {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    last = await fn();
    if (last) return last;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25)); // poll interval
  }
}

/** Two guests, connected and matched with each other. */
export async function matchedPair(base, { prefsA = {}, prefsB = {} } = {}) {
  const ga = await guest(base);
  const gb = await guest(base);
  const { socket: a } = await connect(base, ga.token);
  const { socket: b } = await connect(base, gb.token);
  const ma = once(a, 'user:matched');
  const mb = once(b, 'user:matched');
  const first = await request(a, 'user:match', prefsA);
  if (!first.success || first.data.status !== 'waiting') throw new Error(`first match: ${JSON.stringify(first)}`);
  const second = await request(b, 'user:match', prefsB);
  if (!second.success || second.data.status !== 'matched') throw new Error(`second match: ${JSON.stringify(second)}`);
  const [ea, eb] = await Promise.all([ma, mb]);
  return { a, b, ga, gb, ea, eb, roomId: ea.roomId };
}


/** Uploads `bytes` as multipart `file` (with `kind`), returns {status, body, headers}. */
export async function upload(base, token, bytes, { name = 'file.bin', type = 'application/octet-stream', kind } = {}) {
  const form = new FormData();
  if (kind) form.append('kind', kind);
  form.append('file', new Blob([bytes], { type }), name);
  const res = await fetch(`${base}/api/files`, { method: 'POST', headers: { authorization: `Bearer ${token}` }, body: form });
  const text = await res.text();
  let body = null;
  try { body = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status, body, headers: res.headers, text };
}
