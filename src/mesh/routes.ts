// The routes and policy rules this node needs (Kilo's Topology.Routes), leader and non-leader.
import { type Cidr, type Ip, containsIp, equalIp, hostCidr, ipOf, networkOf } from '../model/ip.js';
import { type MeshNode, internalIPOf, internalIPsOf } from '../model/mesh.js';
import { ENCAPSULATION_TABLE, type Route, type Rule } from '../model/route.js';
import { prefixKey } from './allowed-ips.js';
import type { Segment, TopologyCore } from './types.js';

/**
 * Routes and rules in a deterministic order (segments by key, members by name, Peers by name).
 *
 * The kernel knows a route by table and destination, so a destination that comes up twice keeps its
 * first route. Every gateway and source is of the destination's family (the kernel has no IPv6
 * route via an IPv4 gateway). Dual-stack:
 * - on the WireGuard device a destination goes via the segment's WireGuard IP of its family; where
 *   the segment has none (no --subnet of that family) it is routed on the device with no gateway,
 *   as WireGuard picks the [Peer] by AllowedIPs anyway. The source is the local internal IP of that
 *   family; without one the kernel picks an address of the device, which is the leader's own
 *   WireGuard IP of that family where there is one (in the AllowedIPs the other side checks);
 * - over the underlay the gateway is the leader's (or member's) internal IP of the destination's
 *   family: `otherInternalIP` on a dual-stack underlay. Without one (an IPv6 pod CIDR behind an
 *   IPv4-only underlay) there is no next hop and no route. The tunnel (`--encapsulate`) runs between
 *   `internalIP`s; a VXLAN tunnel carries the other family inside it too (to `otherInternalIP`,
 *   whose neighbour entry the tunnel device maps to the member's VTEP), IPIP does not.
 */
export function routesFor(t: TopologyCore): { routes: Route[]; rules: Rule[] } {
  const out = new RouteSet();
  if (t.leader) leaderRoutes(t, out);
  else nonLeaderRoutes(t, out);
  return { routes: out.routes, rules: out.rules };
}

class RouteSet {
  readonly routes: Route[] = [];
  readonly rules: Rule[] = [];
  private readonly routeKeys = new Set<string>();
  private readonly ruleKeys = new Set<string>();

  route(route: Route): void {
    const key = `${route.table} ${prefixKey(route.dst)}`;
    if (this.routeKeys.has(key)) return;
    this.routeKeys.add(key);
    this.routes.push(networkOf(route.dst) === route.dst ? route : { ...route, dst: networkOf(route.dst) });
  }

  rule(rule: Rule): void {
    const key = `${rule.table} ${rule.from && prefixKey(rule.from)} ${rule.to && prefixKey(rule.to)} ${rule.iif}`;
    if (this.ruleKeys.has(key)) return;
    this.ruleKeys.add(key);
    this.rules.push(rule.from === undefined ? rule : { ...rule, from: networkOf(rule.from) });
  }
}

/** A route over the WireGuard device via a segment's WireGuard IP of `dst`'s family, if it has one. */
function wireguardRoute(t: TopologyCore, dst: Cidr, segment: Segment): Route {
  const gw = segment.wireguardIPs.find((ip) => ip.family === dst.family);
  const src = leaderSource(t, dst.family);
  return {
    dst,
    ...(gw === undefined ? {} : { gw }),
    dev: t.options.wireguardDevice,
    ...(src === undefined ? {} : { src }),
    onlink: gw !== undefined,
    table: 'main',
  };
}

/**
 * The source of this leader's own packets over WireGuard, of one family: its internal IP (as Kilo),
 * except when that is its endpoint, which remote segments reach over the underlay, never through the
 * tunnel (it would loop): then replies would need a path outside WireGuard, which separate sites do
 * not have, and the segment's WireGuard IP of that family is taken (none: the kernel picks).
 */
function leaderSource(t: TopologyCore, family: Ip['family']): Ip | undefined {
  const internal = internalIPOf(t.node, family);
  const endpoint = t.segment.endpoint.host;
  if (internal !== undefined && endpoint.kind === 'ip' && equalIp(internal, endpoint.ip)) {
    return t.segment.wireguardIPs.find((ip) => ip.family === family);
  }
  return internal;
}

function leaderRoutes(t: TopologyCore, out: RouteSet): void {
  for (const segment of t.segments) {
    if (segment.group === t.segment.group) {
      // Same underlay: never via WireGuard. A node without internal IP has no underlay to route over.
      if (t.options.local && t.node.internalIP !== undefined) {
        for (const member of segment.nodes) {
          if (member.name !== t.node.name) underlayMemberRoutes(t, member, true, out);
        }
      }
      continue;
    }
    const endpointIp = segment.endpoint.host.kind === 'ip' ? segment.endpoint.host.ip : undefined;
    for (const member of segment.nodes) {
      for (const pod of member.podCIDRs) out.route(wireguardRoute(t, pod, segment));
      for (const internal of internalIPsOf(member).map(ipOf)) {
        // A member reachable only at its endpoint IP cannot be reached through a tunnel to that IP.
        if (endpointIp !== undefined && equalIp(internal, endpointIp)) continue;
        out.route(wireguardRoute(t, hostCidr(internal), segment));
      }
    }
    for (const cidr of segment.allowedLocationIPs) out.route(wireguardRoute(t, cidr, segment));
  }
  for (const peer of t.peers) {
    for (const dst of peer.allowedIPs) out.route({ dst, dev: t.options.wireguardDevice, onlink: false, table: 'main' });
  }
}

function nonLeaderRoutes(t: TopologyCore, out: RouteSet): void {
  // A non-leader is in a location segment, whose members all have internal IPs.
  const viaLeader = (dst: Cidr): void => {
    const route = underlayRoute(t, dst, t.segment.leader);
    if (route !== undefined) out.route(route);
  };
  for (const segment of t.segments) {
    segment.wireguardIPs.map(hostCidr).forEach(viaLeader);
    if (segment.key === t.segment.key) {
      if (t.options.local) {
        for (const member of segment.nodes) {
          if (member.name !== t.node.name) underlayMemberRoutes(t, member, false, out);
        }
      }
      continue;
    }
    for (const member of segment.nodes) {
      member.podCIDRs.forEach(viaLeader);
      internalIPsOf(member).forEach((c) => viaLeader(hostCidr(ipOf(c))));
    }
    segment.allowedLocationIPs.forEach(viaLeader);
  }
  for (const peer of t.peers) peer.allowedIPs.forEach(viaLeader);
}

/**
 * `always`, or `crosssubnet` when the gateway is outside this node's internal network of its family.
 * The tunnel's ends are primary internal IPs (`tunnelMembersOf`): a gateway of the other family is
 * encapsulated only where the tunnel carries both families and `via` is an end of it.
 */
function isEncapsulated(t: TopologyCore, via: MeshNode, gw: Ip): boolean {
  const { encapsulate } = t.options;
  const own = t.node.internalIP;
  if (encapsulate === 'never') return false;
  if (own !== undefined && gw.family !== own.family) {
    if (t.options.tunnelCarriesBothFamilies !== true || via.internalIP?.family !== own.family) return false;
    return encapsulate === 'always' || t.node.otherInternalIP === undefined || !containsIp(t.node.otherInternalIP, gw);
  }
  if (encapsulate === 'always') return true;
  return own === undefined || !containsIp(own, gw);
}

/** A route to `dst` via `via`'s internal IP of its family, through the tunnel where it is encapsulated; none without that IP. */
function underlayRoute(t: TopologyCore, dst: Cidr, via: MeshNode): Route | undefined {
  const gw = internalIPOf(via, dst.family);
  if (gw === undefined) return undefined;
  const dev = isEncapsulated(t, via, gw) ? t.options.tunnelDevice : t.options.underlayDevice;
  return { dst, gw, dev, onlink: true, table: 'main' };
}

/**
 * Routes to a member of this node's underlay group (with `--local`): its pod CIDRs via its internal
 * IP. When that traffic is encapsulated, packets from local pods — and on a leader, packets coming out
 * of the WireGuard device — to the member's internal IP itself take the tunnel too (table 1107), so
 * replies come back the way the member expects.
 */
function underlayMemberRoutes(t: TopologyCore, member: MeshNode, leader: boolean, out: RouteSet): void {
  if (member.internalIP === undefined) return;
  for (const pod of member.podCIDRs) {
    const route = underlayRoute(t, pod, member);
    if (route !== undefined) out.route(route);
  }
  const gw = ipOf(member.internalIP);
  if (!isEncapsulated(t, member, gw)) return;
  const to = hostCidr(gw);
  out.route({ dst: to, gw, dev: t.options.tunnelDevice, onlink: true, table: ENCAPSULATION_TABLE });
  for (const from of t.node.podCIDRs) {
    if (from.family === gw.family) out.rule({ from, to, table: ENCAPSULATION_TABLE });
  }
  if (leader) out.rule({ to, iif: t.options.wireguardDevice, table: ENCAPSULATION_TABLE });
}
