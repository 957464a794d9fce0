// A cluster of real agents in network namespaces: the sandbox (nodes on an underlay bridge, pods
// behind veths), the test API server or a cluster file as source, and one `wirelane agent` process
// per node. Everything is torn down by the test's after-hook, also when the test fails.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { SpawnedProcess } from '../../src/host/command.js';
import { publicKeyOf } from '../../src/model/key.js';
import { type Sandbox, createSandbox } from '../../src/sandbox/index.js';
import { writeNewKeyFile } from '../../src/state/key-file.js';
import { type KubeApiServer, startKubeApiServer } from '../kube-apiserver/index.js';
import { until } from '../support/wait.js';

const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', 'cli', 'wirelane.js');
export const WIREGUARD_PORT = 51820;

export interface MeshNodeSpec {
  readonly name: string;
  readonly location: string;
  readonly pods?: number;
  /** Extra annotations on the Node object (kubernetes source) or in the cluster file. */
  readonly annotations?: Readonly<Record<string, string>>;
}

export interface MeshClusterSpec {
  readonly nodes: readonly MeshNodeSpec[];
  readonly source: 'kubernetes' | 'file';
  readonly agentArgs?: readonly string[];
  readonly outside?: readonly { readonly name: string; readonly underlayAddress: string }[];
}

export class MeshCluster {
  readonly agents = new Map<string, SpawnedProcess>();

  constructor(
    readonly sandbox: Sandbox,
    readonly spec: MeshClusterSpec,
    readonly dir: string,
    readonly api: KubeApiServer | undefined,
  ) {}

  /** Each node's WireGuard interface: unique on the machine (wireguard-go's socket directory is shared). */
  interfaceOf(name: string): string {
    return `${this.sandbox.prefix}w${this.spec.nodes.findIndex((n) => n.name === name)}`;
  }

  get clusterFile(): string {
    return join(this.dir, 'cluster.yaml');
  }

  stateDir(name: string): string {
    return join(this.dir, name);
  }

  logFile(name: string): string {
    return join(this.dir, `${name}.log`);
  }

  agentArgs(name: string, extra: readonly string[] = []): string[] {
    const source = this.api ? ['--source', 'kubernetes', '--kubeconfig', join(this.dir, 'kubeconfig')] : ['--source', `file:${this.clusterFile}`];
    return [CLI, 'agent', ...source, '--hostname', name, '--state-dir', this.stateDir(name), '--interface', this.interfaceOf(name),
      '--listen', ':1107', '--log-level', 'debug', ...(this.spec.agentArgs ?? []), ...extra];
  }

  startAgent(name: string, extra: readonly string[] = []): SpawnedProcess {
    const child = this.sandbox.spawn(this.sandbox.node(name), process.execPath, this.agentArgs(name, extra), {
      stdout: { file: this.logFile(name) },
      stderr: { file: this.logFile(name) },
    });
    this.agents.set(name, child);
    return child;
  }

  /** SIGTERM (a clean exit, with --clean-up) and wait; returns the exit code. */
  async stopAgent(name: string): Promise<number | undefined> {
    const child = this.agents.get(name);
    if (child === undefined) return undefined;
    this.agents.delete(name);
    await this.sandbox.stop(child, 10_000);
    return (await child).exitCode;
  }

  async log(name: string): Promise<string> {
    return readFile(this.logFile(name), 'utf8').catch(() => '');
  }

  /** The agent's /metrics, parsed into `name{labels}` → value. */
  async metrics(name: string): Promise<Map<string, number>> {
    const out = await this.sandbox.exec(this.sandbox.node(name), 'curl', ['-sf', '--max-time', '2', 'http://127.0.0.1:1107/metrics']);
    const metrics = new Map<string, number>();
    for (const line of out.stdout.split('\n')) {
      const m = /^([a-z_]+(?:\{[^}]*\})?) (\S+)$/.exec(line);
      if (m) metrics.set(m[1] as string, Number(m[2]));
    }
    return metrics;
  }

  async ready(name: string): Promise<boolean> {
    const r = await this.sandbox.exec(this.sandbox.node(name), 'curl', ['-sf', '--max-time', '2', 'http://127.0.0.1:1107/readyz'], { allowFailure: true });
    return r.exitCode === 0;
  }

  async waitReady(names = this.spec.nodes.map((n) => n.name), timeoutMs = 30_000): Promise<void> {
    for (const name of names) {
      await until(`agent ${name} to be ready (log: ${this.logFile(name)})`, () => this.ready(name), timeoutMs, 200);
    }
  }

  async ping(from: string | { netns: string }, ip: string, count = 1): Promise<boolean> {
    const r = await this.sandbox.exec(from, 'ping', ['-c', String(count), '-W', '1', '-i', '0.2', ip], { allowFailure: true });
    return r.exitCode === 0;
  }

  /** Bytes received + sent over a node's WireGuard interface (0 when it has none). */
  async wireguardBytes(name: string): Promise<bigint> {
    const r = await this.sandbox.exec(this.sandbox.node(name), 'wg', ['show', this.interfaceOf(name), 'transfer'], { allowFailure: true });
    return r.stdout
      .split('\n')
      .filter((l) => l.trim() !== '')
      .reduce((sum, l) => {
        const [, rx, tx] = l.split('\t');
        return sum + BigInt(rx ?? 0) + BigInt(tx ?? 0);
      }, 0n);
  }

  /** Dumps agent logs of a failed test to stderr: the first thing anyone needs. */
  async dumpLogs(): Promise<void> {
    for (const node of this.spec.nodes) {
      const text = await this.log(node.name);
      process.stderr.write(`--- agent ${node.name} (last 40 lines)\n${text.split('\n').slice(-40).join('\n')}\n`);
    }
  }
}

export async function startMeshCluster(t: TestContext, spec: MeshClusterSpec): Promise<MeshCluster> {
  const sandbox = await createSandbox({
    nodes: spec.nodes.map((n, i) => ({
      name: n.name,
      location: n.location,
      underlayAddress: `172.31.0.${10 + i}/16`,
      podCIDRs: [`10.244.${i}.0/24`],
      pods: n.pods ?? 1,
    })),
    outside: spec.outside ?? [],
    management: spec.source === 'kubernetes',
  });
  const dir = await mkdtemp(join(tmpdir(), 'wirelane-mesh-'));
  let api: KubeApiServer | undefined;
  t.after(async () => {
    await sandbox.destroy();
    await api?.close();
    await rm(dir, { recursive: true, force: true });
  });
  const cluster = new MeshCluster(sandbox, spec, dir, undefined);
  if (spec.source === 'kubernetes') {
    api = await startKubeApiServer({ host: sandbox.managementAddress });
    await api.writeKubeconfig(join(dir, 'kubeconfig'));
    spec.nodes.forEach((n, i) => {
      api?.create('nodes', {
        metadata: { name: n.name, labels: { 'topology.kubernetes.io/region': n.location }, annotations: { ...n.annotations } },
        spec: { podCIDR: `10.244.${i}.0/24` },
      });
    });
    const withApi = new MeshCluster(sandbox, spec, dir, api);
    t.after(async () => {
      if (failed(t)) await withApi.dumpLogs();
    });
    return withApi;
  }
  await writeFile(cluster.clusterFile, await clusterFileFor(cluster));
  t.after(async () => {
    if (failed(t)) await cluster.dumpLogs();
  });
  return cluster;
}

// Node 20.12+ has TestContext.passed at run time; @types/node 20 does not declare it yet.
function failed(t: TestContext): boolean {
  return (t as TestContext & { readonly passed?: boolean }).passed === false;
}

/** A cluster file with a fresh key per node (written to each node's state dir). */
async function clusterFileFor(cluster: MeshCluster): Promise<string> {
  const docs: string[] = [];
  for (const [i, n] of cluster.spec.nodes.entries()) {
    const key = publicKeyOf(await writeNewKeyFile(join(cluster.stateDir(n.name), 'key')));
    const node = cluster.sandbox.node(n.name);
    const annotations = {
      'wirelane.io/key': key,
      'wirelane.io/endpoint': `${node.underlayIP}:${WIREGUARD_PORT}`,
      'wirelane.io/internal-ip': node.underlayCidr,
      ...n.annotations,
    };
    docs.push(
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Node',
        metadata: { name: n.name, labels: { 'topology.kubernetes.io/region': n.location }, annotations },
        spec: { podCIDR: `10.244.${i}.0/24` },
      }),
    );
  }
  // JSON is YAML: one document per node.
  return docs.join('\n---\n');
}
