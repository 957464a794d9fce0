// The eBPF service proxy started over the pins of an older build (test/fixtures/bpf/older-*): what
// it replaces in place, what it stages, and what it leaves. Kernel state only; traffic through an
// upgrade is test/integration/ebpf-upgrade.test.ts.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { BpfObject, bpfFixtureDir, bpfObjectPath, openPinnedLink, openPinnedMap, programInfoById, queryTcFilter } from '../../src/bpf/index.js';
import { runCommand } from '../../src/host/command.js';
import { createNetns, deleteNetns } from '../../src/host/netns.js';
import { EbpfServiceProxy, MAP_NAMES, type MapName, SOCK_LB_PROGRAMS, linkPinPath, mapPinPath } from '../../src/dataplane/ebpf/index.js';
import { STAGING_DIR } from '../../src/dataplane/ebpf/map-staging.js';
import { NodePortDatapath } from '../../src/dataplane/ebpf/nodeport.js';
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
async function openProxy(t: TestContext, w: World, build: string | undefined, tcMode: 'tcx' | 'clsact' = 'tcx'): Promise<EbpfServiceProxy> {
  const object = (name: string) => (build === undefined ? bpfObjectPath(name) : join(bpfFixtureDir(build), `${name}.bpf.o`));
  const proxy = await EbpfServiceProxy.open({
    bpffsDir: w.pins,
    cgroupRoot: w.cgroup,
    objectPath: object('sock_lb'),
    sockTermObjectPath: object('sock_term'),
    nodePort: { enabled: true, interfaces: ['uplink0'] },
    northSouth: (options) => new NodePortDatapath({ ...options, netns: `/var/run/netns/${w.netns}`, tcMode, objectPath: object('nodeport') }),
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
