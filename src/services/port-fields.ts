// What a change of each field of the service map means for the data paths: one decision per field,
// which the compiler demands (a field added to ServicePort or ServiceMap does not compile until it
// has a row here), and the comparisons that follow those decisions.
import type { Cidr, Family, Ip } from '../model/ip.js';
import type { ServiceBackend, ServiceMap, ServicePort } from '../model/service.js';

/**
 * How each ServicePort field counts when two ports of one key are compared:
 * - 'key': part of servicePortKey, so never different (a change is one port removed, one added);
 * - 'compared': some data path programs it, so a change rewrites the port;
 * - 'ignored': no data path programs it per port.
 * samePort compares exactly the 'compared' rows, written out for speed (a loop over the rows ran
 * twice as slow on a recomputed 10,000-port map); test/services/changes.test.ts holds it to them.
 */
export const PORT_FIELDS = {
  service: 'key',
  portName: 'key',
  protocol: 'key',
  clusterIPs: 'compared',
  port: 'compared',
  nodePort: 'compared',
  externalIPs: 'compared',
  loadBalancerIPs: 'compared',
  // The eBPF maps hold only whether there are any (a flag); iptables rules and the tc data path hold each range.
  loadBalancerSourceRanges: 'compared',
  sessionAffinityTimeoutSeconds: 'compared',
  // Served by the agent's health check servers, which read the whole map at every sync.
  healthCheckNodePort: 'ignored',
  externalPolicyLocal: 'compared',
  internalPolicyLocal: 'compared',
  clusterEndpoints: 'compared',
  internalEndpoints: 'compared',
  externalEndpoints: 'compared',
} as const satisfies { readonly [K in keyof ServicePort]-?: 'key' | 'compared' | 'ignored' };

/** How each ServiceMap field counts: servicePorts port by port (PORT_FIELDS), the others map-wide. */
export const MAP_FIELDS = {
  node: 'compared',
  // Also decides the families NodePorts are served in, and so every NodePort port's frontends.
  nodePortAddresses: 'compared',
  clusterCIDRs: 'compared',
  servicePorts: 'ports',
} as const satisfies { readonly [K in keyof ServiceMap]-?: 'compared' | 'ports' };

export type MapField = { [K in keyof typeof MAP_FIELDS]: (typeof MAP_FIELDS)[K] extends 'compared' ? K : never }[keyof typeof MAP_FIELDS];

/** Two ports of one key are the same to every data path. A port object handed over again is not looked into. */
export function samePort(a: ServicePort, b: ServicePort): boolean {
  if (a === b) return true;
  return (
    a.port === b.port &&
    a.nodePort === b.nodePort &&
    a.sessionAffinityTimeoutSeconds === b.sessionAffinityTimeoutSeconds &&
    a.externalPolicyLocal === b.externalPolicyLocal &&
    a.internalPolicyLocal === b.internalPolicyLocal &&
    sameIps(a.clusterIPs, b.clusterIPs) &&
    sameIps(a.externalIPs, b.externalIPs) &&
    sameIps(a.loadBalancerIPs, b.loadBalancerIPs) &&
    sameCidrs(a.loadBalancerSourceRanges, b.loadBalancerSourceRanges) &&
    sameBackends(a.clusterEndpoints, b.clusterEndpoints) &&
    sameBackends(a.internalEndpoints, b.internalEndpoints) &&
    sameBackends(a.externalEndpoints, b.externalEndpoints)
  );
}

/** Which map-wide fields differ between two maps (every 'compared' row of MAP_FIELDS). */
export function changedMapFields(a: ServiceMap, b: ServiceMap): Record<MapField, boolean> {
  return {
    node: a.node !== b.node,
    nodePortAddresses: !sameIps(a.nodePortAddresses, b.nodePortAddresses),
    clusterCIDRs: !sameCidrs(a.clusterCIDRs, b.clusterCIDRs),
  };
}

/** The families this node serves NodePorts in. */
export function nodePortFamilies(map: ServiceMap): Set<Family> {
  return new Set(map.nodePortAddresses.map((ip) => ip.family));
}

// Element by element, no generic deep equality: these run for every port of a recomputed map.
function sameIps(a: readonly Ip[], b: readonly Ip[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i]!.family !== b[i]!.family || a[i]!.value !== b[i]!.value) return false;
  return true;
}

function sameCidrs(a: readonly Cidr[], b: readonly Cidr[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x.family !== y.family || x.addr !== y.addr || x.bits !== y.bits) return false;
  }
  return true;
}

function sameBackends(a: readonly ServiceBackend[], b: readonly ServiceBackend[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x.port !== y.port || x.local !== y.local || x.ip.family !== y.ip.family || x.ip.value !== y.ip.value) return false;
  }
  return true;
}
