// AllowedIPs: what each segment and Peer may send from, with overlaps resolved in O(n log n).
//
// Kilo compares every allowed-location IP with every segment's and peer's prefixes (O(n²) at 5,000
// nodes). Prefixes are intervals, so sorting them once answers "does this overlap anything" with a
// binary search, and a sweep over sorted prefixes finds overlaps between owners.
import { type Cidr, type Family, maskOf, networkOf, widthOf } from '../model/ip.js';

/** A prefix's identity after masking: equal keys ⇔ the same network. */
export function prefixKey(cidr: Cidr): string {
  const addr = cidr.addr & maskOf(cidr.family, cidr.bits);
  // A Number prints much faster than a bigint, and holds any IPv4 address exactly.
  return `${cidr.family}/${cidr.family === 4 ? Number(addr) : addr}/${cidr.bits}`;
}

function rangeOf(cidr: Cidr): { start: bigint; end: bigint } {
  const mask = maskOf(cidr.family, cidr.bits);
  const start = cidr.addr & mask;
  const all = maskOf(cidr.family, widthOf(cidr.family));
  return { start, end: start | (all ^ mask) };
}

interface SortedRanges {
  readonly starts: bigint[];
  /** maxEnds[i] = the largest end among ranges 0…i. */
  readonly maxEnds: bigint[];
}

/** Answers "does this prefix overlap any of a fixed set" in O(log n). */
export class PrefixIndex {
  private readonly families: Record<Family, SortedRanges>;

  constructor(cidrs: Iterable<Cidr>) {
    const ranges: Record<Family, { start: bigint; end: bigint }[]> = { 4: [], 6: [] };
    for (const cidr of cidrs) ranges[cidr.family].push(rangeOf(cidr));
    this.families = { 4: sortRanges(ranges[4]), 6: sortRanges(ranges[6]) };
  }

  overlaps(cidr: Cidr): boolean {
    const { starts, maxEnds } = this.families[cidr.family];
    const { start, end } = rangeOf(cidr);
    // Some range overlaps [start, end] iff one that starts at or before `end` ends at or after `start`.
    let lo = 0;
    let hi = starts.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((starts[mid] as bigint) <= end) lo = mid + 1;
      else hi = mid;
    }
    return lo > 0 && (maxEnds[lo - 1] as bigint) >= start;
  }
}

function sortRanges(ranges: { start: bigint; end: bigint }[]): SortedRanges {
  ranges.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  const starts: bigint[] = [];
  const maxEnds: bigint[] = [];
  let max = -1n;
  for (const range of ranges) {
    if (range.end > max) max = range.end;
    starts.push(range.start);
    maxEnds.push(max);
  }
  return { starts, maxEnds };
}

/** Masked prefixes without repeats, first occurrence kept. */
export function uniquePrefixes(cidrs: Iterable<Cidr>): Cidr[] {
  const seen = new Set<string>();
  const unique: Cidr[] = [];
  for (const cidr of cidrs) {
    const key = prefixKey(cidr);
    if (seen.has(key)) continue;
    seen.add(key);
    unique.push(networkOf(cidr));
  }
  return unique;
}

/**
 * Each Peer's allowed IPs (peers sorted by name), masked, with a prefix claimed by several peers
 * kept by the first only: two [Peer]s with the same AllowedIP make WireGuard flap between them.
 */
export function deduplicatePeerIPs(peerIPs: readonly (readonly Cidr[])[]): Cidr[][] {
  const claimed = new Set<string>();
  return peerIPs.map((ips) => {
    const kept: Cidr[] = [];
    for (const cidr of ips) {
      const key = prefixKey(cidr);
      if (claimed.has(key)) continue;
      claimed.add(key);
      kept.push(networkOf(cidr));
    }
    return kept;
  });
}

/**
 * The allowed-location IPs each segment keeps: those overlapping no other segment's allowed-location
 * IPs, no segment's AllowedIPs (pod CIDRs, internal IPs, WireGuard IPs — its own included) and no
 * Peer's allowed IPs.
 *
 * Unlike Kilo — whose sequential filter lets the later segment keep a prefix two segments both claim —
 * a prefix claimed by two segments is dropped from both: which location reaches the printer must not
 * depend on how the location names sort, nor change when a third location appears.
 */
export function filterAllowedLocationIPs(
  locationIPs: readonly (readonly Cidr[])[],
  taken: PrefixIndex,
): Cidr[][] {
  const own = locationIPs.map((ips) => uniquePrefixes(ips));
  const contested = contestedPrefixes(own);
  return own.map((ips, owner) =>
    ips.filter((cidr, i) => !contested.has(`${owner}#${i}`) && !taken.overlaps(cidr)),
  );
}

/** `owner#index` of every prefix that overlaps a prefix of another owner. */
function contestedPrefixes(prefixes: readonly (readonly Cidr[])[]): Set<string> {
  interface Claim {
    readonly id: string;
    readonly owner: number;
    readonly start: bigint;
    readonly end: bigint;
  }
  const contested = new Set<string>();
  for (const family of [4, 6] as const) {
    const claims: Claim[] = [];
    prefixes.forEach((ips, owner) =>
      ips.forEach((cidr, i) => {
        if (cidr.family === family) claims.push({ id: `${owner}#${i}`, owner, ...rangeOf(cidr) });
      }),
    );
    // Outer prefixes first: prefixes nest or are disjoint, so after popping the ones that ended
    // before a prefix starts, the stack holds exactly the prefixes that contain it.
    claims.sort((a, b) => (a.start !== b.start ? (a.start < b.start ? -1 : 1) : a.end > b.end ? -1 : a.end < b.end ? 1 : 0));
    const stack: Claim[] = [];
    for (const claim of claims) {
      while (stack.length > 0 && (stack[stack.length - 1] as Claim).end < claim.start) stack.pop();
      for (const outer of stack) {
        if (outer.owner === claim.owner) continue;
        contested.add(outer.id);
        contested.add(claim.id);
      }
      stack.push(claim);
    }
  }
  return contested;
}
