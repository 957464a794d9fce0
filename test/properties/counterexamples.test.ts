// Inputs the properties found that broke a decoder, kept as plain cases once fixed: they run first
// and fast, and say in one line each what went wrong.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatEndpoint } from '../../src/model/endpoint.js';
import { decodeEndpointSlice } from '../../src/sources/endpoint-slice.js';
import { ClusterFileError, parseClusterFile } from '../../src/sources/file/cluster-file.js';
import { decodeNode } from '../../src/sources/node.js';
import type { KubeObject } from '../../src/sources/objects.js';
import { decodePeer } from '../../src/sources/peer.js';
import { decodeService } from '../../src/sources/service.js';
import { rejectionOf } from './accounting.js';
import { NODE_DECODE_OPTIONS as OPTS } from './objects.js';

const KEY = 'AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=';

function rejectedField(decode: () => unknown): string {
  return rejectionOf(decode)?.field ?? '(accepted)';
}

test('the cluster file refuses what is not JSON with ClusterFileError, not ReferenceError or TypeError', () => {
  const node = 'apiVersion: v1\nkind: Node\nmetadata: {name: n}\n';
  const cases: [string, string, RegExp][] = [
    ['an alias bomb', `${node}a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n`, /resource exhaustion/],
    ['an alias without its anchor', '*a\n', /Unresolved alias/],
    ['an alias that contains itself', 'apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: &s {externalIPs: *s}\n', /contains itself/],
    ['a map as a key', `${node}? [a]\n: 1\n`, /keys must be strings/],
    ['a kind that is a map with a toString key', 'apiVersion: v1\nkind: {toString: 1}\n', /unsupported apiVersion\/kind v1\/\{"toString":1\}/],
  ];
  for (const [what, text, message] of cases) assert.throws(() => parseClusterFile(text, 'f'), (err) => err instanceof ClusterFileError && message.test(err.message), what);
});

test("names found on Object.prototype are not granularities or address types", () => {
  for (const name of ['constructor', 'toString', '__proto__']) {
    const { node, problems } = decodeNode({ metadata: { name: 'n', annotations: { 'wirelane.io/granularity': name } } }, OPTS);
    assert.equal(node.granularity, undefined, name);
    assert.deepEqual(problems.map((p) => p.field), ['annotation wirelane.io/granularity'], name);
    const slice = { metadata: { name: 's', labels: { 'kubernetes.io/service-name': 'web' } }, addressType: name } as KubeObject;
    assert.equal(rejectedField(() => decodeEndpointSlice(slice)), 'addressType', name);
  }
});

test('a Peer field of the wrong JSON type is rejected, not read through String()', () => {
  const peer = (name: unknown, spec: Record<string, unknown>): KubeObject =>
    ({ metadata: { name }, spec: { allowedIPs: ['10.5.0.1/32'], publicKey: KEY, ...spec } }) as KubeObject;
  const cases: [string, KubeObject, string][] = [
    ['a CIDR in a list', peer('p', { allowedIPs: [['10.5.0.0/24']] }), 'spec.allowedIPs[0]'],
    ['a map with a toString key', peer('p', { allowedIPs: [{ toString: 1 }] }), 'spec.allowedIPs[0]'],
    ['a key in a list', peer('p', { publicKey: [KEY] }), 'spec.publicKey'],
    ['a preshared key in a list', peer('p', { presharedKey: [KEY] }), 'spec.presharedKey'],
    ['a port in a list', peer('p', { endpoint: { dnsOrIP: { ip: '1.2.3.4' }, port: [51820] } }), 'spec.endpoint'],
    ['a name that is a number', peer(5, {}), 'metadata.name'],
  ];
  for (const [what, object, field] of cases) assert.equal(rejectedField(() => decodePeer(object)), field, what);
});

test('a namespace that is not a string is reported, not read as default', () => {
  const service = { metadata: { name: 'web', namespace: 2024 }, spec: { clusterIP: '10.96.0.1' } } as unknown as KubeObject;
  assert.equal(rejectedField(() => decodeService(service)), 'metadata.namespace');
});

test('a Node annotation that is not a string costs only itself', () => {
  const annotations = { 'wirelane.io/persistent-keepalive': 25, 'wirelane.io/key': KEY } as unknown as Record<string, string>;
  const { node, problems } = decodeNode({ metadata: { name: 'n', annotations } }, OPTS);
  assert.equal(node.publicKey, KEY);
  assert.deepEqual(problems.map((p) => p.field), ['annotation wirelane.io/persistent-keepalive']);
});

test("a bad wirelane.io/ value is treated as absent: Kilo's spelling is read", () => {
  const annotations = { 'wirelane.io/endpoint': '1.2.3.4:0', 'kilo.squat.ai/endpoint': '5.6.7.8:51820' };
  const { node, problems } = decodeNode({ metadata: { name: 'n', annotations } }, OPTS);
  assert.equal(node.endpoint && formatEndpoint(node.endpoint), '5.6.7.8:51820');
  assert.deepEqual(problems.map((p) => p.field), ['annotation wirelane.io/endpoint']);
});
