// The userspace proxy's iptables rules (pure): "portals" that send service traffic to the proxy
// sockets, as kube-proxy's userspace mode wrote them, under wirelane's own names.
//
//   nat PREROUTING → WLPROXY-PORTALS-CONTAINER   clusterIP / externalIP / LB IP from pods and from
//                  → WLPROXY-NODEPORT-CONTAINER  outside: REDIRECT --to-ports PROXYPORT (DNAT to
//                                                the bound address when not the wildcard)
//   nat OUTPUT     → WLPROXY-PORTALS-HOST        the same from the host itself: DNAT to a host
//                  → WLPROXY-NODEPORT-HOST       address (REDIRECT would make it 127.0.0.1, and UDP
//                                                replies would come from another address)
//   filter INPUT, FORWARD, OUTPUT (NEW) → WLPROXY-SERVICES   REJECT (no endpoint at all) / DROP
//                                                (a Local policy rules them out), load-balancer
//                                                source ranges
//   filter INPUT (NEW) → WLPROXY-NODEPORT-NON-LOCAL          ACCEPT NodePort proxy ports
//
// A frontend without endpoints gets no portal: nat cannot REJECT, so its packets go on to the
// filter rules (the proxy socket stays open, and resets a TCP client that reaches it anyway).
import { type Cidr, type Family, formatCidr, formatIp, hostCidr, type Ip } from '../../model/ip.js';
import { type ChainOwner, type DesiredRules, type FamilyRules, type JumpRule, type OwnedChain, ruleComment } from '../iptables/ruleset.js';
import type { Frontend, PlannedProxy, ProxyPlan } from './proxy-plan.js';

export const USERSPACE_OWNER: ChainOwner = { chainPrefix: 'WLPROXY-', commentPrefix: 'wirelane-proxy:' };

export const PORTALS_CONTAINER_CHAIN = 'WLPROXY-PORTALS-CONTAINER';
export const PORTALS_HOST_CHAIN = 'WLPROXY-PORTALS-HOST';
export const NODEPORT_CONTAINER_CHAIN = 'WLPROXY-NODEPORT-CONTAINER';
export const NODEPORT_HOST_CHAIN = 'WLPROXY-NODEPORT-HOST';
export const SERVICES_FILTER_CHAIN = 'WLPROXY-SERVICES';
export const NODEPORT_ACCEPT_CHAIN = 'WLPROXY-NODEPORT-NON-LOCAL';

export interface PortalInput {
  readonly plan: ProxyPlan;
  /** The bound port of each proxy (by key); a proxy that failed to open is absent and gets no portal. */
  readonly ports: ReadonlyMap<string, number>;
  /** Which service port holds each NodePort (by nodePortClaimKey); NodePorts it lost get no rules. */
  readonly nodePortHolders: ReadonlyMap<string, string>;
  /** Pod sources, for the in-cluster (short-circuit) portals. */
  readonly clusterCIDRs: readonly Cidr[];
  /** Per family: where host-originated traffic is DNATed; a family without one gets no host portals. */
  readonly hostAddresses: ReadonlyMap<Family, Ip>;
  /** Per family: the proxy sockets' bind address when it is not the wildcard. */
  readonly listenAddresses: ReadonlyMap<Family, Ip>;
}

export function nodePortClaimKey(protocol: string, family: Family, port: number): string {
  return `${protocol}/IPv${family}/${port}`;
}

const FAMILIES: readonly Family[] = [4, 6];
const NEW = '-m conntrack --ctstate NEW';

function addressPort(ip: Ip, port: number): string {
  return ip.family === 4 ? `${formatIp(ip)}:${port}` : `[${formatIp(ip)}]:${port}`;
}

export function portalRules(input: PortalInput): DesiredRules {
  const rules: { -readonly [F in Family]?: FamilyRules } = {};
  for (const family of FAMILIES) {
    if (!input.plan.proxies.some((p) => p.family === family)) continue;
    rules[family] = familyRules(family, input);
  }
  return rules;
}

function familyRules(family: Family, input: PortalInput): FamilyRules {
  const proxies = new Map(input.plan.proxies.filter((p) => p.family === family).map((p) => [p.key, p] as const));
  const podSources = input.clusterCIDRs.filter((c) => c.family === family);
  const listen = input.listenAddresses.get(family);
  const hostTarget = listen ?? input.hostAddresses.get(family);
  const chains = {
    portalsContainer: [] as string[],
    portalsHost: [] as string[],
    nodePortContainer: [] as string[],
    nodePortHost: [] as string[],
    services: [] as string[],
    nodePortAccept: new Set<string>(),
  };
  /** A proxy that can take traffic: opened, with endpoints. */
  const forwarding = (key: string): (PlannedProxy & { port: number }) | undefined => {
    const proxy = proxies.get(key);
    const port = input.ports.get(key);
    return proxy === undefined || port === undefined || proxy.action !== 'forward' ? undefined : { ...proxy, port };
  };
  const toContainerProxy = (port: number): string =>
    listen === undefined ? `-j REDIRECT --to-ports ${port}` : `-j DNAT --to-destination ${addressPort(listen, port)}`;

  for (const f of input.plan.frontends) {
    if (f.family !== family) continue;
    if (f.kind === 'nodePort' && input.nodePortHolders.get(nodePortClaimKey(f.protocol, family, f.port)) !== f.servicePort) continue;
    const container = f.kind === 'nodePort' ? chains.nodePortContainer : chains.portalsContainer;
    const host = f.kind === 'nodePort' ? chains.nodePortHost : chains.portalsHost;
    const match = `-m comment --comment "${ruleComment(`${f.servicePort} ${f.kind}`)}" -p ${f.protocol.toLowerCase()} -d ${formatCidr(hostCidr(f.ip))} --dport ${f.port}`;
    const outside = forwarding(f.proxy);
    const inCluster = forwarding(f.inClusterProxy);
    if (f.inClusterProxy !== f.proxy && inCluster !== undefined) {
      for (const pods of podSources) container.push(`-s ${formatCidr(pods)} ${match} ${toContainerProxy(inCluster.port)}`);
    }
    if (outside !== undefined) {
      if (f.sourceRanges.length === 0) container.push(`${match} ${toContainerProxy(outside.port)}`);
      for (const range of f.sourceRanges) container.push(`-s ${formatCidr(range)} ${match} ${toContainerProxy(outside.port)}`);
      // Sources outside the ranges were not redirected; they end here.
      if (f.sourceRanges.length > 0) chains.services.push(`${match} -j DROP`);
      if (f.kind === 'nodePort') chains.nodePortAccept.add(`-p ${f.protocol.toLowerCase()} --dport ${outside.port} -j ACCEPT`);
    } else {
      const action = proxies.get(f.proxy)?.action;
      if (action === 'reject') chains.services.push(`${match} -j REJECT`);
      if (action === 'drop') chains.services.push(`${match} -j DROP`);
    }
    if (inCluster !== undefined && hostTarget !== undefined) {
      host.push(`${match} -j DNAT --to-destination ${addressPort(hostTarget, inCluster.port)}`);
    }
  }

  const nat = (name: string, chainRules: string[]): OwnedChain => ({ table: 'nat', name, rules: chainRules });
  const filter = (name: string, chainRules: string[]): OwnedChain => ({ table: 'filter', name, rules: chainRules });
  const jump = (table: 'nat' | 'filter', from: string, to: string, what: string, match?: string): JumpRule => ({
    table,
    from,
    to,
    comment: `${USERSPACE_OWNER.commentPrefix} ${what}`,
    position: 'insert',
    ...(match === undefined ? {} : { match }),
  });
  return {
    chains: [
      nat(PORTALS_CONTAINER_CHAIN, chains.portalsContainer),
      nat(PORTALS_HOST_CHAIN, chains.portalsHost),
      nat(NODEPORT_CONTAINER_CHAIN, chains.nodePortContainer),
      nat(NODEPORT_HOST_CHAIN, chains.nodePortHost),
      filter(SERVICES_FILTER_CHAIN, chains.services),
      filter(NODEPORT_ACCEPT_CHAIN, [...chains.nodePortAccept]),
    ],
    jumps: [
      jump('nat', 'PREROUTING', PORTALS_CONTAINER_CHAIN, 'service portals'),
      jump('nat', 'PREROUTING', NODEPORT_CONTAINER_CHAIN, 'node port portals'),
      jump('nat', 'OUTPUT', PORTALS_HOST_CHAIN, 'service portals from the host'),
      jump('nat', 'OUTPUT', NODEPORT_HOST_CHAIN, 'node port portals from the host'),
      jump('filter', 'INPUT', SERVICES_FILTER_CHAIN, 'services without endpoints', NEW),
      jump('filter', 'INPUT', NODEPORT_ACCEPT_CHAIN, 'node ports', NEW),
      jump('filter', 'FORWARD', SERVICES_FILTER_CHAIN, 'services without endpoints', NEW),
      jump('filter', 'OUTPUT', SERVICES_FILTER_CHAIN, 'services without endpoints', NEW),
    ],
  };
}

/** For logs and errors: `10.96.0.10:80`, `[fd00::10]:80`. */
export function frontendAddress(f: Pick<Frontend, 'ip' | 'port'>): string {
  return addressPort(f.ip, f.port);
}
