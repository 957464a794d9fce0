import { hostname as osHostname } from 'node:os';
import { join } from 'node:path';
import { type AgentConfig, FAST_PATH_CHOICES, SERVICE_PROXY_CHOICES, type SourceConfig } from '../agent/config.js';
import { type ListenAddress, parseListenAddress } from '../agent/http-server.js';
import { fastPathOnRefused, fastPathRefusal } from '../agent/fast-path-policy.js';
import { EBPF_MAP_SIZES, SERVICE_PROXY_MODES } from '../agent/service-proxy-modes.js';
import { DEFAULT_LEASE_NAMESPACE } from '../sources/lease.js';
import { DEFAULT_TOPOLOGY_LABEL } from '../sources/node.js';
import { DNS_LABEL } from '../sources/objects.js';
import { USERSPACE_WIREGUARD_CHOICES } from '../wireguard/device.js';
import { type Command, UsageError, type Values } from './command.js';
import {
  DEFAULT_RESYNC_PERIOD, choiceFlag, cidrListFlag, interfaceFlag,
  durationFlag, integerFlag, parseClaimFlags, parseEncapsulationFlag, parseGranularityFlag, parseLogLevelFlag,
  stringFlag, subnetsFlag, switchFlag,
} from './flags.js';
import { DEFAULT_SUBNET } from './mesh-command-input.js';
import { DEFAULT_STATE_DIR } from './keygen.js';
import { kubeconfigPath } from './kubeconfig.js';
import { MIN_MTU } from '../mesh/mtu.js';

export const DEFAULT_CNI_CONF_DIR = '/etc/cni/net.d';
export const DEFAULT_CNI_CONF_NAME = '10-wirelane.conflist';

/** The CNI configuration file's flags, which `wirelane cleanup` takes too. */
export const CNI_FILE_OPTIONS = {
  'cni-conf-dir': { type: 'string', default: DEFAULT_CNI_CONF_DIR },
  'cni-conf-name': { type: 'string', default: DEFAULT_CNI_CONF_NAME },
} as const;

export const agent: Command = {
  name: 'agent',
  summary: 'run the node agent: keep this node in the WireGuard mesh',
  usage: 'wirelane agent [flags]',
  help: `Flags:
  --source kubernetes|file:PATH   where the cluster comes from (default: kubernetes when a kubeconfig
                                  or in-cluster credentials exist)
  --kubeconfig FILE               kubeconfig for the kubernetes source (default: in-cluster)
  --annotations-dir DIR           with --source file: where the agents share their run-time
                                  annotations (tunnels-broken, discovered-endpoints, wireguard-ip),
                                  DIR/<node>.json each; the same directory for every agent (default:
                                  none, nothing is shared)
  --hostname NAME                 this node's name (default: the host name)
  --state-dir DIR                 private key and state (default ${DEFAULT_STATE_DIR})
  --interface NAME                WireGuard interface (default wirelane0)
  --port N                        WireGuard listen port (default 51820)
  --mtu N|auto                    WireGuard MTU (default auto: underlay MTU - 80)
  --subnet CIDR[,CIDR]            WireGuard addresses of segments, one subnet per family, comma-
                                  separated or repeated (default ${DEFAULT_SUBNET}); each leader
                                  gets an address in each
  --mesh-granularity G            location (default), full or cross
  --encapsulate MODE              never, crosssubnet or always (default never)
  --local[=true|false]            route to pods of the same location (default true)
  --topology-label LABEL          node label naming the location (default ${DEFAULT_TOPOLOGY_LABEL})
  --internal-cidr CIDR[,CIDR]     where to find the node's internal IP (default: any private address)
  --service-cidr CIDR[,CIDR]      the cluster's service ranges: no Peer or location may claim them
  --allow-wide-claims[=true]      let Peers and locations claim prefixes wider than /8 (IPv4) or
                                  /16 (IPv6), default routes included (default false)
  --resync-period DURATION        full reconcile interval (default 30s); /healthz fails when a due
                                  sync has not succeeded within 2 × this
  --lease-namespace NS            where the heartbeat Leases live (default ${DEFAULT_LEASE_NAMESPACE});
                                  a node not heard from for 2 × the resync period is gone
  --command-timeout DURATION      bound of an external command (wg, ip, conntrack; default 30s;
                                  iptables-save/-restore have their own 5m)
  --iptables-forward-rules[=true] ACCEPT forwarding for the location's addresses (default false)
  --listen [HOST]:PORT            /healthz and /readyz, for the kubelet's probes (default :1107)
  --metrics-listen [HOST]:PORT    /metrics and /graph, which name internal addresses and Peer
                                  endpoints (default 127.0.0.1:1108; the same as --listen serves
                                  everything on one port)
  --clean-up[=true|false]         remove everything on exit (default true); with false a restart
                                  keeps traffic flowing and 'wirelane cleanup' removes everything
  --userspace-wireguard MODE      where the kernel has no WireGuard: child (default) starts
                                  wireguard-go, which ends with the agent; external adopts the device
                                  'wirelane wireguard-go' serves (the DaemonSet's wireguard container)
  --log-level LEVEL               trace, debug, info, warn, error (default info)

Pod network (CNI mode, in place of another CNI):
  --cni[=true|false]              write a CNI configuration list for the standard plugins (bridge,
                                  host-local over the node's spec.podCIDRs, portmap) with the mesh
                                  MTU; false removes the one an earlier run wrote (default: true
                                  with --source kubernetes, false with a cluster file)
  --cni-conf-dir DIR              where the container runtime reads it (default ${DEFAULT_CNI_CONF_DIR})
  --cni-conf-name NAME            its file name, ending in .conflist (default ${DEFAULT_CNI_CONF_NAME})
  --cni-ipam-dir DIR              host-local's state directory (default: the plugin's own,
                                  /var/lib/cni/networks)
  --fast-path auto|on|off         tc programs that forward pod traffic past netfilter: to pods of
                                  this node (bpf_redirect_peer), other nodes (FIB lookup,
                                  bpf_redirect_neigh) and locations (the WireGuard device); flows
                                  netfilter translates stay on the stack (conntrack lookup). auto
                                  (default): where it is proven (--cni, a --service-proxy other
                                  than off) and 'wirelane probe' says it can run; on: or fail
                                  (refused with --service-proxy off); off: remove it. Pins under
                                  --bpf-dir/fast-path

Services (kube-proxy's job):
  --service-proxy MODE            auto (default): the first of these the host supports
${SERVICE_PROXY_MODES.map((row) => `                                    ${row.mode.padEnd(10)} ${row.summary}`).join('\n')}
                                  or off; each mode removes what the others left on the host
  --nodeport-addresses CIDR[,..]  serve NodePorts only on node addresses inside these (default: all
                                  of the node's addresses; never loopback)
  --proxy-port-range MIN-MAX      userspace mode: ports for proxy sockets (default: any free port)
  --udp-timeout DURATION          userspace mode: idle time before a UDP client's backend is
                                  forgotten (default 250ms), once it has answered (until then
                                  the flow waits 5 s for the first reply)
  --cgroup-root PATH              eBPF mode: the cgroup v2 directory socket programs attach to
                                  (default: the cgroup v2 mount, found in /proc/mounts)
  --bpf-dir PATH                  eBPF mode: where maps and links are pinned, so the data path
                                  outlives the agent (default: <bpffs>/wirelane)
  --nodeport-flows N              eBPF mode: NodePort, ExternalIP and LB flows from outside that
                                  completed their handshake (default ${EBPF_MAP_SIZES.nodePortFlows})
  --nodeport-pending-flows N      eBPF mode: such flows not confirmed yet; a SYN flood fills only
                                  these (default ${EBPF_MAP_SIZES.nodePortPendingFlows})
  --sock-lb-entries N             eBPF mode: sockets translated at connect()/sendmsg() open at once
                                  (default ${EBPF_MAP_SIZES.sockLbEntries})
  --affinity-entries N            eBPF mode: ClientIP affinity choices, of pods and of outside
                                  clients each (default ${EBPF_MAP_SIZES.affinityEntries}); a changed size rebuilds
                                  its map at the next start, entries kept
  --service-entries N             eBPF mode: service frontends, one per ClusterIP, external address
                                  and NodePort of each service port (default ${EBPF_MAP_SIZES.serviceEntries})
  --backend-entries N             eBPF mode: distinct endpoints (address:port) over all services
                                  (default ${EBPF_MAP_SIZES.backendEntries}); what does not fit is logged and
                                  counted (wirelane_service_frontends_unfit), and a changed size
                                  rebuilds the tables at the next start without a gap in service`,
  switches: ['local', 'clean-up', 'iptables-forward-rules', 'allow-wide-claims', 'cni'],
  options: {
    source: { type: 'string' },
    kubeconfig: { type: 'string' },
    hostname: { type: 'string' },
    'state-dir': { type: 'string', default: DEFAULT_STATE_DIR },
    interface: { type: 'string', default: 'wirelane0' },
    port: { type: 'string', default: '51820' },
    mtu: { type: 'string', default: 'auto' },
    subnet: { type: 'string', multiple: true },
    'mesh-granularity': { type: 'string', default: 'location' },
    encapsulate: { type: 'string', default: 'never' },
    local: { type: 'string' },
    'topology-label': { type: 'string', default: DEFAULT_TOPOLOGY_LABEL },
    'internal-cidr': { type: 'string' },
    'service-cidr': { type: 'string' },
    'allow-wide-claims': { type: 'string' },
    'resync-period': { type: 'string', default: DEFAULT_RESYNC_PERIOD },
    'lease-namespace': { type: 'string', default: DEFAULT_LEASE_NAMESPACE },
    'annotations-dir': { type: 'string' },
    'command-timeout': { type: 'string', default: '30s' },
    'iptables-forward-rules': { type: 'string' },
    listen: { type: 'string', default: ':1107' },
    'metrics-listen': { type: 'string', default: '127.0.0.1:1108' },
    'clean-up': { type: 'string' },
    'userspace-wireguard': { type: 'string', default: 'child' },
    'log-level': { type: 'string', default: 'info' },
    ...CNI_FILE_OPTIONS,
    cni: { type: 'string' },
    'cni-ipam-dir': { type: 'string' },
    'service-proxy': { type: 'string', default: 'auto' },
    'nodeport-addresses': { type: 'string' },
    'proxy-port-range': { type: 'string' },
    'udp-timeout': { type: 'string', default: '250ms' },
    'cgroup-root': { type: 'string' },
    'bpf-dir': { type: 'string' },
    'fast-path': { type: 'string', default: 'auto' },
    'nodeport-flows': { type: 'string', default: String(EBPF_MAP_SIZES.nodePortFlows) },
    'nodeport-pending-flows': { type: 'string', default: String(EBPF_MAP_SIZES.nodePortPendingFlows) },
    'sock-lb-entries': { type: 'string', default: String(EBPF_MAP_SIZES.sockLbEntries) },
    'affinity-entries': { type: 'string', default: String(EBPF_MAP_SIZES.affinityEntries) },
    'service-entries': { type: 'string', default: String(EBPF_MAP_SIZES.serviceEntries) },
    'backend-entries': { type: 'string', default: String(EBPF_MAP_SIZES.backendEntries) },
  },
  async run(values) {
    const config = parseAgentConfig(values);
    const { runAgent } = await import('../agent/agent.js');
    const code = await runAgent(config);
    // Stopped: what --clean-up=false leaves open on purpose (the userspace proxy's sockets, health
    // check servers) or a library's keep-alive connection must not hold the process until SIGKILL.
    process.exit(code);
  },
};

/** Where the agent keeps its host state: the flags `wirelane cleanup` takes too. */
export function parsePlacementFlags(values: Values): Pick<AgentConfig, 'interface' | 'cgroupRoot' | 'bpfDir' | 'cniConfFile'> {
  return {
    interface: interfaceFlag(values),
    ...optionalPath(values, 'cgroup-root', 'cgroupRoot'),
    ...optionalPath(values, 'bpf-dir', 'bpfDir'),
    cniConfFile: parseCniConfFile(values),
  };
}

function parseCniConfFile(values: Values): string {
  const dir = stringFlag(values, 'cni-conf-dir') ?? DEFAULT_CNI_CONF_DIR;
  const name = stringFlag(values, 'cni-conf-name') ?? DEFAULT_CNI_CONF_NAME;
  if (!dir.startsWith('/')) throw new UsageError(`--cni-conf-dir: "${dir}" is not an absolute path`);
  // Runtimes read *.conflist as a list; a .conf or .json file would be taken for a single plugin.
  if (!/^[A-Za-z0-9_.-]+\.conflist$/.test(name)) throw new UsageError(`--cni-conf-name: "${name}" is not a file name ending in .conflist`);
  return join(dir, name);
}

export function parseAgentConfig(values: Values): AgentConfig {
  const str = (name: string): string => stringFlag(values, name) ?? '';
  const placement = parsePlacementFlags(values);
  const address = (name: string): ListenAddress => {
    const parsed = parseListenAddress(str(name));
    if (parsed === undefined) throw new UsageError(`--${name}: "${str(name)}" is not [HOST]:PORT`);
    return parsed;
  };
  const listen = address('listen');
  const metricsListen = address('metrics-listen');
  const mtu = str('mtu') === 'auto' ? 'auto' : integerFlag('mtu', str('mtu'), MIN_MTU, 65535);
  const internal = stringFlag(values, 'internal-cidr');
  const mapSizeFlag = (name: string): number => integerFlag(name, str(name), 1024, 1 << 24);
  const source = parseSource(stringFlag(values, 'source'), stringFlag(values, 'kubeconfig'), values);
  const serviceProxy = choiceFlag('service-proxy', str('service-proxy'), SERVICE_PROXY_CHOICES);
  const fastPath = choiceFlag('fast-path', str('fast-path'), FAST_PATH_CHOICES);
  const refusal = fastPath === 'on' ? fastPathRefusal({ serviceProxy }) : undefined;
  if (refusal !== undefined) throw new UsageError(fastPathOnRefused(refusal));
  return {
    source,
    hostname: stringFlag(values, 'hostname') ?? osHostname(),
    stateDir: str('state-dir'),
    ...placement,
    port: integerFlag('port', str('port'), 1, 65535),
    subnets: subnetsFlag(values, DEFAULT_SUBNET),
    granularity: parseGranularityFlag('mesh-granularity', str('mesh-granularity')),
    encapsulate: parseEncapsulationFlag(str('encapsulate')),
    local: switchFlag(values, 'local', true),
    topologyLabel: str('topology-label'),
    internalCidrs: cidrListFlag(values, 'internal-cidr'),
    ...parseClaimFlags(values),
    resyncPeriodMs: durationFlag('resync-period', str('resync-period')),
    leaseNamespace: leaseNamespaceFlag(str('lease-namespace')),
    commandTimeoutMs: durationFlag('command-timeout', str('command-timeout')),
    listen,
    metricsListen,
    cleanUp: switchFlag(values, 'clean-up', true),
    cni: switchFlag(values, 'cni', source.kind === 'kubernetes'),
    ...optionalPath(values, 'cni-ipam-dir', 'cniIpamDir'),
    userspaceWireGuard: choiceFlag('userspace-wireguard', str('userspace-wireguard'), USERSPACE_WIREGUARD_CHOICES),
    mtu,
    iptablesForwardRules: switchFlag(values, 'iptables-forward-rules', false),
    logLevel: parseLogLevelFlag(str('log-level')),
    serviceProxy,
    fastPath,
    nodePortCIDRs: cidrListFlag(values, 'nodeport-addresses'),
    ...parsePortRange(stringFlag(values, 'proxy-port-range')),
    udpTimeoutMs: durationFlag('udp-timeout', str('udp-timeout')),
    ebpfMapSizes: {
      nodePortFlows: mapSizeFlag('nodeport-flows'),
      nodePortPendingFlows: mapSizeFlag('nodeport-pending-flows'),
      sockLbEntries: mapSizeFlag('sock-lb-entries'),
      affinityEntries: mapSizeFlag('affinity-entries'),
      serviceEntries: mapSizeFlag('service-entries'),
      backendEntries: mapSizeFlag('backend-entries'),
    },
  };
}

function optionalPath<K extends string>(values: Values, flag: string, key: K): { [P in K]?: string } {
  const path = stringFlag(values, flag);
  if (path === undefined) return {};
  if (!path.startsWith('/')) throw new UsageError(`--${flag}: "${path}" is not an absolute path`);
  return { [key]: path } as { [P in K]?: string };
}

function parsePortRange(text: string | undefined): { proxyPortRange?: { min: number; max: number } } {
  if (text === undefined) return {};
  const m = /^(\d+)-(\d+)$/.exec(text);
  const [min, max] = [Number(m?.[1]), Number(m?.[2])];
  if (!m || min < 1 || max > 65535 || min > max) throw new UsageError(`--proxy-port-range: "${text}" is not MIN-MAX within 1-65535`);
  return { proxyPortRange: { min, max } };
}

function parseSource(source: string | undefined, kubeconfig: string | undefined, values: Values): SourceConfig {
  const annotationsDir = optionalPath(values, 'annotations-dir', 'annotationsDir');
  if (source?.startsWith('file:')) {
    const path = source.slice('file:'.length);
    if (path === '') throw new UsageError('--source file:PATH needs a path');
    return { kind: 'file', path, ...annotationsDir };
  }
  if (source !== undefined && source !== 'kubernetes') throw new UsageError(`--source: "${source}" is not kubernetes or file:PATH`);
  // The Kubernetes source shares them on the Node itself.
  if (annotationsDir.annotationsDir !== undefined) throw new UsageError('--annotations-dir: only with --source file:PATH');
  const path = kubeconfigPath(kubeconfig, 'or use --source file:PATH');
  return { kind: 'kubernetes', ...(path !== undefined && { kubeconfig: path }) };
}

function leaseNamespaceFlag(value: string): string {
  if (!DNS_LABEL.test(value)) throw new UsageError(`--lease-namespace: "${value}" is not a namespace name (a-z, 0-9 and '-', at most 63)`);
  return value;
}
