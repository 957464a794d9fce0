// Who may claim which addresses. Nodes' pod CIDRs and internal IPs, the WireGuard subnet and the
// service CIDRs belong to the cluster; a Peer's allowed IPs and a node's allowed-location IPs are
// claims on top of them, and a claim that overlaps what is taken would hijack its traffic (and two
// [Peer]s with one AllowedIP make WireGuard refuse or flap). Such a prefix is dropped, that prefix
// only, with a reason naming both claimants; the rest of the mesh is computed as if it were absent.
import { type Cidr, type Family, formatCidr, networkOf, overlaps } from '../model/ip.js';
import { PrefixIndex, prefixKey } from './allowed-ips.js';

/** What the cluster itself holds, e.g. `the pod CIDR of Node "b"`. */
export interface ReservedRange {
  readonly prefix: Cidr;
  readonly holder: string;
}

/** One claimant's prefixes, e.g. `Peer "laptop"` and its allowed IPs. */
export interface Claim {
  readonly kind: 'Peer' | 'Node';
  readonly name: string;
  /** The field the prefixes came from, for the report. */
  readonly field: string;
  readonly prefixes: readonly Cidr[];
  /** Claims of one group (the nodes of one segment) never contest each other; default: its own. */
  readonly group?: string;
}

export interface RejectedClaim {
  readonly kind: 'Peer' | 'Node';
  readonly name: string;
  readonly field: string;
  readonly prefix: Cidr;
  readonly reason: string;
}

/** Claims wider than this (a default route, or two halves of one) are refused unless allowed. */
export const WIDEST_CLAIM: Readonly<Record<Family, number>> = { 4: 8, 6: 16 };

export interface ClaimRules {
  readonly reserved: readonly ReservedRange[];
  readonly allowWide: boolean;
}

export interface ResolvedClaims {
  /** Per claim, in order: the prefixes kept, masked and without repeats. */
  readonly kept: readonly Cidr[][];
  readonly rejected: readonly RejectedClaim[];
}

/**
 * Claims in order of precedence (Peers sorted by name): a prefix overlapping a prefix an earlier
 * claim kept is dropped, as is one wider than WIDEST_CLAIM or overlapping a reserved range.
 */
export function resolveOrderedClaims(claims: readonly Claim[], rules: ClaimRules): ResolvedClaims {
  const rejected: RejectedClaim[] = [];
  const index = new PrefixIndex(rules.reserved.map((r) => r.prefix));
  const candidates = claims.map((claim) => admissible(claim, rules, index, rejected));
  // Prefixes nest or are disjoint, so among the admissible ones the earliest claim of any nest wins.
  const owners = overlappingOwners(candidates);
  const kept = candidates.map((prefixes, owner) =>
    prefixes.filter((prefix) => {
      const earlier = owners.get(`${owner} ${prefixKey(prefix)}`);
      if (earlier === undefined) return true;
      const claim = claims[owner] as Claim;
      const other = claims[earlier.owner] as Claim;
      rejected.push(reject(claim, prefix, `overlaps ${formatCidr(earlier.prefix)} of ${other.kind} "${other.name}"`));
      return false;
    }),
  );
  return { kept, rejected };
}

/**
 * Claims that no one may win against another (allowed-location IPs: which location reaches a
 * printer must not depend on how names sort): a prefix overlapping another claimant's is dropped
 * from both. `taken` (Peers' kept prefixes) wins over these claims.
 */
export function resolveContestedClaims(claims: readonly Claim[], rules: ClaimRules, taken: readonly ReservedRange[]): ResolvedClaims {
  const rejected: RejectedClaim[] = [];
  const rulesWithTaken = { ...rules, reserved: [...rules.reserved, ...taken] };
  const index = new PrefixIndex(rulesWithTaken.reserved.map((r) => r.prefix));
  const candidates = claims.map((claim) => admissible(claim, rulesWithTaken, index, rejected));
  const contested = contestants(candidates, claims.map((c, i) => c.group ?? `#${i}`));
  const kept = candidates.map((prefixes, owner) =>
    prefixes.filter((prefix) => {
      const other = contested.get(`${owner} ${prefixKey(prefix)}`);
      if (other === undefined) return true;
      const rival = claims[other.owner] as Claim;
      rejected.push(reject(claims[owner] as Claim, prefix, `contested by ${rival.kind} "${rival.name}" (${formatCidr(other.prefix)}): dropped from both`));
      return false;
    }),
  );
  return { kept, rejected };
}

/** The claim's prefixes that are narrow enough and overlap nothing reserved; the others go to `rejected`. */
function admissible(claim: Claim, rules: ClaimRules, index: PrefixIndex, rejected: RejectedClaim[]): Cidr[] {
  const seen = new Set<string>();
  const out: Cidr[] = [];
  for (const prefix of claim.prefixes) {
    const key = prefixKey(prefix);
    if (seen.has(key)) continue;
    seen.add(key);
    if (!rules.allowWide && prefix.bits < WIDEST_CLAIM[prefix.family]) {
      rejected.push(reject(claim, prefix, `wider than /${WIDEST_CLAIM[prefix.family]} (--allow-wide-claims allows it)`));
    } else if (index.overlaps(prefix)) {
      const holder = rules.reserved.find((r) => overlaps(r.prefix, prefix)) as ReservedRange;
      rejected.push(reject(claim, prefix, `overlaps ${holder.holder} (${formatCidr(holder.prefix)})`));
    } else {
      out.push(networkOf(prefix));
    }
  }
  return out;
}

function reject(claim: Claim, prefix: Cidr, reason: string): RejectedClaim {
  return { kind: claim.kind, name: claim.name, field: claim.field, prefix, reason };
}

interface Interval {
  readonly owner: number;
  readonly prefix: Cidr;
  readonly start: bigint;
  readonly end: bigint;
}

/** Every prefix's intervals, outer ones first at equal starts, per family. */
function sortedIntervals(prefixes: readonly (readonly Cidr[])[], family: Family): Interval[] {
  const out: Interval[] = [];
  const width = family === 4 ? 32n : 128n;
  prefixes.forEach((list, owner) =>
    list.forEach((prefix) => {
      if (prefix.family !== family) return;
      const size = 1n << (width - BigInt(prefix.bits));
      const start = prefix.addr & ~(size - 1n);
      out.push({ owner, prefix, start, end: start + size - 1n });
    }),
  );
  return out.sort((a, b) => (a.start !== b.start ? (a.start < b.start ? -1 : 1) : a.end > b.end ? -1 : a.end < b.end ? 1 : a.owner - b.owner));
}

/**
 * For every prefix that nests with another owner's: the pair it overlaps. A sweep: after popping
 * the intervals that ended before one starts, the stack holds exactly those that contain it.
 */
function overlapPairs(prefixes: readonly (readonly Cidr[])[], visit: (inner: Interval, outer: Interval) => void, groups?: readonly string[]): void {
  const apart = (a: Interval, b: Interval) => (groups === undefined ? a.owner !== b.owner : groups[a.owner] !== groups[b.owner]);
  for (const family of [4, 6] as const) {
    const stack: Interval[] = [];
    for (const interval of sortedIntervals(prefixes, family)) {
      while (stack.length > 0 && (stack[stack.length - 1] as Interval).end < interval.start) stack.pop();
      for (const outer of stack) if (apart(outer, interval)) visit(interval, outer);
      stack.push(interval);
    }
  }
}

/** `owner prefixKey` → the earliest other owner's prefix it overlaps, for prefixes of a later owner. */
function overlappingOwners(prefixes: readonly (readonly Cidr[])[]): Map<string, { owner: number; prefix: Cidr }> {
  const out = new Map<string, { owner: number; prefix: Cidr }>();
  const note = (later: Interval, earlier: Interval) => {
    const key = `${later.owner} ${prefixKey(later.prefix)}`;
    const known = out.get(key);
    if (known === undefined || earlier.owner < known.owner) out.set(key, { owner: earlier.owner, prefix: earlier.prefix });
  };
  overlapPairs(prefixes, (inner, outer) => (inner.owner > outer.owner ? note(inner, outer) : note(outer, inner)));
  return out;
}

/** `owner prefixKey` → one rival prefix of another owner, for every prefix that overlaps one. */
function contestants(prefixes: readonly (readonly Cidr[])[], groups: readonly string[]): Map<string, { owner: number; prefix: Cidr }> {
  const out = new Map<string, { owner: number; prefix: Cidr }>();
  const note = (a: Interval, b: Interval) => {
    const key = `${a.owner} ${prefixKey(a.prefix)}`;
    if (!out.has(key)) out.set(key, { owner: b.owner, prefix: b.prefix });
  };
  overlapPairs(
    prefixes,
    (inner, outer) => {
      note(inner, outer);
      note(outer, inner);
    },
    groups,
  );
  return out;
}
