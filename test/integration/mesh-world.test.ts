// Issue 12, item 2: the mesh on the routed world (src/sandbox/world.ts): east entirely behind NAT
// on two subnets, west with one public node, the internet's 1,380-byte MTU. One cluster, the
// Kubernetes source (discovered endpoints are published through it), one agent per node.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { MeshCluster } from '../../src/sandbox/mesh-cluster.js';
import { NAT_KEEPALIVE_SECONDS, WORLD_INTERNET, WORLD_LANS } from '../../src/sandbox/world.js';
import { createMeshCluster, type TestMeshCluster } from '../harness/mesh-cluster.js';
import { until } from '../support/wait.js';
import { AGENT_TOOLS, capabilitySkip } from '../support/capability.js';

const skip = await capabilitySkip('mesh integration tests', AGENT_TOOLS);

// Heartbeats age within two resync periods: 5 s keeps a loaded machine from judging live nodes gone.
const RESYNC_SECONDS = 5;
const BEHIND_NAT = { 'wirelane.io/persistent-keepalive': String(NAT_KEEPALIVE_SECONDS) };
const NODES = [
  { name: 'a', location: 'east', underlayAddress: WORLD_LANS.east1.v4(11), underlayAddress6: WORLD_LANS.east1.v6(11), annotations: BEHIND_NAT },
  { name: 'b', location: 'east', underlayAddress: WORLD_LANS.east2.v4(11), underlayAddress6: WORLD_LANS.east2.v6(11), annotations: BEHIND_NAT },
  { name: 'c', location: 'west', underlayAddress: WORLD_LANS.west.v4(11), underlayAddress6: WORLD_LANS.west.v6(11), publicAddress: WORLD_LANS.west.public(11) },
  { name: 'd', location: 'west', underlayAddress: WORLD_LANS.west.v4(12), underlayAddress6: WORLD_LANS.west.v6(12) },
  { name: 'e', location: 'east', underlayAddress: WORLD_LANS.east1.v4(12), underlayAddress6: WORLD_LANS.east1.v6(12), annotations: BEHIND_NAT },
];

/** The annotations the test API server holds for a node (what its agent published). */
function annotationsOf(world: TestMeshCluster, name: string): Record<string, string> {
  const node = world.api!.get('nodes', name) as { metadata: { annotations?: Record<string, string> } } | undefined;
  return node?.metadata.annotations ?? {};
}

/** Pings once every half second, `count` times; how many were lost. */
async function lossesOf(cluster: MeshCluster, from: { readonly netns: string }, to: string, count: number): Promise<number> {
  const r = await cluster.sandbox.exec(from, 'ping', ['-c', String(count), '-i', '0.5', '-W', '1', to], { allowFailure: true });
  const m = /(\d+) packets transmitted, (\d+) received/.exec(r.stdout);
  if (m === null) throw new Error(`ping printed no summary: ${r.stdout} ${r.stderr}`);
  return Number(m[1]) - Number(m[2]);
}

describe('the mesh on a routed world with NAT', { skip }, () => {
  let world: TestMeshCluster;
  let cluster: MeshCluster;
  let failed = false;

  before(async () => {
    world = await createMeshCluster({
      nodes: NODES,
      source: 'kubernetes',
      internet: WORLD_INTERNET,
      outside: [{ name: 'laptop', underlayAddress: WORLD_LANS.home.v4(10), underlayAddress6: WORLD_LANS.home.v6(10) }],
      agentArgs: ['--resync-period', `${RESYNC_SECONDS}s`, '--encapsulate', 'crosssubnet'],
    });
    cluster = world.cluster;
    for (const n of NODES) cluster.startAgent(n.name);
    await cluster.waitReady();
  });
  after(async () => {
    if (process.env['DEBUG_HOLD']) { process.stderr.write(`HOLD ${cluster.sandbox.prefix}\n`); await new Promise((r) => setTimeout(r, 400_000)); }
    if (process.env['DEBUG_KEEP'] && cluster) await cluster.sandbox.exec(cluster.sandbox.node('a'), 'cp', ['-r', cluster.dir, '/tmp/topology-debug']);
    await world?.destroy(failed);
  });
  const check = (name: string, body: () => Promise<void>) =>
    test(name, async () => {
      try {
        await body();
      } catch (err) {
        failed = true;
        throw err;
      }
    });

  check('nodes behind NAT join with no configured endpoint, and pods reach each other across every pair of locations', async () => {
    // Nobody configured an endpoint: each agent published what it found on its host.
    assert.equal(annotationsOf(world, 'a')['wirelane.io/endpoint'], '10.1.1.11:51820', 'a publishes its private address');
    assert.equal(annotationsOf(world, 'c')['wirelane.io/endpoint'], '203.0.113.11:51820', 'c publishes its public address');
    const pods = cluster.sandbox.pods;
    for (const from of pods) {
      for (const to of pods) {
        if (from === to) continue;
        assert.ok(await cluster.waitPing(from, to.ip, 30_000), `${from.name} reaches ${to.name}`);
      }
    }
    // West's leader saw east's leader at east's router, and published it; east's other nodes are not roaming peers of c.
    const discovered = JSON.parse(annotationsOf(world, 'c')['wirelane.io/discovered-endpoints'] ?? '{}') as Record<string, string>;
    const aKey = annotationsOf(world, 'a')['wirelane.io/key']!;
    assert.match(discovered[aKey] ?? '', new RegExp(`^${cluster.sandbox.router('east').internetIP.replaceAll('.', '\\.')}:\\d+$`), 'c published where it saw a');
  });

  check('when the NAT router forgets its mappings, the public side settles on the new mapping', async () => {
    const podA = cluster.sandbox.node('a').pods[0]!;
    const podC = cluster.sandbox.node('c').pods[0]!;
    assert.ok(await cluster.waitPing(podC, podA.ip, 30_000), 'c reaches a before');
    await cluster.sandbox.exec(cluster.sandbox.router('east').netns, 'conntrack', ['-F']);
    assert.ok(await cluster.waitPing(podC, podA.ip, 60_000), 'c reaches a again');
    const lost = await lossesOf(cluster, podC, podA.ip, 20);
    process.stderr.write(`after the flush: ${lost} of 20 lost\n`);
    assert.equal(lost, 0, 'no ping of the next 20 is lost: the tunnel does not flap');
  });
});
