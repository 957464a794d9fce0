// The service map as iptables rules: kube-proxy's iptables design under wirelane's own names.
// Pure: the same map always gives byte-identical chains, so the iptables dataplane (which diffs per
// chain) rewrites only the chains of service ports that changed.
//
// nat, per family:
//   PREROUTING, OUTPUT -> WLSVC-SERVICES: per service port and destination (cluster IP, external IP,
//       load-balancer IP; `-p proto --dport`), a jump to the port's chain; last, for each
//       node-port address, `-d ADDR -j WLSVC-NODEPORTS` (addresses, never `--dst-type LOCAL`:
//       that would open node ports on 127.0.0.1 and every other local address, CVE-2020-8558).
//   WLSVC-SVC-h / SVL-h / SVX-h: one endpoint list each. The cluster IP's off-cluster sources are
//       marked for masquerade (WLSVC-OFF-CLUSTER), ClientIP affinity is checked (`recent --rcheck`/`--update`),
//       then an endpoint is chosen with `statistic --mode random --probability 1/(n-i)`.
//       A remote endpoint is DNATed right there (recording the client for affinity, `recent --set`).
//   WLSVC-SEP-h: one endpoint on this node: hairpin traffic (from the endpoint itself) is marked,
//       the client is recorded for affinity, and the packet is DNATed.
//   WLSVC-EXT-h: external destinations. Cluster policy: mark, then SVC. Local policy: traffic from
//       pods and from the host short-circuits to the cluster endpoints (the host's masqueraded), the
//       rest goes to the local endpoints with the client's address kept.
//   WLSVC-FW-h: load-balancer IPs with source ranges: only those sources reach EXT.
//   WLSVC-POSTROUTING (from POSTROUTING): masquerades marked packets and clears the mark.
// filter, per family (INPUT, FORWARD, OUTPUT -> WLSVC-FILTER for new connections):
//   the filter table sees a packet after nat, so a packet still addressed to a service destination
//   was not DNATed: REJECT it when the service has no endpoint at all (TCP reset, ICMP port
//   unreachable otherwise, so clients fail at once), DROP it when only the traffic policy or the
//   load-balancer source ranges ruled it out (kube-proxy's choice: the load balancer's health check
//   then moves traffic to another node).
//
// Not written: ACCEPT rules for node ports. A node port DNATed to a pod is forwarded, not input,
// so a default-DROP INPUT policy does not block it; an ACCEPT inserted first in INPUT would instead
// bypass whatever the administrator filters there. A default-DROP FORWARD policy is the CNI's or the
// administrator's to open, as with kube-proxy.
import { formatCidr, formatIp, type Family, type Ip } from '../../model/ip.js';
import { noEndpointAction, servicePortKey, type ServiceBackend, type ServiceMap, type ServicePort } from '../../model/service.js';
import { type DesiredRules, type FamilyRules, type JumpRule, type OwnedChain, ruleComment } from '../iptables/ruleset.js';
import {
  FILTER_CHAIN,
  FILTER_NODEPORTS_CHAIN,
  MARK_MASQ_CHAIN,
  MASQ_MARK,
  NODEPORTS_CHAIN,
  OFF_CLUSTER_CHAIN,
  POSTROUTING_CHAIN,
  SERVICE_OWNER,
  SERVICES_CHAIN,
  serviceChainName,
  type ServiceChainKind,
} from './chain-names.js';

const FAMILIES: readonly Family[] = [4, 6];

export function computeServiceRules(map: ServiceMap): DesiredRules {
  const desired: Partial<Record<Family, FamilyRules>> = {};
  for (const family of FAMILIES) {
    const context = familyContext(map, family);
    const rules = assembleFamilyRules(context, map.servicePorts.map((port) => servicePortRules(context, port)));
    if (rules !== undefined) desired[family] = rules;
  }
  return desired;
}

/** What every service port's rules in one family depend on besides the port itself. */
export interface FamilyContext {
  readonly family: Family;
  readonly clusterCidrs: readonly string[];
  readonly nodePortAddresses: readonly string[];
}

/** One service port's lines in the shared chains, and its own chains, in one family. */
export interface PortRules {
  readonly services: string[];
  readonly nodePorts: string[];
  readonly filter: string[];
  readonly filterNodePorts: string[];
  readonly chains: OwnedChain[];
}

type FamilyOutput = FamilyContext & PortRules;

function emptyOutput(context: FamilyContext): FamilyOutput {
  return { ...context, services: [], nodePorts: [], filter: [], filterNodePorts: [], chains: [] };
}

export function familyContext(map: ServiceMap, family: Family): FamilyContext {
  return {
    family,
    clusterCidrs: map.clusterCIDRs.filter((c) => c.family === family).map(formatCidr),
    // Loopback never: a node port on 127.0.0.1 needs route_localnet and exposes it (CVE-2020-8558).
    nodePortAddresses: map.nodePortAddresses.filter((ip) => ip.family === family && !isLoopback(ip)).map(formatIp),
  };
}

/** Undefined when the port has no destination in the family. */
export function servicePortRules(context: FamilyContext, port: ServicePort): PortRules | undefined {
  const out = emptyOutput(context);
  return addServicePort(out, port) ? out : undefined;
}

/**
 * The family's chains from its ports' parts, in map order. Undefined when no service port has a
 * destination in the family: no chains there (a host may lack IPv6). Each port's own chains are
 * passed on as they are, so a caller that keeps an unchanged port's parts hands the iptables
 * dataplane the same rules arrays again.
 */
export function assembleFamilyRules(context: FamilyContext, parts: readonly (PortRules | undefined)[]): FamilyRules | undefined {
  const out = emptyOutput(context);
  let served = false;
  // Line by line rather than push(...lines): 10,000s of ports.
  for (const part of parts) {
    if (part === undefined) continue;
    served = true;
    for (const line of part.services) out.services.push(line);
    for (const line of part.nodePorts) out.nodePorts.push(line);
    for (const line of part.filter) out.filter.push(line);
    for (const line of part.filterNodePorts) out.filterNodePorts.push(line);
    for (const chain of part.chains) out.chains.push(chain);
  }
  if (!served) return undefined;
  return { chains: [...baseChains(out), ...out.chains], jumps: baseJumps() };
}

function isLoopback(ip: Ip): boolean {
  return ip.family === 4 ? ip.value >> 24n === 127n : ip.value === 1n;
}

function baseChains(out: FamilyOutput): OwnedChain[] {
  const toNodePorts = (chain: string) => out.nodePortAddresses.map((addr) => `-d ${addr} -j ${chain}`);
  const chains: OwnedChain[] = [
    { table: 'nat', name: SERVICES_CHAIN, rules: [...out.services, ...toNodePorts(NODEPORTS_CHAIN)] },
    { table: 'nat', name: NODEPORTS_CHAIN, rules: out.nodePorts },
    { table: 'nat', name: MARK_MASQ_CHAIN, rules: [`-j MARK --or-mark ${MASQ_MARK}`] },
    {
      table: 'nat',
      name: POSTROUTING_CHAIN,
      rules: [`-m mark ! --mark ${MASQ_MARK}/${MASQ_MARK} -j RETURN`, `-j MARK --xor-mark ${MASQ_MARK}`, '-j MASQUERADE --random-fully'],
    },
    { table: 'filter', name: FILTER_CHAIN, rules: [...out.filter, ...toNodePorts(FILTER_NODEPORTS_CHAIN)] },
    { table: 'filter', name: FILTER_NODEPORTS_CHAIN, rules: out.filterNodePorts },
  ];
  // Without cluster CIDRs nothing tells a pod from an off-cluster client, so nothing is marked for
  // it (kube-proxy without a local-traffic detector does the same).
  if (out.clusterCidrs.length > 0) {
    chains.push({
      table: 'nat',
      name: OFF_CLUSTER_CHAIN,
      rules: [...out.clusterCidrs.map((cidr) => `-s ${cidr} -j RETURN`), `-j ${MARK_MASQ_CHAIN}`],
    });
  }
  return chains;
}

function jump(table: 'nat' | 'filter', from: string, to: string, comment: string, match?: string): JumpRule {
  // Inserted first, as kube-proxy prepends its jumps: service traffic is DNATed (or rejected)
  // before anything else sees it, and marked packets are masqueraded before other NAT rules.
  return { table, from, to, comment: `${SERVICE_OWNER.commentPrefix} ${comment}`, position: 'insert', ...(match === undefined ? {} : { match }) };
}

function baseJumps(): JumpRule[] {
  const fresh = '-m conntrack --ctstate NEW';
  return [
    jump('nat', 'PREROUTING', SERVICES_CHAIN, 'service portals'),
    jump('nat', 'OUTPUT', SERVICES_CHAIN, 'service portals'),
    jump('nat', 'POSTROUTING', POSTROUTING_CHAIN, 'masquerade marked service traffic'),
    jump('filter', 'INPUT', FILTER_CHAIN, 'service rejects', fresh),
    jump('filter', 'FORWARD', FILTER_CHAIN, 'service rejects', fresh),
    jump('filter', 'OUTPUT', FILTER_CHAIN, 'service rejects', fresh),
  ];
}

/** A backend as the rules spell it, formatted once (formatting addresses dominated the profile). */
interface DnatTarget {
  readonly backend: ServiceBackend;
  /** The address alone, for `-s`. */
  readonly ip: string;
  /** `ip:port` or `[ip]:port`, for `--to-destination`. */
  readonly text: string;
}

/** One family's backends, deduplicated and sorted; `known` shares the formatting between lists. */
function targetsOf(list: readonly ServiceBackend[], family: Family, known: Map<ServiceBackend, DnatTarget>): DnatTarget[] {
  const seen = new Set<string>();
  const out: DnatTarget[] = [];
  for (const backend of list) {
    if (backend.ip.family !== family) continue;
    let target = known.get(backend);
    if (target === undefined) {
      const ip = formatIp(backend.ip);
      target = { backend, ip, text: family === 4 ? `${ip}:${backend.port}` : `[${ip}]:${backend.port}` };
      known.set(backend, target);
    }
    if (seen.has(target.text)) continue;
    seen.add(target.text);
    out.push(target);
  }
  return out.sort((x, y) => {
    const [a, b] = [x.backend, y.backend];
    return a.ip.value < b.ip.value ? -1 : a.ip.value > b.ip.value ? 1 : a.port - b.port;
  });
}

function labelOf(port: ServicePort): string {
  return ruleComment(`${port.service}:${port.portName}`);
}

/** The filter target for traffic that has no endpoint to go to; undefined when it has one. */
function blockingTarget(action: ReturnType<typeof noEndpointAction>, protocol: string, family: Family): string | undefined {
  switch (action) {
    case 'forward':
      return undefined;
    case 'drop':
      return '-j DROP';
    case 'reject':
      if (protocol === 'tcp') return '-j REJECT --reject-with tcp-reset';
      return `-j REJECT --reject-with ${family === 4 ? 'icmp-port-unreachable' : 'icmp6-port-unreachable'}`;
  }
}

/** Adds one service port's rules for one family; false when it has no destination there. */
function addServicePort(out: FamilyOutput, port: ServicePort): boolean {
  const { family } = out;
  const ofFamily = (ips: readonly Ip[]) => ips.filter((ip) => ip.family === family).map(formatIp);
  const clusterIPs = ofFamily(port.clusterIPs);
  const externalIPs = ofFamily(port.externalIPs);
  const loadBalancerIPs = ofFamily(port.loadBalancerIPs);
  if (clusterIPs.length + externalIPs.length + loadBalancerIPs.length === 0) return false;
  const nodePort = port.nodePort !== undefined && out.nodePortAddresses.length > 0 ? port.nodePort : undefined;

  const key = servicePortKey(port);
  const protocol = port.protocol.toLowerCase();
  const dport = (n: number) => `-p ${protocol} -m ${protocol} --dport ${n}`;
  const label = labelOf(port);
  const to = (ip: string, what: string) => `-d ${ip} ${dport(port.port)} -m comment --comment "${label} ${what}"`;
  const known = new Map<ServiceBackend, DnatTarget>();
  const cluster = targetsOf(port.clusterEndpoints, family, known);
  const internal = targetsOf(port.internalEndpoints, family, known);
  const external = targetsOf(port.externalEndpoints, family, known);
  const lists = new EndpointLists(key, cluster);

  const noInternal = blockingTarget(noEndpointAction(port, internal.map((t) => t.backend), family), protocol, family);
  for (const ip of clusterIPs) {
    if (noInternal === undefined) {
      out.services.push(`${to(ip, 'cluster IP')} -j ${lists.chainOf(internal, true)}`);
    } else {
      out.filter.push(`${to(ip, 'has no endpoints')} ${noInternal}`);
    }
  }

  const hasExternal = externalIPs.length + loadBalancerIPs.length > 0 || nodePort !== undefined;
  // With cluster endpoints there is an EXT chain even when the external list is empty: under a
  // Local policy, pods and the host still short-circuit to the cluster endpoints through it.
  const ext = hasExternal && cluster.length > 0 ? serviceChainName('EXT', key) : undefined;
  const noExternal = blockingTarget(noEndpointAction(port, external.map((t) => t.backend), family), protocol, family);
  for (const ip of externalIPs) {
    if (ext !== undefined) out.services.push(`${to(ip, 'external IP')} -j ${ext}`);
    if (noExternal !== undefined) out.filter.push(`${to(ip, 'has no external endpoints')} ${noExternal}`);
  }
  const sourceRanges = port.loadBalancerSourceRanges.filter((c) => c.family === family).map(formatCidr);
  const filtered = port.loadBalancerSourceRanges.length > 0;
  const fw = filtered && ext !== undefined && loadBalancerIPs.length > 0 ? serviceChainName('FW', key) : undefined;
  for (const ip of loadBalancerIPs) {
    if (ext !== undefined) out.services.push(`${to(ip, 'load balancer IP')} -j ${fw ?? ext}`);
    // Whatever FW did not let through is still addressed to the load-balancer IP here.
    const target = noExternal ?? (filtered ? '-j DROP' : undefined);
    if (target !== undefined) out.filter.push(`${to(ip, 'load balancer IP blocked')} ${target}`);
  }
  if (nodePort !== undefined) {
    if (ext !== undefined) out.nodePorts.push(`${dport(nodePort)} -m comment --comment "${label} node port" -j ${ext}`);
    if (noExternal !== undefined) out.filterNodePorts.push(`${dport(nodePort)} -m comment --comment "${label} has no external endpoints" ${noExternal}`);
  }

  if (fw !== undefined && ext !== undefined) {
    // A family without any range lets nothing through: the list restricts sources, so an IPv6
    // client is not allowed by IPv4 ranges.
    out.chains.push({ table: 'nat', name: fw, rules: sourceRanges.map((cidr) => `-s ${cidr} -j ${ext}`) });
  }
  if (ext !== undefined) out.chains.push({ table: 'nat', name: ext, rules: externalRules(out, port, lists, cluster, external) });
  for (const chain of lists.render(out, port, clusterIPs, dport(port.port), protocol)) out.chains.push(chain);
  return true;
}

function externalRules(out: FamilyOutput, port: ServicePort, lists: EndpointLists, cluster: DnatTarget[], external: DnatTarget[]): string[] {
  if (!port.externalPolicyLocal) {
    // Cluster policy: the endpoint may be on another node, whose reply must come back through
    // this one to be un-NATed.
    return [`-j ${MARK_MASQ_CHAIN}`, ...(external.length > 0 ? [`-j ${lists.chainOf(external)}`] : [])];
  }
  const all = lists.chainOf(cluster);
  return [
    // kube-proxy's short-circuit: pods and the host reaching an external address of a Local
    // service go to any endpoint, as they would through the cluster IP.
    ...out.clusterCidrs.map((cidr) => `-s ${cidr} -j ${all}`),
    `-m addrtype --src-type LOCAL -j ${MARK_MASQ_CHAIN}`,
    `-m addrtype --src-type LOCAL -j ${all}`,
    // No local endpoint: no DNAT, and the filter table drops what is still addressed here.
    ...(external.length > 0 ? [`-j ${lists.chainOf(external)}`] : []),
  ];
}

/**
 * The endpoint-list chains of one service port: one per distinct list (the cluster list is SVC).
 *
 * Only endpoints on this node get a SEP chain of their own; the others are DNATed by the rule that
 * picks them. A hairpin (a pod reaching itself through a service) is DNATed on the pod's own node,
 * so only a local endpoint ever needs the `-s ENDPOINT` mark before its DNAT, and that takes a
 * chain. Everything else is better off without one: iptables-nft-restore spends time in proportion
 * to chains × rules (1.8.9: 4.7 s for 1,000 services × 10 endpoints with a chain per endpoint, 51 s
 * for 3,000), so a chain per endpoint made 10,000 services take many minutes.
 */
class EndpointLists {
  private readonly chains = new Map<string, { readonly kind: ServiceChainKind; readonly targets: DnatTarget[]; internal: boolean }>();
  private readonly clusterText: string;

  constructor(
    private readonly key: string,
    cluster: DnatTarget[],
  ) {
    this.clusterText = cluster.map((t) => t.text).join(' ');
  }

  /** The chain choosing among `targets`; `internal` when the cluster IP dispatches to it. */
  chainOf(targets: DnatTarget[], internal = false): string {
    const text = targets.map((t) => t.text).join(' ');
    let entry = this.chains.get(text);
    if (entry === undefined) {
      const kinds = [...this.chains.values()].map((c) => c.kind);
      const kind: ServiceChainKind = text === this.clusterText ? 'SVC' : kinds.includes('SVL') ? 'SVX' : 'SVL';
      entry = { kind, targets, internal };
      this.chains.set(text, entry);
    }
    entry.internal ||= internal;
    return serviceChainName(entry.kind, this.key);
  }

  render(out: FamilyOutput, port: ServicePort, clusterIPs: readonly string[], dport: string, protocol: string): OwnedChain[] {
    const affinity = port.sessionAffinityTimeoutSeconds;
    // Per endpoint: its SEP name (a chain for a local endpoint; otherwise only its affinity list's name).
    const seps = new Map<string, { readonly target: DnatTarget; readonly sep: string }>();
    const sepOf = (target: DnatTarget): string => {
      let entry = seps.get(target.text);
      if (entry === undefined) {
        entry = { target, sep: serviceChainName('SEP', `${this.key}|${target.text}`) };
        seps.set(target.text, entry);
      }
      return entry.sep;
    };
    const dnat = (target: DnatTarget) => `-j DNAT --to-destination ${target.text}`;
    const chains: OwnedChain[] = [];
    const order: ServiceChainKind[] = ['SVC', 'SVL', 'SVX'];
    const lists = [...this.chains.values()].sort((a, b) => order.indexOf(a.kind) - order.indexOf(b.kind));
    for (const { kind, targets, internal } of lists) {
      const rules: string[] = [];
      // Restricted to the cluster IP: the same chain may also serve external destinations, which
      // EXT has already marked (or, under a Local policy, must keep unmasqueraded).
      if (internal && out.clusterCidrs.length > 0) for (const ip of clusterIPs) rules.push(`-d ${ip} ${dport} -j ${OFF_CLUSTER_CHAIN}`);
      if (affinity !== undefined) {
        for (const target of targets) {
          const sep = sepOf(target);
          // A SEP chain records the client again (`--set`); inline, `--update` checks and records at once.
          rules.push(target.backend.local
            ? `-m recent --name ${sep} --rcheck --seconds ${affinity} --reap -j ${sep}`
            : `-p ${protocol} -m recent --name ${sep} --update --seconds ${affinity} --reap ${dnat(target)}`);
        }
      }
      targets.forEach((target, i) => {
        const left = targets.length - i;
        // kube-proxy's formatting (%0.10f): each rule takes 1/(endpoints left), so every endpoint
        // ends up with 1/n.
        const pick = left > 1 ? `-m statistic --mode random --probability ${(1 / left).toFixed(10)} ` : '';
        if (target.backend.local) rules.push(`${pick}-j ${sepOf(target)}`);
        // Matches run in order: the client is recorded only when this endpoint was picked.
        else rules.push(`-p ${protocol} ${pick}${affinity === undefined ? '' : `-m recent --name ${sepOf(target)} --set `}${dnat(target)}`);
      });
      chains.push({ table: 'nat', name: serviceChainName(kind, this.key), rules });
    }
    for (const [, { target, sep }] of [...seps].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      if (!target.backend.local) continue;
      const record = affinity === undefined ? '' : ` -m recent --name ${sep} --set`;
      chains.push({
        table: 'nat',
        name: sep,
        rules: [
          // Hairpin: an endpoint reaching itself through the service must see the reply come from
          // the node, not from its own address.
          `-s ${target.ip} -j ${MARK_MASQ_CHAIN}`,
          `-p ${protocol}${record} ${dnat(target)}`,
        ],
      });
    }
    return chains;
  }
}
