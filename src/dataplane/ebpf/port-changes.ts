// Which service ports changed since the last apply, as far as the eBPF maps are concerned. The
// generic diffServiceMaps costs ~100 ms at 10,000 ports × 10 endpoints when the map is recomputed
// from scratch (every object new); a one-endpoint change must reach the maps in a few ms, so this
// compares only the fields the maps hold, field by field, and skips ports whose object is reused.
import type { Family, Ip } from '../../model/ip.js';
import { type ServiceBackend, type ServiceMap, type ServicePort, servicePortKey } from '../../model/service.js';

export interface PortChanges {
  /** Added or changed: key and the new port. */
  readonly updated: ReadonlyArray<readonly [string, ServicePort]>;
  readonly removed: readonly string[];
  /** Every port of `next` by key, for the next comparison. */
  readonly ports: ReadonlyMap<string, ServicePort>;
}

/** `previous` undefined: everything is new. `nodePortFamiliesChanged`: every port with a NodePort counts as changed. */
export function changedPorts(previous: ReadonlyMap<string, ServicePort> | undefined, next: ServiceMap, nodePortFamiliesChanged: boolean): PortChanges {
  const ports = new Map<string, ServicePort>();
  const updated: Array<readonly [string, ServicePort]> = [];
  for (const p of next.servicePorts) {
    const key = servicePortKey(p);
    ports.set(key, p);
    const was = previous?.get(key);
    if (was === undefined || (nodePortFamiliesChanged && (p.nodePort !== undefined || was.nodePort !== undefined)) || !sameForMaps(was, p)) {
      updated.push([key, p]);
    }
  }
  const removed: string[] = [];
  // Same size and every new key known: nothing can be missing, no need to walk the old map.
  if (previous !== undefined && (previous.size !== ports.size || updated.some(([key]) => !previous.has(key)))) {
    for (const key of previous.keys()) if (!ports.has(key)) removed.push(key);
  }
  return { updated, removed, ports };
}

/** The families this node serves NodePorts on. */
export function nodePortFamilies(map: ServiceMap): Set<Family> {
  return new Set(map.nodePortAddresses.map((ip) => ip.family));
}

function sameForMaps(a: ServicePort, b: ServicePort): boolean {
  if (a === b) return true;
  return (
    a.protocol === b.protocol &&
    a.port === b.port &&
    a.nodePort === b.nodePort &&
    a.sessionAffinityTimeoutSeconds === b.sessionAffinityTimeoutSeconds &&
    a.externalPolicyLocal === b.externalPolicyLocal &&
    a.internalPolicyLocal === b.internalPolicyLocal &&
    (a.loadBalancerSourceRanges.length > 0) === (b.loadBalancerSourceRanges.length > 0) &&
    sameIps(a.clusterIPs, b.clusterIPs) &&
    sameIps(a.externalIPs, b.externalIPs) &&
    sameIps(a.loadBalancerIPs, b.loadBalancerIPs) &&
    sameBackends(a.clusterEndpoints, b.clusterEndpoints) &&
    sameBackends(a.internalEndpoints, b.internalEndpoints) &&
    sameBackends(a.externalEndpoints, b.externalEndpoints)
  );
}

function sameIps(a: readonly Ip[], b: readonly Ip[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i]!.family !== b[i]!.family || a[i]!.value !== b[i]!.value) return false;
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
