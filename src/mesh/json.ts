// The topology as data (`wirelane topology -o json`): IPs as strings, absent values as null.
import { formatEndpoint } from '../model/endpoint.js';
import { type Cidr, formatCidr, formatIp } from '../model/ip.js';
import type { Segment, Topology } from './types.js';

export interface SegmentJSON {
  key: string;
  location: string;
  leader: string;
  nodes: string[];
  /** `wireguardIPs[0]`. */
  wireguardIP: string;
  endpoint: string;
  publicKey: string;
  allowedIPs: string[];
  allowedLocationIPs: string[];
  persistentKeepalive: number;
  /** One per --subnet (family); last, so the fields before keep their order. */
  wireguardIPs: string[];
}

export interface PeerJSON {
  name: string;
  publicKey: string;
  endpoint: string | null;
  allowedIPs: string[];
  persistentKeepalive: number;
}

export interface RouteJSON {
  dst: string;
  gw: string | null;
  dev: string;
  src: string | null;
  onlink: boolean;
  table: 'main' | number;
}

export interface RuleJSON {
  from: string | null;
  to: string | null;
  iif: string | null;
  table: number;
}

export interface TopologyJSON {
  node: string;
  leader: boolean;
  /** `wireguardCIDRs[0]`. */
  wireguardCIDR: string;
  wireguardCIDRs: string[];
  granularity: string;
  /** `subnets[0]`. */
  subnet: string;
  subnets: string[];
  segments: SegmentJSON[];
  peers: PeerJSON[];
  routes: RouteJSON[];
  rules: RuleJSON[];
}

const cidrs = (list: readonly Cidr[]): string[] => list.map(formatCidr);

export function segmentToJSON(s: Segment): SegmentJSON {
  return {
    key: s.key,
    location: s.location,
    leader: s.leader.name,
    nodes: s.nodes.map((n) => n.name),
    wireguardIP: formatIp(s.wireguardIP),
    endpoint: formatEndpoint(s.endpoint),
    publicKey: s.publicKey,
    allowedIPs: cidrs(s.allowedIPs),
    allowedLocationIPs: cidrs(s.allowedLocationIPs),
    persistentKeepalive: s.persistentKeepalive,
    wireguardIPs: s.wireguardIPs.map(formatIp),
  };
}

export function topologyToJSON(t: Topology): TopologyJSON {
  return {
    node: t.node.name,
    leader: t.leader,
    wireguardCIDR: formatCidr(t.wireguardCIDR),
    wireguardCIDRs: cidrs(t.wireguardCIDRs),
    granularity: t.options.granularity,
    subnet: formatCidr(t.options.subnets[0] as Cidr),
    subnets: cidrs(t.options.subnets),
    segments: t.segments.map(segmentToJSON),
    peers: t.peers.map((p) => ({
      name: p.name,
      publicKey: p.publicKey,
      endpoint: p.endpoint === undefined ? null : formatEndpoint(p.endpoint),
      allowedIPs: cidrs(p.allowedIPs),
      persistentKeepalive: p.persistentKeepalive,
    })),
    routes: t.routes.map((r) => ({
      dst: formatCidr(r.dst),
      gw: r.gw === undefined ? null : formatIp(r.gw),
      dev: r.dev,
      src: r.src === undefined ? null : formatIp(r.src),
      onlink: r.onlink,
      table: r.table,
    })),
    rules: t.rules.map((r) => ({
      from: r.from === undefined ? null : formatCidr(r.from),
      to: r.to === undefined ? null : formatCidr(r.to),
      iif: r.iif ?? null,
      table: r.table,
    })),
  };
}
