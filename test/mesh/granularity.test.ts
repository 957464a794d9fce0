import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { computeTopology, remoteSegmentsOf, segmentOfNode } from '../../src/mesh/topology.js';
import { nodeConfig } from '../../src/mesh/wireguard.js';
import { type Cidr, formatCidr, formatIp } from '../../src/model/ip.js';
import type { Granularity } from '../../src/model/mesh.js';
import { keyOf, member, node, options, showRoute, showRule } from './builder.js';

const cluster = [member('a', 1), member('a', 2), member('b', 1), member('b', 2)];
const cidrs = (list: readonly Cidr[]): string[] => list.map(formatCidr);

describe('segments per granularity', () => {
  const cases: { granularity: Granularity; segments: [string, string[], string][] }[] = [
    {
      granularity: 'location',
      segments: [
        ['location:a', ['a1', 'a2'], 'a1'],
        ['location:b', ['b1', 'b2'], 'b1'],
      ],
    },
    {
      granularity: 'full',
      segments: [
        ['node:a1', ['a1'], 'a1'],
        ['node:a2', ['a2'], 'a2'],
        ['node:b1', ['b1'], 'b1'],
        ['node:b2', ['b2'], 'b2'],
      ],
    },
    {
      granularity: 'cross',
      segments: [
        ['node:a1', ['a1'], 'a1'],
        ['node:a2', ['a2'], 'a2'],
        ['node:b1', ['b1'], 'b1'],
        ['node:b2', ['b2'], 'b2'],
      ],
    },
  ];
  for (const c of cases) {
    test(`${c.granularity}: segments, members and leaders`, () => {
      const t = computeTopology({ nodes: [...cluster].reverse(), peers: [] }, options('a2', { granularity: c.granularity }));
      assert.deepEqual(
        t.segments.map((s) => [s.key, s.nodes.map((n) => n.name), s.leader.name]),
        c.segments,
      );
      assert.equal(t.leader, c.granularity !== 'location');
    });
  }

  test('location: a node without an internal IP is its own segment and leads it', () => {
    const solo = node('solo', { loc: 'a', ep: '203.0.113.9:51820', pods: ['10.2.99.0/24'] });
    const t = computeTopology({ nodes: [...cluster, solo], peers: [] }, options('solo'));
    assert.deepEqual(t.segments.map((s) => s.key), ['location:a', 'location:b', 'node:solo']);
    assert.equal(t.leader, true);
    assert.deepEqual(remoteSegmentsOf(t).map((s) => s.key), ['location:a', 'location:b']);
    assert.equal(t.segments[2]?.location, 'a');
  });

  test('location: nodes without a location share the segment "location:"', () => {
    const t = computeTopology({ nodes: [node('x', { ep: '10.1.0.1:51820', ip: '192.168.0.1/24', pods: ['10.2.0.0/24'] }), node('y', { ep: '10.1.0.2:51820', ip: '192.168.0.2/24', pods: ['10.2.1.0/24'] })], peers: [] }, options('x'));
    assert.deepEqual(t.segments.map((s) => [s.key, s.location]), [['location:', '']]);
  });

  test('segmentOfNode finds a member\'s segment and names a node that is not there', () => {
    const t = computeTopology({ nodes: cluster, peers: [] }, options('a1'));
    assert.equal(segmentOfNode(t, 'b2').key, 'location:b');
    assert.throws(() => segmentOfNode(t, 'zz'), /Node "zz": not in the topology/);
  });
});

describe('full granularity', () => {
  test('every other node is a WireGuard peer, including nodes of the same location', () => {
    const t = computeTopology({ nodes: cluster, peers: [] }, options('a1', { granularity: 'full', local: true }));
    assert.deepEqual(nodeConfig(t).peers.map((p) => p.publicKey), [keyOf('a2'), keyOf('b1'), keyOf('b2')]);
    const a2 = t.segments.find((s) => s.key === 'node:a2');
    assert.deepEqual(
      t.routes.map(showRoute).slice(0, 2),
      [`10.2.12.0/24 via ${formatIp(a2?.wireguardIP ?? { family: 4, value: 0n })} dev wirelane0 src 192.168.1.1 onlink`, `192.168.1.2/32 via ${formatIp(a2?.wireguardIP ?? { family: 4, value: 0n })} dev wirelane0 src 192.168.1.1 onlink`],
    );
    assert.equal(t.routes.filter((r) => r.dev === 'eth0').length, 0, '--local has nothing to do: no node shares a segment');
  });
});

describe('cross granularity', () => {
  const cross = (host: string, over = {}) => computeTopology({ nodes: cluster, peers: [] }, options(host, { granularity: 'cross', ...over }));

  test('nodes of the same location are not WireGuard peers; nodes of other locations each are', () => {
    assert.deepEqual(nodeConfig(cross('a1')).peers.map((p) => p.publicKey), [keyOf('b1'), keyOf('b2')]);
    assert.deepEqual(nodeConfig(cross('b2')).peers.map((p) => p.publicKey), [keyOf('a1'), keyOf('a2')]);
  });

  test('every node has its own WireGuard IP as its interface address', () => {
    const t = cross('a2');
    assert.equal(t.leader, true);
    assert.equal(formatCidr(t.wireguardCIDR), `${formatIp(t.segment.wireguardIP)}/16`);
    assert.equal(new Set(t.segments.map((s) => s.wireguardIP.value)).size, 4);
  });

  test('no address of a same-location node appears in any AllowedIPs of this node', () => {
    const all = nodeConfig(cross('a1')).peers.flatMap((p) => cidrs(p.allowedIPs));
    const a2 = cross('a1').segments.find((s) => s.key === 'node:a2');
    for (const own of cidrs(a2?.allowedIPs ?? [])) assert.ok(!all.includes(own), own);
    assert.ok(all.includes('10.2.21.0/24') && all.includes('192.168.2.2/32'));
  });

  test('with --local, same-location pods go over the underlay and other locations over WireGuard', () => {
    const t = cross('a1', { local: true });
    const w = (key: string): string => formatIp(t.segments.find((s) => s.key === key)?.wireguardIP ?? { family: 4, value: 0n });
    assert.deepEqual(t.routes.map(showRoute), [
      '10.2.12.0/24 via 192.168.1.2 dev eth0 onlink',
      `10.2.21.0/24 via ${w('node:b1')} dev wirelane0 src 192.168.1.1 onlink`,
      `192.168.2.1/32 via ${w('node:b1')} dev wirelane0 src 192.168.1.1 onlink`,
      `10.2.22.0/24 via ${w('node:b2')} dev wirelane0 src 192.168.1.1 onlink`,
      `192.168.2.2/32 via ${w('node:b2')} dev wirelane0 src 192.168.1.1 onlink`,
    ]);
  });

  test('without --local, same-location pods are left to the CNI', () => {
    assert.ok(cross('a1').routes.every((r) => r.dev === 'wirelane0'));
  });

  test('with --local and encapsulation, same-location traffic is tunnelled with both rules', () => {
    const t = cross('a1', { local: true, encapsulate: 'always' });
    assert.deepEqual(t.routes.map(showRoute).slice(0, 2), ['10.2.12.0/24 via 192.168.1.2 dev tunl0 onlink', '192.168.1.2/32 via 192.168.1.2 dev tunl0 onlink table 1107']);
    assert.deepEqual(t.rules.map(showRule), ['from 10.2.11.0/24 to 192.168.1.2/32 table 1107', 'to 192.168.1.2/32 iif wirelane0 table 1107']);
  });

  test('a node without an internal IP has no underlay to its location: it peers with everyone', () => {
    const solo = node('solo', { loc: 'a', ep: '203.0.113.9:51820', pods: ['10.2.99.0/24'] });
    const t = computeTopology({ nodes: [...cluster, solo], peers: [] }, options('solo', { granularity: 'cross' }));
    assert.deepEqual(nodeConfig(t).peers.map((p) => p.publicKey), ['a1', 'a2', 'b1', 'b2'].map(keyOf));
    const a1 = computeTopology({ nodes: [...cluster, solo], peers: [] }, options('a1', { granularity: 'cross' }));
    assert.deepEqual(nodeConfig(a1).peers.map((p) => p.publicKey), ['b1', 'b2', 'solo'].map(keyOf));
  });
});
