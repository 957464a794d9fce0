// WireGuard configurations derived from a topology: this node's device, a segment as seen from a
// foreign host, and a Peer's. Private keys are not part of a topology: the caller adds its own.
import type { Endpoint } from '../model/endpoint.js';
import type { Cidr } from '../model/ip.js';
import type { WireGuardKey } from '../model/key.js';
import type { WireGuardConfig, WireGuardPeer } from '../wireguard/config.js';
import { MeshError } from './error.js';
import { compareStrings } from './segments.js';
import { remoteSegmentsOf } from './topology.js';
import type { Segment, Topology, TopologyPeer } from './types.js';

function peerEntry(
  publicKey: WireGuardKey,
  endpoint: Endpoint | undefined,
  allowedIPs: readonly Cidr[],
  persistentKeepalive: number | undefined,
  presharedKey?: WireGuardKey,
): WireGuardPeer {
  return {
    publicKey,
    ...(presharedKey === undefined ? {} : { presharedKey }),
    ...(endpoint === undefined ? {} : { endpoint }),
    allowedIPs,
    ...(persistentKeepalive !== undefined && persistentKeepalive > 0 ? { persistentKeepalive } : {}),
  };
}

/**
 * The local device: its listen port, one [Peer] per remote segment (its leader's key and endpoint)
 * and one per Peer, each with the local node's persistent keepalive. A non-leader's device stays
 * down, so it has no peers.
 */
export function nodeConfig(t: Topology): WireGuardConfig {
  if (!t.leader) return { interface: { listenPort: t.options.port }, peers: [] };
  const keepalive = t.node.persistentKeepalive;
  return {
    interface: { listenPort: t.options.port },
    peers: [
      ...remoteSegmentsOf(t).map((s) => peerEntry(s.publicKey, s.endpoint, s.allowedIPs, keepalive)),
      ...t.peers.map((p) => peerEntry(p.publicKey, p.endpoint, p.allowedIPs, keepalive, p.presharedKey)),
    ],
  };
}

/**
 * A segment as one [Peer] for a WireGuard host outside the mesh (`showconf node --as-peer`). Unlike
 * Kilo it includes the allowed-location IPs, so the foreign host reaches them too.
 */
export function segmentAsPeer(t: Topology, segmentKey: string): WireGuardPeer {
  const segment = t.segments.find((s) => s.key === segmentKey);
  if (segment === undefined) throw new MeshError(`segment "${segmentKey}": not in the topology`);
  return peerEntry(segment.publicKey, segment.endpoint, segment.allowedIPs, undefined);
}

/**
 * The configuration a Peer needs (`showconf peer NAME`, `connect NAME`): no interface settings, one
 * [Peer] per segment and one per other Peer, all with this Peer's keepalive; its preshared key is
 * shared with the segments (their [Peer] for it carries the same key). The service CIDRs go to one
 * segment (serviceSegmentOf): WireGuard routes a prefix to one peer only.
 */
export function peerConfig(t: Topology, name: string): WireGuardConfig {
  const self = t.peers.find((p) => p.name === name);
  if (self === undefined) throw new MeshError(`Peer "${name}": not in the topology (missing or no allowed IPs)`);
  const keepalive = self.persistentKeepalive;
  const services = serviceSegmentOf(t);
  const allowedIPsOf = (s: Segment): readonly Cidr[] => (s === services ? [...s.allowedIPs, ...(t.options.serviceCIDRs ?? [])] : s.allowedIPs);
  return {
    interface: {},
    peers: [
      ...t.segments.map((s: Segment) => peerEntry(s.publicKey, s.endpoint, allowedIPsOf(s), keepalive, self.presharedKey)),
      ...t.peers
        .filter((p: TopologyPeer) => p.name !== name)
        .map((p) => peerEntry(p.publicKey, p.endpoint, p.allowedIPs, keepalive)),
    ],
  };
}

/**
 * The segment a Peer sends service traffic to: the one holding the first ready node by name, as
 * `kgctl connect --allowed-ips` adds the service range to that node's allowed-location IPs. Any
 * node translates ClusterIPs, so any segment would do; a fixed rule keeps every Peer's choice the
 * same and moves it only when that node leaves.
 */
export function serviceSegmentOf(t: Topology): Segment | undefined {
  let first: { name: string; segment: Segment } | undefined;
  for (const segment of t.segments) {
    for (const n of segment.nodes) if (first === undefined || compareStrings(n.name, first.name) < 0) first = { name: n.name, segment };
  }
  return first?.segment;
}
