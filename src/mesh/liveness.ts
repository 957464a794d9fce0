// When this agent last heard from each node, by its own clock. Heartbeats are written with the
// writer's clock (a last-seen annotation) or carry none worth trusting (a Lease's version), so a
// value is only ever compared for change: the age is how long ago this agent saw it change.
//
// What an agent hears (sources/lease.ts): the node heartbeats of its own location, and one heartbeat
// per segment, renewed by the segment's leader and naming the members it judges alive. So a node of
// another location is heard through its segment's leader ("vouched for"): its leader directly, the
// other members for one window more, so that when a leader dies its successor has a window to take
// over the heartbeat before the location's live members age (the leader ages at once).
//
// A recent WireGuard handshake is proof of life too. Time during which this agent could not hear
// anyone (its own heartbeat failed, a heartbeat watch broke: an API outage) counts against nobody:
// it cannot tell an outage from a death. Nor does it bring back a node already judged gone.
import type { MeshNode } from '../model/mesh.js';

/** A heartbeat's value and when (this agent's clock, unix seconds) it was first seen with it. */
export interface Heartbeat {
  readonly value: string;
  readonly heardAt: number;
}

/** A segment heartbeat of another location, as this agent heard it. */
export interface Vouch {
  /** The leader that renews it: heard directly. */
  readonly holder: string;
  /** The members its leader judged alive: heard through it. */
  readonly members: readonly string[];
  /** When this agent last saw it renewed (its own clock, unix seconds). */
  readonly heardAt: number;
}

export interface LivenessEvidence {
  /** Per node name, its own heartbeats (see nodeHeartbeatValues and recordHeartbeats). */
  readonly heartbeats: ReadonlyMap<string, Heartbeat>;
  /** The segment heartbeats of other locations. */
  readonly vouches: readonly Vouch[];
  /** Latest WireGuard handshake per peer public key, unix seconds (this host's clock). */
  readonly handshakes: ReadonlyMap<string, number>;
  /** The end of this agent's last blind period (unix seconds; its start, or an outage's end). */
  readonly trustedSince: number;
  /** Nodes already judged gone: blind time does not bring them back, only a new heartbeat or handshake. */
  readonly gone: ReadonlySet<string>;
}

/**
 * A node's own heartbeats as one value, which changes when any of them does: its last-seen
 * annotation (Kilo's, and agents that predate Leases) and its node Lease's version where this agent
 * hears it. Nodes with neither are left out (never heard).
 */
export function nodeHeartbeatValues(nodes: readonly MeshNode[], nodeLeases: ReadonlyMap<string, string> = new Map()): Map<string, string> {
  const values = new Map<string, string>();
  for (const node of nodes) {
    const lease = nodeLeases.get(node.name);
    if (node.lastSeen === undefined && lease === undefined) continue;
    values.set(node.name, `${node.lastSeen ?? ''}/${lease ?? ''}`);
  }
  return values;
}

/**
 * The heartbeat log after seeing `values` at `now`: a changed (or first seen) value is heard now, an
 * unchanged one keeps the time it was first heard. Keys without a value (never seen, or gone from
 * the source) drop out.
 */
export function recordHeartbeats(log: ReadonlyMap<string, Heartbeat>, values: ReadonlyMap<string, string>, now: number): Map<string, Heartbeat> {
  const next = new Map<string, Heartbeat>();
  for (const [key, value] of values) {
    const previous = log.get(key);
    next.set(key, previous?.value === value ? previous : { value, heardAt: now });
  }
  return next;
}

/** A segment heartbeat as the source holds it (sources/lease.ts: HeartbeatLease). */
export interface SegmentHeartbeat {
  readonly name: string;
  readonly version: string;
  readonly holder: string;
  readonly members: readonly string[];
  readonly location: string;
}

/** A segment heartbeat as last heard with one holder: the version seen, when, and whom it vouched for. */
export interface HeardSegment extends Vouch {
  readonly lease: string;
  readonly version: string;
  readonly location: string;
}

/** Segment heartbeats heard, per Lease and holder (see recordVouches). */
export type SegmentLog = ReadonlyMap<string, HeardSegment>;

/**
 * The segment heartbeat log after seeing `segments` at `now`, and the vouches of those of other
 * locations: this agent hears its own location's nodes directly, and a vouch would only keep a dead
 * member of it alive for a window longer than its own members judge it.
 *
 * A holder's renewal replaces its earlier vouch (a member it no longer names was judged gone by it),
 * but another holder's write does not revoke it: that vouch ages out on its own. A member can claim
 * the Lease from a stale view (its first reconcile, before it heard the leader) and name itself
 * alone; the leader renews it again within a period, and meanwhile must not be judged gone.
 */
export function recordVouches(log: SegmentLog, segments: readonly SegmentHeartbeat[], ownLocation: string, now: number, windowSeconds: number): { readonly log: SegmentLog; readonly vouches: Vouch[] } {
  const next = new Map<string, HeardSegment>();
  for (const s of segments) {
    const key = `${s.name}/${s.holder}`;
    const previous = log.get(key);
    next.set(key, previous?.version === s.version ? previous : { lease: s.name, version: s.version, location: s.location, holder: s.holder, members: s.members, heardAt: now });
  }
  const leases = new Set(segments.map((s) => s.name));
  // Kept until even its members have aged out (heardAt below): two windows.
  for (const [key, heard] of log) if (!next.has(key) && leases.has(heard.lease) && now - heard.heardAt < 2 * windowSeconds) next.set(key, heard);
  const vouches = [...next.values()].filter((s) => s.location !== ownLocation).map(({ holder, members, heardAt }) => ({ holder, members, heardAt }));
  return { log: next, vouches };
}

/**
 * When this agent last heard from `node` (unix seconds, its own clock), or undefined when never.
 * `windowSeconds` is how long a node may go unheard: a vouched-for member keeps it once more.
 */
export function heardAt(node: MeshNode, evidence: LivenessEvidence, now: number, windowSeconds: number): number | undefined {
  let heard = evidence.heartbeats.get(node.name)?.heardAt;
  for (const vouch of evidence.vouches) {
    const through =
      vouch.holder === node.name ? vouch.heardAt : vouch.members.includes(node.name) ? Math.min(now, vouch.heardAt + windowSeconds) : undefined;
    if (through !== undefined) heard = Math.max(heard ?? through, through);
  }
  if (heard === undefined) return undefined;
  const handshake = node.publicKey === undefined ? undefined : evidence.handshakes.get(node.publicKey);
  return Math.max(heard, handshake ?? -Infinity, evidence.gone.has(node.name) ? -Infinity : evidence.trustedSince);
}

/** The nodes this agent has not heard from within `windowSeconds` at `now` (see LivenessEvidence.gone). */
export function goneNodes(nodes: readonly MeshNode[], evidence: LivenessEvidence, now: number, windowSeconds: number): Set<string> {
  const gone = new Set<string>();
  for (const node of nodes) {
    const heard = heardAt(node, evidence, now, windowSeconds);
    if (heard !== undefined && now - heard >= windowSeconds) gone.add(node.name);
  }
  return gone;
}
