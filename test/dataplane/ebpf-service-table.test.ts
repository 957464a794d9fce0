// The pure side of the eBPF service proxy: the map codec, the frontends a service port becomes, the
// slot assignment, the slot ranges and what a change writes, in what order (no kernel needed).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import {
  BACKEND_STRIDE,
  EntryBatch,
  MAP_LAYOUTS,
  MAX_BACKENDS,
  MapLayoutError,
  MapWrites,
  Scope,
  ServiceFlag,
  SLOT_STRIDE,
  ServiceTable,
  SlotRanges,
  assignSlots,
  capacityFor,
  checkMapLayouts,
  frontendsOf,
  plainMemory,
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
  type ServiceValue,
} from '../../src/dataplane/ebpf/index.js';
import { BACKENDS_FULL, BackendPool } from '../../src/dataplane/ebpf/backend-pool.js';
import { type Ip, formatIp, parseCidr, parseIp } from '../../src/model/ip.js';
import type { ServiceBackend, ServicePort } from '../../src/model/service.js';
import { servicePort } from '../support/service-map.js';

const ip = parseIp;
const backend = (address: string, port = 8080, local = false): ServiceBackend => ({ ip: ip(address), port, local });

function port(name: string, extra: Partial<ServicePort> = {}, endpoints: ServiceBackend[] = [backend('10.1.0.1'), backend('10.1.0.2')]): ServicePort {
  return servicePort({ service: `default/${name}`, clusterIPs: [ip('10.96.0.1')], clusterEndpoints: endpoints, ...extra });
}

describe('codec', () => {
  test('keys and values read back as written, for both families and the NodePort wildcard', () => {
    const buf = Buffer.alloc(24);
    for (const key of [
      { addr: ip('10.96.0.1'), port: 80, protocol: 'UDP' as const, family: 4 as const, scope: Scope.internal },
      { addr: ip('fd00::1:2'), port: 443, protocol: 'TCP' as const, family: 6 as const, scope: Scope.external },
      { addr: undefined, port: 30080, protocol: 'SCTP' as const, family: 4 as const, scope: Scope.external },
    ]) {
      writeServiceKey(buf, 0, key);
      assert.deepEqual(readServiceKey(buf), key);
    }
    // Network order where the kernel reads packets' bytes, host order elsewhere.
    writeServiceKey(buf, 0, { addr: ip('10.96.0.1'), port: 80, protocol: 'TCP', family: 4, scope: Scope.external });
    assert.equal(buf.toString('hex'), `0a600001${'00'.repeat(12)}0050` + '06' + '04' + '01' + '000000');

    const value = Buffer.alloc(20);
    const service = { firstSlot: 70000, serviceId: 9, count: 300, flags: ServiceFlag.affinity | ServiceFlag.clusterIP, affinityTimeout: 10800, capacity: 384 };
    writeServiceValue(value, 0, service);
    assert.deepEqual(readServiceValue(value), service);

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
    assert.deepEqual(frontendsOf(p, new Set([4, 6])).slice(3).map((f) => [f.family, f.backends.filter((b) => b.ip.family === f.family).length]), [[6, 0], [6, 0]]);
  });

  test('no endpoint at all rejects; a Local policy that rules every endpoint out drops', () => {
    assert.equal(scopes(port('empty', {}, []))[0]?.flags, ServiceFlag.clusterIP);
    const p = port('local', { internalPolicyLocal: true, internalEndpoints: [] });
    assert.equal(scopes(p)[0]?.flags, ServiceFlag.clusterIP | ServiceFlag.noEndpointDrop);
  });

  test('affinity, dual-stack endpoints split by family, a duplicate left to the table', () => {
    const endpoints = [backend('10.1.0.1'), backend('fd00::1'), backend('10.1.0.1')];
    const p = port('dual', { clusterIPs: [ip('10.96.0.1'), ip('fd00:96::1')], externalIPs: [ip('10.96.0.1')], sessionAffinityTimeoutSeconds: 60 }, endpoints);
    const fronts = frontendsOf(p, new Set());
    // The table takes the endpoints of the frontend's family (see 'each family its own backends').
    assert.deepEqual(fronts.map((f) => [f.family, f.scope, f.backends.filter((b) => b.ip.family === f.family).map((b) => b.ip.family)]), [
      // 10.1.0.1 twice: the table writes it once (see 'an endpoint listed twice takes one slot').
      [4, Scope.internal, [4, 4]],
      // The ExternalIP equal to the ClusterIP: its internal frontend is the ClusterIP's, kept once.
      [4, Scope.external, [4, 4]],
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

describe('slot ranges', () => {
  test('capacities come in classes about 1.5 times apart, up to the 16-bit count', () => {
    assert.deepEqual([0, 1, 2, 3, 4, 5, 7, 9, 10, 13, 17, 100].map(capacityFor), [0, 1, 2, 3, 4, 6, 8, 12, 12, 16, 24, 128]);
    assert.equal(capacityFor(MAX_BACKENDS), MAX_BACKENDS);
  });

  test('a released range is reused from the next change on, not in the same one', () => {
    const ranges = new SlotRanges(64);
    const a = ranges.tryAllocate(12)!;
    ranges.release(a, 12);
    assert.notEqual(ranges.tryAllocate(12), a, 'a reader may still follow the old entry');
    ranges.recycle();
    assert.equal(ranges.tryAllocate(12), a);
  });

  test('read back from the entries: the gaps are free, and a full map says so', () => {
    const ranges = SlotRanges.fromUsed(32, [[0, 8], [12, 4], [20, 12]]);
    assert.equal(ranges.inUse, 24);
    const got = [ranges.tryAllocate(4)!, ranges.tryAllocate(4)!].sort((x, y) => x - y);
    assert.deepEqual(got, [8, 16]);
    assert.equal(ranges.tryAllocate(4), undefined);
    assert.equal(ranges.inUse, 32);
  });

  test('free neighbours merge when nothing else fits', () => {
    const ranges = new SlotRanges(16);
    const firsts = [ranges.tryAllocate(4)!, ranges.tryAllocate(4)!, ranges.tryAllocate(4)!, ranges.tryAllocate(4)!];
    for (const first of firsts.slice(1, 3)) ranges.release(first, 4);
    ranges.recycle();
    assert.equal(ranges.tryAllocate(8), firsts[1]);
  });
});

describe('backend pool', () => {
  test('one id per address and port, reused once released; churn does not grow the index', () => {
    const pool = new BackendPool(new Uint32Array(64 * BACKEND_STRIDE));
    const capacity = pool.indexCapacity;
    const a = pool.ref(ip('10.1.0.1'), 80, false, pool.newMark());
    assert.equal(pool.ref(ip('10.1.0.1'), 80, false, pool.newMark()), a, 'the same backend, the same id');
    assert.notEqual(pool.ref(ip('10.1.0.1'), 81, false, pool.newMark()), a, 'another port, another id');
    for (let i = 0; i < 10_000; i++) {
      const address: Ip = { family: 4, value: BigInt(0x0a020000 + i) };
      const id = pool.ref(address, 8080, false, pool.newMark());
      assert.ok(pool.unref(id));
      pool.release(id);
    }
    assert.equal(pool.size, 2);
    assert.equal(pool.indexCapacity, capacity, 'tombstones are swept, not grown over');
    assert.equal(pool.capacity, 63, 'id 0 means none');
    const ids = Array.from({ length: 61 }, (_, i) => pool.ref({ family: 4, value: BigInt(0x0a030000 + i) }, 80, false, pool.newMark()));
    assert.ok(ids.every((id) => id > 0), 'every id is usable');
    assert.equal((pool as { size: number }).size, 63);
    assert.equal(pool.ref({ family: 4, value: BigInt(0x0a040000) }, 80, false, pool.newMark()), BACKENDS_FULL);
    assert.equal(pool.ref(ip('10.1.0.1'), 80, false, pool.newMark()), a, 'a full pool still names the backends it has');
  });

  test('the index finds each backend by address and port, through collisions, tombstones and rebuilds', () => {
    // Keys repeat (300 addresses, low and high: negative as int32; 3 ports), and the pool fills (511
    // ids, the index's 1,024 cells half full), so probes run long and pass other keys.
    const address = fc.integer({ min: 0, max: 299 }).map((i) => (i % 2 === 0 ? 0x0a000000 + i : 0xc0a80000 + i));
    const key = fc.record({ address, port: fc.integer({ min: 1, max: 3 }) });
    const op = fc.record({ add: fc.oneof(fc.constant(true), fc.constant(true), fc.constant(false)), key });
    fc.assert(
      fc.property(fc.array(op, { minLength: 1500, maxLength: 2500 }), (ops) => {
        const pool = new BackendPool(new Uint32Array(512 * BACKEND_STRIDE));
        const model = new Map<string, number>();
        for (const { add, key: k } of ops) {
          const name = `${k.address}:${k.port}`;
          const held = model.get(name);
          if (add) {
            const id = pool.ref({ family: 4, value: BigInt(k.address) }, k.port, false, pool.newMark());
            if (held !== undefined) assert.equal(id, held, `${name} keeps its id`);
            else if (id === BACKENDS_FULL) assert.equal(model.size, pool.capacity, 'full only when every id is taken');
            else assert.ok(id > 0 && ![...model.values()].includes(id), `${name} gets an id of its own`);
            if (id > 0) model.set(name, id);
          } else if (held !== undefined) {
            while (!pool.unref(held));
            pool.release(held);
            model.delete(name);
          }
        }
        assert.equal(pool.size, model.size);
      }),
      { numRuns: 30 },
    );
  });

  test('a rollback frees at once what the same mark allocated, and leaves the rest to the caller', () => {
    const pool = new BackendPool(new Uint32Array(8 * BACKEND_STRIDE));
    const old = pool.ref(ip('10.1.0.1'), 80, false, pool.newMark());
    assert.ok(pool.unref(old), 'named by nothing now, but maybe still in a slot a reader sees');
    const mark = pool.newMark();
    const fresh = pool.ref(ip('10.1.0.2'), 80, false, mark);
    assert.equal(pool.ref(ip('10.1.0.1'), 80, false, mark), old);
    assert.equal(pool.rollback(fresh, mark), false, 'allocated under the mark: released now');
    assert.equal(pool.size, 1);
    assert.equal(pool.rollback(old, mark), true, 'older: the caller releases it after the entries');
  });
});

describe('service table', () => {
  const changesOf = (ports: ServicePort[], removed: string[] = []): PortChange[] => [
    ...ports.map((p) => ({ portKey: `${p.service}:${p.portName}/${p.protocol}`, frontends: frontendsOf(p, new Set([4])) })),
    ...removed.map((portKey) => ({ portKey, frontends: undefined })),
  ];

  /** The table over plain arrays and a Map standing for wl_services, changed the way the proxy does it. */
  class Harness {
    readonly memory: ReturnType<typeof plainMemory>;
    readonly services = new Map<string, ServiceValue>();
    table: ServiceTable;

    /** Sizes as the maps': wl_slots, wl_backends (one more than the backends it holds), wl_services. */
    constructor(sizes: { slots?: number; backends?: number; services?: number } = {}) {
      this.memory = plainMemory(sizes.slots ?? 256, sizes.backends ?? 1024);
      this.table = new ServiceTable(this.memory, sizes.services);
    }

    /** plan(), then `between` (what a reader could see while the entries are written), then the entries, then finish(). */
    change(changes: PortChange[], options: { sweep?: boolean; between?: () => void } = {}): MapWrites {
      const w = new MapWrites();
      this.table.plan(changes, w, options);
      options.between?.();
      for (let i = 0; i < w.heads.count; i++) this.services.set(w.heads.keys.subarray(i * 24, (i + 1) * 24).toString('hex'), readServiceValue(w.heads.values, i * 20));
      for (let i = 0; i < w.headDeletes.count; i++) this.services.delete(w.headDeletes.keys.subarray(i * 24, (i + 1) * 24).toString('hex'));
      this.table.finish(w);
      return w;
    }

    entry(clusterIP: string): ServiceValue {
      const key = Buffer.alloc(24);
      writeServiceKey(key, 0, { addr: ip(clusterIP), port: 80, protocol: 'TCP', family: 4, scope: Scope.internal });
      const v = this.services.get(key.toString('hex'));
      assert.ok(v, `an entry for ${clusterIP}`);
      return v;
    }

    /** The backend addresses in the entry's slots 1..count, as a reader finds them. */
    backends(clusterIP: string): string[] {
      const v = this.entry(clusterIP);
      return Array.from({ length: v.count }, (_, i) => this.backend(this.slot(v.firstSlot + i)));
    }

    slot(index: number): number {
      return this.memory.slots[index * SLOT_STRIDE]!;
    }

    backend(id: number): string {
      const bytes = Buffer.from(this.memory.backends.buffer, id * BACKEND_STRIDE * 4, 20);
      return bytes[18] === 0 ? '(cleared)' : formatIp(readBackendValue(bytes).addr);
    }

    idOf(address: string): number {
      for (let id = 1; id < this.memory.backends.length / BACKEND_STRIDE; id++) if (this.backend(id) === address) return id;
      return 0;
    }

    /** The ClusterIPs that have an entry. */
    programmed(): string[] {
      return [...this.services.keys()].map((k) => formatIp(readServiceKey(Buffer.from(k, 'hex'), 0).addr!)).sort();
    }
  }

  /** Service `name` at ClusterIP 10.96.0.<n> with endpoints 10.1.<n>.1..<count>: distinct per service. */
  const numbered = (n: number, count: number): ServicePort =>
    port(`s${n}`, { clusterIPs: [ip(`10.96.0.${n}`)] }, Array.from({ length: count }, (_, i) => backend(`10.1.${n}.${i + 1}`)));
  const unfitOf = (h: Harness) => h.table.unfit.map((u) => `${u.portKey} ${u.frontend} ${u.table}${u.kept ? ' kept' : ''}`);

  test('a table of N backends holds N; a frontend needing one more is reported and not programmed, the others are', () => {
    const h = new Harness({ backends: 31 }); // ids 1..30
    const w = h.change(changesOf([numbered(1, 10), numbered(2, 10), numbered(3, 11), numbered(4, 10)]));
    assert.deepEqual(h.programmed(), ['10.96.0.1', '10.96.0.2', '10.96.0.4']);
    assert.equal(h.table.backendCount, 30, 'every id in use');
    assert.deepEqual(unfitOf(h), ['default/s3:http/TCP 10.96.0.3 port 80 (internal) backends']);
    assert.equal(w.heads.count, 3);
    assert.deepEqual(h.backends('10.96.0.4'), Array.from({ length: 10 }, (_, i) => `10.1.4.${i + 1}`), 'the frontend after the one that did not fit');
    assert.equal(h.idOf('10.1.3.1'), 0, 'nothing of the unfit frontend is left in the backends');
    // Room appears: the port that did not fit is planned again (the proxy re-plans every port while any is unfit).
    h.change(changesOf([numbered(1, 10), numbered(3, 11)], ['default/s2:http/TCP', 'default/s4:http/TCP']));
    assert.deepEqual(unfitOf(h), ['default/s3:http/TCP 10.96.0.3 port 80 (internal) backends'], 'the backends of removed ports are free only once their entries are gone');
    h.change(changesOf([numbered(1, 10), numbered(3, 11)]));
    assert.deepEqual(unfitOf(h), []);
    assert.deepEqual(h.programmed(), ['10.96.0.1', '10.96.0.3']);
    assert.equal(h.backends('10.96.0.3').length, 11);
  });

  test('a full wl_services: the frontend past its size is reported and not programmed; a removal makes room', () => {
    const h = new Harness({ services: 2 });
    h.change(changesOf([numbered(1, 2), numbered(2, 2), numbered(3, 2)]));
    assert.deepEqual(h.programmed(), ['10.96.0.1', '10.96.0.2']);
    assert.deepEqual(unfitOf(h), ['default/s3:http/TCP 10.96.0.3 port 80 (internal) services']);
    assert.equal(h.idOf('10.1.3.1'), 0, 'no backend written for it');
    h.change(changesOf([numbered(3, 2)], ['default/s1:http/TCP']));
    assert.deepEqual(unfitOf(h), ['default/s3:http/TCP 10.96.0.3 port 80 (internal) services'], "a removed frontend's entry goes after the new ones are written");
    h.change(changesOf([numbered(3, 2)]));
    assert.deepEqual(unfitOf(h), []);
    assert.deepEqual(h.programmed(), ['10.96.0.2', '10.96.0.3']);
  });

  test('an existing frontend whose new endpoints do not fit keeps its previous ones, and says so', () => {
    const h = new Harness({ backends: 6 }); // ids 1..5
    h.change(changesOf([numbered(1, 3)]));
    const before = h.backends('10.96.0.1');
    const grown = port('s1', { clusterIPs: [ip('10.96.0.1')], sessionAffinityTimeoutSeconds: 60 }, [...before.map((a) => backend(a)), backend('10.1.9.1'), backend('10.1.9.2'), backend('10.1.9.3')]);
    h.change(changesOf([grown]));
    assert.deepEqual(unfitOf(h), ['default/s1:http/TCP 10.96.0.1 port 80 (internal) backends kept']);
    assert.deepEqual(h.backends('10.96.0.1'), before, 'the previous endpoints serve on');
    assert.equal(h.entry('10.96.0.1').affinityTimeout, 60, 'what does fit (the entry) is updated');
    assert.equal(h.table.backendCount, 3, 'nothing of the new ones is left');
  });

  test('a full wl_slots: a new frontend is reported and not programmed, a growing one keeps its range and backends', () => {
    const h = new Harness({ slots: 8 });
    h.change(changesOf([numbered(1, 4), numbered(2, 4), numbered(3, 1)]));
    assert.deepEqual(h.programmed(), ['10.96.0.1', '10.96.0.2']);
    assert.deepEqual(unfitOf(h), ['default/s3:http/TCP 10.96.0.3 port 80 (internal) slots']);
    assert.equal(h.idOf('10.1.3.1'), 0, "the unfit frontend's backend went back");
    h.change(changesOf([numbered(1, 5), numbered(2, 4)]));
    assert.deepEqual(unfitOf(h), ['default/s1:http/TCP 10.96.0.1 port 80 (internal) slots kept']);
    assert.deepEqual(h.backends('10.96.0.1'), ['10.1.1.1', '10.1.1.2', '10.1.1.3', '10.1.1.4']);
    assert.equal(h.idOf('10.1.1.5'), 0);
  });

  test('a new port writes its backends and slots in place and one entry; a backend shared by ports is written once', () => {
    const h = new Harness();
    const w = h.change(changesOf([port('a'), port('b', { clusterIPs: [ip('10.96.0.2')] })]));
    assert.equal(w.heads.count, 2);
    assert.equal(w.stores, 2 + 2 + 2, 'two backends, then two slots per port');
    assert.deepEqual(h.backends('10.96.0.1'), ['10.1.0.1', '10.1.0.2']);
    assert.deepEqual(h.backends('10.96.0.2'), ['10.1.0.1', '10.1.0.2']);
    const [a, b] = [h.entry('10.96.0.1'), h.entry('10.96.0.2')];
    assert.notEqual(a.firstSlot, b.firstSlot, 'each frontend its own range');
    assert.equal(a.capacity, 2);
    assert.notEqual(a.serviceId, b.serviceId, 'each port its own service id');
  });

  test('one endpoint replaced: one backend and one slot in place, no entry; the old backend is cleared only after the entries', () => {
    const h = new Harness();
    h.change(changesOf([port('a', {}, [backend('10.1.0.1'), backend('10.1.0.2'), backend('10.1.0.3')])]));
    const gone = h.idOf('10.1.0.2');
    const w = h.change(changesOf([port('a', {}, [backend('10.1.0.1'), backend('10.1.0.9'), backend('10.1.0.3')])]), {
      between: () => assert.equal(h.backend(gone), '10.1.0.2', 'a reader that read the old slot still finds its backend'),
    });
    assert.equal(w.heads.count, 0);
    assert.equal(w.stores, 3, 'the new backend, its slot, the old backend cleared');
    assert.deepEqual(h.backends('10.96.0.1'), ['10.1.0.1', '10.1.0.9', '10.1.0.3'], 'the new backend takes the old one’s slot');
    assert.equal(h.backend(gone), '(cleared)');
  });

  test('shrinking: the last backend moves into a freed slot, the count drops, the tail is cleared after the entry', () => {
    const h = new Harness();
    h.change(changesOf([port('a', {}, [backend('10.1.0.1'), backend('10.1.0.2'), backend('10.1.0.3')])]));
    const { firstSlot } = h.entry('10.96.0.1');
    const w = h.change(changesOf([port('a', {}, [backend('10.1.0.3')])]), {
      between: () => assert.deepEqual([0, 1, 2].map((i) => h.backend(h.slot(firstSlot + i))), ['10.1.0.3', '10.1.0.2', '10.1.0.3'], 'every slot within the old count holds a live backend'),
    });
    assert.equal(w.heads.count, 1);
    assert.deepEqual(h.backends('10.96.0.1'), ['10.1.0.3']);
    assert.equal(h.entry('10.96.0.1').firstSlot, firstSlot, 'in place');
    assert.deepEqual([h.slot(firstSlot + 1), h.slot(firstSlot + 2)], [0, 0]);
    assert.equal(w.stores, 1 + 2 + 2, 'one slot, two tail slots and two backends cleared');
  });

  test('growing past the range moves to a new one with the entry; the old range is cleared after it and reused from the next change', () => {
    const h = new Harness();
    h.change(changesOf([port('a')]));
    const before = h.entry('10.96.0.1');
    h.change(changesOf([port('a', {}, [backend('10.1.0.1'), backend('10.1.0.2'), backend('10.1.0.3')])]), {
      between: () => assert.deepEqual([h.slot(before.firstSlot), h.slot(before.firstSlot + 1)].map((id) => h.backend(id)), ['10.1.0.1', '10.1.0.2'], 'the old range is intact while the old entry may be read'),
    });
    const after = h.entry('10.96.0.1');
    assert.notEqual(after.firstSlot, before.firstSlot);
    assert.equal(after.capacity, 3);
    assert.deepEqual(h.backends('10.96.0.1'), ['10.1.0.1', '10.1.0.2', '10.1.0.3'], 'backends keep their slots (affinity remembers slots)');
    assert.deepEqual([h.slot(before.firstSlot), h.slot(before.firstSlot + 1)], [0, 0]);
    h.change(changesOf([port('a', {}, [backend('10.1.0.1'), backend('10.1.0.2'), backend('10.1.0.3')]), port('b', { clusterIPs: [ip('10.96.0.2')] })]));
    assert.equal(h.entry('10.96.0.2').firstSlot, before.firstSlot);
  });

  test('a removed port deletes its entry, clears its slots after it, and keeps backends other ports use', () => {
    const h = new Harness();
    h.change(changesOf([port('a'), port('b', { clusterIPs: [ip('10.96.0.2')] })]));
    const { firstSlot } = h.entry('10.96.0.1');
    const w = h.change(changesOf([], ['default/a:http/TCP']));
    assert.equal(w.headDeletes.count, 1);
    assert.equal(w.stores, 2);
    assert.deepEqual([h.slot(firstSlot), h.slot(firstSlot + 1)], [0, 0]);
    assert.equal(h.table.frontendCount, 1);
    assert.equal(h.table.backendCount, 2);
    assert.deepEqual(h.backends('10.96.0.2'), ['10.1.0.1', '10.1.0.2']);
  });

  test('sixty ports of ten go at once: every slot and backend is cleared and every range is free again', () => {
    const h = new Harness();
    const ports = Array.from({ length: 60 }, (_, i) => port(`p${i}`, { clusterIPs: [ip(`10.96.1.${i}`)] }, Array.from({ length: 10 }, (_, j) => backend(`10.2.${i}.${j}`))));
    const slots = new Harness().memory.slots.length / SLOT_STRIDE;
    assert.ok(60 * 12 > slots, 'the ports need more slots than the harness has: ranges must be reused');
    // 60 × 12 slots do not fit in 256: in two halves, with the first half removed in between.
    h.change(changesOf(ports.slice(0, 20)));
    const w = h.change(changesOf([], ports.slice(0, 20).map((p) => `${p.service}:http/TCP`)));
    assert.equal(w.headDeletes.count, 20);
    assert.equal(w.stores, 20 * 10 + 200, 'slots and backends cleared');
    assert.ok(h.memory.slots.every((v) => v === 0) && h.memory.backends.every((v) => v === 0));
    assert.equal(h.table.slotsInUse, 0);
    assert.equal(h.table.portCount, 0, 'nothing is kept for ports that went');
    h.change(changesOf(ports.slice(20, 40)));
    assert.deepEqual(h.backends('10.96.1.39'), Array.from({ length: 10 }, (_, j) => `10.2.39.${j}`));
  });

  test('each family its own backends: a dual-stack port\'s IPv4 ClusterIP gets the IPv4 endpoints, its IPv6 one the IPv6 endpoints', () => {
    const h = new Harness();
    h.change(changesOf([port('dual', { clusterIPs: [ip('10.96.0.1'), ip('fd00:96::1')] }, [backend('10.1.0.1'), backend('fd00::1'), backend('10.1.0.2')])]));
    assert.deepEqual(h.backends('10.96.0.1'), ['10.1.0.1', '10.1.0.2']);
    const key = Buffer.alloc(24);
    writeServiceKey(key, 0, { addr: ip('fd00:96::1'), port: 80, protocol: 'TCP', family: 6, scope: Scope.internal });
    const v6 = h.services.get(key.toString('hex'));
    assert.equal(v6?.count, 1);
    assert.equal(h.backend(h.slot(v6.firstSlot)), 'fd00::1');
  });

  test('an endpoint listed twice takes one slot', () => {
    const h = new Harness();
    h.change(changesOf([port('a', {}, [backend('10.1.0.1'), backend('10.1.0.2'), backend('10.1.0.1')])]));
    assert.deepEqual(h.backends('10.96.0.1'), ['10.1.0.1', '10.1.0.2']);
  });

  test('a frontend another port holds is not taken over', () => {
    const h = new Harness();
    h.change(changesOf([port('a')]));
    const w = h.change(changesOf([port('b')]));
    assert.equal(w.total, 0);
    assert.deepEqual(h.table.conflicts.map((c) => [c.portKey, c.owner]), [['default/b:http/TCP', 'default/a:http/TCP']]);
    h.change(changesOf([], ['default/b:http/TCP']));
    assert.equal(h.table.portCount, 1, 'the port that owned nothing is forgotten when it goes');
  });

  test('a table read back from the maps writes nothing for the same ports, and sweeps what nobody claims', () => {
    const h = new Harness();
    h.change(changesOf([port('a'), port('gone', { clusterIPs: [ip('10.96.0.9')] }, [backend('10.1.0.7')])]));
    const entries: Array<[Buffer, Buffer]> = [...h.services].map(([key, value]) => {
      const v = Buffer.alloc(20);
      writeServiceValue(v, 0, value);
      return [Buffer.from(key, 'hex'), v];
    });
    h.table = ServiceTable.fromMaps(entries, h.memory);
    assert.equal(h.table.backendCount, 3);
    const w = h.change(changesOf([port('a')]), { sweep: true });
    assert.deepEqual({ heads: w.heads.count, headDeletes: w.headDeletes.count, stores: w.stores }, { heads: 0, headDeletes: 1, stores: 2 });
    assert.equal(h.backend(h.idOf('10.1.0.7')), '(cleared)');
    assert.equal(h.idOf('10.1.0.7'), 0);
  });
});
