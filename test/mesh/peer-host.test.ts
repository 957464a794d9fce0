import assert from 'node:assert/strict';
import { test } from 'node:test';
import { peerRoutes, publishedGranularity, viewpointNode } from '../../src/mesh/peer-host.js';
import { computeTopology } from '../../src/mesh/topology.js';
import { peerConfig } from '../../src/mesh/wireguard.js';
import { parseEndpoint } from '../../src/model/endpoint.js';
import { formatIp, parseCidr } from '../../src/model/ip.js';
import type { WireGuardConfig } from '../../src/wireguard/config.js';
import { NOW, keyOf, member, node, options, peer, showRoute } from './builder.js';

test('the viewpoint is the first ready node by name; none while no node is ready', () => {
  const nodes = [member('b', 1), member('a', 2), member('a', 1, { lastSeen: NOW - 3600 }), node('0', { lastSeen: NOW })];
  assert.equal(viewpointNode({ nodes, peers: [] }, NOW, 30), 'a2', 'a1 is stale, 0 has no endpoint');
  assert.equal(viewpointNode({ nodes: [member('a', 1, { lastSeen: null })], peers: [] }, NOW, 30), undefined);
  assert.equal(viewpointNode({ nodes: [], peers: [] }, NOW, 30), undefined);
});

test('the published granularity is the first node\'s by name that publishes one', () => {
  const nodes = [{ ...member('b', 1), granularity: 'full' as const }, member('a', 1), { ...member('c', 1), granularity: 'location' as const }];
  assert.equal(publishedGranularity({ nodes, peers: [] }), 'full');
  assert.equal(publishedGranularity({ nodes: [member('a', 1)], peers: [] }), undefined);
});

test('every allowed IP of every [Peer] is routed through the interface, without a gateway', () => {
  const nodes = [member('a', 1, { ep: '203.0.113.1:51820' }), member('a', 2), member('b', 1, { ep: '203.0.113.2:51820', allowed: ['172.20.0.0/24'] })];
  const peers = [peer('laptop', { ips: ['10.5.0.1/32'] }), peer('phone', { ips: ['10.5.0.2/32', 'fd05::2/128'] })];
  const t = computeTopology({ nodes, peers }, options('a1', { serviceCIDRs: [parseCidr('10.96.0.0/12')] }));
  const routes = peerRoutes(peerConfig(t, 'laptop'), 'wl-peer0').map(showRoute);
  const wg = (key: string): string => `${formatIp(t.segments.find((s) => s.key === key)!.wireguardIP)}/32 dev wl-peer0`;
  assert.deepEqual(routes, [
    '10.2.11.0/24 dev wl-peer0',
    '192.168.1.1/32 dev wl-peer0',
    '10.2.12.0/24 dev wl-peer0',
    '192.168.1.2/32 dev wl-peer0',
    wg('location:a'),
    '10.96.0.0/12 dev wl-peer0',
    '10.2.21.0/24 dev wl-peer0',
    '192.168.2.1/32 dev wl-peer0',
    wg('location:b'),
    '172.20.0.0/24 dev wl-peer0',
    '10.5.0.2/32 dev wl-peer0',
    'fd05::2/128 dev wl-peer0',
  ]);
});

test('a prefix holding a peer\'s endpoint stays off the tunnel, which would carry its own packets', () => {
  const config: WireGuardConfig = {
    interface: {},
    peers: [
      { publicKey: keyOf('a1'), endpoint: parseEndpoint('172.31.0.10:51820'), allowedIPs: ['10.244.0.0/24', '172.31.0.10/32', '10.4.0.1/32'].map(parseCidr) },
      { publicKey: keyOf('b1'), endpoint: parseEndpoint('b.example.org:51820'), allowedIPs: ['10.244.1.0/24', '172.31.0.0/16'].map(parseCidr) },
    ],
  };
  assert.deepEqual(peerRoutes(config, 'wg0').map(showRoute), ['10.244.0.0/24 dev wg0', '10.4.0.1/32 dev wg0', '10.244.1.0/24 dev wg0']);
});

test('a configuration without peers routes nothing', () => {
  assert.deepEqual(peerRoutes({ interface: {}, peers: [] }, 'wg0'), []);
});
