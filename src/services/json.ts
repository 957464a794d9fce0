// The service map as data (`wirelane services -o json`): addresses as strings, endpoints as `ip:port`
// or `[v6]:port`, absent values as null. The first keys are the documented contract; more follow.
import { formatEndpoint } from '../model/endpoint.js';
import { formatCidr, formatIp } from '../model/ip.js';
import type { ServiceBackend, ServiceMap, ServicePort } from '../model/service.js';

export interface ServicePortJSON {
  service: string;
  portName: string;
  protocol: string;
  clusterIPs: string[];
  port: number;
  nodePort: number | null;
  externalIPs: string[];
  loadBalancerIPs: string[];
  sessionAffinityTimeoutSeconds: number | null;
  healthCheckNodePort: number | null;
  /** What ClusterIP traffic may reach from this node. */
  internalEndpoints: string[];
  /** What NodePort, ExternalIP and LoadBalancer traffic may reach. */
  externalEndpoints: string[];
  /** Every usable endpoint, whatever the policies (Local policies short-circuit in-cluster traffic here). */
  clusterEndpoints: string[];
  externalTrafficPolicy: 'Cluster' | 'Local';
  internalTrafficPolicy: 'Cluster' | 'Local';
  loadBalancerSourceRanges: string[];
}

export interface ServiceMapJSON {
  node: string;
  servicePorts: ServicePortJSON[];
  nodePortAddresses: string[];
  clusterCIDRs: string[];
}

/** `ip:port`, `[v6]:port`. */
export function formatBackend(b: Pick<ServiceBackend, 'ip' | 'port'>): string {
  return formatEndpoint({ host: { kind: 'ip', ip: b.ip }, port: b.port });
}

// Lists of strings are sorted as strings, so `sorted(list) == list` holds for any reader; clusterIPs
// keep the Service's order, whose first entry is its primary family.
const sortedStrings = (list: readonly string[]): string[] => [...list].sort();
const backends = (list: readonly ServiceBackend[]): string[] => sortedStrings(list.map(formatBackend));
const ips = (list: ServicePort['externalIPs']): string[] => sortedStrings(list.map(formatIp));

export function servicePortToJSON(p: ServicePort): ServicePortJSON {
  return {
    service: p.service,
    portName: p.portName,
    protocol: p.protocol,
    clusterIPs: p.clusterIPs.map(formatIp),
    port: p.port,
    nodePort: p.nodePort ?? null,
    externalIPs: ips(p.externalIPs),
    loadBalancerIPs: ips(p.loadBalancerIPs),
    sessionAffinityTimeoutSeconds: p.sessionAffinityTimeoutSeconds ?? null,
    healthCheckNodePort: p.healthCheckNodePort ?? null,
    internalEndpoints: backends(p.internalEndpoints),
    externalEndpoints: backends(p.externalEndpoints),
    clusterEndpoints: backends(p.clusterEndpoints),
    externalTrafficPolicy: p.externalPolicyLocal ? 'Local' : 'Cluster',
    internalTrafficPolicy: p.internalPolicyLocal ? 'Local' : 'Cluster',
    loadBalancerSourceRanges: sortedStrings(p.loadBalancerSourceRanges.map(formatCidr)),
  };
}

export function serviceMapToJSON(map: ServiceMap): ServiceMapJSON {
  return {
    node: map.node,
    servicePorts: map.servicePorts.map(servicePortToJSON),
    nodePortAddresses: sortedStrings(map.nodePortAddresses.map(formatIp)),
    clusterCIDRs: sortedStrings(map.clusterCIDRs.map(formatCidr)),
  };
}
