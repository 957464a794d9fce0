// The mesh's view of the cluster: nodes and peers after their annotations have been parsed.
import type { Endpoint } from './endpoint.js';
import type { Cidr } from './ip.js';
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
  /** The WireGuard address the node's agent reported (informational; allocation is computed). */
  readonly wireguardIP?: Cidr;
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
