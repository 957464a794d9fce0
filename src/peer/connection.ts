// A Peer's side of the mesh on its own host (`wirelane connect`): the WireGuard interface (kernel
// or wireguard-go, as the agent's), its addresses, and routes to the mesh's ranges through it, kept
// equal to what `showconf peer` computes from the cluster. Until a configuration can be computed
// the interface keeps what it has: no ready node or a Peer missing from a lagging watch is not
// evidence that the mesh is empty. Routes wait for a first handshake: the mesh's ranges hold node
// IPs the host may reach today without the tunnel (its API server among them), and a route into a
// tunnel no leader answers yet (it has not seen the Peer, or cannot be reached) would cut them off.
import { setTimeout as sleep } from 'node:timers/promises';
import { RoutesDataplane } from '../dataplane/routes/routes-dataplane.js';
import { viewpointNode, peerRoutes } from '../mesh/peer-host.js';
import { computeTopology } from '../mesh/topology.js';
import type { MeshInput, MeshOptions } from '../mesh/types.js';
import { peerConfig } from '../mesh/wireguard.js';
import type { Cidr } from '../model/ip.js';
import type { WireGuardKey } from '../model/key.js';
import { WireGuardDevice } from '../wireguard/device.js';

/**
 * The protocol of a Peer's routes: not the agent's (0x57), so a host that is both a node and a Peer
 * never has one remove the other's routes.
 */
export const PEER_ROUTE_PROTOCOL = 0x58;

export interface PeerConnectionOptions {
  readonly name: string;
  readonly interface: string;
  readonly privateKey: WireGuardKey;
  /** The Peer's own addresses (its allowed IPs), one per family. */
  readonly addresses: readonly Cidr[];
  readonly mtu: number;
  /** Where a wireguard-go this process starts writes its output. */
  readonly wireguardGoLog: string;
  /** Called when the wireguard-go this process started died: sync again (ensure re-creates it). */
  readonly onBackendExit: (line: string) => void;
  /**
   * How long a sync waits for the first handshake before it leaves the routes for the next sync;
   * undefined routes at once (without a persistent keepalive nothing starts a handshake until
   * traffic is routed into the tunnel).
   */
  readonly firstHandshakeWaitMs: number | undefined;
  /** Ends a wait for the first handshake early (the process is leaving). */
  readonly stopSignal?: AbortSignal;
}

/**
 * `awaiting-handshake`: no handshake yet, so no route to the mesh (the next sync looks again);
 * `started`: this sync wrote the routes for the first time; `routed`: routes are kept.
 */
export type RoutingState = 'awaiting-handshake' | 'started' | 'routed';

/** How often the wait for a first handshake reads the device. */
const HANDSHAKE_POLL_MS = 250;

export interface SyncReport {
  /** What changed on the device, one line each (public keys only). */
  readonly changes: readonly string[];
  readonly unresolved: readonly string[];
  readonly routesWritten: number;
  /** The node whose view computed the configuration. */
  readonly viewpoint: string;
  readonly routing: RoutingState;
}

export class PeerConnection {
  readonly device: WireGuardDevice;
  private readonly routes = new RoutesDataplane({ protocol: PEER_ROUTE_PROTOCOL });
  /** Once routed, routes stay while handshakes come and go: when in doubt, keep forwarding. */
  private routed = false;

  constructor(private readonly options: PeerConnectionOptions) {
    this.device = new WireGuardDevice({
      name: options.interface,
      outputFile: options.wireguardGoLog,
      onBackendExit: (exit) => options.onBackendExit(`wireguard-go (pid ${exit.pid}) exited (code ${exit.code}, signal ${exit.signal}); re-creating ${exit.name}`),
    });
  }

  /** Makes the interface hold the Peer's configuration from `input` and routes its ranges through it. */
  async sync(input: MeshInput, opts: Omit<MeshOptions, 'hostname'>): Promise<SyncReport> {
    const viewpoint = viewpointNode(input, opts.now, opts.resyncPeriodSeconds);
    if (viewpoint === undefined) throw new Error('no node of the cluster is ready (none has a key, an endpoint, a pod CIDR and a recent last-seen)');
    const t = computeTopology(input, { ...opts, hostname: viewpoint });
    const config = peerConfig(t, this.options.name);
    const d = this.device;
    await d.ensure();
    // A roaming leader's or Peer's endpoint is the one WireGuard learned from its packets, as on the agents.
    const roaming = new Set([...t.segments, ...t.peers].filter((p) => p.persistentKeepalive > 0).map((p) => p.publicKey));
    const applied = await d.apply({ interface: { privateKey: this.options.privateKey }, peers: config.peers }, { ignoreEndpointOf: roaming });
    await d.setMtu(this.options.mtu);
    await d.setAddresses(this.options.addresses);
    await d.up();
    const report = { changes: applied.changes, unresolved: applied.unresolved, viewpoint };
    const first = !this.routed;
    if (first) this.routed = this.options.firstHandshakeWaitMs === undefined || (await this.awaitHandshake(this.options.firstHandshakeWaitMs));
    if (!this.routed) return { ...report, routesWritten: 0, routing: 'awaiting-handshake' };
    const routes = await this.routes.apply({ routes: peerRoutes(config, this.options.interface), rules: [] });
    return { ...report, routesWritten: routes.written, routing: first ? 'started' : 'routed' };
  }

  /** Whether any peer of the device completes a handshake within `waitMs` (false when stopped). */
  private async awaitHandshake(waitMs: number): Promise<boolean> {
    const deadline = Date.now() + waitMs;
    const signal = this.options.stopSignal;
    for (;;) {
      if ((await this.device.dump()).peers.some((p) => p.latestHandshake !== undefined)) return true;
      if (Date.now() >= deadline || signal?.aborted === true) return false;
      const slept = await sleep(HANDSHAKE_POLL_MS, true, signal === undefined ? {} : { signal }).catch(() => false);
      if (!slept) return false;
    }
  }

  /** Removes the routes and the interface, and stops the wireguard-go this process started. */
  async close(): Promise<void> {
    await this.routes.cleanup();
    await this.device.destroy();
  }
}
