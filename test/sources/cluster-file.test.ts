import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ClusterFileReader, parseClusterFile } from '../../src/sources/file/cluster-file.js';
import { decodeEndpointSlice } from '../../src/sources/endpoint-slice.js';
import { heldDecoded } from '../../src/sources/held-object.js';
import { trimObject } from '../../src/sources/objects.js';
import { decodeService } from '../../src/sources/service.js';
import { decodeServiceInput } from '../../src/sources/service-input.js';
import { decodeMeshInput } from '../../src/sources/mesh-input.js';
import { describeProblem } from '../../src/sources/problem.js';

const OPTS = { topologyLabel: 'topology.kubernetes.io/region' };

test('a stream of objects and kubectl List documents is read in order', () => {
  const text = `
apiVersion: v1
kind: Node
metadata: {name: a}
---
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Node
  metadata: {name: b}
- apiVersion: wirelane.io/v1alpha1
  kind: Peer
  metadata: {name: p}
---
apiVersion: v1
kind: Service
metadata: {name: s, namespace: default}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: s-1, namespace: default}
---
`;
  const objects = parseClusterFile(text);
  assert.deepEqual(
    objects.map((o) => [o.kind, o.where]),
    [
      ['Node', 'document 1 (Node "a")'],
      ['Node', 'document 2, item 1 (Node "b")'],
      ['Peer', 'document 2, item 2 (Peer "p")'],
      ['Service', 'document 3 (Service "s")'],
      ['EndpointSlice', 'document 4 (EndpointSlice "s-1")'],
    ],
  );
});

test('a structural fault names the document and the object', () => {
  const cases: [string, RegExp][] = [
    ['apiVersion: v1\nkind: Node\nmetadata: {name: a}\n---\nkind: [unclosed', /^f: document 2: /],
    ['apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n', /^f: document 1 \(Pod "x"\): unsupported apiVersion\/kind v1\/Pod/],
    ['apiVersion: v1\nkind: Node\nmetadata: {}\n', /^f: document 1 \(Node \(no name\)\): metadata.name is missing/],
    ['- 1\n- 2\n', /^f: document 1: not an object/],
    ['apiVersion: v1\nkind: List\n', /^f: document 1: List without items/],
  ];
  for (const [text, want] of cases) assert.throws(() => parseClusterFile(text, 'f'), { message: want });
});

test('decoding keeps every valid object and reports each bad one with its place', () => {
  const text = `
apiVersion: v1
kind: Node
metadata: {name: a, annotations: {wirelane.io/internal-ip: "300.1.2.3/99"}}
---
apiVersion: wirelane.io/v1alpha1
kind: Peer
metadata: {name: bad}
spec: {allowedIPs: ["10.5.0.0/24"], publicKey: "nope"}
---
apiVersion: v1
kind: Node
metadata: {name: b}
`;
  const input = decodeMeshInput(parseClusterFile(text), OPTS);
  assert.deepEqual(input.nodes.map((n) => n.name), ['a', 'b']);
  assert.deepEqual(input.peers, []);
  assert.deepEqual(
    input.problems.map((p) => `${p.where}: ${describeProblem(p)}`),
    [
      'document 1 (Node "a"): Node "a": annotation wirelane.io/internal-ip: "300.1.2.3/99" is not a CIDR',
      'document 2 (Peer "bad"): Peer "bad": spec.publicKey: not a WireGuard key (want base64 of 32 bytes)',
    ],
  );
});

const jsonNode = (name: string, extra: Record<string, unknown> = {}) => JSON.stringify({ apiVersion: 'v1', kind: 'Node', metadata: { name }, ...extra });

test('JSON documents read as YAML reads them, with the same places and the same errors', () => {
  const text = `---\n${jsonNode('a')}\n---\n{"apiVersion":"v1","kind":"List","items":[${jsonNode('b')}]}\n---\n\n---\n${jsonNode('c')}\n---\n`;
  const yamlText = `${text}# a comment makes the stream YAML\n`;
  const places = (objects: ReturnType<typeof parseClusterFile>) => objects.map((o) => o.where);
  assert.deepEqual(places(parseClusterFile(text)), ['document 1 (Node "a")', 'document 2, item 1 (Node "b")', 'document 4 (Node "c")']);
  assert.deepEqual(places(parseClusterFile(yamlText)), places(parseClusterFile(text)));
  const bad = `${jsonNode('a')}\n---\n{"apiVersion":"v9","kind":"Node","metadata":{"name":"x"}}\n`;
  assert.throws(() => parseClusterFile(bad), { message: 'cluster file: document 2 (Node "x"): unsupported apiVersion/kind v9/Node' });
  assert.throws(() => parseClusterFile(`${bad}# yaml\n`), { message: 'cluster file: document 2 (Node "x"): unsupported apiVersion/kind v9/Node' });
});

test('JSON documents split as bytes where YAML splits them: CRLF, blanks after ---, a byte-order mark', () => {
  const places = (objects: ReturnType<typeof parseClusterFile>) => objects.map((o) => o.where);
  const cases: [string, string[]][] = [
    // CRLF line ends, spaces and tabs after a separator, an empty document between two.
    [`${jsonNode('a')}\r\n--- \t\r\n${jsonNode('b')}\r\n---\r\n\r\n---\r\n${jsonNode('c')}`, ['document 1 (Node "a")', 'document 2 (Node "b")', 'document 4 (Node "c")']],
    // A byte-order mark before the first document, blank text before the first separator.
    [`\ufeff${jsonNode('a')}\n---\n${jsonNode('b')}`, ['document 1 (Node "a")', 'document 2 (Node "b")']],
    [`\n  \n---\n${jsonNode('a')}`, ['document 1 (Node "a")']],
  ];
  for (const [text, want] of cases) {
    assert.deepEqual(places(parseClusterFile(text)), want, JSON.stringify(text));
    assert.deepEqual(places(parseClusterFile(Buffer.from(text))), want, JSON.stringify(text));
    assert.deepEqual(places(parseClusterFile(`${text}\n# yaml\n`)), want, `as YAML: ${JSON.stringify(text)}`);
  }
  // Only a line of --- (and blanks) separates JSON documents: ---- is inside one, which is then not JSON, and YAML refuses it.
  assert.throws(() => parseClusterFile(`${jsonNode('a')}\n----\n${jsonNode('b')}`), /document 1/);
});

test('a document unchanged since the last read keeps its object; a changed one is read anew', () => {
  const reader = new ClusterFileReader();
  const first = reader.parse(`${jsonNode('a')}\n---\n${jsonNode('b')}\n`);
  const second = reader.parse(`${jsonNode('a')}\n---\n${jsonNode('b', { spec: { podCIDR: '10.244.1.0/24' } })}\n---\n${jsonNode('c')}\n`);
  assert.equal(second[0]!.object, first[0]!.object);
  assert.notEqual(second[1]!.object, first[1]!.object);
  assert.deepEqual(second.map((o) => o.where), ['document 1 (Node "a")', 'document 2 (Node "b")', 'document 3 (Node "c")']);
});

test('a document whose held object is unchanged keeps its object (a Node status update), also where it moved', () => {
  const reader = new ClusterFileReader({ hold: true });
  const node = (status: string, labels: Record<string, string> = {}) => JSON.stringify({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'a', labels }, status: { heartbeat: status } });
  const first = reader.parse(`${node('t1')}\n---\n${jsonNode('b')}\n`);
  const heartbeat = reader.parse(`${jsonNode('c')}\n---\n${jsonNode('b')}\n---\n${node('t2')}\n`);
  assert.equal(heartbeat[2]!.object, first[0]!.object);
  assert.equal(heartbeat[2]!.where, 'document 3 (Node "a")');
  // What a decoder reads changed: a new object.
  const relabelled = reader.parse(`${node('t3', { zone: 'z' })}\n`);
  assert.notEqual(relabelled[0]!.object, first[0]!.object);
  assert.deepEqual(relabelled[0]!.object.metadata?.labels, { zone: 'z' });
  // Gone from the file, then back: read anew, not the object from before.
  reader.parse(`${jsonNode('b')}\n`);
  assert.notEqual(reader.parse(`${node('t4', { zone: 'z' })}\n`)[0]!.object, relabelled[0]!.object);
});

test('a reader that holds trims Nodes of what no decoder reads, and holds Services and slices as their identity and decoded form', () => {
  const node = { apiVersion: 'v1', kind: 'Node', metadata: { name: 'a', managedFields: [{ manager: 'kubelet' }], annotations: { 'kubectl.kubernetes.io/last-applied-configuration': '{}', 'wirelane.io/location': 'eu' } }, spec: { podCIDR: '10.244.0.0/24' }, status: { images: [] } };
  const service = { apiVersion: 'v1', kind: 'Service', metadata: { name: 's', namespace: 'n', resourceVersion: '7', labels: { app: 's' } }, spec: { clusterIP: '10.96.0.1', ports: [{ port: 80 }] }, status: { loadBalancer: { ingress: [{ ip: '1.2.3.4' }] }, conditions: [] } };
  const slice = { apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: 's-1', namespace: 'n', labels: { 'kubernetes.io/service-name': 's' } }, addressType: 'IPv4', endpoints: [{ addresses: ['10.244.0.5'], targetRef: { kind: 'Pod', name: 'p' }, nodeName: 'a' }] };
  const held = new ClusterFileReader({ hold: true }).parse([node, service, slice].map((o) => JSON.stringify(o)).join('\n---\n'));
  const [n, s, e] = held.map((o) => o.object);
  assert.deepEqual(n, { apiVersion: 'v1', kind: 'Node', metadata: { name: 'a', annotations: { 'wirelane.io/location': 'eu' } }, spec: { podCIDR: '10.244.0.0/24' } });
  // Nothing to trim: the same object, so a source that trims what it already holds decodes nothing again.
  assert.equal(trimObject('Node', n!), n);
  // A Service's and a slice's bodies are not held: what the service map reads is their decoded form.
  assert.deepEqual(JSON.parse(JSON.stringify(s)), { apiVersion: 'v1', kind: 'Service', metadata: { name: 's', namespace: 'n', resourceVersion: '7' } });
  assert.deepEqual(JSON.parse(JSON.stringify(e)), { apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: 's-1', namespace: 'n' } });
  assert.deepEqual(heldDecoded(s!), { value: decodeService(service), problems: [] });
  assert.deepEqual(heldDecoded(e!), { value: decodeEndpointSlice(slice), problems: [] });
  assert.deepEqual(decodeServiceInput(held), { services: [decodeService(service)], slices: [decodeEndpointSlice(slice)], problems: [] });
  assert.equal(held[1]!.where, 'document 2 (Service "s")');
  // Junk where a decoder will report it stays as it came.
  const junk = { apiVersion: 'v1', kind: 'Service', metadata: { name: 's' }, status: 'nonsense' };
  assert.equal(trimObject('Service', junk), junk);
});

test('a held Service or slice is reported as its decoded form reports it, and a change to its body is a new object', () => {
  const reader = new ClusterFileReader({ hold: true });
  const slice = (address: string) => JSON.stringify({ apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: 's-1', namespace: 'n', labels: { 'kubernetes.io/service-name': 's' } }, addressType: 'IPv4', endpoints: [{ addresses: [address] }] });
  const bad = reader.parse(`${slice('10.244.0.500')}\n`);
  assert.deepEqual(decodeServiceInput(bad).problems.map((p) => `${describeProblem(p)} at ${p.where ?? '?'}`), [
    'EndpointSlice "n/s-1": endpoints[0].addresses[0]: "10.244.0.500" is not an IP address at document 1 (EndpointSlice "s-1")',
  ]);
  const fixed = reader.parse(`${slice('10.244.0.5')}\n`);
  assert.notEqual(fixed[0]!.object, bad[0]!.object);
  assert.deepEqual(decodeServiceInput(fixed).problems, []);
  // Another address in the same identity: not the object held before (it would hide the change).
  const moved = reader.parse(`${slice('10.244.0.6')}\n`);
  assert.notEqual(moved[0]!.object, fixed[0]!.object);
  assert.equal(decodeServiceInput(moved).slices[0]!.endpoints[0]!.address.value, 0x0af40006n);
});
