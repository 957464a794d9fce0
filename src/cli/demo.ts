// `wirelane demo`: two locations of two nodes in network namespaces on the sandbox's routed world
// (sandbox/world.ts: east behind NAT on two subnets, west with a public node, an internet narrower
// than the LANs), real agents from a generated cluster file, and real traffic between every pair of
// pods. New checks (services) join `checks`.
import { listAddresses } from '../host/addresses.js';
import { addEchoService, ECHO_SERVICE_IP as SERVICE_IP } from '../sandbox/echo-service.js';
import { echoRequests } from '../sandbox/echo/index.js';
import { MeshCluster, type MeshNodeSpec } from '../sandbox/mesh-cluster.js';
import { AGENT_TOOLS, sandboxUnsupportedReason } from '../sandbox/support.js';
import { NAT_KEEPALIVE_SECONDS, WORLD_INTERNET, WORLD_LANS } from '../sandbox/world.js';
import type { Command } from './command.js';

// East is behind NAT: its nodes keep their mappings open and the public side follows them.
const BEHIND_NAT = { 'wirelane.io/persistent-keepalive': String(NAT_KEEPALIVE_SECONDS) };
const NODES: readonly MeshNodeSpec[] = [
  { name: 'a', location: 'east', underlayAddress: WORLD_LANS.east1.v4(11), underlayAddress6: WORLD_LANS.east1.v6(11), annotations: BEHIND_NAT },
  { name: 'b', location: 'east', underlayAddress: WORLD_LANS.east2.v4(11), underlayAddress6: WORLD_LANS.east2.v6(11), annotations: BEHIND_NAT },
  { name: 'c', location: 'west', underlayAddress: WORLD_LANS.west.v4(11), underlayAddress6: WORLD_LANS.west.v6(11), publicAddress: WORLD_LANS.west.public(11) },
  { name: 'd', location: 'west', underlayAddress: WORLD_LANS.west.v4(12), underlayAddress6: WORLD_LANS.west.v6(12) },
];

interface Check {
  readonly name: string;
  run(): Promise<boolean>;
}

function pingChecks(cluster: MeshCluster): Check[] {
  const pods = cluster.sandbox.pods;
  const locationOf = (node: string) => NODES.find((n) => n.name === node)?.location;
  return pods.flatMap((from) =>
    pods
      .filter((to) => to !== from)
      .map((to) => ({
        name: `ping ${from.name} (${from.ip}) → ${to.name} (${to.ip}) ${locationOf(from.node) === locationOf(to.node) ? 'same location' : 'across WireGuard'}`,
        run: () => cluster.waitPing(from, to.ip),
      })),
  );
}

function serviceChecks(cluster: MeshCluster): Check[] {
  return cluster.sandbox.pods.map((from) => ({
    name: `service demo/echo (${SERVICE_IP}:80) from ${from.name}: 40 connections reach all ${cluster.sandbox.pods.length} backends`,
    run: async () => {
      const answers = await echoRequests(cluster.sandbox, from, 'tcp', SERVICE_IP, 80, { count: 40 });
      return new Set(answers.map((a) => a.split(' ')[0])).size === cluster.sandbox.pods.length && !answers.some((a) => a.startsWith('ERROR'));
    },
  }));
}

async function describeMesh(cluster: MeshCluster): Promise<string[]> {
  const address = (n: MeshNodeSpec) => {
    const node = cluster.sandbox.node(n.name);
    return node.publicIP === undefined ? `${node.underlayIP}, private` : `${node.underlayIP}, public ${node.publicIP}`;
  };
  const lines = [`nodes: ${NODES.map((n) => `${n.name} (${n.location}, ${address(n)})`).join(', ')}`];
  const routers = new Map(cluster.sandbox.routers.map((r) => [r.internetIP, r.name]));
  for (const n of NODES) {
    // Leaders are the nodes whose device completed handshakes (the others' devices stay down).
    if ((await cluster.handshakes(n.name)) === 0) continue;
    const node = cluster.sandbox.node(n.name);
    const wgAddress = (await listAddresses({ netns: node.netns, ifname: cluster.interfaceOf(n.name) }))[0]?.cidr ?? 'no address';
    lines.push(`leader of ${n.location}: ${n.name}, WireGuard ${wgAddress}`);
    // Where its device sees the other location's leader: a NATed one at its router's address (NAT traversal).
    const dump = await cluster.sandbox.exec(node, 'wg', ['show', cluster.interfaceOf(n.name), 'endpoints'], { allowFailure: true });
    for (const [, endpoint] of dump.stdout.trim().split('\n').map((l) => l.split('\t'))) {
      const router = routers.get(endpoint?.replace(/:\d+$/, '') ?? '');
      lines.push(`  sees its peer at ${endpoint}${router === undefined ? '' : ` (router of ${router}: NAT traversed)`}`);
    }
  }
  const mtu = await cluster.sandbox.exec(cluster.sandbox.node('a').pods[0]!, 'cat', ['/sys/class/net/eth0/mtu']);
  lines.push(`internet MTU ${cluster.sandbox.internetMtu}, pod MTU ${mtu.stdout.trim()}`);
  return lines;
}

export const demo: Command = {
  name: 'demo',
  summary: 'run a four-node mesh in network namespaces and check pod and service traffic (root)',
  usage: 'wirelane demo',
  help: `Builds two locations (east: a, b on two subnets behind a NAT router; west: c with a public
address, d) with one pod per node out of network namespaces, joined by an internet whose MTU is
1,380; runs a real agent per node from a generated cluster file (--encapsulate crosssubnet), pings every pod from every other, sends
connections to a ClusterIP Service backed by every pod, and prints a summary. Exits 1 if a check
fails. Everything is removed on exit and on Ctrl-C.`,
  options: {},
  async run() {
    const unsupported = await sandboxUnsupportedReason(AGENT_TOOLS);
    if (unsupported !== undefined) throw new Error(`demo: ${unsupported}`);
    const say = (line: string) => process.stdout.write(`${line}\n`);
    say('building 4 nodes in 2 locations (east behind NAT, west with a public node), one pod each…');
    const cluster = await MeshCluster.create({ nodes: NODES, source: 'file', internet: WORLD_INTERNET, agentArgs: ['--resync-period', '5s', '--encapsulate', 'crosssubnet'] });
    try {
      await addEchoService(cluster);
      for (const n of NODES) cluster.startAgent(n.name);
      await cluster.waitReady();
      const mode = (await cluster.log('a')).match(/"mode":"(\w+)"[^\n]*services applied/)?.[1] ?? 'unknown';
      say(`service proxy: ${mode}`);
      const checks = [...pingChecks(cluster), ...serviceChecks(cluster)];
      let failed = 0;
      for (const check of checks) {
        const ok = await check.run();
        if (!ok) failed++;
        say(`  ${ok ? 'ok  ' : 'FAIL'} ${check.name}`);
      }
      for (const line of await describeMesh(cluster)) say(line);
      say(`${checks.length - failed}/${checks.length} checks passed`);
      if (failed > 0) process.stderr.write(`${await cluster.logTails(20)}\n`);
      return failed === 0 ? 0 : 1;
    } finally {
      say('removing the sandbox…');
      await cluster.destroy();
    }
  },
};
