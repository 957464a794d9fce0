// The static forwarding state that lets a learning-free VXLAN device carry IP to a peer's
// internal IP (see tunnel-device.ts for the whole scheme): per peer one FDB entry
// (peer MAC → peer underlay IP) and a permanent neighbour entry per internal IP (peer internal IP →
// peer MAC; on a dual-stack underlay one per family, so the tunnel carries both).
// Pure: it computes the entries and the batch lines that reconcile them.
import { createHash } from 'node:crypto';
import { formatIp, type Ip } from '../../model/ip.js';
import type { BatchLine } from '../../host/batch.js';
import type { WriteFailure } from '../partial-apply.js';

export interface TunnelMember {
  /** The address the mesh routes through the tunnel point at (`via <internalIP> dev <tunnel>`). */
  readonly internalIP: Ip;
  /** Its internal IP of the other family, routed through the tunnel to the same VTEP. */
  readonly otherInternalIP?: Ip;
  /** Where that node's encapsulated packets are sent. */
  readonly underlayIP: Ip;
}

export interface TunnelDesired {
  readonly localUnderlayIP: Ip;
  /** The other nodes of the location; an entry for the local node itself is ignored. */
  readonly members: readonly TunnelMember[];
}

/**
 * The VXLAN MAC of the node whose underlay address is `ip`, so every node computes every other
 * node's MAC without coordination. 02: locally administered unicast; 57: 'W'. An IPv4 address
 * fills the other four bytes exactly (unique); an IPv6 one is hashed into them.
 */
export function vxlanMacOf(ip: Ip): string {
  const tail =
    ip.family === 4
      ? Buffer.from([Number((ip.value >> 24n) & 0xffn), Number((ip.value >> 16n) & 0xffn), Number((ip.value >> 8n) & 0xffn), Number(ip.value & 0xffn)])
      : createHash('sha256').update(Buffer.from(ip.value.toString(16).padStart(32, '0'), 'hex')).digest().subarray(0, 4);
  return ['02', '57', ...[...tail].map((b) => b.toString(16).padStart(2, '0'))].join(':');
}

export interface Forwarding {
  /** MAC → underlay IP. */
  readonly fdb: ReadonlyMap<string, string>;
  /** Internal IP → MAC. */
  readonly neighbours: ReadonlyMap<string, string>;
  readonly rejected: readonly WriteFailure[];
}

export function forwardingOf(desired: TunnelDesired): Forwarding {
  const local = formatIp(desired.localUnderlayIP);
  const fdb = new Map<string, string>();
  const neighbours = new Map<string, string>();
  const rejected: WriteFailure[] = [];
  for (const member of desired.members) {
    const underlay = formatIp(member.underlayIP);
    const internal = formatIp(member.internalIP);
    const what = `tunnel member ${internal} (underlay ${underlay})`;
    if (underlay === local) continue;
    // One VXLAN socket speaks one underlay family: the one of the local address.
    if (member.underlayIP.family !== desired.localUnderlayIP.family) {
      rejected.push({ what, reason: `field underlayIP: IPv${member.underlayIP.family}, but the local underlay address ${local} is IPv${desired.localUnderlayIP.family}` });
      continue;
    }
    const mac = vxlanMacOf(member.underlayIP);
    const addresses: [field: string, ip: string][] = [['internalIP', internal], ...(member.otherInternalIP ? [['otherInternalIP', formatIp(member.otherInternalIP)] as [string, string]] : [])];
    const taken = addresses.find(([, ip]) => (neighbours.get(ip) ?? mac) !== mac);
    if (taken !== undefined) {
      rejected.push({ what, reason: `field ${taken[0]}: another member has the same internal IP` });
      continue;
    }
    fdb.set(mac, underlay);
    for (const [, ip] of addresses) neighbours.set(ip, mac);
  }
  return { fdb, neighbours, rejected };
}

/** An FDB entry as `bridge -j fdb show dev DEV` lists it. */
export interface FdbEntry {
  readonly mac: string;
  readonly dst: string | undefined;
  readonly permanent: boolean;
}

/** A neighbour entry as `ip -j neigh show dev DEV` lists it. */
export interface NeighbourEntry {
  readonly ip: string;
  readonly mac: string | undefined;
  readonly permanent: boolean;
}

export interface ForwardingWrites {
  readonly fdb: readonly BatchLine[];
  readonly neighbours: readonly BatchLine[];
}

/**
 * Every FDB entry on the device is the agent's (learning is off). Of the neighbours only the
 * permanent ones are: others are the kernel's own and age out by themselves.
 */
export function planForwarding(device: string, wanted: Forwarding, fdb: readonly FdbEntry[], neighbours: readonly NeighbourEntry[]): ForwardingWrites {
  const fdbLines: BatchLine[] = [];
  const haveFdb = new Map<string, string>();
  for (const entry of fdb) {
    const mac = entry.mac.toLowerCase();
    if (entry.permanent && entry.dst !== undefined && wanted.fdb.get(mac) === entry.dst && !haveFdb.has(mac)) haveFdb.set(mac, entry.dst);
    else fdbLines.push(['fdb', 'del', mac, 'dev', device, ...(entry.dst === undefined ? [] : ['dst', entry.dst]), 'self']);
  }
  for (const [mac, dst] of wanted.fdb) {
    if (!haveFdb.has(mac)) fdbLines.push(['fdb', 'replace', mac, 'dev', device, 'dst', dst, 'self', 'permanent']);
  }

  const neighbourLines: BatchLine[] = [];
  const haveNeighbours = new Set<string>();
  for (const entry of neighbours) {
    if (!entry.permanent) continue;
    if (wanted.neighbours.get(entry.ip) === entry.mac?.toLowerCase()) haveNeighbours.add(entry.ip);
    else if (!wanted.neighbours.has(entry.ip)) neighbourLines.push(['neigh', 'del', entry.ip, 'dev', device]);
  }
  for (const [ip, mac] of wanted.neighbours) {
    if (!haveNeighbours.has(ip)) neighbourLines.push(['neigh', 'replace', ip, 'lladdr', mac, 'dev', device, 'nud', 'permanent']);
  }
  return { fdb: fdbLines, neighbours: neighbourLines };
}
