// A resync with nothing changed builds next to nothing (issue 16, item 4): objects are decoded once,
// when they change, and a Service's ports are computed again only when its inputs changed.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatIp, parseCidr, parseIp } from '../../src/model/ip.js';
import { PROXY_NAME, ServiceMapMemo, computeServiceMap } from '../../src/services/service-map.js';
import type { KubeObject } from '../../src/sources/objects.js';
import { ServiceInputCache, decodeServiceInput } from '../../src/sources/service-input.js';
import type { SourceObject } from '../../src/sources/source.js';
import { NODE, ep, service, slice } from './builder.js';

const sourceObjects = (objects: readonly KubeObject[]): SourceObject[] => objects.map((object) => ({ kind: object.kind as SourceObject['kind'], object }));

function mapFrom(objects: readonly KubeObject[], cache: ServiceInputCache, memo: ServiceMapMemo, node = NODE, clusterCIDRs = ['10.244.0.0/16'], nodePortCIDRs: string[] = []) {
  const decoded = decodeServiceInput(sourceObjects(objects), cache);
  const input = { ...decoded, node, clusterCIDRs: clusterCIDRs.map(parseCidr) };
  return { decoded, map: computeServiceMap(input, { proxyName: PROXY_NAME, nodePortCIDRs: nodePortCIDRs.map(parseCidr) }, memo) };
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

test('the same inputs again (equal node addresses and CIDRs, parsed anew): the same map object', () => {
  const cache = new ServiceInputCache();
  const memo = new ServiceMapMemo();
  const first = mapFrom(objects, cache, memo, NODE, ['10.244.0.0/16'], ['192.168.0.0/16']);
  const again = mapFrom(objects, cache, memo, { ...NODE, addresses: NODE.addresses.map((ip) => ({ ...ip })) }, ['10.244.0.0/16'], ['192.168.0.0/16']);
  assert.equal(again.map, first.map);
});

test('any input that differs computes a new map: addresses, cluster CIDRs, --nodeport-addresses, objects', () => {
  const cache = new ServiceInputCache();
  const memo = new ServiceMapMemo();
  const first = mapFrom(objects, cache, memo);
  const addresses = mapFrom(objects, cache, memo, { ...NODE, addresses: [parseIp('192.168.0.2')] });
  assert.notEqual(addresses.map, first.map);
  assert.deepEqual(addresses.map.nodePortAddresses.map(formatIp), ['192.168.0.2']);
  const cidrs = mapFrom(objects, cache, memo, { ...NODE, addresses: [parseIp('192.168.0.2')] }, ['10.244.0.0/16', '10.245.0.0/16']);
  assert.notEqual(cidrs.map, addresses.map);
  assert.equal(cidrs.map.clusterCIDRs.length, 2);
  const narrowed = mapFrom(objects, cache, memo, { ...NODE, addresses: [parseIp('192.168.0.2')] }, ['10.244.0.0/16', '10.245.0.0/16'], ['10.0.0.0/8']);
  assert.notEqual(narrowed.map, cidrs.map);
  assert.deepEqual(narrowed.map.nodePortAddresses, []);
  const fewer = mapFrom(objects.slice(0, 2), cache, memo);
  assert.deepEqual(fewer.map.servicePorts.map((p) => p.service), ['default/a']);
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
