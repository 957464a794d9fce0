// The agent's Prometheus metrics. One registry per agent so tests can run several in one process.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** The kinds of host state the agent writes; each write is counted so idle resyncs can be proven idle. */
export type WriteKind = 'wireguard' | 'route' | 'tunnel' | 'iptables' | 'annotation' | 'service';

export class AgentMetrics {
  readonly registry = new Registry();
  readonly errors = new Counter({ name: 'wirelane_errors_total', help: 'Failed reconcile steps', labelNames: ['step'], registers: [this.registry] });
  readonly invalidObjects = new Counter({
    name: 'wirelane_invalid_objects_total',
    help: 'Cluster objects or fields rejected as malformed',
    labelNames: ['kind'],
    registers: [this.registry],
  });
  readonly rejectedClaims = new Counter({
    name: 'wirelane_rejected_claims_total',
    help: 'Peer allowed IPs and allowed-location IPs dropped for overlapping what others hold, by claimant kind',
    labelNames: ['kind'],
    registers: [this.registry],
  });
  readonly writes = new Counter({ name: 'wirelane_writes_total', help: 'Writes to host state, by kind', labelNames: ['kind'], registers: [this.registry] });
  readonly nodes = new Gauge({ name: 'wirelane_nodes', help: 'Ready nodes in the mesh', registers: [this.registry] });
  readonly peers = new Gauge({ name: 'wirelane_peers', help: 'Valid peers in the mesh', registers: [this.registry] });
  readonly servicePorts = new Gauge({ name: 'wirelane_service_ports', help: 'Service ports programmed on this node', registers: [this.registry] });
  readonly leader = new Gauge({ name: 'wirelane_leader', help: '1 when this node leads its segment', registers: [this.registry] });
  readonly commandTimeouts = new Counter({
    name: 'wirelane_command_timeouts_total',
    help: 'External commands (by name) and DNS look-ups (command="dns") that timed out',
    labelNames: ['command'],
    registers: [this.registry],
  });
  readonly syncs = new Counter({
    name: 'wirelane_syncs_total',
    help: 'Runs of a reconcile loop (mesh, services); success means every step succeeded',
    labelNames: ['loop', 'result'],
    registers: [this.registry],
  });
  readonly reconcileDuration = new Histogram({
    name: 'wirelane_reconcile_duration_seconds',
    help: 'Time of one reconcile',
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
    registers: [this.registry],
  });

  readonly source = new SourceMetrics(this.registry);

  constructor() {
    collectDefaultMetrics({ register: this.registry });
    // Make every label value visible from the start, so a zero is a zero and not a missing series.
    for (const kind of ['wireguard', 'route', 'tunnel', 'iptables', 'annotation', 'service'] satisfies WriteKind[]) this.writes.inc({ kind }, 0);
  }

  countWrites(kind: WriteKind, n: number): void {
    if (n > 0) this.writes.inc({ kind }, n);
  }
}

/**
 * The Kubernetes source, per resource (`nodes`, `peers`, `services`, `endpointslices`): the sync
 * state (1 for the current one, 0 for the others), failed lists by reason, the time of the last
 * successful list, and watches that ended and were opened again, by how they ended.
 */
export class SourceMetrics {
  static readonly STATES = ['never-synced', 'synced', 'stale', 'missing', 'forbidden'] as const;
  readonly syncState: Gauge;
  readonly listFailures: Counter;
  readonly lastSuccessfulList: Gauge;
  readonly watchRestarts: Counter;

  constructor(registry: Registry) {
    const registers = [registry];
    this.syncState = new Gauge({ name: 'wirelane_source_sync_state', help: 'Sync state of each resource the source reads', labelNames: ['resource', 'state'], registers });
    this.listFailures = new Counter({ name: 'wirelane_source_list_failures_total', help: 'Failed lists, by reason', labelNames: ['resource', 'reason'], registers });
    this.lastSuccessfulList = new Gauge({
      name: 'wirelane_source_last_successful_list_timestamp_seconds',
      help: 'Unix time of the last successful list',
      labelNames: ['resource'],
      registers,
    });
    this.watchRestarts = new Counter({
      name: 'wirelane_source_watch_restarts_total',
      help: 'Watches that ended and were followed by another request, by how they ended (closed, expired, failed)',
      labelNames: ['resource', 'reason'],
      registers,
    });
  }

  setState(resource: string, state: (typeof SourceMetrics.STATES)[number]): void {
    for (const s of SourceMetrics.STATES) this.syncState.set({ resource, state: s }, s === state ? 1 : 0);
  }

  listSucceeded(resource: string, nowMs = Date.now()): void {
    this.lastSuccessfulList.set({ resource }, nowMs / 1000);
  }

  listFailed(resource: string, reason: string): void {
    this.listFailures.inc({ resource, reason });
  }

  watchRestarted(resource: string, reason: string): void {
    this.watchRestarts.inc({ resource, reason });
  }
}
