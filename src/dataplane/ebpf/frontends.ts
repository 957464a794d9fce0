// Pure: the service frontends one service port becomes in wl_services, each with the backends its
// readers may reach (see bpf/include/wirelane_maps.h for who reads which scope).
import type { Family, Ip } from '../../model/ip.js';
import { type ServiceBackend, type ServicePort, noEndpointAction } from '../../model/service.js';
import { Scope, type ScopeValue, ServiceFlag, serviceKeyWordsOf } from './codec.js';
import { SERVICE_KEY } from './layouts.js';

/**
 * Which endpoint list a frontend serves, and so which service id (affinity and reverse translation
 * are per id): ClusterIPs the internal endpoints, external addresses seen from this node all cluster
 * endpoints (kube-proxy's short-circuit), external addresses from outside the external endpoints.
 */
export type BackendSet = 'internal' | 'cluster' | 'external';

export interface DesiredFrontend {
  /** The wl_services key words as a string (frontendIdOf): the frontend's identity, in the maps and here. */
  readonly id: string;
  readonly addr: Ip | undefined;
  readonly port: number;
  readonly family: Family;
  readonly scope: ScopeValue;
  /** The service id's group within its service port: family and backend set (groupOf). */
  readonly group: number;
  readonly flags: number;
  readonly affinityTimeout: number;
  /**
   * The endpoints it may reach, of either family: the table takes those of `family`, each
   * address:port once (not filtered here: a full sync would read every endpoint twice).
   */
  readonly backends: readonly ServiceBackend[];
}

/** The identity of a frontend key: its words as a 12-character string (a Map key that costs no formatting, and all of the key: keyWordsOfId). */
export function frontendIdOf(key: ArrayLike<number>): string {
  // One call, one flat string: concatenating would build a rope that every Map lookup flattens.
  // No helper closure: this runs once per frontend of a full sync.
  const w0 = key[0]!, w1 = key[1]!, w2 = key[2]!, w3 = key[3]!, w4 = key[4]!, w5 = key[5]!;
  return String.fromCharCode(w0 & 0xffff, w0 >>> 16, w1 & 0xffff, w1 >>> 16, w2 & 0xffff, w2 >>> 16, w3 & 0xffff, w3 >>> 16, w4 & 0xffff, w4 >>> 16, w5 & 0xffff, w5 >>> 16);
}

/** The key words a frontendIdOf() string holds, into `out` at `at`. */
export function keyWordsOfId(id: string, out: Uint32Array, at: number): void {
  for (let i = 0; i < 6; i++) out[at + i] = id.charCodeAt(2 * i) | (id.charCodeAt(2 * i + 1) << 16);
}

/** Whether any of `endpoints` is of `family` (usually the first one is). */
function anyOfFamily(endpoints: readonly ServiceBackend[], family: Family): boolean {
  for (let i = 0; i < endpoints.length; i++) if (endpoints[i]!.ip.family === family) return true;
  return false;
}

/**
 * Every frontend of `p`: per family, its ClusterIPs (internal scope), its ExternalIPs and LB IPs
 * (internal scope with all cluster endpoints, external scope with the external ones) and, where
 * this node serves NodePorts of that family, the NodePort wildcard in both scopes. A frontend
 * listed twice (an ExternalIP equal to the ClusterIP) is kept once, the first.
 */
export function frontendsOf(p: ServicePort, nodePortFamilies: ReadonlySet<Family>): DesiredFrontend[] {
  // Sized for the most there can be, then cut to what there is: a pushed-to empty array takes
  // room for 17, and a full sync makes 10,000 of them.
  const out = new Array<DesiredFrontend>(p.clusterIPs.length + 2 * (p.externalIPs.length + p.loadBalancerIPs.length) + (p.nodePort !== undefined ? 4 : 0));
  let n = 0;
  // Indexed loops, no for-of: before the JIT has optimized this (the first full sync is 10,000s of
  // calls), each for-of allocates an iterator and a result per element.
  for (let f = 0; f < FAMILIES.length; f++) {
    const family = FAMILIES[f]!;
    const nodePort = p.nodePort !== undefined && nodePortFamilies.has(family);
    if (!nodePort && !hasFamily(p.clusterIPs, family) && !hasFamily(p.externalIPs, family) && !hasFamily(p.loadBalancerIPs, family)) continue;
    const { internalEndpoints: internal, clusterEndpoints: cluster, externalEndpoints: external } = p;
    for (let i = 0; i < p.clusterIPs.length; i++) {
      const ip = p.clusterIPs[i]!;
      if (ip.family === family) n = addFrontend(out, n, p, family, ip, p.port, Scope.internal, 'internal', internal, ServiceFlag.clusterIP);
    }
    for (let i = 0; i < p.externalIPs.length; i++) {
      const ip = p.externalIPs[i]!;
      if (ip.family === family) n = addBothScopes(out, n, p, family, ip, p.port, cluster, external, ServiceFlag.externalIP);
    }
    for (let i = 0; i < p.loadBalancerIPs.length; i++) {
      const ip = p.loadBalancerIPs[i]!;
      if (ip.family === family) n = addBothScopes(out, n, p, family, ip, p.port, cluster, external, ServiceFlag.loadBalancer);
    }
    if (nodePort && p.nodePort !== undefined) n = addBothScopes(out, n, p, family, undefined, p.nodePort, cluster, external, ServiceFlag.nodePort);
  }
  out.length = n;
  return out;
}

const FAMILIES: readonly Family[] = [4, 6];

/** Scratch for a key's words on the way to its id. */
const KEY = new Uint32Array(SERVICE_KEY.size / 4);
// frontendIdOf and keyWordsOfId are unrolled for this many words.
if (KEY.length !== 6) throw new Error(`frontends: a wl_service_key of ${KEY.length} words needs frontendIdOf and keyWordsOfId changed`);

// A plain function, not a closure per port: the first sync calls it 10,000s of times. Puts the
// frontend at out[n] unless out[0..n) has it; returns the new n.
function addFrontend(out: DesiredFrontend[], n: number, p: ServicePort, family: Family, addr: Ip | undefined, port: number, scope: ScopeValue, set: BackendSet, backends: readonly ServiceBackend[], kindFlag: number): number {
  serviceKeyWordsOf(addr, port, p.protocol, family, scope, KEY, 0);
  const id = frontendIdOf(KEY);
  for (let i = 0; i < n; i++) if (out[i]!.id === id) return n;
  out[n] = { id, addr, port, family, scope, group: groupOf(family, set), flags: flagsOf(p, family, set, backends, kindFlag), affinityTimeout: p.sessionAffinityTimeoutSeconds ?? 0, backends };
  return n + 1;
}

/** An address reached from this node (all cluster endpoints) and from outside (the external ones). */
function addBothScopes(out: DesiredFrontend[], n: number, p: ServicePort, family: Family, addr: Ip | undefined, port: number, cluster: readonly ServiceBackend[], external: readonly ServiceBackend[], kindFlag: number): number {
  return addFrontend(out, addFrontend(out, n, p, family, addr, port, Scope.internal, 'cluster', cluster, kindFlag), p, family, addr, port, Scope.external, 'external', external, kindFlag);
}

const SETS: readonly BackendSet[] = ['internal', 'cluster', 'external'];

/** The frontends of one service port share a service id per family and backend set: 6 groups, 0..5. */
export const GROUPS = 2 * SETS.length;

function groupOf(family: Family, set: BackendSet): number {
  return (family === 4 ? 0 : SETS.length) + SETS.indexOf(set);
}

function hasFamily(ips: readonly Ip[], family: Family): boolean {
  for (let i = 0; i < ips.length; i++) if (ips[i]!.family === family) return true;
  return false;
}

function flagsOf(p: ServicePort, family: Family, set: BackendSet, backends: readonly ServiceBackend[], kindFlag: number): number {
  let flags = kindFlag;
  if ((p.sessionAffinityTimeoutSeconds ?? 0) > 0) flags |= ServiceFlag.affinity;
  if (!anyOfFamily(backends, family) && noEndpointAction(p, backends, family) === 'drop') flags |= ServiceFlag.noEndpointDrop;
  if (set === 'external' && p.externalPolicyLocal) flags |= ServiceFlag.localOnly;
  if (kindFlag === ServiceFlag.loadBalancer && p.loadBalancerSourceRanges.length > 0) flags |= ServiceFlag.sourceRanges;
  return flags;
}
