// What the service map is computed from: Services and EndpointSlices as sources/ decodes them (every
// field checked and defaulted the way the API server would), and the node doing the computing.
import type { Cidr, Family, Ip } from '../model/ip.js';
import type { Protocol } from '../model/service.js';

export type ServiceType = 'ClusterIP' | 'NodePort' | 'LoadBalancer' | 'ExternalName';

export const SERVICE_TYPES: readonly ServiceType[] = ['ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName'];

export type TrafficPolicy = 'Cluster' | 'Local';

/** One entry of `spec.ports`. targetPort is deliberately absent: the EndpointSlice port is the truth. */
export interface ServicePortSpec {
  /** '' for the single unnamed port. */
  readonly name: string;
  readonly protocol: Protocol;
  readonly port: number;
  /** Absent when none was allocated (0), or the type has none. */
  readonly nodePort?: number;
}

/** One `status.loadBalancer.ingress` entry that has an IP (hostname-only entries are dropped). */
export interface LoadBalancerIngress {
  readonly ip: Ip;
  /** Proxy: the load balancer delivers to the node itself, so the IP must not be captured here. */
  readonly ipMode: 'VIP' | 'Proxy';
}

export interface Service {
  readonly namespace: string;
  readonly name: string;
  readonly type: ServiceType;
  /** `clusterIP: None`. */
  readonly headless: boolean;
  /** `spec.clusterIPs` (or `spec.clusterIP`), primary family first; empty when headless or unallocated. */
  readonly clusterIPs: readonly Ip[];
  readonly ports: readonly ServicePortSpec[];
  readonly externalIPs: readonly Ip[];
  /** sessionAffinity ClientIP with its timeout; absent for None. */
  readonly sessionAffinityTimeoutSeconds?: number;
  /** The legacy value `Global` is decoded as Cluster. */
  readonly externalTrafficPolicy: TrafficPolicy;
  readonly internalTrafficPolicy: TrafficPolicy;
  readonly healthCheckNodePort?: number;
  readonly loadBalancerSourceRanges: readonly Cidr[];
  readonly loadBalancerIngress: readonly LoadBalancerIngress[];
  /** The `service.kubernetes.io/service-proxy-name` label: the proxy this Service asks for. */
  readonly proxyName?: string;
}

/** One `ports` entry of a slice; entries without a port number are dropped, as kube-proxy does. */
export interface SlicePort {
  readonly name: string;
  readonly protocol: Protocol;
  readonly port: number;
}

export interface SliceEndpoint {
  /**
   * The first of its addresses: the others are the same pod's by the API's contract, and kube-proxy
   * uses the first only (all are checked to be of the slice's family).
   */
  readonly address: Ip;
  /** nil decodes as true. */
  readonly ready: boolean;
  /** nil decodes as `ready`. */
  readonly serving: boolean;
  /** nil decodes as false. */
  readonly terminating: boolean;
  readonly nodeName: string | undefined;
  /** `hints.forZones[].name`; empty when the endpoint has no hint. */
  readonly zoneHints: readonly string[];
}

/** An IPv4 or IPv6 slice (FQDN slices are never decoded: no proxy can use them). */
export interface EndpointSlice {
  readonly namespace: string;
  readonly name: string;
  /** The `kubernetes.io/service-name` label: the Service (in the same namespace) it belongs to. */
  readonly service: string;
  readonly family: Family;
  readonly ports: readonly SlicePort[];
  readonly endpoints: readonly SliceEndpoint[];
  /**
   * Unix ms of its `endpoints.kubernetes.io/last-change-trigger-time` annotation, for the network
   * programming latency only (the service map never reads it); absent when missing or malformed.
   */
  readonly triggeredAt?: number;
}

/** The node the map is computed for. */
export interface ServiceNode {
  readonly name: string;
  /** Its `topology.kubernetes.io/zone` label, for topology hints; absent when unlabelled. */
  readonly zone?: string;
  /** Every address NodePorts may be served on (before --nodeport-addresses narrows them). */
  readonly addresses: readonly Ip[];
}

export interface ServiceMapInput {
  readonly services: readonly Service[];
  readonly slices: readonly EndpointSlice[];
  readonly node: ServiceNode;
  /** Every pod CIDR of the cluster. */
  readonly clusterCIDRs: readonly Cidr[];
}
