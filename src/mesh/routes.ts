// The routes and policy rules this node needs (Kilo's Topology.Routes), leader and non-leader.
import { type Cidr, type Ip, containsIp, equalIp, hostCidr, ipOf, networkOf } from '../model/ip.js';
import type { MeshNode } from '../model/mesh.js';
import { ENCAPSULATION_TABLE, type Route, type Rule } from '../model/route.js';
import { prefixKey } from './allowed-ips.js';
import type { TopologyCore } from './types.js';

/**
 * Routes and rules in a deterministic order (segments by key, members by name, Peers by name).
 *
 * The kernel knows a route by table and destination, so a destination that comes up twice keeps its
 * first route. A gateway or source of the other address family than the destination is left out
 * (the kernel and the routes dataplane reject it): on the WireGuard device an IPv6 pod CIDR is
 * routed with no gateway, as WireGuard picks the [Peer] by AllowedIPs anyway; over the underlay, a
 * destination whose only gateway is of the other family (an IPv6 pod CIDR behind an IPv4-only
 * internal IP) cannot be routed and gets no route.
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

/** A route over the WireGuard device via a segment's WireGuard IP. */
function wireguardRoute(dst: Cidr, gw: Ip, src: Ip | undefined, dev: string): Route {
  const sameFamily = gw.family === dst.family;
  return {
    dst,
    ...(sameFamily ? { gw } : {}),
    dev,
    ...(src !== undefined && src.family === dst.family ? { src } : {}),
    onlink: sameFamily,
    table: 'main',
  };
}

/**
 * The source of this leader's own packets over WireGuard: its internal IP (as Kilo), except when
 * that is its endpoint, which remote segments reach over the underlay, never through the tunnel
 * (it would loop): then replies would need a path outside WireGuard, which separate sites do not
 * have, and the segment's WireGuard IP is taken.
 */
function leaderSource(t: TopologyCore): Ip | undefined {
  const internal = t.node.internalIP && ipOf(t.node.internalIP);
  const endpoint = t.segment.endpoint.host;
  if (internal !== undefined && endpoint.kind === 'ip' && equalIp(internal, endpoint.ip)) return t.segment.wireguardIP;
  return internal;
}

function leaderRoutes(t: TopologyCore, out: RouteSet): void {
  const { wireguardDevice } = t.options;
  const src = leaderSource(t);
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
      for (const pod of member.podCIDRs) out.route(wireguardRoute(pod, segment.wireguardIP, src, wireguardDevice));
      const internal = member.internalIP && ipOf(member.internalIP);
      // A member reachable only at its endpoint IP cannot be reached through a tunnel to that IP.
      if (internal === undefined || (endpointIp !== undefined && equalIp(internal, endpointIp))) continue;
      out.route(wireguardRoute(hostCidr(internal), segment.wireguardIP, src, wireguardDevice));
    }
    for (const cidr of segment.allowedLocationIPs) {
      out.route(wireguardRoute(cidr, segment.wireguardIP, src, wireguardDevice));
    }
  }
  for (const peer of t.peers) {
    for (const dst of peer.allowedIPs) out.route({ dst, dev: wireguardDevice, onlink: false, table: 'main' });
  }
}

function nonLeaderRoutes(t: TopologyCore, out: RouteSet): void {
  // A non-leader is in a location segment, whose members all have internal IPs.
  const gw = ipOf(t.segment.leader.internalIP as Cidr);
  const viaLeader = (dst: Cidr): void => {
    if (dst.family === gw.family) out.route(underlayRoute(t, dst, gw));
  };
  for (const segment of t.segments) {
    viaLeader(hostCidr(segment.wireguardIP));
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
      if (member.internalIP !== undefined) viaLeader(hostCidr(ipOf(member.internalIP)));
    }
    segment.allowedLocationIPs.forEach(viaLeader);
  }
  for (const peer of t.peers) peer.allowedIPs.forEach(viaLeader);
}

/** `always`, or `crosssubnet` when the gateway is outside this node's internal network. */
function isEncapsulated(t: TopologyCore, gw: Ip): boolean {
  const { encapsulate } = t.options;
  if (encapsulate === 'always') return true;
  if (encapsulate === 'never') return false;
  return t.node.internalIP === undefined || !containsIp(t.node.internalIP, gw);
}

function underlayRoute(t: TopologyCore, dst: Cidr, gw: Ip): Route {
  const dev = isEncapsulated(t, gw) ? t.options.tunnelDevice : t.options.underlayDevice;
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
  const gw = ipOf(member.internalIP);
  for (const pod of member.podCIDRs) {
    if (pod.family === gw.family) out.route(underlayRoute(t, pod, gw));
  }
  if (!isEncapsulated(t, gw)) return;
  const to = hostCidr(gw);
  out.route({ dst: to, gw, dev: t.options.tunnelDevice, onlink: true, table: ENCAPSULATION_TABLE });
  for (const from of t.node.podCIDRs) {
    if (from.family === gw.family) out.rule({ from, to, table: ENCAPSULATION_TABLE });
  }
  if (leader) out.rule({ to, iif: t.options.wireguardDevice, table: ENCAPSULATION_TABLE });
}
