// A resync with nothing changed builds next to nothing (issue 16, item 4): objects are decoded once,
// when they change, and a Service's ports are computed again only when its inputs changed.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseCidr } from '../../src/model/ip.js';
import { PROXY_NAME, ServiceMapMemo, computeServiceMap } from '../../src/services/service-map.js';
import type { KubeObject } from '../../src/sources/objects.js';
import { ServiceInputCache, decodeServiceInput } from '../../src/sources/service-input.js';
import type { SourceObject } from '../../src/sources/source.js';
import { NODE, ep, service, slice } from './builder.js';

const sourceObjects = (objects: readonly KubeObject[]): SourceObject[] => objects.map((object) => ({ kind: object.kind as SourceObject['kind'], object }));

function mapFrom(objects: readonly KubeObject[], cache: ServiceInputCache, memo: ServiceMapMemo, node = NODE) {
  const decoded = decodeServiceInput(sourceObjects(objects), cache);
  return { decoded, map: computeServiceMap({ ...decoded, node, clusterCIDRs: [parseCidr('10.244.0.0/16')] }, { proxyName: PROXY_NAME }, memo) };
}

const objects = [
  service('a', { clusterIP: '10.96.0.1', ports: [{ name: 'http', port: 80 }] }),
  slice('a', { endpoints: [ep('10.244.1.1')] }),
  service('b', { clusterIP: '10.96.0.2', ports: [{ name: 'http', port: 80 }, { name: 'dns', protocol: 'UDP', port: 53 }] }),
  slice('b', { endpoints: [ep('10.244.1.2')] }),
];

test('the same objects again: the same decoded objects and the same port objects', () => {
  const cache = new ServiceInputCache();
  const memo = new ServiceMapMemo();
  const first = mapFrom(objects, cache, memo);
  const again = mapFrom(objects, cache, memo);
  assert.equal(again.decoded.services[0], first.decoded.services[0]);
  assert.equal(again.decoded.slices[1], first.decoded.slices[1]);
  assert.equal(again.map.servicePorts.length, 3);
  again.map.servicePorts.forEach((p, i) => assert.equal(p, first.map.servicePorts[i], `${p.service} ${p.portName}`));
});

test("a changed slice recomputes its Service's ports only", () => {
  const cache = new ServiceInputCache();
  const memo = new ServiceMapMemo();
  const first = mapFrom(objects, cache, memo);
  const changed = [...objects.slice(0, 3), slice('b', { endpoints: [ep('10.244.1.3')] })];
  const next = mapFrom(changed, cache, memo);
  const byService = (ports: typeof next.map.servicePorts, name: string) => ports.filter((p) => p.service === `default/${name}`);
  assert.equal(byService(next.map.servicePorts, 'a')[0], byService(first.map.servicePorts, 'a')[0]);
  for (const p of byService(next.map.servicePorts, 'b')) assert.ok(!first.map.servicePorts.includes(p), p.portName);
  const http = byService(next.map.servicePorts, 'b').find((p) => p.portName === 'http');
  assert.deepEqual(http?.clusterEndpoints.map((e) => e.ip.value), [0x0af40103n]);
});

test('another node (its zone) recomputes every port', () => {
  const cache = new ServiceInputCache();
  const memo = new ServiceMapMemo();
  const first = mapFrom(objects, cache, memo);
  const next = mapFrom(objects, cache, memo, { ...NODE, zone: 'z2' });
  for (const p of next.map.servicePorts) assert.ok(!first.map.servicePorts.includes(p));
});

test('a memoized map equals one computed from scratch, also after Services come and go', () => {
  const cache = new ServiceInputCache();
  const memo = new ServiceMapMemo();
  mapFrom(objects, cache, memo);
  const later = [objects[2]!, objects[3]!, service('c', { clusterIP: '10.96.0.3', ports: [{ port: 81 }] }), slice('c', { ports: [{ port: 8081 }], endpoints: [ep('10.244.1.9')] })];
  const memoized = mapFrom(later, cache, memo).map;
  const scratch = mapFrom(later, new ServiceInputCache(), new ServiceMapMemo()).map;
  assert.deepEqual(memoized, scratch);
});

test('a rejected object is reported at every decode, from the one decode it had', () => {
  const cache = new ServiceInputCache();
  const bad = service('bad', { clusterIP: 'not-an-ip', ports: [{ port: 80 }] });
  const first = decodeServiceInput(sourceObjects([bad]), cache);
  const again = decodeServiceInput(sourceObjects([bad]), cache);
  assert.equal(first.problems.length, 1);
  assert.deepEqual(again.problems, first.problems);
  assert.deepEqual(again.services, []);
});
