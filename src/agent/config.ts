// The agent's configuration, parsed and checked once at start.
import type { EbpfMapSizes } from '../dataplane/ebpf/ebpf-service-proxy.js';
import type { ServiceProxyMode } from '../dataplane/service-proxy.js';
import type { Cidr } from '../model/ip.js';
import type { Encapsulation, Granularity } from '../model/mesh.js';
import type { LogLevel } from '../observability/logger.js';
import type { ListenAddress } from './http-server.js';
import type { UserspaceWireGuard } from '../wireguard/device.js';
import { SERVICE_PROXY_MODES } from './service-proxy-modes.js';

export type SourceConfig =
  | { readonly kind: 'kubernetes'; readonly kubeconfig?: string }
  /** annotationsDir: --annotations-dir, where the agents of a file-sourced cluster share their run-time annotations. */
  | { readonly kind: 'file'; readonly path: string; readonly annotationsDir?: string };

export type ServiceProxyChoice = 'auto' | ServiceProxyMode | 'off';

export const SERVICE_PROXY_CHOICES: readonly ServiceProxyChoice[] = ['auto', ...SERVICE_PROXY_MODES.map((row) => row.mode), 'off'];

export const FAST_PATH_CHOICES = ['auto', 'on', 'off'] as const;
export type FastPathChoice = (typeof FAST_PATH_CHOICES)[number];

export interface AgentConfig {
  readonly source: SourceConfig;
  readonly hostname: string;
  readonly stateDir: string;
  readonly interface: string;
  readonly port: number;
  /** --subnet: the WireGuard subnets, one per family, the primary first. */
  readonly subnets: readonly Cidr[];
  /** --service-cidr: the cluster's service ranges, which no Peer or location may claim. */
  readonly serviceCIDRs: readonly Cidr[];
  /** --allow-wide-claims: Peers and locations may claim prefixes wider than /8 (IPv4) or /16 (IPv6). */
  readonly allowWideClaims: boolean;
  readonly granularity: Granularity;
  readonly encapsulate: Encapsulation;
  readonly local: boolean;
  readonly topologyLabel: string;
  readonly internalCidrs: readonly Cidr[];
  readonly resyncPeriodMs: number;
  /** --lease-namespace: where the heartbeat Leases live (kubernetes source; sources/lease.ts). */
  readonly leaseNamespace: string;
  /** The timeout of an external command that has no bound of its own (iptables-restore has). */
  readonly commandTimeoutMs: number;
  /** Health (/healthz, /readyz): reachable by the kubelet's probes. */
  readonly listen: ListenAddress;
  /** /metrics and /graph (and health): loopback unless exposed. */
  readonly metricsListen: ListenAddress;
  readonly cleanUp: boolean;
  /** Where the kernel has no WireGuard: whether the agent runs wireguard-go or adopts another's. */
  readonly userspaceWireGuard: UserspaceWireGuard;
  /** 'auto' = underlay MTU − 80 (WireGuard's overhead over IPv6). */
  readonly mtu: number | 'auto';
  readonly iptablesForwardRules: boolean;
  readonly logLevel: LogLevel;
  readonly serviceProxy: ServiceProxyChoice;
  /** --nodeport-addresses: empty = every address of the node (never loopback). */
  readonly nodePortCIDRs: readonly Cidr[];
  /** Userspace mode: where proxy ports come from; undefined = any free port. */
  readonly proxyPortRange?: { readonly min: number; readonly max: number };
  /** Userspace mode: idle expiry of a UDP client's backend socket. */
  readonly udpTimeoutMs: number;
  /** eBPF mode: where the socket programs attach; undefined = the cgroup v2 mount. */
  readonly cgroupRoot?: string;
  /** eBPF mode: where maps and links are pinned; undefined = <bpffs>/wirelane. */
  readonly bpfDir?: string;
  /**
   * --cni: write the CNI configuration list for this node's pods (bridge, host-local, portmap);
   * without it, remove the one a previous run wrote. Default: on with the kubernetes source.
   */
  readonly cni: boolean;
  /** --cni-conf-dir and --cni-conf-name: the configuration list's path. */
  readonly cniConfFile: string;
  /** --cni-ipam-dir: host-local's state directory; undefined = the plugin's default (/var/lib/cni/networks). */
  readonly cniIpamDir?: string;
  /**
   * --fast-path: tc programs forwarding pod traffic past netfilter (dataplane/ebpf/fast-path.ts).
   * auto: where `wirelane probe` finds it can run; on: or the agent does not start; off: removed.
   */
  readonly fastPath: FastPathChoice;
  /** eBPF mode: sizes of the maps the programs fill (--nodeport-flows, --sock-lb-entries, ...). */
  readonly ebpfMapSizes: EbpfMapSizes;
}
