// An agent whose start-up fails exits with the error, although its source was already listing: the
// Kubernetes source lists while the data paths load (agent.ts), and its watches would keep the
// process up. Touches no kernel state: no service proxy, no CNI, and it fails before the first
// reconcile (its health port is taken).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { type AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { cliPath } from '../../src/sandbox/mesh-cluster.js';
import { startKubeApiServer } from '../kube-apiserver/index.js';

test('an agent whose health port is taken exits with the error while its source lists', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'wirelane-start-failure-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const server = await startKubeApiServer();
  t.after(() => server.close());
  const kubeconfig = join(dir, 'kubeconfig');
  await server.writeKubeconfig(kubeconfig);
  const taken = createServer();
  await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => taken.close(() => resolve())));
  const port = (taken.address() as AddressInfo).port;

  const args = ['agent', '--source', 'kubernetes', '--kubeconfig', kubeconfig, '--hostname', 'start-failure', '--state-dir', dir];
  args.push('--interface', 'wlsf0', '--listen', `127.0.0.1:${port}`, '--metrics-listen', '127.0.0.1:0', '--service-proxy', 'off');
  const agent = spawn(process.execPath, [cliPath(), ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  t.after(() => {
    if (agent.exitCode === null && agent.signalCode === null) agent.kill('SIGKILL');
  });
  let stderr = '';
  agent.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const exit = await new Promise<number | null>((resolve) => {
    const timer = setTimeout(() => resolve(null), 30_000);
    agent.on('exit', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
  assert.equal(exit, 1, `the agent exits with 1 (null: still running after 30 s). stderr:\n${stderr}`);
  assert.match(stderr, /EADDRINUSE/);
  assert.ok(server.requests.some((r) => r.verb === 'list'), 'the source had listed before the failure');
});
