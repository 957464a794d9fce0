import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { computeTopology } from '../../src/mesh/topology.js';
import { nodeConfig } from '../../src/mesh/wireguard.js';
import { formatEndpoint } from '../../src/model/endpoint.js';
import type { MeshNode, MeshPeer } from '../../src/model/mesh.js';
import { NOW, member, options, peer } from './builder.js';

interface Case {
  name: string;
  host?: string;
  nodes: MeshNode[];
  peers?: MeshPeer[];
  /** Expected endpoint of segment location:b, and of peer p when given. */
  segment: string;
  peer?: string | null;
}

const SEEN_BY_LOCAL = '198.51.100.1:40001';
const SEEN_BY_A2 = '198.51.100.2:40002';
const SEEN_BY_A3 = '198.51.100.3:40003';
const SEEN_BY_C1 = '198.51.100.4:40004';

const cases: Case[] = [
  {
    name: 'a roaming leader is reached where the local node saw it',
    nodes: [member('a', 1, { discovered: { b1: SEEN_BY_LOCAL } }), member('b', 1, { keepalive: 25 })],
    segment: SEEN_BY_LOCAL,
  },
  {
    name: 'a leader without keepalive keeps its declared endpoint whatever was discovered',
    nodes: [member('a', 1, { discovered: { b1: SEEN_BY_LOCAL } }), member('b', 1)],
    segment: '10.1.2.1:51820',
  },
  {
    name: 'a roaming leader nobody saw keeps its declared endpoint',
    nodes: [member('a', 1), member('b', 1, { keepalive: 25 })],
    segment: '10.1.2.1:51820',
  },
  {
    name: 'the local node\'s observation wins over every other node\'s',
    nodes: [member('c', 1, { discovered: { b1: SEEN_BY_C1 } }), member('a', 2, { discovered: { b1: SEEN_BY_A2 } }), member('a', 1, { discovered: { b1: SEEN_BY_LOCAL } }), member('b', 1, { keepalive: 25 })],
    segment: SEEN_BY_LOCAL,
  },
  {
    name: 'other nodes\' observations count in segment order',
    nodes: [member('c', 1, { discovered: { b1: SEEN_BY_C1 } }), member('a', 1), member('a', 2, { discovered: { b1: SEEN_BY_A2 } }), member('b', 1, { keepalive: 25 })],
    host: 'c1',
    segment: SEEN_BY_C1,
  },
  {
    name: 'without a local observation the first segment\'s wins',
    nodes: [member('c', 1, { discovered: { b1: SEEN_BY_C1 } }), member('a', 1), member('a', 2, { discovered: { b1: SEEN_BY_A2 } }), member('b', 1, { keepalive: 25 })],
    segment: SEEN_BY_A2,
  },
  {
    name: 'within a segment, observations count in name order',
    nodes: [member('a', 3, { discovered: { b1: SEEN_BY_A3 } }), member('a', 1), member('a', 2, { discovered: { b1: SEEN_BY_A2 } }), member('b', 1, { keepalive: 25 })],
    segment: SEEN_BY_A2,
  },
  {
    name: 'a node that is not ready contributes no observations',
    nodes: [member('a', 1), member('a', 2, { lastSeen: NOW - 3600, discovered: { b1: SEEN_BY_A2 } }), member('b', 1, { keepalive: 25 })],
    segment: '10.1.2.1:51820',
  },
  {
    name: 'a roaming peer is reached where it was seen, even without a declared endpoint',
    nodes: [member('a', 1, { discovered: { p: SEEN_BY_LOCAL } }), member('b', 1)],
    peers: [peer('p', { ips: ['10.5.0.1/32'], keepalive: 10 })],
    segment: '10.1.2.1:51820',
    peer: SEEN_BY_LOCAL,
  },
  {
    name: 'a peer without keepalive keeps its declared endpoint',
    nodes: [member('a', 1, { discovered: { p: SEEN_BY_LOCAL } }), member('b', 1)],
    peers: [peer('p', { ips: ['10.5.0.1/32'], ep: '203.0.113.50:51820' })],
    segment: '10.1.2.1:51820',
    peer: '203.0.113.50:51820',
  },
  {
    name: 'a peer without keepalive nor endpoint has none',
    nodes: [member('a', 1, { discovered: { p: SEEN_BY_LOCAL } }), member('b', 1)],
    peers: [peer('p', { ips: ['10.5.0.1/32'] })],
    segment: '10.1.2.1:51820',
    peer: null,
  },
];

describe('discovered endpoints', () => {
  for (const c of cases) {
    test(c.name, () => {
      const t = computeTopology({ nodes: c.nodes, peers: c.peers ?? [] }, options(c.host ?? 'a1'));
      const b = t.segments.find((s) => s.key === 'location:b');
      assert.ok(b);
      assert.equal(formatEndpoint(b.endpoint), c.segment);
      const config = nodeConfig(t).peers.find((p) => p.publicKey === b.publicKey);
      assert.equal(config?.endpoint && formatEndpoint(config.endpoint), c.segment);
      if (c.peer !== undefined) {
        const p = t.peers[0]?.endpoint;
        assert.equal(p === undefined ? null : formatEndpoint(p), c.peer);
      }
    });
  }
});
