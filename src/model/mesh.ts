// The mesh's view of the cluster: nodes and peers after their annotations have been parsed.
import type { Endpoint } from './endpoint.js';
import { type Cidr, type Family, type Ip, ipOf } from './ip.js';
import type { WireGuardKey } from './key.js';

/** How nodes are grouped into WireGuard segments. */
export type Granularity = 'location' | 'full' | 'cross';

/** Encapsulation of traffic between nodes of one location. */
export type Encapsulation = 'never' | 'crosssubnet' | 'always';

export const ENCAPSULATIONS: readonly Encapsulation[] = ['never', 'crosssubnet', 'always'];

export interface MeshNode {
  readonly name: string;
  /** '' when the node has neither the location annotation nor the topology label. */
  readonly location: string;
  readonly endpoint?: Endpoint;
  /** The node's private address with its prefix (e.g. 192.168.0.1/24). */
  readonly internalIP?: Cidr;
  /**
   * On a dual-stack underlay, its private address of the other family than `internalIP` (e.g.
   * fd31::11/64): routes to the node's pods of that family go via it. Encapsulation, segments and
   * leaders are `internalIP`'s alone.
   */
  readonly otherInternalIP?: Cidr;
  readonly publicKey?: WireGuardKey;
  /** One per family at most, as Kubernetes allots them. */
  readonly podCIDRs: readonly Cidr[];
  /** Unix seconds of the agent's last heartbeat; undefined when never seen. */
  readonly lastSeen?: number;
  readonly leader: boolean;
  /** Seconds; 0 disables keepalive. */
  readonly persistentKeepalive: number;
  readonly allowedLocationIPs: readonly Cidr[];
  /** Endpoints this node's WireGuard device saw roaming peers at, keyed by public key. */
  readonly discoveredEndpoints: ReadonlyMap<WireGuardKey, Endpoint>;
  /** The WireGuard addresses (one per family) the node's agent reported (informational; allocation is computed). */
  readonly wireguardIPs?: readonly Cidr[];
  /** The granularity the node's agent runs with (informational). */
  readonly granularity?: Granularity;
  /** Its agent found its WireGuard tunnels broken while it led (mesh/tunnel-health.ts): not elected while another member is not. */
  readonly tunnelsBroken?: boolean;
}

/** A WireGuard host outside the cluster. */
export interface MeshPeer {
  readonly name: string;
  readonly allowedIPs: readonly Cidr[];
  readonly publicKey: WireGuardKey;
  readonly endpoint?: Endpoint;
  readonly persistentKeepalive: number;
  readonly presharedKey?: WireGuardKey;
}

/** A node's internal IPs: `internalIP`, then `otherInternalIP`. */
export function internalIPsOf(node: MeshNode): Cidr[] {
  return [...(node.internalIP ? [node.internalIP] : []), ...(node.otherInternalIP ? [node.otherInternalIP] : [])];
}

/** A node's internal IP of one family, if it has one. */
export function internalIPOf(node: MeshNode, family: Family): Ip | undefined {
  const cidr = internalIPsOf(node).find((c) => c.family === family);
  return cidr && ipOf(cidr);
}
