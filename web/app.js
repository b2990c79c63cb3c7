// Tandem's page: guest sign-in, matching, chat with files and voice notes,
// and a WebRTC call. Talks to the server with our own Socket.IO client.
import { SioSocket } from '/sio.js';
import { initLounges } from '/lounges.js';
import { initGroupCall } from '/groupcall.js';

const $ = (id) => document.getElementById(id);
const state = {
  token: sessionStorage.getItem('tandem.token'),
  refreshToken: sessionStorage.getItem('tandem.refresh'),
  user: JSON.parse(sessionStorage.getItem('tandem.user') || 'null'),
  room: null, // {roomId, matchedUser, role}
  queued: false,
  pc: null,
  localStream: null,
  pendingCandidates: [],
  recorder: null,
  socket: null,
};
window.tandem = state; // for tests and debugging

// ---- REST -----------------------------------------------------------------

async function api(method, path, body) {
  const headers = {};
  if (state.token) headers.authorization = `Bearer ${state.token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const json = await res.json().catch(() => ({}));
  if (res.status === 401 && json.error?.code === 'token_expired' && state.refreshToken && path !== '/api/auth/refresh') {
    if (await refresh()) return api(method, path, body);
  }
  if (!res.ok) {
    const err = new Error(json.message || `HTTP ${res.status}`);
    if (json.error?.code === 'banned') err.until = json.until;
    throw err;
  }
  return json.data;
}

async function refresh() {
  try {
    const data = await api('POST', '/api/auth/refresh', { refreshToken: state.refreshToken });
    saveSession(data);
    return true;
  } catch {
    return false;
  }
}

function saveSession(data) {
  state.token = data.token;
  state.refreshToken = data.refreshToken;
  state.user = data.user;
  sessionStorage.setItem('tandem.token', data.token);
  sessionStorage.setItem('tandem.refresh', data.refreshToken);
  sessionStorage.setItem('tandem.user', JSON.stringify(data.user));
}

// ---- UI helpers -------------------------------------------------------------

function status(text) { $('status').textContent = text; }

function addMessage(text, cls = '') {
  const li = document.createElement('li');
  if (cls) li.className = cls;
  li.textContent = text;
  $('messages').append(li);
  li.scrollIntoView({ block: 'end' });
  return li;
}

/** Shows the ban and keeps the app from trying again until it ends. */
function showBanned(until, reason) {
  const when = until ? new Date(until).toLocaleString() : 'further notice';
  $('banned').textContent = `You are banned until ${when}${reason ? ` (${reason})` : ''}.`;
  $('banned').hidden = false;
  status('You are banned.');
  for (const id of ['start-btn', 'skip-btn', 'stop-btn']) $(id).disabled = true;
}

/** The partner a report or block is about: the current one, or the last. */
function partnerId() {
  return state.room?.matchedUser.id ?? state.lastPartner?.id;
}

function setInChat(inChat) {
  for (const id of ['chat-input', 'send-btn', 'file-input', 'voice-btn', 'clear-btn', 'skip-btn']) $(id).disabled = !inChat;
  for (const id of ['report-btn', 'block-btn', 'report-reason']) $(id).disabled = !partnerId();
  $('stop-btn').disabled = !inChat && !state.queued;
  $('start-btn').disabled = inChat || state.queued;
  $('call-btn').disabled = !(inChat && state.room?.role === 'caller' && !state.pc);
  if (!inChat) $('typing').hidden = true;
}

function formatSize(n) {
  return n < 1024 ? `${n} B` : n < 1048576 ? `${(n / 1024).toFixed(1)} KB` : `${(n / 1048576).toFixed(1)} MB`;
}

async function fetchBlob(url) {
  const res = await fetch(url, { headers: { authorization: `Bearer ${state.token}` } });
  if (!res.ok) throw new Error(`HTTP ${res.status}`);
  return URL.createObjectURL(await res.blob());
}

function showFile(file, mine, type) {
  const li = addMessage(`${mine ? 'You' : 'Stranger'} shared ${type === 'voice' ? 'a voice note' : file.name} (${type === 'voice' && file.duration ? `${file.duration.toFixed(1)} s` : formatSize(file.size)}) `, mine ? 'mine file' : 'file');
  li.dataset.fileId = file.id;
  const link = document.createElement('a');
  link.href = '#';
  link.textContent = 'download';
  link.className = 'download';
  link.onclick = async (e) => {
    e.preventDefault();
    const a = document.createElement('a');
    a.href = await fetchBlob(file.url);
    a.download = file.name;
    a.click();
  };
  li.append(link);
  if (type === 'voice' || file.mime.startsWith('audio/')) {
    fetchBlob(file.url).then((src) => {
      const audio = document.createElement('audio');
      audio.controls = true;
      audio.src = src;
      li.append(audio);
    }).catch(() => {});
  } else if (file.mime.startsWith('image/')) {
    fetchBlob(file.url).then((src) => {
      const img = document.createElement('img');
      img.alt = file.name;
      img.src = src;
      li.append(img);
    }).catch(() => {});
  }
}

// ---- uploads (XHR for progress) ---------------------------------------------

function uploadFile(blob, name, kind) {
  return new Promise((resolve, reject) => {
    const form = new FormData();
    form.append('kind', kind);
    form.append('file', blob, name);
    const xhr = new XMLHttpRequest();
    xhr.open('POST', '/api/files');
    xhr.setRequestHeader('authorization', `Bearer ${state.token}`);
    const bar = $('upload-progress');
    bar.hidden = false;
    bar.value = 0;
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) bar.value = Math.round((e.loaded / e.total) * 100); };
    xhr.onload = () => {
      bar.hidden = true;
      const json = JSON.parse(xhr.responseText || '{}');
      if (xhr.status === 201) resolve(json.data); else reject(new Error(json.message || `HTTP ${xhr.status}`));
    };
    xhr.onerror = () => { bar.hidden = true; reject(new Error('upload failed')); };
    xhr.send(form);
  });
}

async function shareFile(blob, name, kind) {
  try {
    const file = await uploadFile(blob, name, kind);
    const type = kind === 'voice' ? 'voice' : 'file';
    const res = await state.socket.request('chat:message', { type, fileId: file.id });
    if (!res.success) throw new Error(res.error.message);
    showFile(file, true, type);
  } catch (e) {
    addMessage(`Could not share: ${e.message}`, 'system');
  }
}

// ---- WebRTC -------------------------------------------------------------------

async function iceServers() {
  try {
    const creds = await api('GET', '/api/turn/credentials');
    return creds.iceServers || [];
  } catch {
    return [];
  }
}

async function ensurePeer() {
  if (state.pc) return state.pc;
  const relay = $('relay-only').checked;
  const pc = new RTCPeerConnection({ iceServers: await iceServers(), iceTransportPolicy: relay ? 'relay' : 'all' });
  state.pc = pc;
  pc.onicecandidate = (e) => state.socket.emit('webrtc:ice-candidate', { candidate: e.candidate ? e.candidate.toJSON() : null });
  pc.ontrack = (e) => { $('remote-video').srcObject = e.streams[0]; };
  pc.onconnectionstatechange = () => {
    $('call-state').textContent = `call: ${pc.connectionState}`;
    if (pc.connectionState === 'failed') hangup(true);
  };
  state.localStream = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
  $('local-video').srcObject = state.localStream;
  for (const t of state.localStream.getTracks()) pc.addTrack(t, state.localStream);
  $('hangup-btn').disabled = false;
  $('call-btn').disabled = true;
  return pc;
}

async function startCall() {
  try {
    const pc = await ensurePeer();
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    const res = await state.socket.request('webrtc:offer', { offer: pc.localDescription.toJSON(), type: 'video' });
    if (!res.success) throw new Error(res.error.message);
  } catch (e) {
    addMessage(`Call failed: ${e.message}`, 'system');
    hangup(true);
  }
}

async function flushCandidates() {
  for (const c of state.pendingCandidates.splice(0)) await state.pc.addIceCandidate(c).catch(() => {});
}

async function onOffer({ offer }) {
  try {
    const pc = await ensurePeer();
    await pc.setRemoteDescription(offer);
    await flushCandidates();
    const answer = await pc.createAnswer();
    await pc.setLocalDescription(answer);
    state.socket.emit('webrtc:answer', { answer: pc.localDescription.toJSON() });
  } catch (e) {
    addMessage(`Call failed: ${e.message}`, 'system');
  }
}

async function onAnswer({ answer }) {
  if (!state.pc) return;
  await state.pc.setRemoteDescription(answer);
  await flushCandidates();
}

async function onCandidate({ candidate }) {
  if (!candidate) return;
  if (state.pc && state.pc.remoteDescription) await state.pc.addIceCandidate(candidate).catch(() => {});
  else state.pendingCandidates.push(candidate);
}

function hangup(notify) {
  if (notify && state.socket && state.room) state.socket.emit('webrtc:hangup');
  if (state.pc) state.pc.close();
  state.pc = null;
  state.pendingCandidates = [];
  if (state.localStream) state.localStream.getTracks().forEach((t) => t.stop());
  state.localStream = null;
  $('local-video').srcObject = null;
  $('remote-video').srcObject = null;
  $('hangup-btn').disabled = true;
  $('call-state').textContent = '';
  setInChat(Boolean(state.room));
}

// ---- matching and chat --------------------------------------------------------

function matchPrefs() {
  const interests = $('interests').value.split(',').map((s) => s.trim()).filter(Boolean).slice(0, 10);
  return { interests, mode: $('mode').value };
}

function onMatched(m) {
  const fresh = !state.room || state.room.roomId !== m.roomId;
  state.room = m;
  state.queued = false;
  if (fresh) {
    $('messages').replaceChildren();
    const common = m.commonInterests.length ? ` You both like ${m.commonInterests.join(', ')}.` : '';
    addMessage(`You are talking to ${m.matchedUser.username}.${common}`, 'system');
  }
  status(m.role === 'caller' ? 'Connected. You can start the video call.' : 'Connected. Your partner can start the video call.');
  setInChat(true);
}

function leftChat(text) {
  hangup(false);
  if (state.room) state.lastPartner = state.room.matchedUser;
  state.room = null;
  addMessage(text, 'system');
  status('Press Start to meet someone new.');
  setInChat(false);
}

async function startMatching(event = 'user:match') {
  const res = await state.socket.request(event, matchPrefs());
  if (!res.success) {
    status(res.error.message);
    return;
  }
  if (res.data.status === 'waiting') {
    state.queued = true;
    status('Looking for someone…');
    setInChat(false);
  }
}

function connectSocket() {
  const socket = new SioSocket(location.origin, { auth: () => ({ token: state.token }) });
  state.socket = socket;
  socket.on('connect', () => { $('conn').textContent = 'online'; $('conn').classList.add('on'); });
  socket.on('disconnect', () => { $('conn').textContent = 'offline'; $('conn').classList.remove('on'); });
  socket.on('connect_error', async (err) => {
    if (err.message === 'banned') showBanned(null, null);
    else if (err.message === 'unauthorized' && (await refresh())) socket.connect();
    else status('Your session has ended; reload to sign in again.');
  });
  socket.on('moderation:banned', ({ until, reason }) => { state.banned = true; hangup(false); state.room = null; showBanned(until, reason); });
  socket.on('moderation:warning', ({ reason }) => addMessage(`A moderator warned you (${reason}). Please follow the rules.`, 'system'));
  socket.on('user:matched', onMatched);
  socket.on('partner:left', ({ reason }) => leftChat(reason === 'skipped' ? 'Your partner skipped.' : reason === 'disconnected' ? 'Your partner lost the connection.' : 'Your partner left.'));
  socket.on('partner:reconnecting', () => addMessage('Your partner is reconnecting…', 'system'));
  socket.on('partner:reconnected', () => addMessage('Your partner is back.', 'system'));
  socket.on('chat:message', (m) => {
    $('typing').hidden = true;
    if (m.type === 'text') addMessage(m.content);
    else showFile(m.file, false, m.type);
  });
  socket.on('chat:typing', ({ isTyping }) => { $('typing').hidden = !isTyping; });
  socket.on('chat:cleared', () => { $('messages').replaceChildren(); addMessage('Your partner cleared the chat.', 'system'); });
  socket.on('webrtc:offer', onOffer);
  socket.on('webrtc:answer', onAnswer);
  socket.on('webrtc:ice-candidate', onCandidate);
  socket.on('webrtc:hangup', () => { hangup(false); addMessage('The call ended.', 'system'); });
  socket.on('server:shutdown', () => status('The server is restarting; reconnecting…'));
  socket.on('error', (e) => addMessage(`Error: ${e.message}`, 'system'));
  initLounges(state, api);
  initGroupCall(state, iceServers);
  socket.connect();
}

function enterApp() {
  $('signin').hidden = true;
  $('app').hidden = false;
  $('who').textContent = state.user.username;
  connectSocket();
}

// ---- wiring ---------------------------------------------------------------------

function wire() {
  $('guest-form').onsubmit = async (e) => {
    e.preventDefault();
    const username = $('guest-name').value.trim();
    try {
      saveSession(await api('POST', '/api/auth/guest', username ? { username } : {}));
      enterApp();
    } catch (err) {
      if (err.until) showBanned(err.until, null);
      $('signin-error').textContent = err.message;
    }
  };
  $('login-form').onsubmit = async (e) => {
    e.preventDefault();
    try {
      saveSession(await api('POST', '/api/auth/login', { email: $('login-email').value, password: $('login-password').value }));
      enterApp();
    } catch (err) {
      $('signin-error').textContent = err.message;
    }
  };
  $('start-btn').onclick = () => startMatching();
  $('skip-btn').onclick = () => { hangup(false); state.room = null; $('messages').replaceChildren(); startMatching('user:skip'); };
  $('stop-btn').onclick = async () => {
    hangup(false);
    await state.socket.request(state.room ? 'user:end' : 'user:cancel');
    state.room = null;
    state.queued = false;
    status('Stopped. Press Start to meet someone.');
    setInChat(false);
  };
  let typingSent = false;
  let typingTimer;
  $('chat-input').oninput = () => {
    if (!typingSent) { state.socket.emit('chat:typing', { isTyping: true }); typingSent = true; }
    clearTimeout(typingTimer);
    typingTimer = setTimeout(() => { state.socket.emit('chat:typing', { isTyping: false }); typingSent = false; }, 1500);
  };
  $('chat-form').onsubmit = async (e) => {
    e.preventDefault();
    const content = $('chat-input').value;
    if (!content.trim()) return;
    $('chat-input').value = '';
    const res = await state.socket.request('chat:message', { type: 'text', content });
    if (res.success) addMessage(res.data.content, 'mine');
    else addMessage(`Not sent: ${res.error.message}`, 'system');
  };
  $('file-input').onchange = () => {
    const f = $('file-input').files[0];
    if (f) shareFile(f, f.name, 'file');
    $('file-input').value = '';
  };
  $('voice-btn').onclick = async () => {
    if (state.recorder) {
      state.recorder.stop();
      return;
    }
    try {
      const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
      const chunks = [];
      const rec = new MediaRecorder(stream);
      state.recorder = rec;
      rec.ondataavailable = (e) => chunks.push(e.data);
      rec.onstop = () => {
        stream.getTracks().forEach((t) => t.stop());
        state.recorder = null;
        $('voice-btn').textContent = 'Record voice note';
        shareFile(new Blob(chunks, { type: rec.mimeType }), 'voice-note.webm', 'voice');
      };
      rec.start();
      $('voice-btn').textContent = 'Stop and send';
    } catch (e) {
      addMessage(`Microphone unavailable: ${e.message}`, 'system');
    }
  };
  $('report-btn').onclick = async () => {
    const userId = partnerId();
    if (!userId) return;
    const res = await state.socket.request('user:report', { userId, reason: $('report-reason').value });
    addMessage(res.success ? 'Thank you: the report was sent to the moderators.' : `Report not sent: ${res.error.message}`, 'system');
  };
  $('block-btn').onclick = async () => {
    const userId = partnerId();
    if (!userId) return;
    const res = await state.socket.request('user:block', { userId });
    if (res.success) {
      state.lastPartner = null;
      addMessage('Blocked: you will not be matched with them again.', 'system');
      if (!state.room) setInChat(false);
    } else {
      addMessage(`Not blocked: ${res.error.message}`, 'system');
    }
  };
  $('clear-btn').onclick = async () => {
    await state.socket.request('chat:clear');
    $('messages').replaceChildren();
  };
  $('call-btn').onclick = startCall;
  $('hangup-btn').onclick = () => hangup(true);
  if (state.token && state.user) enterApp();
}

wire();
