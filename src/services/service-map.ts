// Services + EndpointSlices → what this node must program, as kube-proxy would decide it (its
// ServiceChangeTracker, EndpointSliceCache and CategorizeEndpoints). Pure: everything comes in as
// arguments, so a test is a table of inputs and outputs.
import { compareStrings } from '../mesh/segments.js';
import { type Cidr, type Family, type Ip, compareCidr, containsIp, equalCidr, equalIp, parseCidr } from '../model/ip.js';
import { orEmpty, sameItems } from '../model/lists.js';
import type { ServiceBackend, ServiceMap, ServicePort } from '../model/service.js';
import { categorizeEndpoints, mergeSliceEndpoints } from './endpoints.js';
import type { EndpointSlice, Service, ServiceMapInput, ServicePortSpec } from './input.js';

export interface ServiceMapOptions {
  /** --nodeport-addresses: serve NodePorts only on node addresses inside these; absent or empty = all. */
  readonly nodePortCIDRs?: readonly Cidr[];
  /** This proxy's name: Services whose service-proxy-name label names another proxy are left alone. */
  readonly proxyName: string;
}

export const PROXY_NAME = 'wirelane';

const LOOPBACK = [parseCidr('127.0.0.0/8'), parseCidr('::1/128')];

/**
 * The ports computed for each Service by the last computeServiceMap that was given this memo, with
 * what they were computed from. A Service whose object, slices and node are the same objects as then
 * keeps its ports (the same objects): a resync with nothing changed builds no port, and the change
 * tracker sees unchanged ports as identical at a glance. Decoders hand out the same object until the
 * source's object changes (sources/decode-cache.ts). When every input is the same as then, the whole
 * map is handed out again: an idle resync at 10,000 Services allocated ~5 MiB rebuilding it.
 */
export class ServiceMapMemo {
  #entries = new Map<string, MemoEntry>();
  #node: ServiceMapInput['node'] | undefined;
  #last: { readonly input: ServiceMapInput; readonly opts: ServiceMapOptions; readonly map: ServiceMap } | undefined;

  /** @internal The last map, if it was computed from the same inputs. */
  reuseMap(input: ServiceMapInput, opts: ServiceMapOptions): ServiceMap | undefined {
    const last = this.#last;
    if (last === undefined || opts.proxyName !== last.opts.proxyName || !sameItems(last.opts.nodePortCIDRs ?? [], opts.nodePortCIDRs ?? [], equalCidr)) return undefined;
    const [a, b] = [last.input, input];
    const same =
      sameNode(a.node, b.node) &&
      sameItems(a.node.addresses, b.node.addresses, equalIp) &&
      sameItems(a.clusterCIDRs, b.clusterCIDRs, equalCidr) &&
      sameItems(a.services, b.services) &&
      sameItems(a.slices, b.slices);
    return same ? last.map : undefined;
  }

  /** @internal */
  rememberMap(input: ServiceMapInput, opts: ServiceMapOptions, map: ServiceMap): void {
    this.#last = { input, opts, map };
  }

  /** @internal The entry for `key` if it still holds for these inputs. */
  reuse(key: string, svc: Service, slices: readonly EndpointSlice[], node: ServiceMapInput['node']): readonly ServicePort[] | undefined {
    const e = this.#entries.get(key);
    if (e === undefined || e.svc !== svc || !sameNode(this.#node, node) || !sameItems(e.slices, slices)) return undefined;
    return e.ports;
  }

  /** @internal Replaces every entry: Services gone are forgotten. */
  replace(entries: Map<string, MemoEntry>, node: ServiceMapInput['node']): void {
    this.#entries = entries;
    this.#node = node;
  }
}

interface MemoEntry {
  readonly svc: Service;
  readonly slices: readonly EndpointSlice[];
  readonly ports: readonly ServicePort[];
}

function sameNode(a: ServiceMapInput['node'] | undefined, b: ServiceMapInput['node']): boolean {
  return a !== undefined && a.name === b.name && a.zone === b.zone;
}

/** `memo`: keeps the ports of Services whose inputs are the same objects as in the last call (default: none kept). */
export function computeServiceMap(input: ServiceMapInput, opts: ServiceMapOptions, memo = new ServiceMapMemo()): ServiceMap {
  const reused = memo.reuseMap(input, opts);
  if (reused !== undefined) return reused;
  const slices = slicesByService(input.slices);
  const servicePorts: ServicePort[] = [];
  const entries = new Map<string, MemoEntry>();
  for (const svc of input.services) {
    if (!isProxied(svc, opts.proxyName)) continue;
    const key = [svc.namespace, svc.name].join('/'); // flat, not a rope: the memo holds it (servicePortKey)
    const mine = slices.get(key) ?? [];
    const ports = memo.reuse(key, svc, mine, input.node) ?? svc.ports.map((port) => servicePortOf(svc, port, mine, input));
    entries.set(key, { svc, slices: mine, ports });
    for (const p of ports) servicePorts.push(p);
  }
  memo.replace(entries, input.node);
  servicePorts.sort(compareServicePorts);
  const map: ServiceMap = {
    node: input.node.name,
    nodePortAddresses: nodePortAddressesOf(input.node.addresses, opts.nodePortCIDRs ?? []),
    clusterCIDRs: uniqueSorted(input.clusterCIDRs, compareCidr, equalCidr),
    servicePorts,
  };
  memo.rememberMap(input, opts, map);
  return map;
}

/**
 * kube-proxy's ShouldSkipService plus the service-proxy-name label: headless and ExternalName
 * Services have nothing to proxy, nor has a Service whose cluster IP is not allocated yet.
 */
export function isProxied(svc: Service, proxyName: string): boolean {
  if (svc.proxyName !== undefined && svc.proxyName !== proxyName) return false;
  return svc.type !== 'ExternalName' && !svc.headless && svc.clusterIPs.length > 0;
}

function servicePortOf(svc: Service, spec: ServicePortSpec, slices: readonly EndpointSlice[], input: ServiceMapInput): ServicePort {
  // Each family is its own proxy (kube-proxy runs one per family): an address or endpoint of a
  // family the Service has no cluster IP of is not served.
  const families = new Set(svc.clusterIPs.map((ip) => ip.family));
  const served = (ip: Ip): boolean => families.has(ip.family);
  // kube-proxy's ExternallyAccessible: ETP only means something for traffic that comes from outside.
  const external = svc.type === 'NodePort' || svc.type === 'LoadBalancer' || svc.externalIPs.length > 0;
  const externalPolicyLocal = external && svc.externalTrafficPolicy === 'Local';
  const internalPolicyLocal = svc.internalTrafficPolicy === 'Local';
  const cluster: ServiceBackend[] = [];
  const local: ServiceBackend[] = [];
  for (const family of [4, 6] as const satisfies readonly Family[]) {
    if (!families.has(family)) continue;
    const candidates = mergeSliceEndpoints(slices, family, spec.name, spec.protocol, input.node.name);
    const lists = categorizeEndpoints(candidates, input.node.zone);
    cluster.push(...lists.cluster);
    local.push(...lists.local);
  }
  const loadBalancerIPs = svc.type === 'LoadBalancer' ? svc.loadBalancerIngress.filter((i) => i.ipMode === 'VIP').map((i) => i.ip) : [];
  return {
    service: [svc.namespace, svc.name].join('/'), // flat, not a rope (servicePortKey)
    portName: spec.name,
    protocol: spec.protocol,
    clusterIPs: svc.clusterIPs,
    port: spec.port,
    ...(spec.nodePort !== undefined && { nodePort: spec.nodePort }),
    externalIPs: orEmpty(uniqueIps(svc.externalIPs.filter(served))),
    loadBalancerIPs: orEmpty(uniqueIps(loadBalancerIPs.filter(served))),
    loadBalancerSourceRanges: orEmpty(uniqueSorted(
      svc.loadBalancerSourceRanges.filter((r) => families.has(r.family)),
      compareCidr,
      equalCidr,
    )),
    ...(svc.sessionAffinityTimeoutSeconds !== undefined && { sessionAffinityTimeoutSeconds: svc.sessionAffinityTimeoutSeconds }),
    // kube-proxy's NeedsHealthCheck: only a LoadBalancer with Local policy asks nodes for their health.
    ...(svc.type === 'LoadBalancer' && externalPolicyLocal && svc.healthCheckNodePort !== undefined && { healthCheckNodePort: svc.healthCheckNodePort }),
    externalPolicyLocal,
    internalPolicyLocal,
    clusterEndpoints: cluster,
    internalEndpoints: internalPolicyLocal ? local : cluster,
    externalEndpoints: externalPolicyLocal ? local : cluster,
  };
}

/** Slices grouped by `namespace/service`, each group in slice-name order (ties in merging go to the first). */
function slicesByService(slices: readonly EndpointSlice[]): Map<string, EndpointSlice[]> {
  const out = new Map<string, EndpointSlice[]>();
  for (const s of slices) {
    const key = `${s.namespace}/${s.service}`;
    const group = out.get(key);
    if (group === undefined) out.set(key, [s]);
    else group.push(s);
  }
  for (const group of out.values()) group.sort((a, b) => compareStrings(a.name, b.name) || a.family - b.family);
  return out;
}

// Never loopback: NodePorts on 127.0.0.1 reach services from anything local to the node
// (CVE-2020-8558), so they are not served there even when a CIDR flag would include them.
function nodePortAddressesOf(addresses: readonly Ip[], cidrs: readonly Cidr[]): Ip[] {
  const wanted = addresses.filter(
    (ip) => !LOOPBACK.some((lo) => containsIp(lo, ip)) && (cidrs.length === 0 || cidrs.some((c) => containsIp(c, ip))),
  );
  return uniqueIps(wanted);
}

function compareServicePorts(a: ServicePort, b: ServicePort): number {
  return compareStrings(a.service, b.service) || compareStrings(a.portName, b.portName) || compareStrings(a.protocol, b.protocol);
}

function compareIps(a: Ip, b: Ip): number {
  if (a.family !== b.family) return a.family - b.family;
  return a.value === b.value ? 0 : a.value < b.value ? -1 : 1;
}

function uniqueIps(ips: readonly Ip[]): Ip[] {
  return uniqueSorted(ips, compareIps, (a, b) => compareIps(a, b) === 0);
}

function uniqueSorted<T>(items: readonly T[], compare: (a: T, b: T) => number, equal: (a: T, b: T) => boolean): T[] {
  const sorted = [...items].sort(compare);
  return sorted.filter((item, i) => i === 0 || !equal(item, sorted[i - 1] as T));
}
