import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseCidr, parseIp } from '../../src/model/ip.js';
import type { ServiceMap, ServicePort } from '../../src/model/service.js';
import { diffServiceMaps } from '../../src/services/diff.js';
import type { KubeObject } from '../../src/sources/objects.js';
import { ep, mapOf, service, slice } from './builder.js';

const svc = (name: string, spec: Record<string, unknown> = {}): KubeObject =>
  service(name, { clusterIP: '10.96.0.1', ports: [{ name: 'http', port: 80 }], ...spec });
const eps = (name: string, ...ips: string[]): KubeObject => slice(name, { endpoints: ips.map((ip) => ep(ip)) });

const base = [svc('a'), eps('a', '10.244.1.1'), svc('b'), eps('b', '10.244.1.2'), svc('c', { type: 'NodePort', ports: [{ name: 'http', port: 80, nodePort: 30080 }] })];

describe('diffServiceMaps', () => {
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
    [
      'the same objects in another order: nothing',
      [...base].reverse(),
      { added: [], changed: [], removed: [] },
    ],
  ];
  const before = mapOf(base);
  for (const [name, objects, expected] of cases) {
    test(name, () => assert.deepEqual(diffServiceMaps(before, mapOf(objects)), expected));
  }

  test('nothing programmed yet: every port is added', () => {
    assert.deepEqual(diffServiceMaps(undefined, before), { added: ['default/a:http/TCP', 'default/b:http/TCP', 'default/c:http/TCP'], changed: [], removed: [] });
  });

  test('new NodePort addresses change the ports that have a node port, only', () => {
    const after = mapOf(base, { node: { addresses: [parseIp('192.168.0.9')] } });
    assert.deepEqual(diffServiceMaps(before, after), { added: [], changed: ['default/c:http/TCP'], removed: [] });
  });

  test('new cluster CIDRs change every port (masquerading depends on them)', () => {
    const after = mapOf(base, { clusterCIDRs: ['10.245.0.0/16'] });
    assert.deepEqual(diffServiceMaps(before, after).changed, ['default/a:http/TCP', 'default/b:http/TCP', 'default/c:http/TCP']);
  });

  test('a field the diff does not know by name is still compared', () => {
    const extra = (m: ServiceMap): ServiceMap => ({ ...m, servicePorts: m.servicePorts.map((p, i) => ({ ...p, ...(i === 0 && { future: true }) }) as ServicePort) });
    assert.deepEqual(diffServiceMaps(before, extra(before)).changed, ['default/a:http/TCP']);
  });

  test('10,000 service ports with one endpoint changed: one key, in one pass', () => {
    const many = (changed: boolean): ServiceMap => {
      const ports: ServicePort[] = [];
      for (let i = 0; i < 10_000; i++) {
        const backends = Array.from({ length: 10 }, (_, j) => ({ ip: { family: 4 as const, value: 0x0af40000n + BigInt(i * 10 + j) }, port: 8080, local: false }));
        if (changed && i === 5000) backends[3] = { ...backends[3]!, port: 9090 };
        ports.push({
          service: `default/s${String(i).padStart(5, '0')}`, portName: 'http', protocol: 'TCP', clusterIPs: [parseIp('10.96.0.1')], port: 80,
          externalIPs: [], loadBalancerIPs: [], loadBalancerSourceRanges: [], externalPolicyLocal: false, internalPolicyLocal: false,
          clusterEndpoints: backends, internalEndpoints: backends, externalEndpoints: backends,
        });
      }
      return { node: 'n1', nodePortAddresses: [], clusterCIDRs: [parseCidr('10.244.0.0/16')], servicePorts: ports };
    };
    assert.deepEqual(diffServiceMaps(many(false), many(true)), { added: [], changed: ['default/s05000:http/TCP'], removed: [] });
  });
});
