// Issue acceptance 1 and 2: every pod reaches every other pod, for each granularity and source, and
// WireGuard carries exactly the traffic it should.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { MeshCluster } from '../../src/sandbox/mesh-cluster.js';
import { startMeshCluster } from '../harness/mesh-cluster.js';
import { AGENT_TOOLS, capabilitySkip } from '../support/capability.js';

const skip = await capabilitySkip('mesh integration tests', AGENT_TOOLS);

const NODES = [
  { name: 'a', location: 'east' },
  { name: 'b', location: 'east' },
  { name: 'c', location: 'west' },
  { name: 'd', location: 'west' },
];

async function assertAllPodsReachEachOther(cluster: MeshCluster): Promise<void> {
  const pods = cluster.sandbox.pods;
  for (const from of pods) {
    for (const to of pods) {
      if (from !== to) assert.ok(await cluster.waitPing(from, to.ip), `${from.name} cannot reach ${to.name} (${to.ip})`);
    }
  }
}

const PINGS = 5;
const PAYLOAD = 1000;
/** What the pings put on WireGuard when they cross it: each echo and reply leaves one node and enters another. */
const PING_VOLUME = BigInt(PINGS * 2 * 2 * PAYLOAD);

/**
 * WireGuard bytes on every node, summed, around a burst of pings from one pod to another. The sum also
 * holds the mesh's own handshakes and keepalives (up to a few hundred bytes at any moment), so callers
 * compare it with the pings' volume rather than with zero.
 */
async function wireguardBytesDuring(cluster: MeshCluster, from: string, to: string): Promise<bigint> {
  const total = async () => {
    let sum = 0n;
    for (const n of NODES) sum += await cluster.wireguardBytes(n.name);
    return sum;
  };
  const before = await total();
  const fromPod = cluster.sandbox.node(from).pods[0]!;
  const toPod = cluster.sandbox.node(to).pods[0]!;
  for (let i = 0; i < PINGS; i++) assert.ok(await cluster.ping(fromPod, toPod.ip, PAYLOAD), `${from} → ${to}`);
  return (await total()) - before;
}

const cases = [
  { granularity: 'location', source: 'kubernetes', sameLocationUsesWireGuard: false },
  { granularity: 'location', source: 'file', sameLocationUsesWireGuard: false },
  { granularity: 'full', source: 'file', sameLocationUsesWireGuard: true },
  { granularity: 'cross', source: 'kubernetes', sameLocationUsesWireGuard: false },
] as const;

for (const { granularity, source, sameLocationUsesWireGuard } of cases) {
  test(`${granularity} granularity, ${source} source: every pod reaches every pod, and WireGuard carries ${sameLocationUsesWireGuard ? 'all' : 'only cross-location'} traffic`, { skip }, async (t) => {
      const { cluster } = await startMeshCluster(t, { nodes: NODES, source, agentArgs: ['--resync-period', '2s', '--mesh-granularity', granularity] });
    for (const n of NODES) cluster.startAgent(n.name);
    await cluster.waitReady();
    await assertAllPodsReachEachOther(cluster);
    // b and d are not leaders under location granularity: the path crosses both leaders.
    assert.ok((await wireguardBytesDuring(cluster, 'b', 'd')) >= PING_VOLUME, 'cross-location traffic must cross WireGuard');
    const inside = await wireguardBytesDuring(cluster, 'a', 'b');
    if (sameLocationUsesWireGuard) assert.ok(inside >= PING_VOLUME, 'under full granularity every node pair uses WireGuard');
    else assert.ok(inside < PING_VOLUME / 4n, `traffic inside a location must stay on the underlay (${inside} WireGuard bytes)`);
  });
}
