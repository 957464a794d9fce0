// The agent's Prometheus metrics. One registry per agent so tests can run several in one process.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { NodePortStat } from '../dataplane/ebpf/nodeport.js';

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

  // Data-path failover (mesh/tunnel-health.ts).
  readonly tunnelBroken = new Gauge({
    name: 'wirelane_leader_tunnel_broken',
    help: '1 while this node marks its WireGuard tunnels broken (not elected while another member is not)',
    registers: [this.registry],
  });
  readonly tunnelMarkChanges = new Counter({
    name: 'wirelane_tunnel_mark_changes_total',
    help: "Changes of this node's tunnels-broken mark, by the mark it changed to (broken, cleared)",
    labelNames: ['mark'],
    registers: [this.registry],
  });

  readonly source = new SourceMetrics(this.registry);
  readonly nodePort = new NodePortMetrics(this.registry);

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

/** Which metric and label each wl_np_stats counter is exported as (README: "eBPF NodePort counters"). */
const NODEPORT_COUNTERS = {
  newFlow: ['flows', 'new'],
  confirmed: ['flows', 'confirmed'],
  unconfirmedExpired: ['flows', 'unconfirmed_expired'],
  snatReclaimed: ['flows', 'snat_port_reclaimed'],
  evicted: ['flows', 'evicted'],
  forward: ['packets', 'forward'],
  replyIngress: ['packets', 'reply_ingress'],
  replyEgress: ['packets', 'reply_egress'],
  toKernel: ['packets', 'to_kernel'],
  reject: ['packets', 'reject'],
  passNotSyn: ['packets', 'pass_not_syn'],
  handshakeMismatch: ['packets', 'handshake_mismatch'],
  dropNoEndpoint: ['drops', 'no_endpoint'],
  dropSourceRange: ['drops', 'source_range'],
  dropSnatPorts: ['drops', 'snat_ports_exhausted'],
  dropNoRoute: ['drops', 'no_route'],
  dropError: ['drops', 'error'],
  dropNotSyn: ['drops', 'not_syn'],
} as const satisfies Record<NodePortStat, readonly ['flows' | 'packets' | 'drops', string]>;

/**
 * The eBPF tc data path's counters (wl_np_stats, per CPU in the kernel), read at each scrape:
 * wirelane_nodeport_flows_total{event}, wirelane_nodeport_packets_total{action} and
 * wirelane_nodeport_drops_total{reason}. Absent until the eBPF mode names its reader; a read that
 * fails leaves the last values.
 */
export class NodePortMetrics {
  #read: (() => Readonly<Record<NodePortStat, bigint>> | undefined) | undefined;

  constructor(registry: Registry) {
    const counter = (kind: 'flows' | 'packets' | 'drops', label: string, help: string): void => {
      const read = (): Readonly<Record<NodePortStat, bigint>> | undefined => {
        try {
          return this.#read?.();
        } catch {
          return undefined;
        }
      };
      new Counter({
        name: `wirelane_nodeport_${kind}_total`,
        help,
        labelNames: [label],
        registers: [registry],
        collect() {
          const values = read();
          if (values === undefined) return;
          this.reset();
          for (const [stat, [of, value]] of Object.entries(NODEPORT_COUNTERS)) {
            if (of === kind) this.inc({ [label]: value }, Number(values[stat as NodePortStat]));
          }
        },
      });
    };
    counter('flows', 'event', 'NodePort/ExternalIP/LB flows from outside (eBPF tc path), by what happened to them');
    counter('packets', 'action', 'Packets the eBPF tc path translated or passed on, by action');
    counter('drops', 'reason', 'Packets the eBPF tc path dropped, by reason (snat_ports_exhausted: no free masquerade port)');
  }

  /** Where the counters come from; undefined from `read`: not there (yet). */
  readFrom(read: () => Readonly<Record<NodePortStat, bigint>> | undefined): void {
    this.#read = read;
  }
}
