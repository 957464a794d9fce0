import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startMeshCluster } from '../harness/mesh-cluster.js';
import { until } from '../support/wait.js';
import { skipUnlessSupported } from './support.js';

const NODES = [
  { name: 'a', location: 'east' },
  { name: 'b', location: 'east' },
  { name: 'c', location: 'west' },
  { name: 'd', location: 'west' },
];

test('file source, location granularity: every pod reaches every other pod', async (t) => {
  if (await skipUnlessSupported(t)) return;
  const { cluster } = await startMeshCluster(t, { nodes: NODES, source: 'file', agentArgs: ['--resync-period', '2s'] });
  for (const n of NODES) cluster.startAgent(n.name);
  await cluster.waitReady();
  const pods = cluster.sandbox.pods;
  for (const from of pods) {
    for (const to of pods) {
      if (from === to) continue;
      await until(`${from.name} → ${to.name}`, () => cluster.ping(from, to.ip), 10_000, 200);
    }
  }
});
