import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { topologyToJSON } from '../../src/mesh/json.js';
import { computeTopology, localLocationPrefixesOf, meshDestinationsOf, remoteSegmentsOf } from '../../src/mesh/topology.js';
import { type Cidr, formatCidr, formatIp } from '../../src/model/ip.js';
import { member, options, peer } from './builder.js';

const cidrs = (list: readonly Cidr[]): string[] => list.map(formatCidr);
const nodes = [member('a', 1, { allowed: ['172.20.1.0/24'] }), member('a', 2), member('b', 1, { allowed: ['172.20.2.0/24'] })];
const peers = [peer('p', { ips: ['10.5.0.1/32'] })];

describe('topology views for the other dataplanes', () => {
  const t = computeTopology({ nodes, peers }, options('a2'));
  const wg = (key: string): string => `${formatIp(t.segments.find((s) => s.key === key)?.wireguardIP ?? { family: 4, value: 0n })}/32`;

  test('mesh destinations: every segment\'s AllowedIPs and every Peer\'s allowed IPs', () => {
    assert.deepEqual(cidrs(meshDestinationsOf(t)), [
      '10.2.11.0/24',
      '192.168.1.1/32',
      '10.2.12.0/24',
      '192.168.1.2/32',
      wg('location:a'),
      '172.20.1.0/24',
      '10.2.21.0/24',
      '192.168.2.1/32',
      wg('location:b'),
      '172.20.2.0/24',
      '10.5.0.1/32',
    ]);
  });

  test('local location prefixes: its pod CIDRs, internal IPs and allowed-location IPs, not its WireGuard IP', () => {
    assert.deepEqual(cidrs(localLocationPrefixesOf(t)), ['10.2.11.0/24', '192.168.1.1/32', '10.2.12.0/24', '192.168.1.2/32', '172.20.1.0/24']);
  });

  test('remote segments are the other locations (the local one is not a WireGuard peer)', () => {
    assert.deepEqual(remoteSegmentsOf(t).map((s) => s.key), ['location:b']);
  });
});

describe('determinism', () => {
  test('the same cluster in any order gives the same topology', () => {
    const all = [...nodes, member('c', 1), member('c', 2, { leader: true }), member('b', 2)];
    const allPeers = [...peers, peer('q', { ips: ['10.5.0.2/32', '10.5.0.1/32'] })];
    const opts = options('b2', { local: true, encapsulate: 'always' });
    const expected = JSON.stringify(topologyToJSON(computeTopology({ nodes: all, peers: allPeers }, opts)));
    for (const order of [[...all].reverse(), [all[3], all[0], all[5], all[1], all[4], all[2]]]) {
      const json = JSON.stringify(topologyToJSON(computeTopology({ nodes: order as typeof all, peers: [...allPeers].reverse() }, opts)));
      assert.equal(json, expected);
    }
  });

  test('computing does not modify the input', () => {
    const input = { nodes: [...nodes].reverse(), peers: [peer('q', { ips: ['10.5.0.1/32'] }), ...peers] };
    const before = input.nodes.map((n) => n.name).join();
    computeTopology(input, options('a1'));
    assert.equal(input.nodes.map((n) => n.name).join(), before);
    assert.deepEqual(input.peers.map((p) => p.name), ['q', 'p']);
  });
});
