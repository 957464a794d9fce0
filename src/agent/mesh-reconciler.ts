// The mesh half of the agent: cluster objects → topology (pure) → WireGuard device, routes, tunnel
// and iptables, each written only where it differs. Each step fails on its own: it is logged once,
// counted in wirelane_errors_total{step}, and retried at the next resync while the others go on.
import { join } from 'node:path';
import { removeCniConfigFile, writeCniConfigFile } from '../cni/conf-file.js';
import { CNI_BRIDGE, type CniConfigList, type CniNetwork, cniNetworkOf, formatCniConfigList } from '../cni/conflist.js';
import type { FastPathDatapath, FastPathDesired } from '../dataplane/ebpf/fast-path.js';
import { IptablesChains } from '../dataplane/iptables/chains.js';
import { computeMeshRules } from '../dataplane/iptables/mesh-rules.js';
import type { DesiredRules } from '../dataplane/iptables/ruleset.js';
import { PartialApplyError } from '../dataplane/partial-apply.js';
import { RoutesDataplane, type RoutingState } from '../dataplane/routes/routes-dataplane.js';
import { TunnelDevice, type TunnelDesired, VXLAN_DEVICE } from '../dataplane/tunnel/index.js';
import { renderGraph } from '../mesh/graph.js';
import { type Heartbeat, type LivenessEvidence, type SegmentLog, goneNodes, heardAt, nodeHeartbeatValues, recordHeartbeats, recordVouches } from '../mesh/liveness.js';
import { localLocationPrefixesOf, meshDestinationsOf, remoteSegmentsOf, tunnelMembersOf } from '../mesh/topology.js';
import { TopologyMemo } from '../mesh/topology-memo.js';
import { meshMtuOf } from '../mesh/mtu.js';
import type { MeshInput, MeshOptions, Topology } from '../mesh/types.js';
import { nodeConfig } from '../mesh/wireguard.js';
import { type Endpoint, equalEndpoint, formatEndpoint, parseEndpoint } from '../model/endpoint.js';
import { type Cidr, ParseError, equalCidr, formatCidr, ipOf, parseCidr, parseCidrPerFamily } from '../model/ip.js';
import type { WireGuardKey } from '../model/key.js';
import type { MeshNode } from '../model/mesh.js';
import { errorLine } from '../observability/first-line.js';
import type { Logger } from '../observability/logger.js';
import type { AgentMetrics, WriteKind } from '../observability/metrics.js';
import { ANNOTATIONS, type AnnotationSuffix, PREFIX, SHARED_BY_FILE, readAnnotation } from '../sources/annotations.js';
import { lastSeenAnnouncing } from '../sources/last-seen-readers.js';
import { type DecodedMeshInput, MeshInputDecoder } from '../sources/mesh-input.js';
import type { ClusterSource, Heartbeats, LeadSegment, SourceObject } from '../sources/source.js';
import type { WireGuardConfig } from '../wireguard/config.js';
import { WireGuardDevice } from '../wireguard/device.js';
import type { AgentConfig } from './config.js';
import { discoverAddresses } from './discovery.js';
import { LastResult } from './last-result.js';
import { ProblemReporter } from './problem-reporter.js';
import { rejectedClaimProblem } from '../sources/problem.js';
import type { SyncResult } from './sync-health.js';
import { TunnelWatch } from './tunnel-watch.js';

const MESH_STEPS = ['discover', 'annotate', 'topology', 'wireguard', 'routes', 'tunnel', 'iptables', 'cni', 'fast-path', 'tunnel-health'] as const;
export type MeshStep = (typeof MESH_STEPS)[number];

/** What the agent learned about its own host this round. */
interface HostView {
  readonly endpoint: Endpoint | undefined;
  readonly internalIP: Cidr | undefined;
  readonly otherInternalIP: Cidr | undefined;
  readonly underlayDevice: string;
  readonly underlayMtu: number;
}

export interface MeshReconcilerDeps {
  readonly config: AgentConfig;
  readonly log: Logger;
  readonly metrics: AgentMetrics;
  readonly privateKey: WireGuardKey;
  readonly publicKey: WireGuardKey;
  readonly source: ClusterSource;
  /** Asks the loop for another reconcile (e.g. after wireguard-go died). */
  readonly requestReconcile: () => void;
  /** The fast path, when --fast-path runs it. */
  readonly fastPath?: FastPathDatapath;
}

export class MeshReconciler {
  readonly device: WireGuardDevice;
  private readonly routes = new RoutesDataplane();
  // Read and compared on every resync, as Kilo's iptables controller checks its rules: a handful of
  // chains, and WIRELANE-TUNNEL's DROP of encapsulated packets from non-members must come back
  // within a resync when someone deletes it, not within the service proxy's hour.
  private readonly iptables = new IptablesChains({ fullSyncPeriodMs: 0 });
  private tunnel: TunnelDevice | undefined;
  private topology: Topology | undefined;
  /** Whether last-seen went out once: after that only alongside another annotation's change (Kilo's readers). */
  private lastSeenPublished = false;
  /** Other nodes' own heartbeats and when this agent saw each change (see mesh/liveness.ts). */
  private heartbeats: ReadonlyMap<string, Heartbeat> = new Map();
  /** Segment heartbeats (their Leases' versions) and when this agent saw each change. */
  private segmentHeartbeats: SegmentLog = new Map();
  /** The end of this agent's last blind period: its start, a failed renewal, a heartbeat watch (re)opened. */
  private trustedSince = Math.floor(Date.now() / 1000);
  private gone: ReadonlySet<string> = new Set();
  /** Why the last reconcile wrote no CNI configuration, logged once per reason. */
  private cniMissing: string | undefined;
  /** Without --cni, an earlier run's file is looked for once: nothing here writes one again. */
  private oldCniFileGone = false;
  private appliedOnce = false;
  /** The failed steps of the reconcile in progress, one line each. */
  private failures: string[] = [];
  private readonly problems: ProblemReporter;
  /** Each Node and Peer decoded once, when it changes. */
  private readonly decoder: MeshInputDecoder;
  /** The source's last snapshot and its decoding: a source hands out the same snapshot until something changed. */
  private lastDecode: { readonly objects: readonly SourceObject[]; readonly decoded: DecodedMeshInput } | undefined;
  /**
   * This reconcile's read of the host's addresses, links and the routes dataplane's routes and rules
   * (one read where discovery, the WireGuard device and the routes each read their own), and whether
   * a step since may have taken routes or rules with it (a device set down or removed, an address
   * removed, the tunnel rewritten): then the routes read again. A device created since is no reason:
   * the routes look for a device the read did not have before they give up on its routes.
   */
  private hostRead: Awaited<ReturnType<RoutesDataplane['readWithAddressing']>> | undefined;
  private routingStale = false;
  /** Whether this reconcile's wireguard step found or made the device. */
  private deviceEnsured = false;
  /** The host as last discovered: handed on again while it is the same, so the topology's inputs are too. */
  private host: HostView | undefined;
  /**
   * A resync with nothing changed computes nothing again (at 1,000 nodes it allocated ~30 MiB): the
   * same topology, and from it the same desired state per dataplane. Each dataplane still reads the
   * host's state and repairs what differs from it.
   */
  private readonly topologyMemo = new TopologyMemo();
  private readonly desired = {
    segment: new LastResult<LeadSegment | undefined>(),
    wireguard: new LastResult<{ readonly config: WireGuardConfig; readonly roaming: ReadonlySet<WireGuardKey> }>(),
    tunnel: new LastResult<TunnelDesired>(),
    iptables: new LastResult<DesiredRules>(),
    /** The configuration list with its text, or why there is none. */
    cni: new LastResult<Exclude<CniNetwork, { readonly list: unknown }> | { readonly list: CniConfigList; readonly text: string }>(),
    fastPath: new LastResult<FastPathDesired>(),
  };
  private readonly claims: ProblemReporter;
  /** This node's tunnels-broken mark: a leader's verdict on its own tunnels (Kilo #489). */
  private readonly tunnelWatch: TunnelWatch;
  /** The annotation's value while marked: when it was marked (this agent's clock), for people. */
  private tunnelsBrokenSince: string | undefined;

  constructor(private readonly deps: MeshReconcilerDeps) {
    // Every step's series exists from the start, so "no errors" reads as 0 rather than absent.
    for (const step of MESH_STEPS) deps.metrics.errors.inc({ step }, 0);
    this.problems = new ProblemReporter(deps.log, deps.metrics);
    this.decoder = new MeshInputDecoder({ topologyLabel: deps.config.topologyLabel });
    this.claims = new ProblemReporter(deps.log, deps.metrics, (p) => deps.metrics.rejectedClaims.inc({ kind: p.kind }));
    // Hysteresis: a broken mark clears after three resync periods of working tunnels.
    this.tunnelWatch = new TunnelWatch((3 * deps.config.resyncPeriodMs) / 1000, deps.config.resyncPeriodMs / 1000);
    for (const mark of ['broken', 'cleared']) deps.metrics.tunnelMarkChanges.inc({ mark }, 0);
    this.device = new WireGuardDevice({
      name: deps.config.interface,
      userspace: deps.config.userspaceWireGuard,
      outputFile: join(deps.config.stateDir, `wireguard-go-${deps.config.interface}.log`),
      onBackendExit: (exit) => {
        deps.log.error(`wireguard-go (pid ${exit.pid}) exited (code ${exit.code}, signal ${exit.signal}); re-creating ${exit.name}`);
        deps.metrics.errors.inc({ step: 'wireguard' });
        deps.requestReconcile();
      },
      onExternalGone: () => {
        deps.log.error(`the wireguard-go serving ${deps.config.interface} went away (its container restarted?); waiting for the next one`);
        deps.metrics.errors.inc({ step: 'wireguard' });
        deps.requestReconcile();
      },
    });
  }

  /** True after the first reconcile in which every step succeeded. */
  get ready(): boolean {
    return this.appliedOnce;
  }

  graph(): string | undefined {
    return this.topology && renderGraph(this.topology);
  }

  /** The last topology computed; undefined before the first. */
  get lastTopology(): Topology | undefined {
    return this.topology;
  }

  /** One pass over every step; successful only when each of them succeeded. */
  async reconcile(): Promise<SyncResult> {
    const endTimer = this.deps.metrics.reconcileDuration.startTimer();
    this.failures = [];
    this.hostRead = undefined;
    this.routingStale = false;
    this.deviceEnsured = false;
    try {
      const now = Math.floor(Date.now() / 1000);
      const host = await this.step('discover', () => this.discoverHost());
      if (host === undefined) return this.outcome();
      await this.step('annotate', () => this.publishNode(host, now, false));
      // The tunnel's kind (IPIP or VXLAN) names the device the topology's routes use.
      if (this.deps.config.encapsulate !== 'never' && this.tunnel === undefined) {
        this.routingStale = true; // opening it may replace a device
        this.tunnel = await this.step('tunnel', () => TunnelDevice.open());
      }
      const t = await this.step('topology', async () => this.topologyMemo.compute(await this.meshInput(host, now), this.meshOptions(host, now)));
      if (t === undefined) return this.outcome();
      if (t !== this.topology) this.claims.report(t.rejectedClaims.map(rejectedClaimProblem));
      this.topology = t;
      // The leader renews its segment's heartbeat for the other locations, naming the members it sees alive.
      this.deps.source.heartbeats?.lead(
        this.desired.segment.of([t], () => (t.leader ? { key: t.segment.key, location: t.node.location, members: t.segment.nodes.map((n) => n.name) } : undefined)),
      );
      this.deps.metrics.nodes.set(t.segments.reduce((n, s) => n + s.nodes.length, 0));
      this.deps.metrics.peers.set(t.peers.length);
      this.deps.metrics.leader.set(t.leader ? 1 : 0);
      // The iptables rules depend on none of the devices and routes: they are written while those are
      // (each step waits on its commands most of the time). The CNI file stays last: pods start once it is there.
      const iptables = this.step('iptables', () => this.applyIptables(t, host));
      // WireGuard first: leader routes go through its device.
      const results = [
        await this.step('wireguard', () => this.applyWireGuard(t, host)),
        await this.step('tunnel', () => this.applyTunnel(t, host)),
        await this.step('routes', () => this.countPartial('route', this.routes.apply(t, this.routingRead()))),
        await iptables,
        await this.step('cni', () => this.applyCni(t, host)),
        ...(this.deps.fastPath ? [await this.step('fast-path', () => this.applyFastPath(t, host, this.deps.fastPath as FastPathDatapath))] : []),
      ];
      if (this.deps.source.publisher !== undefined || this.deps.source.sharedAnnotations !== undefined) await this.step('tunnel-health', () => this.judgeTunnels(t, now));
      await this.step('annotate', () => this.publishNode(host, now, true));
      if (results.every((r) => r !== undefined) && !this.appliedOnce) {
        this.appliedOnce = true;
        this.deps.log.info({ leader: t.leader, segment: t.segment.key, segments: t.segments.length, peers: t.peers.length }, 'mesh applied');
      }
      return this.outcome();
    } finally {
      endTimer();
    }
  }

  private outcome(): SyncResult {
    return this.failures.length === 0 ? { ok: true } : { ok: false, error: this.failures.join('; ') };
  }

  /** Runs one step; a failure is logged and counted and the step's result is undefined. */
  private async step<T>(step: MeshStep, work: () => Promise<T>): Promise<T | undefined> {
    try {
      return await work();
    } catch (err) {
      const line = `${step}: ${errorLine(err)}`;
      this.failures.push(line);
      this.deps.metrics.errors.inc({ step });
      this.deps.log.error(line);
      return undefined;
    }
  }

  private count(kind: WriteKind, n: number): number {
    this.deps.metrics.countWrites(kind, n);
    return n;
  }

  /** Counts the writes of an apply, including those that succeeded before a partial failure. */
  private async countPartial(kind: WriteKind, apply: Promise<{ readonly written: number }>): Promise<number> {
    try {
      return this.count(kind, (await apply).written);
    } catch (err) {
      if (err instanceof PartialApplyError) this.count(kind, err.written);
      throw err;
    }
  }

  /** The routes' part of this reconcile's read while it still holds, with the WireGuard device when the wireguard step made sure of it. */
  private routingRead(): RoutingState | undefined {
    const routing = this.routingStale ? undefined : this.hostRead?.routing;
    if (routing === undefined || !this.deviceEnsured || routing.devices.has(this.device.name)) return routing;
    return { ...routing, devices: new Set([...routing.devices, this.device.name]) };
  }

  private async discoverHost(): Promise<HostView> {
    const read = await this.routes.readWithAddressing();
    this.hostRead = read;
    const { addresses, links, mainRoutes } = read.addressing;
    const defaultDevices = new Set(mainRoutes.filter((r) => r.dst === '0.0.0.0/0' || r.dst === '::/0').map((r) => r.dev));
    const found = discoverAddresses(
      addresses
        .filter((a) => a.scope === 'global')
        .map((a) => ({ iface: a.ifname, cidr: parseCidr(a.cidr), onDefaultRoute: defaultDevices.has(a.ifname) })),
      this.deps.config.internalCidrs,
      { interfaces: [this.deps.config.interface, VXLAN_DEVICE], meshSubnets: this.deps.config.subnets },
    );
    const self = this.ownObject();
    const forcedEndpoint = this.forced(self, ANNOTATIONS.forceEndpoint, parseEndpoint);
    const forcedInternal = this.forced(self, ANNOTATIONS.forceInternalIP, (v) => (v === '' || v === '-' ? null : parseCidrPerFamily(v)));
    const [internalIP, otherInternalIP] = forcedInternal === null ? [] : (forcedInternal ?? [found.internalIP, found.otherInternalIP]);
    const endpoint = forcedEndpoint ?? (found.endpointIP && { host: { kind: 'ip' as const, ip: ipOf(found.endpointIP) }, port: this.deps.config.port });
    const anchor = internalIP ?? found.endpointIP;
    const device = addresses.find((a) => anchor !== undefined && a.cidr.split('/')[0] === formatCidr(anchor).split('/')[0]);
    const link = device && links.find((l) => l.name === device.ifname);
    const host = { endpoint, internalIP, otherInternalIP, underlayDevice: link?.name ?? 'lo', underlayMtu: link?.mtu ?? 1500 };
    if (this.host === undefined || !sameHost(this.host, host)) this.host = host;
    return this.host;
  }

  private ownObject() {
    return this.deps.source.snapshot().find((o) => o.kind === 'Node' && o.object.metadata?.name === this.deps.config.hostname)?.object;
  }

  /** A force-* annotation of this node; a bad value is left to the decoder to report. */
  private forced<T>(self: ReturnType<MeshReconciler['ownObject']>, suffix: (typeof ANNOTATIONS)[keyof typeof ANNOTATIONS], parse: (v: string) => T): T | undefined {
    const a = readAnnotation(self?.metadata?.annotations, suffix);
    if (a === undefined) return undefined;
    try {
      return parse(a.value);
    } catch (err) {
      if (err instanceof ParseError) return undefined;
      throw err;
    }
  }

  /**
   * Decodes the source's objects, reporting each new problem once, and overlays what this node knows
   * first-hand: its own state, and when it last heard from every other node (its own clock).
   */
  private async meshInput(host: HostView, now: number): Promise<MeshInput> {
    const objects = this.deps.source.snapshot();
    if (this.lastDecode?.objects !== objects) {
      const decoded = this.decoder.decode(objects);
      this.problems.report(decoded.problems);
      this.lastDecode = { objects, decoded };
    }
    const { decoded } = this.lastDecode;
    // Where nobody publishes heartbeats, every node counts as fresh, and the addresses written for
    // this node (by the operator) stand over those the agent discovers.
    const publishes = this.deps.source.publisher !== undefined;
    const heartbeats = this.deps.source.heartbeats;
    const window = this.livenessWindowSeconds;
    const liveness = heartbeats ? await this.livenessEvidence(decoded.nodes, now, heartbeats) : undefined;
    const nodes = decoded.nodes.map((n): MeshNode => {
      if (n.name !== this.deps.config.hostname) return { ...n, lastSeen: liveness ? heardAt(n, liveness, now, window) : now };
      // Our own annotations may not have come back through the watch yet; we know them first-hand.
      const { otherInternalIP: _published, ...own } = n;
      const ownInternal = !publishes && n.internalIP ? n : host;
      return {
        ...own,
        ...(ownInternal.otherInternalIP && { otherInternalIP: ownInternal.otherInternalIP }),
        publicKey: this.deps.publicKey,
        lastSeen: now,
        granularity: this.deps.config.granularity,
        tunnelsBroken: this.tunnelWatch.broken,
        ...(!publishes && n.endpoint ? {} : host.endpoint && { endpoint: host.endpoint }),
        ...(!publishes && n.internalIP ? {} : host.internalIP && { internalIP: host.internalIP }),
      };
    });
    return { nodes, peers: decoded.peers };
  }

  /** How long a node may go unheard before it is gone: Kilo's 2 × the resync period. */
  private get livenessWindowSeconds(): number {
    return (2 * this.deps.config.resyncPeriodMs) / 1000;
  }

  /**
   * Heartbeats as this agent heard them (its location's node Leases, other locations' segment Leases,
   * last-seen annotations), and the device's handshakes when a node would otherwise be stale.
   */
  private async livenessEvidence(nodes: readonly MeshNode[], now: number, heartbeats: Heartbeats): Promise<LivenessEvidence> {
    const self = nodes.find((n) => n.name === this.deps.config.hostname);
    if (self) heartbeats.follow(self.location);
    const heard = heartbeats.heard();
    this.heartbeats = recordHeartbeats(this.heartbeats, nodeHeartbeatValues(nodes, heard.nodes), now);
    const segments = recordVouches(this.segmentHeartbeats, heard.segments, self?.location ?? '', now, this.livenessWindowSeconds);
    this.segmentHeartbeats = segments.log;
    // Heartbeats arrive as they are written only through watches: while one does not stream (the API
    // failing, watches expiring, lists catching up late, a location just followed) this agent is as
    // blind as when its own renewal fails, and nobody ages until they have streamed for a while again.
    const watch = this.deps.source.resourceStatus().find((r) => r.kind === 'Node');
    const streaming = watch?.state === 'synced' && watch.watchingSince !== undefined && heard.watchingSince !== undefined;
    const streamingSince = streaming ? Math.floor(Math.max(watch.watchingSince ?? 0, heard.watchingSince ?? 0) / 1000) : now;
    this.trustedSince = Math.max(this.trustedSince, streamingSince, heard.renewFailedAt === undefined ? 0 : Math.floor(heard.renewFailedAt / 1000));
    const evidence = {
      heartbeats: this.heartbeats,
      vouches: segments.vouches,
      handshakes: new Map<string, number>(),
      trustedSince: this.trustedSince,
      gone: this.gone,
    };
    const window = this.livenessWindowSeconds;
    const others = nodes.filter((n) => n.name !== this.deps.config.hostname);
    let gone = goneNodes(others, evidence, now, window);
    if (gone.size > 0) {
      const status = await this.device.dump().catch(() => undefined);
      for (const peer of status?.peers ?? []) {
        if (peer.latestHandshake) evidence.handshakes.set(peer.publicKey, Math.floor(peer.latestHandshake.getTime() / 1000));
      }
      gone = goneNodes(others, evidence, now, window);
    }
    this.gone = gone;
    return evidence;
  }

  private meshOptions(host: HostView, now: number): MeshOptions {
    const c = this.deps.config;
    return {
      hostname: c.hostname,
      granularity: c.granularity,
      subnets: c.subnets,
      port: c.port,
      encapsulate: c.encapsulate,
      local: c.local,
      wireguardDevice: c.interface,
      tunnelDevice: this.tunnel?.name ?? VXLAN_DEVICE,
      tunnelCarriesBothFamilies: this.tunnel?.mode === 'vxlan',
      underlayDevice: host.underlayDevice,
      now,
      resyncPeriodSeconds: c.resyncPeriodMs / 1000,
      serviceCIDRs: c.serviceCIDRs,
      allowWideClaims: c.allowWideClaims,
    };
  }

  private async applyWireGuard(t: Topology, host: HostView): Promise<number> {
    const d = this.device;
    const before = this.routingStale;
    this.routingStale = true; // until the device says what changed
    const ensured = await d.ensure(this.hostRead?.addressing.links);
    this.deviceEnsured = true;
    // A device just created is not in the earlier read: its link and addresses are read now.
    const known = ensured.created ? undefined : this.hostRead?.addressing;
    const mtu = meshMtuOf(this.deps.config.mtu, host.underlayMtu);
    const { config, roaming } = this.desired.wireguard.of([t], () => {
      const config = nodeConfig(t);
      return {
        config: { ...config, interface: { ...config.interface, privateKey: this.deps.privateKey } },
        // Roaming leaders and peers move: the endpoint WireGuard learned from their packets wins.
        roaming: new Set<WireGuardKey>([
          ...remoteSegmentsOf(t).filter((s) => s.persistentKeepalive > 0).map((s) => s.publicKey),
          ...t.peers.filter((p) => p.persistentKeepalive > 0).map((p) => p.publicKey),
        ]),
      };
    });
    const applied = await d.apply(config, { ignoreEndpointOf: roaming });
    for (const line of applied.changes) this.deps.log.info(`wireguard: ${line}`);
    // The peer keeps the endpoint the device has; a name that never resolves must still be seen.
    for (const line of applied.unresolved) this.deps.log.warn(`wireguard: ${line}`);
    const link = await d.setLink({ mtu, up: t.leader }, known?.links.find((l) => l.name === d.name));
    // A device just created has no addresses yet but the kernel's link-local ones.
    const addressed = await d.changeAddresses(t.leader ? t.wireguardCIDRs : [], ensured.created ? [] : known?.addresses);
    // The kernel removes the routes through a device set down and those from an address removed.
    this.routingStale = before || (link.up && !t.leader) || addressed.removed > 0;
    const writes = [applied.written, link.mtu, addressed.added + addressed.removed > 0, link.up];
    return this.count('wireguard', writes.filter(Boolean).length);
  }

  private async applyTunnel(t: Topology, host: HostView): Promise<number> {
    if (this.deps.config.encapsulate === 'never' || host.internalIP === undefined) {
      if (this.tunnel) {
        this.routingStale = true;
        await this.tunnel.cleanup();
      }
      return 0;
    }
    if (this.tunnel === undefined) throw new Error('the tunnel device could not be opened');
    const internalIP = host.internalIP;
    const desired = this.desired.tunnel.of([t, internalIP], () => ({
      localUnderlayIP: ipOf(internalIP),
      members: tunnelMembersOf(t).map((end) => ({ ...end, underlayIP: end.internalIP })),
    }));
    const before = this.routingStale;
    this.routingStale = true; // until the tunnel says it wrote nothing
    const written = await this.countPartial('tunnel', this.tunnel.apply(desired));
    this.routingStale = before || written > 0;
    return written;
  }

  private async applyIptables(t: Topology, host: HostView): Promise<number> {
    const tunnel = this.tunnel;
    const encapsulates = tunnel !== undefined && this.deps.config.encapsulate !== 'never' && host.internalIP !== undefined;
    // The same object as the last apply's: IptablesChains validates it once.
    const rules = this.desired.iptables.of([t, encapsulates && tunnel.mode, encapsulates && tunnel.port], () => {
      const members = tunnelMembersOf(t).map((end) => end.internalIP);
      return computeMeshRules({
        localPodCidrs: t.node.podCIDRs,
        meshDestinations: meshDestinationsOf(t),
        ...(this.deps.config.iptablesForwardRules && { forwardCidrs: localLocationPrefixesOf(t) }),
        ...(encapsulates && { tunnel: tunnel.mode === 'vxlan' ? { mode: 'vxlan', port: tunnel.port, members } : { mode: 'ipip', members } }),
      });
    });
    return this.count('iptables', (await this.iptables.apply(rules)).written);
  }

  /**
   * CNI mode: the node's configuration list, rewritten when its pod CIDRs or the MTU change. A node
   * without a pod CIDR yet keeps whatever file is there (unknown is not empty). Without --cni, the
   * file an earlier run in CNI mode wrote goes: the runtime would otherwise keep choosing it over
   * the CNI the operator switched to.
   */
  private async applyCni(t: Topology, host: HostView): Promise<number> {
    const c = this.deps.config;
    if (!c.cni) {
      if (this.oldCniFileGone) return this.count('cni', 0);
      const removed = await removeCniConfigFile(c.cniConfFile);
      for (const file of removed) this.deps.log.info(`cni: removed ${file} (--cni is off)`);
      this.oldCniFileGone = true;
      return this.count('cni', removed.length);
    }
    const mtu = meshMtuOf(c.mtu, host.underlayMtu);
    const network = this.desired.cni.of([t.node.podCIDRs, mtu], () => {
      const network = cniNetworkOf({ podCIDRs: t.node.podCIDRs, mtu, ...(c.cniIpamDir !== undefined && { ipamDataDir: c.cniIpamDir }) });
      return 'list' in network ? { list: network.list, text: formatCniConfigList(network.list) } : network;
    });
    if ('invalid' in network) throw new Error(`Node "${c.hostname}": ${network.invalid}`);
    if ('missing' in network) {
      if (this.cniMissing !== network.missing) this.deps.log.info(`cni: ${network.missing}; ${c.cniConfFile} is left as it is`);
      this.cniMissing = network.missing;
      return 0;
    }
    this.cniMissing = undefined;
    const written = await writeCniConfigFile(c.cniConfFile, network.text);
    if (written) this.deps.log.info({ file: c.cniConfFile, podCIDRs: t.node.podCIDRs.map(formatCidr), mtu }, 'cni: configuration written');
    return this.count('cni', written ? 1 : 0);
  }

  /**
   * The fast path forwards to the cluster's pod CIDRs only, through the interfaces the routes just
   * written use: the pod bridge, the WireGuard device, the underlay.
   */
  private async applyFastPath(t: Topology, host: HostView, fastPath: FastPathDatapath): Promise<number> {
    const desired = this.desired.fastPath.of([t, host.underlayDevice], () => ({
      // The mesh has dropped pod CIDRs that overlap a service or WireGuard range (mesh/topology.ts).
      clusterPodCidrs: t.segments.flatMap((s) => s.nodes.flatMap((n) => n.podCIDRs)),
      localPodCidrs: t.node.podCIDRs,
      bridge: CNI_BRIDGE,
      wireguard: this.deps.config.interface,
      underlay: host.underlayDevice === 'lo' ? [] : [host.underlayDevice],
    }));
    const report = await fastPath.apply(desired);
    return this.count('fast-path', report.written + report.attached + report.detached);
  }

  /**
   * Publishes this node's agent-written annotations where the source takes them, only where they
   * differ. last-seen is no heartbeat any more (the Leases are: a Node write goes to every agent of
   * the cluster): it is written at start and alongside any other change, for Kilo's readers, and on
   * a timer while agents that predate the Leases may read it (last-seen-timer.ts). Where the source
   * takes only the shared ones (a cluster file's annotations directory), only those.
   */
  private async publishNode(host: HostView, now: number, afterApply: boolean): Promise<void> {
    const { publisher, sharedAnnotations } = this.deps.source;
    if (publisher === undefined && sharedAnnotations === undefined) return;
    const c = this.deps.config;
    const annotations: Record<string, string | null> = {
      [PREFIX + ANNOTATIONS.key]: this.deps.publicKey,
      [PREFIX + ANNOTATIONS.endpoint]: host.endpoint ? formatEndpoint(host.endpoint) : null,
      // One CIDR per annotation: agents that predate dual stack parse internal-ip as one (node.ts).
      ...familyAnnotations(ANNOTATIONS.internalIP, ANNOTATIONS.otherInternalIP, host.internalIP ? [host.internalIP, host.otherInternalIP] : []),
      [PREFIX + ANNOTATIONS.granularity]: c.granularity,
      [PREFIX + ANNOTATIONS.tunnelsBroken]: this.tunnelWatch.broken ? (this.tunnelsBrokenSince ?? String(now)) : null,
    };
    if (afterApply && this.topology) {
      Object.assign(annotations, familyAnnotations(ANNOTATIONS.wireguardIP, ANNOTATIONS.otherWireguardIP, this.topology.leader ? this.topology.wireguardCIDRs : []));
      annotations[PREFIX + ANNOTATIONS.discoveredEndpoints] = await this.discoveredEndpoints();
    }
    if (publisher === undefined) {
      const shared = Object.fromEntries(SHARED_BY_FILE.flatMap((suffix) => (PREFIX + suffix in annotations ? [[PREFIX + suffix, annotations[PREFIX + suffix] ?? null]] : [])));
      if (await sharedAnnotations?.publishNode(c.hostname, shared)) this.count('annotation', 1);
      return;
    }
    // With it, the announcement that this agent heartbeats through Leases (last-seen-timer.ts).
    const lastSeen = this.deps.source.heartbeats ? lastSeenAnnouncing(now) : { [PREFIX + ANNOTATIONS.lastSeen]: String(now) };
    const written = this.lastSeenPublished
      ? await publisher.publishNode(c.hostname, annotations, lastSeen)
      : await publisher.publishNode(c.hostname, { ...annotations, ...lastSeen });
    if (written) this.count('annotation', 1);
    this.lastSeenPublished = true;
  }

  /**
   * A leader's verdict on its own tunnels, and the mark it moves (published with the annotations);
   * only where marks can be published: the members elect from them. A change is logged once,
   * counted, and re-runs the election at once rather than at the next resync.
   */
  private async judgeTunnels(t: Topology, now: number): Promise<void> {
    const change = await this.tunnelWatch.check(t, () => this.device.dump(), now);
    this.deps.metrics.tunnelBroken.set(this.tunnelWatch.broken ? 1 : 0);
    if (change === undefined) return;
    this.tunnelsBrokenSince = change.broken ? String(now) : undefined;
    this.deps.metrics.tunnelMarkChanges.inc({ mark: change.broken ? 'broken' : 'cleared' });
    const judged = change.segments.join(', ');
    if (change.broken) this.deps.log.warn(`tunnel-health: no remote segment (${judged}) answers through ${t.options.wireguardDevice}: marked broken, another member of ${t.segment.key} takes over`);
    else this.deps.log.info(`tunnel-health: tunnels to ${judged} healthy for 3 resync periods: broken mark cleared`);
    this.deps.requestReconcile();
  }

  /** Endpoints our device actually saw roaming peers at (Kilo's NAT traversal), as JSON; null when none. */
  private async discoveredEndpoints(): Promise<string | null> {
    const t = this.topology;
    if (!t?.leader) return null;
    const roaming = new Set<string>([
      ...t.segments.filter((s) => s.persistentKeepalive > 0).map((s) => s.publicKey),
      ...t.peers.filter((p) => p.persistentKeepalive > 0).map((p) => p.publicKey),
    ]);
    if (roaming.size === 0) return null;
    const seen: Record<string, string> = {};
    for (const peer of (await this.device.dump()).peers) {
      if (roaming.has(peer.publicKey) && peer.latestHandshake && peer.endpoint) seen[peer.publicKey] = formatEndpoint(peer.endpoint);
    }
    return Object.keys(seen).length === 0 ? null : JSON.stringify(seen, Object.keys(seen).sort());
  }

  /** Leaves everything in place for the next agent to adopt (--clean-up=false), wireguard-go included. */
  release(): void {
    this.device.release();
  }

  /**
   * Lets go of what only this process knows before the host's state is removed (host-cleanup.ts):
   * the wireguard-go it supervises is stopped with its device, so its exit is no crash to recover
   * from, and a tunl0 this agent brought up goes down again.
   */
  async prepareCleanup(): Promise<void> {
    if (this.device.pid !== undefined) await this.device.destroy().catch((err: Error) => this.deps.log.error(`clean-up wireguard: ${errorLine(err)}`));
    await this.tunnel?.cleanup().catch((err: Error) => this.deps.log.error(`clean-up tunnel: ${errorLine(err)}`));
  }
}

function sameHost(a: HostView, b: HostView): boolean {
  const sameCidr = (x: Cidr | undefined, y: Cidr | undefined): boolean => (x === undefined || y === undefined ? x === y : equalCidr(x, y));
  return (
    equalEndpoint(a.endpoint, b.endpoint) &&
    sameCidr(a.internalIP, b.internalIP) &&
    sameCidr(a.otherInternalIP, b.otherInternalIP) &&
    a.underlayDevice === b.underlayDevice &&
    a.underlayMtu === b.underlayMtu
  );
}

/** A node's CIDRs of up to two families as their two annotations, the first family's first; null removes. */
function familyAnnotations(first: AnnotationSuffix, other: AnnotationSuffix, cidrs: readonly (Cidr | undefined)[]): Record<string, string | null> {
  const [a, b] = cidrs;
  return { [PREFIX + first]: a ? formatCidr(a) : null, [PREFIX + other]: b ? formatCidr(b) : null };
}
