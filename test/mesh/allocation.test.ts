import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { allocateWireGuardIPs, allocateWireGuardIPsPerSubnet, fnv1a64, preferredOffsetOf, usableRangeOf } from '../../src/mesh/allocation.js';
import { MeshError } from '../../src/mesh/error.js';
import { computeTopology } from '../../src/mesh/topology.js';
import { type Cidr, containsIp, formatCidr, formatIp, parseCidr } from '../../src/model/ip.js';
import { member, options } from './builder.js';

const keys = (n: number, prefix = 'location:'): string[] => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

function formatted(addresses: Map<string, { family: 4 | 6; value: bigint }>): Record<string, string> {
  return Object.fromEntries([...addresses].map(([k, ip]) => [k, formatIp(ip)]));
}

function preferred(key: string, subnet: Cidr): bigint {
  return preferredOffsetOf(key, usableRangeOf(subnet));
}

describe('usable addresses of a subnet', () => {
  const cases: [string, bigint, bigint][] = [
    ['10.4.0.0/16', 1n, 65534n],
    ['10.4.0.0/30', 1n, 2n],
    ['10.4.0.0/31', 0n, 2n],
    ['10.4.0.1/32', 0n, 1n],
    ['fd00:4::/64', 1n, (1n << 64n) - 1n],
    ['fd00:4::/127', 1n, 1n],
    ['fd00:4::1/128', 0n, 1n],
  ];
  for (const [subnet, first, count] of cases) {
    test(`${subnet} offers ${count} addresses from offset ${first}`, () => {
      assert.deepEqual(usableRangeOf(parseCidr(subnet)), { first, count });
    });
  }
});

describe('the key hash (FNV-1a, 64 bits)', () => {
  // Published FNV-1a test vectors: every node, whatever its platform, must prefer the same slots.
  const vectors: [string, bigint][] = [
    ['', 0xcbf29ce484222325n],
    ['a', 0xaf63dc4c8601ec8cn],
    ['foobar', 0x85944171f73967e8n],
  ];
  for (const [key, hash] of vectors) test(`"${key}" hashes to ${hash.toString(16)}`, () => assert.equal(fnv1a64(key), hash));
  test('non-ASCII keys hash their UTF-8 bytes, as a plain BigInt FNV-1a does', () => {
    const reference = (bytes: Iterable<number>): bigint => {
      let h = 0xcbf29ce484222325n;
      for (const b of bytes) h = ((h ^ BigInt(b)) * 0x100000001b3n) & 0xffffffffffffffffn;
      return h;
    };
    for (const key of ['location:zürich', 'location:東京', 'node:a-very-long-node-name.example.com']) {
      assert.equal(fnv1a64(key), reference(Buffer.from(key, 'utf8')));
    }
  });
});

describe('WireGuard address allocation', () => {
  const subnet = parseCidr('10.4.0.0/16');

  test('every segment gets a distinct address inside the subnet, never network or broadcast', () => {
    const small = parseCidr('10.4.0.0/29');
    const addresses = allocateWireGuardIPs(keys(6), small);
    const values = [...addresses.values()].map((ip) => ip.value - small.addr).sort((a, b) => Number(a - b));
    assert.deepEqual(values, [1n, 2n, 3n, 4n, 5n, 6n]);
  });

  test('the same keys in any order get the same addresses', () => {
    const small = parseCidr('10.4.0.0/28');
    const input = keys(12);
    const expected = formatted(allocateWireGuardIPs(input, small));
    const orders = [[...input].reverse(), [...input].sort(), input.map((_, i) => input[(i * 5) % 12] as string)];
    for (const order of orders) assert.deepEqual(formatted(allocateWireGuardIPs(order, small)), expected);
  });

  test('a collision goes to the smaller key, the other probes to the next free address', () => {
    const small = parseCidr('10.4.0.0/28');
    const all = keys(60);
    const [a, b] = findCollision(all, small);
    const addresses = allocateWireGuardIPs([b, a], small);
    const p = preferred(a, small);
    assert.equal(addresses.get(a)?.value, small.addr + p);
    assert.equal(addresses.get(b)?.value, small.addr + (p === 14n ? 1n : p + 1n));
  });

  test('a displaced segment never takes the preferred address of another segment', () => {
    const small = parseCidr('10.4.0.0/28');
    const all = keys(200);
    // y < z share slot p; w (sorting after z) prefers p + 1, where linear probing would put z.
    let found: [string, string, string] | undefined;
    for (const [y, z] of collisions(all, small)) {
      const next = preferred(y, small) === 14n ? 1n : preferred(y, small) + 1n;
      const w = all.find((k) => k > z && preferred(k, small) === next);
      if (w !== undefined) {
        found = [y, z, w];
        break;
      }
    }
    assert.ok(found, 'the fixture has such a triple');
    const [y, z, w] = found;
    const addresses = allocateWireGuardIPs([y, z, w], small);
    assert.equal(addresses.get(w)?.value, small.addr + preferred(w, small));
    assert.equal(addresses.get(y)?.value, small.addr + preferred(y, small));
    assert.notEqual(addresses.get(z)?.value, addresses.get(w)?.value);
  });

  test('adding or removing a segment moves no other segment when no preferred addresses collide', () => {
    // 300 segments without collisions among themselves (the common case this pins).
    const slots = new Set<bigint>();
    const existing = keys(320).filter((k) => !slots.has(preferred(k, subnet)) && slots.add(preferred(k, subnet)) !== undefined).slice(0, 300);
    assert.equal(existing.length, 300);
    const before = formatted(allocateWireGuardIPs(existing, subnet));
    let added = 0;
    for (const key of keys(100, 'location:new-')) {
      if (slots.has(preferred(key, subnet))) continue;
      added++;
      const after = formatted(allocateWireGuardIPs([key, ...existing], subnet));
      const { [key]: _, ...others } = after;
      assert.deepEqual(others, before, `adding ${key}`);
    }
    assert.ok(added > 90);
    for (const removed of existing.slice(0, 50)) {
      const after = formatted(allocateWireGuardIPs(existing.filter((k) => k !== removed), subnet));
      const { [removed]: _, ...others } = before;
      assert.deepEqual(after, others, `removing ${removed}`);
    }
  });

  test('residual case: a displaced segment returns to its preferred address when its rival leaves', () => {
    const small = parseCidr('10.4.0.0/28');
    const [a, b] = findCollision(keys(60), small);
    assert.notEqual(allocateWireGuardIPs([a, b], small).get(b)?.value, small.addr + preferred(b, small));
    assert.equal(allocateWireGuardIPs([b], small).get(b)?.value, small.addr + preferred(b, small));
  });

  const tooSmall: [string, number][] = [
    ['10.4.0.0/30', 3],
    ['10.4.0.0/29', 7],
    ['10.4.0.1/32', 2],
    ['fd00::/127', 2],
  ];
  for (const [cidr, count] of tooSmall) {
    test(`${count} segments do not fit in ${cidr}: a clear error`, () => {
      assert.throws(
        () => allocateWireGuardIPs(keys(count), parseCidr(cidr)),
        (e: unknown) => e instanceof MeshError && e.message.includes(`usable addresses for ${count} segments`) && e.message.startsWith('subnet '),
      );
    });
  }

  test('a subnet exactly as large as the segments is filled completely', () => {
    const exact = parseCidr('10.4.0.0/30');
    assert.deepEqual(Object.values(formatted(allocateWireGuardIPs(keys(2), exact))).sort(), ['10.4.0.1', '10.4.0.2']);
    assert.deepEqual(Object.values(formatted(allocateWireGuardIPs(keys(2), parseCidr('10.4.0.0/31')))).sort(), ['10.4.0.0', '10.4.0.1']);
  });

  test('an IPv6 subnet works', () => {
    const v6 = parseCidr('fd00:4::/64');
    const addresses = allocateWireGuardIPs(keys(50), v6);
    assert.equal(new Set([...addresses.values()].map((ip) => ip.value)).size, 50);
    for (const ip of addresses.values()) {
      assert.equal(ip.family, 6);
      assert.ok(containsIp(v6, ip) && ip.value !== v6.addr);
    }
  });

  test('a subnet written with host bits allocates from its network', () => {
    const addresses = allocateWireGuardIPs(keys(3), parseCidr('10.4.7.9/16'));
    for (const ip of addresses.values()) assert.ok(containsIp(parseCidr('10.4.0.0/16'), ip));
  });
});

describe('WireGuard addresses in the topology', () => {
  test('a new location that sorts first does not renumber the others', () => {
    const base = [member('b', 1), member('c', 1), member('d', 1)];
    const before = computeTopology({ nodes: base, peers: [] }, options('b1'));
    const after = computeTopology({ nodes: [member('a', 1), ...base], peers: [] }, options('b1'));
    const ipOf = (t: typeof before, key: string): string => formatIp(t.segments.find((s) => s.key === key)?.wireguardIP ?? { family: 4, value: 0n });
    for (const key of ['location:b', 'location:c', 'location:d']) assert.equal(ipOf(after, key), ipOf(before, key));
    assert.equal(formatCidr(after.wireguardCIDR), formatCidr(before.wireguardCIDR));
  });

  test('a leader gets its address with the subnet prefix, a non-leader the subnet itself', () => {
    const nodes = [member('a', 1), member('a', 2), member('b', 1)];
    const leader = computeTopology({ nodes, peers: [] }, options('a1'));
    assert.equal(formatCidr(leader.wireguardCIDR), `${formatIp(leader.segment.wireguardIP)}/16`);
    const other = computeTopology({ nodes, peers: [] }, options('a2'));
    assert.equal(other.leader, false);
    assert.equal(formatCidr(other.wireguardCIDR), '10.4.0.0/16');
  });

  test('every node computes the same addresses', () => {
    const nodes = [member('a', 1), member('a', 2), member('b', 1), member('c', 1)];
    const views = ['a1', 'a2', 'b1', 'c1'].map((h) => computeTopology({ nodes: [...nodes].reverse(), peers: [] }, options(h)));
    const addresses = views.map((t) => t.segments.map((s) => `${s.key}=${formatIp(s.wireguardIP)}`).join(','));
    assert.equal(new Set(addresses).size, 1);
  });

  test('too many segments for the subnet is an error from computeTopology', () => {
    const nodes = [member('a', 1), member('b', 1), member('c', 1)];
    assert.throws(() => computeTopology({ nodes, peers: [] }, options('a1', { subnets: [parseCidr('10.4.0.0/30')] })), /subnet 10\.4\.0\.0\/30: 2 usable addresses for 3 segments/);
  });

  test('dual stack: a leader gets an address from each subnet, each with its prefix; a non-leader both subnets', () => {
    const nodes = [member('a', 1), member('a', 2), member('b', 1)];
    const subnets = [parseCidr('10.4.0.0/16'), parseCidr('fd00:4::/64')];
    const leader = computeTopology({ nodes, peers: [] }, options('a1', { subnets }));
    const [v4, v6] = leader.segment.wireguardIPs;
    assert.ok(v4 && v6 && containsIp(subnets[0] as Cidr, v4) && containsIp(subnets[1] as Cidr, v6));
    assert.deepEqual(leader.wireguardCIDRs.map(formatCidr), [`${formatIp(v4)}/16`, `${formatIp(v6)}/64`]);
    assert.equal(formatCidr(leader.wireguardCIDR), `${formatIp(v4)}/16`, 'the first subnet is the primary one');
    const other = computeTopology({ nodes, peers: [] }, options('a2', { subnets }));
    assert.deepEqual(other.wireguardCIDRs.map(formatCidr), ['10.4.0.0/16', 'fd00:4::/64']);
  });

  test('dual stack: the IPv4 addresses are exactly those of the IPv4 subnet alone, and each family is allocated on its own', () => {
    const all = keys(40);
    const [v4, v6] = [parseCidr('10.4.0.0/16'), parseCidr('fd00:4::/64')];
    const both = allocateWireGuardIPsPerSubnet(all, [v4, v6]);
    const alone4 = formatted(allocateWireGuardIPs(all, v4));
    const alone6 = formatted(allocateWireGuardIPs(all, v6));
    for (const key of all) assert.deepEqual(both.get(key)?.map(formatIp), [alone4[key], alone6[key]], key);
    // The order of the subnets is the order of the addresses.
    assert.equal(allocateWireGuardIPsPerSubnet(all, [v6, v4]).get('location:0')?.[0]?.family, 6);
  });

  test('two subnets of one family, or none, are refused', () => {
    const two = [parseCidr('10.4.0.0/16'), parseCidr('10.5.0.0/16')];
    assert.throws(() => computeTopology({ nodes: [member('a', 1)], peers: [] }, options('a1', { subnets: two })), /want one per family/);
    assert.throws(() => computeTopology({ nodes: [member('a', 1)], peers: [] }, options('a1', { subnets: [] })), /want one per family/);
  });
});

function* collisions(all: string[], subnet: Cidr): Generator<[string, string]> {
  const seen = new Map<bigint, string>();
  for (const key of [...all].sort()) {
    const slot = preferred(key, subnet);
    const earlier = seen.get(slot);
    if (earlier !== undefined) yield [earlier, key];
    else seen.set(slot, key);
  }
}

function findCollision(all: string[], subnet: Cidr): [string, string] {
  const first = collisions(all, subnet).next();
  assert.ok(!first.done, 'the fixture has a collision');
  return first.value;
}
