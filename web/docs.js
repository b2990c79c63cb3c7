// Renders /api/openapi.json and /api/asyncapi.json as a readable page:
// no build step, no third-party code.
(() => {
  'use strict';
  const el = (tag, attrs = {}, ...kids) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) if (k === 'class') e.className = v; else e.setAttribute(k, v);
    for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(String(k)));
    return e;
  };

  /** A schema with its $refs resolved (one level deep per ref, cycles cut). */
  function resolve(doc, schema, seen = new Set()) {
    if (!schema || typeof schema !== 'object') return schema;
    if (schema.$ref) {
      if (seen.has(schema.$ref)) return { $ref: schema.$ref };
      const target = schema.$ref.replace(/^#\//, '').split('/').reduce((o, k) => o?.[k], doc);
      return resolve(doc, target, new Set([...seen, schema.$ref]));
    }
    if (Array.isArray(schema)) return schema.map((s) => resolve(doc, s, seen));
    const out = {};
    for (const [k, v] of Object.entries(schema)) out[k] = resolve(doc, v, seen);
    return out;
  }
  const pretty = (v) => el('pre', {}, JSON.stringify(v, null, 2));

  function rest(doc) {
    const root = document.getElementById('rest');
    root.append(el('h2', { id: 'rest-api' }, `REST (OpenAPI ${doc.openapi})`), el('p', {}, doc.info.description || ''));
    const byTag = new Map();
    for (const [path, item] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(item)) {
        const tag = op.tags?.[0] || 'other';
        if (!byTag.has(tag)) byTag.set(tag, []);
        byTag.get(tag).push({ path, method, op });
      }
    }
    for (const t of doc.tags || []) if (!byTag.has(t.name)) byTag.set(t.name, []);
    for (const [tag, ops] of byTag) {
      const info = (doc.tags || []).find((t) => t.name === tag);
      root.append(el('h3', {}, tag), el('p', { class: 'sum' }, info?.description || ''));
      for (const { path, method, op } of ops) {
        const d = el('details', { class: 'op', 'data-path': path, 'data-method': method });
        const lock = op.security ? el('span', { class: 'lock' }, op.security.map((s) => Object.keys(s).join(' ')).join(', ')) : '';
        d.append(el('summary', {}, el('span', { class: `method ${method}` }, method.toUpperCase()), el('span', { class: 'path' }, path), el('span', { class: 'sum' }, op.summary || op.description || ''), lock));
        if (op.description && op.summary) d.append(el('p', {}, op.description));
        if (op.parameters?.length) {
          const tb = el('table', {}, el('tr', {}, el('th', {}, 'parameter'), el('th', {}, 'in'), el('th', {}, 'required'), el('th', {}, 'description')));
          for (const p of op.parameters) tb.append(el('tr', {}, el('td', {}, p.name), el('td', {}, p.in), el('td', {}, p.required ? 'yes' : 'no'), el('td', {}, p.description || '')));
          d.append(tb);
        }
        if (op.requestBody) {
          for (const [type, c] of Object.entries(op.requestBody.content || {})) {
            d.append(el('div', {}, `Request body (${type})`), pretty(resolve(doc, c.schema)));
          }
        }
        const tb = el('table', {}, el('tr', {}, el('th', {}, 'status'), el('th', {}, 'description')));
        for (const [status, r] of Object.entries(op.responses || {})) tb.append(el('tr', {}, el('td', {}, status), el('td', {}, r.description || '')));
        d.append(tb);
        root.append(d);
      }
    }
  }

  function events(doc) {
    const root = document.getElementById('events');
    root.append(el('h2', { id: 'events-api' }, `Socket.IO events (AsyncAPI ${doc.asyncapi})`), el('p', {}, doc.info.description || ''));
    for (const [title, action] of [['Client → server', 'receive'], ['Server → client', 'send']]) {
      root.append(el('h3', {}, title));
      for (const op of Object.values(doc.operations)) {
        if (op.action !== action) continue;
        const ref = op.messages[0].$ref.split('/').pop();
        const m = doc.components.messages[ref];
        const d = el('details', { class: 'op', 'data-event': m.name });
        d.append(el('summary', {}, el('span', { class: `method ${action}` }, action === 'receive' ? 'emit' : 'on'), el('span', { class: 'path' }, m.name), el('span', { class: 'sum' }, m.summary || '')));
        d.append(pretty(m.payload));
        root.append(d);
      }
    }
  }

  Promise.all(['/api/openapi.json', '/api/asyncapi.json'].map((u) => fetch(u).then((r) => r.json())))
    .then(([openapi, asyncapi]) => {
      document.getElementById('toc').append(el('a', { href: '#rest-api' }, 'REST'), el('a', { href: '#events-api' }, 'Socket.IO events'));
      rest(openapi);
      events(asyncapi);
      document.body.dataset.ready = 'true';
    })
    .catch((e) => { document.getElementById('docs-error').textContent = `could not load the descriptions: ${e.message}`; });
})();
