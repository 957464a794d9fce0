import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { type Server, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { type TestContext, test } from 'node:test';
import { probeUapiSocket, uapiSocketAnswers } from '../../src/wireguard/uapi-socket.js';
import { until } from '../support/wait.js';

async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'wirelane-uapi-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

test('a socket someone listens on is served', async (t) => {
  const path = join(await tempDir(t), 'wl0.sock');
  const server: Server = createServer((socket) => socket.destroy());
  server.listen(path);
  await once(server, 'listening');
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  assert.equal(await probeUapiSocket(path), 'served');
  assert.equal(await uapiSocketAnswers(path), true);
});

test('the socket file a killed listener left is stale, and a missing one absent', async (t) => {
  const path = join(await tempDir(t), 'wl0.sock');
  assert.equal(await probeUapiSocket(path), 'absent');
  // As wireguard-go killed by SIGKILL: its socket file stays, nobody accepts on it.
  const child = spawn(process.execPath, ['-e', `require('node:net').createServer().listen(${JSON.stringify(path)})`], { stdio: 'ignore' });
  t.after(() => child.kill('SIGKILL'));
  await until('the child to listen', () => existsSync(path));
  child.kill('SIGKILL');
  await once(child, 'exit');
  assert.equal(await probeUapiSocket(path), 'stale');
  assert.equal(await uapiSocketAnswers(path), false);
});

test('a path that cannot be a socket is unknown, not stale: nothing may be removed on it', async () => {
  assert.equal(await probeUapiSocket('/etc/passwd/wl0.sock'), 'unknown');
  assert.equal(await uapiSocketAnswers('/etc/passwd/wl0.sock'), false);
});
