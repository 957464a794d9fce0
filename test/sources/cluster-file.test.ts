import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseClusterFile } from '../../src/sources/file/cluster-file.js';
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
