import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../lib/server.mjs';
import { startMongo, MONGOD } from '../lib/mongo.mjs';
import { api, register, guest, connect, uniqueUser } from '../lib/client.mjs';

const required = process.env.TANDEM_REQUIRE_MONGODB === '1';

test('accounts on MongoDB; store down gives 503 while token-only routes keep working', { skip: !MONGOD && !required && 'TANDEM_TEST_MONGOD unset' }, async () => {
  const mongo = await startMongo();
  const srv = await startServer({ MONGODB_URI: mongo.uri });
  try {
    const health = await api(srv.url, 'GET', '/health');
    assert.equal(health.status, 200, health.text);
    assert.equal(health.body.data.store.backend, 'mongodb');

    const u = await register(srv.url, uniqueUser('mg'));
    const dupe = await api(srv.url, 'POST', '/api/auth/register', { body: { ...uniqueUser('mg2'), email: u.email.toUpperCase() } });
    assert.equal(dupe.status, 409);
    assert.equal(dupe.body.error.field, 'email');
    const dupeName = await api(srv.url, 'POST', '/api/auth/register', { body: { ...uniqueUser('mg3'), username: u.username.toUpperCase() } });
    assert.equal(dupeName.status, 409);
    assert.equal(dupeName.body.error.field, 'username');
    const login = await api(srv.url, 'POST', '/api/auth/login', { body: { email: u.email, password: u.password } });
    assert.equal(login.status, 200, login.text);
    const g = await guest(srv.url);
    const refreshed = await api(srv.url, 'POST', '/api/auth/refresh', { body: { refreshToken: g.refreshToken } });
    assert.equal(refreshed.status, 200);
    const dev = await api(srv.url, 'POST', '/api/users/device', { token: u.token, body: { deviceId: 'd1' } });
    assert.equal(dev.status, 200, dev.text);
    const { socket } = await connect(srv.url, u.token);

    await mongo.stop();

    const reg = await api(srv.url, 'POST', '/api/auth/register', { body: uniqueUser('down') });
    assert.equal(reg.status, 503, reg.text);
    assert.equal(reg.body.error.code, 'service_unavailable');
    assert.match(reg.body.message, /store is unavailable/);
    assert.equal((await api(srv.url, 'POST', '/api/auth/login', { body: { email: u.email, password: u.password } })).status, 503);
    assert.equal((await api(srv.url, 'GET', '/api/auth/me', { token: u.token })).status, 503);
    const down = await api(srv.url, 'GET', '/health');
    assert.equal(down.status, 503);
    assert.equal(down.body.data.store.status, 'down');

    // What needs only the token keeps working.
    const online = await api(srv.url, 'GET', '/api/users/online', { token: u.token });
    assert.equal(online.status, 200);
    assert.ok(online.body.data.users.some((x) => x.id === u.user.id));
    const { socket: second } = await connect(srv.url, g.token);
    assert.equal(socket.connected, true);
    socket.close();
    second.close();
  } finally {
    await srv.stop();
    await mongo.stop();
  }
});
