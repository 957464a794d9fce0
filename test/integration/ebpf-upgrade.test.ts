// Issue 10, item 4 (upgrades): an agent of an older build (test/fixtures/bpf/older-*, picked with
// WIRELANE_BPF_OBJECTS) runs node a's eBPF data path; it is killed and the current agent starts over
// its pins under steady ClusterIP (from a pod) and NodePort (from an outside host) traffic. The new
// agent replaces every program that differs in place, or rebuilds maps of another layout, and not
// one request fails. The unchanged case adopts as before.
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { BpfObject, bpfFixtureDir, bpfObjectPath, openPinnedLink, openPinnedMap, programInfoById } from '../../src/bpf/index.js';
import { MAP_NAMES, type MapName, SOCK_LB_PROGRAMS, linkPinPath, mapPinPath } from '../../src/dataplane/ebpf/index.js';
import { STAGING_DIR } from '../../src/dataplane/ebpf/map-staging.js';
import { echoRequests, startEchoServer } from '../../src/sandbox/echo/index.js';
import { type MeshCluster } from '../../src/sandbox/mesh-cluster.js';
import type { KubeApiServer } from '../kube-apiserver/index.js';
import { startMeshCluster } from '../harness/mesh-cluster.js';
import { CLUSTER_IP, NODE_PORT, webEndpoints, webService } from '../harness/web-service.js';
import { AGENT_TOOLS, capabilitySkip } from '../support/capability.js';
import { SteadyTraffic, summary, totalFailed } from '../support/traffic.js';
import { until } from '../support/wait.js';

const skip = await capabilitySkip('eBPF upgrade test', [...AGENT_TOOLS, ['bpftool', ['version']]]);
const OPTIONS = { skip, timeout: 240_000 };

type Pod = MeshCluster['sandbox']['pods'][number];

interface Upgrade {
  readonly cluster: MeshCluster;
  readonly api: KubeApiServer;
  /** Node a's pin directory. */
  readonly pins: string;
  readonly moveBackend: () => void;
  readonly clusterIP: () => Promise<string[]>;
}

/** A pinned link's kernel id and the id and tag of the program it runs. */
function linkState(path: string): { link: number; prog: number; tag: string } {
  const link = openPinnedLink(path);
  try {
    const info = link.info();
    return { link: info.id, prog: info.progId, tag: programInfoById(info.progId).tag };
  } finally {
    link.close();
  }
}

interface PinnedLink {
  readonly path: string;
  /** The program it runs, by its name in the object. */
  readonly program: string;
  readonly object: 'sock_lb' | 'nodeport';
}

/**
 * Every link node a's agent pins: the socket programs, the tc programs on eth0 (tcx on this kernel)
 * and on the mesh interface (an L3 device; its ingress also translates what Peers send: np_ingress_mesh).
 */
function linkPins(pins: string): PinnedLink[] {
  const names = readdirSync(join(pins, 'links')).filter((name) => name.startsWith('nodeport-')).sort();
  for (const direction of ['ingress', 'egress']) {
    assert.ok(names.some((name) => name.startsWith('nodeport-eth0-') && name.endsWith(`-${direction}`)), `a pinned tc link for eth0 ${direction} in ${pins}/links`);
  }
  const tc = names.map((name): PinnedLink => {
    const direction = name.endsWith('-ingress') ? 'ingress' : 'egress';
    const mesh = !name.startsWith('nodeport-eth0-');
    const program = mesh ? (direction === 'ingress' ? 'np_ingress_mesh' : 'np_egress_l3') : `np_${direction}`;
    return { path: join(pins, 'links', name), program, object: 'nodeport' };
  });
  return [...SOCK_LB_PROGRAMS.map((program): PinnedLink => ({ path: linkPinPath(pins, program), program, object: 'sock_lb' })), ...tc];
}

/** The kernel's tag of each program of the current build, by `object/program` (loaded, nothing attached or pinned). */
function currentTags(): Map<string, string> {
  const tags = new Map<string, string>();
  for (const name of ['sock_lb', 'nodeport']) {
    const object = BpfObject.open(bpfObjectPath(name));
    try {
      object.load();
      for (const { name: program } of object.programs()) tags.set(`${name}/${program}`, object.programInfo(program).tag);
    } finally {
      object.close();
    }
  }
  return tags;
}

/**
 * Node a runs an agent of `build` (a fixture set, or undefined for the current one) until it
 * serves the NodePort service web (ClusterIP 10.96.0.10:80, node port 30080) from its pod a1.
 * Client and backends are on node a: the test measures the eBPF data path across the agent's
 * restart, not the mesh (whose restart is tested in agent-restart tests).
 */
async function startOlderAgent(t: TestContext, build: string | undefined): Promise<Upgrade> {
  const { cluster, api } = await startMeshCluster(t, {
    nodes: [{ name: 'a', location: 'east', pods: 3 }],
    source: 'kubernetes',
    outside: [{ name: 'client', underlayAddress: '172.31.1.1/16' }],
    agentArgs: ['--resync-period', '5s', '--service-proxy', 'ebpf', '--clean-up=false'],
  });
  const [a0, a1, a2] = cluster.sandbox.node('a').pods as [Pod, Pod, Pod];
  startEchoServer(cluster.sandbox, a1, 'a1', { tcp: 8080 });
  startEchoServer(cluster.sandbox, a2, 'a2', { tcp: 8080 });
  api!.create('services', webService());
  api!.create('endpointslices', webEndpoints([a1]));
  // The older build is the agent's only through its environment (inherited by the spawned agent).
  if (build !== undefined) process.env['WIRELANE_BPF_OBJECTS'] = bpfFixtureDir(build);
  try {
    cluster.startAgent('a');
  } finally {
    delete process.env['WIRELANE_BPF_OBJECTS'];
  }
  await cluster.waitReady();
  const clusterIP = async () => (await echoRequests(cluster.sandbox, a0, 'tcp', CLUSTER_IP, 80, { count: 3, timeoutMs: 3000 })).map((l) => l.split(' ')[0] as string);
  await until('the older agent to serve the ClusterIP', async () => (await clusterIP()).join() === 'a1,a1,a1', 30_000, 250);
  return { cluster, api: api!, pins: join(cluster.bpffs, 'a'), moveBackend: () => api!.update('endpointslices', webEndpoints([a2])), clusterIP };
}

/** Kills node a's agent and starts the current build over its pins, under steady traffic; returns the counts of that window. */
async function upgradeUnderLoad(u: Upgrade): Promise<ReturnType<SteadyTraffic['counts']>> {
  const { cluster } = u;
  const nodeA = cluster.sandbox.node('a');
  const traffic = SteadyTraffic.start(cluster.sandbox, [
    { name: 'pod a0 → ClusterIP', from: nodeA.pods[0]!, protocol: 'tcp', host: CLUSTER_IP, port: 80 },
    { name: 'outside → NodePort', from: cluster.sandbox.outside[0]!, protocol: 'tcp', host: nodeA.underlayIP, port: NODE_PORT },
  ]);
  try {
    const before = traffic.counts();
    await traffic.waitSent(before, 8);
    const old = cluster.agents.get('a')!;
    process.kill(old.pid, 'SIGKILL');
    await old;
    cluster.agents.delete('a');
    cluster.startAgent('a');
    await cluster.waitReady(['a']);
    // The upgrade is done at start (programs) or at the first full write (maps): both before ready.
    const upgraded = traffic.counts();
    await traffic.waitSent(upgraded, 12);
    return traffic.since(before);
  } finally {
    await traffic.stop();
  }
}

test('a newer agent replaces programs of an older build in place under load, with no failed request', OPTIONS, async (t) => {
  const u = await startOlderAgent(t, 'older-code');
  const links = linkPins(u.pins);
  const before = links.map((l) => linkState(l.path));
  const current = currentTags();
  // The older build differs in the code of the programs that use its changed constants.
  const differing = links.filter((l, i) => before[i]!.tag !== current.get(`${l.object}/${l.program}`)).map((l) => l.program);
  assert.ok(differing.includes('sock_connect4') && differing.includes('np_ingress'), `programs of other code: ${differing.join(', ')}`);

  const counts = await upgradeUnderLoad(u);
  assert.equal(totalFailed(counts), 0, summary(counts));
  t.diagnostic(`upgrade (older code): ${summary(counts)}`);

  for (const [i, l] of links.entries()) {
    const after = linkState(l.path);
    assert.equal(after.link, before[i]!.link, `${l.path}: the same link (updated, never detached)`);
    assert.equal(after.tag, current.get(`${l.object}/${l.program}`), `${l.path}: runs the current build's code`);
    if (differing.includes(l.program)) assert.notEqual(after.prog, before[i]!.prog, `${l.path}: another program`);
    else assert.equal(after.prog, before[i]!.prog, `${l.path}: the same code, left running`);
  }
  const log = await u.cluster.log('a');
  assert.equal((log.match(/program replaced in place/g) ?? []).length, differing.length, 'one log line per replaced program');

  // The replaced programs serve the maps the new agent writes: a change lands.
  u.moveBackend();
  await until('the backend change to reach the new programs', async () => (await u.clusterIP()).join() === 'a2,a2,a2', 20_000, 250);
  const nodePort = await echoRequests(u.cluster.sandbox, u.cluster.sandbox.outside[0]!, 'tcp', u.cluster.sandbox.node('a').underlayIP, NODE_PORT, { count: 3, timeoutMs: 3000 });
  assert.deepEqual(nodePort.map((l) => l.split(' ')[0]), ['a2', 'a2', 'a2']);
});

test('a newer agent rebuilds maps of another layout under load, with no failed request', OPTIONS, async (t) => {
  const u = await startOlderAgent(t, 'older-layout');
  const pinned = (name: MapName) => {
    const map = openPinnedMap(mapPinPath(u.pins, name));
    try {
      return { id: map.id, maxEntries: map.maxEntries };
    } finally {
      map.close();
    }
  };
  const services = () => pinned(MAP_NAMES.services);
  const oldMap = services();
  assert.equal(pinned(MAP_NAMES.slots).maxEntries, 524288, 'the older build pinned its own layout');
  const oldMaps = new Set(Object.values(MAP_NAMES).map((name) => {
    const map = openPinnedMap(mapPinPath(u.pins, name));
    map.close();
    return map.id;
  }));
  const links = linkPins(u.pins);
  const before = links.map((l) => linkState(l.path));

  const counts = await upgradeUnderLoad(u);
  assert.equal(totalFailed(counts), 0, summary(counts));
  t.diagnostic(`upgrade (older map layout): ${summary(counts)}`);

  const newMap = services();
  assert.notEqual(newMap.id, oldMap.id, 'a new wl_services map');
  assert.equal(pinned(MAP_NAMES.slots).maxEntries, 1048576, 'in the current layout');
  assert.equal(existsSync(join(u.pins, STAGING_DIR)), false, 'the staging directory is gone');
  for (const [i, l] of links.entries()) {
    const after = linkState(l.path);
    assert.equal(after.link, before[i]!.link, `${l.path}: the same link`);
    const maps = programInfoById(after.prog).mapIds;
    // A program that reads none of the rebuilt maps (np_egress: only its own conntrack) may stay.
    assert.deepEqual(maps.filter((id) => oldMaps.has(id)), [], `${l.path}: uses none of the old maps`);
    if (l.program === 'sock_connect4' || l.program === 'np_ingress') assert.ok(maps.includes(newMap.id), `${l.path}: reads the new wl_services`);
  }
  assert.match(await u.cluster.log('a'), /rebuilt maps in service/);

  u.moveBackend();
  await until('the backend change to reach the rebuilt maps', async () => (await u.clusterIP()).join() === 'a2,a2,a2', 20_000, 250);
});

test('an agent of the same build adopts the pinned programs and replaces nothing', OPTIONS, async (t) => {
  const u = await startOlderAgent(t, undefined);
  const state = () => linkPins(u.pins).map((l) => linkState(l.path));
  const before = state();
  const counts = await upgradeUnderLoad(u);
  assert.equal(totalFailed(counts), 0, summary(counts));
  assert.deepEqual(state(), before, 'the same links running the same programs');
  const log = await u.cluster.log('a');
  assert.doesNotMatch(log, /program replaced in place|rebuilt maps/);
  assert.match(log, /re-adopted/);
});
