// `wirelane demo`: two locations of two nodes in network namespaces on the sandbox's routed world
// (sandbox/world.ts: west with a public node, east behind NAT on two subnets, an internet narrower
// than the LANs), dual-stack pods, real agents from a generated cluster file, and a laptop behind
// its home NAT joining as a Peer with wg-quick, and last east's leader losing its WireGuard UDP
// (failover). The agents share their run-time annotations through --annotations-dir beside the
// cluster file. Real traffic proves each claim it prints.
import { listAddresses } from '../host/addresses.js';
import { runCommand } from '../host/command.js';
import { generatePrivateKey, publicKeyOf, type WireGuardKey } from '../model/key.js';
import { addEchoService, ECHO_SERVICE_IP as SERVICE_IP } from '../sandbox/echo-service.js';
import { echoRequests } from '../sandbox/echo/index.js';
import { join } from 'node:path';
import { cliPath, MeshCluster, type MeshNodeSpec, WIREGUARD_PORT } from '../sandbox/mesh-cluster.js';
import type { SandboxHost, SandboxPod } from '../sandbox/sandbox.js';
import { AGENT_TOOLS, sandboxUnsupportedReason } from '../sandbox/support.js';
import { completePeerConfig, WgQuickPeer } from '../sandbox/wg-quick-peer.js';
import { NAT_KEEPALIVE_SECONDS, WORLD_INTERNET, WORLD_LANS } from '../sandbox/world.js';
import type { Command } from './command.js';

// East is behind NAT: its nodes keep their mappings open and the public side follows them.
const BEHIND_NAT = { 'wirelane.io/persistent-keepalive': String(NAT_KEEPALIVE_SECONDS) };
// West's nodes come first by name: a Peer sends the service range to the segment of the first node
// (serviceSegmentOf), and west's leader is public: the failover at the end leaves it in place.
const NODES: readonly MeshNodeSpec[] = [
  { name: 'a', location: 'west', underlayAddress: WORLD_LANS.west.v4(11), underlayAddress6: WORLD_LANS.west.v6(11), publicAddress: WORLD_LANS.west.public(11), podCIDR6: 'fd44:0:0:1::/64' },
  { name: 'b', location: 'west', underlayAddress: WORLD_LANS.west.v4(12), underlayAddress6: WORLD_LANS.west.v6(12), podCIDR6: 'fd44:0:0:2::/64' },
  { name: 'c', location: 'east', underlayAddress: WORLD_LANS.east1.v4(11), underlayAddress6: WORLD_LANS.east1.v6(11), podCIDR6: 'fd44:0:0:3::/64', annotations: BEHIND_NAT },
  // On east's second subnet: c and d reach each other through the crosssubnet VXLAN tunnel, IPv6 too.
  { name: 'd', location: 'east', underlayAddress: WORLD_LANS.east2.v4(11), underlayAddress6: WORLD_LANS.east2.v6(11), podCIDR6: 'fd44:0:0:4::/64', annotations: BEHIND_NAT },
];
const LAPTOP = { name: 'laptop', underlayAddress: WORLD_LANS.home.v4(10), underlayAddress6: WORLD_LANS.home.v6(10) };
const LAPTOP_ADDRESSES = ['10.5.0.1/32'];
/** The mesh flags the agents run with, which `showconf peer` needs too to print what they do. */
const MESH_FLAGS = ['--subnet', '10.4.0.0/16,fd00:4::/64', '--service-cidr', '10.96.0.0/16', '--encapsulate', 'crosssubnet'];
/** Where the agents share their run-time annotations (tunnels-broken, discovered endpoints), beside the cluster file. */
const ANNOTATIONS_DIR = 'annotations';
/** How long the failover may take before the demo gives up on it: a bound for a hung demo, not a measure. */
const FAILOVER_WAIT_MS = 90_000;

interface Outcome {
  readonly ok: boolean;
  /** What was seen, when the name alone does not say it. */
  readonly detail?: string;
}

interface Check {
  readonly name: string;
  run(): Promise<Outcome>;
}

/** Checks under one heading; the heading and its count make a line of the closing summary. */
interface Proof {
  readonly title: string;
  readonly checks: readonly Check[];
  /** A limit of what the checks cover, printed after them. */
  readonly note?: string;
}

const outcome = (ok: boolean, detail?: string): Outcome => (detail === undefined ? { ok } : { ok, detail });
const locationOf = (node: string) => NODES.find((n) => n.name === node)?.location;

function pingProof(cluster: MeshCluster, family: 4 | 6): Proof {
  const pods = cluster.sandbox.pods;
  const address = (pod: SandboxPod) => (family === 4 ? pod.ip : pod.ipv6 ?? 'no IPv6 address');
  return {
    title: `IPv${family} pod to pod`,
    checks: pods.flatMap((from) =>
      pods
        .filter((to) => to !== from)
        .map((to) => ({
          name: `ping ${from.name} → ${to.name} (${address(to)}) ${locationOf(from.node) === locationOf(to.node) ? 'same location' : 'across WireGuard'}`,
          run: async () => outcome(await cluster.waitPing(from, address(to))),
        })),
    ),
  };
}

/** Answers to `count` connections to the Service: every one answered, and by whom. */
async function serviceAnswers(cluster: MeshCluster, from: SandboxHost | SandboxPod, count: number): Promise<{ answered: number; backends: Set<string> }> {
  const answers = await echoRequests(cluster.sandbox, from, 'tcp', SERVICE_IP, 80, { count, timeoutMs: 2000 });
  const ok = answers.filter((a) => !a.startsWith('ERROR'));
  return { answered: ok.length, backends: new Set(ok.map((a) => a.split(' ')[0] ?? '')) };
}

function serviceProof(cluster: MeshCluster): Proof {
  const pods = cluster.sandbox.pods;
  return {
    title: `Service demo/echo (${SERVICE_IP}:80, a backend in every pod)`,
    checks: pods.map((from) => ({
      name: `from ${from.name}: 40 connections reach all ${pods.length} backends`,
      run: async () => {
        const { answered, backends } = await serviceAnswers(cluster, from, 40);
        return outcome(answered === 40 && backends.size === pods.length, answered === 40 ? undefined : `${answered} of 40 answered`);
      },
    })),
  };
}

/** Where a node's device sees each of its peers: public key → `ip:port` (`wg show IFACE endpoints`). */
async function endpointsSeenBy(cluster: MeshCluster, node: string): Promise<Map<string, string>> {
  const r = await cluster.sandbox.exec(cluster.sandbox.node(node), 'wg', ['show', cluster.interfaceOf(node), 'endpoints'], { allowFailure: true });
  return new Map(r.stdout.split('\n').map((l) => l.split('\t')).filter((f): f is [string, string] => f.length === 2 && f[1] !== '(none)'));
}

/** The public key of a node's WireGuard device. */
async function deviceKeyOf(cluster: MeshCluster, node: string): Promise<string> {
  return (await cluster.sandbox.exec(cluster.sandbox.node(node), 'wg', ['show', cluster.interfaceOf(node), 'public-key'])).stdout.trim();
}

/** Leaders are the nodes whose device completed handshakes (the others' devices stay down). */
async function leadersOf(cluster: MeshCluster): Promise<MeshNodeSpec[]> {
  const leading = await Promise.all(NODES.map(async (n) => (await cluster.handshakes(n.name)) > 0));
  return NODES.filter((_, i) => leading[i]);
}

/**
 * The leader with a public address sees `key` at the internet address of `router`: the packets came
 * through that router's NAT, since nothing configured points there.
 */
function seenThroughNat(cluster: MeshCluster, key: () => Promise<string | undefined>, router: string, whom: string): Check {
  const routerIP = cluster.sandbox.router(router).internetIP;
  return {
    name: `the public leader sees ${whom} at ${routerIP}:<port>, ${router}'s router (its NAT traversed)`,
    run: async () => {
      const node = (await leadersOf(cluster)).find((n) => n.publicAddress !== undefined)?.name;
      const seen = await key();
      if (node === undefined || seen === undefined) return outcome(false, node === undefined ? 'no leader with a public address' : `no ${whom}`);
      const endpoint = (await endpointsSeenBy(cluster, node)).get(seen);
      return outcome(endpoint?.startsWith(`${routerIP}:`) === true, `${node} sees it at ${endpoint ?? 'no endpoint'}`);
    },
  };
}

function natProof(cluster: MeshCluster): Proof {
  return {
    title: 'NAT traversal (east has no address the internet can reach)',
    checks: [
      seenThroughNat(cluster, async () => {
        const leader = (await leadersOf(cluster)).find((n) => n.location === 'east');
        return leader && deviceKeyOf(cluster, leader.name);
      }, 'east', "east's leader"),
    ],
  };
}

/** The laptop as a Peer: its configuration from showconf, brought up by wg-quick. */
function peerProof(cluster: MeshCluster, laptopKey: string, up: () => Promise<WgQuickPeer>): Proof {
  const { sandbox } = cluster;
  const laptop = sandbox.outside[0] as SandboxHost;
  return {
    title: `Peer laptop (behind its home NAT, wg-quick from 'wirelane showconf peer laptop --from <cluster file> --annotations-dir <dir>')`,
    note: "east's leader has no public address: the laptop dials it where west's leader saw it, and east's leader learns where the laptop is the same way (discovered-endpoints, shared through the annotations directory); both NATs open from inside",
    checks: [
      {
        name: 'wg-quick up routes the pods and the service range into the tunnel',
        run: async () => {
          const routes = await (await up()).routes();
          return outcome(routes.some((r) => r.startsWith('10.96.0.0/16 ')) && routes.some((r) => r.startsWith('10.244.0.0/24 ')), `${routes.length} routes`);
        },
      },
      ...sandbox.pods.map((pod) => ({
        name: `ping ${pod.name} (${pod.ip}) in ${locationOf(pod.node) ?? '?'} from the laptop`,
        // Its first handshake with each leader comes first; east's also waits for east's leader to
        // learn, from west's shared annotations, where the laptop is.
        run: async () => outcome(await cluster.waitPing(laptop, pod.ip, 30_000)),
      })),
      {
        name: `Service demo/echo from the laptop: 20 connections answered`,
        run: async () => {
          const { answered, backends } = await serviceAnswers(cluster, laptop, 20);
          return outcome(answered === 20, `${answered} answered, by ${[...backends].sort().join(', ') || 'none'}`);
        },
      },
      seenThroughNat(cluster, async () => laptopKey, 'home', 'the laptop'),
    ],
  };
}

/** The agent's value of a metric; undefined while it cannot be read. */
async function metricOf(cluster: MeshCluster, node: string, name: string): Promise<number | undefined> {
  return (await cluster.metrics(node)).get(name);
}

/** Polls `check` every 200 ms until it holds; false after `timeoutMs`. */
async function eventually(check: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  for (const end = Date.now() + timeoutMs; Date.now() < end; await new Promise((resolve) => setTimeout(resolve, 200))) {
    if (await check()) return true;
  }
  return false;
}

/**
 * Failover judged from the data path: east's router drops the UDP to its leader's WireGuard port
 * (the path broken upstream, the node and its agent fine); the leader finds no remote answering and
 * marks itself tunnels-broken in the annotations directory, every agent's election skips it, and
 * east's other node takes over. Timed from the drop; the drop stays until the sandbox goes.
 */
function failoverProof(cluster: MeshCluster): Proof {
  const { sandbox } = cluster;
  const east = NODES.filter((n) => n.location === 'east').map((n) => n.name);
  let leader: string | undefined;
  let successor: string | undefined;
  let droppedAt = 0;
  const since = () => `${((Date.now() - droppedAt) / 1000).toFixed(1)} s after the drop`;
  // Each east pod with a west pod, both ways: c's pod reaches west through the new leader too.
  const west = NODES.filter((n) => n.location === 'west').map((n) => sandbox.node(n.name).pods[0] as SandboxPod);
  const crossings = east.flatMap((n, i) => {
    const [from, to] = [sandbox.node(n).pods[0] as SandboxPod, west[i % west.length] as SandboxPod];
    return [[from, to], [to, from]] as const;
  });
  return {
    title: "Failover (east's leader loses its WireGuard UDP at east's router)",
    checks: [
      {
        name: "east's router drops its leader's WireGuard UDP: the other east node takes over",
        run: async () => {
          const leading = await Promise.all(east.map(async (n) => (await metricOf(cluster, n, 'wirelane_leader')) === 1));
          leader = east.find((_, i) => leading[i]);
          successor = east.find((n) => n !== leader);
          if (leader === undefined || successor === undefined) return outcome(false, 'no leader in east');
          droppedAt = Date.now();
          await sandbox.dropUdp(sandbox.node(leader), WIREGUARD_PORT);
          const moved = await eventually(async () => (await metricOf(cluster, successor as string, 'wirelane_leader')) === 1, FAILOVER_WAIT_MS);
          return outcome(moved, moved ? `${leader} → ${successor}, ${since()}` : `${successor} does not lead ${since()}`);
        },
      },
      {
        name: "the old leader marked its tunnels broken (shared through the annotations directory) and stepped down",
        run: async () => {
          const node = leader ?? '';
          let seen = { marked: NaN, leading: NaN };
          // Its own re-election runs in the reconcile after the one that marked it: it may trail the successor's.
          const ok = await eventually(async () => {
            seen = { marked: (await metricOf(cluster, node, 'wirelane_leader_tunnel_broken')) ?? NaN, leading: (await metricOf(cluster, node, 'wirelane_leader')) ?? NaN };
            return seen.marked === 1 && seen.leading === 0;
          }, FAILOVER_WAIT_MS);
          return outcome(ok, `${node}: tunnel_broken ${seen.marked}, leader ${seen.leading}`);
        },
      },
      ...crossings.map(([from, to]) => ({
        name: `ping ${from.name} → ${to.name} (${to.ip}) across WireGuard again`,
        run: async () => outcome(await cluster.waitPing(from, to.ip, FAILOVER_WAIT_MS), since()),
      })),
      {
        name: "west's leader did not move",
        run: async () => outcome((await metricOf(cluster, 'a', 'wirelane_leader')) === 1, `a: leader ${await metricOf(cluster, 'a', 'wirelane_leader')}`),
      },
    ],
  };
}

async function describeMesh(cluster: MeshCluster): Promise<string[]> {
  const address = (n: MeshNodeSpec) => {
    const node = cluster.sandbox.node(n.name);
    return node.publicIP === undefined ? `${node.underlayIP}, private` : `${node.underlayIP}, public ${node.publicIP}`;
  };
  const lines = [`nodes: ${NODES.map((n) => `${n.name} (${n.location}, ${address(n)})`).join(', ')}`];
  for (const n of await leadersOf(cluster)) {
    const node = cluster.sandbox.node(n.name);
    const addresses = (await listAddresses({ netns: node.netns, ifname: cluster.interfaceOf(n.name) }))
      .map((a) => a.cidr)
      .filter((cidr) => !cidr.startsWith('fe80:')); // the link-local address every IPv6 link has
    lines.push(`leader of ${n.location}: ${n.name}, WireGuard ${addresses.join(', ') || 'no address'}`);
  }
  const mtu = await cluster.sandbox.exec(cluster.sandbox.pods[0] as SandboxPod, 'cat', ['/sys/class/net/eth0/mtu']);
  lines.push(`internet MTU ${cluster.sandbox.internetMtu}, pod MTU ${mtu.stdout.trim()}`);
  return lines;
}

/** Adds the laptop's Peer object to the cluster file; returns its private key. */
async function addLaptopPeer(cluster: MeshCluster): Promise<WireGuardKey> {
  const privateKey = generatePrivateKey();
  await cluster.editClusterFile((objects) => {
    objects.push({
      apiVersion: 'wirelane.io/v1alpha1',
      kind: 'Peer',
      metadata: { name: LAPTOP.name },
      spec: { allowedIPs: LAPTOP_ADDRESSES, publicKey: publicKeyOf(privateKey), persistentKeepalive: NAT_KEEPALIVE_SECONDS },
    });
  });
  return privateKey;
}

export const demo: Command = {
  name: 'demo',
  summary: 'run a four-node mesh and a Peer in network namespaces and check pod, service and Peer traffic (root)',
  usage: 'wirelane demo',
  help: `Builds two locations out of network namespaces, joined by an internet whose MTU is 1,380:
west (a with a public address, b) and east (c, d on two subnets behind a NAT router), one pod
per node (dual-stack), and a laptop behind its own home NAT. Runs a real agent per node from a
generated cluster file (--encapsulate crosssubnet, a WireGuard subnet per family), which also
declares the laptop as a Peer; the laptop's configuration comes from 'wirelane showconf peer' and
is brought up with wg-quick. Pings every pod from every other over IPv4 and IPv6, sends
connections to a ClusterIP Service backed by every pod, checks that west's leader sees east's
leader and the laptop at their routers' addresses (NAT traversal), pings every pod and uses the
Service from the laptop (east's leader has no public address: the agents share where they saw each
other through --annotations-dir, which showconf reads too).
Last, east's router drops the UDP to east's leader's WireGuard port: the leader marks its tunnels
broken, east's other node takes over, and the demo times until pods ping across locations again.
Prints what each group of checks proved. Exits 1 if a check fails.
Everything is removed on exit and on Ctrl-C.`,
  options: {},
  async run() {
    const unsupported = await sandboxUnsupportedReason([...AGENT_TOOLS, ['wg-quick', ['-h']]]);
    if (unsupported !== undefined) throw new Error(`demo: ${unsupported}`);
    const started = Date.now();
    const say = (line: string) => process.stdout.write(`${line}\n`);
    say(`building 4 nodes in 2 locations (west with a public node, east behind NAT), a dual-stack pod each, and a laptop behind its home NAT…`);
    const cluster = await MeshCluster.create({ nodes: NODES, source: 'file', internet: WORLD_INTERNET, outside: [LAPTOP], agentArgs: ['--resync-period', '5s', ...MESH_FLAGS] });
    let laptopPeer: WgQuickPeer | undefined;
    try {
      say(`sandbox: namespaces ${cluster.sandbox.prefix}*`);
      await addEchoService(cluster);
      const laptopKey = await addLaptopPeer(cluster);
      for (const n of NODES) cluster.startAgent(n.name, ['--annotations-dir', join(cluster.dir, ANNOTATIONS_DIR)]);
      await cluster.waitReady();
      const mode = (await cluster.log('a')).match(/"mode":"(\w+)"[^\n]*services applied/)?.[1] ?? 'unknown';
      say(`service proxy: ${mode}`);
      const up = async (): Promise<WgQuickPeer> => {
        const args = [cliPath(), 'showconf', 'peer', LAPTOP.name, '--from', cluster.clusterFile, '--annotations-dir', join(cluster.dir, ANNOTATIONS_DIR), ...MESH_FLAGS];
        const config = completePeerConfig((await runCommand(process.execPath, args)).stdout, { privateKey: laptopKey, addresses: LAPTOP_ADDRESSES });
        laptopPeer = await WgQuickPeer.up(cluster.sandbox, cluster.sandbox.outside[0] as SandboxHost, `${cluster.sandbox.prefix}lp`, config, cluster.dir);
        return laptopPeer;
      };
      const proofs = [pingProof(cluster, 4), pingProof(cluster, 6), serviceProof(cluster), natProof(cluster), peerProof(cluster, publicKeyOf(laptopKey), up)];
      const results: { title: string; passed: number; total: number }[] = [];
      const prove = async (proof: Proof): Promise<void> => {
        say(`${proof.title}:`);
        let passed = 0;
        for (const check of proof.checks) {
          const { ok, detail } = await check.run().catch((err: unknown) => outcome(false, err instanceof Error ? err.message.split('\n')[0] : String(err)));
          if (ok) passed++;
          say(`  ${ok ? 'ok  ' : 'FAIL'} ${check.name}${detail === undefined ? '' : `: ${detail}`}`);
        }
        if (proof.note !== undefined) say(`  note ${proof.note}`);
        results.push({ title: proof.title.replace(/ \(.*$/, ''), passed, total: proof.checks.length });
      };
      for (const proof of proofs) await prove(proof);
      for (const line of await describeMesh(cluster)) say(line);
      // Last: it breaks east's leader for good.
      await prove(failoverProof(cluster));
      const passed = results.reduce((sum, r) => sum + r.passed, 0);
      const total = results.reduce((sum, r) => sum + r.total, 0);
      const proved = results.filter((r) => r.passed === r.total);
      const unproved = results.filter((r) => r.passed < r.total);
      say(`proved: ${proved.map((r) => `${r.title} (${r.total}/${r.total})`).join('; ') || 'nothing'}`);
      if (unproved.length > 0) say(`not proved: ${unproved.map((r) => `${r.title} (${r.passed}/${r.total})`).join('; ')}`);
      say(`${passed}/${total} checks passed in ${Math.round((Date.now() - started) / 1000)} s`);
      if (passed < total) process.stderr.write(`${await cluster.logTails(20)}\n`);
      return passed === total ? 0 : 1;
    } finally {
      say('removing the sandbox…');
      await laptopPeer?.down();
      await cluster.destroy();
    }
  },
};
