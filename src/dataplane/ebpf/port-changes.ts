// Which service ports changed since the last apply, as far as the eBPF maps are concerned. The
// generic diffServiceMaps costs ~100 ms at 10,000 ports × 10 endpoints when the map is recomputed
// from scratch (every object new); a one-endpoint change must reach the maps in a few ms, so this
// compares only the fields the maps hold, field by field, and skips ports whose object is reused.
import type { Family, Ip } from '../../model/ip.js';
import { type ServiceBackend, type ServiceMap, type ServicePort, servicePortKey } from '../../model/service.js';

/** The ports as last applied, in the map's order, with their keys. */
export interface AppliedPorts {
  readonly keys: readonly string[];
  readonly ports: readonly ServicePort[];
}

export interface PortChanges {
  /** Added or changed: their indices in `applied` (numbers, not a [key, port] pair each: 10,000 at a full sync). */
  readonly updated: readonly number[];
  readonly removed: readonly string[];
  /** `next`'s ports, for the next comparison. */
  readonly applied: AppliedPorts;
}

/**
 * `previous` undefined: everything is new. `nodePortFamiliesChanged`: every port with a NodePort
 * counts as changed. Ports are compared position by position first (the map is sorted, so an
 * unchanged port is usually at the same index, often the same object: no key to build, nothing to
 * hash); only when the ports do not line up are they matched by key.
 */
export function changedPorts(previous: AppliedPorts | undefined, next: ServiceMap, nodePortFamiliesChanged: boolean): PortChanges {
  const ports = next.servicePorts;
  const keys: string[] = new Array<string>(ports.length);
  const updated: number[] = [];
  const changed = (was: ServicePort, p: ServicePort) => (nodePortFamiliesChanged && (p.nodePort !== undefined || was.nodePort !== undefined)) || !sameForMaps(was, p);
  let aligned = previous !== undefined && previous.ports.length === ports.length;
  for (let i = 0; i < ports.length && aligned; i++) {
    const p = ports[i]!;
    const was = previous!.ports[i]!;
    const key = p === was ? previous!.keys[i]! : servicePortKey(p);
    if (key !== previous!.keys[i]) aligned = false;
    keys[i] = key;
    if (aligned && changed(was, p)) updated.push(i);
  }
  if (aligned) return { updated, removed: [], applied: { keys, ports } };

  const before = new Map<string, ServicePort>();
  if (previous !== undefined) previous.keys.forEach((key, i) => before.set(key, previous.ports[i]!));
  updated.length = 0;
  for (let i = 0; i < ports.length; i++) {
    const p = ports[i]!;
    const key = servicePortKey(p);
    keys[i] = key;
    const was = before.get(key);
    if (was === undefined || changed(was, p)) updated.push(i);
    before.delete(key);
  }
  return { updated, removed: [...before.keys()], applied: { keys, ports } };
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
