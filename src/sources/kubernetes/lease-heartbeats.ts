// The agent's heartbeats as Leases (sources/lease.ts): its node Lease renewed every half resync
// period, its segment's Lease every other time (once a period: it goes to every agent of the
// cluster, and still comes twice within the 2-period window) while it leads; what it hears comes from two reflectors, the node
// Leases of its own location (a label selector) and every segment Lease. A renewal that fails is
// remembered: until renewals work again this agent is blind, and mesh/liveness.ts ages nobody.
// Writes are read-modify-write (a Lease refuses unconditional updates), bounded like every call out.
import type { KubeAccess } from './kube-access.js';
import { errorLine } from '../../observability/first-line.js';
import type { Logger } from '../../observability/logger.js';
import type { SourceMetrics } from '../../observability/metrics.js';
import {
  type HeartbeatLease, type LeaseWrite, SEGMENT_LEASE_SELECTOR, decodeLease, leasesPath, nodeLease, nodeLeaseName, nodeLeaseSelector, segmentLease,
  segmentLeaseName,
} from '../lease.js';
import type { KubeObject } from '../objects.js';
import type { HeardLeases, Heartbeats, LeadSegment } from '../source.js';
import { apiStatusOf as codeOf } from './api-call.js';
import { type KubeRequest, kubeCall } from './kube-request.js';
import { ListWatch } from './list-watch.js';
import { Reflector } from './reflector.js';

export interface LeaseHeartbeatOptions {
  readonly namespace: string;
  /** This node's name: its Lease's holder. */
  readonly node: string;
  /** How often the Leases are renewed (half the resync period). */
  readonly renewEveryMs: number;
  /** spec.leaseDurationSeconds: for people and tools; the agents judge by versions (mesh/liveness.ts). */
  readonly durationSeconds: number;
}

export interface LeaseHeartbeatDeps {
  readonly access: KubeAccess;
  readonly log: Logger;
  readonly metrics?: SourceMetrics;
  readonly userAgent?: string;
  readonly random?: () => number;
  readonly maxBackoffMs?: number;
  /** Fires when a Lease appears, goes, or changes holder or members; plain renewals fire nothing. */
  readonly onChange: () => void;
}

export class LeaseHeartbeats implements Heartbeats {
  private readonly segments: Reflector<'Lease'>;
  private nodes: { readonly location: string; readonly reflector: Reflector<'Lease'> } | undefined;
  private leading: LeadSegment | undefined;
  /** Our own last writes: a renewal builds on them rather than on a watch that may lag. */
  private readonly written = new Map<string, KubeObject>();
  private renewFailedAt: number | undefined;
  private failing = false;
  private timer: NodeJS.Timeout | undefined;
  private renewing: Promise<void> | undefined;
  private renewAgain = false;
  /** Timer ticks so far: the segment Lease is renewed on every other one. */
  private ticks = 0;
  /** A leadership change asks for a segment renewal at once. */
  private segmentDue = true;
  private stopped = false;
  /** Holder and members of every Lease heard, to tell a renewal from a change. */
  private shape = '';
  private readonly reported = new Set<string>();

  constructor(
    private readonly options: LeaseHeartbeatOptions,
    private readonly deps: LeaseHeartbeatDeps,
  ) {
    this.segments = this.reflector(SEGMENT_LEASE_SELECTOR, 'segment-leases');
  }

  start(): void {
    void this.segments.start();
    this.timer = setInterval(() => {
      this.ticks += 1;
      if (this.ticks % 2 === 0) this.segmentDue = true;
      this.renew();
    }, this.options.renewEveryMs);
    this.timer.unref();
  }

  follow(location: string): void {
    if (this.nodes?.location === location) return;
    const previous = this.nodes;
    this.nodes = { location, reflector: this.reflector(nodeLeaseSelector(location), 'node-leases') };
    void this.nodes.reflector.start();
    if (previous) void previous.reflector.stop();
    this.renew();
  }

  lead(segment: LeadSegment | undefined): void {
    const same =
      segment?.key === this.leading?.key && segment?.location === this.leading?.location && segment?.members.join() === this.leading?.members.join();
    this.leading = segment;
    if (same || segment === undefined) return;
    this.segmentDue = true;
    this.renew();
  }

  heard(): HeardLeases {
    const nodes = new Map<string, string>();
    for (const lease of this.decoded(this.nodes?.reflector)) if (lease.kind === 'node') nodes.set(lease.holder, lease.version);
    const segments = this.decoded(this.segments).filter((l) => l.kind === 'segment');
    const watches = [this.segments.status(), this.nodes?.reflector.status()];
    const streaming = watches.every((w) => w?.state === 'synced' && w.watchingSince !== undefined);
    return {
      nodes,
      segments,
      watchingSince: streaming ? Math.max(...watches.map((w) => w?.watchingSince ?? 0)) : undefined,
      ...(this.renewFailedAt !== undefined && { renewFailedAt: this.renewFailedAt }),
    };
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.renewing;
    await Promise.all([this.segments.stop(), this.nodes?.reflector.stop()]);
  }

  private reflector(labelSelector: string, resource: string): Reflector<'Lease'> {
    const { deps } = this;
    return new Reflector({
      kind: 'Lease',
      resource,
      listWatch: new ListWatch(deps.access, leasesPath(this.options.namespace), {
        labelSelector,
        ...(deps.userAgent !== undefined && { userAgent: deps.userAgent }),
      }),
      log: deps.log,
      ...(deps.metrics && { metrics: deps.metrics }),
      ...(deps.random && { random: deps.random }),
      ...(deps.maxBackoffMs !== undefined && { maxBackoffMs: deps.maxBackoffMs }),
      onChange: () => this.changed(),
    });
  }

  private decoded(reflector: Reflector<'Lease'> | undefined): HeartbeatLease[] {
    return (reflector?.objects() ?? []).flatMap((object) => {
      const lease = decodeLease(object);
      if (lease === undefined) return [];
      if ('problem' in lease) {
        const key = `${lease.problem}@${object.metadata?.resourceVersion ?? ''}`;
        if (!this.reported.has(key)) this.deps.log.warn(`kubernetes source: ${lease.problem}; ignored`);
        this.reported.add(key);
        return [];
      }
      return [lease];
    });
  }

  private changed(): void {
    const leases = [...this.decoded(this.nodes?.reflector), ...this.decoded(this.segments)];
    const shape = leases
      .map((l) => `${l.name}=${l.holder}:${l.members.join(',')}`)
      .sort()
      .join(';');
    if (shape === this.shape) return;
    this.shape = shape;
    this.deps.onChange();
  }

  /** One renewal at a time; a request during one runs once more after it. */
  private renew(): void {
    if (this.stopped) return;
    if (this.renewing) {
      this.renewAgain = true;
      return;
    }
    this.renewing = this.renewOnce().finally(() => {
      this.renewing = undefined;
      if (this.renewAgain) {
        this.renewAgain = false;
        this.renew();
      }
    });
  }

  private async renewOnce(): Promise<void> {
    const location = this.nodes?.location;
    if (location === undefined) return;
    const write: LeaseWrite = {
      namespace: this.options.namespace,
      holder: this.options.node,
      location,
      renewMs: Date.now(),
      durationSeconds: this.options.durationSeconds,
    };
    const node = await this.write('node', nodeLeaseName(this.options.node), this.nodes?.reflector, (current) => nodeLease(write, current));
    const leading = this.segmentDue ? this.leading : undefined;
    this.segmentDue = false;
    const segment =
      leading === undefined ||
      (await this.write('segment', segmentLeaseName(leading.key), this.segments, (current) =>
        segmentLease({ ...write, location: leading.location }, leading.key, leading.members, current),
      ));
    if (node && segment) {
      if (this.failing) this.deps.log.info('kubernetes source: heartbeat Leases renewed again');
      this.failing = false;
      return;
    }
    this.renewFailedAt = Date.now();
    if (!segment) this.segmentDue = true;
  }

  /** Writes one Lease (create, or update from the freshest copy; one retry from a read on a conflict). */
  private async write(kind: 'node' | 'segment', name: string, watched: Reflector<'Lease'> | undefined, build: (current: KubeObject | undefined) => KubeObject): Promise<boolean> {
    const { namespace } = this.options;
    const cached = this.written.get(name) ?? watched?.objects().find((o) => o.metadata?.name === name);
    try {
      let stored: KubeObject;
      try {
        stored = await this.put(name, build(cached));
      } catch (err) {
        if (codeOf(err) !== 409 && codeOf(err) !== 404) throw err;
        const fresh = await this.call({ method: 'GET', path: `${leasesPath(namespace)}/${encodeURIComponent(name)}` }, `reading Lease ${name}`).then(
          (l) => l as KubeObject,
          (e: unknown) => (codeOf(e) === 404 ? undefined : Promise.reject(e)),
        );
        stored = await this.put(name, build(fresh));
      }
      this.written.set(name, stored);
      this.deps.metrics?.leaseRenewals.inc({ lease: kind, result: 'ok' });
      return true;
    } catch (err) {
      this.written.delete(name);
      this.deps.metrics?.leaseRenewals.inc({ lease: kind, result: 'error' });
      const line = `kubernetes source: renewing ${kind} Lease ${namespace}/${name}: ${errorLine(err)}; nobody ages until it works again`;
      if (this.failing) this.deps.log.debug(line);
      else this.deps.log.warn(line);
      this.failing = true;
      return false;
    }
  }

  /**
   * A call bounded by the renewal period, not the command timeout: a request that hangs (seen under
   * load: a reused connection that never answers) would hold every renewal back for 30 s and let
   * the other locations age this node. Failed, it makes this agent blind, and the next tick retries.
   */
  private call(req: KubeRequest, what: string): Promise<Record<string, unknown>> {
    const { userAgent } = this.deps;
    return kubeCall(this.deps.access, { ...req, ...(userAgent !== undefined && { userAgent }) }, Math.max(1000, this.options.renewEveryMs), what);
  }

  /** PUT when the Lease carries a version, else POST. */
  private async put(name: string, lease: KubeObject): Promise<KubeObject> {
    const path = leasesPath(this.options.namespace);
    const body = { value: lease, contentType: 'application/json' };
    const stored =
      lease.metadata?.resourceVersion === undefined
        ? await this.call({ method: 'POST', path, body }, `creating Lease ${name}`)
        : await this.call({ method: 'PUT', path: `${path}/${encodeURIComponent(name)}`, body }, `renewing Lease ${name}`);
    return stored as KubeObject;
  }
}

