// Baseline for benchmarks: the same event contract as Tandem for the
// benchmarked paths, written the way the seed systems do it (Express +
// socket.io, JWT auth middleware, in-memory queue and rooms).
'use strict';
const http = require('http');
const crypto = require('crypto');
const os = require('os');
const path = require('path');
const express = require('express');
const jwt = require('jsonwebtoken');
const bcrypt = require('bcryptjs');
const multer = require('multer');
const { Server } = require('socket.io');

const PORT = Number(process.env.PORT || 3101);
const SECRET = process.env.JWT_SECRET;
if (!SECRET) { console.error('JWT_SECRET is required'); process.exit(2); }

const app = express();
app.use(express.json({ limit: '64kb' }));
app.get('/health', (req, res) => res.json({ success: true, data: { status: 'ok' } }));

// Accounts in memory (the seeds keep them in MongoDB), bcrypt at 12 rounds.
const users = new Map(); // email -> { id, username, hash }
function issue(user) {
  const token = jwt.sign({ sub: user.id, name: user.username, guest: false }, SECRET, { algorithm: 'HS256', expiresIn: '1h' });
  return { token, user: { id: user.id, username: user.username } };
}
app.post('/api/auth/register', async (req, res) => {
  const { username, email, password } = req.body || {};
  if (!username || !email || !password) return res.status(400).json({ success: false, error: { code: 'validation_error', message: 'missing fields' } });
  const key = String(email).toLowerCase();
  if (users.has(key)) return res.status(409).json({ success: false, error: { code: 'conflict', message: 'email is already taken' } });
  const user = { id: crypto.randomUUID(), username, hash: await bcrypt.hash(password, 12) };
  users.set(key, user);
  res.status(201).json({ success: true, data: issue(user) });
});
app.post('/api/auth/login', async (req, res) => {
  const { email, password } = req.body || {};
  const user = users.get(String(email || '').toLowerCase());
  if (!user || !(await bcrypt.compare(String(password || ''), user.hash))) {
    return res.status(401).json({ success: false, error: { code: 'invalid_credentials', message: 'invalid email or password' } });
  }
  res.json({ success: true, data: issue(user) });
});

// Uploads the way the seeds do them: multer to disk, 10 MB limit, JWT auth.
const uploadDir = process.env.UPLOAD_DIR || path.join(os.tmpdir(), `baseline-uploads-${process.pid}`);
const upload = multer({ dest: uploadDir, limits: { fileSize: 10 * 1024 * 1024 } });
function auth(req, res, next) {
  try {
    const header = req.headers.authorization || '';
    req.user = jwt.verify(header.replace(/^Bearer /, ''), SECRET, { algorithms: ['HS256'] });
    next();
  } catch {
    res.status(401).json({ success: false, error: { code: 'unauthorized', message: 'unauthorized' } });
  }
}
app.post('/api/files', auth, upload.single('file'), (req, res) => {
  if (!req.file) return res.status(400).json({ success: false, error: { code: 'validation_error', message: 'file is required' } });
  const { filename, originalname, mimetype, size } = req.file;
  res.status(201).json({ success: true, data: { id: filename, name: originalname, mime: mimetype, size, url: `/api/files/${filename}` } });
});
app.use((err, req, res, next) => {
  const status = err.code === 'LIMIT_FILE_SIZE' ? 413 : 400;
  res.status(status).json({ success: false, error: { code: status === 413 ? 'payload_too_large' : 'bad_request', message: err.message } });
});
const server = http.createServer(app);
const io = new Server(server, { maxHttpBufferSize: 96 * 1024 });

const queue = []; // user ids waiting
const partnerOf = new Map(); // user id -> partner id
const names = new Map();

io.use((socket, next) => {
  try {
    const claims = jwt.verify(socket.handshake.auth?.token || '', SECRET, { algorithms: ['HS256'] });
    socket.data.user = { id: claims.sub, username: claims.name };
    next();
  } catch {
    next(new Error('unauthorized'));
  }
});

function reply(ack, result) {
  if (typeof ack === 'function') ack(result);
}

function sanitize(s) {
  return String(s).replace(/<[^>]*>/g, '').replace(/[\u0000-\u0008\u000b-\u001f\u007f]/g, '').trim();
}

io.on('connection', (socket) => {
  const me = socket.data.user;
  names.set(me.id, me.username);
  socket.join(`user:${me.id}`);
  socket.emit('connection:established', { userId: me.id, username: me.username, socketId: socket.id });

  socket.on('user:match', (data, ack) => {
    if (typeof data === 'function') { ack = data; }
    if (partnerOf.has(me.id)) return reply(ack, { success: false, error: { code: 'already_in_chat', message: 'in a chat' } });
    const i = queue.findIndex((id) => id !== me.id);
    if (i === -1) {
      if (!queue.includes(me.id)) queue.push(me.id);
      return reply(ack, { success: true, data: { status: 'waiting' } });
    }
    const other = queue.splice(i, 1)[0];
    const roomId = crypto.randomUUID();
    partnerOf.set(me.id, other);
    partnerOf.set(other, me.id);
    io.to(`user:${other}`).emit('user:matched', { roomId, matchedUser: { id: me.id, username: me.username }, role: 'caller', commonInterests: [] });
    io.to(`user:${me.id}`).emit('user:matched', { roomId, matchedUser: { id: other, username: names.get(other) }, role: 'callee', commonInterests: [] });
    reply(ack, { success: true, data: { status: 'matched', roomId } });
  });

  socket.on('chat:message', (data, ack) => {
    const partner = partnerOf.get(me.id);
    if (!partner) return reply(ack, { success: false, error: { code: 'not_in_chat', message: 'not in a chat' } });
    const content = sanitize(data?.content ?? '');
    if (!content) return reply(ack, { success: false, error: { code: 'empty_message', message: 'empty' } });
    if (content.length > 1000) return reply(ack, { success: false, error: { code: 'message_too_long', message: 'too long' } });
    const id = crypto.randomBytes(16).toString('hex');
    const timestamp = new Date().toISOString();
    io.to(`user:${partner}`).emit('chat:message', { id, from: me.id, type: 'text', content, timestamp });
    reply(ack, { success: true, data: { id, timestamp } });
  });

  // Lounges the way people write them with socket.io: a room per lounge,
  // io.to(room).emit for every message (no history, no limits).
  socket.on('room:join', (data, ack) => {
    if (typeof data === 'function') { ack = data; data = {}; }
    const roomId = data?.roomId;
    if (typeof roomId !== 'string' || !roomId) return reply(ack, { success: false, error: { code: 'invalid_payload', message: 'roomId' } });
    socket.join(`lounge:${roomId}`);
    reply(ack, { success: true, data: { room: { id: roomId }, messages: [] } });
  });

  let offset = 0;
  socket.on('room:message', (data, ack) => {
    const roomId = data?.roomId;
    if (!socket.rooms.has(`lounge:${roomId}`)) return reply(ack, { success: false, error: { code: 'not_in_room', message: 'join first' } });
    const content = sanitize(data?.content ?? '');
    if (!content) return reply(ack, { success: false, error: { code: 'empty_message', message: 'empty' } });
    offset += 1;
    const id = `${roomId}.${crypto.randomBytes(8).toString('hex')}`;
    const timestamp = new Date().toISOString();
    io.to(`lounge:${roomId}`).emit('room:message', { roomId, id, offset, from: { id: me.id, username: me.username }, content, timestamp });
    reply(ack, { success: true, data: { id, offset, timestamp } });
  });

  socket.on('user:end', (ack) => {
    const partner = partnerOf.get(me.id);
    if (partner) {
      partnerOf.delete(me.id);
      partnerOf.delete(partner);
      io.to(`user:${partner}`).emit('partner:left', { reason: 'ended' });
    }
    reply(ack, { success: true, data: { status: 'idle' } });
  });

  socket.on('disconnect', () => {
    const i = queue.indexOf(me.id);
    if (i !== -1) queue.splice(i, 1);
    const partner = partnerOf.get(me.id);
    if (partner) {
      partnerOf.delete(me.id);
      partnerOf.delete(partner);
      io.to(`user:${partner}`).emit('partner:left', { reason: 'disconnected' });
    }
  });
});

server.listen(PORT, '127.0.0.1', () => console.log(`baseline listening addr=127.0.0.1:${server.address().port}`));
process.on('SIGTERM', () => process.exit(0));
