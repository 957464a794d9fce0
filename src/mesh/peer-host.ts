// What a Peer's own host (`wirelane connect`) derives from the mesh: whose view computes its
// configuration, and the routes that send the mesh's ranges through its WireGuard interface.
import { type Cidr, containsIp } from '../model/ip.js';
import type { Granularity } from '../model/mesh.js';
import type { Route } from '../model/route.js';
import type { WireGuardConfig } from '../wireguard/config.js';
import { isNodeReady } from './readiness.js';
import { compareStrings } from './segments.js';
import type { MeshInput } from './types.js';

/**
 * The node whose topology a Peer's configuration is computed from: the first ready node by name
 * (every ready node sees the same segments and Peers); undefined while none is ready.
 */
export function viewpointNode(input: MeshInput, now: number, resyncPeriodSeconds: number): string | undefined {
  return input.nodes
    .filter((n) => isNodeReady(n, now, resyncPeriodSeconds))
    .map((n) => n.name)
    .sort(compareStrings)[0];
}

/**
 * The granularity the agents publish (the first node by name that does), as `kgctl` reads it when
 * none is given: a Peer computed with another one would expect segments the nodes do not form.
 */
export function publishedGranularity(input: MeshInput): Granularity | undefined {
  return [...input.nodes].sort((a, b) => compareStrings(a.name, b.name)).find((n) => n.granularity !== undefined)?.granularity;
}

/**
 * One route per allowed IP of the configuration's peers, on `device` without a gateway (WireGuard
 * picks the peer by allowed IPs), as wg-quick adds them. A prefix holding a peer's endpoint is left
 * out: routed into the tunnel, the tunnel's own packets would loop (the sandbox and small clusters
 * reach a leader's endpoint at its internal IP, which is one of its segment's allowed IPs).
 */
export function peerRoutes(config: WireGuardConfig, device: string): Route[] {
  const endpoints = config.peers.flatMap((p) => (p.endpoint?.host.kind === 'ip' ? [p.endpoint.host.ip] : []));
  const viaTunnel = (c: Cidr): boolean => !endpoints.some((ip) => containsIp(c, ip));
  return config.peers
    .flatMap((p) => p.allowedIPs)
    .filter(viaTunnel)
    .map((dst): Route => ({ dst, dev: device, onlink: false, table: 'main' }));
}
