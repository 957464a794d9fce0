// Issue acceptance 6: on exit with --clean-up (the default) the agent leaves no link, address,
// route, rule, iptables chain, process or annotation of its own behind.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AGENT_WRITTEN, PREFIX } from '../../src/sources/annotations.js';
import { startMeshCluster } from '../harness/mesh-cluster.js';
import { AGENT_TOOLS, capabilitySkip } from '../support/capability.js';
import { nodeState } from '../support/leftovers.js';

const skip = await capabilitySkip('mesh integration tests', [...AGENT_TOOLS, ['bpftool', ['version']]]);

test('--clean-up removes every link, route, rule, chain, process and annotation the agent made', { skip }, async (t) => {
  const nodes = [
    { name: 'a', location: 'east' },
    { name: 'b', location: 'east' },
    { name: 'c', location: 'west' },
  ];
  const { cluster, api } = await startMeshCluster(t, {
    nodes,
    source: 'kubernetes',
    agentArgs: ['--resync-period', '2s', '--encapsulate', 'always', '--iptables-forward-rules'],
  });
  const before = new Map<string, Awaited<ReturnType<typeof nodeState>>>();
  for (const n of nodes) before.set(n.name, await nodeState(cluster, n.name));
  for (const n of nodes) cluster.startAgent(n.name);
  await cluster.waitReady();
  assert.ok(await cluster.waitPing(cluster.sandbox.node('b').pods[0]!, cluster.sandbox.node('c').pods[0]!.ip));
  const during = await nodeState(cluster, 'a');
  assert.ok(during.iptables.some((l) => l.startsWith(':WIRELANE-')), 'the agent made iptables chains');
  assert.ok(during.links.some((l) => l.startsWith(cluster.interfaceOf('a'))), 'the agent made its WireGuard link');

  for (const n of nodes) assert.equal(await cluster.stopAgent(n.name), 0, `agent ${n.name} exits cleanly`);
  for (const n of nodes) {
    assert.deepEqual(await nodeState(cluster, n.name), before.get(n.name), `node ${n.name} is as it was`);
    const annotations = Object.keys(api!.get('nodes', n.name)?.metadata.annotations ?? {});
    assert.deepEqual(annotations.filter((k) => AGENT_WRITTEN.some((s) => k === PREFIX + s)), [], `node ${n.name} annotations`);
  }
});
