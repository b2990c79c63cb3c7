// A small Socket.IO v5 client over WebSocket (Engine.IO v4), written for
// Tandem's page so that it needs no build step. It speaks the default
// namespace, JSON payloads and acks, and reconnects with backoff.
//
// Like socket.io-client it notices a dead connection: the server pings every
// `pingInterval` ms (announced in the Engine.IO handshake); when no ping came
// for `pingInterval + pingTimeout` ms the connection is treated as lost
// (a half-open TCP connection would otherwise look connected forever).
// Emits made while disconnected are buffered (up to MAX_BUFFERED) and sent,
// in order, once the connection is back.

const MAX_BUFFERED = 100;

export class SioSocket {
  constructor(url, { auth = () => ({}) } = {}) {
    this.url = url.replace(/^http/, 'ws').replace(/\/$/, '') + '/socket.io/?EIO=4&transport=websocket';
    this.auth = auth;
    this.handlers = new Map();
    this.acks = new Map();
    this.nextAck = 1;
    this.connected = false;
    this.closedByUser = false;
    this.backoff = 500;
    this.id = null;
    this.buffer = [];
    this.pingDeadline = null;
  }

  on(event, fn) {
    if (!this.handlers.has(event)) this.handlers.set(event, []);
    this.handlers.get(event).push(fn);
    return this;
  }

  fire(event, ...args) {
    for (const fn of this.handlers.get(event) || []) {
      try { fn(...args); } catch (e) { console.error(e); }
    }
  }

  connect() {
    this.closedByUser = false;
    clearTimeout(this.timer);
    const ws = new WebSocket(this.url);
    this.ws = ws;
    ws.onmessage = (m) => { if (this.ws === ws) this.onPacket(String(m.data)); };
    ws.onclose = () => { if (this.ws === ws) this.lost(); };
    return this;
  }

  /** The connection is gone (closed, or silent past the ping timeout). */
  lost() {
    const ws = this.ws;
    this.ws = null;
    clearTimeout(this.pingDeadline);
    if (ws) {
      ws.onmessage = null;
      ws.onclose = null;
      try { ws.close(); } catch { /* already closing */ }
    }
    const was = this.connected;
    this.connected = false;
    for (const [, cb] of this.acks) cb({ success: false, error: { code: 'disconnected', message: 'connection lost' } });
    this.acks.clear();
    if (was) this.fire('disconnect');
    if (!this.closedByUser) {
      const wait = this.backoff;
      this.backoff = Math.min(this.backoff * 2, 10000);
      this.fire('reconnecting', wait);
      this.timer = setTimeout(() => this.connect(), wait);
    }
  }

  close() {
    this.closedByUser = true;
    clearTimeout(this.timer);
    clearTimeout(this.pingDeadline);
    if (this.ws) this.ws.close();
  }

  send(raw) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(raw);
  }

  /** (Re)arms the dead-connection timer: the next ping is due within this. */
  expectPing() {
    clearTimeout(this.pingDeadline);
    if (!this.pingWait) return;
    this.pingDeadline = setTimeout(() => this.lost(), this.pingWait);
  }

  onPacket(data) {
    const type = data[0];
    if (type === '0') { // engine.io open
      const open = JSON.parse(data.slice(1) || '{}');
      this.pingWait = (open.pingInterval || 25000) + (open.pingTimeout || 20000);
      this.expectPing();
      this.send('40' + JSON.stringify(this.auth()));
    } else if (type === '2') { // ping
      this.expectPing();
      this.send('3');
    } else if (type === '1') { // engine.io close
      this.lost();
    } else if (type === '4') {
      this.onSio(data.slice(1));
    }
  }

  onSio(p) {
    const type = p[0];
    let rest = p.slice(1);
    if (type === '0') {
      this.connected = true;
      this.backoff = 500;
      this.id = JSON.parse(rest || '{}').sid;
      this.fire('connect');
      this.flush();
    } else if (type === '4') {
      const err = JSON.parse(rest || '{}');
      this.fire('connect_error', err);
      if (err.message === 'unauthorized') this.closedByUser = true;
    } else if (type === '1') {
      this.connected = false;
      this.fire('disconnect');
    } else if (type === '2' || type === '3') {
      const m = rest.match(/^(\d*)/);
      const id = m[1];
      rest = rest.slice(id.length);
      const args = JSON.parse(rest);
      if (type === '3') {
        const cb = this.acks.get(Number(id));
        this.acks.delete(Number(id));
        if (cb) cb(args[0]);
      } else {
        this.fire(args[0], ...args.slice(1));
      }
    }
  }

  /** Sends what was emitted while disconnected, oldest first. */
  flush() {
    const pending = this.buffer;
    this.buffer = [];
    for (const { event, data, ack } of pending) this.emit(event, data, ack);
  }

  emit(event, data, ack) {
    if (!this.connected) {
      if (this.buffer.length >= MAX_BUFFERED) {
        const dropped = this.buffer.shift();
        dropped.ack?.({ success: false, error: { code: 'disconnected', message: 'send buffer full' } });
      }
      this.buffer.push({ event, data, ack });
      return;
    }
    let id = '';
    if (ack) {
      id = String(this.nextAck++);
      this.acks.set(Number(id), ack);
    }
    const args = data === undefined ? [event] : [event, data];
    this.send('42' + id + JSON.stringify(args));
  }

  /** Emits with an ack; resolves with `{success, data|error}`. */
  request(event, data, timeoutMs = 10000) {
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve({ success: false, error: { code: 'timeout', message: 'no answer' } }), timeoutMs);
      this.emit(event, data, (res) => { clearTimeout(timer); resolve(res); });
    });
  }
}
