// What the userspace proxy must run for a service map (pure): its proxy sockets, the addresses
// (frontends) redirected to them, and the NodePorts to hold open.
//
// A proxy socket only sees "a connection arrived on my port", not where it was headed, so traffic
// that may reach different endpoint lists needs different sockets. Per service port and family:
//   internal      ClusterIP traffic                                    internalEndpoints
//   external      NodePort, ExternalIP, LB IP traffic from outside     externalEndpoints
//   shortCircuit  the same destinations from pods and from the host,   clusterEndpoints
//                 under externalTrafficPolicy Local only (kube-proxy sends in-cluster clients of
//                 external addresses to every endpoint)
// Each kind keeps its own socket even when two lists happen to be equal: an endpoint change then
// never moves a frontend to another socket, and no connection is cut by it.
import { type Cidr, containsIp, type Family, type Ip, parseCidr } from '../../model/ip.js';
import { noEndpointAction, type ServiceBackend, type ServiceMap, servicePortKey } from '../../model/service.js';

export type ProxyKind = 'internal' | 'external' | 'shortCircuit';
export type ProxiedProtocol = 'TCP' | 'UDP';
export type NoEndpointAction = ReturnType<typeof noEndpointAction>;

export interface PlannedProxy {
  /** `servicePortKey kind IPvN`, e.g. `default/web:http/TCP internal IPv4`. */
  readonly key: string;
  readonly servicePort: string;
  readonly protocol: ProxiedProtocol;
  readonly family: Family;
  readonly kind: ProxyKind;
  /** Only endpoints of `family`. */
  readonly endpoints: readonly ServiceBackend[];
  readonly affinityTimeoutMs: number | undefined;
  /** What its frontends do: redirect here, or REJECT / DROP in the filter table (no endpoint). */
  readonly action: NoEndpointAction;
}

export type FrontendKind = 'clusterIP' | 'externalIP' | 'loadBalancerIP' | 'nodePort';

/** One destination (address and port) whose traffic goes to a proxy socket. */
export interface Frontend {
  readonly servicePort: string;
  readonly protocol: ProxiedProtocol;
  readonly family: Family;
  readonly kind: FrontendKind;
  /** The service address, or for a NodePort one of the node's addresses. */
  readonly ip: Ip;
  readonly port: number;
  /** Load-balancer IPs: the sources allowed in from outside; empty for any. */
  readonly sourceRanges: readonly Cidr[];
  /** The proxy (key) for traffic from outside the cluster. */
  readonly proxy: string;
  /** The proxy (key) for traffic from pods and from the host. */
  readonly inClusterProxy: string;
}

/** A NodePort a service port wants held, in one family. */
export interface NodePortWanted {
  readonly servicePort: string;
  readonly protocol: ProxiedProtocol;
  readonly family: Family;
  readonly port: number;
}

export interface ProxyPlan {
  readonly proxies: readonly PlannedProxy[];
  readonly frontends: readonly Frontend[];
  /** In service map order: on a conflict, the earlier one wins (unless the later already holds it). */
  readonly nodePorts: readonly NodePortWanted[];
  /** Service ports this mode cannot serve (SCTP: Node has no SCTP sockets). */
  readonly unsupported: readonly string[];
}

const FAMILIES: readonly Family[] = [4, 6];
const LOOPBACK = [parseCidr('127.0.0.0/8'), parseCidr('::1/128')];

export function isLoopback(ip: Ip): boolean {
  return LOOPBACK.some((net) => containsIp(net, ip));
}

export function proxyKey(servicePort: string, kind: ProxyKind, family: Family): string {
  return `${servicePort} ${kind} IPv${family}`;
}

export function planProxies(map: ServiceMap): ProxyPlan {
  const proxies: PlannedProxy[] = [];
  const frontends: Frontend[] = [];
  const nodePorts: NodePortWanted[] = [];
  const unsupported: string[] = [];
  for (const p of map.servicePorts) {
    const servicePort = servicePortKey(p);
    if (p.protocol === 'SCTP') {
      unsupported.push(servicePort);
      continue;
    }
    const protocol = p.protocol;
    // kube-proxy serves a service in the families of its cluster IPs; addresses of another family
    // (an IPv6 external IP on an IPv4-only service) are ignored.
    for (const family of FAMILIES) {
      const clusterIPs = p.clusterIPs.filter((ip) => ip.family === family);
      if (clusterIPs.length === 0) continue;
      const only = (list: readonly ServiceBackend[]): ServiceBackend[] => list.filter((b) => b.ip.family === family);
      const cluster = only(p.clusterEndpoints);
      const plan = (kind: ProxyKind, endpoints: ServiceBackend[]): string => {
        const key = proxyKey(servicePort, kind, family);
        const affinityTimeoutMs = p.sessionAffinityTimeoutSeconds === undefined ? undefined : p.sessionAffinityTimeoutSeconds * 1000;
        proxies.push({ key, servicePort, protocol, family, kind, endpoints, affinityTimeoutMs, action: noEndpointAction(p, endpoints, family) });
        return key;
      };
      const internal = plan('internal', only(p.internalEndpoints));
      const frontend = (kind: FrontendKind, ip: Ip, port: number, proxy: string, inClusterProxy: string, sourceRanges: readonly Cidr[] = []) =>
        frontends.push({ servicePort, protocol, family, kind, ip, port, sourceRanges, proxy, inClusterProxy });
      for (const ip of clusterIPs) frontend('clusterIP', ip, p.port, internal, internal);

      const externalIPs = p.externalIPs.filter((ip) => ip.family === family);
      const loadBalancerIPs = p.loadBalancerIPs.filter((ip) => ip.family === family);
      const nodeAddresses =
        p.nodePort === undefined ? [] : map.nodePortAddresses.filter((ip) => ip.family === family && !isLoopback(ip));
      if (externalIPs.length + loadBalancerIPs.length + nodeAddresses.length === 0) continue;
      const external = plan('external', only(p.externalEndpoints));
      const inCluster = p.externalPolicyLocal ? plan('shortCircuit', cluster) : external;
      const ranges = p.loadBalancerSourceRanges.filter((c) => c.family === family);
      for (const ip of externalIPs) frontend('externalIP', ip, p.port, external, inCluster);
      for (const ip of loadBalancerIPs) frontend('loadBalancerIP', ip, p.port, external, inCluster, ranges);
      if (p.nodePort !== undefined && nodeAddresses.length > 0) {
        nodePorts.push({ servicePort, protocol, family, port: p.nodePort });
        for (const ip of nodeAddresses) frontend('nodePort', ip, p.nodePort, external, inCluster);
      }
    }
  }
  return { proxies, frontends, nodePorts, unsupported };
}
