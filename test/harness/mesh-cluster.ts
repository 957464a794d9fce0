// The sandboxed mesh cluster for a test: with the test API server when the source is kubernetes,
// torn down by the test's after-hook (agent logs printed first when the test failed).
import { type TestContext, test } from 'node:test';
import { MeshCluster, type MeshClusterSpec, WIREGUARD_PORT } from '../../src/sandbox/mesh-cluster.js';
import { type KubeApiServer, startKubeApiServer } from '../kube-apiserver/index.js';
import { until } from '../support/wait.js';

export interface TestMeshCluster {
  readonly cluster: MeshCluster;
  /** Present with the kubernetes source. */
  readonly api: KubeApiServer | undefined;
  /** Removes everything; prints the agents' logs first when `failed`. */
  destroy(failed: boolean): Promise<void>;
}

// Node 20.12+ has TestContext.passed at run time; @types/node 20 does not declare it yet.
function failed(t: TestContext): boolean {
  return (t as TestContext & { readonly passed?: boolean }).passed === false;
}

/** For a suite sharing one cluster: the caller destroys it in its own after-hook. */
export async function createMeshCluster(spec: MeshClusterSpec): Promise<TestMeshCluster> {
  const cluster = await MeshCluster.create(spec);
  let api: KubeApiServer | undefined;
  const destroy = async (failedRun: boolean) => {
    // WIRELANE_TEST_LOGS=1 prints them after passing tests too, to study timings.
    if (failedRun || process.env.WIRELANE_TEST_LOGS === '1') process.stderr.write(`${await cluster.logTails(failedRun ? undefined : 400)}\n`);
    await cluster.destroy();
    await api?.close();
  };
  try {
    if (spec.source === 'kubernetes') {
      api = await startKubeApiServer({ host: cluster.sandbox.managementAddress });
      await api.writeKubeconfig(cluster.kubeconfig);
      for (const n of spec.nodes) api.create('nodes', cluster.kubernetesNode(n.name));
    }
  } catch (err) {
    await destroy(false);
    throw err;
  }
  return { cluster, api, destroy };
}

/** The annotations the test API server holds for a node (what its agent published). */
export function annotationsOf(world: TestMeshCluster, name: string): Record<string, string> {
  const node = world.api!.get('nodes', name) as { metadata: { annotations?: Record<string, string> } } | undefined;
  return node?.metadata.annotations ?? {};
}

/**
 * For a suite sharing one cluster: `check` is `test` that remembers a failure (as `fail()` does for
 * hooks), so the suite's after-hook can hand `failed()` to destroy and print the agents' logs.
 */
export function suiteChecks(): { check: (name: string, body: () => Promise<void>) => void; fail: () => void; failed: () => boolean } {
  let failedRun = false;
  const check = (name: string, body: () => Promise<void>) => {
    test(name, async () => {
      try {
        await body();
      } catch (err) {
        failedRun = true;
        throw err;
      }
    });
  };
  return { check, fail: () => (failedRun = true), failed: () => failedRun };
}

/** One cluster for one test, destroyed by the test's after-hook. */
export async function startMeshCluster(t: TestContext, spec: MeshClusterSpec): Promise<TestMeshCluster> {
  const started = await createMeshCluster(spec);
  t.after(() => started.destroy(failed(t)));
  return started;
}

/** One metric of a node's agent; a scrape that failed (curl timing out on a loaded machine) is retried. */
export async function metricOf(cluster: MeshCluster, node: string, key: string): Promise<number> {
  let value: number | undefined;
  await until(`${key} from ${node}`, async () => (value = (await cluster.metrics(node)).get(key)) !== undefined, 60_000, 200);
  return value as number;
}

/**
 * Who leads among `nodes` for `ms`, sampled every 200 ms: each pattern seen, one digit per node
 * (its wirelane_leader), e.g. '01' while the second of two leads.
 */
export async function leadersDuring(cluster: MeshCluster, nodes: readonly string[], ms: number): Promise<Set<string>> {
  const seen = new Set<string>();
  for (const end = Date.now() + ms; Date.now() < end; ) {
    const digits = [];
    for (const node of nodes) digits.push(await metricOf(cluster, node, 'wirelane_leader'));
    seen.add(digits.join(''));
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return seen;
}

/**
 * Drops `node`'s WireGuard UDP on the node itself, both ways: its host and agent stay healthy, only
 * its tunnels go silent. Returns the restore, which the test's end also runs when the test did not.
 */
export async function dropWireGuardUdp(t: TestContext, cluster: MeshCluster, node: string): Promise<() => Promise<void>> {
  const port = String(WIREGUARD_PORT);
  const rules = [
    ['INPUT', '-p', 'udp', '--dport', port, '-j', 'DROP'],
    ['OUTPUT', '-p', 'udp', '--sport', port, '-j', 'DROP'],
  ];
  const iptables = (op: '-I' | '-D', rule: string[]) => cluster.sandbox.exec(cluster.sandbox.node(node), 'iptables', [op, ...rule]);
  let dropped = true;
  const restore = async (): Promise<void> => {
    if (!dropped) return;
    dropped = false;
    for (const rule of rules) await iptables('-D', rule);
  };
  t.after(restore);
  for (const rule of rules) await iptables('-I', rule);
  return restore;
}
