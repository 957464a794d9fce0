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

  constructor() {
    collectDefaultMetrics({ register: this.registry });
    // Make every label value visible from the start, so a zero is a zero and not a missing series.
    for (const kind of ['wireguard', 'route', 'tunnel', 'iptables', 'annotation', 'service'] satisfies WriteKind[]) this.writes.inc({ kind }, 0);
  }

  countWrites(kind: WriteKind, n: number): void {
    if (n > 0) this.writes.inc({ kind }, n);
  }
}
