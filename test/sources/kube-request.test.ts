// The agent's writes over plain HTTP (kube-request.ts): a failure carries what its callers act on
// (the HTTP status, the Status reason), a call that gets no answer ends in a TimeoutError and
// gives up its request, and an unreachable server is a failure without a status.
import assert from 'node:assert/strict';
import { type IncomingMessage, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { TimeoutError } from '../../src/host/timeouts.js';
import { apiStatusOf } from '../../src/sources/kubernetes/api-call.js';
import { ApiFailure } from '../../src/sources/kubernetes/api-failure.js';
import { kubeCall } from '../../src/sources/kubernetes/kube-request.js';
import { loadKubeAccess } from '../../src/sources/kubernetes/kube-access.js';
import { leasesPath } from '../../src/sources/lease.js';
import { startKubeApiServer, writeKubeconfig } from '../kube-apiserver/index.js';
import { until } from '../support/wait.js';

async function kubeconfigFor(t: TestContext, server: string | { writeKubeconfig(path: string): Promise<void> }) {
  const dir = await mkdtemp(join(tmpdir(), 'wirelane-kube-request-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, 'kubeconfig');
  await (typeof server === 'string' ? writeKubeconfig(path, server) : server.writeKubeconfig(path));
  return loadKubeAccess(path);
}

const lease = { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: 'x', namespace: 'ns' }, spec: {} };

async function rejection(work: Promise<unknown>): Promise<unknown> {
  return work.then(
    () => assert.fail('the call succeeded'),
    (err: unknown) => err,
  );
}

test('a write answers the stored object; a refused one is an ApiFailure with its status and the Status reason', async (t) => {
  const server = await startKubeApiServer();
  t.after(() => server.close());
  const kubeconfig = await kubeconfigFor(t, server);
  const body = { value: lease, contentType: 'application/json' };
  const created = await kubeCall(kubeconfig, { method: 'POST', path: leasesPath('ns'), body, userAgent: 'tester' }, 10_000, 'creating');
  assert.equal((created.metadata as { name?: string }).name, 'x');
  assert.equal(typeof (created.metadata as { resourceVersion?: string }).resourceVersion, 'string');

  const conflict = await rejection(kubeCall(kubeconfig, { method: 'POST', path: leasesPath('ns'), body }, 10_000, 'creating again'));
  assert.ok(conflict instanceof ApiFailure);
  assert.equal(apiStatusOf(conflict), 409);
  assert.match(conflict.message, /^409 AlreadyExists: /);

  const missing = await rejection(kubeCall(kubeconfig, { method: 'GET', path: `${leasesPath('ns')}/y` }, 10_000, 'reading'));
  assert.ok(missing instanceof ApiFailure);
  assert.equal(apiStatusOf(missing), 404);
  assert.equal(missing.reason, 'not_found');
});

test('an API server that never answers: a TimeoutError naming the call, and its request given up', async (t) => {
  const held: IncomingMessage[] = [];
  let closed = 0;
  const silent = createServer((req) => {
    held.push(req); // never answered
    req.socket.on('close', () => closed++);
  });
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => silent.close(() => resolve())));
  const kubeconfig = await kubeconfigFor(t, `http://127.0.0.1:${(silent.address() as AddressInfo).port}`);
  const err = await rejection(kubeCall(kubeconfig, { method: 'GET', path: '/api/v1/nodes' }, 300, 'listing node a'));
  assert.ok(err instanceof TimeoutError, String(err));
  assert.match(err.message, /^listing node a timed out after 300 ms$/);
  assert.equal(apiStatusOf(err), undefined);
  assert.equal(held.length, 1);
  await until('the request to be given up', () => closed === 1);
});

test('an unreachable API server is a network failure without a status', async (t) => {
  const gone = createServer();
  await new Promise<void>((resolve) => gone.listen(0, '127.0.0.1', resolve));
  const port = (gone.address() as AddressInfo).port;
  await new Promise<void>((resolve) => gone.close(() => resolve()));
  const kubeconfig = await kubeconfigFor(t, `http://127.0.0.1:${port}`);
  const err = await rejection(kubeCall(kubeconfig, { method: 'PATCH', path: '/api/v1/nodes/a', body: { value: {}, contentType: 'application/merge-patch+json' } }, 10_000, 'PATCH node a'));
  assert.ok(err instanceof ApiFailure);
  assert.equal(err.reason, 'network');
  assert.equal(apiStatusOf(err), undefined);
});
