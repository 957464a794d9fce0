// Kubernetes-shaped Services and EndpointSlices in one line each, decoded as the sources decode them,
// and the service map of a node computed from them.
import { parseCidr, parseIp } from '../../src/model/ip.js';
import type { ServiceMap } from '../../src/model/service.js';
import type { EndpointSlice, Service, ServiceNode } from '../../src/services/input.js';
import { type ServiceMapJSON, type ServicePortJSON, serviceMapToJSON } from '../../src/services/json.js';
import { type ServiceMapOptions, PROXY_NAME, computeServiceMap } from '../../src/services/service-map.js';
import { decodeEndpointSlice } from '../../src/sources/endpoint-slice.js';
import type { KubeObject } from '../../src/sources/objects.js';
import { decodeService } from '../../src/sources/service.js';

export interface Meta {
  namespace?: string;
  labels?: Record<string, string>;
  status?: Record<string, unknown>;
}

export function service(name: string, spec: Record<string, unknown>, meta: Meta = {}): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: meta.namespace ?? 'default', ...(meta.labels && { labels: meta.labels }) },
    spec,
    ...(meta.status && { status: meta.status }),
  };
}

/** A ClusterIP Service with one TCP port 80 named `http`, plus `spec` overrides. */
export function web(spec: Record<string, unknown> = {}, meta: Meta = {}): KubeObject {
  return service('web', { clusterIP: '10.96.0.1', ports: [{ name: 'http', protocol: 'TCP', port: 80 }], ...spec }, meta);
}

export interface EndpointSpec {
  node?: string;
  ready?: boolean;
  serving?: boolean;
  terminating?: boolean;
  zones?: string[];
}

export function ep(ip: string, spec: EndpointSpec = {}): Record<string, unknown> {
  const conditions = Object.fromEntries(
    (['ready', 'serving', 'terminating'] as const).filter((c) => spec[c] !== undefined).map((c) => [c, spec[c]]),
  );
  return {
    addresses: [ip],
    conditions,
    ...(spec.node && { nodeName: spec.node }),
    ...(spec.zones && { hints: { forZones: spec.zones.map((name) => ({ name })) } }),
  };
}

export interface SliceSpec {
  name?: string;
  namespace?: string;
  addressType?: string;
  ports?: Record<string, unknown>[];
  endpoints: Record<string, unknown>[];
}

/** A slice of Service `svc`; ports default to `http`/TCP on 8080. */
export function slice(svc: string, spec: SliceSpec): KubeObject {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      name: spec.name ?? `${svc}-1`,
      namespace: spec.namespace ?? 'default',
      labels: { 'kubernetes.io/service-name': svc },
    },
    addressType: spec.addressType ?? 'IPv4',
    ports: spec.ports ?? [{ name: 'http', protocol: 'TCP', port: 8080 }],
    endpoints: spec.endpoints,
  } as KubeObject;
}

export const NODE: ServiceNode = { name: 'n1', zone: 'z1', addresses: [parseIp('192.168.0.1'), parseIp('fd00::1')] };

export interface MapSpec {
  node?: Partial<ServiceNode>;
  clusterCIDRs?: string[];
  opts?: Partial<ServiceMapOptions>;
}

export function decodeAll(objects: readonly KubeObject[]): { services: Service[]; slices: EndpointSlice[] } {
  const services = objects.filter((o) => o.kind === 'Service').map(decodeService);
  const slices = objects.filter((o) => o.kind === 'EndpointSlice').flatMap((o) => decodeEndpointSlice(o) ?? []);
  return { services, slices };
}

export function mapOf(objects: readonly KubeObject[], spec: MapSpec = {}): ServiceMap {
  return computeServiceMap(
    { ...decodeAll(objects), node: { ...NODE, ...spec.node }, clusterCIDRs: (spec.clusterCIDRs ?? ['10.244.0.0/16']).map(parseCidr) },
    { proxyName: PROXY_NAME, ...spec.opts },
  );
}

export function jsonOf(objects: readonly KubeObject[], spec: MapSpec = {}): ServiceMapJSON {
  return serviceMapToJSON(mapOf(objects, spec));
}

/** The only service port of the map, as JSON; fails when there is not exactly one. */
export function onlyPort(objects: readonly KubeObject[], spec: MapSpec = {}): ServicePortJSON {
  const ports = jsonOf(objects, spec).servicePorts;
  if (ports.length !== 1) throw new Error(`want one service port, got ${ports.length}`);
  return ports[0] as ServicePortJSON;
}
