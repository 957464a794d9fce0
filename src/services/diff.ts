// What changed between two service maps, by service port: data paths rewrite only those (kube-proxy's
// partial syncs). One pass over each map: O(ports + endpoints).
import { type ServiceMap, type ServicePort, servicePortKey } from '../model/service.js';

export interface ServiceMapDiff {
  /** servicePortKey of each port only in the new map, in the new map's order. */
  readonly added: readonly string[];
  /** In both maps, with anything different (frontends, policies, endpoints...), in the new map's order. */
  readonly changed: readonly string[];
  /** Only in the old map, in the old map's order. */
  readonly removed: readonly string[];
}

/** `old` undefined (nothing programmed yet) makes every port added. */
export function diffServiceMaps(old: ServiceMap | undefined, next: ServiceMap): ServiceMapDiff {
  const before = new Map<string, ServicePort>((old?.servicePorts ?? []).map((p) => [servicePortKey(p), p]));
  // Map-wide fields reach into every port's rules: the node (which endpoints are local), the cluster
  // CIDRs (masquerade decisions) and the NodePort addresses (only ports that have a NodePort).
  const allChanged = old !== undefined && (old.node !== next.node || !sameData(old.clusterCIDRs, next.clusterCIDRs));
  const nodePortsChanged = old !== undefined && !sameData(old.nodePortAddresses, next.nodePortAddresses);
  const added: string[] = [];
  const changed: string[] = [];
  const kept = new Set<string>();
  for (const p of next.servicePorts) {
    const key = servicePortKey(p);
    const was = before.get(key);
    if (was === undefined) {
      added.push(key);
      continue;
    }
    kept.add(key);
    const nodePortMoved = nodePortsChanged && (p.nodePort !== undefined || was.nodePort !== undefined);
    // Generic deep equality so a field added to ServicePort later is compared without touching this.
    if (allChanged || nodePortMoved || !sameData(was, p)) changed.push(key);
  }
  const removed = [...before.keys()].filter((key) => !kept.has(key));
  return { added, changed, removed };
}

// Structural equality of plain data (objects, arrays, strings, numbers, bigints, booleans). Generic
// so that a field added to ServicePort later is compared without touching this; hand-written
// because node:util's isDeepStrictEqual took ~230 ms for 10,000 ports × 10 endpoints, this ~50 ms.
function sameData(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!sameData(a[i], b[i])) return false;
    return true;
  }
  const x = a as Record<string, unknown>;
  const y = b as Record<string, unknown>;
  // for-in without allocating key arrays: this loop runs millions of times at 10,000 services.
  let count = 0;
  for (const k in x) {
    if (!Object.hasOwn(y, k) || !sameData(x[k], y[k])) return false;
    count++;
  }
  for (const _ in y) count--;
  return count === 0;
}
