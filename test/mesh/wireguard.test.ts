import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { computeTopology } from '../../src/mesh/topology.js';
import { nodeConfig, peerConfig, segmentAsPeer } from '../../src/mesh/wireguard.js';
import { formatEndpoint } from '../../src/model/endpoint.js';
import { formatCidr, formatIp, parseCidr } from '../../src/model/ip.js';
import type { WireGuardConfig, WireGuardPeer } from '../../src/wireguard/config.js';
import { keyOf, member, options, peer } from './builder.js';

function show(p: WireGuardPeer): Record<string, unknown> {
  return {
    publicKey: p.publicKey,
    endpoint: p.endpoint && formatEndpoint(p.endpoint),
    allowedIPs: p.allowedIPs.map(formatCidr),
    persistentKeepalive: p.persistentKeepalive,
    presharedKey: p.presharedKey,
  };
}
const showAll = (c: WireGuardConfig) => c.peers.map(show);

const nodes = [
  member('a', 1, { keepalive: 15 }),
  member('a', 2),
  member('b', 1, { allowed: ['172.20.0.0/24'] }),
  member('c', 1),
];
const peers = [peer('p1', { ips: ['10.5.0.1/32'], ep: '203.0.113.7:51820', psk: 'secret', keepalive: 20 }), peer('p2', { ips: ['10.5.0.2/32'] })];
const t = computeTopology({ nodes, peers }, options('a1', { port: 51999 }));
const wg = (key: string): string => `${formatIp(t.segments.find((s) => s.key === key)?.wireguardIP ?? { family: 4, value: 0n })}/32`;

describe('the local node\'s WireGuard configuration', () => {
  test('a leader has its listen port, one [Peer] per remote segment and per Peer, all with its keepalive', () => {
    const config = nodeConfig(t);
    assert.deepEqual(config.interface, { listenPort: 51999 });
    assert.deepEqual(showAll(config), [
      { publicKey: keyOf('b1'), endpoint: '10.1.2.1:51820', allowedIPs: ['10.2.21.0/24', '192.168.2.1/32', wg('location:b'), '172.20.0.0/24'], persistentKeepalive: 15, presharedKey: undefined },
      { publicKey: keyOf('c1'), endpoint: '10.1.3.1:51820', allowedIPs: ['10.2.31.0/24', '192.168.3.1/32', wg('location:c')], persistentKeepalive: 15, presharedKey: undefined },
      { publicKey: keyOf('p1'), endpoint: '203.0.113.7:51820', allowedIPs: ['10.5.0.1/32'], persistentKeepalive: 15, presharedKey: keyOf('secret') },
      { publicKey: keyOf('p2'), endpoint: undefined, allowedIPs: ['10.5.0.2/32'], persistentKeepalive: 15, presharedKey: undefined },
    ]);
  });

  test('a local node without keepalive sets none on its peers', () => {
    const other = computeTopology({ nodes, peers }, options('b1'));
    assert.ok(nodeConfig(other).peers.every((p) => p.persistentKeepalive === undefined));
  });

  test('a non-leader keeps its listen port and has no peers: its device stays down', () => {
    assert.deepEqual(nodeConfig(computeTopology({ nodes, peers }, options('a2', { port: 51999 }))), { interface: { listenPort: 51999 }, peers: [] });
  });

  test('a configuration carries no private key: the caller adds its own', () => {
    assert.equal(nodeConfig(t).interface.privateKey, undefined);
  });
});

describe('a segment as a peer of a foreign host', () => {
  test('the segment\'s leader key, endpoint and every AllowedIP, allowed-location IPs included', () => {
    assert.deepEqual(show(segmentAsPeer(t, 'location:b')), {
      publicKey: keyOf('b1'),
      endpoint: '10.1.2.1:51820',
      allowedIPs: ['10.2.21.0/24', '192.168.2.1/32', wg('location:b'), '172.20.0.0/24'],
      persistentKeepalive: undefined,
      presharedKey: undefined,
    });
  });

  test('the local segment too', () => {
    assert.equal(segmentAsPeer(t, t.segment.key).publicKey, keyOf('a1'));
    assert.deepEqual(segmentAsPeer(t, 'location:a').allowedIPs.map(formatCidr), ['10.2.11.0/24', '192.168.1.1/32', '10.2.12.0/24', '192.168.1.2/32', wg('location:a')]);
  });

  test('an unknown segment is an error naming it', () => {
    assert.throws(() => segmentAsPeer(t, 'location:zz'), /segment "location:zz": not in the topology/);
  });
});

describe('a Peer\'s configuration', () => {
  test('one [Peer] per segment with the Peer\'s keepalive and preshared key, one per other Peer', () => {
    const config = peerConfig(t, 'p1');
    assert.deepEqual(config.interface, {});
    assert.deepEqual(showAll(config), [
      { publicKey: keyOf('a1'), endpoint: '10.1.1.1:51820', allowedIPs: ['10.2.11.0/24', '192.168.1.1/32', '10.2.12.0/24', '192.168.1.2/32', wg('location:a')], persistentKeepalive: 20, presharedKey: keyOf('secret') },
      { publicKey: keyOf('b1'), endpoint: '10.1.2.1:51820', allowedIPs: ['10.2.21.0/24', '192.168.2.1/32', wg('location:b'), '172.20.0.0/24'], persistentKeepalive: 20, presharedKey: keyOf('secret') },
      { publicKey: keyOf('c1'), endpoint: '10.1.3.1:51820', allowedIPs: ['10.2.31.0/24', '192.168.3.1/32', wg('location:c')], persistentKeepalive: 20, presharedKey: keyOf('secret') },
      { publicKey: keyOf('p2'), endpoint: undefined, allowedIPs: ['10.5.0.2/32'], persistentKeepalive: 20, presharedKey: undefined },
    ]);
  });

  test('a Peer without keepalive or preshared key sets neither', () => {
    const config = peerConfig(t, 'p2');
    assert.ok(config.peers.every((p) => p.persistentKeepalive === undefined && p.presharedKey === undefined));
    assert.deepEqual(config.peers.map((p) => p.publicKey).slice(-1), [keyOf('p1')]);
  });

  test('an unknown Peer is an error naming it', () => {
    assert.throws(() => peerConfig(t, 'nope'), /Peer "nope": not in the topology/);
  });

  test('the service CIDRs go to the segment of the first ready node by name (Kilo\'s kgctl connect), and only there', () => {
    const services = ['10.96.0.0/12', 'fd00:96::/108'];
    const withServices = computeTopology({ nodes, peers }, options('c1', { serviceCIDRs: services.map(parseCidr) }));
    const config = peerConfig(withServices, 'p1');
    const holders = config.peers.filter((p) => services.every((s) => p.allowedIPs.map(formatCidr).includes(s)));
    assert.deepEqual(holders.map((p) => p.publicKey), [keyOf('a1')]);
    assert.deepEqual(config.peers[0]?.allowedIPs.map(formatCidr).slice(-2), services);
    assert.equal(config.peers.filter((p) => p.allowedIPs.some((c) => services.includes(formatCidr(c)))).length, 1);
  });

  test('when the first node leaves, its segment gives the service CIDRs to the next', () => {
    const rest = nodes.filter((n) => n.location !== 'a');
    const config = peerConfig(computeTopology({ nodes: rest, peers }, options('c1', { serviceCIDRs: [parseCidr('10.96.0.0/12')] })), 'p1');
    assert.deepEqual(config.peers.filter((p) => p.allowedIPs.map(formatCidr).includes('10.96.0.0/12')).map((p) => p.publicKey), [keyOf('b1')]);
  });

  test('without service CIDRs a segment\'s [Peer] holds exactly its AllowedIPs', () => {
    for (const [i, s] of t.segments.entries()) assert.deepEqual(peerConfig(t, 'p1').peers[i]?.allowedIPs, s.allowedIPs);
  });
});
