// The service proxy modes as one ordered table, fastest first. Each row says how to tell whether
// the host can run the mode, how to start it, and how to remove what a run of it left behind;
// `auto`, an explicit --service-proxy, `wirelane probe`, the help text, the mode-change clean-up,
// `wirelane cleanup` and the conformance suite all read this table. A new mode is one new row.
import type { EbpfMapSizes } from '../dataplane/ebpf/ebpf-service-proxy.js';
import type { NodePortStat } from '../dataplane/ebpf/nodeport.js';
import type { SockLbStat } from '../dataplane/ebpf/sock-lb.js';
import { type EbpfCheck, probeEbpfSupport } from '../dataplane/ebpf/support.js';
import { removeOwnedChains } from '../dataplane/iptables/chains.js';
import { SERVICE_OWNER } from '../dataplane/service-iptables/chain-names.js';
import type { ServiceProxy, ServiceProxyMode } from '../dataplane/service-proxy.js';
import { USERSPACE_OWNER } from '../dataplane/userspace/portal-rules.js';
import { listAddresses } from '../host/addresses.js';
import { runCommand } from '../host/command.js';
import { listRoutes } from '../host/routes.js';
import { type Ip, parseIp } from '../model/ip.js';
import { firstLine } from '../observability/first-line.js';
import type { Logger } from '../observability/logger.js';
import type { AgentConfig } from './config.js';

/** Where the modes keep their state on this host; the agent's flags fill these in. */
export interface ServicePlacement {
  /** eBPF: the cgroup v2 directory the socket programs attach to. Default: the cgroup v2 mount. */
  readonly cgroupRoot?: string;
  /** eBPF: where maps and links are pinned. Default: <bpffs>/wirelane. */
  readonly bpffsDir?: string;
  /** eBPF: where NodePort/ExternalIP/LB traffic from outside arrives; default: the default routes' interfaces. */
  readonly nodePortInterfaces?: readonly string[];
}

/** One check `wirelane probe` prints; `required` ones decide whether the mode is usable. */
export type ModeCheck = EbpfCheck;

export interface ModeProbe {
  readonly usable: boolean;
  /** Why not, as one line; absent when usable. */
  readonly reason?: string;
  readonly checks: readonly ModeCheck[];
}

/** The eBPF mode's map sizes unless the agent's flags say otherwise. */
export const EBPF_MAP_SIZES = {
  nodePortFlows: 65536,
  nodePortPendingFlows: 16384,
  sockLbEntries: 65536,
  affinityEntries: 65536,
  // The header's WL_SERVICES_MAX and WL_BACKENDS_MAX (less id 0, which means none): a default
  // start keeps the maps an earlier agent pinned.
  serviceEntries: 131072,
  backendEntries: 131071,
} as const satisfies Required<EbpfMapSizes>;

export interface ModeStart {
  readonly config: Pick<AgentConfig, 'udpTimeoutMs' | 'proxyPortRange' | 'ebpfMapSizes'>;
  readonly log: Logger;
  readonly placement: ServicePlacement;
}

export interface ServiceProxyModeRow {
  readonly mode: ServiceProxyMode;
  /** For --help. */
  readonly summary: string;
  /** Whether backends see the client's own address (they see the node's otherwise). */
  readonly preservesClientAddress: boolean;
  /** Asks the host cheaply and without side effects whether the mode can run. */
  probe(placement: ServicePlacement): Promise<ModeProbe>;
  /** Starts the mode; throws with the reason, having removed what this call attached, when it cannot. */
  open(start: ModeStart): Promise<ServiceProxy>;
  /**
   * Removes what any run of this mode left on the host (with --clean-up=false, or killed), without
   * the run that made it: one line per kind of thing removed, none on a clean host. Idempotent.
   */
  removeLeftovers(placement: ServicePlacement): Promise<string[]>;
}

const ebpf = {
  mode: 'ebpf',
  summary: 'socket-level load balancing; tc programs for traffic from outside',
  preservesClientAddress: true,
  async probe(placement) {
    return probeEbpfSupport(placement.cgroupRoot === undefined ? {} : { cgroupRoot: placement.cgroupRoot });
  },
  async open({ config, log, placement }) {
    const { EbpfServiceProxy } = await import('../dataplane/ebpf/ebpf-service-proxy.js');
    const interfaces = placement.nodePortInterfaces ?? [...(await defaultRouteDevices())];
    return EbpfServiceProxy.open({
      log,
      ...(placement.cgroupRoot !== undefined && { cgroupRoot: placement.cgroupRoot }),
      ...(placement.bpffsDir !== undefined && { bpffsDir: placement.bpffsDir }),
      // Without an interface to attach to there is no traffic from outside to translate.
      nodePort: { enabled: interfaces.length > 0, interfaces },
      sizes: config.ebpfMapSizes,
    });
  },
  async removeLeftovers(placement) {
    const [{ removeEbpfLeftovers }, { defaultBpffsDir }] = await Promise.all([import('../dataplane/ebpf/leftovers.js'), import('../dataplane/ebpf/ebpf-service-proxy.js')]);
    return removeEbpfLeftovers(placement.bpffsDir ?? defaultBpffsDir());
  },
} satisfies ServiceProxyModeRow;

/** Readers of the eBPF mode's kernel counters (tc: wl_np_stats, socket LB: wl_sock_stats) for the agent's metrics; nothing is loaded or attached. */
export async function ebpfCounters(placement: ServicePlacement): Promise<{
  readonly nodePort: () => Record<NodePortStat, bigint> | undefined;
  readonly sockLb: () => Record<SockLbStat, bigint> | undefined;
}> {
  const [{ readNodePortStats }, { readSockLbStats }, { defaultBpffsDir }] = await Promise.all([
    import('../dataplane/ebpf/nodeport.js'),
    import('../dataplane/ebpf/sock-lb.js'),
    import('../dataplane/ebpf/ebpf-service-proxy.js'),
  ]);
  const dir = placement.bpffsDir ?? defaultBpffsDir();
  return { nodePort: () => readNodePortStats(dir), sockLb: () => readSockLbStats(dir) };
}

const iptables = {
  mode: 'iptables',
  summary: "kube-proxy's iptables rules (WLSVC- chains)",
  preservesClientAddress: true,
  async probe() {
    const failure = await iptablesNatFailure();
    const check: ModeCheck = { name: 'iptables nat table', ok: failure === undefined, required: true, ...(failure !== undefined && { detail: failure }) };
    return { usable: check.ok, ...(failure !== undefined && { reason: `iptables nat table unusable: ${failure}` }), checks: [check] };
  },
  async open() {
    const failure = await iptablesNatFailure();
    if (failure !== undefined) throw new Error(`iptables nat table unusable: ${failure}`);
    const { IptablesServiceProxy } = await import('../dataplane/service-iptables/index.js');
    return new IptablesServiceProxy();
  },
  removeLeftovers: () => removeOwnedChains(SERVICE_OWNER),
} satisfies ServiceProxyModeRow;

const userspace = {
  mode: 'userspace',
  summary: 'proxy sockets in the agent; backends see the node, not the client',
  preservesClientAddress: false,
  probe: async () => ({ usable: true, checks: [] }),
  async open({ config, log }) {
    const { UserspaceServiceProxy } = await import('../dataplane/userspace/index.js');
    return new UserspaceServiceProxy({
      hostAddress: await hostAddresses(),
      udpIdleTimeoutMs: config.udpTimeoutMs,
      ...(config.proxyPortRange && { proxyPortRange: config.proxyPortRange }),
      log,
    });
  },
  // The sockets died with the agent; the portal rules stay and point at nothing.
  removeLeftovers: () => removeOwnedChains(USERSPACE_OWNER),
} satisfies ServiceProxyModeRow;

const ROWS = [ebpf, iptables, userspace] as const;
type MissingRow = Exclude<ServiceProxyMode, (typeof ROWS)[number]['mode']>;

/** Every mode, fastest first: the order `auto` tries them in. Does not compile while a mode has no row. */
export const SERVICE_PROXY_MODES: [MissingRow] extends [never] ? readonly ServiceProxyModeRow[] : never = ROWS;

export function modeRow(mode: ServiceProxyMode): ServiceProxyModeRow {
  const row = SERVICE_PROXY_MODES.find((r) => r.mode === mode);
  if (row === undefined) throw new Error(`service proxy mode ${mode} has no row`);
  return row;
}

/** Why `iptables -t nat` cannot be used here (the tool or the kernel's NAT), or undefined when it can. */
async function iptablesNatFailure(): Promise<string | undefined> {
  const probe = await runCommand('iptables', ['-t', 'nat', '-S', 'PREROUTING'], { allowFailure: true }).catch((err: Error) => ({ exitCode: 1, stderr: err.message }));
  return probe.exitCode === 0 ? undefined : (firstLine(probe.stderr) || 'failed');
}

async function defaultRouteDevices(): Promise<Set<string>> {
  const routes = await listRoutes({ table: 'main' });
  const devices = new Set<string>();
  for (const r of routes) if ((r.dst === '0.0.0.0/0' || r.dst === '::/0') && r.dev !== undefined) devices.add(r.dev);
  return devices;
}

/**
 * A non-loopback address per family for userspace host portals: the source the host uses towards
 * service IPs, i.e. an address of the default-route interface (else any global address).
 */
async function hostAddresses(): Promise<Ip[]> {
  const [addresses, defaultDevices] = await Promise.all([listAddresses(), defaultRouteDevices()]);
  const global = addresses.filter((a) => a.scope === 'global' && a.ifname !== 'lo');
  const out: Ip[] = [];
  for (const family of [4, 6] as const) {
    const ofFamily = global.filter((a) => a.family === family);
    const chosen = ofFamily.find((a) => defaultDevices.has(a.ifname)) ?? ofFamily[0];
    if (chosen) out.push(parseIp(chosen.address));
  }
  return out;
}
