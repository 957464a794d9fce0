// When this agent last heard from each node, by its own clock. A node's last-seen annotation is
// written with the writer's clock, so its value is only ever compared for change: the age is how
// long ago this agent saw it change. A recent WireGuard handshake is proof of life too. Time during
// which this agent could not hear anyone (its own heartbeat failed: an API outage) counts against
// nobody: it cannot tell an outage from a death. Nor does it bring back a node already judged gone.
import type { MeshNode } from '../model/mesh.js';

/** A node's last-seen value and when (this agent's clock, unix seconds) it was first seen with it. */
export interface Heartbeat {
  readonly value: number;
  readonly heardAt: number;
}

export interface LivenessEvidence {
  /** Per node name; see recordHeartbeats. */
  readonly heartbeats: ReadonlyMap<string, Heartbeat>;
  /** Latest WireGuard handshake per peer public key, unix seconds (this host's clock). */
  readonly handshakes: ReadonlyMap<string, number>;
  /** The end of this agent's last blind period (unix seconds; its start, or an outage's end). */
  readonly trustedSince: number;
  /** Nodes already judged gone: blind time does not bring them back, only a new heartbeat or handshake. */
  readonly gone: ReadonlySet<string>;
}

/**
 * The heartbeat log after seeing `nodes` at `now`: a changed (or first seen) last-seen value is
 * heard now, an unchanged one keeps the time it was first heard. Nodes without a last-seen value
 * (never seen) and nodes that are gone drop out.
 */
export function recordHeartbeats(log: ReadonlyMap<string, Heartbeat>, nodes: readonly MeshNode[], now: number): Map<string, Heartbeat> {
  const next = new Map<string, Heartbeat>();
  for (const node of nodes) {
    if (node.lastSeen === undefined) continue;
    const previous = log.get(node.name);
    next.set(node.name, previous?.value === node.lastSeen ? previous : { value: node.lastSeen, heardAt: now });
  }
  return next;
}

/** When this agent last heard from `node` (unix seconds, its own clock), or undefined when never. */
export function heardAt(node: MeshNode, evidence: LivenessEvidence): number | undefined {
  const heartbeat = evidence.heartbeats.get(node.name);
  if (heartbeat === undefined) return undefined;
  const handshake = node.publicKey === undefined ? undefined : evidence.handshakes.get(node.publicKey);
  return Math.max(heartbeat.heardAt, handshake ?? -Infinity, evidence.gone.has(node.name) ? -Infinity : evidence.trustedSince);
}

/** The nodes this agent has not heard from within `windowSeconds` at `now` (see LivenessEvidence.gone). */
export function goneNodes(nodes: readonly MeshNode[], evidence: LivenessEvidence, now: number, windowSeconds: number): Set<string> {
  const gone = new Set<string>();
  for (const node of nodes) {
    const heard = heardAt(node, evidence);
    if (heard !== undefined && now - heard >= windowSeconds) gone.add(node.name);
  }
  return gone;
}
