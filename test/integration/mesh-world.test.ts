// Issue 12, item 2: the mesh on the routed world (src/sandbox/world.ts): east entirely behind NAT
// on two subnets, west with one public node, the internet's 1,380-byte MTU. One cluster, the
// Kubernetes source (discovered endpoints are published through it), one agent per node.
import assert from 'node:assert/strict';
import { after, before, describe } from 'node:test';
import type { MeshCluster } from '../../src/sandbox/mesh-cluster.js';
import type { SandboxPod } from '../../src/sandbox/sandbox.js';
import { NAT_KEEPALIVE_SECONDS, WORLD_INTERNET, WORLD_LANS } from '../../src/sandbox/world.js';
import { annotationsOf, createMeshCluster, suiteChecks, type TestMeshCluster } from '../harness/mesh-cluster.js';
import { until } from '../support/wait.js';
import { AGENT_TOOLS, capabilitySkip } from '../support/capability.js';

const skip = await capabilitySkip('mesh integration tests', AGENT_TOOLS);

// A node is gone when its heartbeat is older than two resync periods: at 2 s or 5 s, agents on this
// shared machine (load 25 to 35 on 2 cores) missed them and the peers came and went; 10 s keeps live
// nodes live. Changes still apply at once (watch events), not at the next resync.
const RESYNC_SECONDS = 10;
const BEHIND_NAT = { 'wirelane.io/persistent-keepalive': String(NAT_KEEPALIVE_SECONDS) };
const NODES = [
  { name: 'a', location: 'east', underlayAddress: WORLD_LANS.east1.v4(11), underlayAddress6: WORLD_LANS.east1.v6(11), podCIDR6: 'fd44:0:0:1::/64', annotations: BEHIND_NAT },
  { name: 'b', location: 'east', underlayAddress: WORLD_LANS.east2.v4(11), underlayAddress6: WORLD_LANS.east2.v6(11), podCIDR6: 'fd44:0:0:2::/64', annotations: BEHIND_NAT },
  { name: 'c', location: 'west', underlayAddress: WORLD_LANS.west.v4(11), underlayAddress6: WORLD_LANS.west.v6(11), publicAddress: WORLD_LANS.west.public(11) },
  { name: 'd', location: 'west', underlayAddress: WORLD_LANS.west.v4(12), underlayAddress6: WORLD_LANS.west.v6(12) },
  { name: 'e', location: 'east', underlayAddress: WORLD_LANS.east1.v4(12), underlayAddress6: WORLD_LANS.east1.v6(12), podCIDR6: 'fd44:0:0:5::/64', annotations: BEHIND_NAT },
];

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
  const { check, fail, failed } = suiteChecks();

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
    // Five agents' first reconciles on a loaded machine: a bound for a slow start, not a measure.
    await cluster.waitReady(undefined, 300_000).catch((err: unknown) => {
      fail();
      throw err;
    });
  });
  after(async () => {
    await world?.destroy(failed());
  });

  check('nodes behind NAT join with no configured endpoint, and pods reach each other across every pair of locations', async () => {
    // Nobody configured an endpoint: each agent published what it found on its host.
    assert.equal(annotationsOf(world, 'a')['wirelane.io/endpoint'], '10.1.1.11:51820', 'a publishes its private address');
    assert.equal(annotationsOf(world, 'c')['wirelane.io/endpoint'], '203.0.113.11:51820', 'c publishes its public address');
    const pods = cluster.sandbox.pods;
    for (const from of pods) {
      for (const to of pods) {
        if (from === to) continue;
        assert.ok(await cluster.waitPing(from, to.ip, 60_000), `${from.name} reaches ${to.name}`);
      }
    }
    // West's leader saw east's leader at east's router, and published it; east's other nodes are not roaming peers of c.
    const discovered = JSON.parse(annotationsOf(world, 'c')['wirelane.io/discovered-endpoints'] ?? '{}') as Record<string, string>;
    const aKey = annotationsOf(world, 'a')['wirelane.io/key']!;
    assert.match(discovered[aKey] ?? '', new RegExp(`^${cluster.sandbox.router('east').internetIP.replaceAll('.', '\\.')}:\\d+$`), 'c published where it saw a');
  });

  check('crosssubnet encapsulates between the subnets of a location and never within one, IPv4 and IPv6', async () => {
    const [podA, podB, podE] = ['a', 'b', 'e'].map((n) => cluster.sandbox.node(n).pods[0]!);
    // Between subnets: b's pod and a's cross east's router only inside VXLAN (the router knows no pod CIDR).
    const acrossBefore = await tunnelTxPackets(cluster, 'b');
    assert.ok(await cluster.waitPing(podB!, podA!.ip, 30_000), 'b reaches a across the subnets');
    assert.ok(await pingCount(cluster, podB!, podA!.ip, 5), 'five more pings');
    assert.ok((await tunnelTxPackets(cluster, 'b')) - acrossBefore >= 5, "b's tunnel device carried them");
    // Within a subnet: a and e talk directly, and neither tunnel device sends a packet.
    const withinBefore = [await tunnelTxPackets(cluster, 'a'), await tunnelTxPackets(cluster, 'e')];
    assert.ok(await pingCount(cluster, podA!, podE!.ip, 5), 'a reaches e five times');
    assert.deepEqual([await tunnelTxPackets(cluster, 'a'), await tunnelTxPackets(cluster, 'e')], withinBefore, 'no encapsulation within a subnet');
    assert.equal(await cluster.sandbox.exec(cluster.sandbox.node('a'), 'ip', ['route', 'get', podE!.ip]).then((r) => / dev eth0 /.test(r.stdout)), true, "a's route to e's pod is the plain underlay");
    // IPv6 too: the VXLAN tunnel (an IPv4 underlay) carries it between the subnets, and within one
    // subnet it goes plain, as IPv4 does.
    const across6 = await tunnelTxPackets(cluster, 'b');
    assert.ok(await cluster.waitPing(podB!, podA!.ipv6!, 30_000), "b reaches a's pod over IPv6 across the subnets");
    assert.ok(await pingCount(cluster, podB!, podA!.ipv6!, 5), 'five more IPv6 pings');
    assert.ok((await tunnelTxPackets(cluster, 'b')) - across6 >= 5, "b's tunnel device carried them");
    const within6 = [await tunnelTxPackets(cluster, 'a'), await tunnelTxPackets(cluster, 'e')];
    assert.ok(await pingCount(cluster, podA!, podE!.ipv6!, 5), "a reaches e's pod five times over IPv6");
    assert.deepEqual([await tunnelTxPackets(cluster, 'a'), await tunnelTxPackets(cluster, 'e')], within6, 'no IPv6 encapsulation within a subnet');
  });

  check('--mtu auto follows the underlay, pods get the mesh MTU, and a bulk transfer crosses the 1,380-byte internet', async () => {
    const a = cluster.sandbox.node('a');
    const underlay = Number((await cluster.sandbox.exec(a, 'cat', [`/sys/class/net/${a.underlayIface}/mtu`])).stdout);
    const wireguard = Number((await cluster.sandbox.exec(a, 'cat', [`/sys/class/net/${cluster.interfaceOf('a')}/mtu`])).stdout);
    const pod = Number((await cluster.sandbox.exec(a.pods[0]!, 'cat', ['/sys/class/net/eth0/mtu'])).stdout);
    assert.equal(wireguard, underlay - 80, 'WireGuard MTU: the underlay device less the overhead over IPv6');
    assert.equal(pod, wireguard, 'the CNI configuration gives pods the mesh MTU');
    assert.ok(cluster.sandbox.internetMtu! < wireguard + 60, 'a full-size tunnel packet does not fit the internet in one piece');
    // 10 MiB from east to west through the NAT: the outer packets learn the path's MTU (the routers
    // answer "fragmentation needed") and the transfer completes rather than stalling.
    const across = await bulkTransfer(cluster, a.pods[0]!, cluster.sandbox.node('c').pods[0]!);
    // The same transfer inside one location (a's pod to e's, one LAN: no tunnel), for the record.
    const within = await bulkTransfer(cluster, a.pods[0]!, cluster.sandbox.node('e').pods[0]!);
    process.stderr.write(`bulk transfer of 10 MiB: east → west across MTU ${cluster.sandbox.internetMtu} ${mbits(across)} Mbit/s; within east ${mbits(within)} Mbit/s\n`);
  });

  check('when the NAT router forgets its mappings and picks a new one, the public side settles on it', async () => {
    const podA = cluster.sandbox.node('a').pods[0]!;
    const podC = cluster.sandbox.node('c').pods[0]!;
    const east = cluster.sandbox.router('east');
    const c = cluster.sandbox.node('c');
    assert.ok(await cluster.waitPing(podC, podA.ip, 30_000), 'c reaches a before');
    const aKey = annotationsOf(world, 'a')['wirelane.io/key']!;
    const before = await endpointSeenBy(cluster, 'c', aKey);
    // The NAT forgets its UDP mappings, and the old port is taken (as if c's next packet arrived
    // first and claimed it), so a's next packet leaves from a new port. UDP only: the TCP connections
    // east's agents hold to the API server through the same NAT are another story (see the report).
    // a's keepalives keep coming: one that leaves between the flush and the insert maps to the old
    // port again (the insert then finds it taken), so flush and take it again until the insert wins.
    const [, port] = before!.split(':');
    const takeOldPort = async () => {
      await cluster.sandbox.exec(east.netns, 'conntrack', ['-D', '-p', 'udp'], { allowFailure: true });
      const insert = ['-I', '-p', 'udp', '-s', c.publicIP!, '-d', east.internetIP, '--sport', '51820', '--dport', port!, '-r', east.internetIP, '-q', c.publicIP!, '--reply-port-src', port!, '--reply-port-dst', '51820', '--timeout', '120'];
      return (await cluster.sandbox.exec(east.netns, 'conntrack', insert, { allowFailure: true })).exitCode === 0;
    };
    await until("east's NAT to forget a's mapping and its port to be taken", takeOldPort, 30_000, 0);
    assert.ok(await cluster.waitPing(podC, podA.ip, 60_000), 'c reaches a again');
    const after = await endpointSeenBy(cluster, 'c', aKey);
    assert.notEqual(after, before, `c's device follows a to its new mapping (${before} → ${after})`);
    const lost = await lossesOf(cluster, podC, podA.ip, 20);
    assert.equal(lost, 0, `no ping of the next 20 is lost: the tunnel does not flap (${lost} lost)`);
    await until("c to publish a's new mapping", () => JSON.parse(annotationsOf(world, 'c')['wirelane.io/discovered-endpoints'] ?? '{}')[aKey] === after, 30_000, 200);
    assert.equal(await endpointSeenBy(cluster, 'c', aKey), after, 'and stays there once published');
  });
});

const mbits = (bitsPerSecond: number): number => Math.round(bitsPerSecond / 1e6);

/** 10 MiB with iperf3 from pod to pod, all of it acknowledged; the receiver's bits per second. */
async function bulkTransfer(cluster: MeshCluster, from: SandboxPod, to: SandboxPod): Promise<number> {
  // Not `-1`: a server that exits by itself after the test races stop() (which takes only live children).
  const iperf = cluster.sandbox.spawn(to, 'iperf3', ['-s', '-B', to.ip]);
  try {
    await until('iperf3 to listen', async () => (await cluster.sandbox.exec(to, 'ss', ['-Htln', 'sport = :5201'])).stdout.trim() !== '', 10_000, 100);
    // A blackhole would stall the transfer until iperf3 gives up: the bound is generous, not a measure.
    const r = await cluster.sandbox.exec(from, 'iperf3', ['-c', to.ip, '-n', '10M', '-J'], { allowFailure: true, timeoutMs: 180_000 });
    const result = JSON.parse(r.stdout) as { end?: { sum_sent?: { bytes: number }; sum_received?: { bytes: number; bits_per_second: number } }; error?: string };
    assert.equal(result.error, undefined, `iperf3 ${from.name} → ${to.name} reported no error`);
    assert.ok((result.end?.sum_sent?.bytes ?? 0) >= 10 * 1024 * 1024, `all 10 MiB from ${from.name} to ${to.name} were sent and acknowledged`);
    assert.ok((result.end?.sum_received?.bytes ?? 0) > 0, 'and received');
    return result.end!.sum_received!.bits_per_second;
  } finally {
    await cluster.sandbox.stop(iperf);
  }
}

/** Packets a node's VXLAN device has sent. */
async function tunnelTxPackets(cluster: MeshCluster, name: string): Promise<number> {
  const r = await cluster.sandbox.exec(cluster.sandbox.node(name), 'ip', ['-s', '-j', 'link', 'show', 'dev', 'wirelane.vx']);
  const [link] = JSON.parse(r.stdout) as { stats64: { tx: { packets: number } } }[];
  return link!.stats64.tx.packets;
}

/** `count` pings, all answered. */
async function pingCount(cluster: MeshCluster, from: { readonly netns: string }, to: string, count: number): Promise<boolean> {
  return (await lossesOf(cluster, from, to, count)) === 0;
}

/** Where a node's WireGuard device sees the peer with this key. */
async function endpointSeenBy(cluster: MeshCluster, name: string, key: string): Promise<string | undefined> {
  const r = await cluster.sandbox.exec(cluster.sandbox.node(name), 'wg', ['show', cluster.interfaceOf(name), 'endpoints']);
  return r.stdout.split('\n').map((l) => l.split('\t')).find(([k]) => k === key)?.[1];
}
