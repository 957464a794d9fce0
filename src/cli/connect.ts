// `wirelane connect NAME` (Kilo's `kgctl connect`): this host joins the mesh as the Peer NAME until
// SIGINT/SIGTERM, then leaves it as it was (Peer object, interface, routes and wireguard-go gone).
import { join } from 'node:path';
import { ProblemReporter } from '../agent/problem-reporter.js';
import { ReconcileLoop } from '../agent/reconcile-loop.js';
import { type Cidr, formatCidr, parseIpOrCidr, widthOf } from '../model/ip.js';
import { publicKeyOf } from '../model/key.js';
import { errorLine } from '../observability/first-line.js';
import { type Logger, createLogger } from '../observability/logger.js';
import { AgentMetrics } from '../observability/metrics.js';
import { publishedGranularity } from '../mesh/peer-host.js';
import { FIRST_HANDSHAKE_WINDOW_SECONDS } from '../mesh/tunnel-health.js';
import { PeerConnection, type RoutingState } from '../peer/connection.js';
import { PeerRegistry } from '../peer/registration.js';
import { kubeAccessOfConfig, loadKubeConfig } from '../sources/kubernetes/client-node-access.js';
import { KubernetesSource } from '../sources/kubernetes/kubernetes-source.js';
import { listHeartbeatLeases } from '../sources/kubernetes/list-once.js';
import { DEFAULT_LEASE_NAMESPACE, type HeartbeatLease, withLeaseLastSeen } from '../sources/lease.js';
import { decodeMeshInput } from '../sources/mesh-input.js';
import { DEFAULT_TOPOLOGY_LABEL } from '../sources/node.js';
import type { PeerRegistration } from '../sources/peer.js';
import { loadOrCreateKeyFile } from '../state/key-file.js';
import { kubeconfigPath } from './kubeconfig.js';
import { DEFAULT_SUBNET, meshOptionsOf } from './mesh-command-input.js';
import { type Command, LOG_LEVEL_OPTION, UsageError, type Values } from './command.js';
import { DEFAULT_RESYNC_PERIOD, durationFlag, integerFlag, interfaceFlag, parseFlag, parseLogLevelFlag, stringFlag } from './flags.js';
import { DEFAULT_STATE_DIR } from './keygen.js';

export const DEFAULT_PEER_INTERFACE = 'wirelane-peer0';
/** Kilo's defaults for `kgctl connect`: keepalive through NATs, and WireGuard's usual MTU. */
const DEFAULT_KEEPALIVE = 10;
const DEFAULT_MTU = 1420;

export const connect: Command = {
  name: 'connect',
  summary: 'join the mesh as a Peer from a host outside the cluster, until interrupted',
  usage: 'wirelane connect NAME --allowed-ip IP/32 [--allowed-ip IP/128] [flags]',
  help: `Registers this host as the Peer NAME (wirelane.io/v1alpha1) with its WireGuard public key,
brings up a WireGuard interface (the kernel's, else wireguard-go) holding the allowed IPs as its
addresses, routes the mesh's ranges (pods, nodes, allowed-location IPs, other Peers, the service
CIDRs) through it once a leader has completed a first handshake (until then the host keeps its own
routes to node IPs; with --persistent-keepalive 0 nothing starts a handshake, so it routes at
once), and keeps its configuration equal to 'wirelane showconf peer NAME' as the cluster changes.
On SIGINT or SIGTERM it deletes the Peer, the interface and its routes, and the wireguard-go it
started. The private key is created once (0600) and reused on the next run. A Peer
NAME that exists with this host's key is adopted; with another key, connect refuses.

Flags:
  --allowed-ip IP[/32|/128]   this Peer's address, one per family (required; repeat for both)
  --persistent-keepalive N    seconds between keepalives, 0 for none (default ${DEFAULT_KEEPALIVE})
  --interface NAME            WireGuard interface (default ${DEFAULT_PEER_INTERFACE})
  --mtu N                     the interface's MTU (default ${DEFAULT_MTU})
  --state-dir DIR             where the private key is kept (default ${DEFAULT_STATE_DIR})
  --key-file FILE             the private key (default <state-dir>/peer-NAME.key)
  --kubeconfig FILE           kubeconfig (default $KUBECONFIG, else in-cluster credentials)
  --resync-period DURATION    re-list interval besides the watch (default 30s); nodes whose last
                              heartbeat is older than 2 × this are left out, as the agents do
  --lease-namespace NS        where the agents' heartbeat Leases live (default ${DEFAULT_LEASE_NAMESPACE}); the
                              heartbeat Leases (nodes' and segments') are read at every resync;
                              nothing is applied before a read succeeded, and a failed read
                              judges nodes by the last Leases read, as of then
  --granularity G             location, full or cross (default: what the agents publish on their
                              Nodes, else location)
  --subnet CIDR[,CIDR]        the agents' WireGuard subnets (default ${DEFAULT_SUBNET})
  --service-cidr CIDR[,CIDR]  the cluster's service ranges, routed to the segment of the first node
                              by name (as the agents' --service-cidr and showconf peer)
  --allow-wide-claims[=true]  as the agents run: Peers and locations may claim prefixes wider
                              than /8 (IPv4) or /16 (IPv6)
  --topology-label LABEL      node label naming the location (default ${DEFAULT_TOPOLOGY_LABEL})
  --log-level LEVEL           trace, debug, info, warn, error (default info)`,
  allowPositionals: true,
  switches: ['allow-wide-claims'],
  options: {
    'allowed-ip': { type: 'string', multiple: true },
    'persistent-keepalive': { type: 'string', default: String(DEFAULT_KEEPALIVE) },
    interface: { type: 'string', default: DEFAULT_PEER_INTERFACE },
    mtu: { type: 'string', default: String(DEFAULT_MTU) },
    'state-dir': { type: 'string', default: DEFAULT_STATE_DIR },
    'key-file': { type: 'string' },
    kubeconfig: { type: 'string' },
    'resync-period': { type: 'string', default: DEFAULT_RESYNC_PERIOD },
    'lease-namespace': { type: 'string', default: DEFAULT_LEASE_NAMESPACE },
    granularity: { type: 'string' },
    subnet: { type: 'string', multiple: true },
    'service-cidr': { type: 'string' },
    'allow-wide-claims': { type: 'string' },
    'topology-label': { type: 'string', default: DEFAULT_TOPOLOGY_LABEL },
    ...LOG_LEVEL_OPTION,
  },
  async run(values, positionals) {
    const flags = parseConnectFlags(values, positionals);
    const code = await runConnect(flags, values);
    // The watches' keep-alive connections must not hold the process once everything is removed.
    process.exit(code);
  },
};

export interface ConnectFlags {
  /** The Peer object's fields but the public key, which comes from the key file. */
  readonly peer: Omit<PeerRegistration, 'publicKey'>;
  readonly interface: string;
  readonly mtu: number;
  readonly keyFile: string;
  readonly stateDir: string;
  readonly kubeconfig: string | undefined;
  readonly resyncPeriodMs: number;
  readonly topologyLabel: string;
  readonly leaseNamespace: string;
}

// Kubernetes object names (RFC 1123 subdomain), which are also safe in a file name.
const OBJECT_NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

/** The flags as a Peer registration and where things go; every bad value is a usage error naming its flag. */
export function parseConnectFlags(values: Values, positionals: readonly string[]): ConnectFlags {
  const [name, ...extra] = positionals;
  if (name === undefined || extra.length > 0) throw new UsageError('want: connect NAME');
  if (!OBJECT_NAME.test(name)) throw new UsageError(`"${name}" is not a Kubernetes object name (lower-case letters, digits, '-' and '.')`);
  const str = (flag: string): string => stringFlag(values, flag) ?? '';
  const stateDir = str('state-dir');
  return {
    peer: {
      name,
      allowedIPs: parseAllowedIPs(values['allowed-ip']),
      persistentKeepalive: integerFlag('persistent-keepalive', str('persistent-keepalive'), 0, 65535),
    },
    interface: interfaceFlag(values),
    mtu: integerFlag('mtu', str('mtu'), 1280, 65535),
    keyFile: stringFlag(values, 'key-file') ?? join(stateDir, `peer-${name}.key`),
    stateDir,
    kubeconfig: kubeconfigPath(stringFlag(values, 'kubeconfig'), 'or set $KUBECONFIG'),
    resyncPeriodMs: durationFlag('resync-period', str('resync-period')),
    topologyLabel: str('topology-label'),
    leaseNamespace: str('lease-namespace'),
  };
}

/** One host address per family: they become the interface's addresses and the Peer's allowed IPs. */
function parseAllowedIPs(value: Values[string]): Cidr[] {
  const texts = (Array.isArray(value) ? value : value === undefined ? [] : [value]).map(String);
  if (texts.length === 0) throw new UsageError('--allowed-ip is required (this Peer\'s address, e.g. 10.5.0.1/32)');
  const cidrs = texts.map((t) => parseFlag('allowed-ip', t, parseIpOrCidr));
  for (const c of cidrs) {
    if (c.bits !== widthOf(c.family)) throw new UsageError(`--allowed-ip: ${formatCidr(c)} is not one address (/${widthOf(c.family)})`);
  }
  if (new Set(cidrs.map((c) => c.family)).size !== cidrs.length) throw new UsageError('--allowed-ip: at most one address per family');
  return cidrs;
}

async function runConnect(flags: ConnectFlags, values: Values): Promise<number> {
  const log = createLogger(parseLogLevelFlag(stringFlag(values, 'log-level') ?? 'info'));
  // Handlers first: a signal during start-up still ends in a clean exit.
  let stop: () => void = () => {};
  const stopped = new Promise<void>((resolve) => (stop = resolve));
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => stop());

  // client-node's full client: the Peer is written through its typed API (registration.ts).
  const kubeconfig = loadKubeConfig(flags.kubeconfig);
  const access = kubeAccessOfConfig(kubeconfig);
  const privateKey = await loadOrCreateKeyFile(flags.keyFile);
  const registration: PeerRegistration = { ...flags.peer, publicKey: publicKeyOf(privateKey) };
  const registry = new PeerRegistry(kubeconfig);
  const outcome = await registry.register(registration);
  log.info({ peer: registration.name, publicKey: registration.publicKey, allowedIPs: registration.allowedIPs.map(formatCidr) }, `Peer ${outcome}`);

  const source = new KubernetesSource(access, log, false);
  // A sync waiting for the first handshake ends at once when the process is asked to leave.
  const leaving = new AbortController();
  void stopped.then(() => leaving.abort());
  const keepalive = registration.persistentKeepalive;
  let loop: ReconcileLoop | undefined;
  const connection = new PeerConnection({
    name: registration.name,
    interface: flags.interface,
    privateKey,
    addresses: registration.allowedIPs,
    mtu: flags.mtu,
    wireguardGoLog: join(flags.stateDir, `wireguard-go-${flags.interface}.log`),
    onBackendExit: (line) => {
      log.error(line);
      loop?.trigger();
    },
    // Without a keepalive nothing starts a handshake before traffic is routed into the tunnel.
    firstHandshakeWaitMs: keepalive > 0 ? FIRST_HANDSHAKE_WINDOW_SECONDS * 1000 : undefined,
    stopSignal: leaving.signal,
  });
  const problems = new ProblemReporter(log, new AgentMetrics());
  // The heartbeat Leases, read at every sync (one per segment and node): nodes are judged by them, as
  // last-seen is no heartbeat any more. Until a read succeeded nothing is applied (the previous
  // configuration stays); after a failed one the last Leases read judge the nodes as of when they
  // were read, so the time since counts against nobody (unknown is not empty).
  let heard: LeasesRead | undefined;
  let failing = false;
  const readLeases = async (): Promise<LeasesRead | undefined> => {
    try {
      heard = { leases: await listHeartbeatLeases(access, flags.leaseNamespace), at: Math.floor(Date.now() / 1000) };
      if (failing) log.info('heartbeat Leases read again');
      failing = false;
    } catch (err) {
      const line =
        heard === undefined
          ? `${errorLine(err)}; nothing is applied until the heartbeat Leases have been read once`
          : `${errorLine(err)}; judging nodes by the Leases read at ${new Date(heard.at * 1000).toISOString()}, as of then`;
      if (failing) log.debug(line);
      else log.warn(line);
      failing = true;
    }
    return heard;
  };
  let waits = 0;
  loop = new ReconcileLoop(async () => {
    const leases = await readLeases();
    if (leases === undefined) return;
    const routing = await syncOnce(source, leases, connection, problems, flags, values, log);
    if (routing === 'awaiting-handshake') {
      // One clear line, then quiet: the next sync looks again right away.
      const line = `no handshake with any leader within ${FIRST_HANDSHAKE_WINDOW_SECONDS} s of ${flags.interface} coming up: the mesh's ranges are not routed yet (node IPs keep the host's own routes); waiting for the leaders to add this Peer and answer`;
      if (waits++ === 0) log.warn(line);
      else log.debug(line);
      loop?.trigger();
    } else if (routing === 'started') {
      log.info(keepalive > 0 ? `first handshake: routing the mesh's ranges through ${flags.interface}` : `routing the mesh's ranges through ${flags.interface} (no keepalive: no handshake to wait for)`);
    }
  }, flags.resyncPeriodMs);
  let code = 1;
  try {
    await Promise.race([source.start(() => loop?.trigger()), stopped]);
    loop.start();
    await stopped;
  } finally {
    // Also when start-up failed: the Peer is registered, and the interface may be up.
    await loop.stop();
    await source.stop();
    code = await leave(connection, registry, registration, log);
  }
  return code;
}

/** Heartbeat Leases as read, and when (unix seconds, this host's clock). */
interface LeasesRead {
  readonly leases: readonly HeartbeatLease[];
  readonly at: number;
}

async function syncOnce(
  source: KubernetesSource,
  heard: LeasesRead,
  connection: PeerConnection,
  problems: ProblemReporter,
  flags: ConnectFlags,
  values: Values,
  log: Logger,
): Promise<RoutingState | undefined> {
  // Unknown is not empty: nothing is computed before Nodes and Peers have been listed.
  if (!source.hasSynced()) return undefined;
  const read = decodeMeshInput(source.snapshot(), { topologyLabel: flags.topologyLabel });
  const decoded = { ...read, nodes: withLeaseLastSeen(read.nodes, heard.leases) };
  problems.report(decoded.problems);
  // Nodes are judged as of the Leases' read: now, unless the last read failed.
  const now = heard.at;
  try {
    const opts = meshOptionsOf(values, now);
    const granularity = stringFlag(values, 'granularity') === undefined ? (publishedGranularity(decoded) ?? opts.granularity) : opts.granularity;
    const report = await connection.sync(decoded, { ...opts, granularity, wireguardDevice: flags.interface });
    for (const line of report.changes) log.info(`wireguard: ${line}`);
    for (const line of report.unresolved) log.warn(`wireguard: ${line}`);
    if (report.changes.length > 0 || report.routesWritten > 0) log.info({ viewpoint: report.viewpoint, routesWritten: report.routesWritten }, 'Peer configuration applied');
    return report.routing;
  } catch (err) {
    log.error(`sync: ${errorLine(err)}`);
    return undefined;
  }
}

/** Removes the interface and routes, then the Peer; exit code 1 when something could not be removed. */
async function leave(connection: PeerConnection, registry: PeerRegistry, registration: PeerRegistration, log: Logger): Promise<number> {
  let code = 0;
  try {
    await connection.close();
    log.info('interface and routes removed');
  } catch (err) {
    log.error(`removing the interface: ${errorLine(err)}`);
    code = 1;
  }
  try {
    if (await registry.unregister(registration)) log.info(`Peer ${registration.name} deleted`);
    else log.warn(`Peer ${registration.name} was already gone`);
  } catch (err) {
    log.error(`deleting the Peer: ${errorLine(err)}`);
    code = 1;
  }
  return code;
}
