// Grouping nodes into segments: the units that share one WireGuard [Peer] and one WireGuard IP.
import type { Granularity, MeshNode } from '../model/mesh.js';

/** The members of a segment before its leader and address are known. */
export interface SegmentMembers {
  readonly key: string;
  /** The location of its members ('' when they have none). */
  readonly location: string;
  /** See `underlayGroupOf`. */
  readonly group: string;
  /** Sorted by name. */
  readonly nodes: readonly MeshNode[];
}

/** Code-unit order, as Go's string comparison for the ASCII names Kubernetes allows; never locale-dependent. */
export function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * `location:<location>` for nodes grouped by location, `node:<name>` otherwise. A node without an
 * internal IP cannot be reached over its location's underlay, so it is always its own segment.
 */
export function segmentKeyOf(node: MeshNode, granularity: Granularity): string {
  if (granularity === 'location' && node.internalIP !== undefined) return `location:${node.location}`;
  return `node:${node.name}`;
}

/**
 * Nodes in the same underlay group reach each other's pods over the underlay, never over WireGuard;
 * nodes in different groups are WireGuard peers (through their segments' leaders).
 *
 * - `location`: the group is the segment itself (a location, or a lone node without internal IP).
 * - `full`: every node is its own group, so every pair of nodes talks WireGuard.
 * - `cross` (not in Kilo): every node is its own segment, like `full`, so each node has its own
 *   WireGuard IP and is its own leader — there is no single gateway per location to fail. But the
 *   group is the location, like `location`: nodes of one location are not WireGuard peers of each
 *   other, none of their addresses appear in each other's AllowedIPs, and with `--local` they route
 *   to each other's pods via their internal IPs (or the tunnel, per encapsulation). A node without
 *   an internal IP has no underlay to its location and is its own group, as in `location`.
 */
export function underlayGroupOf(node: MeshNode, granularity: Granularity): string {
  if (granularity === 'full' || node.internalIP === undefined) return `node:${node.name}`;
  return `location:${node.location}`;
}

/** Segments sorted by key, members sorted by name, whatever the order of `nodes`. */
export function groupIntoSegments(nodes: readonly MeshNode[], granularity: Granularity): SegmentMembers[] {
  const byKey = new Map<string, MeshNode[]>();
  for (const node of nodes) {
    const key = segmentKeyOf(node, granularity);
    const members = byKey.get(key);
    if (members === undefined) byKey.set(key, [node]);
    else members.push(node);
  }
  const segments: SegmentMembers[] = [];
  for (const [key, members] of byKey) {
    members.sort((a, b) => compareStrings(a.name, b.name));
    const first = members[0] as MeshNode;
    segments.push({ key, location: first.location, group: underlayGroupOf(first, granularity), nodes: members });
  }
  return segments.sort((a, b) => compareStrings(a.key, b.key));
}
