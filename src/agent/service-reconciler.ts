// The services half of the agent: Services + EndpointSlices → service map (pure) → the chosen
// service proxy, plus the health check node ports. Runs after the mesh in the same loop.
import type { ServiceProxy } from '../dataplane/service-proxy.js';
import { listAddresses } from '../host/addresses.js';
import { type Cidr, type Ip, parseIp } from '../model/ip.js';
import { sameItems } from '../model/lists.js';
import type { ServiceMap } from '../model/service.js';
import type { EndpointSlice } from '../services/input.js';
import { errorLine } from '../observability/first-line.js';
import type { Logger } from '../observability/logger.js';
import type { AgentMetrics } from '../observability/metrics.js';
import { ServiceChangeTracker } from '../services/changes.js';
import { type ProgrammedTriggers, pendingTriggers, programmingLatencies } from '../services/programming-latency.js';
import { PROXY_NAME, ServiceMapMemo, computeServiceMap } from '../services/service-map.js';
import { MeshInputDecoder } from '../sources/mesh-input.js';
import type { ClusterSource, SourceObject } from '../sources/source.js';
import { type DecodedServiceInput, ServiceInputCache, decodeServiceInput } from '../sources/service-input.js';
import type { AgentConfig } from './config.js';
import { HealthCheckServers } from './health-check-servers.js';
import { ProblemReporter } from './problem-reporter.js';
import type { SyncResult } from './sync-health.js';

const ZONE_LABEL = 'topology.kubernetes.io/zone';

// Addresses that are not the node's own for NodePorts: loopback (CVE-2020-8558), link-local, and
// the agent's own devices.
const NOT_NODE_ADDRESS = /^(lo|wirelane\.vx|tunl0)$/;

export interface ServiceReconcilerDeps {
  readonly config: AgentConfig;
  readonly log: Logger;
  readonly metrics: AgentMetrics;
  readonly source: ClusterSource;
  readonly proxy: ServiceProxy;
}

interface ComputedMap {
  readonly map: ServiceMap;
  readonly slices: readonly EndpointSlice[];
}

/** A service map being computed, with how long that took (its wall time, which the mesh may share). */
export type PreparedMap = Promise<({ readonly computed: ComputedMap } | { readonly error: unknown }) & { readonly seconds: number }>;

export class ServiceReconciler {
  private readonly problems: ProblemReporter;
  private readonly healthChecks: HealthCheckServers;
  /** What changed since the proxy's last successful apply; the proxy is this reconciler's alone. */
  private readonly changes = new ServiceChangeTracker();
  private appliedOnce = false;
  private lastApplyFailed = false;
  /** The slices' trigger times as of the last successful reconcile (programming-latency.ts), and those slices. */
  private programmedTriggers: ProgrammedTriggers = new Map();
  private programmedSlices: readonly EndpointSlice[] | undefined;
  /** Trigger times before this agent started are not its latency. */
  private readonly startedAt = Date.now();
  #servicePorts: number | undefined;
  // Objects decoded once and ports computed once while their inputs stay the same: a resync with
  // nothing changed builds next to nothing.
  private readonly decoded = new ServiceInputCache();
  private readonly nodes: MeshInputDecoder;
  private readonly memo = new ServiceMapMemo();
  /** The source's last snapshot and its decoding: a source hands out the same snapshot until something changed. */
  private lastDecode: { readonly objects: readonly SourceObject[]; readonly decoded: DecodedServiceInput } | undefined;

  constructor(private readonly deps: ServiceReconcilerDeps) {
    this.problems = new ProblemReporter(deps.log, deps.metrics);
    this.nodes = new MeshInputDecoder({ topologyLabel: deps.config.topologyLabel });
    this.healthChecks = new HealthCheckServers(() => !this.lastApplyFailed, (message) => deps.log.error(message));
    deps.metrics.errors.inc({ step: 'services' }, 0);
  }

  get ready(): boolean {
    return this.appliedOnce;
  }

  /** Service ports the last successful apply programmed; undefined before the first. */
  get servicePorts(): number | undefined {
    return this.#servicePorts;
  }

  /**
   * Starts computing the service map from the source's snapshot. The loop starts it once the mesh's
   * reconcile waits on its first command, so the map is computed while the mesh's commands run (at
   * 10,000 Services a third of a second of the first sync), and applied after the mesh. Never rejects:
   * a failure is the reconcile's to report.
   */
  prepare(): PreparedMap {
    const started = performance.now();
    return this.serviceMap().then(
      (computed) => ({ computed, seconds: (performance.now() - started) / 1000 }),
      (error: unknown) => ({ error, seconds: (performance.now() - started) / 1000 }),
    );
  }

  /** Applies a prepared map (or one computed now); the sync's duration counts both. */
  async reconcile(prepared: PreparedMap = this.prepare()): Promise<SyncResult> {
    const started = performance.now();
    const map = await prepared;
    try {
      return await this.sync(map);
    } finally {
      this.deps.metrics.proxyRules.syncDuration.observe(map.seconds + (performance.now() - started) / 1000);
    }
  }

  private async sync(prepared: Awaited<PreparedMap>): Promise<SyncResult> {
    try {
      if ('error' in prepared) throw prepared.error;
      const { map, slices } = prepared.computed;
      // The same slice objects: the same trigger times, none of them new.
      const triggers = sameItems(this.programmedSlices, slices) ? { pending: [], programmed: this.programmedTriggers } : pendingTriggers(this.programmedTriggers, slices, this.startedAt);
      const report = await this.changes.track(map, (changes) => this.deps.proxy.apply(changes));
      const programmedAt = Date.now();
      this.deps.metrics.countWrites('service', report.written);
      for (const line of report.warnings ?? []) this.deps.log.warn(line);
      this.deps.metrics.servicePorts.set(map.servicePorts.length);
      // A mode without fixed-size tables reports none: its predecessor's counts would be stale.
      if (report.unfit === undefined) this.deps.metrics.unfitFrontends.reset();
      for (const [table, n] of Object.entries(report.unfit ?? {})) this.deps.metrics.unfitFrontends.set({ table }, n);
      this.#servicePorts = map.servicePorts.length;
      this.deps.metrics.proxyRules.lastSync.set(programmedAt / 1000);
      for (const seconds of programmingLatencies(triggers.pending, programmedAt)) this.deps.metrics.proxyRules.networkProgramming.observe(seconds);
      this.programmedTriggers = triggers.programmed;
      this.programmedSlices = slices;
      const checks = await this.healthChecks.apply(map);
      for (const line of checks.failed) this.deps.log.error(line);
      this.lastApplyFailed = false;
      if (!this.appliedOnce) this.deps.log.info({ mode: this.deps.proxy.mode, servicePorts: map.servicePorts.length }, 'services applied');
      this.appliedOnce = true;
      return { ok: true };
    } catch (err) {
      const line = `services: ${errorLine(err)}`;
      this.lastApplyFailed = true;
      this.deps.metrics.errors.inc({ step: 'services' });
      this.deps.log.error(line);
      return { ok: false, error: line };
    }
  }

  private async serviceMap(): Promise<ComputedMap> {
    const objects = this.deps.source.snapshot();
    const decoded = this.lastDecode?.objects === objects ? this.lastDecode.decoded : decodeServiceInput(objects, this.decoded);
    this.lastDecode = { objects, decoded };
    this.problems.report(decoded.problems);
    // Node problems are the mesh's to report; here only pod CIDRs and the zone label are read.
    const clusterCIDRs: Cidr[] = [];
    let zone: string | undefined;
    for (const o of objects) {
      if (o.kind !== 'Node') continue;
      const node = this.nodes.node(o.object);
      if (node === undefined) continue; // a Node without a name: the mesh reports it
      clusterCIDRs.push(...node.podCIDRs);
      if (o.object.metadata?.name === this.deps.config.hostname) zone = o.object.metadata.labels?.[ZONE_LABEL];
    }
    const map = computeServiceMap(
      {
        services: decoded.services,
        slices: decoded.slices,
        node: { name: this.deps.config.hostname, addresses: await this.nodeAddresses(), ...(zone && { zone }) },
        clusterCIDRs,
      },
      { nodePortCIDRs: this.deps.config.nodePortCIDRs, proxyName: PROXY_NAME },
      this.memo,
    );
    return { map, slices: decoded.slices };
  }

  private async nodeAddresses(): Promise<Ip[]> {
    return (await listAddresses())
      .filter((a) => a.scope === 'global' && !NOT_NODE_ADDRESS.test(a.ifname) && a.ifname !== this.deps.config.interface)
      .map((a) => parseIp(a.address));
  }

  async cleanup(): Promise<void> {
    await this.healthChecks.close();
    await this.deps.proxy.cleanup();
  }
}
