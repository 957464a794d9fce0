// Pure: the service frontends one service port becomes in wl_services, each with the backends its
// readers may reach (see bpf/include/wirelane_maps.h for who reads which scope).
import type { Family, Ip } from '../../model/ip.js';
import { type ServiceBackend, type ServicePort, noEndpointAction, servicePortKey } from '../../model/service.js';
import { Scope, type ScopeValue, ServiceFlag, writeServiceKey } from './codec.js';

/**
 * Which endpoint list a frontend serves, and so which service id (affinity and reverse translation
 * are per id): ClusterIPs the internal endpoints, external addresses seen from this node all cluster
 * endpoints (kube-proxy's short-circuit), external addresses from outside the external endpoints.
 */
export type BackendSet = 'internal' | 'cluster' | 'external';

export interface DesiredFrontend {
  /** The slot-0 key bytes as a latin1 string: the frontend's identity, in the maps and here. */
  readonly id: string;
  readonly addr: Ip | undefined;
  readonly port: number;
  readonly family: Family;
  readonly scope: ScopeValue;
  /** The service id's group: servicePortKey, family and backend set. */
  readonly group: string;
  readonly flags: number;
  readonly affinityTimeout: number;
  /** Of the frontend's family, each address:port once. */
  readonly backends: readonly ServiceBackend[];
}

const KEY_SCRATCH = Buffer.alloc(24);

/** The identity of a frontend: its slot-0 key as a string (a Map key that costs no formatting). */
export function frontendId(addr: Ip | undefined, port: number, protocol: ServicePort['protocol'], family: Family, scope: ScopeValue): string {
  writeServiceKey(KEY_SCRATCH, 0, { addr, port, slot: 0, protocol, family, scope });
  return KEY_SCRATCH.toString('latin1');
}

function ofFamily(endpoints: readonly ServiceBackend[], family: Family): ServiceBackend[] {
  const seen = new Set<string>();
  const out: ServiceBackend[] = [];
  for (const e of endpoints) {
    if (e.ip.family !== family) continue;
    const id = `${e.ip.value}/${e.port}`;
    if (seen.has(id)) continue;
    seen.add(id);
    out.push(e);
  }
  return out;
}

/**
 * Every frontend of `p`: per family, its ClusterIPs (internal scope), its ExternalIPs and LB IPs
 * (internal scope with all cluster endpoints, external scope with the external ones) and, where
 * this node serves NodePorts of that family, the NodePort wildcard in both scopes. A frontend
 * listed twice (an ExternalIP equal to the ClusterIP) is kept once, the first.
 */
export function frontendsOf(p: ServicePort, nodePortFamilies: ReadonlySet<Family>): DesiredFrontend[] {
  const key = servicePortKey(p);
  const affinityTimeout = p.sessionAffinityTimeoutSeconds ?? 0;
  const affinityFlag = affinityTimeout > 0 ? ServiceFlag.affinity : 0;
  const out: DesiredFrontend[] = [];
  const ids = new Set<string>();
  for (const family of [4, 6] as const) {
    const sets: Record<BackendSet, ServiceBackend[]> = {
      internal: ofFamily(p.internalEndpoints, family),
      cluster: ofFamily(p.clusterEndpoints, family),
      external: ofFamily(p.externalEndpoints, family),
    };
    const add = (addr: Ip | undefined, port: number, scope: ScopeValue, set: BackendSet, kindFlag: number): void => {
      const id = frontendId(addr, port, p.protocol, family, scope);
      if (ids.has(id)) return;
      ids.add(id);
      const backends = sets[set];
      let flags = kindFlag | affinityFlag;
      if (noEndpointAction(p, backends, family) === 'drop') flags |= ServiceFlag.noEndpointDrop;
      if (set === 'external' && p.externalPolicyLocal) flags |= ServiceFlag.localOnly;
      if (kindFlag === ServiceFlag.loadBalancer && p.loadBalancerSourceRanges.length > 0) flags |= ServiceFlag.sourceRanges;
      out.push({ id, addr, port, family, scope, group: `${key}|${family}|${set}`, flags, affinityTimeout, backends });
    };
    for (const ip of p.clusterIPs) if (ip.family === family) add(ip, p.port, Scope.internal, 'internal', ServiceFlag.clusterIP);
    const externals: Array<[Ip, number]> = [
      ...p.externalIPs.map((ip): [Ip, number] => [ip, ServiceFlag.externalIP]),
      ...p.loadBalancerIPs.map((ip): [Ip, number] => [ip, ServiceFlag.loadBalancer]),
    ];
    for (const [ip, kindFlag] of externals) {
      if (ip.family !== family) continue;
      add(ip, p.port, Scope.internal, 'cluster', kindFlag);
      add(ip, p.port, Scope.external, 'external', kindFlag);
    }
    if (p.nodePort !== undefined && nodePortFamilies.has(family)) {
      add(undefined, p.nodePort, Scope.internal, 'cluster', ServiceFlag.nodePort);
      add(undefined, p.nodePort, Scope.external, 'external', ServiceFlag.nodePort);
    }
  }
  return out;
}
