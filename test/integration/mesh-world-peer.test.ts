// Issue 12, item 2 (last bullet): a Peer in the routed world (src/sandbox/world.ts). The laptop sits
// behind its home NAT on the 1,380-byte internet; its configuration comes from `wirelane showconf
// peer` and is brought up with the real wg-quick (wireguard-go as its userspace implementation).
// From the laptop, pods of every location answer (east is behind NAT too), and a ClusterIP whose
// backends are all in another location than the segment the Peer sends services to answers, in
// every service mode: the agents restart with another --service-proxy between modes.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe } from 'node:test';
import { runCommand } from '../../src/host/command.js';
import { generatePrivateKey, publicKeyOf } from '../../src/model/key.js';
import { echoRequests, startEchoServer } from '../../src/sandbox/echo/index.js';
import { cliPath, type MeshCluster } from '../../src/sandbox/mesh-cluster.js';
import type { SandboxHost } from '../../src/sandbox/sandbox.js';
import { completePeerConfig, WgQuickPeer } from '../../src/sandbox/wg-quick-peer.js';
import { NAT_KEEPALIVE_SECONDS, WORLD_INTERNET, WORLD_LANS } from '../../src/sandbox/world.js';
import { annotationsOf, createMeshCluster, suiteChecks, type TestMeshCluster } from '../harness/mesh-cluster.js';
import { CLUSTER_IP, webEndpoints, webService } from '../harness/web-service.js';
import { until } from '../support/wait.js';
import { AGENT_TOOLS, capabilitySkip } from '../support/capability.js';

const skip = await capabilitySkip('Peer on the routed world', [...AGENT_TOOLS, ['wg-quick', ['-h']]]);

// As in mesh-world.test.ts: heartbeats that survive a loaded machine.
const RESYNC_SECONDS = 10;
const SERVICE_CIDR = '10.96.0.0/16';
const BEHIND_NAT = { 'wirelane.io/persistent-keepalive': String(NAT_KEEPALIVE_SECONDS) };
// 'a' is the first node by name: east (behind NAT) is the segment the Peer sends ClusterIPs to
// (serviceSegmentOf), and the Service's only backends are in west.
const NODES = [
  { name: 'a', location: 'east', underlayAddress: WORLD_LANS.east1.v4(11), underlayAddress6: WORLD_LANS.east1.v6(11), annotations: BEHIND_NAT },
  { name: 'c', location: 'west', underlayAddress: WORLD_LANS.west.v4(11), underlayAddress6: WORLD_LANS.west.v6(11), publicAddress: WORLD_LANS.west.public(11) },
  { name: 'd', location: 'west', underlayAddress: WORLD_LANS.west.v4(12), underlayAddress6: WORLD_LANS.west.v6(12) },
];
const PEER = 'laptop';
const PEER_IP = '10.5.0.1';
const MODES = ['ebpf', 'iptables', 'userspace'] as const;

describe('a wg-quick Peer behind NAT in the routed world', { skip }, () => {
  let world: TestMeshCluster;
  let cluster: MeshCluster;
  let laptop: SandboxHost;
  let confDir: string | undefined;
  let conf: string;
  let up = false;
  let peer: WgQuickPeer | undefined;
  const { check, fail, failed } = suiteChecks();
  const privateKey = generatePrivateKey();

  const startAgents = async (mode: (typeof MODES)[number]) => {
    for (const n of NODES) cluster.startAgent(n.name, ['--service-proxy', mode]);
    // Three agents' first reconciles on a loaded machine: a bound for a slow start, not a measure.
    await cluster.waitReady(undefined, 300_000);
  };

  before(async () => {
    world = await createMeshCluster({
      nodes: NODES,
      source: 'kubernetes',
      internet: WORLD_INTERNET,
      outside: [{ name: PEER, underlayAddress: WORLD_LANS.home.v4(10), underlayAddress6: WORLD_LANS.home.v6(10) }],
      // --clean-up=false: a restart into another service mode leaves the mesh as it is (the new agent
      // removes the old mode's state: service-mode-switch.test.ts), so the tunnels stay up.
      agentArgs: ['--resync-period', `${RESYNC_SECONDS}s`, '--service-cidr', SERVICE_CIDR, '--clean-up=false'],
    });
    cluster = world.cluster;
    laptop = cluster.sandbox.outside[0]!;
    try {
      world.api!.create('peers', {
        apiVersion: 'wirelane.io/v1alpha1',
        kind: 'Peer',
        metadata: { name: PEER },
        spec: { allowedIPs: [`${PEER_IP}/32`], publicKey: publicKeyOf(privateKey), persistentKeepalive: NAT_KEEPALIVE_SECONDS },
      });
      const backends = ['c', 'd'].map((n) => cluster.sandbox.node(n).pods[0]!);
      for (const pod of backends) startEchoServer(cluster.sandbox, pod, pod.name, { tcp: 8080 });
      world.api!.create('services', webService('ClusterIP'));
      world.api!.create('endpointslices', webEndpoints(backends));
      await startAgents(MODES[0]);
    } catch (err) {
      fail();
      throw err;
    }
  });
  after(async () => {
    if (failed() && up) {
      // Each device by name: wireguard-go's sockets of every namespace (other sandboxes too) are in one directory.
      const devices = [[laptop.netns, `${cluster.sandbox.prefix}lp`], ...NODES.map((n) => [cluster.sandbox.node(n.name).netns, cluster.interfaceOf(n.name)])];
      for (const [netns, device] of devices) {
        process.stderr.write(`--- wg show ${device}\n${(await cluster.sandbox.exec(netns!, 'wg', ['show', device!], { allowFailure: true })).stdout}\n`);
      }
    }
    // wg-quick's own way down first; destroying the sandbox would end its wireguard-go anyway.
    await peer?.down();
    if (confDir !== undefined) await rm(confDir, { recursive: true, force: true });
    await world?.destroy(failed());
  });

  check('showconf peer gives the laptop every segment, at the endpoints the mesh discovered, the service range and its keepalive', async () => {
    // East has no address the internet can reach: the laptop can only meet its leader where west's
    // leader saw it (its router's mapping), once west has published that.
    const aKey = annotationsOf(world, 'a')['wirelane.io/key'];
    const discovered = (): string | undefined => (JSON.parse(annotationsOf(world, 'c')['wirelane.io/discovered-endpoints'] ?? '{}') as Record<string, string>)[aKey ?? ''];
    await until("c to publish where it sees east's leader", () => discovered() !== undefined, 60_000, 200);
    const args = [cliPath(), 'showconf', 'peer', PEER, '--kubeconfig', cluster.kubeconfig, '--service-cidr', SERVICE_CIDR, '--resync-period', `${RESYNC_SECONDS}s`];
    const shown = (await runCommand(process.execPath, args)).stdout;
    const sections = shown.split('[Peer]').slice(1);
    assert.equal(sections.length, 2, `one [Peer] per location:\n${shown}`);
    assert.equal(sections.filter((s) => s.includes(SERVICE_CIDR)).length, 1, 'the service range goes to one segment');
    const east = sections.find((s) => s.includes(`PublicKey = ${aKey}`));
    assert.ok(east?.includes(`Endpoint = ${discovered()}`), `east's [Peer] has the endpoint west discovered (${discovered()}):\n${shown}`);
    assert.ok(discovered()!.startsWith(`${cluster.sandbox.router('east').internetIP}:`), "that is east's router on the internet");
    for (const s of sections) assert.match(s, new RegExp(`PersistentKeepalive = ${NAT_KEEPALIVE_SECONDS}`), "every [Peer] keeps the laptop's NAT mapping open");
    conf = completePeerConfig(shown, { privateKey, addresses: [`${PEER_IP}/32`], listenPort: 51820 });
    assert.notEqual(conf, shown, 'the [Interface] section to complete');
  });

  check('wg-quick brings the configuration up on the laptop', async () => {
    assert.ok(conf, 'a configuration from showconf');
    confDir = await mkdtemp(join(tmpdir(), 'wirelane-wg-quick-'));
    up = true;
    peer = await WgQuickPeer.up(cluster.sandbox, laptop, `${cluster.sandbox.prefix}lp`, conf, confDir);
    const routes = (await peer.routes()).join('\n');
    assert.match(routes, new RegExp(`^${SERVICE_CIDR.replaceAll('.', '\\.')} `, 'm'), 'wg-quick routes the service range into the tunnel');
  });

  check('from behind the home NAT, the pods of every location answer', async () => {
    for (const pod of cluster.sandbox.pods) {
      assert.ok(await cluster.waitPing(laptop, pod.ip, 60_000), `the laptop reaches ${pod.name} (${pod.node})`);
    }
  });

  for (const mode of MODES) {
    check(`${mode}: a ClusterIP whose backends are in another location answers the laptop`, async () => {
      if (mode !== MODES[0]) {
        for (const n of NODES) await cluster.stopAgent(n.name);
        await startAgents(mode);
      }
      const backends = new Set(['c', 'd'].map((n) => cluster.sandbox.node(n).pods[0]!.name));
      // Until each backend has answered once: the restarted agents have settled.
      const seen = new Set<string>();
      let last: string[] = [];
      const answered = async () => {
        last = await echoRequests(cluster.sandbox, laptop, 'tcp', CLUSTER_IP, 80, { count: 1, timeoutMs: 10_000 });
        const from = last[0]?.split(' ')[0] ?? '';
        if (backends.has(from)) seen.add(from);
        return seen.size === backends.size;
      };
      await until(`${CLUSTER_IP}:80 to answer the laptop from each backend`, answered, 60_000, 500).catch((error: Error) => {
        throw new Error(`${error.message} (last answer: ${last.join(', ') || 'none'})`);
      });
      const answers = await echoRequests(cluster.sandbox, laptop, 'tcp', CLUSTER_IP, 80, { count: 10, timeoutMs: 10_000 });
      assert.equal(answers.filter((a) => backends.has(a.split(' ')[0] ?? '')).length, 10, `10 of 10 answered by west's backends: ${answers.join(', ')}`);
      assert.ok(await cluster.waitPing(laptop, cluster.sandbox.node('a').pods[0]!.ip, 30_000), "east's pod still answers");
    });
  }
});
