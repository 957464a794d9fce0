// Turns a sandbox spec into every name, address and ip command the build needs. Pure: the
// builder only executes what this returns, and unit tests check it without root.
//
// Layout (P is the sandbox prefix, e.g. "wl3f9a-"):
//
//   root ns ── P"mgmt" ═ mgmt0 ── [P"underlay": br0 ] ── n0 ═ eth0 [P"a"] veth0 ═ eth0 [P"a-pod0"]
//   (optional)                                        └─ o0 ═ eth0 [P"client"]
//
// Interface names live inside their own namespace, so only the one link in the root namespace
// (P"mgmt", 11 characters) carries the prefix; the rest stay short and fixed (IFNAMSIZ is 15).
//
// Pods come one of two ways (SandboxSpec.podNetwork):
// - 'cni' (the default): as a kubelet's runtime makes them, by the standard CNI plugins running the
//   configuration list the agent writes in CNI mode (cni/conflist.ts): a bridge in the node holding
//   the gateway (the pod CIDR's first address), a veth per pod, host-local IPAM. The build only
//   makes the pod namespaces; sandbox.ts runs the plugins and takes the addresses they return.
// - 'veth': the point-to-point scheme of the CNI ptp plugin, written here: the pod has IP/32 on
//   eth0 and a default route `via GW dev eth0 onlink`, GW held as a /32 on every pod-facing veth
//   of the node, which routes each pod IP/32 to its veth. Kept to compare the two.
//
// Management (optional) lets node and outside-host processes (an agent, `wirelane connect` on a
// laptop) reach a server in the root namespace: the underlay
// namespace owns MANAGEMENT_GATEWAY on br0 and routes to the root through a /30 out of
// 100.64.0.0/10 picked from the prefix, masquerading so the root needs no route back into the
// sandbox (concurrent sandboxes reuse the same underlay addresses). Nodes and outside hosts get one
// host route to the management address; their own addresses are untouched.
import { formatCidr, formatIp, nthAddress, overlaps, parseCidr, sizeOf, type Cidr } from '../model/ip.js';
import type { IpCommand } from '../host/ip.js';
import { attachmentOf, checkPublicAddress, planInternet, routerRuleset, type HostAttachment, type InternetSpec, type PlannedInternet, type PlannedRouter } from './internet-plan.js';
import { parseField, SandboxSpecError } from './spec-error.js';

export interface SandboxNodeSpec {
  /** Lower-case letters, digits and '-' (it becomes part of namespace names). */
  readonly name: string;
  /** Metadata for whoever describes the cluster (the `wirelane.io/location` annotation). */
  readonly location?: string;
  /** The node's underlay address with its prefix length, e.g. '172.31.0.11/16'. */
  readonly underlayAddress: string;
  /** Optional IPv6 underlay address, e.g. 'fd31::11/64'. */
  readonly underlayAddress6?: string;
  /** With `internet`: a second address, in the public prefix of the node's LAN; its default route's source. */
  readonly publicAddress?: string;
  /** At most one CIDR per family, e.g. ['10.244.1.0/24', 'fd44:1::/64']. */
  readonly podCIDRs?: readonly string[];
  /** Pod namespaces to create on this node (default 0); each gets one address per pod CIDR. */
  readonly pods?: number;
}

/** How pods get their network: the real CNI plugins, or veths and routes the build writes itself. */
export type PodNetwork = 'cni' | 'veth';

/** A host on the underlay that is not a cluster node: a client outside the cluster. */
export interface OutsideHostSpec {
  readonly name: string;
  readonly underlayAddress: string;
  readonly underlayAddress6?: string;
  readonly publicAddress?: string;
}

export interface SandboxSpec {
  readonly nodes: readonly SandboxNodeSpec[];
  readonly outside?: readonly OutsideHostSpec[];
  /** Give nodes and outside hosts a route to a server bound on `Sandbox.managementAddress` in the root namespace. */
  readonly management?: boolean;
  /** Default 'cni'. */
  readonly podNetwork?: PodNetwork;
  /**
   * Locations as routed LANs behind routers joined by an internet segment (internet-plan.ts);
   * each host is plugged into the LAN (or the internet) that holds its underlay address. Without
   * it, every host is on one flat bridge.
   */
  readonly internet?: InternetSpec;
}

export interface PlannedAddress {
  readonly ip: string;
  /** `ip/prefixLength` as assigned to the interface. */
  readonly cidr: string;
}

export interface PlannedPod {
  readonly name: string;
  readonly netns: string;
  /** The pod's interface, inside the pod namespace. */
  readonly iface: string;
  /** The pod's veth end inside the node namespace; undefined with CNI, whose bridge plugin names it. */
  readonly nodeIface: string | undefined;
  /** With CNI, what host-local will most likely hand out (the sandbox takes what it returned). */
  readonly ip: string;
  readonly ipv6: string | undefined;
}

export interface PlannedHost {
  readonly name: string;
  readonly netns: string;
  /** Inside the host's namespace. */
  readonly underlayIface: string;
  /** The host's port on the underlay bridge, inside the underlay namespace. */
  readonly bridgePort: string;
  readonly underlay: PlannedAddress;
  readonly underlay6: PlannedAddress | undefined;
  readonly public: PlannedAddress | undefined;
  /** Where `bridgePort` is plugged in, and the host's way out. */
  readonly attachment: HostAttachment;
}

export interface PlannedNode extends PlannedHost {
  readonly location: string | undefined;
  readonly podCIDRs: readonly string[];
  /** Per family: the pod gateway address held on the node side of every pod veth. */
  readonly podGateways: readonly string[];
  readonly pods: readonly PlannedPod[];
}

export interface PlannedManagement {
  /** The root-namespace end of the veth into the underlay namespace. */
  readonly rootLink: string;
  /** Root side of the /30: servers bind here. */
  readonly rootAddress: PlannedAddress;
  /** Underlay-namespace side of the /30: node traffic is masqueraded to this address. */
  readonly underlayAddress: PlannedAddress;
}

export interface SandboxPlan {
  readonly prefix: string;
  readonly podNetwork: PodNetwork;
  /** The namespace of the flat bridge, or with `internet` of the internet segment. */
  readonly underlayNetns: string;
  readonly internet: PlannedInternet | undefined;
  readonly nodes: readonly PlannedNode[];
  readonly outside: readonly PlannedHost[];
  readonly management: PlannedManagement | undefined;
  /** Every namespace the sandbox creates. */
  readonly namespaces: readonly string[];
}

/** Sandbox prefixes: 'wl', four hex digits, '-'. Cleanup only ever touches names matching this. */
export const SANDBOX_PREFIX_PATTERN = /^wl[0-9a-f]{4}-/;

/** Where node traffic to the management address goes first: br0 in the underlay namespace. */
export const MANAGEMENT_GATEWAY = '169.254.0.1';

const NAME_PATTERN = /^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$/;
const MANAGEMENT_RANGE = parseCidr('100.64.0.0/10');

export { SandboxSpecError };

function planAddress(cidr: Cidr): PlannedAddress {
  const ip = formatIp({ family: cidr.family, value: cidr.addr });
  return { ip, cidr: `${ip}/${cidr.bits}` };
}

/** The management /30 for a prefix: 65536 prefixes, 65536 disjoint /30s inside 100.64.0.0/10. */
export function managementSubnetOf(prefix: string): Cidr {
  const slot = BigInt(parseInt(prefix.slice(2, 6), 16));
  return { family: 4, addr: MANAGEMENT_RANGE.addr + slot * 4n, bits: 30 };
}

/** Where hosts are plugged in: the flat bridge, or the routed internet. */
type Fabric = { readonly kind: 'flat'; readonly netns: string } | { readonly kind: 'internet'; readonly internet: PlannedInternet };

function attach(fabric: Fabric, underlay: Cidr, underlay6: Cidr | undefined, publicAddress: string | undefined, what: string): HostAttachment {
  if (fabric.kind === 'flat') {
    if (publicAddress !== undefined) throw new SandboxSpecError(`${what}: publicAddress needs a sandbox with an internet`);
    return { netns: fabric.netns, bridge: 'br0', gateway: undefined, gateway6: undefined, mtu: undefined, router: undefined };
  }
  const attachment = attachmentOf(fabric.internet, underlay, what);
  if (underlay6 !== undefined) {
    const segment6 = attachment.router === undefined ? fabric.internet.cidr6 : fabric.internet.routers.find((r) => r.name === attachment.router)?.lans.find((l) => l.bridge === attachment.bridge)?.cidr6;
    if (segment6 === undefined || !overlaps(segment6, underlay6) || segment6.bits !== underlay6.bits) {
      throw new SandboxSpecError(`${what}: underlayAddress6 is not an address of the segment its IPv4 address is on`);
    }
  }
  if (publicAddress !== undefined) checkPublicAddress(fabric.internet, attachment, parseField(publicAddress, `${what}: publicAddress`, 4), what);
  return attachment;
}

function planHost(spec: OutsideHostSpec, prefix: string, bridgePort: string, what: string, fabric: Fabric): PlannedHost {
  const underlay = parseField(spec.underlayAddress, `${what}: underlayAddress`, 4);
  const underlay6 = spec.underlayAddress6 === undefined ? undefined : parseField(spec.underlayAddress6, `${what}: underlayAddress6`, 6);
  return {
    name: spec.name,
    netns: `${prefix}${spec.name}`,
    underlayIface: 'eth0',
    bridgePort,
    underlay: planAddress(underlay),
    underlay6: underlay6 && planAddress(underlay6),
    public: spec.publicAddress === undefined ? undefined : planAddress(parseField(spec.publicAddress, `${what}: publicAddress`, 4)),
    attachment: attach(fabric, underlay, underlay6, spec.publicAddress, what),
  };
}

function planNode(spec: SandboxNodeSpec, index: number, prefix: string, podNetwork: PodNetwork, fabric: Fabric): PlannedNode {
  const what = `sandbox node "${spec.name}"`;
  const host = planHost(spec, prefix, `n${index}`, what, fabric);
  const podCount = spec.pods ?? 0;
  if (!Number.isInteger(podCount) || podCount < 0) {
    throw new SandboxSpecError(`${what}: pods ${spec.pods} is not a non-negative integer`);
  }
  const podCIDRs = (spec.podCIDRs ?? []).map((text, i) => {
    const cidr = parseField(text, `${what}: podCIDRs[${i}]`, text.includes(':') ? 6 : 4);
    // The network address, the gateway, the pods, and for IPv4 the broadcast address.
    const needed = BigInt(podCount + 2 + (cidr.family === 4 ? 1 : 0));
    if (sizeOf(cidr) < needed) {
      throw new SandboxSpecError(`${what}: podCIDRs[${i}] "${text}" is too small for ${podCount} pods`);
    }
    return cidr;
  });
  const v4 = podCIDRs.filter((c) => c.family === 4);
  const v6 = podCIDRs.filter((c) => c.family === 6);
  if (v4.length > 1 || v6.length > 1) throw new SandboxSpecError(`${what}: podCIDRs has more than one CIDR per family`);
  const [podNet4] = v4;
  const [podNet6] = v6;
  if (podCount > 0 && podNet4 === undefined) throw new SandboxSpecError(`${what}: pods need an IPv4 pod CIDR`);
  const nth = (cidr: Cidr, n: number): string => formatIp(nthAddress(cidr, BigInt(n)));
  const pods =
    podNet4 === undefined
      ? []
      : Array.from({ length: podCount }, (_, i): PlannedPod => {
          const name = `${spec.name}-pod${i}`;
          return {
            name,
            netns: `${prefix}${name}`,
            iface: 'eth0',
            nodeIface: podNetwork === 'veth' ? `veth${i}` : undefined,
            ip: nth(podNet4, i + 2),
            ipv6: podNet6 === undefined ? undefined : nth(podNet6, i + 2),
          };
        });
  return {
    ...host,
    location: spec.location,
    podCIDRs: spec.podCIDRs ?? [],
    podGateways: podCIDRs.map((cidr) => nth(cidr, 1)),
    pods,
  };
}

export function planSandbox(spec: SandboxSpec, prefix: string): SandboxPlan {
  if (!SANDBOX_PREFIX_PATTERN.test(prefix) || prefix.length !== 7) {
    throw new SandboxSpecError(`sandbox prefix "${prefix}" does not match ${SANDBOX_PREFIX_PATTERN}`);
  }
  if (spec.nodes.length === 0) throw new SandboxSpecError('sandbox spec: nodes is empty');
  for (const host of [...spec.nodes, ...(spec.outside ?? [])]) {
    if (!NAME_PATTERN.test(host.name)) {
      throw new SandboxSpecError(`sandbox host "${host.name}": name must be 1-40 of [a-z0-9-], not starting or ending in '-'`);
    }
  }
  const podNetwork = spec.podNetwork ?? 'cni';
  const internet = spec.internet === undefined ? undefined : planInternet(spec.internet, prefix);
  const underlayNetns = internet?.netns ?? `${prefix}underlay`;
  const fabric: Fabric = internet === undefined ? { kind: 'flat', netns: underlayNetns } : { kind: 'internet', internet };
  const nodes = spec.nodes.map((node, i) => planNode(node, i, prefix, podNetwork, fabric));
  const outside = (spec.outside ?? []).map((host, i) => planHost(host, prefix, `o${i}`, `sandbox outside host "${host.name}"`, fabric));
  const namespaces = [underlayNetns, ...(internet?.routers.map((r) => r.netns) ?? []), ...nodes.flatMap((n) => [n.netns, ...n.pods.map((p) => p.netns)]), ...outside.map((h) => h.netns)];
  const seenNames = new Set<string>();
  for (const ns of namespaces) {
    if (seenNames.has(ns)) throw new SandboxSpecError(`sandbox spec: two hosts would share namespace "${ns}"`);
    seenNames.add(ns);
  }
  const seenIps = new Map<string, string>();
  for (const host of [...nodes, ...outside]) {
    for (const addr of [host.underlay, host.underlay6, host.public]) {
      if (addr === undefined) continue;
      const other = seenIps.get(addr.ip);
      if (other !== undefined) {
        throw new SandboxSpecError(`sandbox host "${host.name}": underlay address ${addr.ip} is also used by "${other}"`);
      }
      seenIps.set(addr.ip, host.name);
    }
  }
  let management: PlannedManagement | undefined;
  if (spec.management === true) {
    const subnet = managementSubnetOf(prefix);
    const at = (n: bigint): PlannedAddress => planAddress({ family: 4, addr: subnet.addr + n, bits: 30 });
    management = { rootLink: `${prefix}mgmt`, rootAddress: at(1n), underlayAddress: at(2n) };
  }
  return { prefix, podNetwork, underlayNetns, internet, nodes, outside, management, namespaces };
}

/** One `ip -batch -` process, in a namespace (`ip -n`) or in the caller's. */
export interface BatchStep {
  readonly netns: string | undefined;
  readonly commands: readonly IpCommand[];
}

/** A command that cannot be batched (nft reads a ruleset from stdin). */
export interface CommandStep {
  readonly netns: string;
  readonly file: string;
  readonly args: readonly string[];
  readonly input: string;
}

/** Steps inside a phase run concurrently; phases run in order. */
export interface BuildPhase {
  readonly batches: readonly BatchStep[];
  readonly commands: readonly CommandStep[];
}

function sysctlCommand(netns: string, settings: readonly string[]): IpCommand {
  // -e: keys that this kernel lacks (no IPv6, no br_netfilter) are not an error.
  return ['netns', 'exec', netns, 'sysctl', '-qwe', ...settings];
}

function hostLinkCommands(host: PlannedHost): IpCommand[] {
  const cmds: IpCommand[] = [
    ['link', 'set', 'lo', 'up'],
    ['link', 'add', host.underlayIface, 'type', 'veth', 'peer', 'name', host.bridgePort, 'netns', host.attachment.netns],
    ['addr', 'add', host.underlay.cidr, 'dev', host.underlayIface],
  ];
  if (host.underlay6 !== undefined) {
    cmds.push(['addr', 'add', host.underlay6.cidr, 'dev', host.underlayIface, 'nodad']);
  }
  if (host.public !== undefined) cmds.push(['addr', 'add', host.public.cidr, 'dev', host.underlayIface]);
  if (host.attachment.mtu !== undefined) cmds.push(['link', 'set', host.underlayIface, 'mtu', String(host.attachment.mtu)]);
  cmds.push(['link', 'set', host.underlayIface, 'up']);
  return cmds;
}

/** A routed host's default routes: via its LAN's router (from its public address when it has one), or the core. */
function defaultRoutes(host: PlannedHost): IpCommand[] {
  const { gateway, gateway6 } = host.attachment;
  const cmds: IpCommand[] = [];
  if (gateway !== undefined) cmds.push(['route', 'add', 'default', 'via', gateway, 'dev', host.underlayIface, ...(host.public ? ['src', host.public.ip] : [])]);
  if (gateway6 !== undefined && host.underlay6 !== undefined) cmds.push(['route', 'add', 'default', 'via', gateway6, 'dev', host.underlayIface]);
  return cmds;
}

function routerCommands(router: PlannedRouter, internet: PlannedInternet): IpCommand[] {
  const cmds: IpCommand[] = [
    ['link', 'set', 'lo', 'up'],
    ['link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', router.port, 'netns', internet.netns],
    ['link', 'set', 'eth0', 'mtu', String(internet.mtu)],
    ['addr', 'add', router.internet, 'dev', 'eth0'],
    ...(router.internet6 === undefined ? [] : [['addr', 'add', router.internet6, 'dev', 'eth0', 'nodad']]),
    ['link', 'set', 'eth0', 'up'],
  ];
  for (const lan of router.lans) {
    cmds.push(['link', 'add', lan.bridge, 'type', 'bridge', 'mcast_snooping', '0']);
    for (const gw of [lan.gateway, lan.publicGateway]) if (gw !== undefined) cmds.push(['addr', 'add', gw, 'dev', lan.bridge]);
    if (lan.gateway6 !== undefined) cmds.push(['addr', 'add', lan.gateway6, 'dev', lan.bridge, 'nodad']);
    cmds.push(['link', 'set', lan.bridge, 'up']);
  }
  return cmds;
}

const ipPart = (cidr: string): string => cidr.split('/')[0] as string;

/** Routers' default routes to the core, and the core's routes to every public prefix. */
function internetRoutes(internet: PlannedInternet): BatchStep[] {
  const routers = internet.routers.map((r): BatchStep => ({
    netns: r.netns,
    commands: [
      ['route', 'add', 'default', 'via', ipPart(internet.core), 'dev', 'eth0'],
      ...(r.internet6 !== undefined && internet.core6 !== undefined ? [['route', 'add', 'default', 'via', ipPart(internet.core6), 'dev', 'eth0']] : []),
    ],
  }));
  const core = internet.routers.flatMap((r) => r.lans.flatMap((l): IpCommand[] => (l.publicCidr ? [['route', 'add', formatCidr(l.publicCidr), 'via', ipPart(r.internet), 'dev', 'br0']] : [])));
  return [...routers, { netns: internet.netns, commands: core }];
}

function nodeCommands(node: PlannedNode, plan: SandboxPlan): IpCommand[] {
  const cmds = hostLinkCommands(node);
  for (const pod of node.pods) {
    if (pod.nodeIface === undefined) continue; // CNI: the plugins make the pod's link
    cmds.push(['link', 'add', pod.nodeIface, 'type', 'veth', 'peer', 'name', pod.iface, 'netns', pod.netns]);
    for (const gw of node.podGateways) {
      const host = gw.includes(':') ? `${gw}/128` : `${gw}/32`;
      cmds.push(['addr', 'add', host, 'dev', pod.nodeIface, ...(gw.includes(':') ? ['nodad'] : [])]);
    }
    cmds.push(['link', 'set', pod.nodeIface, 'up']);
    cmds.push(['route', 'add', `${pod.ip}/32`, 'dev', pod.nodeIface]);
    if (pod.ipv6 !== undefined) cmds.push(['route', 'add', `${pod.ipv6}/128`, 'dev', pod.nodeIface]);
  }
  cmds.push(...managementRoute(node, plan));
  return cmds;
}

/** On the flat bridge, a host's one route to the management address (routed hosts take their default route). */
function managementRoute(host: PlannedHost, plan: SandboxPlan): IpCommand[] {
  if (plan.management === undefined || plan.internet !== undefined) return [];
  return [['route', 'add', `${plan.management.rootAddress.ip}/32`, 'via', MANAGEMENT_GATEWAY, 'dev', host.underlayIface, 'onlink', 'src', host.underlay.ip]];
}

function podCommands(pod: PlannedPod, node: PlannedNode): IpCommand[] {
  const cmds: IpCommand[] = [['link', 'set', 'lo', 'up']];
  cmds.push(['addr', 'add', `${pod.ip}/32`, 'dev', pod.iface]);
  if (pod.ipv6 !== undefined) cmds.push(['addr', 'add', `${pod.ipv6}/128`, 'dev', pod.iface, 'nodad']);
  cmds.push(['link', 'set', pod.iface, 'up']);
  for (const gw of node.podGateways) {
    const anywhere = gw.includes(':') ? '::/0' : '0.0.0.0/0';
    cmds.push(['route', 'add', anywhere, 'via', gw, 'dev', pod.iface, 'onlink']);
  }
  return cmds;
}

/** The sysctls of a node's, pod's or outside host's namespace. */
export function namespaceSysctls(netns: string, isNode: boolean, podNetwork: PodNetwork): IpCommand {
  return sysctlCommand(netns, [
    // Duplicate address detection only delays the first IPv6 packets here.
    'net.ipv6.conf.default.accept_dad=0',
    'net.ipv6.conf.all.accept_dad=0',
    // Set either way: a new namespace starts from the host's value, which is the host's business.
    ...(isNode ? ['net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1'] : ['net.ipv4.ip_forward=0', 'net.ipv6.conf.all.forwarding=0']),
    // Bridged pod traffic through the node's iptables, as kube-proxy requires of a node (and
    // kubeadm's preflight checks): a reply from a pod to a pod on the same bridge must meet the
    // conntrack entry of the Service DNAT that sent the request.
    ...(isNode && podNetwork === 'cni' ? ['net.bridge.bridge-nf-call-iptables=1', 'net.bridge.bridge-nf-call-ip6tables=1'] : []),
  ]);
}

/** The nft ruleset of the underlay namespace: only node-to-management traffic crosses mgmt0. */
export function managementRuleset(management: PlannedManagement): string {
  return [
    'table ip wirelane_sandbox {',
    '  chain forward {',
    '    type filter hook forward priority 0; policy accept;',
    `    oifname "mgmt0" ip daddr != ${management.rootAddress.ip} drop`,
    '    iifname "mgmt0" ct state != { established, related } drop',
    '  }',
    '  chain postrouting {',
    '    type nat hook postrouting priority 100; policy accept;',
    '    oifname "mgmt0" masquerade',
    '  }',
    '}',
    '',
  ].join('\n');
}

/**
 * The build, as phases of concurrent steps. `ownPid` names the caller's (root) namespace for
 * the management veth, so the link is created straight into it and never lands anywhere else.
 */
export function buildPhasesOf(plan: SandboxPlan, ownPid: number): BuildPhase[] {
  const hosts: PlannedHost[] = [...plan.nodes, ...plan.outside];
  const internet = plan.internet;
  const routers = internet?.routers ?? [];
  const forwarding = ['net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1'];
  // Bridges here are plain switches: bridged frames do not go through netfilter hooks.
  const plainBridges = ['net.bridge.bridge-nf-call-iptables=0', 'net.bridge.bridge-nf-call-ip6tables=0', 'net.bridge.bridge-nf-call-arptables=0'];
  const noDad = ['net.ipv6.conf.default.accept_dad=0', 'net.ipv6.conf.all.accept_dad=0'];
  const sysctls: IpCommand[] = [
    sysctlCommand(plan.underlayNetns, [
      ...plainBridges,
      ...(internet !== undefined ? [...noDad, ...forwarding] : plan.management === undefined ? [] : ['net.ipv4.ip_forward=1']),
    ]),
    ...routers.map((r) => sysctlCommand(r.netns, [...plainBridges, ...noDad, ...forwarding])),
    ...plan.namespaces
      .filter((ns) => ns !== plan.underlayNetns && !routers.some((r) => r.netns === ns))
      .map((ns) => namespaceSysctls(ns, plan.nodes.some((n) => n.netns === ns), plan.podNetwork)),
  ];
  const create: BuildPhase = {
    batches: [{ netns: undefined, commands: [...plan.namespaces.map((ns) => ['netns', 'add', ns]), ...sysctls] }],
    commands: [],
  };

  const underlayFirst: IpCommand[] = [
    ['link', 'set', 'lo', 'up'],
    ['link', 'add', 'br0', 'type', 'bridge', 'mcast_snooping', '0'],
    ['link', 'set', 'br0', 'up'],
  ];
  if (internet !== undefined) {
    underlayFirst.push(['link', 'set', 'br0', 'mtu', String(internet.mtu)], ['addr', 'add', internet.core, 'dev', 'br0']);
    if (internet.core6 !== undefined) underlayFirst.push(['addr', 'add', internet.core6, 'dev', 'br0', 'nodad']);
  }
  const mgmt = plan.management;
  if (mgmt !== undefined) {
    underlayFirst.push(
      ['link', 'add', 'mgmt0', 'type', 'veth', 'peer', 'name', mgmt.rootLink, 'netns', String(ownPid)],
      ['addr', 'add', mgmt.underlayAddress.cidr, 'dev', 'mgmt0'],
      ['link', 'set', 'mgmt0', 'up'],
    );
    // On the flat bridge, hosts reach the management address through one gateway address on br0.
    if (internet === undefined) {
      underlayFirst.push(
        ['addr', 'add', `${MANAGEMENT_GATEWAY}/32`, 'dev', 'br0'],
        ...hosts.map((h): IpCommand => ['route', 'add', `${h.underlay.ip}/32`, 'dev', 'br0']),
      );
    }
  }
  const links: BuildPhase = {
    batches: [
      { netns: plan.underlayNetns, commands: underlayFirst },
      ...(internet === undefined ? [] : routers.map((r) => ({ netns: r.netns, commands: routerCommands(r, internet) }))),
      ...plan.nodes.map((node) => ({ netns: node.netns, commands: nodeCommands(node, plan) })),
      ...plan.outside.map((host) => ({ netns: host.netns, commands: [...hostLinkCommands(host), ...managementRoute(host, plan)] })),
    ],
    commands: [
      ...(mgmt === undefined ? [] : [{ netns: plan.underlayNetns, file: 'nft', args: ['-f', '-'], input: managementRuleset(mgmt) }]),
      ...routers.map((r) => ({ netns: r.netns, file: 'nft', args: ['-f', '-'], input: routerRuleset(r) })),
    ],
  };

  // Every port into the bridge of its segment, by the namespace holding the bridge.
  const ports = new Map<string, IpCommand[]>();
  const plug = (netns: string, port: string, bridge: string, mtu: number | undefined): void => {
    ports.set(netns, [
      ...(ports.get(netns) ?? []),
      ...(mtu === undefined ? [] : [['link', 'set', port, 'mtu', String(mtu)]]),
      ['link', 'set', port, 'master', bridge],
      ['link', 'set', port, 'up'],
    ]);
  };
  ports.set(plan.underlayNetns, []);
  for (const r of routers) plug(plan.underlayNetns, r.port, 'br0', internet?.mtu);
  for (const h of hosts) plug(h.attachment.netns, h.bridgePort, h.attachment.bridge, h.attachment.mtu);
  const finish: BuildPhase = {
    batches: [
      ...[...ports].map(([netns, commands]) => ({ netns, commands })),
      ...(plan.podNetwork === 'veth' ? plan.nodes.flatMap((node) => node.pods.map((pod) => ({ netns: pod.netns, commands: podCommands(pod, node) }))) : []),
      ...(mgmt === undefined
        ? []
        : [
            {
              netns: undefined,
              commands: [
                // No IPv6 link-local address or route in the root namespace: only the /30.
                ['link', 'set', mgmt.rootLink, 'addrgenmode', 'none'],
                ['addr', 'add', mgmt.rootAddress.cidr, 'dev', mgmt.rootLink],
                ['link', 'set', mgmt.rootLink, 'up'],
              ],
            },
          ]),
    ],
    commands: [],
  };
  if (internet === undefined) return [create, links, finish];
  // Routes last, once every link they go through is up.
  const routes: BuildPhase = {
    batches: [...internetRoutes(internet), ...hosts.map((h) => ({ netns: h.netns, commands: defaultRoutes(h) }))],
    commands: [],
  };
  return [create, links, finish, routes];
}
