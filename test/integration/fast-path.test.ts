// The fast path (issue 13, item 3): pod traffic forwarded by the tc programs, past netfilter, on
// the three paths (same node, another node of the location over the underlay, another location over
// WireGuard), proven by the programs' own counters rising while netfilter's count of the same flow
// stays at the handful of packets before the first learnt MAC; traffic the fast path does not take
// (to the host, ICMP) still flows; in the ebpf service mode the very first packets to a backend in
// another location arrive; attachments follow pods and outlive the agent; clean-up removes them,
// also with /metrics scraped while the agent takes it down.
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { openPinnedLink } from '../../src/bpf/index.js';
import { readFastPathStats } from '../../src/dataplane/ebpf/fast-path.js';
import type { MeshCluster } from '../../src/sandbox/mesh-cluster.js';
import { echoRequests, startEchoServer } from '../../src/sandbox/echo/index.js';
import type { SandboxPod } from '../../src/sandbox/index.js';
import { startMeshCluster } from '../harness/mesh-cluster.js';
import { CLUSTER_IP, TARGET_PORT, webEndpoints, webService } from '../harness/web-service.js';
import { AGENT_TOOLS, capabilitySkip } from '../support/capability.js';
import { existingLinks } from '../support/leftovers.js';
import { until } from '../support/wait.js';

const skip = await capabilitySkip('fast path integration tests', AGENT_TOOLS);

const CLIENT = fileURLToPath(new URL('../../build/bench/wl-bench', import.meta.url));
const PORT = 7100;

// a1 leads east (forced), so its pods reach west straight through its own WireGuard device.
const NODES = [
  { name: 'a1', location: 'east', pods: 2, annotations: { 'wirelane.io/leader': 'true' } },
  { name: 'a2', location: 'east', pods: 1 },
  { name: 'b', location: 'west', pods: 1 },
];

interface Rr {
  readonly count: number;
}

async function rr(cluster: MeshCluster, from: SandboxPod, to: SandboxPod): Promise<Rr> {
  const r = await cluster.sandbox.exec(from, CLIENT, ['rr', to.ip, String(PORT), '1'], { allowFailure: true });
  assert.equal(r.exitCode, 0, `wl-bench rr ${from.name} → ${to.name}: ${r.stderr}`);
  return JSON.parse(r.stdout) as Rr;
}

/** A counter from the node's /metrics; a scrape that failed (a loaded machine) is tried again, never read as 0. */
async function counter(cluster: MeshCluster, node: string, name: string): Promise<number> {
  let value: number | undefined;
  await until(`${name} on ${node}`, async () => (value = (await cluster.metrics(node)).get(name)) !== undefined, 30_000, 200);
  return value as number;
}

const packets = (path: string) => `wirelane_fast_path_packets_total{path="${path}"}`;

/** A counting rule (no target) in the node's mangle FORWARD for one direction of a pod pair; returns its reader. */
async function netfilterCount(cluster: MeshCluster, node: string, from: SandboxPod, to: SandboxPod): Promise<() => Promise<number>> {
  const ns = cluster.sandbox.node(node);
  const rule = ['-s', from.ip, '-d', to.ip, '-p', 'tcp', '-m', 'comment', '--comment', 'fast-path test'];
  await cluster.sandbox.exec(ns, 'iptables', ['-w', '-t', 'mangle', '-I', 'FORWARD', ...rule]);
  return async () => {
    const out = (await cluster.sandbox.exec(ns, 'iptables', ['-w', '-t', 'mangle', '-L', 'FORWARD', '-v', '-x', '-n'])).stdout;
    const line = out.split('\n').find((l) => l.includes('fast-path test') && l.includes(from.ip) && l.includes(to.ip));
    assert.ok(line !== undefined, `the counting rule on ${node}`);
    return Number(line.trim().split(/\s+/)[0]);
  };
}

/** The kernel ids of the links the fast path pinned for a node. */
function fastPathLinkIds(cluster: MeshCluster, node: string): number[] {
  const dir = join(cluster.bpffs, node, 'fast-path', 'links');
  return fastPathPins(cluster, node)
    .map((pin) => {
      const link = openPinnedLink(join(dir, pin));
      try {
        return link.info().id;
      } finally {
        link.close();
      }
    })
    .sort((x, y) => x - y);
}

/** Waits until the node's mesh loop has synced successfully `n` more times. */
async function syncs(cluster: MeshCluster, node: string, n: number): Promise<void> {
  const count = async () => counter(cluster, node, 'wirelane_syncs_total{loop="mesh",result="success"}');
  const start = await count();
  await until(`${n} more mesh syncs on ${node}`, async () => (await count()) >= start + n, 30_000, 200);
}

/** Links the fast path pinned for a node. */
function fastPathPins(cluster: MeshCluster, node: string): string[] {
  const dir = join(cluster.bpffs, node, 'fast-path', 'links');
  return existsSync(dir) ? readdirSync(dir) : [];
}

test('pod traffic takes the fast path on every path, past netfilter; other traffic still flows', { skip }, async (t) => {
  const { cluster } = await startMeshCluster(t, { nodes: NODES, source: 'file', agentArgs: ['--resync-period', '1s', '--fast-path', 'on', '--clean-up=false'] });
  for (const n of NODES) cluster.startAgent(n.name);
  await cluster.waitReady();
  const [client, local] = cluster.sandbox.node('a1').pods as [SandboxPod, SandboxPod];
  const cross = cluster.sandbox.node('a2').pods[0] as SandboxPod;
  const remote = cluster.sandbox.node('b').pods[0] as SandboxPod;
  for (const pod of [local, cross, remote]) cluster.sandbox.spawn(pod, CLIENT, ['server', String(PORT)], { stdout: 'ignore', stderr: 'ignore' });
  // Every pod's veth carries fp_pod, the underlay fp_l2, the WireGuard device fp_l3.
  for (const n of NODES) {
    await until(`${n.name}: fast-path links on its pods' veths, the underlay and WireGuard`, async () => fastPathPins(cluster, n.name).length >= (n.pods ?? 1) + 2, 30_000, 200);
  }
  for (const pod of [local, cross, remote]) assert.ok(await cluster.waitPing(client, pod.ip), `${client.name} pings ${pod.name} (ICMP: the stack)`);

  // Each hop: a node and the counter its program must raise for every round trip.
  const paths: { what: string; from: SandboxPod; to: SandboxPod; hops: [string, string][] }[] = [
    { what: 'same node', from: client, to: local, hops: [['a1', 'same_node']] },
    { what: 'across the underlay', from: client, to: cross, hops: [['a1', 'to_underlay'], ['a2', 'from_underlay']] },
    { what: 'across WireGuard', from: client, to: remote, hops: [['a1', 'to_wireguard'], ['b', 'from_wireguard'], ['b', 'to_wireguard'], ['a1', 'from_wireguard']] },
    {
      what: "from a non-leader across WireGuard, through its leader",
      from: cross,
      to: remote,
      hops: [['a2', 'to_underlay'], ['a1', 'to_wireguard'], ['b', 'from_wireguard'], ['b', 'to_wireguard'], ['a1', 'to_underlay'], ['a2', 'from_underlay']],
    },
  ];
  for (const path of paths) {
    const nodes = [...new Set(path.hops.map(([node]) => node))];
    const netfilter = await Promise.all(nodes.flatMap((node) => [netfilterCount(cluster, node, path.from, path.to), netfilterCount(cluster, node, path.to, path.from)]));
    // The handshake may take the stack until the programs have seen each pod's MAC.
    await rr(cluster, path.from, path.to);
    const read = () => Promise.all(path.hops.map(([node, name]) => counter(cluster, node, packets(name))));
    const countsBefore = await read();
    const netfilterBefore = await Promise.all(netfilter.map((c) => c()));
    const run = await rr(cluster, path.from, path.to);
    assert.ok(run.count > 0, `${path.what}: round trips`);
    const counts = await read();
    path.hops.forEach(([node, name], i) => {
      const forwarded = counts[i]! - countsBefore[i]!;
      assert.ok(forwarded >= run.count, `${path.what}: ${node} forwarded ${forwarded} packets ${name} for ${run.count} round trips`);
    });
    const netfilterAfter = await Promise.all(netfilter.map((c) => c()));
    assert.deepEqual(netfilterAfter, netfilterBefore, `${path.what}: no packet of the flow crossed netfilter's FORWARD on ${nodes.join(', ')}`);
  }

  // Traffic to the host is no candidate: the node's health port answers the pod through the stack.
  const gateway = cluster.sandbox.node('a1').podGateways[0] as string;
  assert.ok(await cluster.sandbox.reaches(client, gateway, 1107), `${client.name} connects to its node's health port at ${gateway}`);
});

test('attachments follow pods, outlive the agent, and wirelane cleanup removes them', { skip }, async (t) => {
  const nodes = [{ name: 'a1', location: 'east', pods: 1 }];
  const { cluster } = await startMeshCluster(t, { nodes, source: 'file', agentArgs: ['--resync-period', '1s', '--fast-path', 'on', '--clean-up=false'] });
  cluster.startAgent('a1');
  await cluster.waitReady();
  await until('links on the pod veth, the underlay and WireGuard', async () => fastPathPins(cluster, 'a1').length === 3, 30_000, 200);

  const first = cluster.sandbox.node('a1').pods[0] as SandboxPod;
  const late = await cluster.sandbox.addPod('a1', cluster.sandbox.cniNetworkOf('a1').text);
  await until(`a link on ${late.name}'s veth`, async () => fastPathPins(cluster, 'a1').length === 4, 30_000, 200);
  cluster.sandbox.spawn(late, CLIENT, ['server', String(PORT)], { stdout: 'ignore', stderr: 'ignore' });
  assert.ok(await cluster.waitPing(first, late.ip));
  await rr(cluster, first, late);

  // The agent stops without clean-up: the pinned programs go on forwarding.
  assert.equal(await cluster.stopAgent('a1'), 0);
  assert.equal(fastPathPins(cluster, 'a1').length, 4, 'the links stay pinned');
  const dir = join(cluster.bpffs, 'a1');
  const readSameNode = async () => Number(readFastPathStats(dir)?.sameNode ?? 0n);
  const before = await readSameNode();
  const run = await rr(cluster, first, late);
  assert.ok((await readSameNode()) - before >= run.count, 'forwarded by the fast path with no agent running');

  // A new agent adopts the links: the same ones, none attached anew.
  const links = fastPathLinkIds(cluster, 'a1');
  cluster.startAgent('a1');
  await cluster.waitReady(['a1']);
  await syncs(cluster, 'a1', 2);
  assert.deepEqual(fastPathLinkIds(cluster, 'a1'), links, 'the pinned links adopted');

  // The pod's veth goes (as CNI DEL takes it): so does its link, within the agent's poll.
  await cluster.sandbox.exec(late, 'ip', ['link', 'del', late.iface]);
  await until(`the link of ${late.name}'s veth removed`, async () => fastPathPins(cluster, 'a1').length === 3, 30_000, 200);
  await cluster.stopAgent('a1');

  const cleanup = await cluster.sandbox.exec(cluster.sandbox.node('a1'), process.execPath, [fileURLToPath(new URL('../../dist/cli/wirelane.js', import.meta.url)), 'cleanup', '--bpf-dir', dir, '--interface', cluster.interfaceOf('a1'), '--cni-conf-dir', dirname(cluster.cniConfFile('a1'))], { allowFailure: true });
  assert.equal(cleanup.exitCode, 0, cleanup.stderr);
  assert.match(cleanup.stdout + cleanup.stderr, /fast path: \d+ fast-path tc programs detached/);
  assert.equal(existsSync(join(dir, 'fast-path')), false, 'no fast-path pins left');
  assert.deepEqual(await existingLinks(links), [], 'every fast-path link detached');
});

test('ebpf service mode: the first packets from a leader\'s and a member\'s pod to a backend in another location arrive', { skip }, async (t) => {
  const { cluster, api } = await startMeshCluster(t, { nodes: NODES, source: 'kubernetes', agentArgs: ['--resync-period', '5s', '--service-proxy', 'ebpf', '--fast-path', 'on'] });
  const remote = cluster.sandbox.node('b').pods[0] as SandboxPod;
  startEchoServer(cluster.sandbox, remote, 'b', { tcp: TARGET_PORT, udp: TARGET_PORT });
  // default/web over TCP and default/dns over UDP, both to the one backend in west.
  api!.create('services', webService('ClusterIP'));
  api!.create('endpointslices', webEndpoints([remote]));
  const dnsIp = '10.96.0.53';
  api!.create('services', { metadata: { name: 'dns', namespace: 'default' }, spec: { type: 'ClusterIP', clusterIP: dnsIp, ports: [{ name: 'dns', protocol: 'UDP', port: 53, targetPort: TARGET_PORT }] } });
  api!.create('endpointslices', {
    metadata: { name: 'dns-1', namespace: 'default', labels: { 'kubernetes.io/service-name': 'dns' } },
    addressType: 'IPv4',
    ports: [{ name: 'dns', protocol: 'UDP', port: TARGET_PORT }],
    endpoints: [{ addresses: [remote.ip], nodeName: remote.node, conditions: { ready: true } }],
  });
  for (const n of NODES) cluster.startAgent(n.name);
  await cluster.waitReady();
  // Ready is the first sync, with the nodes known then: a node may learn of another later (its key,
  // endpoint and pod CIDR). Until b knows a2, b's WireGuard drops a2's pods' packets (their source is
  // not in the allowed IPs of b's peer a1), on any path: wait until every node routes to every other.
  for (const n of NODES) {
    for (const other of NODES.filter((o) => o.name !== n.name)) {
      const cidr = cluster.kubernetesNode(other.name).spec.podCIDR;
      await until(`${n.name} routes to ${other.name}'s ${cidr}`, async () => (await cluster.sandbox.exec(cluster.sandbox.node(n.name), 'ip', ['route', 'show', cidr])).stdout.trim() !== '', 60_000, 250);
    }
  }
  // No ping or request before: these are the first packets between the pods, through a WireGuard
  // device that has not had a handshake for them yet. A client sends one datagram per request and
  // never again: an answer proves the first datagram went through. The timeout only bounds a
  // loaded machine's handshake, it is no measure.
  const a1 = cluster.sandbox.node('a1').pods[0] as SandboxPod;
  const a2 = cluster.sandbox.node('a2').pods[0] as SandboxPod;
  const first = await Promise.all(
    [a1, a2].flatMap((from) => [
      echoRequests(cluster.sandbox, from, 'udp', dnsIp, 53, { timeoutMs: 30_000 }).then((r) => [`${from.name} udp`, r] as const),
      echoRequests(cluster.sandbox, from, 'tcp', CLUSTER_IP, 80, { timeoutMs: 30_000 }).then((r) => [`${from.name} tcp`, r] as const),
    ]),
  );
  for (const [what, lines] of first) assert.match(lines[0] ?? '', /^b /, `${what}: the first request answered by the backend in west: ${lines.join('; ')}`);
  // And every request after it, through the programs.
  const before = await counter(cluster, 'a1', packets('to_wireguard'));
  for (const from of [a1, a2]) {
    for (const protocol of ['udp', 'tcp'] as const) {
      const lines = await echoRequests(cluster.sandbox, from, protocol, protocol === 'udp' ? dnsIp : CLUSTER_IP, protocol === 'udp' ? 53 : 80, { count: 5, timeoutMs: 30_000 });
      assert.deepEqual(lines.map((l) => l.split(' ')[0]), ['b', 'b', 'b', 'b', 'b'], `${from.name} ${protocol}: ${lines.join('; ')}`);
    }
  }
  assert.ok((await counter(cluster, 'a1', packets('to_wireguard'))) > before, 'a1 forwarded them into WireGuard');

  // --clean-up with /metrics scraped all along: a scrape must not load the programs and pin the maps again.
  let stopped = false;
  const scrapes = (async () => {
    while (!stopped) {
      await cluster.metrics('a1').catch(() => undefined);
      await sleep(200);
    }
  })();
  try {
    assert.equal(await cluster.stopAgent('a1'), 0);
  } finally {
    stopped = true;
    await scrapes;
  }
  assert.equal(existsSync(join(cluster.bpffs, 'a1', 'fast-path')), false, 'no fast-path pins left on a1');
});
