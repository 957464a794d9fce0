// LeaseHeartbeats against the test API server: what it writes, what it hears, how it fails.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { createLogger } from '../../src/observability/logger.js';
import { loadKubeAccess } from '../../src/sources/kubernetes/kube-access.js';
import { LeaseHeartbeats } from '../../src/sources/kubernetes/lease-heartbeats.js';
import { nodeLease, nodeLeaseName, segmentLeaseName } from '../../src/sources/lease.js';
import { type KubeObject, startKubeApiServer } from '../kube-apiserver/index.js';
import { until } from '../support/wait.js';

const NS = 'wirelane';
const RENEW_MS = 100;

async function start(t: TestContext, node = 'a') {
  const server = await startKubeApiServer();
  const dir = await mkdtemp(join(tmpdir(), 'wirelane-leases-'));
  await server.writeKubeconfig(join(dir, 'kubeconfig'));
  let changes = 0;
  const heartbeats = new LeaseHeartbeats(
    { namespace: NS, node, renewEveryMs: RENEW_MS, durationSeconds: 1 },
    { access: await loadKubeAccess(join(dir, 'kubeconfig')), log: createLogger('silent'), maxBackoffMs: 200, onChange: () => changes++ },
  );
  t.after(async () => {
    await heartbeats.stop();
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });
  const other = (holder: string, location: string) =>
    server.create('leases', nodeLease({ namespace: NS, holder, location, renewMs: Date.now(), durationSeconds: 1 }, undefined) as KubeObject);
  return { server, heartbeats, other, changes: () => changes };
}

test('a followed location: its node Lease renewed on the timer, its location heard, no other', async (t) => {
  const { server, heartbeats, other } = await start(t);
  other('b', 'east');
  other('c', 'west');
  heartbeats.start();
  heartbeats.follow('east');
  await until('a Lease for a', () => server.get('leases', nodeLeaseName('a'), NS) !== undefined, 5000);
  const lease = server.get('leases', nodeLeaseName('a'), NS)!;
  assert.deepEqual(lease.metadata.labels, { 'wirelane.io/lease': 'node', 'wirelane.io/location': 'east' });
  const first = lease.metadata.resourceVersion;
  await until('a renewal', () => server.get('leases', nodeLeaseName('a'), NS)?.metadata.resourceVersion !== first, 5000);
  await until('east heard', () => heartbeats.heard().nodes.size === 2, 5000);
  assert.deepEqual([...heartbeats.heard().nodes.keys()].sort(), ['a', 'b'], "c's Lease (west) is never listed nor watched");
  assert.ok(server.requestsOf('watch', 'leases').every((r) => r.query.includes('labelSelector=')), 'every Lease watch is narrowed');
  assert.equal(server.requestCount('update', 'leases') + server.requestCount('create', 'leases') > 1, true);
});

test("leading: the segment Lease names the members, at once on a change and once a period after", async (t) => {
  const { server, heartbeats, changes } = await start(t);
  heartbeats.start();
  heartbeats.follow('east');
  heartbeats.lead({ key: 'location:east', location: 'east', members: ['b', 'a'] });
  const name = segmentLeaseName('location:east');
  await until('the segment Lease', () => server.get('leases', name, NS)?.metadata.annotations?.['wirelane.io/members'] === 'a,b', 5000);
  await until('it heard', () => heartbeats.heard().segments.length === 1, 5000);
  const before = changes();
  heartbeats.lead({ key: 'location:east', location: 'east', members: ['a'] });
  await until('the new members', () => server.get('leases', name, NS)?.metadata.annotations?.['wirelane.io/members'] === 'a', 5000);
  await until('a change of members to be a change', () => changes() > before, 5000);
  const renewals = () => server.requestsOf('update', 'leases').filter((r) => r.path.endsWith(name)).length;
  const n = renewals();
  await until('a periodic renewal', () => renewals() > n, 5000);
  // Someone else wrote it (a former leader): the next renewal conflicts, reads, and writes again.
  const current = server.get('leases', name, NS)!;
  server.update('leases', { ...current, spec: { ...(current.spec as object), holderIdentity: 'z' } });
  await until('a to hold it again', () => (server.get('leases', name, NS)?.spec as { holderIdentity?: string }).holderIdentity === 'a', 5000);
  heartbeats.lead(undefined);
});

test('an outage: renewals fail and the watches break, which the agent reads as blind', async (t) => {
  const { server, heartbeats } = await start(t);
  heartbeats.start();
  heartbeats.follow('east');
  await until('watching', () => heartbeats.heard().watchingSince !== undefined, 5000);
  assert.equal(heartbeats.heard().renewFailedAt, undefined);
  server.failRequests({ status: 500 });
  await until('a failed renewal', () => heartbeats.heard().renewFailedAt !== undefined, 5000);
  assert.equal(heartbeats.heard().watchingSince, undefined, 'no watch streams');
  server.clearFaults();
  const failedAt = heartbeats.heard().renewFailedAt ?? 0;
  await until('watching again', () => heartbeats.heard().watchingSince !== undefined, 10_000);
  assert.ok((heartbeats.heard().watchingSince ?? 0) >= failedAt - RENEW_MS, 'a new stream, after the outage');
});
