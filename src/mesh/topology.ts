// The mesh as this node sees it: segments, leaders, WireGuard addresses, AllowedIPs, routes and rules.
// Pure: everything (time included) comes in as arguments.
import type { Endpoint } from '../model/endpoint.js';
import { type Cidr, type Ip, equalCidr, formatCidr, hostCidr, ipOf, networkOf } from '../model/ip.js';
import type { WireGuardKey } from '../model/key.js';
import { type MeshNode, type MeshPeer, internalIPsOf } from '../model/mesh.js';
import { allocateWireGuardIPsPerSubnet } from './allocation.js';
import { uniquePrefixes } from './allowed-ips.js';
import { type ClaimRules, type RejectedClaim, type ReservedRange, resolveContestedClaims, resolveOrderedClaims } from './claims.js';
import { collectDiscoveredEndpoints, effectiveEndpoint } from './endpoints.js';
import { MeshError } from './error.js';
import { electLeader } from './leader.js';
import { isPeerValid, notReadyReason } from './readiness.js';
import { routesFor } from './routes.js';
import { type SegmentMembers, compareStrings, groupIntoSegments, segmentKeyOf } from './segments.js';
import type { MeshInput, MeshOptions, Segment, Topology, TopologyCore, TopologyPeer } from './types.js';

export function computeTopology(input: MeshInput, opts: MeshOptions): Topology {
  const allowWide = opts.allowWideClaims ?? false;
  const pods = checkedPodCIDRs(input.nodes, { reserved: [...infrastructureRanges(opts), ...internalIPRanges(input.nodes)], allowWide });
  const nodes = readyNodes(pods.nodes, opts);
  const node = nodes.find((n) => n.name === opts.hostname) as MeshNode;
  const members = groupIntoSegments(nodes, opts.granularity);
  const discovered = collectDiscoveredEndpoints(node, members);
  // Only kept pod CIDRs are reserved: a dropped 0.0.0.0/0 would otherwise refuse every Peer's claim.
  const rules: ClaimRules = { reserved: reservedRanges(pods.nodes, opts), allowWide };
  const sorted = sortedPeers(input.peers);
  const peerClaims = resolveOrderedClaims(sorted.map((p) => ({ kind: 'Peer', name: p.name, field: 'spec.allowedIPs', prefixes: p.allowedIPs })), rules);
  const peers = topologyPeers(sorted, peerClaims.kept, discovered);
  const locationClaims = resolveContestedClaims(
    members.flatMap((m) => m.nodes.map((n) => ({ kind: 'Node' as const, name: n.name, field: 'annotation allowed-location-ips', prefixes: n.allowedLocationIPs, group: m.key }))),
    rules,
    peers.flatMap((p) => p.allowedIPs.map((prefix) => ({ prefix, holder: `the allowed IPs of Peer "${p.name}"` }))),
  );
  const segments = buildSegments(members, allocateWireGuardIPsPerSubnet(members.map((m) => m.key), subnetsOf(opts)), locationClaims.kept, discovered);

  const localKey = segmentKeyOf(node, opts.granularity);
  const segment = segments.find((s) => s.key === localKey) as Segment;
  const leader = segment.leader.name === node.name;
  const wireguardCIDRs = subnetsOf(opts).map((subnet, i): Cidr => {
    const ip = segment.wireguardIPs[i] as Ip;
    return leader ? { family: ip.family, addr: ip.value, bits: subnet.bits } : networkOf(subnet);
  });
  const core: TopologyCore = {
    options: opts,
    node,
    segment,
    leader,
    wireguardCIDR: wireguardCIDRs[0] as Cidr,
    wireguardCIDRs,
    segments,
    peers,
    discoveredEndpoints: discovered,
    rejectedClaims: [...pods.rejected, ...peerClaims.rejected, ...locationClaims.rejected],
  };
  return { ...core, ...routesFor(core) };
}

/** What the cluster itself holds: every node's pod CIDRs and internal IP (ready or not), the WireGuard subnet, the service CIDRs. */
function reservedRanges(nodes: readonly MeshNode[], opts: MeshOptions): ReservedRange[] {
  const pods = nodes.flatMap((n) => n.podCIDRs.map((prefix) => ({ prefix, holder: `the pod CIDR of Node "${n.name}"` })));
  return [...infrastructureRanges(opts), ...pods, ...internalIPRanges(nodes)];
}

function infrastructureRanges(opts: MeshOptions): ReservedRange[] {
  return [
    ...opts.subnets.map((prefix) => ({ prefix, holder: 'the WireGuard subnet' })),
    ...(opts.serviceCIDRs ?? []).map((prefix) => ({ prefix, holder: 'the service CIDR' })),
  ];
}

function internalIPRanges(nodes: readonly MeshNode[]): ReservedRange[] {
  return nodes.flatMap((n) => internalIPsOf(n).map((ip) => ({ prefix: hostCidr(ipOf(ip)), holder: `the internal IP of Node "${n.name}"` })));
}

/**
 * Pod CIDRs are claims too (a Node's spec is input like any other): one that overlaps the WireGuard
 * or service range or a node's internal IP would route that traffic to the node (and around the
 * services' translation), one wider than a claim may be takes half the internet, and two nodes'
 * overlapping pod CIDRs leave no right owner, so the overlap is dropped from both. Nodes keep their
 * identity when nothing is dropped.
 */
function checkedPodCIDRs(nodes: readonly MeshNode[], rules: ClaimRules): { nodes: readonly MeshNode[]; rejected: readonly RejectedClaim[] } {
  const claims = resolveContestedClaims(nodes.map((n) => ({ kind: 'Node' as const, name: n.name, field: 'spec.podCIDRs', prefixes: n.podCIDRs })), rules, []);
  if (claims.rejected.length === 0) return { nodes, rejected: [] };
  const dropped = new Set(claims.rejected.map((r) => r.name));
  return { nodes: nodes.map((n, i) => (dropped.has(n.name) ? { ...n, podCIDRs: claims.kept[i] as Cidr[] } : n)), rejected: claims.rejected };
}

function topologyPeers(peers: readonly MeshPeer[], allowedIPs: readonly Cidr[][], discovered: ReadonlyMap<WireGuardKey, Endpoint>): TopologyPeer[] {
  return peers.map((p, i) => {
    const endpoint = effectiveEndpoint(p.endpoint, p.publicKey, p.persistentKeepalive, discovered);
    return {
      name: p.name,
      publicKey: p.publicKey,
      ...(p.presharedKey === undefined ? {} : { presharedKey: p.presharedKey }),
      ...(endpoint === undefined ? {} : { endpoint }),
      persistentKeepalive: p.persistentKeepalive,
      allowedIPs: allowedIPs[i] as Cidr[],
    };
  });
}

/** Leaders, addresses and AllowedIPs; `locationIPs`: per node of `members` in order, its kept allowed-location IPs. */
function buildSegments(
  members: readonly SegmentMembers[],
  addresses: ReadonlyMap<string, readonly Ip[]>,
  locationIPsByNode: readonly Cidr[][],
  discovered: ReadonlyMap<WireGuardKey, Endpoint>,
): Segment[] {
  const baseIPs = members.map((m) => {
    const own: Cidr[] = [];
    for (const member of m.nodes) {
      own.push(...member.podCIDRs);
      own.push(...internalIPsOf(member).map((c) => hostCidr(ipOf(c))));
    }
    own.push(...(addresses.get(m.key) as Ip[]).map(hostCidr));
    return uniquePrefixes(own);
  });
  let nodeIndex = 0;
  const locationIPs = members.map((m) => uniquePrefixes(m.nodes.flatMap(() => locationIPsByNode[nodeIndex++] as Cidr[])));
  return members.map((m, i): Segment => {
    // Readiness guarantees every member a key and an endpoint.
    const leader = electLeader(m.nodes);
    const publicKey = leader.publicKey as WireGuardKey;
    const allowedLocationIPs = locationIPs[i] as Cidr[];
    const wireguardIPs = addresses.get(m.key) as Ip[];
    return {
      key: m.key,
      location: m.location,
      group: m.group,
      nodes: m.nodes,
      leader,
      wireguardIP: wireguardIPs[0] as Ip,
      wireguardIPs,
      publicKey,
      endpoint: effectiveEndpoint(leader.endpoint, publicKey, leader.persistentKeepalive, discovered) as Endpoint,
      persistentKeepalive: leader.persistentKeepalive,
      allowedIPs: [...(baseIPs[i] as Cidr[]), ...allowedLocationIPs],
      allowedLocationIPs,
    };
  });
}

/** Ready nodes; throws when names repeat or the local node is missing or not ready. */
function readyNodes(nodes: readonly MeshNode[], opts: MeshOptions): MeshNode[] {
  const names = new Set<string>();
  const ready: MeshNode[] = [];
  let local: MeshNode | undefined;
  for (const node of nodes) {
    if (names.has(node.name)) throw new MeshError(`Node "${node.name}": listed twice`);
    names.add(node.name);
    if (node.name === opts.hostname) local = node;
    if (notReadyReason(node, opts.now, opts.resyncPeriodSeconds) === undefined) ready.push(node);
  }
  if (local === undefined) throw new MeshError(`Node "${opts.hostname}": not in the cluster`);
  const reason = notReadyReason(local, opts.now, opts.resyncPeriodSeconds);
  if (reason !== undefined) throw new MeshError(`Node "${opts.hostname}": not ready: ${reason}`);
  return ready;
}

function sortedPeers(peers: readonly MeshPeer[]): MeshPeer[] {
  const names = new Set<string>();
  for (const peer of peers) {
    if (names.has(peer.name)) throw new MeshError(`Peer "${peer.name}": listed twice`);
    names.add(peer.name);
  }
  return peers.filter(isPeerValid).sort((a, b) => compareStrings(a.name, b.name));
}

/** The segments this node's WireGuard device has a [Peer] for: every segment outside its underlay group. */
export function remoteSegmentsOf(t: TopologyCore): Segment[] {
  return t.segments.filter((s) => s.group !== t.segment.group);
}

/** The segment a node (ready, in this topology) belongs to. */
export function segmentOfNode(t: TopologyCore, name: string): Segment {
  const segment = t.segments.find((s) => s.nodes.some((n) => n.name === name));
  if (segment === undefined) throw new MeshError(`Node "${name}": not in the topology (missing or not ready)`);
  return segment;
}

/**
 * Every address inside the mesh — each segment's AllowedIPs (WireGuard IP included) and each Peer's
 * allowed IPs — for the NAT chain that must not masquerade them.
 */
export function meshDestinationsOf(t: TopologyCore): Cidr[] {
  return uniquePrefixes([...t.segments.flatMap((s) => s.allowedIPs), ...t.peers.flatMap((p) => p.allowedIPs)]);
}

/** The local underlay group's pod CIDRs, internal IPs and allowed-location IPs (Kilo's FORWARD accepts). */
export function localLocationPrefixesOf(t: TopologyCore): Cidr[] {
  return uniquePrefixes(
    t.segments
      .filter((s) => s.group === t.segment.group)
      .flatMap((s) => s.allowedIPs.filter((c) => !isWireGuardIPOf(s, c))),
  );
}

/** One end of the local group's encapsulation: a node's primary internal IP, and its other family's when it has one. */
export interface TunnelEnd {
  readonly internalIP: Ip;
  readonly otherInternalIP?: Ip;
}

/** The local group's nodes (this one included) as the ends of its encapsulation. */
export function tunnelMembersOf(t: TopologyCore): TunnelEnd[] {
  return t.segments
    .filter((s) => s.group === t.segment.group)
    .flatMap((s) => s.nodes)
    .flatMap((n) => (n.internalIP ? [{ internalIP: ipOf(n.internalIP), ...(n.otherInternalIP && { otherInternalIP: ipOf(n.otherInternalIP) }) }] : []));
}

function isWireGuardIPOf(segment: Segment, cidr: Cidr): boolean {
  return segment.wireguardIPs.some((ip) => equalCidr(cidr, hostCidr(ip)));
}

/** The subnets, checked: at least one, at most one per family (the CLI rejects more before this). */
function subnetsOf(opts: MeshOptions): readonly Cidr[] {
  const families = opts.subnets.map((s) => s.family);
  if (families.length === 0 || new Set(families).size !== families.length) {
    throw new MeshError(`WireGuard subnets ${opts.subnets.map((s) => formatCidr(s)).join(', ') || '(none)'}: want one per family, at least one`);
  }
  return opts.subnets;
}
