// The service map: what this node must program for Kubernetes Services, whatever the data path
// (eBPF, iptables or userspace proxy sockets). Computed by services/ (pure), consumed by dataplanes.
import type { Cidr, Family, Ip } from './ip.js';

export type Protocol = 'TCP' | 'UDP' | 'SCTP';

export const PROTOCOLS: readonly Protocol[] = ['TCP', 'UDP', 'SCTP'];

/** One address a service port forwards to. */
export interface ServiceBackend {
  readonly ip: Ip;
  readonly port: number;
  /** On this node: Local traffic policies keep to these, and they need no SNAT to return. */
  readonly local: boolean;
}

/** One port of one Service, with everything each data path needs to forward it. */
export interface ServicePort {
  /** `namespace/name`. */
  readonly service: string;
  /** The Service port's name; '' for a single unnamed port. */
  readonly portName: string;
  readonly protocol: Protocol;
  /** Every `spec.clusterIPs` entry; each family is served on its own (IPv4 to IPv4 backends). */
  readonly clusterIPs: readonly Ip[];
  readonly port: number;
  readonly nodePort?: number;
  readonly externalIPs: readonly Ip[];
  /** `status.loadBalancer.ingress[].ip`, except those with `ipMode: Proxy`. */
  readonly loadBalancerIPs: readonly Ip[];
  /** Empty: any source may reach the load-balancer IPs. */
  readonly loadBalancerSourceRanges: readonly Cidr[];
  /** ClientIP affinity; undefined for none. */
  readonly sessionAffinityTimeoutSeconds?: number;
  readonly healthCheckNodePort?: number;
  /** externalTrafficPolicy: Local. */
  readonly externalPolicyLocal: boolean;
  /** internalTrafficPolicy: Local. */
  readonly internalPolicyLocal: boolean;
  /**
   * Every usable endpoint (ready, else serving-and-terminating; topology hints applied). Local
   * policies short-circuit pod- and host-originated traffic to external addresses here, as
   * kube-proxy does.
   */
  readonly clusterEndpoints: readonly ServiceBackend[];
  /** What ClusterIP traffic may reach from this node (all, or local ones under internal Local). */
  readonly internalEndpoints: readonly ServiceBackend[];
  /** What NodePort, ExternalIP and LoadBalancer traffic may reach (all, or local under external Local). */
  readonly externalEndpoints: readonly ServiceBackend[];
}

export interface ServiceMap {
  readonly node: string;
  /** The addresses NodePorts are served on (the node's own, narrowed by --nodeport-addresses). */
  readonly nodePortAddresses: readonly Ip[];
  /** Every pod CIDR of the cluster: traffic from elsewhere is masqueraded on its way to a backend. */
  readonly clusterCIDRs: readonly Cidr[];
  /** Sorted by service, then port name, then protocol. */
  readonly servicePorts: readonly ServicePort[];
}

/** A stable identity for a service port, e.g. `default/dns:udp-dns/UDP`. */
export function servicePortKey(p: Pick<ServicePort, 'service' | 'portName' | 'protocol'>): string {
  // Joined, not a template: a template's string is a rope of its parts, ~90 B more per key held.
  return [p.service, ':', p.portName, '/', p.protocol].join('');
}

/**
 * What to do with traffic that has no endpoint to go to: REJECT when the service has none at all
 * (clients fail fast), DROP when only the traffic policy rules the others out (kube-proxy's choice:
 * a load balancer's health check then moves traffic to another node).
 */
export function noEndpointAction(p: ServicePort, endpoints: readonly ServiceBackend[], family?: Family): 'forward' | 'reject' | 'drop' {
  const ofFamily = (e: ServiceBackend) => family === undefined || e.ip.family === family;
  if (endpoints.some(ofFamily)) return 'forward';
  // Dual-stack: each family is its own proxy, as in kube-proxy; IPv6 without IPv6 endpoints rejects.
  return p.clusterEndpoints.some(ofFamily) ? 'drop' : 'reject';
}
