// WireGuard addresses for segments that stay put when other segments come and go.
//
// Kilo numbers segments network+1, +2, … in key order, so a new location that sorts first renumbers
// every leader and every node rewrites its whole configuration. Here a segment's address is derived
// from its key alone, so every node computes the same answer without coordination:
//
// 1. Each key prefers the slot FNV-1a-64(key) mod (usable addresses of the subnet).
// 2. A slot preferred by several keys goes to the smallest key; a key that gets its preferred slot
//    is never displaced by a key that did not.
// 3. The others (in key order) probe linearly from their preferred slot to the next free one,
//    wrapping around the usable range.
//
// So a segment keeps its address when others are added or removed, except in the residual case of a
// collision chain: a segment that lost its preferred slot (or a segment whose preferred slot a new,
// smaller key also prefers) can move when the set of colliding segments changes, and a displaced
// segment's probe can land on a slot that a later newcomer prefers. With S segments in N slots a
// given segment is in such a chain with probability about S/N (500 locations in a /16: < 1 %).
//
// Dual-stack (`--subnet` one CIDR per family): the same rule runs in each family's subnet on its own,
// so a segment gets one address per family and each is as stable as above. The two are unrelated
// offsets (the slot count differs), and the IPv4 one is exactly what a single IPv4 --subnet gives.
import { type Cidr, type Ip, formatCidr, networkOf, sizeOf } from '../model/ip.js';
import { MeshError } from './error.js';
import { compareStrings } from './segments.js';

/** Offsets from the network address that a segment may get: `first` … `first + count - 1`. */
export interface UsableRange {
  readonly first: bigint;
  readonly count: bigint;
}

/**
 * IPv4 skips the network and broadcast addresses (except in a /31 or /32, which have none);
 * IPv6 skips the subnet-router anycast address (the network address) except in a /128.
 */
export function usableRangeOf(subnet: Cidr): UsableRange {
  const size = sizeOf(subnet);
  if (subnet.family === 4) return size > 2n ? { first: 1n, count: size - 2n } : { first: 0n, count: size };
  return size > 1n ? { first: 1n, count: size - 1n } : { first: 0n, count: 1n };
}

/**
 * 64-bit FNV-1a over the key's UTF-8 bytes. Not cryptographic — nothing here needs to resist a chosen
 * key — but stable across versions and platforms and cheap in plain JS (sha256 through node:crypto
 * was a fifth of the time at 5,000 segments). 64 bits exceed any IPv4 subnet by far; in an IPv6
 * subnet larger than /64 only the first 2^64 slots are preferred, still leaving collisions negligible.
 */
export function fnv1a64(key: string): bigint {
  // The 64-bit state as two 32-bit halves; every product stays below 2^53, so Numbers are exact.
  let hi = 0xcbf29ce4;
  let lo = 0x84222325;
  for (const byte of Buffer.from(key, 'utf8')) {
    lo ^= byte;
    // × the FNV prime 2^40 + 0x1b3: lo·0x1b3 (carry into hi), hi·0x1b3, and lo shifted up 40 bits.
    const low = (lo >>> 0) * 0x1b3;
    const carry = Math.floor(low / 0x100000000);
    hi = (hi * 0x1b3 + carry + ((lo << 8) >>> 0)) >>> 0;
    lo = low >>> 0;
  }
  return (BigInt(hi) << 32n) | BigInt(lo >>> 0);
}

/** The offset a segment key prefers; depends on the key and the subnet size only. */
export function preferredOffsetOf(key: string, range: UsableRange): bigint {
  return range.first + (fnv1a64(key) % range.count);
}

/** One address per key, independent of the order of `keys`. Throws when the subnet is too small. */
export function allocateWireGuardIPs(keys: readonly string[], subnet: Cidr): Map<string, Ip> {
  const network = networkOf(subnet);
  const range = usableRangeOf(network);
  if (range.count < BigInt(keys.length)) {
    throw new MeshError(
      `subnet ${formatCidr(network)}: ${range.count} usable addresses for ${keys.length} segments; use a larger --subnet`,
    );
  }
  const sorted = [...new Set(keys)].sort(compareStrings);
  const taken = new Set<bigint>();
  const offsets = new Map<string, bigint>();
  const displaced: [string, bigint][] = [];
  for (const key of sorted) {
    const offset = preferredOffsetOf(key, range);
    if (taken.has(offset)) {
      displaced.push([key, offset]);
      continue;
    }
    taken.add(offset);
    offsets.set(key, offset);
  }
  const last = range.first + range.count - 1n;
  for (const [key, preferred] of displaced) {
    let offset = preferred;
    // Terminates: there are at least as many usable slots as keys.
    while (taken.has(offset)) offset = offset === last ? range.first : offset + 1n;
    taken.add(offset);
    offsets.set(key, offset);
  }
  const addresses = new Map<string, Ip>();
  for (const key of keys) {
    addresses.set(key, { family: network.family, value: network.addr + (offsets.get(key) as bigint) });
  }
  return addresses;
}

/** Per key, one address from each subnet (one subnet per family), in the order of `subnets`. */
export function allocateWireGuardIPsPerSubnet(keys: readonly string[], subnets: readonly Cidr[]): Map<string, Ip[]> {
  const perSubnet = subnets.map((subnet) => allocateWireGuardIPs(keys, subnet));
  return new Map(keys.map((key) => [key, perSubnet.map((addresses) => addresses.get(key) as Ip)]));
}
