// The eBPF service proxy started over the pins of an older build (test/fixtures/bpf/older-*, and
// the previous release's own sources in test/fixtures/bpf/previous-release): what it replaces in
// place, what it adds, what it stages, and what it leaves. Kernel state only; traffic through an
// upgrade is test/integration/ebpf-upgrade.test.ts.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { BpfObject, bpfFixtureDir, bpfObjectPath, openPinnedLink, openPinnedMap, programInfoById, queryTcFilter } from '../../src/bpf/index.js';
import { runCommand } from '../../src/host/command.js';
import { createNetns, deleteNetns } from '../../src/host/netns.js';
import { EBPF_MAP_SIZES } from '../../src/agent/service-proxy-modes.js';
import { EbpfServiceProxy, MAP_NAMES, type MapName, SOCK_LB_PROGRAMS, linkPinPath, mapPinPath } from '../../src/dataplane/ebpf/index.js';
import { STAGING_DIR } from '../../src/dataplane/ebpf/map-staging.js';
import { NODEPORT_MAPS, NODEPORT_STATS, NodePortDatapath, readNodePortStats } from '../../src/dataplane/ebpf/nodeport.js';
import { SOCK_OWNED_MAP } from '../../src/dataplane/ebpf/sock-lb.js';
import { parseIp } from '../../src/model/ip.js';
import type { ServiceMap } from '../../src/model/service.js';
import { bpffsDir, bpfSkip, cgroupDir, onCleanup, uniqueName } from '../bpf/harness.js';
import { applyMap } from '../support/apply-map.js';
import { backend, servicePort } from '../support/service-map.js';

const skip = await bpfSkip('eBPF upgrade tests');
const OPTIONS = { skip, timeout: 60_000 };

interface World {
  readonly netns: string;
  readonly cgroup: string;
  readonly pins: string;
}

/** A namespace with an interface for the tc programs, a cgroup, a pin directory; all removed after. */
async function world(t: TestContext): Promise<World> {
  const netns = uniqueName('wlupg');
  await createNetns([netns]);
  onCleanup(t, () => deleteNetns([netns]));
  await runCommand('ip', ['-n', netns, 'link', 'add', 'uplink0', 'type', 'veth', 'peer', 'name', 'uplink1']);
  await runCommand('ip', ['-n', netns, 'link', 'set', 'uplink0', 'up']);
  return { netns, cgroup: cgroupDir(t), pins: join(await bpffsDir(t), 'wirelane') };
}

/** A proxy of `build` (a fixture set; undefined: the current objects) with the tc path on uplink0. */
async function openProxy(t: TestContext, w: World, build: string | undefined, tcMode: 'tcx' | 'clsact' = 'tcx', sizes = {}): Promise<EbpfServiceProxy> {
  const object = (name: string) => (build === undefined ? bpfObjectPath(name) : join(bpfFixtureDir(build), `${name}.bpf.o`));
  const proxy = await EbpfServiceProxy.open({
    bpffsDir: w.pins,
    cgroupRoot: w.cgroup,
    objectPath: object('sock_lb'),
    sockTermObjectPath: object('sock_term'),
    nodePort: { enabled: true, interfaces: ['uplink0'] },
    northSouth: (options) => new NodePortDatapath({ ...options, netns: `/var/run/netns/${w.netns}`, tcMode, objectPath: object('nodeport') }),
    sizes,
  });
  onCleanup(t, () => proxy.cleanup());
  return proxy;
}

const MAP: ServiceMap = {
  node: 'test',
  nodePortAddresses: [parseIp('192.168.77.1')],
  clusterCIDRs: [],
  servicePorts: [servicePort({ clusterEndpoints: [backend('127.0.0.11:8080', true)], internalEndpoints: [backend('127.0.0.11:8080', true)], externalEndpoints: [backend('127.0.0.11:8080', true)], nodePort: 30080 })],
};

/** Program id and link id of each pinned socket link. */
function socketLinks(w: World): Array<{ link: number; prog: number }> {
  return SOCK_LB_PROGRAMS.map((program) => {
    const link = openPinnedLink(linkPinPath(w.pins, program));
    try {
      const info = link.info();
      return { link: info.id, prog: info.progId };
    } finally {
      link.close();
    }
  });
}

function mapId(w: World, name: MapName, dir = w.pins): number {
  const map = openPinnedMap(mapPinPath(dir, name));
  map.close();
  return map.id;
}

/** The socket programs of the previous release (before sock_release). */
const PREVIOUS_SOCKET_PROGRAMS = SOCK_LB_PROGRAMS.filter((p) => p !== 'sock_release');

/**
 * What an agent of the previous release left pinned, made from that release's objects the way it
 * made it: the shared maps and its socket links on the cgroup, the tc programs' own maps and their
 * tcx links on uplink0. Its agent code cannot drive those objects any more (the current one wants
 * sock_release and the new maps), so the pins are made here.
 */
async function pinPreviousRelease(t: TestContext, w: World): Promise<void> {
  const dir = bpfFixtureDir('previous-release');
  mkdirSync(join(w.pins, 'links'), { recursive: true });
  const sockLb = BpfObject.open(join(dir, 'sock_lb.bpf.o'));
  onCleanup(t, () => sockLb.close());
  for (const name of Object.values(MAP_NAMES)) sockLb.setMapPinPath(name, mapPinPath(w.pins, name));
  sockLb.load();
  for (const program of PREVIOUS_SOCKET_PROGRAMS) {
    const link = sockLb.attachCgroup(program, w.cgroup);
    link.pin(linkPinPath(w.pins, program));
    link.close();
  }
  const nodePort = BpfObject.open(join(dir, 'nodeport.bpf.o'));
  onCleanup(t, () => nodePort.close());
  for (const map of nodePort.maps()) if (!map.internal) nodePort.setMapPinPath(map.name, join(w.pins, map.name));
  nodePort.load();
  const ifindex = (JSON.parse((await runCommand('ip', ['-n', w.netns, '-j', 'link', 'show', 'dev', 'uplink0'])).stdout) as Array<{ ifindex: number }>)[0]!.ifindex;
  for (const direction of ['ingress', 'egress'] as const) {
    const attached = nodePort.attachTc(`np_${direction}`, { interface: 'uplink0', direction, netns: `/var/run/netns/${w.netns}` }, { mode: 'tcx' });
    assert.equal(attached.mode, 'tcx');
    attached.link.pin(join(w.pins, 'links', `nodeport-uplink0-${ifindex}-${direction}`));
    attached.link.close();
  }
}

/** The kernel's tag of each program of the current build, by `object/program`. */
function currentTags(t: TestContext): Map<string, string> {
  const tags = new Map<string, string>();
  for (const name of ['sock_lb', 'nodeport']) {
    const object = BpfObject.open(bpfObjectPath(name));
    onCleanup(t, () => object.close());
    object.load();
    for (const { name: program } of object.programs()) tags.set(`${name}/${program}`, object.programInfo(program).tag);
  }
  return tags;
}

function pinnedLink(path: string): { link: number; prog: number } {
  const link = openPinnedLink(path);
  try {
    const info = link.info();
    return { link: info.id, prog: info.progId };
  } finally {
    link.close();
  }
}

function pinnedMap(w: World, name: string): { id: number; maxEntries: number } {
  const map = openPinnedMap(join(w.pins, name));
  map.close();
  return { id: map.id, maxEntries: map.maxEntries };
}

const filterOf = (w: World, direction: 'ingress' | 'egress') => ({ interface: 'uplink0', direction, handle: 0x4e50, priority: 1, netns: `/var/run/netns/${w.netns}` });

test('clsact filters of an older build get the current programs in place; programs of the same code stay', OPTIONS, async (t) => {
  const w = await world(t);
  const old = await openProxy(t, w, 'older-code', 'clsact');
  await applyMap(old, MAP);
  old.close();
  const before = { ingress: queryTcFilter(filterOf(w, 'ingress')), egress: queryTcFilter(filterOf(w, 'egress')) };
  assert.ok(before.ingress !== undefined && before.egress !== undefined);

  const next = await openProxy(t, w, undefined, 'clsact');
  const tcSwaps = next.programSwaps.filter((s) => s.where.startsWith('clsact'));
  assert.deepEqual(tcSwaps.map((s) => [s.program, s.where, s.why.join()]), [['np_ingress', 'clsact uplink0 ingress', 'code']]);
  const ingress = queryTcFilter(filterOf(w, 'ingress'));
  assert.equal(ingress, tcSwaps[0]!.to.id);
  assert.notEqual(ingress, before.ingress);
  assert.equal(queryTcFilter(filterOf(w, 'egress')), before.egress, 'np_egress has the same code: left running');
  // Its code is the current build's.
  const current = BpfObject.open(bpfObjectPath('nodeport'));
  onCleanup(t, () => current.close());
  current.load();
  assert.equal(programInfoById(ingress!).tag, current.programInfo('np_ingress').tag);
});

test('a start over pins of the same build replaces nothing and keeps every program', OPTIONS, async (t) => {
  const w = await world(t);
  const first = await openProxy(t, w, undefined);
  await applyMap(first, MAP);
  const before = socketLinks(w);
  first.close();
  const second = await openProxy(t, w, undefined);
  assert.deepEqual(second.programSwaps, []);
  assert.equal(second.upgradePending, false);
  assert.deepEqual(socketLinks(w), before);
});

test('maps of another layout are staged beside the old ones, which serve until the first full write', OPTIONS, async (t) => {
  const w = await world(t);
  const old = await openProxy(t, w, 'older-layout');
  await applyMap(old, MAP);
  // Something the old programs remember: an affinity choice, to be carried over.
  const affinityKey = Buffer.alloc(24, 7);
  const affinityValue = Buffer.alloc(16, 9);
  old.maps.affinity.update(affinityKey, affinityValue);
  // And a NodePort flow in the tc path's own conntrack map, whose flags differ in that build too.
  const oldConntrack = openPinnedMap(join(w.pins, 'wl_np_ct'));
  onCleanup(t, () => oldConntrack.close());
  assert.equal(oldConntrack.flags, 2, 'BPF_F_NO_COMMON_LRU in the older build');
  const flowKey = Buffer.alloc(40, 3);
  const flowValue = Buffer.alloc(52, 4);
  oldConntrack.update(flowKey, flowValue);
  old.close();
  const before = socketLinks(w);
  const oldServices = mapId(w, MAP_NAMES.services);
  const oldEntries = openPinnedMap(mapPinPath(w.pins, MAP_NAMES.services)).keys().length;
  assert.ok(oldEntries > 0);

  const next = await openProxy(t, w, undefined);
  assert.equal(next.upgradePending, true);
  assert.deepEqual(socketLinks(w), before, 'the old programs run on until the new maps are full');
  assert.equal(mapId(w, MAP_NAMES.services), oldServices, 'the old pins stay meanwhile');
  assert.equal(openPinnedMap(mapPinPath(w.pins, MAP_NAMES.services)).keys().length, oldEntries, 'and keep their entries');
  assert.deepEqual(readdirSync(join(w.pins, STAGING_DIR)).sort(), [...Object.values(MAP_NAMES), 'wl_np_ct'].sort());

  await applyMap(next, MAP);
  assert.equal(next.upgradePending, false);
  assert.equal(existsSync(join(w.pins, STAGING_DIR)), false);
  const services = openPinnedMap(mapPinPath(w.pins, MAP_NAMES.services));
  onCleanup(t, () => services.close());
  assert.equal(services.maxEntries, 131072, 'the pin now holds the current layout');
  assert.notEqual(services.id, oldServices);
  assert.equal(services.keys().length, oldEntries, 'filled with the full service map');
  const after = socketLinks(w);
  for (const [i, program] of SOCK_LB_PROGRAMS.entries()) {
    assert.equal(after[i]!.link, before[i]!.link, `${program}: the same link`);
    assert.notEqual(after[i]!.prog, before[i]!.prog, `${program}: a program over the new maps`);
  }
  const connect = programInfoById(after[0]!.prog);
  assert.ok(connect.mapIds.includes(services.id));
  assert.deepEqual(next.programSwaps.filter((s) => s.why.includes('maps')).map((s) => s.program).filter((p) => p.startsWith('sock_')), [...SOCK_LB_PROGRAMS]);
  assert.deepEqual(openPinnedMap(mapPinPath(w.pins, MAP_NAMES.affinity)).lookup(affinityKey), affinityValue, 'remembered choices carried over');
  const conntrack = openPinnedMap(join(w.pins, 'wl_np_ct'));
  onCleanup(t, () => conntrack.close());
  assert.notEqual(conntrack.id, oldConntrack.id, 'the tc path rebuilt its own map of another layout');
  assert.equal(conntrack.flags, 0);
  assert.deepEqual(conntrack.lookup(flowKey), flowValue, 'flows in progress carried over');
});

test('a staging directory an interrupted upgrade left, unused by any program, is discarded at start', OPTIONS, async (t) => {
  const w = await world(t);
  const first = await openProxy(t, w, undefined);
  await applyMap(first, MAP);
  first.close();
  // A map nobody reads, pinned where a rebuild stages its maps.
  mkdirSync(join(w.pins, STAGING_DIR));
  const stray = BpfObject.open(bpfObjectPath('sock_lb'));
  onCleanup(t, () => stray.close());
  stray.setMaxEntries(MAP_NAMES.services, 16);
  stray.load();
  const map = stray.map(MAP_NAMES.services);
  map.pin(join(w.pins, STAGING_DIR, MAP_NAMES.services));
  map.close();
  const before = socketLinks(w);

  const second = await openProxy(t, w, undefined);
  assert.equal(existsSync(join(w.pins, STAGING_DIR)), false);
  assert.equal(second.upgradePending, false);
  assert.deepEqual(socketLinks(w), before);
  assert.notEqual(mapId(w, MAP_NAMES.services), map.id, 'the live pins were kept');
});

test('a staging directory whose maps a running program already uses is promoted at start, and every program moves to it', OPTIONS, async (t) => {
  const w = await world(t);
  const old = await openProxy(t, w, 'older-layout');
  await applyMap(old, MAP);
  old.close();
  // An agent that stopped mid-switch: its rebuilt maps staged, one program already moved to them.
  const interrupted = await openProxy(t, w, undefined);
  assert.equal(interrupted.upgradePending, true);
  const moved = BpfObject.open(bpfObjectPath('sock_lb'));
  onCleanup(t, () => moved.close());
  for (const name of Object.values(MAP_NAMES)) moved.setMapPinPath(name, join(w.pins, STAGING_DIR, name));
  moved.load();
  const staged = mapId(w, MAP_NAMES.services, join(w.pins, STAGING_DIR));
  const connect4 = openPinnedLink(linkPinPath(w.pins, 'sock_connect4'));
  onCleanup(t, () => connect4.close());
  connect4.update(moved.programFd('sock_connect4'));
  interrupted.close();

  const next = await openProxy(t, w, undefined);
  assert.equal(existsSync(join(w.pins, STAGING_DIR)), false);
  assert.equal(mapId(w, MAP_NAMES.services), staged, 'the staged maps are the pinned ones now');
  assert.equal(next.upgradePending, false);
  for (const program of SOCK_LB_PROGRAMS) {
    const link = openPinnedLink(linkPinPath(w.pins, program));
    const { mapIds } = programInfoById(link.info().progId);
    link.close();
    if (program.startsWith('sock_connect') || program.startsWith('sock_sendmsg')) assert.ok(mapIds.includes(staged), `${program} reads the promoted maps`);
  }
  await applyMap(next, MAP);
  const services = openPinnedMap(mapPinPath(w.pins, MAP_NAMES.services));
  onCleanup(t, () => services.close());
  assert.ok(services.keys().length > 0, 'and the first apply fills them');
});

test("the previous release's pins: programs replaced in place, sock_release and the new maps added, the tc maps rebuilt with their flows", OPTIONS, async (t) => {
  const w = await world(t);
  await pinPreviousRelease(t, w);
  const tcLinks = readdirSync(join(w.pins, 'links')).filter((name) => name.startsWith('nodeport-')).map((name) => join(w.pins, 'links', name));
  const linksBefore = [...PREVIOUS_SOCKET_PROGRAMS.map((p) => linkPinPath(w.pins, p)), ...tcLinks].map((path) => ({ path, ...pinnedLink(path) }));
  const conntrack = pinnedMap(w, NODEPORT_MAPS.conntrack.name);
  assert.deepEqual([conntrack.maxEntries, pinnedMap(w, NODEPORT_MAPS.stats.name).maxEntries], [65536, 11], "the previous release's sizes");
  // A flow in progress: the rebuilt conntrack map takes it over.
  const flowKey = Buffer.alloc(40, 3);
  const flowValue = Buffer.alloc(52, 4);
  const old = openPinnedMap(join(w.pins, NODEPORT_MAPS.conntrack.name));
  old.update(flowKey, flowValue);
  old.close();
  const services = pinnedMap(w, MAP_NAMES.services);

  // As the agent starts it: its flags' sizes.
  const next = await openProxy(t, w, undefined, 'tcx', EBPF_MAP_SIZES);
  assert.equal(next.adopted, true, 'a data path that was serving is adopted');
  assert.equal(next.upgradePending, true, 'the tc maps of another size and layout are staged');
  await applyMap(next, MAP);
  assert.equal(next.upgradePending, false);
  assert.equal(existsSync(join(w.pins, STAGING_DIR)), false);

  const tags = currentTags(t);
  for (const before of linksBefore) {
    const after = pinnedLink(before.path);
    assert.equal(after.link, before.link, `${before.path}: the same link`);
    const program = before.path.includes('/nodeport-') ? `nodeport/np_${before.path.split('-').pop()}` : `sock_lb/${before.path.split('/').pop()}`;
    assert.equal(programInfoById(after.prog).tag, tags.get(program), `${before.path}: runs the current build's code`);
  }
  assert.ok(next.programSwaps.some((s) => s.program === 'sock_connect4') && next.programSwaps.some((s) => s.program === 'np_ingress'), 'the changed programs were swapped');
  const release = pinnedLink(linkPinPath(w.pins, 'sock_release'));
  const cgroupPrograms = JSON.parse((await runCommand('bpftool', ['-j', 'cgroup', 'show', w.cgroup])).stdout) as Array<{ id: number; attach_type: string }>;
  assert.ok(cgroupPrograms.some((p) => p.id === release.prog && p.attach_type === 'cgroup_inet_sock_release'), JSON.stringify(cgroupPrograms));
  assert.equal(pinnedMap(w, MAP_NAMES.services).id, services.id, 'the shared maps are kept');
  assert.ok(existsSync(join(w.pins, SOCK_OWNED_MAP)));
  assert.equal(pinnedMap(w, NODEPORT_MAPS.pending.name).maxEntries, 2 * EBPF_MAP_SIZES.nodePortPendingFlows);
  assert.equal(pinnedMap(w, NODEPORT_MAPS.affinity.name).maxEntries, EBPF_MAP_SIZES.affinityEntries);
  const rebuilt = pinnedMap(w, NODEPORT_MAPS.conntrack.name);
  assert.notEqual(rebuilt.id, conntrack.id);
  assert.equal(rebuilt.maxEntries, 2 * EBPF_MAP_SIZES.nodePortFlows);
  const current = openPinnedMap(join(w.pins, NODEPORT_MAPS.conntrack.name));
  onCleanup(t, () => current.close());
  assert.deepEqual(current.lookup(flowKey), flowValue, 'the flow in progress was carried over');
  assert.deepEqual(Object.keys(readNodePortStats(w.pins) ?? {}), [...NODEPORT_STATS], 'every counter readable');
});

test('a size changed between two starts rebuilds those maps beside the old ones and carries their entries over', OPTIONS, async (t) => {
  const w = await world(t);
  const sizes = { sockLbEntries: 4096, affinityEntries: 4096, nodePortFlows: 2048, nodePortPendingFlows: 1024, serviceEntries: 1024, backendEntries: 1023 };
  const first = await openProxy(t, w, undefined, 'tcx', sizes);
  await applyMap(first, MAP);
  const tables = [MAP_NAMES.services, MAP_NAMES.backends].map((name) => ({ name, ...pinnedMap(w, name) }));
  const serviceKeys = first.maps.services.keys().map((k) => k.toString('hex')).sort();
  // One entry in each map the programs fill: the rebuilt maps must hold them.
  const remembered = [
    [MAP_NAMES.sockRev, Buffer.alloc(32, 1), Buffer.alloc(24, 2)],
    [MAP_NAMES.affinity, Buffer.alloc(24, 3), Buffer.alloc(16, 4)],
    [NODEPORT_MAPS.conntrack.name, Buffer.alloc(40, 5), Buffer.alloc(52, 6)],
    [NODEPORT_MAPS.pending.name, Buffer.alloc(40, 7), Buffer.alloc(56, 8)],
    [NODEPORT_MAPS.affinity.name, Buffer.alloc(24, 9), Buffer.alloc(16, 10)],
  ] as const;
  for (const [name, key, value] of remembered) {
    const map = openPinnedMap(join(w.pins, name));
    map.update(key, value);
    map.close();
  }
  const before = new Map(remembered.map(([name]) => [name, pinnedMap(w, name)]));
  first.close();

  const bigger = { sockLbEntries: 8192, affinityEntries: 8192, nodePortFlows: 4096, nodePortPendingFlows: 2048, serviceEntries: 2048, backendEntries: 4095 };
  const second = await openProxy(t, w, undefined, 'tcx', bigger);
  assert.equal(second.upgradePending, true);
  for (const [name] of remembered) assert.equal(pinnedMap(w, name).id, before.get(name)!.id, `${name}: the old map serves until the first full write`);
  await applyMap(second, MAP);
  assert.equal(second.upgradePending, false);
  assert.equal(existsSync(join(w.pins, STAGING_DIR)), false);
  const wanted = {
    [MAP_NAMES.sockRev]: bigger.sockLbEntries,
    [MAP_NAMES.affinity]: bigger.affinityEntries,
    [NODEPORT_MAPS.conntrack.name]: 2 * bigger.nodePortFlows,
    [NODEPORT_MAPS.pending.name]: 2 * bigger.nodePortPendingFlows,
    [NODEPORT_MAPS.affinity.name]: bigger.affinityEntries,
  };
  for (const [name, key, value] of remembered) {
    const map = openPinnedMap(join(w.pins, name));
    onCleanup(t, () => map.close());
    assert.notEqual(map.id, before.get(name)!.id, `${name}: rebuilt`);
    assert.equal(map.maxEntries, wanted[name], `${name}: the new size`);
    assert.deepEqual(map.lookup(key), value, `${name}: its entry carried over`);
  }
  // Every program reads the rebuilt maps.
  const rebuilt = new Set(remembered.map(([name]) => pinnedMap(w, name).id));
  const oldIds = new Set([...before.values()].map((m) => m.id));
  for (const program of SOCK_LB_PROGRAMS) {
    const { mapIds } = programInfoById(pinnedLink(linkPinPath(w.pins, program)).prog);
    assert.deepEqual(mapIds.filter((id) => oldIds.has(id)), [], `${program} uses none of the old maps`);
    if (program === 'sock_connect4') assert.ok(mapIds.some((id) => rebuilt.has(id)));
  }
  // The service tables the agent fills: rebuilt at their new sizes and written in full.
  for (const [i, size] of [bigger.serviceEntries, bigger.backendEntries + 1].entries()) {
    const { name, id } = tables[i]!;
    const table = pinnedMap(w, name);
    assert.notEqual(table.id, id, `${name}: rebuilt`);
    assert.equal(table.maxEntries, size, `${name}: the new size`);
  }
  assert.deepEqual(second.maps.services.keys().map((k) => k.toString('hex')).sort(), serviceKeys, 'every frontend in the rebuilt wl_services');
  const { mapIds } = programInfoById(pinnedLink(linkPinPath(w.pins, 'sock_connect4')).prog);
  assert.ok(mapIds.includes(pinnedMap(w, MAP_NAMES.backends).id), 'the socket LB reads the rebuilt wl_backends');
});
