import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MeshError } from '../../src/mesh/error.js';
import { isNodeReady, isPeerValid, notReadyReason } from '../../src/mesh/readiness.js';
import { computeTopology } from '../../src/mesh/topology.js';
import { NOW, member, node, options, peer } from './builder.js';

const ready = { ep: '10.1.0.1:51820', pods: ['10.2.1.0/24'] };

describe('node readiness', () => {
  const cases: { name: string; node: ReturnType<typeof node>; ready: boolean; reason?: RegExp }[] = [
    { name: 'a node with endpoint, key, pod CIDR and a fresh heartbeat is ready', node: node('a', ready), ready: true },
    { name: 'a DNS endpoint counts as an endpoint', node: node('a', { ...ready, ep: 'a.example.com:51820' }), ready: true },
    { name: 'an IPv6 endpoint counts as an endpoint', node: node('a', { ...ready, ep: '[2001:db8::1]:51820' }), ready: true },
    { name: 'a node without endpoint is not ready', node: node('a', { pods: ready.pods }), ready: false, reason: /no endpoint/ },
    { name: 'a node without key is not ready', node: node('a', { ...ready, noKey: true }), ready: false, reason: /no WireGuard public key/ },
    { name: 'a node without pod CIDR is not ready', node: node('a', { ep: ready.ep }), ready: false, reason: /no pod CIDR/ },
    { name: 'a node never seen is not ready', node: node('a', { ...ready, lastSeen: null }), ready: false, reason: /never seen/ },
    { name: 'a node seen just under 2 × resync ago is ready', node: node('a', { ...ready, lastSeen: NOW - 59 }), ready: true },
    { name: 'a node seen exactly 2 × resync ago is not ready', node: node('a', { ...ready, lastSeen: NOW - 60 }), ready: false, reason: /60 s ago/ },
    { name: 'a node seen long ago is not ready', node: node('a', { ...ready, lastSeen: NOW - 3600 }), ready: false, reason: /3600 s ago/ },
    { name: 'a heartbeat slightly in the future (clock skew) is ready', node: node('a', { ...ready, lastSeen: NOW + 5 }), ready: true },
  ];
  for (const c of cases) {
    test(c.name, () => {
      assert.equal(isNodeReady(c.node, NOW, 30), c.ready);
      const reason = notReadyReason(c.node, NOW, 30);
      if (c.reason) assert.match(reason ?? '', c.reason);
      else assert.equal(reason, undefined);
    });
  }

  test('a peer without allowed IPs is not valid', () => {
    assert.equal(isPeerValid(peer('p', { ips: [] })), false);
    assert.equal(isPeerValid(peer('p', { ips: ['10.5.0.1/32'] })), true);
  });
});

describe('what enters the topology', () => {
  test('nodes that are not ready stay out of every segment', () => {
    const t = computeTopology(
      { nodes: [member('a', 1), member('a', 2, { lastSeen: NOW - 100 }), member('b', 1, { noKey: true }), member('c', 1)], peers: [] },
      options('a1'),
    );
    assert.deepEqual(
      t.segments.map((s) => [s.key, s.nodes.map((n) => n.name)]),
      [
        ['location:a', ['a1']],
        ['location:c', ['c1']],
      ],
    );
  });

  test('peers without allowed IPs stay out', () => {
    const t = computeTopology({ nodes: [member('a', 1)], peers: [peer('p1', { ips: [] }), peer('p2', { ips: ['10.5.0.2/32'] })] }, options('a1'));
    assert.deepEqual(t.peers.map((p) => p.name), ['p2']);
  });

  const errors: { name: string; nodes: ReturnType<typeof node>[]; message: RegExp }[] = [
    { name: 'a local node that is not ready is an error naming it and why', nodes: [member('a', 1, { lastSeen: null }), member('b', 1)], message: /^Node "a1": not ready: never seen/ },
    { name: 'a local node without pod CIDR is an error', nodes: [member('a', 1, { pods: [] })], message: /^Node "a1": not ready: no pod CIDR/ },
    { name: 'a local node missing from the cluster is an error', nodes: [member('b', 1)], message: /^Node "a1": not in the cluster/ },
    { name: 'a node listed twice is an error', nodes: [member('a', 1), member('b', 1), member('b', 1)], message: /^Node "b1": listed twice/ },
  ];
  for (const c of errors) {
    test(c.name, () => {
      assert.throws(() => computeTopology({ nodes: c.nodes, peers: [] }, options('a1')), (e: unknown) => e instanceof MeshError && c.message.test(e.message));
    });
  }

  test('a peer listed twice is an error', () => {
    assert.throws(
      () => computeTopology({ nodes: [member('a', 1)], peers: [peer('p', { ips: ['10.5.0.1/32'] }), peer('p', { ips: ['10.5.0.2/32'] })] }, options('a1')),
      /Peer "p": listed twice/,
    );
  });
});
