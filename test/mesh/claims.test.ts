// Issue 11, item 4: claims that cannot overlap. A Peer or a location's allowed-location IPs that
// claim what the cluster holds (pod CIDRs, internal IPs, the WireGuard subnet, the service CIDRs),
// or what an earlier claim holds, lose that prefix only; the rest of the mesh is as without it.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { computeTopology } from '../../src/mesh/topology.js';
import { formatCidr, parseCidr } from '../../src/model/ip.js';
import { member, options, peer } from './builder.js';

const rejected = (t: ReturnType<typeof computeTopology>) => t.rejectedClaims.map((r) => `${r.kind} "${r.name}" ${r.field} ${formatCidr(r.prefix)}: ${r.reason}`);

describe('claims', () => {
  const nodes = [member('a', 1), member('b', 1), member('c', 1, { allowed: ['10.2.21.0/24', '172.20.0.0/24', '10.96.0.0/16'] })];
  const opts = options('a1', { serviceCIDRs: [parseCidr('10.96.0.0/12')] });

  test('a Peer claiming a pod CIDR, an internal IP, the WireGuard or service range, or a default route loses those prefixes only', () => {
    const hostile = peer('hostile', { ips: ['10.2.21.0/24', '192.168.2.1/32', '10.4.0.0/24', '10.96.5.0/24', '0.0.0.0/0', '128.0.0.0/1', '10.5.0.7/32'] });
    const t = computeTopology({ nodes, peers: [hostile, peer('laptop', { ips: ['10.5.0.1/32'] })] }, opts);
    assert.deepEqual(
      t.peers.map((p) => [p.name, p.allowedIPs.map(formatCidr)]),
      [
        ['hostile', ['10.5.0.7/32']],
        ['laptop', ['10.5.0.1/32']],
      ],
    );
    assert.deepEqual(rejected(t), [
      'Peer "hostile" spec.allowedIPs 10.2.21.0/24: overlaps the pod CIDR of Node "b1" (10.2.21.0/24)',
      'Peer "hostile" spec.allowedIPs 192.168.2.1/32: overlaps the internal IP of Node "b1" (192.168.2.1/32)',
      'Peer "hostile" spec.allowedIPs 10.4.0.0/24: overlaps the WireGuard subnet (10.4.0.0/16)',
      'Peer "hostile" spec.allowedIPs 10.96.5.0/24: overlaps the service CIDR (10.96.0.0/12)',
      'Peer "hostile" spec.allowedIPs 0.0.0.0/0: wider than /8 (--allow-wide-claims allows it)',
      'Peer "hostile" spec.allowedIPs 128.0.0.0/1: wider than /8 (--allow-wide-claims allows it)',
      'Node "c1" annotation allowed-location-ips 10.2.21.0/24: overlaps the pod CIDR of Node "b1" (10.2.21.0/24)',
      'Node "c1" annotation allowed-location-ips 10.96.0.0/16: overlaps the service CIDR (10.96.0.0/12)',
    ]);
    // The victim's segment is as without the hostile claims.
    const without = computeTopology({ nodes, peers: [peer('laptop', { ips: ['10.5.0.1/32'] })] }, opts);
    assert.deepEqual(t.segments, without.segments);
    assert.deepEqual(t.routes.filter((r) => !formatCidr(r.dst).startsWith('10.5.0.7')), without.routes);
  });

  test('dual stack: a Peer claiming the IPv6 WireGuard subnet or a node\'s second internal IP loses those prefixes', () => {
    const dual = [member('a', 1, { ip: '192.168.1.1/24,fd31:1::1/64' })];
    const hostile = peer('hostile', { ips: ['fd00:4::/80', 'fd31:1::1/128', 'fd05::1/128'] });
    const t = computeTopology({ nodes: dual, peers: [hostile] }, options('a1', { subnets: [parseCidr('10.4.0.0/16'), parseCidr('fd00:4::/64')] }));
    assert.deepEqual(t.peers[0]?.allowedIPs.map(formatCidr), ['fd05::1/128']);
    assert.deepEqual(rejected(t), [
      'Peer "hostile" spec.allowedIPs fd00:4::/80: overlaps the WireGuard subnet (fd00:4::/64)',
      'Peer "hostile" spec.allowedIPs fd31:1::1/128: overlaps the internal IP of Node "a1" (fd31:1::1/128)',
    ]);
  });

  test('with --allow-wide-claims a default route may be claimed, if nothing else holds it', () => {
    const t = computeTopology({ nodes: [member('a', 1)], peers: [peer('gateway', { ips: ['0.0.0.0/1'] })] }, options('a1', { allowWideClaims: true, subnets: [parseCidr('10.4.0.0/16')] }));
    assert.deepEqual(t.peers[0]?.allowedIPs.map(formatCidr), []);
    assert.match(rejected(t)[0] ?? '', /0\.0\.0\.0\/1: overlaps the WireGuard subnet/);
    const wide = { nodes: [member('a', 1)], peers: [peer('gateway', { ips: ['200.0.0.0/5'] })] };
    assert.deepEqual(computeTopology(wide, options('a1')).peers[0]?.allowedIPs, [], 'refused without the flag');
    const clear = computeTopology(wide, options('a1', { allowWideClaims: true }));
    assert.deepEqual(clear.peers[0]?.allowedIPs.map(formatCidr), ['200.0.0.0/5']);
    assert.deepEqual(clear.rejectedClaims, []);
  });

  test('a pod CIDR overlapping the service or WireGuard range, an internal IP or another pod CIDR, or too wide, is dropped with its reason', () => {
    const nodes = [
      member('a', 1, { pods: ['10.2.11.0/24', '10.96.5.0/24'] }),
      member('b', 1, { pods: ['10.4.3.0/24', '192.168.0.0/16', '0.0.0.0/0'] }),
      member('c', 1, { pods: ['10.2.31.0/24'] }),
      member('d', 1, { pods: ['10.2.31.128/25', '10.2.41.0/24'] }),
    ];
    const t = computeTopology({ nodes, peers: [] }, options('a1', { serviceCIDRs: [parseCidr('10.96.0.0/12')] }));
    assert.deepEqual(rejected(t), [
      'Node "a1" spec.podCIDRs 10.96.5.0/24: overlaps the service CIDR (10.96.0.0/12)',
      'Node "b1" spec.podCIDRs 10.4.3.0/24: overlaps the WireGuard subnet (10.4.0.0/16)',
      'Node "b1" spec.podCIDRs 192.168.0.0/16: overlaps the internal IP of Node "a1" (192.168.1.1/32)',
      'Node "b1" spec.podCIDRs 0.0.0.0/0: wider than /8 (--allow-wide-claims allows it)',
      'Node "c1" spec.podCIDRs 10.2.31.0/24: contested by Node "d1" (10.2.31.128/25): dropped from both',
      'Node "d1" spec.podCIDRs 10.2.31.128/25: contested by Node "c1" (10.2.31.0/24): dropped from both',
    ]);
    // What is left is routed and allowed as ever; b1 and c1, left without a pod CIDR, are not ready.
    assert.deepEqual(t.segments.map((s) => [s.key, s.nodes.map((n) => n.podCIDRs.map(formatCidr))]), [
      ['location:a', [['10.2.11.0/24']]],
      ['location:d', [['10.2.41.0/24']]],
    ]);
    assert.ok(t.routes.every((r) => !['10.96.5.0/24', '10.2.31.128/25'].includes(formatCidr(r.dst))), 'no route for a dropped pod CIDR');
  });

  test('a location claiming what a Peer holds loses it; two locations claiming one prefix both lose it', () => {
    const claimants = [member('a', 1), member('b', 1, { allowed: ['172.20.0.0/24', '172.21.0.0/24'] }), member('c', 1, { allowed: ['172.20.0.0/25'] })];
    const t = computeTopology({ nodes: claimants, peers: [peer('printer-vpn', { ips: ['172.21.0.0/16'] })] }, options('a1'));
    assert.deepEqual(t.segments.map((s) => s.allowedLocationIPs.map(formatCidr)), [[], [], []]);
    assert.deepEqual(rejected(t), [
      'Node "b1" annotation allowed-location-ips 172.21.0.0/24: overlaps the allowed IPs of Peer "printer-vpn" (172.21.0.0/16)',
      'Node "b1" annotation allowed-location-ips 172.20.0.0/24: contested by Node "c1" (172.20.0.0/25): dropped from both',
      'Node "c1" annotation allowed-location-ips 172.20.0.0/25: contested by Node "b1" (172.20.0.0/24): dropped from both',
    ]);
  });
});
