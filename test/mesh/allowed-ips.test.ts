import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { PrefixIndex } from '../../src/mesh/allowed-ips.js';
import { resolveContestedClaims, resolveOrderedClaims } from '../../src/mesh/claims.js';
import { computeTopology } from '../../src/mesh/topology.js';
import { type Cidr, formatCidr, formatIp, overlaps, parseCidr } from '../../src/model/ip.js';
import { member, node, options, peer } from './builder.js';

const cidrs = (list: readonly Cidr[]): string[] => list.map(formatCidr);
const parse = (list: string[]): Cidr[] => list.map(parseCidr);

describe('AllowedIPs of a segment', () => {
  test('per member in name order: pod CIDRs and internal IP, then the WireGuard IP, then allowed-location IPs', () => {
    const nodes = [
      member('b', 2, { allowed: ['172.20.0.0/24'] }),
      member('b', 1, { pods: ['10.2.21.0/24', 'fd10:21::/64'] }),
      member('a', 1),
    ];
    const t = computeTopology({ nodes, peers: [] }, options('a1'));
    const b = t.segments.find((s) => s.key === 'location:b');
    assert.ok(b);
    assert.deepEqual(cidrs(b.allowedIPs), [
      '10.2.21.0/24',
      'fd10:21::/64',
      '192.168.2.1/32',
      '10.2.22.0/24',
      '192.168.2.2/32',
      `${formatIp(b.wireguardIP)}/32`,
      '172.20.0.0/24',
    ]);
    assert.deepEqual(cidrs(b.allowedLocationIPs), ['172.20.0.0/24']);
  });

  test('an IPv6 internal IP is a /128 and an IPv6 subnet gives /128 WireGuard IPs', () => {
    const nodes = [member('a', 1), node('v', { loc: 'v', ep: '[2001:db8::1]:51820', ip: 'fd00:1::5/64', pods: ['fd10:5::/64'] })];
    const t = computeTopology({ nodes, peers: [] }, options('a1', { subnets: [parseCidr('fd00:4::/64')] }));
    const v = t.segments.find((s) => s.key === 'location:v');
    assert.deepEqual(cidrs(v?.allowedIPs ?? []), ['fd10:5::/64', 'fd00:1::5/128', `${formatIp(v?.wireguardIP ?? { family: 6, value: 0n })}/128`]);
    assert.equal(formatCidr(t.wireguardCIDR).endsWith('/64'), true);
  });

  test('dual stack: per member its pod CIDRs and both internal IPs, then a WireGuard IP per family', () => {
    const nodes = [member('a', 1), node('v', { loc: 'v', ep: '203.0.113.5:51820', ip: '192.168.5.5/24,fd31::5/64', pods: ['10.2.5.0/24', 'fd10:5::/64'] })];
    const t = computeTopology({ nodes, peers: [] }, options('a1', { subnets: [parseCidr('10.4.0.0/16'), parseCidr('fd00:4::/64')] }));
    const v = t.segments.find((s) => s.key === 'location:v');
    const [w4, w6] = (v?.wireguardIPs ?? []).map(formatIp);
    assert.deepEqual(cidrs(v?.allowedIPs ?? []), ['10.2.5.0/24', 'fd10:5::/64', '192.168.5.5/32', 'fd31::5/128', `${w4}/32`, `${w6}/128`]);
  });

  test('pod CIDRs written with host bits are masked', () => {
    const t = computeTopology({ nodes: [member('a', 1, { pods: ['10.2.1.7/24'] })], peers: [] }, options('a1'));
    assert.equal(formatCidr(t.segment.allowedIPs[0] as Cidr), '10.2.1.0/24');
  });
});

describe('allowed-location IP filtering', () => {
  const cases: { name: string; a?: string[]; b: string[]; peers?: string[]; kept: string[] }[] = [
    { name: 'a prefix overlapping nothing is kept', b: ['172.20.0.0/24'], kept: ['172.20.0.0/24'] },
    { name: 'a prefix another segment also claims is dropped from both', a: ['172.20.0.0/24'], b: ['172.20.0.0/24'], kept: [] },
    { name: 'a prefix inside another segment\'s allowed-location IP is dropped', a: ['172.20.0.0/16'], b: ['172.20.5.0/24', '172.30.0.0/24'], kept: ['172.30.0.0/24'] },
    { name: 'a prefix overlapping another segment\'s pod CIDR is dropped', b: ['10.2.11.128/25'], kept: [] },
    { name: 'a prefix overlapping its own segment\'s pod CIDR is dropped', b: ['10.2.0.0/16'], kept: [] },
    { name: 'a prefix containing an internal IP is dropped', b: ['192.168.1.0/24'], kept: [] },
    { name: 'a prefix containing the WireGuard subnet addresses is dropped', b: ['10.4.0.0/16'], kept: [] },
    { name: 'a prefix overlapping a peer\'s allowed IP is dropped', b: ['10.5.0.0/16', '172.21.0.0/24'], peers: ['10.5.0.1/32'], kept: ['172.21.0.0/24'] },
    { name: 'an IPv6 prefix is filtered within its own family', b: ['fd20::/64', '172.22.0.0/24'], peers: ['fd20::1/128'], kept: ['172.22.0.0/24'] },
    { name: 'the same prefix twice in one segment is kept once', b: ['172.20.0.0/24', '172.20.0.0/24'], kept: ['172.20.0.0/24'] },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const nodes = [member('a', 1, { allowed: c.a ?? [] }), member('b', 1, { allowed: c.b })];
      const peers = c.peers ? [peer('p', { ips: c.peers })] : [];
      const t = computeTopology({ nodes, peers }, options('a1'));
      const b = t.segments.find((s) => s.key === 'location:b');
      assert.deepEqual(cidrs(b?.allowedLocationIPs ?? []), c.kept);
    });
  }

  test('the same prefix on two members of one segment is not a conflict', () => {
    const nodes = [member('a', 1), member('b', 1, { allowed: ['172.20.0.0/24'] }), member('b', 2, { allowed: ['172.20.0.0/24'] })];
    const t = computeTopology({ nodes, peers: [] }, options('a1'));
    assert.deepEqual(cidrs(t.segments[1]?.allowedLocationIPs ?? []), ['172.20.0.0/24']);
  });

  test('contested claims match a brute-force pairwise check on random prefixes', () => {
    let seed = 7;
    const random = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const prefix = (): Cidr => parseCidr(`172.${16 + random(2)}.${random(4)}.0/${20 + random(9)}`);
    for (let round = 0; round < 50; round++) {
      const perSegment = Array.from({ length: 6 }, () => Array.from({ length: random(4) }, prefix));
      const taken = Array.from({ length: 5 }, prefix);
      const claims = perSegment.map((prefixes, i) => ({ kind: 'Node' as const, name: `n${i}`, field: 'f', prefixes }));
      const { kept } = resolveContestedClaims(claims, { reserved: taken.map((t) => ({ prefix: t, holder: 't' })), allowWide: false }, []);
      perSegment.forEach((ips, owner) => {
        const expected = ips.filter(
          (ip, i) =>
            ips.findIndex((other) => formatCidr(other) === formatCidr(ip)) === i &&
            !taken.some((t) => overlaps(t, ip)) &&
            !perSegment.some((others, o) => o !== owner && others.some((other) => overlaps(other, ip) && !taken.some((t) => overlaps(t, other)))),
        );
        assert.deepEqual(cidrs(kept[owner] ?? []), cidrs(expected), `round ${round} segment ${owner}`);
      });
    }
  });
});

describe('prefix index', () => {
  const set = new PrefixIndex(parse(['10.0.0.0/24', '10.1.0.0/16', '192.168.5.5/32', 'fd00::/64']));
  const cases: [string, boolean][] = [
    ['10.0.0.128/25', true],
    ['10.0.0.0/8', true],
    ['10.0.1.0/24', false],
    ['10.1.200.0/24', true],
    ['10.2.0.0/16', false],
    ['192.168.5.0/24', true],
    ['192.168.5.6/32', false],
    ['0.0.0.0/0', true],
    ['fd00::1/128', true],
    ['fd01::/64', false],
    ['::/0', true],
  ];
  for (const [cidr, expected] of cases) {
    test(`${cidr} ${expected ? 'overlaps' : 'does not overlap'} the set`, () => assert.equal(set.overlaps(parseCidr(cidr)), expected));
  }
  test('an empty index overlaps nothing', () => assert.equal(new PrefixIndex([]).overlaps(parseCidr('0.0.0.0/0')), false));
});

describe('peer allowed IPs', () => {
  const resolve = (...peers: string[][]) =>
    resolveOrderedClaims(peers.map((ips, i) => ({ kind: 'Peer' as const, name: `p${i}`, field: 'spec.allowedIPs', prefixes: parse(ips) })), { reserved: [], allowWide: false });

  test('a prefix claimed by several peers stays with the first by name', () => {
    assert.deepEqual(resolve(['10.5.0.1/32', '10.5.1.0/24'], ['10.5.0.1/32', '10.5.2.0/24'], ['10.5.1.0/24']).kept.map(cidrs), [['10.5.0.1/32', '10.5.1.0/24'], ['10.5.2.0/24'], []]);
  });

  test('a prefix overlapping an earlier peer\'s is dropped too, whichever contains the other', () => {
    const { kept, rejected } = resolve(['10.5.0.0/24'], ['10.5.0.0/16'], ['10.5.0.128/25']);
    assert.deepEqual(kept.map(cidrs), [['10.5.0.0/24'], [], []]);
    assert.deepEqual(rejected.map((r) => `${r.name} ${formatCidr(r.prefix)}: ${r.reason}`), ['p1 10.5.0.0/16: overlaps 10.5.0.0/24 of Peer "p0"', 'p2 10.5.0.128/25: overlaps 10.5.0.0/24 of Peer "p0"']);
  });

  test('prefixes equal after masking count as the same', () => {
    assert.deepEqual(resolve(['10.5.0.0/24'], ['10.5.0.9/24']).kept.map(cidrs), [['10.5.0.0/24'], []]);
  });

  test('the topology sorts peers by name before deduplicating, whatever the input order', () => {
    const peers = [peer('zeta', { ips: ['10.5.0.1/32', '10.5.9.0/24'] }), peer('alpha', { ips: ['10.5.0.1/32'] })];
    const t = computeTopology({ nodes: [member('a', 1)], peers }, options('a1'));
    assert.deepEqual(
      t.peers.map((p) => [p.name, cidrs(p.allowedIPs)]),
      [
        ['alpha', ['10.5.0.1/32']],
        ['zeta', ['10.5.9.0/24']],
      ],
    );
  });
});
