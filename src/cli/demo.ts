// `wirelane demo`: two locations of two nodes in network namespaces, real agents from a generated
// cluster file, and real traffic between every pair of pods. New checks (services) join `checks`.
import { listAddresses } from '../host/addresses.js';
import { addEchoService, ECHO_SERVICE_IP as SERVICE_IP } from '../sandbox/echo-service.js';
import { echoRequests } from '../sandbox/echo/index.js';
import { MeshCluster, type MeshNodeSpec } from '../sandbox/mesh-cluster.js';
import { AGENT_TOOLS, sandboxUnsupportedReason } from '../sandbox/support.js';
import type { Command } from './command.js';

const NODES: readonly MeshNodeSpec[] = [
  { name: 'a', location: 'east' },
  { name: 'b', location: 'east' },
  { name: 'c', location: 'west' },
  { name: 'd', location: 'west' },
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
  const lines = [`nodes: ${NODES.map((n) => `${n.name} (${n.location}, ${cluster.sandbox.node(n.name).underlayIP})`).join(', ')}`];
  for (const n of NODES) {
    if ((await cluster.metrics(n.name)).get('wirelane_leader') !== 1) continue;
    const node = cluster.sandbox.node(n.name);
    const address = (await listAddresses({ netns: node.netns, ifname: cluster.interfaceOf(n.name) }))[0]?.cidr ?? 'no address';
    lines.push(`leader of ${n.location}: ${n.name}, WireGuard ${address}, ${await cluster.handshakes(n.name)} peer(s) with a handshake`);
  }
  return lines;
}

export const demo: Command = {
  name: 'demo',
  summary: 'run a four-node mesh in network namespaces and check pod and service traffic (root)',
  usage: 'wirelane demo',
  help: `Builds two locations (east: a, b; west: c, d) with one pod per node out of network namespaces,
runs a real agent per node from a generated cluster file, pings every pod from every other, sends
connections to a ClusterIP Service backed by every pod, and prints a summary. Exits 1 if a check
fails. Everything is removed on exit and on Ctrl-C.`,
  options: {},
  async run() {
    const unsupported = await sandboxUnsupportedReason(AGENT_TOOLS);
    if (unsupported !== undefined) throw new Error(`demo: ${unsupported}`);
    const say = (line: string) => process.stdout.write(`${line}\n`);
    say('building 4 nodes in 2 locations, one pod each…');
    const cluster = await MeshCluster.create({ nodes: NODES, source: 'file', agentArgs: ['--resync-period', '5s'] });
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
