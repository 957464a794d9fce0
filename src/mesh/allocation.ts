// WireGuard addresses for segments that stay put when other segments come and go.
//
// Kilo numbers segments network+1, +2, … in key order, so a new location that sorts first renumbers
// every leader and every node rewrites its whole configuration. Here a segment's address is derived
// from its key alone, so every node computes the same answer without coordination:
//
// 1. Each key prefers the slot sha256(key) mod (usable addresses of the subnet).
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
import { createHash } from 'node:crypto';
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

/** The offset a segment key prefers; depends on the key and the subnet size only. */
export function preferredOffsetOf(key: string, range: UsableRange): bigint {
  const digest = createHash('sha256').update(key, 'utf8').digest();
  // 128 bits: more than any subnet's usable count, so the modulo bias is negligible.
  const hash = BigInt(`0x${digest.subarray(0, 16).toString('hex')}`);
  return range.first + (hash % range.count);
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
  const displaced: string[] = [];
  for (const key of sorted) {
    const offset = preferredOffsetOf(key, range);
    if (taken.has(offset)) {
      displaced.push(key);
      continue;
    }
    taken.add(offset);
    offsets.set(key, offset);
  }
  const last = range.first + range.count - 1n;
  for (const key of displaced) {
    let offset = preferredOffsetOf(key, range);
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
