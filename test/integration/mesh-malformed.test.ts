// Issue acceptance 7: a malformed annotation on one node costs only that annotation: one log line,
// one count in the metric, and the whole mesh keeps working.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startMeshCluster } from '../harness/mesh-cluster.js';
import { until } from '../support/wait.js';
import { AGENT_TOOLS, capabilitySkip } from '../support/capability.js';

const skip = await capabilitySkip('mesh integration tests', AGENT_TOOLS);

test('a malformed annotation is reported once per agent and the mesh keeps working', { skip }, async (t) => {
  const nodes = [
    { name: 'a', location: 'east' },
    { name: 'b', location: 'east', annotations: { 'wirelane.io/persistent-keepalive': 'often' } },
    { name: 'c', location: 'west' },
  ];
  const { cluster } = await startMeshCluster(t, { nodes, source: 'kubernetes', agentArgs: ['--resync-period', '1s'] });
  for (const n of nodes) cluster.startAgent(n.name);
  await cluster.waitReady();
  for (const from of cluster.sandbox.pods) {
    for (const to of cluster.sandbox.pods) {
      if (from !== to) assert.ok(await cluster.waitPing(from, to.ip), `${from.name} → ${to.name}`);
    }
  }
  // Let a few resyncs pass: the problem must not be logged or counted again.
  const reconciles = async (n: string) => (await cluster.metrics(n)).get('wirelane_reconcile_duration_seconds_count') ?? 0;
  const start = await reconciles('a');
  await until('three more resyncs', async () => (await reconciles('a')) >= start + 3, 10_000, 100);
  for (const n of nodes) {
    const lines = (await cluster.log(n.name)).split('\n').filter((l) => l.includes('annotation wirelane.io/persistent-keepalive'));
    assert.equal(lines.length, 1, `agent ${n.name} logs the problem once`);
    assert.match(lines[0]!, /Node \\"b\\": annotation wirelane.io\/persistent-keepalive: \\"often\\" is not a keepalive/);
    assert.equal((await cluster.metrics(n.name)).get('wirelane_invalid_objects_total{kind="Node"}'), 1, `agent ${n.name} counts it once`);
  }
});
