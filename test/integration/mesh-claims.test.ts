// Issue 11, item 4, on the kernel: a Peer that claims another location's pod CIDR and a default route
// loses those prefixes only. The victim's routes and WireGuard peer stay as they were, the mesh keeps
// working, no default route goes through the mesh, and the agent says so once, with a metric.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { generatePrivateKey, publicKeyOf } from '../../src/model/key.js';
import { startMeshCluster } from '../harness/mesh-cluster.js';
import { AGENT_TOOLS, capabilitySkip } from '../support/capability.js';
import { until } from '../support/wait.js';

const skip = await capabilitySkip('mesh integration tests', AGENT_TOOLS);

test("a Peer claiming another location's pod CIDR and a default route changes nothing of the victim's", { skip }, async (t) => {
  const { cluster } = await startMeshCluster(t, {
    nodes: [
      { name: 'a', location: 'east' },
      { name: 'c', location: 'west' },
    ],
    source: 'file',
    agentArgs: ['--resync-period', '3s'],
  });
  for (const n of ['a', 'c']) cluster.startAgent(n);
  await cluster.waitReady();
  const { sandbox } = cluster;
  const [podA, podC] = [sandbox.node('a').pods[0]!, sandbox.node('c').pods[0]!];
  assert.ok(await cluster.waitPing(podA, podC.ip));
  const state = async () => ({
    routes: (await sandbox.exec(sandbox.node('a'), 'ip', ['route', 'show', 'table', 'all', 'proto', '0x57'])).stdout,
    peers: (await sandbox.exec(sandbox.node('a'), 'wg', ['show', cluster.interfaceOf('a'), 'allowed-ips'])).stdout,
  });
  const before = await state();
  const victimCidr = sandbox.node('c').podCIDRs[0]!;

  const hostileKey = publicKeyOf(generatePrivateKey());
  await cluster.editClusterFile((objects) =>
    objects.push({
      apiVersion: 'wirelane.io/v1alpha1',
      kind: 'Peer',
      metadata: { name: 'hostile' },
      spec: { allowedIPs: [victimCidr, '0.0.0.0/0', '10.5.0.9/32'], publicKey: hostileKey },
    }),
  );
  // The Peer's one fair prefix arrives: the claims were resolved in that reconcile.
  await until('the Peer to be configured', async () => (await state()).peers.includes('10.5.0.9/32'), 20_000, 200);
  const after = await state();
  const withoutFairPrefix = (text: string) => text.split('\n').filter((line) => !line.includes('10.5.0.9')).join('\n');
  assert.equal(withoutFairPrefix(after.peers), before.peers, "the victim's WireGuard peer is as it was");
  assert.equal(withoutFairPrefix(after.routes), before.routes, "no route of the victim's changed, and no default route appeared");
  assert.ok(await cluster.waitPing(podA, podC.ip), 'the victim is still reached');
  const log = await cluster.log('a');
  assert.match(log, new RegExp(`ignored: Peer \\\\"hostile\\\\": spec\\.allowedIPs: ${victimCidr.replace(/[./]/g, '\\$&')} overlaps the pod CIDR of Node \\\\"c\\\\"`));
  assert.match(log, /ignored: Peer \\"hostile\\": spec\.allowedIPs: 0\.0\.0\.0\/0 wider than \/8/);
  assert.equal((await cluster.metrics('a')).get('wirelane_rejected_claims_total{kind="Peer"}'), 2);
});
