// A cluster of real agents in network namespaces: the sandbox (nodes on an underlay bridge, pods
// behind veths), a cluster file or a Kubernetes API as source, and one `wirelane agent` process per
// node. Used by the demo and the integration tests; destroy() removes everything.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCommand, type SpawnedProcess } from '../host/command.js';
import { publicKeyOf } from '../model/key.js';
import { writeNewKeyFile } from '../state/key-file.js';
import { cleanUpOnExit, forgetOnExit } from './exit-cleanup.js';
import type { InternetSpec } from './internet-plan.js';
import type { OutsideHostSpec } from './plan.js';
import { type Sandbox, createSandbox } from './sandbox.js';

/** The compiled CLI, found from this module whether it runs from src/ (tsx) or dist/. */
export function cliPath(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) dir = dirname(dir);
  return join(dir, 'dist', 'cli', 'wirelane.js');
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs: number, intervalMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

export interface MeshNodeSpec {
  readonly name: string;
  readonly location: string;
  readonly pods?: number;
  /** Default 10.244.<index>.0/24; a benchmark that needs many unused addresses of its own takes more. */
  readonly podCIDR?: string;
  /** Dual-stack: an IPv6 pod CIDR besides the IPv4 one. */
  readonly podCIDR6?: string;
  /** Extra annotations on the Node object (kubernetes source) or in the cluster file. */
  readonly annotations?: Readonly<Record<string, string>>;
  /** Default 172.31.0.<10 + index>/16 on the flat bridge; with `internet`, an address of a LAN (or of the internet). */
  readonly underlayAddress?: string;
  /** Dual-stack underlay: published in internal-ip beside the IPv4 address. */
  readonly underlayAddress6?: string;
  /** With `internet`: a second address in the public prefix of the node's LAN (see SandboxNodeSpec). */
  readonly publicAddress?: string;
}

export interface MeshClusterSpec {
  readonly nodes: readonly MeshNodeSpec[];
  /** `kubernetes`: the caller serves the API on the sandbox's management address (see kubernetesNode). */
  readonly source: 'kubernetes' | 'file';
  readonly agentArgs?: readonly string[];
  readonly outside?: readonly OutsideHostSpec[];
  /** Locations as routed LANs behind routers (see internet-plan.ts); default: every node on one bridge. */
  readonly internet?: InternetSpec;
  /**
   * Run each node's wireguard-go in a container of its own (`wirelane wireguard-go`, started with
   * the node's first agent), as the DaemonSet does, and have agents adopt its device
   * (--userspace-wireguard external). Default: each agent starts wireguard-go as its own child.
   */
  readonly wireguardContainer?: boolean;
}

/** A node's sandbox containers (child cgroups of its own, see Sandbox.killContainer). */
export const AGENT_CONTAINER = 'agent';
export const WIREGUARD_CONTAINER = 'wireguard';

export const WIREGUARD_PORT = 51820;

const CNI_CONF_NAME = '10-wirelane.conflist';

/** How long a SIGTERMed agent gets to clean up before SIGKILL. */
const AGENT_GRACE_MS = 10_000;

// A type, not an interface, so it fits the test API server's index-signature object type.
type NodeObject = {
  metadata: { name: string; labels: Record<string, string>; annotations: Record<string, string> };
  spec: { podCIDR: string; podCIDRs?: string[] };
};

export class MeshCluster {
  readonly agents = new Map<string, SpawnedProcess>();
  /** With `wireguardContainer`: each node's `wirelane wireguard-go`. */
  readonly wireguards = new Map<string, SpawnedProcess>();

  private constructor(
    readonly sandbox: Sandbox,
    readonly spec: MeshClusterSpec,
    /** Holds the cluster file or kubeconfig, each node's state dir and each agent's log. */
    readonly dir: string,
  ) {}

  static async create(spec: MeshClusterSpec): Promise<MeshCluster> {
    const sandbox = await createSandbox({
      nodes: spec.nodes.map((n, i) => ({
        name: n.name,
        location: n.location,
        underlayAddress: n.underlayAddress ?? `172.31.0.${10 + i}/16`,
        ...(n.underlayAddress6 !== undefined && { underlayAddress6: n.underlayAddress6 }),
        ...(n.publicAddress !== undefined && { publicAddress: n.publicAddress }),
        podCIDRs: [n.podCIDR ?? podCIDROf(i), ...(n.podCIDR6 !== undefined ? [n.podCIDR6] : [])],
        pods: n.pods ?? 1,
      })),
      outside: spec.outside ?? [],
      management: spec.source === 'kubernetes',
      ...(spec.internet !== undefined && { internet: spec.internet }),
    }, { graceMs: AGENT_GRACE_MS, handleSignals: false, cgroups: true });
    // The cluster, not just its sandbox, answers Ctrl-C: its directory holds private keys.
    const cluster = new MeshCluster(sandbox, spec, await mkdtemp(join(tmpdir(), 'wirelane-mesh-')));
    cleanUpOnExit(cluster);
    try {
      await cluster.mountBpffs();
      // Real nodes have a default route; without one, the host's own connects to service IPs fail
      // before iptables can rewrite them. On the flat bridge unknown destinations die there; with
      // an internet, the plan gave each node one through its router.
      if (spec.internet === undefined) {
        for (const node of sandbox.nodes) await sandbox.exec(node, 'ip', ['route', 'add', 'default', 'dev', node.underlayIface]);
      }
      if (spec.source === 'file') await cluster.writeClusterFile();
      return cluster;
    } catch (err) {
      await cluster.destroy();
      throw err;
    }
  }

  /** Each node's WireGuard interface: unique on the machine (wireguard-go's socket directory is shared). */
  interfaceOf(name: string): string {
    return `${this.sandbox.prefix}w${this.indexOf(name)}`;
  }

  private indexOf(name: string): number {
    const i = this.spec.nodes.findIndex((n) => n.name === name);
    if (i < 0) throw new Error(`mesh cluster: no node "${name}"`);
    return i;
  }

  get clusterFile(): string {
    return join(this.dir, 'cluster.yaml');
  }

  get kubeconfig(): string {
    return join(this.dir, 'kubeconfig');
  }

  stateDir(name: string): string {
    return join(this.dir, name);
  }

  /**
   * Where the node's agent writes its CNI configuration list: with pods made by the CNI plugins the
   * agents run in CNI mode, over the host-local state the sandbox's pods were allocated from, so the
   * file they write is the one the node's pods were made with (cni/conflist.ts, for both).
   */
  cniConfFile(name: string): string {
    return join(this.stateDir(name), 'net.d', CNI_CONF_NAME);
  }

  /** CNI mode when the pods were made by the plugins; an agent's own flags may still turn it off. */
  private cniModeArgs(name: string): string[] {
    return this.sandbox.podNetwork === 'cni' ? ['--cni', '--cni-ipam-dir', this.sandbox.cniNetworkOf(name).ipamDir] : ['--cni=false'];
  }

  /**
   * Last on the command line, so no flag of a test (the DaemonSet's --cni-conf-dir=/etc/cni/net.d)
   * points a sandbox agent at the host's directory: the file stays in the node's state directory.
   */
  private cniPlacementArgs(name: string): string[] {
    return ['--cni-conf-dir', dirname(this.cniConfFile(name)), '--cni-conf-name', CNI_CONF_NAME];
  }

  logFile(name: string): string {
    return join(this.dir, `${name}.log`);
  }

  wireguardLogFile(name: string): string {
    return join(this.dir, `${name}-wireguard.log`);
  }

  /** The Node object for the kubernetes source: the agent publishes key, endpoint and internal IP itself. */
  kubernetesNode(name: string): NodeObject {
    const n = this.spec.nodes[this.indexOf(name)] as MeshNodeSpec;
    return {
      metadata: { name, labels: { 'topology.kubernetes.io/region': n.location }, annotations: { ...n.annotations } },
      spec: {
        podCIDR: n.podCIDR ?? podCIDROf(this.indexOf(name)),
        ...(n.podCIDR6 && { podCIDRs: [n.podCIDR ?? podCIDROf(this.indexOf(name)), n.podCIDR6] }),
      },
    };
  }

  /**
   * The sandbox's own bpffs, under /run so agents inside `ip netns exec` see it (each of those gets a
   * fresh /sys): pins made by one agent process are there for the next, as on a real host.
   */
  get bpffs(): string {
    return join('/run/wirelane', `${this.sandbox.prefix}bpffs`);
  }

  private async mountBpffs(): Promise<void> {
    mkdirSync(this.bpffs, { recursive: true });
    await runCommand('mount', ['-t', 'bpf', 'bpf', this.bpffs]);
    this.bpffsMounted = true;
  }

  private bpffsMounted = false;

  /** Starts a node's wireguard container (`wirelane wireguard-go` for its interface); see `wireguardContainer`. */
  startWireguard(name: string): SpawnedProcess {
    const args = [cliPath(), 'wireguard-go', '--interface', this.interfaceOf(name), '--log-level', 'debug'];
    const log = { file: this.wireguardLogFile(name) };
    const child = this.sandbox.spawn(this.sandbox.node(name), process.execPath, args, { container: WIREGUARD_CONTAINER, stdout: log, stderr: log });
    this.wireguards.set(name, child);
    return child;
  }

  /**
   * `env` adds to (or overrides) the agent's environment, e.g. a PATH with a stand-in tool first;
   * `nodeFlags` go to node before the CLI (a benchmark runs the agent as bin/wirelane.js does);
   * `cli`: another build's dist/cli/wirelane.js (a benchmark's "before").
   */
  startAgent(name: string, extra: readonly string[] = [], options: { readonly env?: Readonly<Record<string, string>>; readonly nodeFlags?: readonly string[]; readonly cli?: string } = {}): SpawnedProcess {
    const external = this.spec.wireguardContainer === true;
    if (external && !this.wireguards.has(name)) this.startWireguard(name);
    const source = this.spec.source === 'kubernetes' ? ['--source', 'kubernetes', '--kubeconfig', this.kubeconfig] : ['--source', `file:${this.clusterFile}`];
    // Each simulated node is its own cgroup and pin directory: one kernel, several "hosts".
    const ebpf = ['--cgroup-root', this.sandbox.visibleCgroupOf(name) as string, '--bpf-dir', join(this.bpffs, name)];
    const args = [...(options.nodeFlags ?? []), options.cli ?? cliPath(), 'agent', ...source, '--hostname', name, '--state-dir', this.stateDir(name), '--interface', this.interfaceOf(name),
      '--listen', `:${HEALTH_PORT}`, '--metrics-listen', `127.0.0.1:${METRICS_PORT}`, '--log-level', 'debug', ...ebpf, ...this.cniModeArgs(name), ...(external ? ['--userspace-wireguard', 'external'] : []), ...(this.spec.agentArgs ?? []), ...extra, ...this.cniPlacementArgs(name)];
    // The agent's own container: killAgentContainer ends it with everything it started.
    const child = this.sandbox.spawn(this.sandbox.node(name), process.execPath, args, {
      container: AGENT_CONTAINER,
      stdout: { file: this.logFile(name) },
      stderr: { file: this.logFile(name) },
      ...(options.env && { env: options.env }),
    });
    this.agents.set(name, child);
    return child;
  }

  /** SIGTERM (a clean exit, with --clean-up) and wait; returns the exit code. */
  async stopAgent(name: string): Promise<number | undefined> {
    const child = this.agents.get(name);
    if (child === undefined) return undefined;
    this.agents.delete(name);
    await this.sandbox.stop(child, AGENT_GRACE_MS);
    return (await child).exitCode;
  }

  /**
   * SIGKILLs the agent's whole container at once (the agent and every process it started, e.g. its
   * own wireguard-go), as a container runtime ends a container; resolves when all are gone.
   */
  async killAgentContainer(name: string): Promise<void> {
    const child = this.agents.get(name);
    this.agents.delete(name);
    await this.sandbox.killContainer(name, AGENT_CONTAINER);
    await child;
  }

  async log(name: string): Promise<string> {
    return readFile(this.logFile(name), 'utf8').catch(() => '');
  }

  /** GET from inside the node's namespace: health on --listen, metrics and graph on the loopback --metrics-listen. */
  private curl(name: string, path: string) {
    return this.sandbox.exec(this.sandbox.node(name), 'curl', ['-sf', '--max-time', '2', agentUrl(path)], { allowFailure: true });
  }

  /** The agent's /metrics, parsed into `name{labels}` → value. */
  async metrics(name: string): Promise<Map<string, number>> {
    const metrics = new Map<string, number>();
    let scrape = await this.curl(name, '/metrics');
    // A scrape that timed out (an agent busy for seconds on a loaded machine) says nothing: again,
    // a few times. Refused (curl's 7: nothing listens) is an answer, returned at once.
    for (let attempt = 1; attempt < METRICS_ATTEMPTS && scrape.exitCode !== 0 && scrape.exitCode !== 7; attempt++) scrape = await this.curl(name, '/metrics');
    for (const line of scrape.stdout.split('\n')) {
      const m = /^([a-z_]+(?:\{[^}]*\})?) (\S+)$/.exec(line);
      if (m) metrics.set(m[1] as string, Number(m[2]));
    }
    return metrics;
  }

  async ready(name: string): Promise<boolean> {
    return (await this.curl(name, '/readyz')).exitCode === 0;
  }

  // 2 minutes: on a loaded shared machine (load 15 on 2 cores) an agent's first ready took 30 to 45 s.
  async waitReady(names = [...this.agents.keys()], timeoutMs = 120_000): Promise<void> {
    for (const name of names) {
      await until(`agent ${name} to be ready (log: ${this.logFile(name)})`, () => this.ready(name), timeoutMs, 200);
    }
  }

  async ping(from: string | { readonly netns: string }, ip: string, payloadBytes = 56): Promise<boolean> {
    const args = ['-c', '1', '-W', '1', '-s', String(payloadBytes), ip];
    return (await this.sandbox.exec(from, 'ping', args, { allowFailure: true })).exitCode === 0;
  }

  /** Waits until `from` pings `ip`; false after the timeout. */
  async waitPing(from: string | { readonly netns: string }, ip: string, timeoutMs = 10_000): Promise<boolean> {
    return until(`ping ${ip}`, () => this.ping(from, ip), timeoutMs, 200).then(
      () => true,
      () => false,
    );
  }

  /** Bytes received + sent over a node's WireGuard interface (0 when it has none). */
  async wireguardBytes(name: string): Promise<bigint> {
    const r = await this.sandbox.exec(this.sandbox.node(name), 'wg', ['show', this.interfaceOf(name), 'transfer'], { allowFailure: true });
    let sum = 0n;
    for (const line of r.stdout.split('\n')) {
      const [, rx, tx] = line.split('\t');
      if (rx !== undefined && tx !== undefined) sum += BigInt(rx) + BigInt(tx);
    }
    return sum;
  }

  /** Peers of a node's WireGuard interface with a completed handshake. */
  async handshakes(name: string): Promise<number> {
    const r = await this.sandbox.exec(this.sandbox.node(name), 'wg', ['show', this.interfaceOf(name), 'latest-handshakes'], { allowFailure: true });
    return r.stdout.split('\n').filter((l) => /\t[1-9]\d*$/.test(l)).length;
  }

  /**
   * The last lines of every agent's log, then every agent's warnings and errors: printed last, they
   * are what a truncated CI excerpt of a failure still shows.
   */
  async logTails(lines = 40): Promise<string> {
    const out: string[] = [];
    const warnings: string[] = [];
    for (const node of this.spec.nodes) {
      const log = (await this.log(node.name)).split('\n');
      out.push(`--- agent ${node.name}`, ...log.slice(-lines));
      warnings.push(...log.filter((l) => /^\{"level":[4-6]\d,/.test(l)).map((l) => `${node.name}: ${l}`));
    }
    for (const name of this.wireguards.keys()) {
      const log = await readFile(this.wireguardLogFile(name), 'utf8').catch(() => '');
      out.push(`--- wireguard ${name}`, ...log.split('\n').slice(-lines));
    }
    out.push('--- warnings and errors, every agent', ...warnings.slice(-lines));
    return out.join('\n');
  }

  async destroy(): Promise<void> {
    await this.sandbox.destroy();
    await this.unmountBpffs();
    await rm(this.dir, { recursive: true, force: true });
    forgetOnExit(this);
  }

  /** The synchronous last resort when the process exits without destroy(). */
  /** Unmounting drops every pin left in it, and with them any program still attached. */
  private async unmountBpffs(): Promise<void> {
    if (!this.bpffsMounted) return;
    await runCommand('umount', ['-l', this.bpffs], { allowFailure: true });
    rmSync(this.bpffs, { recursive: true, force: true });
    this.bpffsMounted = false;
  }

  destroyNow(): void {
    this.sandbox.destroyNow();
    if (this.bpffsMounted) spawnSync('umount', ['-l', this.bpffs]);
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** The cluster file's objects (file source); edit them with editClusterFile. */
  private fileObjects: Record<string, unknown>[] = [];

  /** A cluster file with a fresh key per node, written to each node's state dir. */
  private async writeClusterFile(): Promise<void> {
    for (const n of this.spec.nodes) {
      const key = publicKeyOf(await writeNewKeyFile(join(this.stateDir(n.name), 'key')));
      const node = this.sandbox.node(n.name);
      const object = this.kubernetesNode(n.name);
      object.metadata.annotations = {
        'wirelane.io/key': key,
        // Where the node says it is, as discovery would publish it: its public address when it has one.
        'wirelane.io/endpoint': `${node.publicIP ?? node.underlayIP}:${WIREGUARD_PORT}`,
        'wirelane.io/internal-ip': [node.underlayCidr, ...(node.underlayCidr6 !== undefined ? [node.underlayCidr6] : [])].join(','),
        ...n.annotations,
      };
      this.fileObjects.push({ apiVersion: 'v1', kind: 'Node', ...object });
    }
    await this.saveClusterFile();
  }

  /** Changes the cluster file's objects in place and rewrites it atomically; agents reload it. */
  async editClusterFile(edit: (objects: Record<string, unknown>[]) => void): Promise<void> {
    edit(this.fileObjects);
    await this.saveClusterFile();
  }

  private async saveClusterFile(): Promise<void> {
    // JSON is YAML: one document per object. Rename so an agent never reads half a file.
    await writeFile(`${this.clusterFile}.new`, `${this.fileObjects.map((o) => JSON.stringify(o)).join('\n---\n')}\n`);
    await rename(`${this.clusterFile}.new`, this.clusterFile);
  }
}

function podCIDROf(index: number): string {
  return `10.244.${index}.0/24`;
}

const HEALTH_PORT = 1107;
const METRICS_PORT = 1108;
/** Scrapes of an agent's /metrics before one that timed out counts as empty. */
const METRICS_ATTEMPTS = 4;

/** The agent's URL for `path` as seen from its node's namespace. */
export function agentUrl(path: string): string {
  const port = ['/metrics', '/graph', '/status'].some((p) => path.startsWith(p)) ? METRICS_PORT : HEALTH_PORT;
  return `http://127.0.0.1:${port}${path}`;
}
