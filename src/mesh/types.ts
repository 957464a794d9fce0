// The mesh core's shapes: what it is given (MeshInput, MeshOptions) and what it computes (Topology,
// its Segments and Peers). topology.ts computes one; routes, WireGuard configuration, JSON and the
// graph are read from one. Here each of them imports the shape without importing the computation.
import type { Endpoint } from '../model/endpoint.js';
import type { Cidr, Ip } from '../model/ip.js';
import type { WireGuardKey } from '../model/key.js';
import type { Encapsulation, Granularity, MeshNode, MeshPeer } from '../model/mesh.js';
import type { Route, Rule } from '../model/route.js';
import type { RejectedClaim } from './claims.js';

export interface MeshInput {
  readonly nodes: readonly MeshNode[];
  readonly peers: readonly MeshPeer[];
}

export interface MeshOptions {
  /** The node this topology is computed for. */
  readonly hostname: string;
  readonly granularity: Granularity;
  /**
   * The WireGuard subnets segments get their addresses from, at most one per family (the CLI's
   * default is 10.4.0.0/16 alone); the first is the primary one (`Segment.wireguardIP`).
   */
  readonly subnets: readonly Cidr[];
  /** The WireGuard listen port of this node. */
  readonly port: number;
  readonly encapsulate: Encapsulation;
  /** Route to the pods of this node's own location (off when another CNI already does). */
  readonly local: boolean;
  /** The WireGuard device, e.g. wirelane0. */
  readonly wireguardDevice: string;
  /** The encapsulation tunnel between nodes of one location (IPIP or VXLAN device). */
  readonly tunnelDevice: string;
  /**
   * Whether the tunnel also carries the underlay's other family (VXLAN, an Ethernet tunnel, carries
   * IPv6 over an IPv4 underlay; IPIP carries IPv4 only). Absent: it does not.
   */
  readonly tunnelCarriesBothFamilies?: boolean;
  /** The device holding this node's internal IP: unencapsulated routes to location members use it. */
  readonly underlayDevice: string;
  /** Unix seconds. */
  readonly now: number;
  readonly resyncPeriodSeconds: number;
  /** The cluster's service ranges (--service-cidr): no Peer or location may claim them. */
  readonly serviceCIDRs?: readonly Cidr[];
  /** Claims wider than WIDEST_CLAIM (default routes) are refused unless this is set. */
  readonly allowWideClaims?: boolean;
}

export interface Segment {
  /** `location:<location>` or `node:<name>`. */
  readonly key: string;
  /** Its members' location ('' when none). */
  readonly location: string;
  /** Segments of one underlay group reach each other without WireGuard (see `underlayGroupOf`). */
  readonly group: string;
  /** Sorted by name. */
  readonly nodes: readonly MeshNode[];
  readonly leader: MeshNode;
  /** Its address from the first subnet (`wireguardIPs[0]`). */
  readonly wireguardIP: Ip;
  /** One address per subnet, in the order of `MeshOptions.subnets`. */
  readonly wireguardIPs: readonly Ip[];
  /** The leader's. */
  readonly publicKey: WireGuardKey;
  /** The leader's, or where the local view discovered it when the leader roams. */
  readonly endpoint: Endpoint;
  /** The leader's. */
  readonly persistentKeepalive: number;
  /**
   * The AllowedIPs of its [Peer], in order: per member (by name) its pod CIDRs and internal IPs as
   * host prefixes, then the WireGuard IPs as host prefixes, then `allowedLocationIPs`.
   */
  readonly allowedIPs: readonly Cidr[];
  /** Its members' allowed-location IPs that overlap nothing else in the mesh. */
  readonly allowedLocationIPs: readonly Cidr[];
}

export interface TopologyPeer {
  readonly name: string;
  readonly publicKey: WireGuardKey;
  readonly presharedKey?: WireGuardKey;
  /** Declared, or discovered when the Peer roams. */
  readonly endpoint?: Endpoint;
  readonly persistentKeepalive: number;
  /** Masked; a prefix another Peer (earlier by name) claims is dropped. */
  readonly allowedIPs: readonly Cidr[];
}

export interface Topology {
  readonly options: MeshOptions;
  /** The local node. */
  readonly node: MeshNode;
  /** The local node's segment (one of `segments`). */
  readonly segment: Segment;
  /** Whether the local node leads its segment: only leaders bring their WireGuard device up. */
  readonly leader: boolean;
  /** `wireguardCIDRs[0]`. */
  readonly wireguardCIDR: Cidr;
  /** Per subnet, a leader's WireGuard IP with the subnet's prefix length; the subnet itself on a non-leader. */
  readonly wireguardCIDRs: readonly Cidr[];
  /** All segments, the local one included, sorted by key. */
  readonly segments: readonly Segment[];
  /** Valid Peers sorted by name. */
  readonly peers: readonly TopologyPeer[];
  readonly discoveredEndpoints: ReadonlyMap<WireGuardKey, Endpoint>;
  /** Peer allowed IPs and allowed-location IPs dropped for overlapping what others hold (claims.ts). */
  readonly rejectedClaims: readonly RejectedClaim[];
  readonly routes: readonly Route[];
  readonly rules: readonly Rule[];
}

/** What routes and rules are derived from. */
export type TopologyCore = Omit<Topology, 'routes' | 'rules'>;
