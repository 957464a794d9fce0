// Benchmark: the eBPF fast path (bpf/fastpath.bpf.c) against the stack, pod to pod, in one run.
// Three sandbox nodes running real agents (iptables service mode, the fallback whose rules every
// packet would cross): a1 (leader of east, the client pod and a second pod), a2 (east) and b (west).
// Paths: same node (a1 → a1), across nodes of one location (a1 → a2, underlay) and across
// locations (a1 → b, WireGuard). Measures: throughput (iperf3, one TCP stream), request/response
// latency on an established connection (wl-bench rr, p50 and p99) and connections per second
// (wl-bench crr), from build/bench/wl-bench: C, so the client's own cost does not dominate.
//
// On and off are paired back to back, alternating which goes first: "off" empties the programs'
// pod-CIDR map on every node (no packet is a candidate: each pays one parse and one LPM lookup, and
// goes to the stack as without the fast path), "on" restores it. Each figure is the median of the
// ratios on ÷ off. Then 10,000 ClusterIP services × 10 endpoints are added to the cluster file, the
// agents program them into iptables, and the same pairs run again; the table also gives each
// condition against "off, no services".
// Goal, reported and not asserted: same-node RR p50 at least 20% lower with the fast path,
// cross-node throughput no lower.
// Writes bench/results/fastpath.json. Needs root.
// Run: node --import tsx bench/fastpath.ts [--repeats=5] [--seconds=2] [--services=10000]
import { mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type BpfMap, openPinnedMap } from '../src/bpf/index.js';
import type { SandboxPod } from '../src/sandbox/index.js';
import { MeshCluster } from '../src/sandbox/mesh-cluster.js';
import { AGENT_TOOLS, sandboxUnsupportedReason } from '../src/sandbox/support.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const CLIENT = join(root, 'build', 'bench', 'wl-bench');
const BENCH_PORT = 7000;
const IPERF_PORT = 5201;

const USAGE = 'usage: node --import tsx bench/fastpath.ts [--repeats=5] [--seconds=2] [--services=10000]\n';
const args = new Map(process.argv.slice(2).map((a) => a.replace(/^--/, '').split('=') as [string, string]));
if (args.has('help')) {
  process.stdout.write(USAGE);
  process.exit(0);
}
const unknown = [...args.keys()].filter((k) => !['repeats', 'seconds', 'services'].includes(k));
if (unknown.length > 0) {
  process.stderr.write(`bench/fastpath: unknown option ${unknown.map((k) => `--${k}`).join(', ')}\n${USAGE}`);
  process.exit(2);
}
const REPEATS = Number(args.get('repeats') ?? 5);
const SECONDS = Number(args.get('seconds') ?? 2);
const SERVICES = Number(args.get('services') ?? 10_000);
const ENDPOINTS = 10;

const NODES = [
  { name: 'a1', location: 'east', pods: 2, annotations: { 'wirelane.io/leader': 'true' } },
  { name: 'a2', location: 'east', pods: 1 },
  { name: 'b', location: 'west', pods: 1 },
];

interface Measure {
  readonly gbit: number;
  readonly rrP50: number;
  readonly rrP99: number;
  readonly crr: number;
}
const MEASURES = ['gbit', 'rrP50', 'rrP99', 'crr'] as const;

interface ClientRun {
  readonly perSecond: number;
  readonly p50Us: number;
  readonly p99Us: number;
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

async function wlBench(cluster: MeshCluster, from: SandboxPod, kind: 'rr' | 'crr', host: string): Promise<ClientRun> {
  const r = await cluster.sandbox.exec(from, CLIENT, [kind, host, String(BENCH_PORT), String(SECONDS)], { allowFailure: true });
  if (r.exitCode !== 0) throw new Error(`wl-bench ${kind} ${host}: ${r.stderr.trim() || `exit ${r.exitCode}`}`);
  return JSON.parse(r.stdout) as ClientRun;
}

async function measure(cluster: MeshCluster, from: SandboxPod, host: string): Promise<Measure> {
  const iperf = await cluster.sandbox.exec(from, 'iperf3', ['-c', host, '-p', String(IPERF_PORT), '-t', String(SECONDS), '-J']);
  const gbit = (JSON.parse(iperf.stdout) as { end: { sum_received: { bits_per_second: number } } }).end.sum_received.bits_per_second / 1e9;
  const rr = await wlBench(cluster, from, 'rr', host);
  const crr = await wlBench(cluster, from, 'crr', host);
  return { gbit, rrP50: rr.p50Us, rrP99: rr.p99Us, crr: crr.perSecond };
}

/** The fast path's candidate map of every node: emptied for "off", refilled for "on". */
class Switch {
  readonly #maps: { map: BpfMap; entries: Array<[Buffer, Buffer]> }[];

  constructor(cluster: MeshCluster) {
    this.#maps = NODES.map((n) => {
      const map = openPinnedMap(join(cluster.bpffs, n.name, 'fast-path', 'wl_fp_cidrs'));
      return { map, entries: map.entries() };
    });
    if (this.#maps.some((m) => m.entries.length === 0)) throw new Error('a node has no pod CIDRs in its fast-path map yet');
  }

  /** The agents rewrite the map when the cluster file changes: take what they wrote as "on". */
  refresh(): void {
    for (const m of this.#maps) m.entries = m.map.entries();
  }

  set(on: boolean): void {
    for (const { map, entries } of this.#maps) {
      for (const key of map.keys()) map.delete(key);
      if (on) for (const [key, value] of entries) map.update(key, value);
    }
  }

  close(): void {
    for (const { map } of this.#maps) map.close();
  }
}

type Condition = 'off' | 'on';
interface PathResult {
  readonly path: string;
  readonly runs: Record<Condition, Measure[]>;
  /** Medians of the paired ratios on ÷ off. */
  readonly ratio: Record<(typeof MEASURES)[number], number>;
}

async function phase(cluster: MeshCluster, sw: Switch, paths: readonly { name: string; from: SandboxPod; to: SandboxPod }[]): Promise<PathResult[]> {
  const results: PathResult[] = [];
  for (const path of paths) {
    const runs: Record<Condition, Measure[]> = { off: [], on: [] };
    for (let i = 0; i < REPEATS; i++) {
      const order: Condition[] = i % 2 === 0 ? ['off', 'on'] : ['on', 'off'];
      for (const condition of order) {
        sw.set(condition === 'on');
        runs[condition].push(await measure(cluster, path.from, path.to.ip));
      }
    }
    const ratio = Object.fromEntries(MEASURES.map((m) => [m, median(runs.on.map((on, i) => on[m] / runs.off[i]![m]))])) as PathResult['ratio'];
    results.push({ path: path.name, runs, ratio });
    process.stderr.write(`  ${path.name}: on ÷ off ${MEASURES.map((m) => `${m} ${ratio[m].toFixed(2)}`).join(', ')}\n`);
  }
  sw.set(true);
  return results;
}

/** 10,000 ClusterIP services × 10 endpoints at unused addresses of a1's pod CIDR. */
function servicesObjects(count: number): Record<string, unknown>[] {
  const objects: Record<string, unknown>[] = [];
  for (let i = 0; i < count; i++) {
    const ip = `10.${96 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`;
    const name = `svc-${i}`;
    objects.push({ apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'default' }, spec: { type: 'ClusterIP', clusterIP: ip, clusterIPs: [ip], ports: [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 8080 }] } });
    const endpoints = Array.from({ length: ENDPOINTS }, (_, j) => ({ addresses: [`10.244.${100 + ((i * ENDPOINTS + j) >> 8) % 100}.${(i * ENDPOINTS + j) & 255}`], conditions: { ready: true } }));
    objects.push({
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: `${name}-1`, namespace: 'default', labels: { 'kubernetes.io/service-name': name } },
      addressType: 'IPv4',
      ports: [{ name: 'http', protocol: 'TCP', port: 8080 }],
      endpoints,
    });
  }
  return objects;
}

async function waitProgrammed(cluster: MeshCluster, lastIp: string): Promise<number> {
  const started = Date.now();
  for (const n of NODES) {
    for (;;) {
      const save = await cluster.sandbox.exec(cluster.sandbox.node(n.name), 'iptables-save', ['-t', 'nat']);
      if (save.stdout.includes(`${lastIp}/32`)) break;
      if (Date.now() - started > 30 * 60_000) throw new Error(`${n.name}: ${SERVICES} services not programmed after 30 minutes`);
      await new Promise((resolve) => setTimeout(resolve, 2000));
    }
  }
  return (Date.now() - started) / 1000;
}

async function main(): Promise<void> {
  const unsupported = await sandboxUnsupportedReason([...AGENT_TOOLS, ['iperf3', ['--version']]]);
  if (unsupported !== undefined) throw new Error(`fastpath bench: ${unsupported}`);
  const load: Load = { start: loadavg() };
  const cluster = await MeshCluster.create({ nodes: NODES, source: 'file', agentArgs: ['--resync-period', '1h', '--fast-path', 'on', '--service-proxy', 'iptables'] });
  let sw: Switch | undefined;
  try {
    for (const n of NODES) cluster.startAgent(n.name);
    await cluster.waitReady();
    const [client, local] = cluster.sandbox.node('a1').pods as [SandboxPod, SandboxPod];
    const cross = cluster.sandbox.node('a2').pods[0] as SandboxPod;
    const remote = cluster.sandbox.node('b').pods[0] as SandboxPod;
    for (const pod of [local, cross, remote]) {
      cluster.sandbox.spawn(pod, CLIENT, ['server', String(BENCH_PORT)], { stdout: 'ignore', stderr: 'ignore' });
      cluster.sandbox.spawn(pod, 'iperf3', ['-s', '-p', String(IPERF_PORT)], { stdout: 'ignore', stderr: 'ignore' });
      if (!(await cluster.waitPing(client, pod.ip, 30_000))) throw new Error(`${client.name} does not reach ${pod.name}`);
    }
    // Let the agents attach to every veth (a second poll at most).
    await new Promise((resolve) => setTimeout(resolve, 3000));
    const paths = [
      { name: 'same node', from: client, to: local },
      { name: 'across nodes (underlay)', from: client, to: cross },
      { name: 'across locations (WireGuard)', from: client, to: remote },
    ];
    sw = new Switch(cluster);
    process.stderr.write('no services\n');
    const plain = await phase(cluster, sw, paths);

    const objects = servicesObjects(SERVICES);
    const lastIp = ((objects[objects.length - 2] as { spec: { clusterIP: string } }).spec.clusterIP);
    await cluster.editClusterFile((file) => file.push(...objects));
    process.stderr.write(`programming ${SERVICES} services × ${ENDPOINTS} endpoints into iptables on 3 nodes\n`);
    const programmingSeconds = await waitProgrammed(cluster, lastIp);
    process.stderr.write(`  programmed in ${programmingSeconds.toFixed(0)} s\n`);
    sw.refresh();
    process.stderr.write(`${SERVICES} services\n`);
    const withServices = await phase(cluster, sw, paths);
    load.end = loadavg();

    const versusBaseline = withServices.map((r, i) => {
      const base = plain[i]!.runs.off;
      const of = (c: Condition) => Object.fromEntries(MEASURES.map((m) => [m, median(r.runs[c].map((v, j) => v[m] / base[j]![m]))]));
      return { path: r.path, off: of('off'), on: of('on') };
    });
    const result = { date: new Date().toISOString(), repeats: REPEATS, seconds: SECONDS, services: SERVICES, programmingSeconds, load, plain, withServices, versusBaseline };
    mkdirSync(join(root, 'bench', 'results'), { recursive: true });
    writeFileSync(join(root, 'bench', 'results', 'fastpath.json'), `${JSON.stringify(result, null, 2)}\n`);
    printTable(result);
  } finally {
    sw?.close();
    await cluster.destroy();
  }
}

interface Load {
  start: number[];
  end?: number[];
}

function printTable(r: { plain: PathResult[]; withServices: PathResult[]; versusBaseline: { path: string; off: Record<string, number>; on: Record<string, number> }[]; load: Load; services: number }): void {
  const med = (runs: Measure[], m: (typeof MEASURES)[number]) => median(runs.map((x) => x[m]));
  const lines = [
    '| path | services | throughput off → on (Gbit/s) | RR p50 off → on (µs) | RR p99 off → on (µs) | conn/s off → on | ratio on ÷ off: throughput, p50, p99, conn/s |',
    '|---|---|---|---|---|---|---|',
  ];
  for (const [services, results] of [[0, r.plain], [r.services, r.withServices]] as const) {
    for (const x of results) {
      const f = (m: (typeof MEASURES)[number], digits: number) => `${med(x.runs.off, m).toFixed(digits)} → ${med(x.runs.on, m).toFixed(digits)}`;
      lines.push(`| ${x.path} | ${services.toLocaleString('en')} | ${f('gbit', 2)} | ${f('rrP50', 0)} | ${f('rrP99', 0)} | ${f('crr', 0)} | ${MEASURES.map((m) => x.ratio[m].toFixed(2)).join(', ')} |`);
    }
  }
  lines.push('', `with ${r.services.toLocaleString('en')} services, each ÷ "off, no services" (throughput, p50, p99, conn/s):`);
  for (const v of r.versusBaseline) lines.push(`  ${v.path}: off ${MEASURES.map((m) => v.off[m]!.toFixed(2)).join(', ')}; on ${MEASURES.map((m) => v.on[m]!.toFixed(2)).join(', ')}`);
  lines.push('', `load average (1, 5, 15 min): start ${r.load.start.map((l) => l.toFixed(2)).join(', ')}; end ${(r.load.end ?? []).map((l) => l.toFixed(2)).join(', ')}`);
  const same = r.plain[0]!;
  const cross = r.plain[1]!;
  lines.push(`goal: same-node RR p50 ≥ 20% lower: ${((1 - same.ratio.rrP50) * 100).toFixed(0)}% lower (${same.ratio.rrP50 <= 0.8 ? 'met' : 'not met'}); cross-node throughput no lower: ratio ${cross.ratio.gbit.toFixed(2)} (${cross.ratio.gbit >= 0.97 ? 'met' : 'not met'})`);
  process.stdout.write(`${lines.join('\n')}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`fastpath bench: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
