import assert from 'node:assert/strict';
import { test } from 'node:test';
import { renderGraph } from '../../src/mesh/graph.js';
import { computeTopology } from '../../src/mesh/topology.js';
import { parseCidr } from '../../src/model/ip.js';
import { node, options, peer } from './builder.js';

const NODES = [
  node('a', { loc: 'east', ep: '203.0.113.1:51820', ip: '192.168.0.1/24', pods: ['10.2.1.0/24'] }),
  node('b', { loc: 'east', ep: '192.168.0.2:51820', ip: '192.168.0.2/24', pods: ['10.2.2.0/24'] }),
  node('c', { loc: 'west', ep: '203.0.113.3:51820', ip: '192.168.1.3/24', pods: ['10.2.3.0/24'] }),
];

function graphOf(granularity: 'location' | 'full' | 'cross', peers = [peer('laptop', { ips: ['10.5.0.1/32'] })]): string {
  return renderGraph(computeTopology({ nodes: NODES, peers }, options('a', { granularity })));
}

function edges(dot: string): string[] {
  return dot
    .split('\n')
    .filter((l) => l.includes('->'))
    .map((l) => l.trim())
    .sort();
}

test('the graph has a cluster per location, labelled leaders, leader→member edges, the leader mesh and peers', () => {
  const dot = graphOf('location');
  assert.match(dot, /^digraph wirelane \{\n {2}label="10\.4\.0\.0\/16";/);
  assert.equal(dot.match(/subgraph "cluster_location_/g)?.length, 2);
  assert.match(dot, /label="east";/);
  // Leaders carry their WireGuard IP and endpoint; members do not.
  assert.match(dot, /"a" \[label="east\\na\\n10\.2\.1\.0\/24\\n192\.168\.0\.1\\n10\.4\.\d+\.\d+\\n203\.0\.113\.1:51820", shape=ellipse, peripheries=2\];/);
  assert.match(dot, /"b" \[label="east\\nb\\n10\.2\.2\.0\/24\\n192\.168\.0\.2", shape=ellipse\];/);
  assert.deepEqual(edges(dot), [
    '"a" -> "b";',
    '"a" -> "c" [dir=both];',
    '"a" -> "peer:laptop" [dir=both, style=dashed];',
    '"c" -> "peer:laptop" [dir=both, style=dashed];',
  ]);
});

test('full granularity joins every node to every other over WireGuard', () => {
  assert.deepEqual(edges(graphOf('full', [])), ['"a" -> "b" [dir=both];', '"a" -> "c" [dir=both];', '"b" -> "c" [dir=both];']);
});

test('cross granularity joins nodes of one location over the underlay, others over WireGuard', () => {
  assert.deepEqual(edges(graphOf('cross', [])), [
    '"a" -> "b" [dir=both, style=dotted];',
    '"a" -> "c" [dir=both];',
    '"b" -> "c" [dir=both];',
  ]);
});

test('names that need quoting are escaped', () => {
  const dot = renderGraph(
    computeTopology({ nodes: [node('a', { loc: 'say "hi"', ep: '203.0.113.1:1', ip: '192.168.0.1/24', pods: ['10.2.1.0/24'] })], peers: [] }, options('a')),
  );
  assert.match(dot, /label="say \\"hi\\"";/);
});

test('dual stack: the graph is labelled with both subnets, and nodes show both internal IPs and leaders both WireGuard IPs', () => {
  const nodes = [
    node('a', { loc: 'east', ep: '203.0.113.1:51820', ip: '192.168.0.1/24,fd31::1/64', pods: ['10.2.1.0/24', 'fd10:1::/64'] }),
    node('b', { loc: 'east', ep: '192.168.0.2:51820', ip: '192.168.0.2/24,fd31::2/64', pods: ['10.2.2.0/24', 'fd10:2::/64'] }),
  ];
  const dot = renderGraph(computeTopology({ nodes, peers: [] }, options('a', { subnets: [parseCidr('10.4.0.0/16'), parseCidr('fd00:4::/64')] })));
  assert.match(dot, /^digraph wirelane \{\n {2}label="10\.4\.0\.0\/16, fd00:4::\/64";/);
  assert.match(dot, /"a" \[label="east\\na\\n10\.2\.1\.0\/24\\nfd10:1::\/64\\n192\.168\.0\.1\\nfd31::1\\n10\.4\.\d+\.\d+\\nfd00:4::[0-9a-f:]+\\n203\.0\.113\.1:51820", shape=ellipse, peripheries=2\];/);
  assert.match(dot, /"b" \[label="east\\nb\\n10\.2\.2\.0\/24\\nfd10:2::\/64\\n192\.168\.0\.2\\nfd31::2", shape=ellipse\];/);
});
