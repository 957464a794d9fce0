// The service change tracker: what changed between the last successful apply and the next map, as
// every proxy is handed it (changed ports, map-wide fields, stale UDP flows), and what stays pending
// when an apply fails.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type Ip, formatIp, parseCidr, parseIp } from '../../src/model/ip.js';
import { type ServiceMap, type ServicePort, servicePortKey } from '../../src/model/service.js';
import { type ServiceChanges, ServiceChangeTracker } from '../../src/services/changes.js';
import { MAP_FIELDS, type MapField, PORT_FIELDS } from '../../src/services/port-fields.js';
import type { StaleUdpFlow } from '../../src/services/stale-udp-flows.js';
import type { KubeObject } from '../../src/sources/objects.js';
import { ep, mapOf, service, slice } from './builder.js';
import { backend, serviceMap, servicePort } from '../support/service-map.js';

/** The changes an apply of `map` is handed, then the apply succeeds (or throws `fail`). */
async function changesOf(tracker: ServiceChangeTracker, map: ServiceMap, fail?: Error): Promise<ServiceChanges> {
  let seen: ServiceChanges | undefined;
  const applied = tracker.track(map, async (changes) => {
    seen = changes;
    if (fail !== undefined) throw fail;
  });
  if (fail === undefined) await applied;
  else await assert.rejects(applied, fail);
  return seen!;
}

/** A tracker whose last successful apply was `map`. */
async function appliedAt(map: ServiceMap): Promise<ServiceChangeTracker> {
  const tracker = new ServiceChangeTracker();
  await changesOf(tracker, map);
  return tracker;
}

const updatedKeys = (changes: ServiceChanges): string[] => changes.updated.map((i) => changes.keys[i]!);

/** As an operator would list a change: ports added (not in `before`), changed, removed. */
function summary(before: ServiceMap, changes: ServiceChanges): { added: string[]; changed: string[]; removed: string[] } {
  const known = new Set(before.servicePorts.map(servicePortKey));
  const keys = updatedKeys(changes);
  return { added: keys.filter((k) => !known.has(k)), changed: keys.filter((k) => known.has(k)), removed: [...changes.removed] };
}

const render = (flows: readonly StaleUdpFlow[]): string[] =>
  flows.map((f) => `${f.family} ${f.origDst === undefined ? '*' : formatIp(f.origDst)}:${f.origDstPort} <- ${f.replySrc === undefined ? '*' : formatIp(f.replySrc)}`);

describe('changed ports, from Services and EndpointSlices', () => {
  const svc = (name: string, spec: Record<string, unknown> = {}): KubeObject =>
    service(name, { clusterIP: '10.96.0.1', ports: [{ name: 'http', port: 80 }], ...spec });
  const eps = (name: string, ...ips: string[]): KubeObject => slice(name, { endpoints: ips.map((ip) => ep(ip)) });
  const base = [svc('a'), eps('a', '10.244.1.1'), svc('b'), eps('b', '10.244.1.2'), svc('c', { type: 'NodePort', ports: [{ name: 'http', port: 80, nodePort: 30080 }] })];
  const before = mapOf(base);

  const cases: [string, KubeObject[], { added: string[]; changed: string[]; removed: string[] }][] = [
    ['the same cluster: nothing', base, { added: [], changed: [], removed: [] }],
    ['a new Service: added', [...base, svc('d')], { added: ['default/d:http/TCP'], changed: [], removed: [] }],
    ['a deleted Service: removed', base.filter((o) => o.metadata?.name !== 'b'), { added: [], changed: [], removed: ['default/b:http/TCP'] }],
    ['one endpoint more: only its Service changed', [...base, slice('a', { name: 'a-2', endpoints: [ep('10.244.1.9')] })], { added: [], changed: ['default/a:http/TCP'], removed: [] }],
    ['an endpoint no longer ready: changed', [svc('a'), slice('a', { endpoints: [ep('10.244.1.1', { ready: false })] }), ...base.slice(2)], { added: [], changed: ['default/a:http/TCP'], removed: [] }],
    ['a new affinity: changed', [svc('a', { sessionAffinity: 'ClientIP' }), ...base.slice(1)], { added: [], changed: ['default/a:http/TCP'], removed: [] }],
    [
      'a renamed port: the old key removed, the new one added',
      [svc('a', { ports: [{ name: 'web', port: 80 }] }), ...base.slice(1)],
      { added: ['default/a:web/TCP'], changed: [], removed: ['default/a:http/TCP'] },
    ],
    ['the same objects in another order: nothing', [...base].reverse(), { added: [], changed: [], removed: [] }],
  ];
  for (const [name, objects, expected] of cases) {
    test(name, async () => assert.deepEqual(summary(before, await changesOf(await appliedAt(before), mapOf(objects))), expected));
  }

  test('nothing applied yet: every port is new, and the change is full', async () => {
    const changes = await changesOf(new ServiceChangeTracker(), before);
    assert.deepEqual(summary(mapOf([]), changes), { added: ['default/a:http/TCP', 'default/b:http/TCP', 'default/c:http/TCP'], changed: [], removed: [] });
    assert.equal(changes.full, true);
    assert.equal((await changesOf(await appliedAt(before), before)).full, false);
  });

  test('new NodePort addresses of another family change the ports that have a node port, only', async () => {
    const after = mapOf(base, { node: { addresses: [parseIp('192.168.0.9')] } });
    const changes = await changesOf(await appliedAt(before), after);
    assert.deepEqual(summary(before, changes), { added: [], changed: ['default/c:http/TCP'], removed: [] });
    assert.deepEqual(changes.mapFields, { node: false, nodePortAddresses: true, clusterCIDRs: false });
    assert.deepEqual([...changes.nodePortFamilies], [4]);
  });

  test('new cluster CIDRs are a map-wide change: no port is rewritten for them', async () => {
    const changes = await changesOf(await appliedAt(before), mapOf(base, { clusterCIDRs: ['10.245.0.0/16'] }));
    assert.deepEqual(changes.mapFields, { node: false, nodePortAddresses: false, clusterCIDRs: true });
    assert.deepEqual(changes.updated, []);
  });

  test('10,000 service ports with one endpoint changed: one key', async () => {
    const many = (changed: boolean): ServiceMap => {
      const ports: ServicePort[] = [];
      for (let i = 0; i < 10_000; i++) {
        const backends = Array.from({ length: 10 }, (_, j) => ({ ip: { family: 4 as const, value: 0x0af40000n + BigInt(i * 10 + j) }, port: 8080, local: false }));
        if (changed && i === 5000) backends[3] = { ...backends[3]!, port: 9090 };
        ports.push(servicePort({ service: `default/s${String(i).padStart(5, '0')}`, clusterEndpoints: backends, internalEndpoints: backends, externalEndpoints: backends }));
      }
      return serviceMap(ports);
    };
    const changes = await changesOf(await appliedAt(many(false)), many(true));
    assert.deepEqual(summary(many(false), changes), { added: [], changed: ['default/s05000:http/TCP'], removed: [] });
  });
});

describe('changed ports, position by position and by key', () => {
  const port = (name: string, extra: Partial<ServicePort> = {}, endpoints = [backend('10.1.0.1:8080'), backend('10.1.0.2:8080')]): ServicePort =>
    servicePort({ service: `default/${name}`, clusterIPs: [parseIp('10.96.0.1')], clusterEndpoints: endpoints, internalEndpoints: endpoints, externalEndpoints: endpoints, ...extra });
  const mapOfPorts = (ports: ServicePort[], nodePortAddresses: Ip[] = []): ServiceMap => serviceMap(ports, { nodePortAddresses });

  test('by position when the ports line up; reused objects are not compared', async () => {
    const a = port('a');
    const b = port('b', { clusterIPs: [parseIp('10.96.0.2')] });
    const tracker = new ServiceChangeTracker();
    assert.deepEqual(updatedKeys(await changesOf(tracker, mapOfPorts([a, b]))), ['default/a:http/TCP', 'default/b:http/TCP']);
    assert.deepEqual((await changesOf(tracker, mapOfPorts([a, b]))).updated, []);
    // Equal content in new objects is no change; one endpoint more is.
    assert.deepEqual((await changesOf(tracker, mapOfPorts([port('a'), port('b', { clusterIPs: [parseIp('10.96.0.2')] })]))).updated, []);
    const moved = port('b', { clusterIPs: [parseIp('10.96.0.2')] }, [backend('10.1.0.1:8080'), backend('10.1.0.2:8080'), backend('10.1.0.3:8080')]);
    assert.deepEqual(updatedKeys(await changesOf(tracker, mapOfPorts([a, moved]))), ['default/b:http/TCP']);
  });

  test('by key when ports come and go; NodePort ports all change when the node-port families do', async () => {
    const a = port('a', { nodePort: 30080 });
    const b = port('b', { clusterIPs: [parseIp('10.96.0.2')] });
    const c = port('c', { clusterIPs: [parseIp('10.96.0.3')] });
    const tracker = await appliedAt(mapOfPorts([a, b]));
    const next = await changesOf(tracker, mapOfPorts([a, c]));
    assert.deepEqual(updatedKeys(next), ['default/c:http/TCP']);
    assert.deepEqual(next.removed, ['default/b:http/TCP']);
    assert.deepEqual(updatedKeys(await changesOf(tracker, mapOfPorts([a, c], [parseIp('192.168.0.1')]))), ['default/a:http/TCP']);
    // Another address of the same family: the NodePort frontends stay.
    assert.deepEqual((await changesOf(tracker, mapOfPorts([a, c], [parseIp('192.168.0.2')]))).updated, []);
  });
});

describe('a decision for every field', () => {
  // Another value for every field (the compiler asks for one when ServicePort grows).
  const OTHER: { readonly [K in keyof ServicePort]-?: Exclude<ServicePort[K], undefined> } = {
    service: 'default/other',
    portName: 'other',
    protocol: 'UDP',
    clusterIPs: [parseIp('10.96.0.99')],
    port: 81,
    nodePort: 30999,
    externalIPs: [parseIp('192.0.2.1')],
    loadBalancerIPs: [parseIp('192.0.2.2')],
    loadBalancerSourceRanges: [parseCidr('198.51.100.0/24')],
    sessionAffinityTimeoutSeconds: 600,
    healthCheckNodePort: 32000,
    externalPolicyLocal: true,
    internalPolicyLocal: true,
    clusterEndpoints: [backend('10.244.9.9:8080')],
    internalEndpoints: [backend('10.244.9.8:8080')],
    externalEndpoints: [backend('10.244.9.7:8080', true)],
  };
  const rows = Object.entries(PORT_FIELDS) as [keyof ServicePort, (typeof PORT_FIELDS)[keyof ServicePort]][];

  for (const [field, rule] of rows) {
    const expected = { compared: 'rewrites the port', key: 'is another port', ignored: 'is no change' }[rule];
    test(`a new ${field} ${expected}`, async () => {
      const before = serviceMap([servicePort()]);
      // A port keeps a value for each field that OTHER's differs from (optional ones absent).
      assert.notDeepEqual(before.servicePorts[0]![field], OTHER[field]);
      const after = serviceMap([{ ...servicePort(), [field]: OTHER[field] }]);
      const changes = await changesOf(await appliedAt(before), after);
      const moved = { updated: updatedKeys(changes), removed: changes.removed };
      const key = servicePortKey(after.servicePorts[0]!);
      if (rule === 'compared') assert.deepEqual(moved, { updated: [key], removed: [] });
      else if (rule === 'key') assert.deepEqual(moved, { updated: [key], removed: ['default/web:http/TCP'] });
      else assert.deepEqual(moved, { updated: [], removed: [] });
    });
  }

  const OTHER_MAP: { readonly [K in MapField]: ServiceMap[K] } = {
    node: 'b',
    nodePortAddresses: [parseIp('172.31.0.12')],
    clusterCIDRs: [parseCidr('10.245.0.0/16')],
  };
  for (const [field, rule] of Object.entries(MAP_FIELDS) as [keyof ServiceMap, string][]) {
    if (rule === 'ports') continue;
    test(`a new ${field} is a map-wide change`, async () => {
      const before = serviceMap([servicePort()]);
      const changes = await changesOf(await appliedAt(before), { ...before, [field]: OTHER_MAP[field as MapField] });
      assert.deepEqual(changes.mapFields, { node: false, nodePortAddresses: false, clusterCIDRs: false, [field]: true });
    });
  }
});

describe('stale UDP conntrack entries', () => {
  const dns = (over: Partial<ServicePort> = {}) =>
    servicePort({ service: 'kube-system/dns', portName: 'dns', protocol: 'UDP', port: 53, clusterIPs: [parseIp('10.96.0.10')], nodePort: 30053, ...over });

  const cases: { name: string; before: ServicePort[] | undefined; after: ServicePort[]; expected: string[] }[] = [
    { name: 'first apply: nothing', before: undefined, after: [dns()], expected: [] },
    { name: 'unchanged: nothing', before: [dns()], after: [dns()], expected: [] },
    { name: 'TCP changes: nothing', before: [servicePort()], after: [], expected: [] },
    { name: 'deleted UDP service: every destination', before: [dns()], after: [], expected: ['4 10.96.0.10:53 <- *', '4 *:30053 <- *'] },
    {
      name: 'removed endpoint: entries it answers, at every destination',
      before: [dns()],
      after: [dns({ clusterEndpoints: [backend('10.244.1.2:8080')], internalEndpoints: [backend('10.244.1.2:8080')], externalEndpoints: [backend('10.244.1.2:8080')] })],
      expected: ['4 10.96.0.10:53 <- 10.244.2.2', '4 *:30053 <- 10.244.2.2'],
    },
    { name: 'removed node port', before: [dns()], after: [dns({ nodePort: undefined })], expected: ['4 *:30053 <- *'] },
    {
      name: 'endpoints again after none',
      before: [dns({ clusterEndpoints: [], internalEndpoints: [], externalEndpoints: [] })],
      after: [dns({ nodePort: undefined })],
      expected: ['4 *:30053 <- *', '4 10.96.0.10:53 <- *'],
    },
  ];
  for (const c of cases) {
    test(c.name, async () => {
      const tracker = c.before === undefined ? new ServiceChangeTracker() : await appliedAt(serviceMap(c.before));
      assert.deepEqual(render((await changesOf(tracker, serviceMap(c.after))).staleUdpFlows), c.expected);
    });
  }

  test('the node stops serving NodePorts in a family: their entries go', async () => {
    const tracker = await appliedAt(serviceMap([dns()]));
    assert.deepEqual(render((await changesOf(tracker, serviceMap([dns()], { nodePortAddresses: [parseIp('fd31::11')] }))).staleUdpFlows), ['4 *:30053 <- *']);
  });
});

describe('an apply that fails', () => {
  const FAILED = new Error('restore failed');
  const dns = (...endpoints: string[]) =>
    servicePort({ service: 'kube-system/dns', portName: 'dns', protocol: 'UDP', port: 53, clusterIPs: [parseIp('10.96.0.10')], clusterEndpoints: endpoints.map((e) => backend(e)), internalEndpoints: endpoints.map((e) => backend(e)), externalEndpoints: endpoints.map((e) => backend(e)) });
  const web = (...endpoints: string[]) => servicePort({ clusterEndpoints: endpoints.map((e) => backend(e)), internalEndpoints: endpoints.map((e) => backend(e)), externalEndpoints: endpoints.map((e) => backend(e)) });
  const other = servicePort({ service: 'default/other', clusterIPs: [parseIp('10.96.0.20')] });

  test('leaves the next change starting from the last success', async () => {
    const tracker = await appliedAt(serviceMap([web('10.244.1.2:8080')]));
    await changesOf(tracker, serviceMap([web('10.244.1.3:8080')]), FAILED);
    const changes = await changesOf(tracker, serviceMap([web('10.244.1.4:8080')]));
    assert.deepEqual(updatedKeys(changes), ['default/web:http/TCP']);
    assert.equal(changes.full, false);
  });

  test('a port the failed apply may have half-written is rewritten, even when the map is back to the last success', async () => {
    const before = serviceMap([web('10.244.1.2:8080')]);
    const tracker = await appliedAt(before);
    await changesOf(tracker, serviceMap([web('10.244.1.3:8080')]), FAILED);
    assert.deepEqual(updatedKeys(await changesOf(tracker, before)), ['default/web:http/TCP']);
    // Applied: nothing is pending any more.
    assert.deepEqual((await changesOf(tracker, before)).updated, []);
  });

  test('a port the failed apply added and the map no longer has is removed; one it removed and the map has again is rewritten', async () => {
    const tracker = await appliedAt(serviceMap([web('10.244.1.2:8080')]));
    await changesOf(tracker, serviceMap([other]), FAILED);
    const changes = await changesOf(tracker, serviceMap([web('10.244.1.2:8080')]));
    assert.deepEqual({ updated: updatedKeys(changes), removed: changes.removed }, { updated: ['default/web:http/TCP'], removed: ['default/other:http/TCP'] });
  });

  test('failed applies before the first success: still a full change, and what they added is removed', async () => {
    const tracker = new ServiceChangeTracker();
    await changesOf(tracker, serviceMap([other, web('10.244.1.2:8080')]), FAILED);
    const changes = await changesOf(tracker, serviceMap([web('10.244.1.2:8080')]));
    assert.deepEqual({ full: changes.full, updated: updatedKeys(changes), removed: changes.removed }, { full: true, updated: ['default/web:http/TCP'], removed: ['default/other:http/TCP'] });
  });

  test('a map-wide field the failed apply changed counts as changed until an apply succeeds', async () => {
    const before = serviceMap([web('10.244.1.2:8080')]);
    const tracker = await appliedAt(before);
    await changesOf(tracker, { ...before, clusterCIDRs: [parseCidr('10.245.0.0/16')] }, FAILED);
    assert.equal((await changesOf(tracker, before)).mapFields.clusterCIDRs, true);
    assert.equal((await changesOf(tracker, before)).mapFields.clusterCIDRs, false);
  });

  test('stale UDP flows since the last success are handed over again (the deletions may not have run)', async () => {
    const tracker = await appliedAt(serviceMap([dns('10.244.1.2:53', '10.244.2.2:53')]));
    const gone = serviceMap([dns('10.244.1.2:53')]);
    assert.deepEqual(render((await changesOf(tracker, gone, FAILED)).staleUdpFlows), ['4 10.96.0.10:53 <- 10.244.2.2']);
    assert.deepEqual(render((await changesOf(tracker, gone)).staleUdpFlows), ['4 10.96.0.10:53 <- 10.244.2.2']);
    assert.deepEqual((await changesOf(tracker, gone)).staleUdpFlows, []);
  });

  test('flows to an endpoint only failed applies had are stale once it is gone', async () => {
    const tracker = await appliedAt(serviceMap([dns('10.244.1.2:53')]));
    // Each may have written its rules, and clients may have flows to its endpoints.
    await changesOf(tracker, serviceMap([dns('10.244.1.2:53', '10.244.2.2:53')]), FAILED);
    await changesOf(tracker, serviceMap([dns('10.244.1.2:53', '10.244.3.2:53')]), FAILED);
    const changes = await changesOf(tracker, serviceMap([dns('10.244.1.2:53')]));
    assert.deepEqual(render(changes.staleUdpFlows).sort(), ['4 10.96.0.10:53 <- 10.244.2.2', '4 10.96.0.10:53 <- 10.244.3.2']);
  });

  test('one apply at a time', async () => {
    const tracker = new ServiceChangeTracker();
    let release: () => void = () => undefined;
    const running = tracker.track(serviceMap([]), () => new Promise<void>((resolve) => (release = resolve)));
    await assert.rejects(tracker.track(serviceMap([]), async () => undefined), /an apply is already running/);
    release();
    await running;
  });
});
