// Issue 10, item 4: restarts keep traffic flowing. Three nodes in two locations with the test API
// server and the DaemonSet's shape: its agent flags (--clean-up=false, --userspace-wireguard
// external) and wireguard-go in a container of its own. Under steady load (ClusterIP from a pod,
// NodePort from an outside host, pod-to-pod pings across locations) the agent of the east leader is
// restarted 10 times in a row, by SIGTERM and by SIGKILL of its whole container in turn: no request
// fails, no ping is lost, and the kernel state it programmed (WireGuard device and peers, routes, rules,
// iptables, eBPF programs and pins) is neither removed nor re-created. Userspace mode's proxy sockets
// die with the agent: its loss is measured, and only the recovery after each restart is asserted.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { runCommand, type SpawnedProcess } from '../../src/host/command.js';
import { echoRequests, startEchoServer } from '../../src/sandbox/echo/index.js';
import type { MeshCluster } from '../../src/sandbox/mesh-cluster.js';
import { startMeshCluster } from '../harness/mesh-cluster.js';
import { CLUSTER_IP, NODE_PORT, webEndpoints, webService } from '../harness/web-service.js';
import { AGENT_TOOLS, capabilitySkip } from '../support/capability.js';
import { type Flow, type FlowCount, SteadyTraffic, summary, totalFailed } from '../support/traffic.js';
import { until } from '../support/wait.js';

const skip = await capabilitySkip('agent restart tests', [...AGENT_TOOLS, ['bpftool', ['version']], ['tc', ['-V']]]);

const RESTARTS = 10;
/** Generous for a loaded machine: a restart's outage would fail requests whatever the bound. */
const READY_TIMEOUT_MS = 60_000;
const TRAFFIC = { timeoutMs: 5000 };
/** The restarted node: the leader of location east, so cross-location traffic goes through its tunnel. */
const RESTARTED = 'a';

type Mode = 'ebpf' | 'iptables' | 'userspace';
type RestartKind = 'SIGTERM' | 'SIGKILL';

/**
 * The DaemonSet's agent flags, less those naming the host (the sandbox sets its own per node): the
 * test restarts agents exactly as the manifest runs them.
 */
function daemonSetAgentFlags(): string[] {
  const path = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..', '..', 'deploy', 'daemonset.yaml');
  const [ds] = parseAllDocuments(readFileSync(path, 'utf8')).map((d) => d.toJS() as { spec: { template: { spec: { containers: { name: string; args: string[] }[] } } } });
  const agent = ds!.spec.template.spec.containers.find((c) => c.name === 'agent')!;
  const hostSpecific = new Set(['--hostname', '--listen', '--cgroup-root']);
  return agent.args.slice(1).filter((arg) => !hostSpecific.has(arg.split('=')[0]!));
}

interface RestartCluster {
  readonly cluster: MeshCluster;
  readonly flows: readonly Flow[];
}

async function startRestartCluster(t: TestContext, mode: Mode): Promise<RestartCluster> {
  const flags = daemonSetAgentFlags();
  assert.ok(flags.includes('--clean-up=false'), `the DaemonSet's flags: ${flags.join(' ')}`);
  const { cluster, api } = await startMeshCluster(t, {
    nodes: [
      { name: 'a', location: 'east' },
      { name: 'b', location: 'east' },
      { name: 'c', location: 'west' },
    ],
    source: 'kubernetes',
    outside: [{ name: 'client', underlayAddress: '172.31.1.1/16' }],
    wireguardContainer: true,
    agentArgs: [...flags, '--service-proxy', mode],
  });
  const sandbox = cluster.sandbox;
  const [a0, b0, c0] = ['a', 'b', 'c'].map((n) => sandbox.node(n).pods[0]!) as [typeof sandbox.pods[0], typeof sandbox.pods[0], typeof sandbox.pods[0]];
  for (const [pod, name] of [[b0, 'b0'], [c0, 'c0']] as const) startEchoServer(sandbox, pod, name, { tcp: 8080 });
  api!.create('services', webService());
  api!.create('endpointslices', webEndpoints([b0, c0]));
  for (const n of ['a', 'b', 'c']) cluster.startAgent(n);
  await cluster.waitReady(undefined, READY_TIMEOUT_MS);

  const flows: Flow[] = [
    { name: 'pod a0 → ClusterIP', from: a0, protocol: 'tcp', host: CLUSTER_IP, port: 80 },
    { name: 'outside → NodePort of a', from: sandbox.outside[0]!, protocol: 'tcp', host: sandbox.node(RESTARTED).underlayIP, port: NODE_PORT },
    { name: 'pod a0 → pod c0 ping', from: a0, protocol: 'ping', host: c0.ip },
    { name: 'pod b0 → pod c0 ping', from: b0, protocol: 'ping', host: c0.ip },
  ];
  // Converged: every flow answers, and the service from both backends (one local, one across locations).
  await until('both backends to answer the ClusterIP', async () => new Set((await echoRequests(sandbox, a0, 'tcp', CLUSTER_IP, 80, { count: 4 })).map((l) => l.split(' ')[0])).size === 2, 30_000, 250);
  await until('the NodePort to answer', async () => !(await echoRequests(sandbox, flows[1]!.from, 'tcp', flows[1]!.host, NODE_PORT)).some((l) => l.startsWith('ERROR')), 30_000, 250);
  for (const flow of flows.filter((f) => f.protocol === 'ping')) assert.ok(await cluster.waitPing(flow.from, flow.host, 30_000), flow.name);
  return { cluster, flows };
}

/** Restarts the agent of `node` as a container runtime would, and waits for the new one to be ready. */
async function restartAgent(cluster: MeshCluster, node: string, kind: RestartKind): Promise<void> {
  if (kind === 'SIGTERM') assert.equal(await cluster.stopAgent(node), 0, 'the agent exits cleanly on SIGTERM');
  else await cluster.killAgentContainer(node);
  cluster.startAgent(node);
  await cluster.waitReady([node], READY_TIMEOUT_MS);
}

/**
 * What the agent programmed on a node, in a form that changes if anything was removed or made anew:
 * the WireGuard link's ifindex and peers, routes, rules, iptables (without counters), and in eBPF mode
 * the attached programs' ids and the pins.
 */
async function hostState(cluster: MeshCluster, node: string, mode: Mode): Promise<Record<string, string>> {
  const sandbox = cluster.sandbox;
  const n = sandbox.node(node);
  const iface = cluster.interfaceOf(node);
  const run = async (file: string, args: readonly string[]) => (await sandbox.exec(n, file, args)).stdout;
  const withoutCounters = (saved: string) => saved.split('\n').filter((l) => !l.startsWith('#')).map((l) => l.replace(/\[\d+:\d+\]/g, '')).join('\n');
  const state: Record<string, string> = {
    'WireGuard link': (await run('ip', ['-o', 'link', 'show', 'dev', iface])).split(':')[0]!,
    // Public key, endpoint, allowed IPs: not the handshake times and counters, which move on.
    'WireGuard peers': (await run('wg', ['show', iface, 'dump'])).split('\n').slice(1).filter(Boolean).map((l) => l.split('\t').filter((_, i) => [0, 2, 3].includes(i)).join(' ')).sort().join('\n'),
    'WireGuard address': await run('ip', ['-o', 'addr', 'show', 'dev', iface]),
    routes: (await run('ip', ['-4', 'route', 'show', 'table', 'all'])) + (await run('ip', ['-6', 'route', 'show', 'table', 'all'])),
    rules: (await run('ip', ['-4', 'rule', 'show'])) + (await run('ip', ['-6', 'rule', 'show'])),
    iptables: withoutCounters(await run('iptables-save', [])) + withoutCounters(await run('ip6tables-save', [])),
  };
  if (mode === 'ebpf') {
    state['cgroup programs'] = (await runCommand('bpftool', ['cgroup', 'show', join(sandbox.cgroups!.root, node)])).stdout;
    state['tc programs'] = (await run('tc', ['filter', 'show', 'dev', n.underlayIface, 'ingress'])) + (await run('tc', ['filter', 'show', 'dev', n.underlayIface, 'egress']));
    state['pins'] = readdirSync(join(cluster.bpffs, node), { recursive: true }).map(String).sort().join('\n');
  }
  return state;
}

/**
 * Every link, address, route and rule change in a node's namespace while it runs (`ip monitor`).
 * A marker route in a table of its own is added once the monitor listens and deleted at stop(), so
 * the recording spans exactly the window in between.
 */
class KernelChanges {
  private readonly lines: string[] = [];
  private constructor(
    private readonly cluster: MeshCluster,
    private readonly node: string,
    private readonly monitor: SpawnedProcess,
  ) {
    let partial = '';
    monitor.stdout?.on('data', (chunk: Buffer) => {
      const lines = (partial + chunk.toString()).split('\n');
      partial = lines.pop() ?? '';
      this.lines.push(...lines);
    });
  }

  private static readonly MARKER = ['192.0.2.107/32', 'dev', 'lo', 'table', '1107107'];

  static async start(cluster: MeshCluster, node: string): Promise<KernelChanges> {
    const monitor = cluster.sandbox.spawn(cluster.sandbox.node(node), 'ip', ['-o', 'monitor', 'link', 'address', 'route', 'rule']);
    const changes = new KernelChanges(cluster, node, monitor);
    // Until the monitor has subscribed, the marker's addition goes unseen: add it anew until it is seen.
    const ip = (args: readonly string[]) => cluster.sandbox.exec(cluster.sandbox.node(node), 'ip', args, { allowFailure: true });
    await until('ip monitor to listen', async () => {
      await ip(['route', 'del', ...KernelChanges.MARKER]);
      await ip(['route', 'add', ...KernelChanges.MARKER]);
      return changes.lines.some((l) => !l.startsWith('Deleted') && l.includes('192.0.2.107'));
    }, 10_000, 100);
    changes.lines.length = 0;
    return changes;
  }

  /** The changes seen, the marker's own excluded. */
  async stop(): Promise<string[]> {
    await this.cluster.sandbox.exec(this.cluster.sandbox.node(this.node), 'ip', ['route', 'del', ...KernelChanges.MARKER]);
    await until('ip monitor to see the marker go', () => this.lines.some((l) => l.startsWith('Deleted') && l.includes('192.0.2.107')), 10_000, 20);
    await this.cluster.sandbox.stop(this.monitor, 1000);
    return this.lines.filter((l) => l.trim() !== '' && !l.includes('192.0.2.107'));
  }
}

/** Per kind of restart, what the flows counted from the moment it was made until the agent served again. */
type CountsByKind = Record<RestartKind, Record<string, FlowCount>>;

/**
 * RESTARTS restarts of the agent in a row, SIGTERM and SIGKILL taking turns; after each, the new
 * agent is ready and `served` (e.g. every flow went on through it) before the next.
 */
async function restartInARow(cluster: MeshCluster, traffic: SteadyTraffic, served: (sinceReady: Record<string, FlowCount>) => boolean): Promise<CountsByKind> {
  const byKind: CountsByKind = { SIGTERM: {}, SIGKILL: {} };
  for (let i = 0; i < RESTARTS; i++) {
    const kind: RestartKind = i % 2 === 0 ? 'SIGTERM' : 'SIGKILL';
    const start = traffic.counts();
    await restartAgent(cluster, RESTARTED, kind);
    const ready = traffic.counts();
    await until(`the agent to serve after ${kind} restart ${i + 1} (${summary(traffic.since(start))})`, () => served(traffic.since(ready)), 20_000, 100);
    for (const [name, c] of Object.entries(traffic.since(start))) {
      const sum = byKind[kind][name] ?? { sent: 0, failed: 0, failures: [] };
      byKind[kind][name] = { sent: sum.sent + c.sent, failed: sum.failed + c.failed, failures: [...sum.failures, ...c.failures].slice(-5) };
    }
  }
  return byKind;
}

/** The figures for the report, one line per kind of restart. */
function report(t: TestContext, mode: Mode, byKind: CountsByKind): void {
  for (const kind of ['SIGTERM', 'SIGKILL'] as const) t.diagnostic(`${mode}, ${RESTARTS / 2} ${kind} restarts: ${summary(byKind[kind])}`);
}

for (const mode of ['ebpf', 'iptables'] as const) {
  test(`${mode} mode: ${RESTARTS} agent restarts in a row (SIGTERM and SIGKILL of its container) lose no request and no ping, and remove nothing`, { skip }, async (t) => {
    const { cluster, flows } = await startRestartCluster(t, mode);
    const wireguard = cluster.wireguards.get(RESTARTED)!;
    const traffic = SteadyTraffic.start(cluster.sandbox, flows, TRAFFIC);
    t.after(() => traffic.stop());
    await traffic.waitSent(traffic.counts(), 2);
    const before = await hostState(cluster, RESTARTED, mode);
    const changes = await KernelChanges.start(cluster, RESTARTED);
    t.after(() => changes.stop().catch(() => undefined));

    // Every flow goes on through the new agent before the next restart.
    const byKind = await restartInARow(cluster, traffic, (sinceReady) => flows.every((f) => sinceReady[f.name]!.sent >= 2));
    report(t, mode, byKind);
    for (const kind of ['SIGTERM', 'SIGKILL'] as const) assert.equal(totalFailed(byKind[kind]), 0, `${kind} restarts: ${summary(byKind[kind])}`);

    const seen = await changes.stop();
    t.diagnostic(`${mode}: kernel changes on node ${RESTARTED} during the restarts: ${seen.length === 0 ? 'none' : seen.join(' | ')}`);
    assert.deepEqual(seen.filter((l) => l.startsWith('Deleted')), [], 'nothing was deleted, not even for a moment');
    assert.deepEqual(await hostState(cluster, RESTARTED, mode), before, 'the host state is the one the first agent programmed');
    assert.equal(wireguard.exitCode, null, 'the wireguard container ran throughout');
    assert.equal(cluster.wireguards.get(RESTARTED), wireguard);
  });
}

test(`userspace mode: after each of ${RESTARTS} agent restarts in a row the services recover (loss measured)`, { skip }, async (t) => {
  const { cluster, flows } = await startRestartCluster(t, 'userspace');
  const traffic = SteadyTraffic.start(cluster.sandbox, flows, TRAFFIC);
  t.after(() => traffic.stop());
  await traffic.waitSent(traffic.counts(), 2);
  // Its proxy sockets die with the agent: requests fail until the new one has opened them again.
  const services = flows.filter((f) => f.protocol !== 'ping').map((f) => f.name);
  const byKind = await restartInARow(cluster, traffic, (sinceReady) => services.every((name) => sinceReady[name]!.sent - sinceReady[name]!.failed >= 2));
  report(t, 'userspace', byKind);
});
