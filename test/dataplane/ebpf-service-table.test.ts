// The pure side of the eBPF service proxy: the map codec, the frontends a service port becomes, the
// slot assignment and the writes a change produces (no kernel needed).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  EntryBatch,
  MAP_LAYOUTS,
  MapLayoutError,
  MapWrites,
  Scope,
  ServiceFlag,
  ServiceTable,
  assignSlots,
  changedPorts,
  checkMapLayouts,
  frontendsOf,
  readAffinityKey,
  readBackendValue,
  readNodeAddrKey,
  readServiceKey,
  readServiceValue,
  writeAffinityKey,
  writeBackendValue,
  writeNodeAddrKey,
  writeServiceKey,
  writeServiceValue,
  type PortChange,
} from '../../src/dataplane/ebpf/index.js';
import { type Ip, formatIp, parseCidr, parseIp } from '../../src/model/ip.js';
import type { ServiceBackend, ServiceMap, ServicePort } from '../../src/model/service.js';
import { servicePort } from '../support/service-map.js';

const ip = parseIp;
const backend = (address: string, port = 8080, local = false): ServiceBackend => ({ ip: ip(address), port, local });

function port(name: string, extra: Partial<ServicePort> = {}, endpoints: ServiceBackend[] = [backend('10.1.0.1'), backend('10.1.0.2')]): ServicePort {
  return servicePort({ service: `default/${name}`, clusterIPs: [ip('10.96.0.1')], clusterEndpoints: endpoints, ...extra });
}

const mapOf = (ports: ServicePort[], nodePortAddresses: Ip[] = []): ServiceMap => ({ node: 'n', nodePortAddresses, clusterCIDRs: [], servicePorts: ports });

describe('codec', () => {
  test('keys and values read back as written, for both families and the NodePort wildcard', () => {
    const buf = Buffer.alloc(24);
    for (const key of [
      { addr: ip('10.96.0.1'), port: 80, slot: 3, protocol: 'UDP' as const, family: 4 as const, scope: Scope.internal },
      { addr: ip('fd00::1:2'), port: 443, slot: 0, protocol: 'TCP' as const, family: 6 as const, scope: Scope.external },
      { addr: undefined, port: 30080, slot: 65535, protocol: 'SCTP' as const, family: 4 as const, scope: Scope.external },
    ]) {
      writeServiceKey(buf, 0, key);
      assert.deepEqual(readServiceKey(buf), key);
    }
    // Network order where the kernel reads packets' bytes, host order elsewhere.
    writeServiceKey(buf, 0, { addr: ip('10.96.0.1'), port: 80, slot: 2, protocol: 'TCP', family: 4, scope: Scope.external });
    assert.equal(buf.toString('hex'), `0a600001${'00'.repeat(12)}0050` + '0200' + '06' + '04' + '01' + '00');

    const value = Buffer.alloc(16);
    writeServiceValue(value, 0, 7, 9, 300, ServiceFlag.affinity | ServiceFlag.clusterIP, 10800);
    assert.deepEqual(readServiceValue(value), { backendId: 7, serviceId: 9, count: 300, flags: ServiceFlag.affinity | ServiceFlag.clusterIP, affinityTimeout: 10800 });

    const b = Buffer.alloc(20);
    writeBackendValue(b, 0, { addr: ip('2001:db8::5'), port: 8443, flags: 1 });
    assert.deepEqual(readBackendValue(b), { addr: ip('2001:db8::5'), port: 8443, flags: 1 });

    const n = Buffer.alloc(20);
    writeNodeAddrKey(n, 0, ip('172.31.0.11'));
    assert.deepEqual(readNodeAddrKey(n), ip('172.31.0.11'));

    const a = Buffer.alloc(24);
    writeAffinityKey(a, 0, { client: { kind: 'netns', cookie: 0x1234_5678_9abcn }, serviceId: 4, family: 6 });
    assert.deepEqual(readAffinityKey(a), { client: { kind: 'netns', cookie: 0x1234_5678_9abcn }, serviceId: 4, family: 6 });
  });

  test('a map whose sizes differ from the codec is refused with both sizes named', () => {
    const good = Object.entries(MAP_LAYOUTS).map(([name, l]) => ({ name, keySize: l.key, valueSize: l.value }));
    checkMapLayouts(good);
    const bad = good.map((m) => (m.name === 'wl_services' ? { ...m, keySize: 28 } : m));
    assert.throws(() => checkMapLayouts(bad), (e: unknown) => e instanceof MapLayoutError && e.message === 'map wl_services: key size 28 in the object, 24 in the codec');
    assert.throws(() => checkMapLayouts(good.filter((m) => m.name !== 'wl_affinity')), /map wl_affinity: missing from the object/);
  });

  test('a batch grows without losing what it holds, and clears to zero', () => {
    const batch = new EntryBatch(8, 4, 1);
    for (let i = 0; i < 100; i++) {
      const at = batch.add();
      batch.keyWords[at * 2] = i;
      batch.valueWords[at] = i * 2;
    }
    assert.equal(batch.count, 100);
    assert.equal(batch.keyBytes().readUInt32LE(99 * 8), 99);
    assert.equal(batch.valueBytes().readUInt32LE(50 * 4), 100);
    batch.clear();
    assert.equal(batch.count, 0);
    assert.ok(batch.keys.every((byte) => byte === 0));
  });
});

describe('frontends of a service port', () => {
  const scopes = (p: ServicePort, families = new Set<4 | 6>([4])) =>
    frontendsOf(p, families).map((f) => ({ addr: f.addr === undefined ? '*' : formatIp(f.addr), port: f.port, scope: f.scope, backends: f.backends.map((b) => formatIp(b.ip)), flags: f.flags }));

  test('a ClusterIP is one internal frontend with the internal endpoints', () => {
    assert.deepEqual(scopes(port('web')), [{ addr: '10.96.0.1', port: 80, scope: Scope.internal, backends: ['10.1.0.1', '10.1.0.2'], flags: ServiceFlag.clusterIP }]);
  });

  test('external addresses: from this node all cluster endpoints (short-circuit), from outside the external ones', () => {
    const local = [backend('10.1.0.1', 8080, true)];
    const all = [...local, backend('10.1.0.2')];
    const p = port('web', { externalIPs: [ip('192.0.2.10')], loadBalancerIPs: [ip('192.0.2.20')], loadBalancerSourceRanges: [parseCidr('203.0.113.0/24')], externalPolicyLocal: true, clusterEndpoints: all, internalEndpoints: all, externalEndpoints: local });
    const fronts = scopes(p);
    const of = (addr: string, scope: number) => fronts.find((f) => f.addr === addr && f.scope === scope);
    assert.deepEqual(of('192.0.2.10', Scope.internal)?.backends, ['10.1.0.1', '10.1.0.2']);
    assert.deepEqual(of('192.0.2.10', Scope.external), { addr: '192.0.2.10', port: 80, scope: Scope.external, backends: ['10.1.0.1'], flags: ServiceFlag.externalIP | ServiceFlag.localOnly });
    assert.equal(of('192.0.2.20', Scope.external)?.flags, ServiceFlag.loadBalancer | ServiceFlag.localOnly | ServiceFlag.sourceRanges);
    assert.equal(of('192.0.2.20', Scope.internal)?.flags, ServiceFlag.loadBalancer | ServiceFlag.sourceRanges);
  });

  test('a NodePort is a wildcard frontend in both scopes, only for families the node serves NodePorts on', () => {
    const p = port('np', { nodePort: 30080 });
    assert.deepEqual(scopes(p, new Set()).map((f) => f.addr), ['10.96.0.1']);
    const withNodePort = scopes(p, new Set([4, 6]));
    assert.deepEqual(withNodePort.map((f) => [f.addr, f.port, f.scope, f.flags]), [
      ['10.96.0.1', 80, Scope.internal, ServiceFlag.clusterIP],
      ['*', 30080, Scope.internal, ServiceFlag.nodePort],
      ['*', 30080, Scope.external, ServiceFlag.nodePort],
      // IPv6 NodePorts too, with no IPv6 endpoint: they refuse.
      ['*', 30080, Scope.internal, ServiceFlag.nodePort],
      ['*', 30080, Scope.external, ServiceFlag.nodePort],
    ]);
    assert.deepEqual(frontendsOf(p, new Set([4, 6])).slice(3).map((f) => [f.family, f.backends.length]), [[6, 0], [6, 0]]);
  });

  test('no endpoint at all rejects; a Local policy that rules every endpoint out drops', () => {
    assert.equal(scopes(port('empty', {}, []))[0]?.flags, ServiceFlag.clusterIP);
    const p = port('local', { internalPolicyLocal: true, internalEndpoints: [] });
    assert.equal(scopes(p)[0]?.flags, ServiceFlag.clusterIP | ServiceFlag.noEndpointDrop);
  });

  test('affinity, dual-stack endpoints split by family, duplicates once', () => {
    const endpoints = [backend('10.1.0.1'), backend('fd00::1'), backend('10.1.0.1')];
    const p = port('dual', { clusterIPs: [ip('10.96.0.1'), ip('fd00:96::1')], externalIPs: [ip('10.96.0.1')], sessionAffinityTimeoutSeconds: 60 }, endpoints);
    const fronts = frontendsOf(p, new Set());
    assert.deepEqual(fronts.map((f) => [f.family, f.scope, f.backends.map((b) => b.ip.family)]), [
      [4, Scope.internal, [4]],
      // The ExternalIP equal to the ClusterIP: its internal frontend is the ClusterIP's, kept once.
      [4, Scope.external, [4]],
      [6, Scope.internal, [6]],
    ]);
    assert.ok(fronts.every((f) => f.affinityTimeout === 60 && (f.flags & ServiceFlag.affinity) !== 0));
  });
});

describe('slots', () => {
  const cases: Array<[string, number[], number, number[], number[]]> = [
    ['a new frontend', [0], 0, [5, 6, 7], [0, 5, 6, 7]],
    ['unchanged', [0, 5, 6, 7], 3, [7, 6, 5], [0, 5, 6, 7]],
    ['a backend replaced in its slot', [0, 5, 6, 7], 3, [5, 8, 7], [0, 5, 8, 7]],
    ['grown at the end', [0, 5, 6], 2, [5, 6, 9], [0, 5, 6, 9]],
    ['a middle backend leaves: the last one moves into its slot', [0, 5, 6, 7], 3, [5, 7], [0, 5, 7]],
    ['the last backend leaves: nothing moves', [0, 5, 6, 7], 3, [5, 6], [0, 5, 6]],
    ['a leftover tail past the count is ignored', [0, 5, 6, 7, 9], 3, [5, 6, 7], [0, 5, 6, 7]],
    ['all replaced', [0, 5, 6], 2, [8], [0, 8]],
  ];
  for (const [name, old, count, want, expected] of cases) {
    test(name, () => assert.deepEqual(assignSlots(old, count, want), expected));
  }
});

describe('service table writes', () => {
  const changesOf = (ports: ServicePort[], removed: string[] = []): PortChange[] => [
    ...ports.map((p) => ({ portKey: `${p.service}:${p.portName}/${p.protocol}`, frontends: frontendsOf(p, new Set([4])) })),
    ...removed.map((portKey) => ({ portKey, frontends: undefined })),
  ];
  const counts = (w: MapWrites) => ({ backends: w.backends.count, slots: w.slots.count, heads: w.heads.count, headDeletes: w.headDeletes.count, slotDeletes: w.slotDeletes.count, backendDeletes: w.backendDeletes.count });
  const plan = (table: ServiceTable, changes: PortChange[], sweep = false) => {
    const writes = new MapWrites();
    table.plan(changes, writes, { sweep });
    return writes;
  };

  test('a new port writes its backends, its slots and its service entry; backends shared by ports are written once', () => {
    const table = new ServiceTable();
    const w = plan(table, changesOf([port('a'), port('b', { clusterIPs: [ip('10.96.0.2')] })]));
    assert.deepEqual(counts(w), { backends: 2, slots: 4, heads: 2, headDeletes: 0, slotDeletes: 0, backendDeletes: 0 });
    // Slot keys carry the head's key with the slot number; values carry the backend and service ids.
    assert.deepEqual(readServiceKey(w.slots.keys, 24).slot, 2);
    const head = readServiceValue(w.heads.values, 0);
    assert.equal(head.count, 2);
    assert.equal(readServiceValue(w.slots.values, 0).serviceId, head.serviceId);
    assert.notEqual(readServiceValue(w.heads.values, 16).serviceId, head.serviceId, 'each port its own service id');
  });

  test('one endpoint replaced writes one backend and one slot; shrinking writes the count and deletes the tail and unused backends', () => {
    const table = new ServiceTable();
    plan(table, changesOf([port('a', {}, [backend('10.1.0.1'), backend('10.1.0.2'), backend('10.1.0.3')])]));
    const replaced = plan(table, changesOf([port('a', {}, [backend('10.1.0.1'), backend('10.1.0.9'), backend('10.1.0.3')])]));
    assert.deepEqual(counts(replaced), { backends: 1, slots: 1, heads: 0, headDeletes: 0, slotDeletes: 0, backendDeletes: 1 });
    assert.equal(readServiceKey(replaced.slots.keys, 0).slot, 2, 'the new backend takes the old one’s slot');
    const shrunk = plan(table, changesOf([port('a', {}, [backend('10.1.0.3')])]));
    // 10.1.0.3 moves from slot 3 to slot 1; the count drops to 1; slots 2 and 3 go.
    assert.deepEqual(counts(shrunk), { backends: 0, slots: 1, heads: 1, headDeletes: 0, slotDeletes: 2, backendDeletes: 2 });
    assert.equal(readServiceValue(shrunk.heads.values, 0).count, 1);
  });

  test('a removed port deletes its service entry before its slots, and keeps backends other ports use', () => {
    const table = new ServiceTable();
    plan(table, changesOf([port('a'), port('b', { clusterIPs: [ip('10.96.0.2')] })]));
    const w = plan(table, changesOf([], ['default/a:http/TCP']));
    assert.deepEqual(counts(w), { backends: 0, slots: 0, heads: 0, headDeletes: 1, slotDeletes: 2, backendDeletes: 0 });
    assert.equal(table.frontendCount, 1);
    assert.equal(table.backendCount, 2);
  });

  test('deletions past a batch’s first buffer are all kept (the batch grows under them)', () => {
    const table = new ServiceTable();
    const ports = Array.from({ length: 60 }, (_, i) =>
      port(`p${i}`, { clusterIPs: [ip(`10.96.1.${i}`)] }, Array.from({ length: 10 }, (_, j) => backend(`10.2.${i}.${j}`))),
    );
    plan(table, changesOf(ports));
    const w = plan(table, changesOf([], ports.map((p) => `${p.service}:http/TCP`)));
    assert.deepEqual(counts(w), { backends: 0, slots: 0, heads: 0, headDeletes: 60, slotDeletes: 600, backendDeletes: 600 });
    const slots = Array.from({ length: 600 }, (_, i) => readServiceKey(w.slotDeletes.keys, i * 24).slot);
    assert.ok(slots.every((slot) => slot >= 1 && slot <= 10), 'every deleted slot key was written');
    const ids = new Set(Array.from({ length: 600 }, (_, i) => w.backendDeletes.keys.readUInt32LE(i * 4)));
    assert.equal(ids.size, 600);
    assert.ok(!ids.has(0));
  });

  test('a frontend another port holds is not taken over', () => {
    const table = new ServiceTable();
    plan(table, changesOf([port('a')]));
    const w = plan(table, changesOf([port('b')]));
    assert.equal(w.total, 0);
    assert.deepEqual(table.conflicts.map((c) => [c.portKey, c.owner]), [['default/b:http/TCP', 'default/a:http/TCP']]);
  });

  test('a table read back from the maps writes nothing for the same ports, and sweeps what nobody claims', () => {
    const first = new ServiceTable();
    const written = plan(first, changesOf([port('a'), port('gone', { clusterIPs: [ip('10.96.0.9')] }, [backend('10.1.0.7')])]));
    const entries = (keys: EntryBatch, values: EntryBatch): Array<[Buffer, Buffer]> =>
      Array.from({ length: keys.count }, (_, i) => [Buffer.from(keys.keys.subarray(i * keys.keySize, (i + 1) * keys.keySize)), Buffer.from(values.values.subarray(i * values.valueSize, (i + 1) * values.valueSize))]);
    const services = [...entries(written.slots, written.slots), ...entries(written.heads, written.heads)];
    const backends = entries(written.backends, written.backends);
    const adopted = ServiceTable.fromEntries(services, backends);
    const w = plan(adopted, changesOf([port('a')]), true);
    assert.deepEqual(counts(w), { backends: 0, slots: 0, heads: 0, headDeletes: 1, slotDeletes: 1, backendDeletes: 1 });
  });
});

describe('changed ports', () => {
  test('by position when the ports line up; reused objects are not compared', () => {
    const a = port('a');
    const b = port('b', { clusterIPs: [ip('10.96.0.2')] });
    const first = changedPorts(undefined, mapOf([a, b]), false);
    assert.deepEqual(first.updated.map(([k]) => k), ['default/a:http/TCP', 'default/b:http/TCP']);
    assert.deepEqual(changedPorts(first.applied, mapOf([a, b]), false).updated, []);
    // Equal content in new objects is no change; one endpoint more is.
    assert.deepEqual(changedPorts(first.applied, mapOf([port('a'), port('b', { clusterIPs: [ip('10.96.0.2')] })]), false).updated, []);
    const moved = port('b', { clusterIPs: [ip('10.96.0.2')] }, [backend('10.1.0.1'), backend('10.1.0.2'), backend('10.1.0.3')]);
    assert.deepEqual(changedPorts(first.applied, mapOf([a, moved]), false).updated.map(([k]) => k), ['default/b:http/TCP']);
  });

  test('by key when ports come and go; NodePort ports all change when the node-port families do', () => {
    const a = port('a', { nodePort: 30080 });
    const b = port('b', { clusterIPs: [ip('10.96.0.2')] });
    const c = port('c', { clusterIPs: [ip('10.96.0.3')] });
    const first = changedPorts(undefined, mapOf([a, b]), false);
    const next = changedPorts(first.applied, mapOf([a, c]), false);
    assert.deepEqual(next.updated.map(([k]) => k), ['default/c:http/TCP']);
    assert.deepEqual(next.removed, ['default/b:http/TCP']);
    assert.deepEqual(changedPorts(next.applied, mapOf([a, c]), true).updated.map(([k]) => k), ['default/a:http/TCP']);
  });
});
