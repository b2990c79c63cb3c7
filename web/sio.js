// A small Socket.IO v5 client over WebSocket (Engine.IO v4), written for
// Tandem's page so that it needs no build step. It speaks the default
// namespace, JSON payloads and acks, and reconnects with backoff.

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
    const ws = new WebSocket(this.url);
    this.ws = ws;
    ws.onmessage = (m) => this.onPacket(String(m.data));
    ws.onclose = () => {
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
    };
    return this;
  }

  close() {
    this.closedByUser = true;
    clearTimeout(this.timer);
    if (this.ws) this.ws.close();
  }

  send(raw) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(raw);
  }

  onPacket(data) {
    const type = data[0];
    if (type === '0') { // engine.io open
      this.send('40' + JSON.stringify(this.auth()));
    } else if (type === '2') { // ping
      this.send('3');
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

  emit(event, data, ack) {
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
