// A simulated cluster on this machine: nodes, pods and outside hosts as network namespaces on
// a shared bridge "underlay" (see plan.ts for the layout). Used by `wirelane demo` and by every
// integration test.
import { join } from 'node:path';
import {
  runCommand,
  spawnProcess,
  type CommandOptions,
  type CommandResult,
  type SpawnedProcess,
  type SpawnOptions,
} from '../host/command.js';
import { listAddresses } from '../host/addresses.js';
import { runIpBatch } from '../host/ip.js';
import { overlaps, parseCidr, parseIp } from '../model/ip.js';
import { udpDropCommand } from './internet-plan.js';
import { containerCgroup, createCgroups, inCgroupAndNetns, killCgroup, removeCgroups, type SandboxCgroups, sandboxCgroupsOf } from './cgroups.js';
import { cleanUpOnExit, forgetOnExit } from './exit-cleanup.js';
import {
  buildPhasesOf,
  managementSubnetOf,
  namespaceSysctls,
  planSandbox,
  type PlannedHost,
  type PlannedNode,
  type PlannedPod,
  type PodNetwork,
  type SandboxPlan,
  type SandboxSpec,
} from './plan.js';
import { parseCniConfigList, type CniConfigList } from '../cni/conflist.js';
import { addCniPod, cniStateDirOf, deleteCniPod, nodeCniNetworkOf, type CniPod, type NodeCniNetwork } from './cni-pods.js';
import { isReachable, probeTcp, UNUSED_PORT, type TcpProbeResult } from './probe.js';
import { claimPrefix, identify, recordPids, releasePrefix, type ProcessIdentity } from './registry.js';
import { DEFAULT_GRACE_MS, removeByPrefix, removeNowSync, stopProcess } from './teardown.js';

export interface SandboxHost {
  readonly name: string;
  readonly netns: string;
  /** The underlay interface inside the host's namespace ('eth0'). */
  readonly underlayIface: string;
  readonly underlayIP: string;
  /** `underlayIP/prefixLength`. */
  readonly underlayCidr: string;
  readonly underlayIPv6: string | undefined;
  readonly underlayCidr6: string | undefined;
  /** With an internet: the host's second, public address, when it has one. */
  readonly publicIP: string | undefined;
  /** With an internet: the router of the host's LAN (undefined on the internet itself or the flat bridge). */
  readonly router: string | undefined;
}

/** A router of a sandbox with an internet (see internet-plan.ts). */
export interface SandboxRouter {
  readonly name: string;
  readonly netns: string;
  /** Its address on the internet: where a LAN's masqueraded traffic comes from. */
  readonly internetIP: string;
  readonly internetIPv6: string | undefined;
}

export interface SandboxPod {
  readonly name: string;
  /** The node the pod runs on. */
  readonly node: string;
  readonly netns: string;
  /** Inside the pod namespace ('eth0'). */
  readonly iface: string;
  /** The pod's veth in the node namespace ('vethN'; with CNI, the name the bridge plugin gave it). */
  readonly nodeIface: string;
  readonly ip: string;
  readonly ipv6: string | undefined;
}

export interface SandboxNode extends SandboxHost {
  readonly location: string | undefined;
  readonly podCIDRs: readonly string[];
  /** Per pod CIDR, the gateway address the node holds on every pod veth (first address). */
  readonly podGateways: readonly string[];
  readonly pods: readonly SandboxPod[];
}

export interface SandboxSpawnOptions extends Omit<SpawnOptions, 'netns'> {
  /**
   * With cgroups, on a node: run in this "container" of the node (a child cgroup, see
   * killContainer) instead of in the node's cgroup itself.
   */
  readonly container?: string;
}

/** A namespace name, or anything that has one (a node, pod or outside host). */
export type NetnsTarget = string | { readonly netns: string };

export interface SandboxOptions {
  /**
   * Tear the sandbox down on SIGINT/SIGTERM/SIGHUP (then exit 128+signo) and on process exit.
   * Default true; turn off only if the caller installs its own handlers and calls destroy().
   */
  readonly handleSignals?: boolean;
  /** How long destroy() waits after SIGTERM before SIGKILL. */
  readonly graceMs?: number;
  /** A cgroup v2 directory per node, and every process of a node (its pods' too) started inside it. */
  readonly cgroups?: boolean;
}

function hostView(h: PlannedHost): SandboxHost {
  return {
    name: h.name,
    netns: h.netns,
    underlayIface: h.underlayIface,
    underlayIP: h.underlay.ip,
    underlayCidr: h.underlay.cidr,
    underlayIPv6: h.underlay6?.ip,
    underlayCidr6: h.underlay6?.cidr,
    publicIP: h.public?.ip,
    router: h.attachment.router,
  };
}

/** A pod as planned, or with CNI as the plugins made it (addresses and host interface from ADD's result). */
function podView(p: PlannedPod, node: string, cni: CniPod | undefined): SandboxPod {
  const view = { name: p.name, node, netns: p.netns, iface: p.iface };
  if (cni === undefined) return { ...view, nodeIface: p.nodeIface ?? '', ip: p.ip, ipv6: p.ipv6 };
  const { ipv4, ipv6, hostIface } = cni.address;
  return { ...view, nodeIface: hostIface ?? '', ip: ipv4 ?? '', ipv6 };
}

function nodeView(n: PlannedNode, pods: readonly PlannedPod[], cniPods: ReadonlyMap<string, CniPod>): SandboxNode {
  return {
    ...hostView(n),
    location: n.location,
    podCIDRs: n.podCIDRs,
    podGateways: n.podGateways,
    pods: pods.map((p) => podView(p, n.name, cniPods.get(p.name))),
  };
}

export class Sandbox {
  readonly prefix: string;
  readonly outside: readonly SandboxHost[];
  /** The namespace holding the underlay bridge (br0): the flat one, or the internet segment's. */
  readonly underlayNetns: string;
  /** With an internet: its routers. */
  readonly routers: readonly SandboxRouter[];
  /** Root-namespace address that nodes can reach; bind test servers here. Undefined without `management`. */
  readonly managementAddress: string | undefined;
  /** The root-namespace link of the management path. */
  readonly managementLink: string | undefined;
  /** With `cgroups`: one cgroup per node (see cgroups.ts). */
  readonly cgroups: SandboxCgroups | undefined;

  private readonly children = new Map<SpawnedProcess, ProcessIdentity>();
  /** With CNI: each attached pod by name, with what its DEL needs. */
  private readonly cniPods = new Map<string, CniPod>();
  /** Pods made after the build (addPod), by node. */
  private readonly addedPods = new Map<string, PlannedPod[]>();
  private nodeViews: readonly SandboxNode[] = [];
  private readonly graceMs: number;
  private destroying: Promise<void> | undefined;

  constructor(
    readonly plan: SandboxPlan,
    opts: SandboxOptions = {},
  ) {
    this.prefix = plan.prefix;
    this.refreshViews();
    this.outside = plan.outside.map(hostView);
    this.underlayNetns = plan.underlayNetns;
    this.routers = (plan.internet?.routers ?? []).map((r) => ({
      name: r.name,
      netns: r.netns,
      internetIP: r.internet.split('/')[0] as string,
      internetIPv6: r.internet6?.split('/')[0],
    }));
    this.managementAddress = plan.management?.rootAddress.ip;
    this.managementLink = plan.management?.rootLink;
    this.cgroups = opts.cgroups === true ? sandboxCgroupsOf(this.prefix) : undefined;
    this.graceMs = opts.graceMs ?? DEFAULT_GRACE_MS;
  }

  get nodes(): readonly SandboxNode[] {
    return this.nodeViews;
  }

  /** Every namespace of the sandbox. */
  get namespaces(): readonly string[] {
    return [...this.plan.namespaces, ...[...this.addedPods.values()].flat().map((p) => p.netns)];
  }

  private podsOf(node: PlannedNode): PlannedPod[] {
    return [...node.pods, ...(this.addedPods.get(node.name) ?? [])];
  }

  private refreshViews(): void {
    this.nodeViews = this.plan.nodes.map((n) => nodeView(n, this.podsOf(n), this.cniPods));
  }

  /** How pods got their network (SandboxSpec.podNetwork). */
  get podNetwork(): PodNetwork {
    return this.plan.podNetwork;
  }

  /**
   * With CNI: the configuration list the node's pods were made with, which an agent in CNI mode
   * writes for that node when given `--cni-ipam-dir ipamDir`, and host-local's directory.
   */
  cniNetworkOf(name: string): NodeCniNetwork {
    if (this.plan.podNetwork !== 'cni') throw new Error(`sandbox ${this.prefix}: pods were not made by CNI plugins`);
    return nodeCniNetworkOf(this.prefix, this.plannedNode(name));
  }

  private plannedNode(name: string): PlannedNode {
    const node = this.plan.nodes.find((n) => n.name === name);
    if (node === undefined) throw new Error(`sandbox ${this.prefix}: no node "${name}"`);
    return node;
  }

  /**
   * With CNI: runs the plugins for every pod, nodes side by side and a node's pods one after the
   * other (host-local then hands out addresses in pod order, as planned, though the view takes
   * whatever it returned).
   */
  async attachCniPods(): Promise<void> {
    await Promise.all(
      this.plan.nodes.map(async (node) => {
        if (node.pods.length === 0) return;
        const { list } = nodeCniNetworkOf(this.prefix, node);
        for (const pod of node.pods) await this.attachCniPod(node, pod, list);
      }),
    );
    this.refreshViews();
  }

  private async attachCniPod(node: PlannedNode, pod: PlannedPod, list: CniConfigList): Promise<void> {
    const attached = await addCniPod(this.prefix, node, pod, list);
    this.cniPods.set(pod.name, attached);
    if (attached.address.hostIface === undefined) throw new Error(`CNI ADD for ${attached.attachment.containerId}: the result names no host interface`);
  }

  /**
   * A pod made now on a running node, as the kubelet makes one: a namespace, then ADD with
   * `conflist`, the text of a CNI configuration file (the one the node's agent wrote).
   */
  async addPod(nodeName: string, conflist: string): Promise<SandboxPod> {
    if (this.destroying !== undefined) throw new Error(`sandbox ${this.prefix}: addPod after destroy`);
    const node = this.plannedNode(nodeName);
    const list = parseCniConfigList(conflist);
    const index = this.podsOf(node).length;
    const name = `${node.name}-pod${index}`;
    const pod: PlannedPod = { name, netns: `${this.prefix}${name}`, iface: 'eth0', nodeIface: undefined, ip: '', ipv6: undefined };
    // Recorded first: whatever part of it gets made, destroy() removes.
    this.addedPods.set(node.name, [...(this.addedPods.get(node.name) ?? []), pod]);
    await runIpBatch([['netns', 'add', pod.netns], namespaceSysctls(pod.netns, false, 'cni')]);
    await this.attachCniPod(node, pod, list);
    this.refreshViews();
    return this.node(node.name).pods[index] as SandboxPod;
  }

  /** CNI DEL for every attached pod; the first failure is rethrown once all were tried. */
  private async detachCniPods(): Promise<void> {
    const outcomes = await Promise.allSettled(
      this.plan.nodes.map(async (node) => {
        for (const pod of this.podsOf(node)) {
          const attached = this.cniPods.get(pod.name);
          if (attached === undefined) continue;
          await deleteCniPod(node, attached);
          this.cniPods.delete(pod.name);
        }
      }),
    );
    const failure = outcomes.find((o): o is PromiseRejectedResult => o.status === 'rejected');
    if (failure !== undefined) throw failure.reason;
  }

  router(name: string): SandboxRouter {
    const router = this.routers.find((r) => r.name === name);
    if (router === undefined) throw new Error(`sandbox ${this.prefix}: no router "${name}"`);
    return router;
  }

  /**
   * Drops, at `host`'s router, the UDP it forwards to `host`'s `port` on each of the host's
   * addresses (both families, a public one too), answers included, until restoreUdp: a path broken
   * upstream (a firewall, a provider) while the host and its agent see nothing wrong. Idempotent;
   * the rules go with the router's namespace when the sandbox is destroyed.
   */
  async dropUdp(host: SandboxHost, port: number): Promise<void> {
    await this.udpDrop('add', host, port);
  }

  /** Ends dropUdp: the router forwards UDP to `host`'s `port` again. */
  async restoreUdp(host: SandboxHost, port: number): Promise<void> {
    await this.udpDrop('delete', host, port);
  }

  private async udpDrop(op: 'add' | 'delete', host: SandboxHost, port: number): Promise<void> {
    if (host.router === undefined) throw new Error(`sandbox ${this.prefix}: ${host.name} sits behind no router`);
    const { netns } = this.router(host.router);
    const addresses = [host.underlayIP, host.underlayIPv6, host.publicIP].flatMap((a) => (a === undefined ? [] : [parseIp(a)]));
    for (const ip of addresses) await this.exec(netns, 'nft', udpDropCommand(op, ip, port));
  }

  /** The routed world's narrowest link: the internet segment's MTU (undefined on the flat bridge). */
  get internetMtu(): number | undefined {
    return this.plan.internet?.mtu;
  }

  node(name: string): SandboxNode {
    const node = this.nodes.find((n) => n.name === name);
    if (node === undefined) throw new Error(`sandbox ${this.prefix}: no node "${name}"`);
    return node;
  }

  get pods(): SandboxPod[] {
    return this.nodes.flatMap((n) => n.pods);
  }

  /** The node a namespace belongs to (the node's own or one of its pods'). */
  private nodeOf(target: NetnsTarget): SandboxNode | undefined {
    const netns = typeof target === 'string' ? target : target.netns;
    return this.nodes.find((n) => n.netns === netns || n.pods.some((p) => p.netns === netns));
  }

  /** A node's cgroup as its processes see it (inside `ip netns exec`); undefined without cgroups. */
  visibleCgroupOf(node: string): string | undefined {
    return this.cgroups && join(this.cgroups.visibleRoot, node);
  }

  /** The command and options that run `file args` in a namespace, in its node's cgroup when there is one. */
  private commandFor(
    target: NetnsTarget,
    file: string,
    args: readonly string[],
    container?: string,
  ): { cmd: string; argv: readonly string[]; netns: string | undefined } {
    const netns = this.netnsOf(target);
    const node = this.nodeOf(target);
    if (this.cgroups === undefined || node === undefined) return { cmd: file, argv: args, netns };
    const nodeCgroup = join(this.cgroups.root, node.name);
    const [cmd, argv] = inCgroupAndNetns(container === undefined ? nodeCgroup : containerCgroup(nodeCgroup, container), netns, file, args);
    return { cmd, argv, netns: undefined };
  }

  private netnsOf(target: NetnsTarget): string {
    const netns = typeof target === 'string' ? target : target.netns;
    if (!this.namespaces.includes(netns)) throw new Error(`sandbox ${this.prefix}: "${netns}" is not one of its namespaces`);
    return netns;
  }

  /** Runs a command to completion inside one of the sandbox's namespaces. */
  exec(
    target: NetnsTarget,
    file: string,
    args: readonly string[],
    opts: Omit<CommandOptions, 'netns'> = {},
  ): Promise<CommandResult> {
    const { cmd, argv, netns } = this.commandFor(target, file, args);
    return runCommand(cmd, argv, { ...opts, ...(netns !== undefined && { netns }) });
  }

  /**
   * Starts a long-running process in one of the sandbox's namespaces; destroy() stops it.
   * It must stay in the foreground (wireguard-go needs -f): a daemon that forks away escapes.
   */
  spawn(
    target: NetnsTarget,
    file: string,
    args: readonly string[],
    opts: SandboxSpawnOptions = {},
  ): SpawnedProcess {
    if (this.destroying !== undefined) throw new Error(`sandbox ${this.prefix}: spawn after destroy`);
    const { container, ...spawnOpts } = opts;
    const { cmd, argv, netns } = this.commandFor(target, file, args, container);
    const child = spawnProcess(cmd, argv, { ...spawnOpts, ...(netns !== undefined && { netns }) });
    const identity = identify(child.pid) ?? { pid: child.pid, startTime: '' };
    this.children.set(child, identity);
    this.recordChildren();
    void child.then(() => {
      this.children.delete(child);
      this.recordChildren();
    });
    return child;
  }

  /** Stops one spawned process: SIGTERM, SIGKILL after the grace period. */
  async stop(child: SpawnedProcess, graceMs = this.graceMs): Promise<void> {
    if (!this.children.has(child)) throw new Error(`sandbox ${this.prefix}: pid ${child.pid} was not spawned by it`);
    await stopProcess(child, graceMs);
  }

  /**
   * SIGKILLs every process of a node's container at once, children and daemons included, as a
   * container runtime ends a container; resolves when none is left.
   */
  async killContainer(node: string, container: string): Promise<void> {
    if (this.cgroups === undefined) throw new Error(`sandbox ${this.prefix}: containers need cgroups (cgroup v2)`);
    await killCgroup(join(this.cgroups.root, this.node(node).name, container));
  }

  /** TCP connect from a namespace; 'refused' means reachable (see probe.ts). */
  probe(from: NetnsTarget, host: string, port = UNUSED_PORT, timeoutMs = 2000): Promise<TcpProbeResult> {
    return probeTcp(this.netnsOf(from), host, port, timeoutMs);
  }

  /** True when a TCP SYN from `from` to `host` gets an answer (accepted or refused). */
  async reaches(from: NetnsTarget, host: string, port = UNUSED_PORT, timeoutMs = 2000): Promise<boolean> {
    return isReachable(await this.probe(from, host, port, timeoutMs));
  }

  private recordChildren(): void {
    recordPids(this.prefix, [...this.children.values()]);
  }

  /** Stops its processes and removes its namespaces and root links. Idempotent. */
  destroy(): Promise<void> {
    this.destroying ??= (async () => {
      await Promise.all([...this.children.keys()].map((child) => stopProcess(child, this.graceMs)));
      // DEL as the runtime runs it when a pod goes; the namespaces and host-local's state go anyway.
      const detached = await this.detachCniPods().then(() => undefined, (err: unknown) => err);
      await removeByPrefix([this.prefix]);
      if (this.cgroups !== undefined) await removeCgroups(this.cgroups, this.nodes.map((n) => n.name));
      releasePrefix(this.prefix);
      forgetOnExit(this);
      if (detached !== undefined) throw detached;
    })();
    return this.destroying;
  }

  /** Synchronous best effort for process exit: SIGKILL, then delete without listing. */
  destroyNow(): void {
    for (const child of this.children.keys()) child.kill('SIGKILL');
    removeNowSync(this.managementLink === undefined ? [] : [this.managementLink], this.namespaces, [cniStateDirOf(this.prefix)]);
    releasePrefix(this.prefix);
  }
}

async function rootIPv4Networks(): Promise<ReturnType<typeof parseCidr>[]> {
  return (await listAddresses()).filter((a) => a.family === 4).map((a) => parseCidr(a.cidr));
}

/**
 * Builds the sandbox. On failure everything already made is removed before the error is
 * rethrown (as one line naming the sandbox).
 */
/**
 * The one switch between pods made by the CNI plugins and pods made by the build's own veths, for
 * every sandbox that does not choose: WIRELANE_SANDBOX_PODS=veth runs the demo and the tests the
 * old way, to compare.
 */
function defaultPodNetwork(): PodNetwork {
  const chosen = process.env['WIRELANE_SANDBOX_PODS'];
  if (chosen === undefined || chosen === '' || chosen === 'cni') return 'cni';
  if (chosen === 'veth') return 'veth';
  throw new Error(`WIRELANE_SANDBOX_PODS: "${chosen}" is not cni or veth`);
}

export async function createSandbox(spec: SandboxSpec, opts: SandboxOptions = {}): Promise<Sandbox> {
  const rootNetworks = spec.management === true ? await rootIPv4Networks() : [];
  const podNetwork = spec.podNetwork ?? defaultPodNetwork();
  const prefix = claimPrefix((p) => !rootNetworks.some((net) => overlaps(net, managementSubnetOf(p))));
  let sandbox: Sandbox;
  try {
    sandbox = new Sandbox(planSandbox({ ...spec, podNetwork }, prefix), opts);
  } catch (e) {
    releasePrefix(prefix);
    throw e;
  }
  if (opts.handleSignals !== false) cleanUpOnExit(sandbox);
  try {
    if (sandbox.cgroups !== undefined) await createCgroups(sandbox.cgroups, sandbox.nodes.map((n) => n.name));
    for (const phase of buildPhasesOf(sandbox.plan, process.pid)) {
      const outcomes = await Promise.allSettled([
        ...phase.batches.map((b) => runIpBatch(b.commands, b.netns === undefined ? {} : { netns: b.netns })),
        ...phase.commands.map((c) => runCommand(c.file, c.args, { netns: c.netns, input: c.input })),
      ]);
      const failure = outcomes.find((o): o is PromiseRejectedResult => o.status === 'rejected');
      if (failure !== undefined) throw failure.reason;
    }
    if (sandbox.podNetwork === 'cni') await sandbox.attachCniPods();
  } catch (e) {
    await sandbox.destroy();
    throw new Error(`sandbox ${prefix}: build failed: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
  return sandbox;
}

/** Runs `body` with a fresh sandbox and destroys it afterwards, also when `body` throws. */
export async function withSandbox<T>(
  spec: SandboxSpec,
  body: (sandbox: Sandbox) => Promise<T>,
  opts: SandboxOptions = {},
): Promise<T> {
  const sandbox = await createSandbox(spec, opts);
  try {
    return await body(sandbox);
  } finally {
    await sandbox.destroy();
  }
}
