// The agent's Prometheus metrics. One registry per agent so tests can run several in one process.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics, exponentialBuckets, linearBuckets } from 'prom-client';
import type { FastPathStat } from '../dataplane/ebpf/fast-path.js';
import type { NodePortStat } from '../dataplane/ebpf/nodeport.js';
import type { SockLbStat } from '../dataplane/ebpf/sock-lb.js';

/** The kinds of host state the agent writes; each write is counted so idle resyncs can be proven idle. */
export type WriteKind = 'wireguard' | 'route' | 'tunnel' | 'iptables' | 'annotation' | 'service' | 'cni' | 'fast-path';

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
  readonly unfitFrontends = new Gauge({
    name: 'wirelane_service_frontends_unfit',
    help: 'Service frontends the last services reconcile had no room for, by the full table (eBPF: services, backends, slots): not programmed, or kept at their previous endpoints',
    labelNames: ['table'],
    registers: [this.registry],
  });
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
    help: 'Time of one mesh reconcile',
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

  // Rolling upgrades (sources/last-seen-readers.ts).
  readonly lastSeenReaders = new Gauge({
    name: 'wirelane_last_seen_readers',
    help: 'Nodes running an agent that predates Lease heartbeats: while above 0, last-seen is written every half resync period',
    registers: [this.registry],
  });

  readonly proxyRules = new ProxyRulesMetrics(this.registry);
  readonly source = new SourceMetrics(this.registry);
  readonly nodePort = nodePortMetrics(this.registry);
  readonly sockLb = sockLbMetrics(this.registry);
  readonly fastPath = fastPathMetrics(this.registry);

  constructor() {
    collectDefaultMetrics({ register: this.registry });
    // Make every label value visible from the start, so a zero is a zero and not a missing series.
    for (const kind of ['wireguard', 'route', 'tunnel', 'iptables', 'annotation', 'service', 'cni', 'fast-path'] satisfies WriteKind[]) this.writes.inc({ kind }, 0);
  }

  countWrites(kind: WriteKind, n: number): void {
    if (n > 0) this.writes.inc({ kind }, n);
  }
}

/**
 * The services loop under kube-proxy's metric names (pkg/proxy/metrics), `wirelane_` for `kubeproxy_`,
 * with its buckets and meanings, so that dashboards and alerts written for kube-proxy carry over.
 */
export class ProxyRulesMetrics {
  /** Every services reconcile, failed ones included (kube-proxy observes each syncProxyRules). */
  readonly syncDuration: Histogram;
  /** Set when a services reconcile succeeded. */
  readonly lastSync: Gauge;
  /** Set when a change of the cluster's objects asked for a sync. */
  readonly lastQueued: Gauge;
  readonly networkProgramming: Histogram;

  constructor(registry: Registry) {
    const registers = [registry];
    this.syncDuration = new Histogram({
      name: 'wirelane_sync_proxy_rules_duration_seconds',
      help: 'Time of one services reconcile (kube-proxy: SyncProxyRules latency in seconds)',
      buckets: exponentialBuckets(0.001, 2, 15),
      registers,
    });
    this.lastSync = new Gauge({
      name: 'wirelane_sync_proxy_rules_last_timestamp_seconds',
      help: 'Unix time of the last successful services reconcile',
      registers,
    });
    this.lastQueued = new Gauge({
      name: 'wirelane_sync_proxy_rules_last_queued_timestamp_seconds',
      help: 'Unix time a change of the cluster objects last asked for a reconcile',
      registers,
    });
    this.networkProgramming = new Histogram({
      name: 'wirelane_network_programming_duration_seconds',
      help: "From an EndpointSlice's last-change-trigger-time to the successful services reconcile that programmed it",
      // kube-proxy's: 0.25 s and 0.5 s, every second to 59 s, every 5 s to 115 s, every 30 s to 5 min.
      buckets: [...linearBuckets(0.25, 0.25, 2), ...linearBuckets(1, 1, 59), ...linearBuckets(60, 5, 12), ...linearBuckets(120, 30, 7)],
      registers,
    });
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
  readonly leaseRenewals: Counter;

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
    this.leaseRenewals = new Counter({
      name: 'wirelane_lease_renewals_total',
      help: 'Heartbeat Lease writes, by lease (node, segment) and result (ok, error)',
      labelNames: ['lease', 'result'],
      registers,
    });
    for (const lease of ['node', 'segment']) for (const result of ['ok', 'error']) this.leaseRenewals.inc({ lease, result }, 0);
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

/** Which metric and label each wl_fp_stats counter is exported as (README: Metrics). */
const FAST_PATH_COUNTERS = {
  sameNode: ['wirelane_fast_path_packets_total', 'same_node'],
  toUnderlay: ['wirelane_fast_path_packets_total', 'to_underlay'],
  toWireGuard: ['wirelane_fast_path_packets_total', 'to_wireguard'],
  fromUnderlay: ['wirelane_fast_path_packets_total', 'from_underlay'],
  fromWireGuard: ['wirelane_fast_path_packets_total', 'from_wireguard'],
  passNat: ['wirelane_fast_path_passed_total', 'conntrack_nat'],
  passNeighbour: ['wirelane_fast_path_passed_total', 'no_neighbour'],
  passRoute: ['wirelane_fast_path_passed_total', 'route'],
  passError: ['wirelane_fast_path_passed_total', 'error'],
} as const satisfies Record<FastPathStat, readonly [string, string]>;

/** Which metric and label each wl_np_stats counter is exported as (README: Metrics). */
const NODEPORT_COUNTERS = {
  newFlow: ['wirelane_nodeport_flows_total', 'new'],
  confirmed: ['wirelane_nodeport_flows_total', 'confirmed'],
  unconfirmedExpired: ['wirelane_nodeport_flows_total', 'unconfirmed_expired'],
  snatReclaimed: ['wirelane_nodeport_flows_total', 'snat_port_reclaimed'],
  evicted: ['wirelane_nodeport_flows_total', 'evicted'],
  forward: ['wirelane_nodeport_packets_total', 'forward'],
  replyIngress: ['wirelane_nodeport_packets_total', 'reply_ingress'],
  replyEgress: ['wirelane_nodeport_packets_total', 'reply_egress'],
  toKernel: ['wirelane_nodeport_packets_total', 'to_kernel'],
  reject: ['wirelane_nodeport_packets_total', 'reject'],
  passNotSyn: ['wirelane_nodeport_packets_total', 'pass_not_syn'],
  handshakeMismatch: ['wirelane_nodeport_packets_total', 'handshake_mismatch'],
  dropNoEndpoint: ['wirelane_nodeport_drops_total', 'no_endpoint'],
  dropSourceRange: ['wirelane_nodeport_drops_total', 'source_range'],
  dropSnatPorts: ['wirelane_nodeport_drops_total', 'snat_ports_exhausted'],
  dropNoRoute: ['wirelane_nodeport_drops_total', 'no_route'],
  dropError: ['wirelane_nodeport_drops_total', 'error'],
  dropNotSyn: ['wirelane_nodeport_drops_total', 'not_syn'],
} as const satisfies Record<NodePortStat, readonly [string, string]>;

/** Which label each wl_sock_stats counter is exported under (wirelane_sock_lb_refusals_total{reason}). */
const SOCK_LB_COUNTERS = {
  noEndpoint: ['wirelane_sock_lb_refusals_total', 'no_endpoint'],
  noLocalEndpoint: ['wirelane_sock_lb_refusals_total', 'no_local_endpoint'],
  noBackend: ['wirelane_sock_lb_refusals_total', 'no_backend'],
} as const satisfies Record<SockLbStat, readonly [string, string]>;

interface CounterFamily {
  readonly name: string;
  readonly label: string;
  readonly help: string;
}

/**
 * Counters the kernel keeps (a BPF per-CPU array), read at each scrape: each stat is one label value
 * of one of `families`. Absent until the eBPF mode names its reader; a read that fails leaves the
 * last values.
 */
export class KernelCounterMetrics<Stat extends string> {
  #read: (() => Readonly<Record<Stat, bigint>> | undefined) | undefined;

  constructor(registry: Registry, table: Readonly<Record<Stat, readonly [string, string]>>, families: readonly CounterFamily[]) {
    const read = (): Readonly<Record<Stat, bigint>> | undefined => {
      try {
        return this.#read?.();
      } catch {
        return undefined;
      }
    };
    for (const family of families) {
      new Counter({
        name: family.name,
        help: family.help,
        labelNames: [family.label],
        registers: [registry],
        collect() {
          const values = read();
          if (values === undefined) return;
          this.reset();
          for (const [stat, [of, value]] of Object.entries(table) as [Stat, readonly [string, string]][]) {
            if (of === family.name) this.inc({ [family.label]: value }, Number(values[stat]));
          }
        },
      });
    }
  }

  /** Where the counters come from; undefined from `read`: not there (yet). */
  readFrom(read: () => Readonly<Record<Stat, bigint>> | undefined): void {
    this.#read = read;
  }
}

/**
 * The eBPF tc data path's counters (wl_np_stats): wirelane_nodeport_flows_total{event},
 * wirelane_nodeport_packets_total{action} and wirelane_nodeport_drops_total{reason}.
 */
function nodePortMetrics(registry: Registry): KernelCounterMetrics<NodePortStat> {
  return new KernelCounterMetrics(registry, NODEPORT_COUNTERS, [
    { name: 'wirelane_nodeport_flows_total', label: 'event', help: 'NodePort/ExternalIP/LB flows from outside (eBPF tc path), by what happened to them' },
    { name: 'wirelane_nodeport_packets_total', label: 'action', help: 'Packets the eBPF tc path translated or passed on, by action' },
    { name: 'wirelane_nodeport_drops_total', label: 'reason', help: 'Packets the eBPF tc path dropped, by reason (snat_ports_exhausted: no free masquerade port)' },
  ]);
}

/** The eBPF socket LB's refusals (wl_sock_stats): connect()/sendmsg() to a service that failed at once. */
function sockLbMetrics(registry: Registry): KernelCounterMetrics<SockLbStat> {
  return new KernelCounterMetrics(registry, SOCK_LB_COUNTERS, [
    {
      name: 'wirelane_sock_lb_refusals_total',
      label: 'reason',
      help: 'connect()/sendmsg() calls to a service the eBPF socket LB failed, by reason (no_endpoint: ECONNREFUSED; no_local_endpoint: EHOSTUNREACH)',
    },
  ]);
}

/** The fast path's counters (wl_fp_stats): packets it forwarded by path, candidates it left to the stack by reason. */
function fastPathMetrics(registry: Registry): KernelCounterMetrics<FastPathStat> {
  return new KernelCounterMetrics(registry, FAST_PATH_COUNTERS, [
    { name: 'wirelane_fast_path_packets_total', label: 'path', help: 'Pod packets the eBPF fast path forwarded past netfilter, by path' },
    { name: 'wirelane_fast_path_passed_total', label: 'reason', help: 'Pod-to-pod packets the eBPF fast path left to the stack, by reason (conntrack_nat: a flow netfilter translates)' },
  ]);
}
