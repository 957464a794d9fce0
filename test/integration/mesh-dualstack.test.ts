// Issue 12, item 2 (IPv6 line): dual-stack pods across locations. Two locations on a dual-stack
// underlay, a leader and a non-leader in one of them; the agents run with a WireGuard subnet per
// family. IPv6 pods reach each other across locations in both directions, from and to the
// non-leader too, over WireGuard; IPv4 keeps working as before.
import assert from 'node:assert/strict';
import { type TestContext, test } from 'node:test';
import type { MeshCluster } from '../../src/sandbox/mesh-cluster.js';
import type { SandboxPod } from '../../src/sandbox/sandbox.js';
import { startMeshCluster } from '../harness/mesh-cluster.js';
import { AGENT_TOOLS, capabilitySkip } from '../support/capability.js';
import { until } from '../support/wait.js';

const skip = await capabilitySkip('mesh integration tests', AGENT_TOOLS);

// a leads east (first by name, no public endpoint), b is east's non-leader, c leads west.
const NODES = [
  { name: 'a', location: 'east', podCIDR: '10.244.0.0/24', podCIDR6: 'fd44:0:0:1::/64', underlayAddress6: 'fd31::10/64' },
  { name: 'b', location: 'east', podCIDR: '10.244.1.0/24', podCIDR6: 'fd44:0:0:2::/64', underlayAddress6: 'fd31::11/64' },
  { name: 'c', location: 'west', podCIDR: '10.244.2.0/24', podCIDR6: 'fd44:0:0:3::/64', underlayAddress6: 'fd31::12/64' },
];
const SUBNETS = ['10.4.0.0/16', 'fd00:4::/64'];

function podOf(cluster: MeshCluster, node: string): SandboxPod {
  const pod = cluster.sandbox.node(node).pods[0];
  assert.ok(pod, `node ${node} has a pod`);
  return pod;
}

function ipv6Of(pod: SandboxPod): string {
  assert.ok(pod.ipv6 !== undefined, `pod ${pod.name} has an IPv6 address`);
  return pod.ipv6;
}

/** The global addresses on a node's WireGuard interface, e.g. ['10.4.12.7/16', 'fd00:4::…/64']. */
async function wireguardAddresses(cluster: MeshCluster, node: string): Promise<string[]> {
  const r = await cluster.sandbox.exec(cluster.sandbox.node(node), 'ip', ['-j', 'addr', 'show', 'dev', cluster.interfaceOf(node)]);
  const links = JSON.parse(r.stdout) as { addr_info?: { local: string; prefixlen: number; scope: string }[] }[];
  return (links[0]?.addr_info ?? []).filter((a) => a.scope === 'global').map((a) => `${a.local}/${a.prefixlen}`);
}

// The file source gives each node both internal IPs (the sandbox writes them); with the Kubernetes
// source each agent finds its IPv6 underlay address itself and publishes both.
async function dualStack(t: TestContext, source: 'file' | 'kubernetes'): Promise<void> {
  const { cluster, api } = await startMeshCluster(t, { nodes: NODES, source, agentArgs: ['--resync-period', '2s', '--subnet', SUBNETS.join(',')] });
  for (const n of NODES) cluster.startAgent(n.name);
  await cluster.waitReady();
  // Ready is each agent's first apply: before b hears a's first heartbeat it may lead east itself
  // (and carry b's traffic on its own device), as Kilo's election does with a fresh last-seen.
  const leading = async () => Promise.all(['a', 'b', 'c'].map(async (n) => (await cluster.metrics(n)).get('wirelane_leader')));
  await until('a and c to lead, b to follow', async () => (await leading()).join() === '1,0,1', 30_000, 200);

  // Leaders hold a WireGuard address from each subnet; the non-leader's device has none.
  for (const leader of ['a', 'c']) {
    const addresses = await wireguardAddresses(cluster, leader);
    assert.equal(addresses.length, 2, `${leader}'s WireGuard addresses: ${addresses.join(', ')}`);
    assert.match(addresses.find((a) => !a.includes(':')) ?? '', /^10\.4\.\d+\.\d+\/16$/, `${leader}: an IPv4 WireGuard address`);
    assert.match(addresses.find((a) => a.includes(':')) ?? '', /^fd00:4::[0-9a-f:]+\/64$/, `${leader}: an IPv6 WireGuard address`);
  }
  assert.deepEqual(await wireguardAddresses(cluster, 'b'), [], 'a non-leader has no WireGuard address');

  const pods = NODES.map((n) => podOf(cluster, n.name));
  for (const from of pods) {
    for (const to of pods) {
      if (from === to) continue;
      assert.ok(await cluster.waitPing(from, to.ip), `IPv4: ${from.name} cannot reach ${to.name} (${to.ip})`);
      assert.ok(await cluster.waitPing(from, ipv6Of(to)), `IPv6: ${from.name} cannot reach ${to.name} (${ipv6Of(to)})`);
    }
  }

  // Between b (east's non-leader) and c the IPv6 path crosses both leaders' WireGuard devices.
  const [b, c] = [podOf(cluster, 'b'), podOf(cluster, 'c')];
  const PINGS = 5;
  const PAYLOAD = 1000;
  for (const [from, to, leaders] of [[b, c, ['a', 'c']], [c, b, ['c', 'a']]] as const) {
    const before = await Promise.all(leaders.map((n) => cluster.wireguardBytes(n)));
    for (let i = 0; i < PINGS; i++) assert.ok(await cluster.ping(from, ipv6Of(to), PAYLOAD), `IPv6 ${from.name} → ${to.name}`);
    const after = await Promise.all(leaders.map((n) => cluster.wireguardBytes(n)));
    leaders.forEach((n, i) => {
      const crossed = (after[i] as bigint) - (before[i] as bigint);
      // Each echo and its reply cross each leader's device once: at least PINGS × 2 × PAYLOAD bytes.
      assert.ok(crossed >= BigInt(PINGS * 2 * PAYLOAD), `IPv6 ${from.name} → ${to.name}: ${crossed} bytes on ${n}'s WireGuard device`);
    });
  }

  // The non-leader's own IPv6 routes go via its leader's IPv6 internal IP on the underlay.
  const routes = await cluster.sandbox.exec(cluster.sandbox.node('b'), 'ip', ['-6', 'route', 'show', 'fd44:0:0:3::/64']);
  assert.match(routes.stdout, /via fd31::10 /, `b's route to c's IPv6 pods: ${routes.stdout.trim()}`);

  if (api !== undefined) {
    // What the agents published: both internal IPs, and on leaders both WireGuard IPs (as on the
    // device), one CIDR per annotation: an agent from before dual stack parses the first as one.
    const annotation = (node: string, suffix: string): string | undefined => api.get('nodes', node)?.metadata.annotations?.[`wirelane.io/${suffix}`];
    for (const [i, n] of NODES.entries()) {
      assert.equal(annotation(n.name, 'internal-ip'), `172.31.0.${10 + i}/16`, `${n.name}'s internal-ip`);
      assert.equal(annotation(n.name, 'other-internal-ip'), n.underlayAddress6, `${n.name}'s other-internal-ip`);
    }
    for (const leader of ['a', 'c']) {
      const addresses = await wireguardAddresses(cluster, leader);
      assert.equal(annotation(leader, 'wireguard-ip'), addresses.find((a) => !a.includes(':')), `${leader}'s wireguard-ip: the first subnet's`);
      assert.equal(annotation(leader, 'other-wireguard-ip'), addresses.find((a) => a.includes(':')), `${leader}'s other-wireguard-ip`);
    }
    for (const suffix of ['wireguard-ip', 'other-wireguard-ip']) assert.equal(annotation('b', suffix), undefined, `a non-leader publishes no ${suffix}`);
  }
}

for (const source of ['file', 'kubernetes'] as const) {
  test(`dual stack, ${source} source: IPv6 pods reach each other across locations both ways, non-leader included, over WireGuard; IPv4 unchanged`, { skip }, (t) => dualStack(t, source));
}
