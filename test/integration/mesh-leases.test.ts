// Issue 16, item 3: heartbeats without fan-out. Each agent renews a node Lease that only its own
// location watches, and its location's leader a segment Lease everyone watches; no Node is written
// on a timer. Asserted against the test API server's per-client tallies of what its watches sent:
// c (west) is never told of a or b's (east) node Lease renewals, nor of any Node change, while b is
// told of a's. Then, under the new design: an outage of three heartbeat windows ages nobody, and a
// node that dies is judged gone by its own location and, through its leader, by the other.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { DEFAULT_LEASE_NAMESPACE, nodeLeaseName, segmentLeaseName } from '../../src/sources/lease.js';
import { startMeshCluster } from '../harness/mesh-cluster.js';
import type { KubeApiServer } from '../kube-apiserver/index.js';
import { AGENT_TOOLS, capabilitySkip } from '../support/capability.js';
import { until } from '../support/wait.js';

const skip = await capabilitySkip('mesh integration tests', AGENT_TOOLS);

const RESYNC_SECONDS = 2;
const WINDOW_MS = 2 * RESYNC_SECONDS * 1000;
const NS = DEFAULT_LEASE_NAMESPACE;
const clientOf = (node: string): string => `wirelane (node ${node})`;

test('Lease heartbeats: a location hears its own nodes and the leaders of the others; the dead go, an outage ages nobody', { skip, timeout: 300_000 }, async (t) => {
  const { cluster, api: maybeApi } = await startMeshCluster(t, {
    nodes: [
      { name: 'a', location: 'east', annotations: { 'wirelane.io/leader': '' } },
      { name: 'b', location: 'east' },
      { name: 'c', location: 'west' },
    ],
    source: 'kubernetes',
    agentArgs: ['--resync-period', `${RESYNC_SECONDS}s`],
  });
  const api = maybeApi as KubeApiServer;
  cluster.startAgent('a');
  // b dies later without cleaning up, like a crashed node: its Lease simply stops being renewed.
  cluster.startAgent('b', ['--clean-up=false']);
  cluster.startAgent('c');
  await cluster.waitReady();
  const [podA, podB, podC] = (['a', 'b', 'c'] as const).map((n) => cluster.sandbox.node(n).pods[0]!);
  const nodeCount = async (n: string) => (await cluster.metrics(n)).get('wirelane_nodes');
  const counts = async () => `a ${await nodeCount('a')}, b ${await nodeCount('b')}, c ${await nodeCount('c')}`;
  await until('every agent to count every node', async () => (await counts()) === 'a 3, b 3, c 3', 30_000, 200).catch(async (err: Error) => {
    throw new Error(`${err.message} (${await counts()})`);
  });
  assert.ok(await cluster.waitPing(podC!, podB!.ip, 30_000), 'c reaches b through leader a');
  await until('every heartbeat Lease to exist', async () =>
    [nodeLeaseName('a'), nodeLeaseName('b'), nodeLeaseName('c'), segmentLeaseName('location:east'), segmentLeaseName('location:west')].every(
      (name) => api.get('leases', name, NS) !== undefined,
    ),
  10_000, 100);

  // Steady state: three resync periods of what each agent is sent.
  api.resetDeliveries();
  await sleep(3 * RESYNC_SECONDS * 1000);
  const leasesTo = (n: string) => api.deliveries('leases').get(clientOf(n))?.objects ?? new Map<string, number>();
  const east = `${NS}/${segmentLeaseName('location:east')}`;
  assert.deepEqual(
    [...leasesTo('c').keys()].filter((k) => k === `${NS}/${nodeLeaseName('a')}` || k === `${NS}/${nodeLeaseName('b')}`),
    [],
    `c (west) is sent no east node Lease (it was sent ${[...leasesTo('c').keys()].join(', ')})`,
  );
  assert.ok((leasesTo('c').get(east) ?? 0) >= 1, "c hears east's leader through the east segment Lease");
  assert.ok((leasesTo('c').get(`${NS}/${nodeLeaseName('c')}`) ?? 0) >= 2, 'c hears its own location');
  assert.ok((leasesTo('b').get(`${NS}/${nodeLeaseName('a')}`) ?? 0) >= 2, "b hears a's renewals: same location");
  assert.equal(leasesTo('b').get(`${NS}/${nodeLeaseName('c')}`), undefined, "b is not sent c's");
  for (const n of ['a', 'b', 'c']) {
    assert.equal(api.deliveries('nodes').get(clientOf(n))?.events ?? 0, 0, `${n} is sent no Node event: nobody writes a Node on a timer`);
  }

  // An outage of three heartbeat windows: every renewal fails and every watch breaks; nobody ages.
  // A /metrics read can time out on a loaded machine (curl's 2 s): such a sample says nothing, but
  // every agent must have been read several times in each phase.
  const reads = new Map<string, number>();
  const everyNodeCounted = async (phase: string) => {
    for (const n of ['a', 'c']) {
      const count = await nodeCount(n);
      if (count === undefined) continue;
      reads.set(`${phase} ${n}`, (reads.get(`${phase} ${n}`) ?? 0) + 1);
      assert.equal(count, 3, `${phase}: ${n} still counts every node`);
    }
  };
  api.failRequests({ status: 500 });
  const outageEnds = Date.now() + 3 * WINDOW_MS;
  try {
    while (Date.now() < outageEnds) {
      await everyNodeCounted('during the outage');
      await sleep(500);
    }
  } finally {
    api.clearFaults();
  }
  const afterOutage = Date.now() + WINDOW_MS;
  while (Date.now() < afterOutage) {
    await everyNodeCounted('a window after the outage');
    await sleep(500);
  }
  for (const key of ['during the outage a', 'during the outage c', 'a window after the outage a', 'a window after the outage c']) {
    assert.ok((reads.get(key) ?? 0) >= 2, `${key}: read ${reads.get(key) ?? 0} times`);
  }
  assert.ok(await cluster.waitPing(podC!, podB!.ip, 20_000), 'c still reaches b');

  // b dies: a judges it gone from its node Lease, c from a's segment Lease (a stops vouching for b).
  await cluster.stopAgent('b');
  const deadline = 10 * WINDOW_MS;
  await until('a to judge b gone', async () => (await nodeCount('a')) === 2, deadline, 200);
  await until('c to judge b gone', async () => (await nodeCount('c')) === 2, deadline, 200);
  const members = api.get('leases', segmentLeaseName('location:east'), NS)?.metadata.annotations?.['wirelane.io/members'];
  assert.equal(members, 'a', 'the east leader vouches for itself alone');
  assert.ok(await cluster.waitPing(podC!, podA!.ip, 20_000), 'c still reaches a');
});
