// The Lounges view: the rooms with their member counts, join and leave,
// chat in the open room, scroll back through its history, and after a
// reconnect rejoin with `since` so nothing missed is lost.
const $ = (id) => document.getElementById(id);

export function initLounges(state, api) {
  const lounges = {
    rooms: [], // [{id, lounge, language, members}]
    joined: new Map(), // roomId -> {epoch, offset, messages: Map(offset -> message), older: cursor|null|undefined}
    open: null,
  };
  state.lounges = lounges;

  function renderList() {
    const list = $('room-list');
    list.replaceChildren(...lounges.rooms.map((r) => {
      const li = document.createElement('li');
      li.dataset.roomId = r.id;
      const name = document.createElement('span');
      name.textContent = `${r.lounge} (${r.language})`;
      const count = document.createElement('span');
      count.className = 'pill';
      count.textContent = `${r.members}`;
      const btn = document.createElement('button');
      const inIt = lounges.joined.has(r.id);
      btn.textContent = inIt ? (lounges.open === r.id ? 'Open' : 'Show') : 'Join';
      btn.onclick = () => (inIt ? show(r.id) : join(r.id));
      li.append(name, count, btn);
      if (inIt) {
        const leave = document.createElement('button');
        leave.textContent = 'Leave';
        leave.className = 'danger';
        leave.onclick = () => leaveRoom(r.id);
        li.append(leave);
      }
      return li;
    }));
  }

  function renderMessages() {
    const box = $('room-messages');
    const room = lounges.joined.get(lounges.open);
    $('room-title').textContent = lounges.open ? `# ${lounges.open}` : 'Join a room';
    $('room-input').disabled = !room;
    $('room-send').disabled = !room;
    $('room-older').hidden = !room || !room.older;
    state.groupCall?.render?.();
    if (!room) { box.replaceChildren(); return; }
    const msgs = [...room.messages.values()].sort((a, b) => a.offset - b.offset);
    box.replaceChildren(...msgs.map((m) => {
      const li = document.createElement('li');
      li.dataset.offset = m.offset;
      li.dataset.id = m.id;
      if (m.from.id === state.user?.id) li.className = 'mine';
      li.textContent = `${m.from.username}: ${m.content}`;
      return li;
    }));
  }

  function keep(roomId, messages) {
    const room = lounges.joined.get(roomId);
    if (!room) return;
    for (const m of messages) {
      room.messages.set(m.offset, m);
      room.offset = Math.max(room.offset, m.offset);
    }
  }

  async function loadRooms() {
    try {
      lounges.rooms = (await api('GET', '/api/rooms')).rooms;
      renderList();
    } catch { /* retried on the next update */ }
  }

  async function join(roomId, since) {
    const res = await state.socket.request('room:join', since ? { roomId, since } : { roomId });
    if (!res.success) { $('room-error').textContent = res.error.message; return; }
    $('room-error').textContent = '';
    const d = res.data;
    let room = lounges.joined.get(roomId);
    if (!room || (since && !d.recovered)) {
      room = { epoch: d.epoch, offset: 0, messages: new Map(), older: null };
      lounges.joined.set(roomId, room);
    }
    room.epoch = d.epoch;
    keep(roomId, d.messages);
    if (!since || !d.recovered) room.older = d.nextCursor ?? null;
    if (!lounges.open || !since) lounges.open = roomId;
    const r = lounges.rooms.find((x) => x.id === roomId);
    if (r) r.members = d.room.members;
    renderList();
    renderMessages();
  }

  async function leaveRoom(roomId) {
    await state.socket.request('room:leave', { roomId });
    lounges.joined.delete(roomId);
    if (lounges.open === roomId) lounges.open = lounges.joined.keys().next().value ?? null;
    renderList();
    renderMessages();
  }

  function show(roomId) {
    lounges.open = roomId;
    renderList();
    renderMessages();
  }

  /** One page further back in the open room's history. */
  async function older() {
    const roomId = lounges.open;
    const room = lounges.joined.get(roomId);
    if (!room || !room.older) return;
    const page = await api('GET', `/api/rooms/${encodeURIComponent(roomId)}/messages?limit=50&before=${encodeURIComponent(room.older)}`);
    keep(roomId, page.messages);
    room.older = page.nextCursor;
    renderMessages();
    $('room-messages').firstElementChild?.scrollIntoView({ block: 'start' });
  }

  async function send(e) {
    e.preventDefault();
    const content = $('room-input').value.trim();
    if (!content || !lounges.open) return;
    const res = await state.socket.request('room:message', { roomId: lounges.open, content });
    if (!res.success) { $('room-error').textContent = res.error.message; return; }
    $('room-error').textContent = '';
    $('room-input').value = '';
  }

  $('room-form').onsubmit = send;
  $('room-older').onclick = older;
  $('room-input').oninput = () => {
    if (lounges.open) state.socket.emit('room:typing', { roomId: lounges.open, isTyping: $('room-input').value.length > 0 });
  };

  const socket = state.socket;
  socket.on('room:message', (m) => {
    keep(m.roomId, [m]);
    if (m.roomId === lounges.open) { renderMessages(); $('room-messages').lastElementChild?.scrollIntoView({ block: 'end' }); }
  });
  socket.on('room:message-deleted', ({ roomId, id }) => {
    const room = lounges.joined.get(roomId);
    if (!room) return;
    for (const [o, m] of room.messages) if (m.id === id) room.messages.delete(o);
    if (roomId === lounges.open) renderMessages();
  });
  socket.on('room:typing', ({ roomId, user, isTyping }) => {
    if (roomId === lounges.open) $('room-typing').textContent = isTyping ? `${user.username} is typing…` : '';
  });
  socket.on('room:left', ({ roomId, user, removed }) => {
    if (removed && user.id === state.user?.id) {
      lounges.joined.delete(roomId);
      if (lounges.open === roomId) lounges.open = null;
      $('room-error').textContent = `A moderator removed you from ${roomId}.`;
      renderList();
      renderMessages();
    }
  });
  socket.on('rooms:update', ({ rooms }) => {
    for (const u of rooms) {
      const r = lounges.rooms.find((x) => x.id === u.id);
      if (r) r.members = u.members;
    }
    renderList();
  });
  // After a reconnect: rejoin every room with what was last seen.
  let first = true;
  socket.on('connect', () => {
    if (first) { first = false; loadRooms(); return; }
    for (const [roomId, room] of lounges.joined) join(roomId, { offset: room.offset, epoch: room.epoch });
  });
  loadRooms();
}
