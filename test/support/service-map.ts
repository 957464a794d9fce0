// Service map fixtures for data path tests and benchmarks: a plain ClusterIP port with two
// endpoints (one local) unless told otherwise.
import { parseCidr, parseIp } from '../../src/model/ip.js';
import type { ServiceBackend, ServiceMap, ServicePort } from '../../src/model/service.js';

/** `10.244.1.2:8080` or `[fd44::2]:8080`. */
export function backend(text: string, local = false): ServiceBackend {
  const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(text);
  if (m === null) throw new Error(`bad backend ${text}`);
  return { ip: parseIp(m[1]!), port: Number(m[2]), local };
}

export function servicePort(over: Partial<ServicePort> = {}): ServicePort {
  const endpoints = over.clusterEndpoints ?? [backend('10.244.1.2:8080', true), backend('10.244.2.2:8080')];
  return {
    service: 'default/web',
    portName: 'http',
    protocol: 'TCP',
    clusterIPs: [parseIp('10.96.0.10')],
    port: 80,
    externalIPs: [],
    loadBalancerIPs: [],
    loadBalancerSourceRanges: [],
    externalPolicyLocal: false,
    internalPolicyLocal: false,
    clusterEndpoints: endpoints,
    internalEndpoints: endpoints,
    externalEndpoints: endpoints,
    ...over,
  };
}

export function serviceMap(ports: readonly ServicePort[], over: Partial<ServiceMap> = {}): ServiceMap {
  return {
    node: 'a',
    nodePortAddresses: [parseIp('172.31.0.11')],
    clusterCIDRs: [parseCidr('10.244.0.0/16'), parseCidr('fd44::/48')],
    servicePorts: ports,
    ...over,
  };
}
