// Endpoints of roaming (NATed) nodes and Peers: where WireGuard actually saw them beats where they say they are.
import type { Endpoint } from '../model/endpoint.js';
import type { WireGuardKey } from '../model/key.js';
import type { MeshNode } from '../model/mesh.js';

/**
 * Every discovered endpoint, keyed by public key: the local node's own observations first (its device
 * saw the handshake), then the other nodes' in segment-key order and name order within a segment.
 */
export function collectDiscoveredEndpoints(
  local: MeshNode,
  segments: readonly { readonly nodes: readonly MeshNode[] }[],
): Map<WireGuardKey, Endpoint> {
  const discovered = new Map<WireGuardKey, Endpoint>(local.discoveredEndpoints);
  for (const segment of segments) {
    for (const node of segment.nodes) {
      for (const [key, endpoint] of node.discoveredEndpoints) {
        if (!discovered.has(key)) discovered.set(key, endpoint);
      }
    }
  }
  return discovered;
}

/** A host with a persistent keepalive is roaming: its discovered endpoint replaces the declared one. */
export function effectiveEndpoint(
  declared: Endpoint | undefined,
  key: WireGuardKey,
  persistentKeepalive: number,
  discovered: ReadonlyMap<WireGuardKey, Endpoint>,
): Endpoint | undefined {
  if (persistentKeepalive <= 0) return declared;
  return discovered.get(key) ?? declared;
}
