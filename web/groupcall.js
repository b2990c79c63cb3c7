// Group calls in a lounge: one RTCPeerConnection to the server's media
// unit (SFU). We publish camera and microphone, the server offers every
// other participant's tracks as they come and go (call:signal), and each
// participant gets a tile in the grid. A track's stream id is its
// publisher's user id.
const $ = (id) => document.getElementById(id);

export function initGroupCall(state, iceServers) {
  const call = {
    id: null,
    pc: null,
    local: null,
    participants: [], // [{userId, username, tracks}]
    tracks: new Map(), // track id -> {userId, kind, track}
  };
  state.groupCall = call;
  const socket = state.socket;
  // Offers and answers are handled one at a time, in order.
  let chain = Promise.resolve();
  const serial = (f) => { chain = chain.then(f).catch((e) => { $('room-error').textContent = String(e.message || e); }); return chain; };

  function tile(userId) {
    let t = document.querySelector(`#call-grid [data-user-id="${CSS.escape(userId)}"]`);
    if (!t) {
      t = document.createElement('figure');
      t.dataset.userId = userId;
      const v = document.createElement('video');
      v.autoplay = true;
      v.playsInline = true;
      if (userId === state.user?.id) v.muted = true;
      const cap = document.createElement('figcaption');
      t.append(v, cap);
      $('call-grid').append(t);
    }
    return t;
  }

  function render() {
    const grid = $('call-grid');
    grid.hidden = !call.id;
    $('group-call-leave').hidden = !call.id;
    $('group-call-btn').disabled = !!call.id || !state.lounges?.open;
    const present = new Set(call.participants.map((p) => p.userId));
    for (const t of [...grid.children]) if (!present.has(t.dataset.userId)) t.remove();
    for (const p of call.participants) tile(p.userId).querySelector('figcaption').textContent = p.userId === state.user?.id ? `${p.username} (you)` : p.username;
    if (call.local) tile(state.user.id).querySelector('video').srcObject = call.local;
  }

  async function start() {
    const roomId = state.lounges?.open;
    if (!roomId || call.id) return;
    const started = await socket.request('call:start', { roomId });
    if (!started.success) throw new Error(started.error.message);
    const callId = started.data.callId;
    call.local = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 320, height: 240 } });
    const relay = $('relay-only')?.checked;
    const pc = new RTCPeerConnection({ iceServers: await iceServers(), iceTransportPolicy: relay ? 'relay' : 'all' });
    call.pc = pc;
    for (const t of call.local.getTracks()) pc.addTransceiver(t, { direction: 'sendonly', streams: [call.local] });
    pc.ontrack = (e) => {
      const userId = e.streams[0]?.id;
      if (!userId) return;
      call.tracks.set(e.track.id, { userId, kind: e.track.kind, track: e.track });
      const v = tile(userId).querySelector('video');
      const stream = v.srcObject instanceof MediaStream && v.srcObject !== call.local ? v.srcObject : new MediaStream();
      stream.addTrack(e.track);
      v.srcObject = stream;
      e.track.onended = () => stream.removeTrack(e.track);
    };
    await pc.setLocalDescription(await pc.createOffer());
    const joined = await socket.request('call:join', { callId, sdp: pc.localDescription.toJSON() });
    if (!joined.success) { pc.close(); call.pc = null; stopLocal(); throw new Error(joined.error.message); }
    call.id = callId;
    call.participants = joined.data.participants;
    await pc.setRemoteDescription(joined.data.sdp);
    render();
  }

  function stopLocal() {
    call.local?.getTracks().forEach((t) => t.stop());
    call.local = null;
  }

  function reset() {
    call.pc?.close();
    stopLocal();
    call.id = null;
    call.pc = null;
    call.participants = [];
    call.tracks.clear();
    render();
  }

  async function leave() {
    if (!call.id) return;
    await socket.request('call:leave', { callId: call.id });
    reset();
  }

  socket.on('call:signal', ({ callId, sdp }) => serial(async () => {
    if (callId !== call.id || !call.pc || sdp.type !== 'offer') return;
    await call.pc.setRemoteDescription(sdp);
    await call.pc.setLocalDescription(await call.pc.createAnswer());
    const res = await socket.request('call:signal', { callId, sdp: call.pc.localDescription.toJSON() });
    if (!res.success) throw new Error(res.error.message);
  }));
  socket.on('call:participants', ({ callId, participants }) => {
    if (callId !== call.id) return;
    call.participants = participants;
    render();
  });
  socket.on('call:left', ({ callId, reason }) => {
    if (callId !== call.id) return;
    $('room-error').textContent = `You left the call (${reason}).`;
    reset();
  });
  socket.on('disconnect', () => { if (call.id) reset(); });

  $('group-call-btn').onclick = () => serial(start);
  $('group-call-leave').onclick = () => serial(leave);
  call.render = render;
  render();
}
