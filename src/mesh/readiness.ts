// Which nodes may enter the topology: Kilo's `Node.Ready()`, with the reason kept for error messages.
import type { MeshNode, MeshPeer } from '../model/mesh.js';

/**
 * Why `node` cannot enter the topology at `now` (unix seconds), or undefined when it can.
 * A node that was never seen (lastSeen undefined) is not ready: sources that have no heartbeat
 * (the cluster file) set lastSeen to now themselves.
 */
export function notReadyReason(node: MeshNode, now: number, resyncPeriodSeconds: number): string | undefined {
  if (node.endpoint === undefined) return 'no endpoint';
  if (!(node.endpoint.port > 0)) return 'endpoint has no port';
  if (node.publicKey === undefined) return 'no WireGuard public key';
  if (node.podCIDRs.length === 0) return 'no pod CIDR';
  if (node.lastSeen === undefined) return 'never seen (no last-seen)';
  const age = now - node.lastSeen;
  if (!(age < 2 * resyncPeriodSeconds)) {
    return `last seen ${age} s ago, not within 2 × the ${resyncPeriodSeconds} s resync period`;
  }
  return undefined;
}

export function isNodeReady(node: MeshNode, now: number, resyncPeriodSeconds: number): boolean {
  return notReadyReason(node, now, resyncPeriodSeconds) === undefined;
}

/** A Peer is usable once it claims at least one address (its key is validated when parsed). */
export function isPeerValid(peer: MeshPeer): boolean {
  return peer.allowedIPs.length > 0;
}
