// Which member of a segment terminates its WireGuard tunnel (Kilo's findLeader).
import type { Endpoint } from '../model/endpoint.js';
import { isPrivateIp } from '../model/ip.js';
import type { MeshNode } from '../model/mesh.js';

/** Reachable from other sites: an IP outside RFC 1918 and ULA. A DNS name is not known to be public. */
export function isPublicEndpoint(endpoint: Endpoint | undefined): boolean {
  return endpoint !== undefined && endpoint.host.kind === 'ip' && !isPrivateIp(endpoint.host.ip);
}

/**
 * Kilo's rule among the members whose tunnels are not marked broken (tunnel-health.ts); with no
 * mark anywhere it is Kilo's election unchanged. When every member is marked, churning would only
 * black the location out again: the one leading now (it publishes its WireGuard IP) stays, else
 * Kilo's rule among all.
 */
export function electLeader(members: readonly MeshNode[]): MeshNode {
  const eligible = members.filter((n) => !n.tunnelsBroken);
  if (eligible.length > 0) return kiloLeader(eligible);
  const leading = members.filter((n) => n.wireguardIPs !== undefined);
  return kiloLeader(leading.length > 0 ? leading : members);
}

/**
 * Scanning `members` (sorted by name): the first with the leader annotation and a public endpoint,
 * else the first annotated, else the first with a public endpoint, else the first.
 */
function kiloLeader(members: readonly MeshNode[]): MeshNode {
  let annotated: MeshNode | undefined;
  let publicNode: MeshNode | undefined;
  for (const node of members) {
    const isPublic = isPublicEndpoint(node.endpoint);
    if (node.leader && isPublic) return node;
    if (node.leader) annotated ??= node;
    if (isPublic) publicNode ??= node;
  }
  const leader = annotated ?? publicNode ?? members[0];
  if (leader === undefined) throw new RangeError('a segment has at least one member');
  return leader;
}
