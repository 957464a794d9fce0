// IP addresses and prefixes, parsed once into numbers so nothing downstream re-parses strings.
import { isIPv4, isIPv6 } from 'node:net';

export type Family = 4 | 6;

export interface Ip {
  readonly family: Family;
  readonly value: bigint;
}

/** A prefix as written: `addr` may have host bits set (an interface address like 192.168.0.1/24). */
export interface Cidr {
  readonly family: Family;
  readonly addr: bigint;
  readonly bits: number;
}

export class ParseError extends Error {
  override readonly name = 'ParseError';
}

const WIDTH: Record<Family, number> = { 4: 32, 6: 128 };

export function widthOf(family: Family): number {
  return WIDTH[family];
}

export function parseIp(text: string): Ip {
  if (isIPv4(text)) {
    // Digits and dots only, once isIPv4 said so: one BigInt per address (100,000 endpoints at a first sync).
    let value = 0;
    let octet = 0;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c !== 46) {
        octet = octet * 10 + c - 48;
        continue;
      }
      value = value * 256 + octet;
      octet = 0;
    }
    return { family: 4, value: BigInt(value * 256 + octet) };
  }
  if (isIPv6(text) && !text.includes('%')) return { family: 6, value: parseIPv6(text) };
  throw new ParseError(`"${text}" is not an IP address`);
}

function parseIPv6(text: string): bigint {
  // An embedded IPv4 tail (::ffff:1.2.3.4) becomes two hextets.
  let body = text;
  const lastColon = body.lastIndexOf(':');
  const tail = body.slice(lastColon + 1);
  if (tail.includes('.')) {
    const v4 = parseIp(tail).value;
    body = `${body.slice(0, lastColon + 1)}${(v4 >> 16n).toString(16)}:${(v4 & 0xffffn).toString(16)}`;
  }
  const [head, rest] = body.split('::') as [string, string | undefined];
  const left = head === '' ? [] : head.split(':');
  const right = rest === undefined || rest === '' ? [] : rest.split(':');
  const zeros = rest === undefined ? 0 : 8 - left.length - right.length;
  const hextets = [...left, ...Array<string>(zeros).fill('0'), ...right];
  let value = 0n;
  for (const h of hextets) value = (value << 16n) | BigInt(parseInt(h, 16));
  return value;
}

// Formatting runs for every route and rule compared on every resync (thousands at 1,000 nodes): one
// conversion to Number or hex text, not a BigInt per octet or hextet.
export function formatIp(ip: Ip): string {
  if (ip.family === 4) {
    const v = Number(ip.value);
    return `${v >>> 24}.${(v >>> 16) & 0xff}.${(v >>> 8) & 0xff}.${v & 0xff}`;
  }
  const hex = ip.value.toString(16).padStart(32, '0');
  const hextets: number[] = [];
  for (let i = 0; i < 32; i += 4) hextets.push(parseInt(hex.slice(i, i + 4), 16));
  // RFC 5952: compress the longest run of two or more zero hextets, the first one on ties.
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (hextets[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && hextets[j] === 0) j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j;
  }
  const parts = hextets.map((h) => h.toString(16));
  if (best < 0) return parts.join(':');
  return `${parts.slice(0, best).join(':')}::${parts.slice(best + bestLen).join(':')}`;
}

export function parseCidr(text: string): Cidr {
  const slash = text.indexOf('/');
  if (slash < 0) throw new ParseError(`"${text}" is not a CIDR (no prefix length)`);
  let ip: Ip;
  try {
    ip = parseIp(text.slice(0, slash));
  } catch {
    throw new ParseError(`"${text}" is not a CIDR`);
  }
  const lengthText = text.slice(slash + 1);
  const bits = Number(lengthText);
  if (!/^\d{1,3}$/.test(lengthText) || bits > WIDTH[ip.family]) {
    throw new ParseError(`"${text}" is not a CIDR (bad prefix length)`);
  }
  return { family: ip.family, addr: ip.value, bits };
}

/**
 * `CIDR` or `CIDR,CIDR` of the two families, in the order given (dual-stack annotations and flags);
 * all or nothing.
 */
export function parseCidrPerFamily(text: string): Cidr[] {
  const cidrs = text.split(',').map((part) => parseCidr(part.trim()));
  if (cidrs.length > 2 || (cidrs.length === 2 && cidrs[0]?.family === cidrs[1]?.family)) {
    throw new ParseError(`"${text}" is not one CIDR per family`);
  }
  return cidrs;
}

/** Parses "a.b.c.d" as a host prefix and "a.b.c.d/n" as a prefix. */
export function parseIpOrCidr(text: string): Cidr {
  return text.includes('/') ? parseCidr(text) : hostCidr(parseIp(text));
}

export function formatCidr(cidr: Cidr): string {
  return `${formatIp(ipOf(cidr))}/${cidr.bits}`;
}

export function ipOf(cidr: Cidr): Ip {
  return { family: cidr.family, value: cidr.addr };
}

export function hostCidr(ip: Ip): Cidr {
  return { family: ip.family, addr: ip.value, bits: WIDTH[ip.family] };
}

// Netmasks per family and prefix length, computed once: masking is a hot path of the mesh core at
// thousands of nodes, and building a bigint mask per call dominated its profile.
const MASKS: Record<Family, readonly bigint[]> = { 4: masksOf(4), 6: masksOf(6) };

function masksOf(family: Family): bigint[] {
  const width = BigInt(WIDTH[family]);
  const all = (1n << width) - 1n;
  return Array.from({ length: Number(width) + 1 }, (_, bits) => all ^ ((1n << (width - BigInt(bits))) - 1n));
}

export function maskOf(family: Family, bits: number): bigint {
  return MASKS[family][bits] as bigint;
}

/** The network a prefix names, host bits cleared; the same object when they already are. */
export function networkOf(cidr: Cidr): Cidr {
  const addr = cidr.addr & maskOf(cidr.family, cidr.bits);
  return addr === cidr.addr ? cidr : { family: cidr.family, addr, bits: cidr.bits };
}

export function sizeOf(cidr: Cidr): bigint {
  return 1n << BigInt(WIDTH[cidr.family] - cidr.bits);
}

export function containsIp(cidr: Cidr, ip: Ip): boolean {
  if (cidr.family !== ip.family) return false;
  const mask = maskOf(cidr.family, cidr.bits);
  return (cidr.addr & mask) === (ip.value & mask);
}

export function overlaps(a: Cidr, b: Cidr): boolean {
  if (a.family !== b.family) return false;
  const mask = maskOf(a.family, Math.min(a.bits, b.bits));
  return (a.addr & mask) === (b.addr & mask);
}

export function equalIp(a: Ip, b: Ip): boolean {
  return a.family === b.family && a.value === b.value;
}

export function equalCidr(a: Cidr, b: Cidr): boolean {
  return a.family === b.family && a.addr === b.addr && a.bits === b.bits;
}

/** Orders IPv4 before IPv6, then by address, then by prefix length. */
export function compareCidr(a: Cidr, b: Cidr): number {
  if (a.family !== b.family) return a.family - b.family;
  if (a.addr !== b.addr) return a.addr < b.addr ? -1 : 1;
  return a.bits - b.bits;
}

const PRIVATE = ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', 'fc00::/7'].map(parseCidr);

/** RFC 1918 or IPv6 ULA: an address that is not reachable from other sites. */
export function isPrivateIp(ip: Ip): boolean {
  return PRIVATE.some((range) => containsIp(range, ip));
}

/** The n-th address of a network (0 is the network address itself). */
export function nthAddress(cidr: Cidr, n: bigint): Ip {
  return { family: cidr.family, value: networkOf(cidr).addr + n };
}
