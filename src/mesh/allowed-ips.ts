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
