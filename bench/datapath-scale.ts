// Benchmark: the service data paths at scale, against a direct connection, in one run. One sandbox
// node with two pods, a client and a backend (build/bench/wl-bench, C: its own cost must not be
// what is measured). For each mode (eBPF; iptables on the nft and on the legacy backend; userspace
// at the smaller sizes only) and each size (0, 1,000, 10,000 and 30,000 ClusterIP services × 10
// endpoints besides the measured one), a holder process inside the node programs the services with
// the real proxy (through a change tracker, as the agent applies them) and keeps them until told
// to clean up. The client then measures, alternately, the backend directly (through a router
// namespace without service machinery, see addDirectRouter) and through the measured Service:
// first-packet latency (`crr`: connect + one 16-byte request/response, p50 and p99), connections
// per second (the same runs) and latency on an established connection (`rr`, p50 and p99); and new
// connections through the node to the backend pod's own address ("other traffic"). Each figure is
// the median of the paired ratios ÷ direct, each pair back to back.
//
// The measured service sits in the middle of the list (a typical service's place in iptables'
// linear match), with the backend pod as its one endpoint; the others' endpoints are distinct
// unused addresses of the node's pod CIDR (300,000 at 30,000 services), so the eBPF proxy's backend
// table is sized for them (--backend-entries; its default holds 131,071).
// Programming runs at nice 19 (other work shares this machine), the measurements at the usual
// priority. On the nft backend the iptables rules are loaded in pieces (chunked-restore.ts: one
// restore of 30,000 services did not finish in 38 minutes); the kernel holds the same rules.
// Goal, reported and not asserted: eBPF within 5% of direct from 0 to 30,000 services.
// Writes bench/results/datapath-scale.json; a full run (no options) also writes its section of
// docs/benchmarks.md and docs/datapath-scale.svg (gnuplot, installed with apt-get when missing).
// Needs root. Programming 30,000 services into iptables on nft takes minutes.
// Run: node --import tsx bench/datapath-scale.ts [--modes=ebpf,iptables-nft] [--sizes=0,100] [--repeats=3] [--seconds=1]
//      node --import tsx bench/datapath-scale.ts --replot   (the chart and docs again from the last run's JSON)
//      node --import tsx bench/datapath-scale.ts --merge=A.json,B.json   (the docs' table with these runs' cells in place of the same mode and size)
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, setPriority, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { EBPF_MAP_SIZES } from '../src/agent/service-proxy-modes.js';
import { EbpfServiceProxy } from '../src/dataplane/ebpf/index.js';
import { type CommandRunner, iptablesBackend } from '../src/dataplane/iptables/backend.js';
import { IptablesServiceProxy } from '../src/dataplane/service-iptables/index.js';
import type { ServiceProxy } from '../src/dataplane/service-proxy.js';
import { UserspaceServiceProxy } from '../src/dataplane/userspace/index.js';
import { runCommand, type SpawnedProcess } from '../src/host/command.js';
import { type Ip, parseCidr, parseIp } from '../src/model/ip.js';
import type { ServiceBackend, ServiceMap, ServicePort } from '../src/model/service.js';
import { createLogger } from '../src/observability/logger.js';
import type { SandboxPod } from '../src/sandbox/index.js';
import { MeshCluster } from '../src/sandbox/mesh-cluster.js';
import { IPTABLES_TOOLS, sandboxUnsupportedReason } from '../src/sandbox/support.js';
import { applyMap } from '../test/support/apply-map.js';
import { servicePort } from '../test/support/service-map.js';
import { chunkedRestores } from './chunked-restore.js';

// In the order they run: iptables on nft last, as its 30,000 services take longest to program.
const MODES = ['ebpf', 'iptables-legacy', 'userspace', 'iptables-nft'] as const;
type Mode = (typeof MODES)[number];
/** Services besides the measured one; userspace holds a socket per service port, so only the smaller sizes. */
const SIZES: Readonly<Record<Mode, readonly number[]>> = {
  ebpf: [0, 1_000, 10_000, 30_000],
  'iptables-nft': [0, 1_000, 10_000, 30_000],
  'iptables-legacy': [0, 1_000, 10_000, 30_000],
  userspace: [0, 1_000],
};
const ENDPOINTS = 10;
/** Programming's niceness: other sessions share this 2-core machine. */
const PROGRAMMING_NICE = 19;
const REPEATS = 5;
const SECONDS = 2;
const EBPF_GOAL = 0.05;

const POD_CIDR = '10.128.0.0/12';
const UNUSED_PODS = 0x0a810000; // 10.129.0.0: past the sandbox's pods, inside the node's pod CIDR
const CLUSTER_IPS = 0x0a600000; // 10.96.0.0
const SERVICE_IP = '10.100.0.1';
const SERVICE_PORT = 80;
const BACKEND_PORT = 7000;
/** A holder removes 30,000 services' rules on SIGTERM: give it time before SIGKILL. */
const HOLDER_GRACE_MS = 10 * 60_000;

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const CLIENT = join(root, 'build', 'bench', 'wl-bench');
const DOC = join(root, 'docs', 'benchmarks.md');
const CHART = join(root, 'docs', 'datapath-scale.svg');
const RESULTS = join(root, 'bench', 'results', 'datapath-scale.json');
const DOC_BEGIN = '<!-- datapath-scale: begin (written by bench/datapath-scale.ts) -->';
const DOC_END = '<!-- datapath-scale: end -->';

const v4 = (value: number): Ip => ({ family: 4, value: BigInt(value >>> 0) });
const median = (values: readonly number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const progress = (line: string) => process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${line}\n`);

/** A ClusterIP TCP port whose endpoints serve every kind of traffic. */
function clusterIPPort(service: string, clusterIP: Ip, port: number, endpoints: ServiceBackend[]): ServicePort {
  return servicePort({ service, portName: 'tcp', clusterIPs: [clusterIP], port, clusterEndpoints: endpoints, internalEndpoints: endpoints, externalEndpoints: endpoints });
}

/** `services` services × ENDPOINTS distinct unused endpoints, and the measured one (to `backend`) in the middle. */
function serviceMap(services: number, backend: Ip): ServiceMap {
  const ports = Array.from({ length: services }, (_, i) => {
    const endpoints = Array.from({ length: ENDPOINTS }, (_, j) => ({ ip: v4(UNUSED_PODS + i * ENDPOINTS + j), port: 8080, local: false }));
    return clusterIPPort(`bench/svc-${String(i).padStart(5, '0')}`, v4(CLUSTER_IPS + 1 + i), 80, endpoints);
  });
  const measured = clusterIPPort('bench/measured', parseIp(SERVICE_IP), SERVICE_PORT, [{ ip: backend, port: BACKEND_PORT, local: true }]);
  ports.splice(Math.floor(services / 2), 0, measured);
  return { node: 'a', nodePortAddresses: [], clusterCIDRs: [parseCidr(POD_CIDR)], servicePorts: ports };
}

/** What a holder process is told (one JSON argument). */
interface HoldSpec {
  readonly mode: Mode;
  readonly services: number;
  readonly backendIp: string;
  /** userspace: the node's address, for host portals. */
  readonly hostIp: string;
  /** ebpf: pins and the cgroup the node's processes (the pods' too) run in. */
  readonly bpffsDir: string;
  readonly cgroupRoot: string;
  /** ebpf: wl_backends' size, the same for every size of the run (the largest one's endpoints). */
  readonly backendEntries: number;
  /** Written with {"programMs"} once the services are programmed. */
  readonly readyFile: string;
}

/**
 * The agent gives one iptables-restore 5 minutes (dataplane/iptables/chains.ts); 30,000 services
 * on the nft backend of a loaded 2-core machine can take longer, and a bench may wait.
 */
const untimedCommand: CommandRunner = (file, args, opts) => runCommand(file, args, { ...opts, timeoutMs: Infinity });

async function openProxy(spec: HoldSpec): Promise<ServiceProxy> {
  const log = createLogger('warn');
  switch (spec.mode) {
    case 'ebpf':
      return EbpfServiceProxy.open({ bpffsDir: spec.bpffsDir, cgroupRoot: spec.cgroupRoot, nodePort: { enabled: false, interfaces: [] }, log, sizes: { backendEntries: spec.backendEntries } });
    case 'iptables-nft':
      return new IptablesServiceProxy({ backend: iptablesBackend('nft'), run: chunkedRestores(untimedCommand) });
    case 'iptables-legacy':
      return new IptablesServiceProxy({ backend: iptablesBackend('legacy'), run: untimedCommand });
    case 'userspace':
      return new UserspaceServiceProxy({ hostAddress: parseIp(spec.hostIp), log });
  }
}

/**
 * The holder, inside the node's namespace and cgroup (the userspace proxy's sockets live in the
 * namespace of the process that opens them): programs the services and keeps them until SIGTERM,
 * then cleans up.
 */
async function hold(spec: HoldSpec): Promise<void> {
  const map = serviceMap(spec.services, parseIp(spec.backendIp));
  // The commands it runs (iptables-restore) inherit it.
  setPriority(PROGRAMMING_NICE);
  const proxy = await openProxy(spec);
  const start = performance.now();
  const applied = applyMap(proxy, map).then((report) => {
    const unfit = Object.entries(report.unfit ?? {}).filter(([, n]) => n > 0);
    if (unfit.length > 0) throw new Error(`${spec.mode}: frontends without room, by table: ${unfit.map(([table, n]) => `${table} ${n}`).join(', ')}`);
  });
  process.once('SIGTERM', () => {
    setPriority(PROGRAMMING_NICE);
    void applied
      .catch(() => undefined)
      .then(() => proxy.cleanup())
      .then(
        () => process.exit(0),
        (err: unknown) => {
          process.stderr.write(`holder ${spec.mode}: clean-up failed: ${err instanceof Error ? err.message : String(err)}\n`);
          process.exit(1);
        },
      );
  });
  // Signal handlers alone do not keep Node running.
  setInterval(() => {}, 1 << 30);
  await applied;
  const programMs = performance.now() - start;
  // The userspace proxy forwards in this process: measured at the usual priority, like the kernel paths.
  setPriority(0);
  writeFileSync(spec.readyFile, JSON.stringify({ programMs }));
}

/**
 * The direct path: the client pod reaches the backend pod through a router namespace of the same
 * shape as the node (one forwarding hop between veths) but with no service machinery. Through the
 * node itself it would not be a baseline: iptables mode walks its service rules for every new
 * connection that crosses the node, whatever its destination (measured separately as "other
 * traffic"). Named with the sandbox's prefix, so destroy() removes it with the rest.
 */
async function addDirectRouter(cluster: MeshCluster, client: SandboxPod, backend: SandboxPod): Promise<void> {
  const router = `${cluster.sandbox.prefix}direct`;
  const ip = (netns: string | undefined, args: string[]) => runCommand('ip', args, netns === undefined ? {} : { netns });
  await ip(undefined, ['netns', 'add', router]);
  await runCommand('sysctl', ['-q', '-w', 'net.ipv4.ip_forward=1'], { netns: router });
  await ip(router, ['link', 'set', 'lo', 'up']);
  for (const [i, pod] of [client, backend].entries()) {
    await ip(undefined, ['link', 'add', `d${i}`, 'netns', router, 'type', 'veth', 'peer', 'name', 'eth1', 'netns', pod.netns]);
    await ip(router, ['addr', 'add', `10.250.${i}.1/30`, 'dev', `d${i}`]);
    await ip(router, ['link', 'set', `d${i}`, 'up']);
    await ip(pod.netns, ['addr', 'add', `10.250.${i}.2/30`, 'dev', 'eth1']);
    await ip(pod.netns, ['link', 'set', 'eth1', 'up']);
    await ip(pod.netns, ['route', 'add', `10.250.${1 - i}.0/30`, 'via', `10.250.${i}.1`]);
  }
}
const DIRECT_IP = '10.250.1.2';

interface Run {
  readonly perSecond: number;
  readonly p50Us: number;
  readonly p99Us: number;
}

/** The C client in the client pod: one run of `kind` against host:port. */
async function client(cluster: MeshCluster, pod: SandboxPod, kind: 'crr' | 'rr', host: string, port: number, seconds: number): Promise<Run> {
  const r = await cluster.sandbox.exec(pod, CLIENT, [kind, host, String(port), String(seconds)], { allowFailure: true });
  if (r.exitCode !== 0) throw new Error(`wl-bench ${kind} ${host}:${port}: ${r.stderr.trim() || `exit ${r.exitCode}`}`);
  return JSON.parse(r.stdout) as Run;
}

/** Ratios service ÷ direct (higher is better for perSecond, lower for latencies). */
interface Figures {
  readonly crrP50: number;
  readonly crrP99: number;
  readonly perSecond: number;
  readonly rrP50: number;
  readonly rrP99: number;
}

interface Cell {
  readonly mode: Mode;
  readonly services: number;
  readonly programMs: number;
  /** Medians of the direct runs. */
  readonly direct: Figures;
  /** Medians of the service runs. */
  readonly service: Figures;
  /** Medians of the paired ratios service ÷ direct. */
  readonly ratios: Figures;
  /** New connections through the node to the backend pod's own address (no service), ÷ direct. */
  readonly otherTraffic: Pick<Figures, 'crrP50' | 'crrP99' | 'perSecond'>;
  /** A cell carried over from an earlier run's table (--merge): that run's date; its figures beyond the table's are NaN. */
  readonly carriedFrom?: string;
}

/** One round: direct and service back to back, then a connection through the node that is not to a service. */
interface Pair {
  readonly direct: Figures;
  readonly service: Figures;
  readonly throughNode: Run;
}

interface Options {
  readonly modes: readonly Mode[];
  readonly sizes: ((mode: Mode) => readonly number[]);
  readonly repeats: number;
  readonly seconds: number;
  /** No option given: the run the docs show. */
  readonly full: boolean;
}

async function until(what: string, check: () => Promise<boolean>, child?: SpawnedProcess): Promise<void> {
  for (let i = 0; !(await check()); i++) {
    if (child !== undefined && child.exitCode !== null) throw new Error(`${what}: the holder exited with ${child.exitCode}`);
    if (child === undefined && i > 100) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function cell(cluster: MeshCluster, mode: Mode, services: number, opts: Options): Promise<Cell> {
  const { sandbox } = cluster;
  const node = sandbox.node('a');
  const [backend, pod] = node.pods as [SandboxPod, SandboxPod];
  const dir = mkdtempSync(join(tmpdir(), 'wl-bench-scale-'));
  const spec: HoldSpec = {
    mode,
    services,
    backendIp: backend.ip,
    hostIp: node.underlayIP,
    bpffsDir: join(cluster.bpffs, 'a'),
    cgroupRoot: sandbox.visibleCgroupOf('a') as string,
    backendEntries: Math.max(EBPF_MAP_SIZES.backendEntries, Math.max(...opts.sizes('ebpf')) * ENDPOINTS + 1),
    readyFile: join(dir, 'ready'),
  };
  progress(`${mode}, ${services.toLocaleString('en')} services: programming`);
  const holder = sandbox.spawn(node, process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), '--hold', JSON.stringify(spec)], { stdout: 'inherit', stderr: 'inherit' });
  try {
    const started = Date.now();
    let told = started;
    await until(`${mode}: programming ${services} services`, async () => {
      if (Date.now() - told >= 30_000) {
        told = Date.now();
        progress(`${mode}, ${services.toLocaleString('en')} services: still programming (${Math.round((told - started) / 1000)} s)`);
      }
      return existsSync(spec.readyFile);
    }, holder);
    const { programMs } = JSON.parse(readFileSync(spec.readyFile, 'utf8')) as { programMs: number };
    progress(`${mode}, ${services.toLocaleString('en')} services: programmed in ${(programMs / 1000).toFixed(1)} s; measuring`);
    await until(`${mode}: the service to answer`, async () => (await sandbox.exec(pod, CLIENT, ['crr', SERVICE_IP, String(SERVICE_PORT), '0.1'], { allowFailure: true })).exitCode === 0);
    const pairs: Pair[] = [];
    for (let i = 0; i < opts.repeats; i++) {
      const figures = async (host: string, port: number): Promise<Figures> => {
        const crr = await client(cluster, pod, 'crr', host, port, opts.seconds);
        const rr = await client(cluster, pod, 'rr', host, port, opts.seconds);
        return { crrP50: crr.p50Us, crrP99: crr.p99Us, perSecond: crr.perSecond, rrP50: rr.p50Us, rrP99: rr.p99Us };
      };
      const direct = await figures(DIRECT_IP, BACKEND_PORT);
      const service = await figures(SERVICE_IP, SERVICE_PORT);
      pairs.push({ direct, service, throughNode: await client(cluster, pod, 'crr', backend.ip, BACKEND_PORT, opts.seconds) });
    }
    const medians = (value: (p: Pair) => Figures): Figures => {
      const field = (f: keyof Figures) => median(pairs.map((p) => value(p)[f]));
      return { crrP50: field('crrP50'), crrP99: field('crrP99'), perSecond: field('perSecond'), rrP50: field('rrP50'), rrP99: field('rrP99') };
    };
    const ratio = (a: Figures, b: Figures): Figures => ({ crrP50: a.crrP50 / b.crrP50, crrP99: a.crrP99 / b.crrP99, perSecond: a.perSecond / b.perSecond, rrP50: a.rrP50 / b.rrP50, rrP99: a.rrP99 / b.rrP99 });
    const result: Cell = {
      mode,
      services,
      programMs,
      direct: medians((p) => p.direct),
      service: medians((p) => p.service),
      ratios: medians((p) => ratio(p.service, p.direct)),
      otherTraffic: {
        crrP50: median(pairs.map((p) => p.throughNode.p50Us / p.direct.crrP50)),
        crrP99: median(pairs.map((p) => p.throughNode.p99Us / p.direct.crrP99)),
        perSecond: median(pairs.map((p) => p.throughNode.perSecond / p.direct.perSecond)),
      },
    };
    const r = result.ratios;
    progress(`${mode}, ${services.toLocaleString('en')} services: first packet p50 ${r.crrP50.toFixed(2)}, p99 ${r.crrP99.toFixed(2)}, connections/s ${r.perSecond.toFixed(2)}, rr p50 ${r.rrP50.toFixed(2)}, other traffic's first packet p50 ${result.otherTraffic.crrP50.toFixed(2)} (÷ direct); cleaning up`);
    return result;
  } finally {
    // A holder that exited on its own (a failed apply) has nothing left to stop.
    if (holder.exitCode === null) await sandbox.stop(holder, HOLDER_GRACE_MS);
    rmSync(dir, { recursive: true, force: true });
    if (holder.exitCode !== 0) throw new Error(`${mode}, ${services} services: the holder exited with ${holder.exitCode ?? holder.signalCode} (its error is above)`);
  }
}

function parseOptions(argv: readonly string[]): Options {
  const given = new Map<string, string>();
  for (const arg of argv) {
    const m = /^--(modes|sizes|repeats|seconds)=(.+)$/.exec(arg);
    if (m === null) throw new Error(`unknown argument ${arg} (see the usage at the top of bench/datapath-scale.ts)`);
    given.set(m[1]!, m[2]!);
  }
  const modes = (given.get('modes')?.split(',') ?? MODES) as Mode[];
  for (const mode of modes) if (!MODES.includes(mode)) throw new Error(`unknown mode ${mode} (one of ${MODES.join(', ')})`);
  const sizes = given.get('sizes')?.split(',').map(Number);
  if (sizes?.some((n) => !Number.isInteger(n) || n < 0 || n > 60_000)) throw new Error(`--sizes: whole numbers from 0 to 60,000`);
  const number = (name: string, fallback: number) => {
    const value = Number(given.get(name) ?? fallback);
    if (!(value > 0)) throw new Error(`--${name}: a positive number`);
    return value;
  };
  return { modes, sizes: (mode) => sizes ?? SIZES[mode], repeats: number('repeats', REPEATS), seconds: number('seconds', SECONDS), full: given.size === 0 };
}

const LABELS: Readonly<Record<Mode, string>> = { ebpf: 'eBPF', 'iptables-nft': 'iptables (nft)', 'iptables-legacy': 'iptables (legacy)', userspace: 'userspace' };

function table(cells: readonly Cell[]): string {
  const s = (ms: number) => (ms < 1000 ? `${ms.toFixed(0)} ms` : ms < 120_000 ? `${(ms / 1000).toFixed(1)} s` : `${(ms / 60_000).toFixed(1)} min`);
  const x = (v: number) => v.toFixed(2);
  const rows = [
    '| mode | services × 10 | programmed in | first packet p50 | p99 | connections/s | established p50 | p99 | other traffic: first packet p50 | p99 | first packet p50, µs: service (direct) |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...cells.map((c) =>
      `| ${LABELS[c.mode]}${c.carriedFrom === undefined ? '' : ' †'} | ${c.services.toLocaleString('en')} | ${s(c.programMs)} | ${x(c.ratios.crrP50)} | ${x(c.ratios.crrP99)} | ${x(c.ratios.perSecond)} | ${x(c.ratios.rrP50)} | ${x(c.ratios.rrP99)} | ${x(c.otherTraffic.crrP50)} | ${x(c.otherTraffic.crrP99)} | ${c.service.crrP50.toFixed(0)} (${c.direct.crrP50.toFixed(0)}) |`),
  ];
  return rows.join('\n');
}

/** The cells of the docs' table as table() wrote them, carried over from the run of `date` (--merge). */
function cellsOfTable(text: string, date: string): Cell[] {
  const byLabel = new Map(Object.entries(LABELS).map(([mode, label]) => [label, mode as Mode]));
  const ms = (t: string) => {
    const m = /^([\d.]+) (ms|s|min)$/.exec(t);
    if (m === null) throw new Error(`${DOC}: "${t}" is not a duration`);
    return Number(m[1]) * { ms: 1, s: 1000, min: 60_000 }[m[2] as 'ms' | 's' | 'min'];
  };
  const cells: Cell[] = [];
  for (const line of text.split('\n')) {
    const f = line.split('|').slice(1, -1).map((c) => c.trim());
    const mode = byLabel.get((f[0] ?? '').replace(/ †$/, ''));
    if (f.length !== 11 || mode === undefined) continue;
    const [crrP50, crrP99, perSecond, rrP50, rrP99, otherP50, otherP99] = f.slice(3, 10).map(Number) as [number, number, number, number, number, number, number];
    const us = /^(\d+) \((\d+)\)$/.exec(f[10]!);
    const figures = (crr: number): Figures => ({ crrP50: crr, crrP99: NaN, perSecond: NaN, rrP50: NaN, rrP99: NaN });
    cells.push({
      mode,
      services: Number(f[1]!.replace(/,/g, '')),
      programMs: ms(f[2]!),
      direct: figures(Number(us?.[2])),
      service: figures(Number(us?.[1])),
      ratios: { crrP50, crrP99, perSecond, rrP50, rrP99 },
      otherTraffic: { crrP50: otherP50, crrP99: otherP99, perSecond: NaN },
      carriedFrom: date,
    });
  }
  return cells;
}

/**
 * --merge=A.json,B.json: the docs' table with the cells of these runs (bench/results JSON of runs
 * with options) in place of the same mode and size, the others carried over and marked. For a
 * session that re-measures only the cells a change touched.
 */
async function publishMerged(files: readonly string[]): Promise<void> {
  const runs = files.map((f) => JSON.parse(readFileSync(f, 'utf8')) as SavedRun);
  const text = readFileSync(DOC, 'utf8');
  const section = text.slice(text.indexOf(DOC_BEGIN), text.indexOf(DOC_END));
  const date = /Run of (\S+?)[ ,]/.exec(section)?.[1] ?? /carried over from the run of (\S+?)[ ,)]/.exec(section)?.[1];
  if (date === undefined) throw new Error(`${DOC}: the section names no run date`);
  const fresh = runs.flatMap((r) => r.cells);
  const key = (c: Cell) => `${c.mode} ${c.services}`;
  const kept = cellsOfTable(section, date).filter((c) => !fresh.some((f) => key(f) === key(c)));
  const cells = [...kept, ...fresh].sort((a, b) => MODES.indexOf(a.mode) - MODES.indexOf(b.mode) || a.services - b.services);
  await publish({ ...runs.at(-1)!, cells });
}

/** eBPF's worst ratio over every size, per measure: the goal is within EBPF_GOAL of direct. */
function ebpfVerdict(cells: readonly Cell[]): string | undefined {
  const ebpf = cells.filter((c) => c.mode === 'ebpf');
  if (ebpf.length === 0) return undefined;
  const latency = (name: string, value: (c: Cell) => number) => {
    const worst = Math.max(...ebpf.map(value));
    return `${name} ${worst <= 1 + EBPF_GOAL ? 'met' : 'NOT met'} (worst ${worst.toFixed(2)})`;
  };
  const rate = Math.min(...ebpf.map((c) => c.ratios.perSecond));
  return [
    `eBPF within ${EBPF_GOAL * 100}% of direct at every size: ${latency('first-packet p50', (c) => c.ratios.crrP50)}`,
    latency('established p50', (c) => c.ratios.rrP50),
    `connections/s ${rate >= 1 - EBPF_GOAL ? 'met' : 'NOT met'} (worst ${rate.toFixed(2)})`,
  ].join('; ');
}

/** gnuplot from Debian, installed as scripts/setup.mjs installs the project's packages. */
async function ensureGnuplot(): Promise<void> {
  if (existsSync('/usr/bin/gnuplot')) return;
  if (process.getuid?.() !== 0 || !existsSync('/usr/bin/apt-get')) throw new Error('gnuplot is missing (run as root on Debian to have it installed)');
  progress('installing gnuplot-nox');
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  await runCommand('apt-get', ['update', '-q'], { env, timeoutMs: 600_000 });
  await runCommand('apt-get', ['install', '-y', '-q', '--no-install-recommends', 'gnuplot-nox'], { env, timeoutMs: 600_000 });
}

/** Latency against service count, one line per mode: first-packet p50 and p99 as ratios to direct. */
async function chart(cells: readonly Cell[], date: string): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'wl-bench-chart-'));
  try {
    const modes = MODES.filter((m) => cells.some((c) => c.mode === m));
    for (const mode of modes) {
      const lines = cells.filter((c) => c.mode === mode).map((c) => `${c.services} ${c.ratios.crrP50} ${c.ratios.crrP99}`);
      writeFileSync(join(dir, `${mode}.dat`), `${lines.join('\n')}\n`);
    }
    const plot = (column: number) => `plot ${modes.map((m) => `'${join(dir, `${m}.dat`)}' using 1:${column} with linespoints title '${LABELS[m]}'`).join(', ')}, 1 with lines dashtype 2 lc rgb '#888888' title 'direct'`;
    const script = [
      `set terminal svg size 960,420 dynamic font 'sans,12' background '#ffffff'`,
      `set output '${CHART}'`,
      `set multiplot layout 1,2 title 'Service data paths: first-packet latency (connect + one request/response) ÷ direct, ${date}'`,
      `set xlabel 'ClusterIP services × 10 endpoints'`,
      `set format x '%.0s%c'`,
      `set xrange [0:*]`,
      // Log scale: userspace is tens of times direct, the kernel paths within a few.
      `set logscale y`,
      `set yrange [0.7:*]`,
      `set ytics (1, 1.5, 2, 3, 5, 10, 20, 50, 100, 200)`,
      `set ylabel 'service ÷ direct (log scale)'`,
      `set key top left`,
      `set grid`,
      `set title 'p50'`,
      plot(2),
      `set title 'p99'`,
      plot(3),
      `unset multiplot`,
    ].join('\n');
    await runCommand('gnuplot', [], { input: script });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A line on the cells --merge carried over from an earlier run, when there are any. */
function carriedNote(cells: readonly Cell[]): string[] {
  const carried = cells.filter((c) => c.carriedFrom !== undefined);
  if (carried.length === 0) return [];
  const dates = [...new Set(carried.map((c) => c.carriedFrom))].join(', ');
  return [`† Not measured in this run: carried over from the run of ${dates} (its figures as that run's table gave them).`];
}

/** Replaces this bench's section of docs/benchmarks.md (between its markers) with this run's. */
function writeDoc(run: SavedRun, date: string): void {
  const { cells } = run;
  const verdict = ebpfVerdict(cells);
  const section = [
    DOC_BEGIN,
    `Run of ${date} on this 2-core machine, ${run.repeats} pairs of ${run.seconds} s runs per path and size, ${
      run.load === undefined ? 'load not recorded' : `1-minute load average ${run.load.start.toFixed(1)} at the start and ${run.load.end.toFixed(1)} at the end`
    }:`,
    'a loaded machine (other work beside the bench) puts a few percent of noise in every ratio, more in p99.',
    'Ratios are service ÷ direct (lower is better for latency, higher for connections/s).',
    ...(run.partial === true ? ['**The run did not finish**: only the cells it measured are shown.'] : []),
    ...carriedNote(cells),
    '',
    table(cells),
    '',
    ...(verdict === undefined ? [] : [`${verdict}.`, '']),
    '![first-packet latency against service count, one line per mode](datapath-scale.svg)',
    DOC_END,
  ].join('\n');
  const text = readFileSync(DOC, 'utf8');
  const begin = text.indexOf(DOC_BEGIN);
  const end = text.indexOf(DOC_END);
  if (begin < 0 || end < begin) throw new Error(`${DOC}: no section markers for this bench`);
  writeFileSync(DOC, text.slice(0, begin) + section + text.slice(end + DOC_END.length));
}

async function main(opts: Options): Promise<void> {
  const unsupported = await sandboxUnsupportedReason([...IPTABLES_TOOLS, ['iptables-nft', ['-V']], ['iptables-legacy', ['-V']]]);
  if (unsupported !== undefined) throw new Error(unsupported);
  if (!existsSync(CLIENT)) throw new Error(`${CLIENT} is missing: run node scripts/setup.mjs`);
  // Early: a missing plotting tool should not be found after half an hour of measuring.
  if (opts.full) await ensureGnuplot();
  const cluster = await MeshCluster.create({ nodes: [{ name: 'a', location: 'here', pods: 2, podCIDR: POD_CIDR }], source: 'file' });
  const cells: Cell[] = [];
  try {
    const [backend, client] = cluster.sandbox.pods as [SandboxPod, SandboxPod];
    await addDirectRouter(cluster, client, backend);
    cluster.sandbox.spawn(backend, CLIENT, ['server', String(BACKEND_PORT)], { stdout: 'ignore', stderr: 'inherit' });
    await until('the backend', async () => (await cluster.sandbox.reaches(client, backend.ip, BACKEND_PORT, 500)) && cluster.sandbox.reaches(client, DIRECT_IP, BACKEND_PORT, 500));
    for (const mode of opts.modes) {
      for (const services of opts.sizes(mode)) {
        cells.push(await cell(cluster, mode, services, opts));
        // After every cell: a run that fails late keeps what it measured (see --replot).
        save({ ...savedRun(cells, opts), partial: true });
      }
    }
  } finally {
    await cluster.destroy();
  }
  const saved = savedRun(cells, opts);
  process.stdout.write(`Service data paths at scale against a direct connection (ratios ÷ direct)\n${table(cells)}\n`);
  const verdict = ebpfVerdict(cells);
  if (verdict !== undefined) process.stdout.write(`goal: ${verdict}\n`);
  save(saved);
  process.stdout.write(`wrote ${RESULTS}\n`);
  if (!opts.full) {
    process.stdout.write('not the full run (options given): docs/ left as they are\n');
    return;
  }
  await publish(saved);
}

interface SavedRun {
  readonly date: string;
  readonly node: string;
  readonly repeats: number;
  readonly seconds: number;
  readonly endpointsPerService: number;
  readonly cells: readonly Cell[];
  /** Written while running: the cells measured before the run ended (or failed). */
  readonly partial?: true;
  /** The 1-minute load average when the run started and ended: on a shared machine, the noise to expect. */
  readonly load?: { readonly start: number; readonly end: number };
}

const loadAtStart = loadavg()[0]!;

function savedRun(cells: readonly Cell[], opts: Options): SavedRun {
  const load = { start: loadAtStart, end: loadavg()[0]! };
  return { date: new Date().toISOString(), node: process.version, repeats: opts.repeats, seconds: opts.seconds, endpointsPerService: ENDPOINTS, cells, load };
}

function save(run: SavedRun): void {
  mkdirSync(dirname(RESULTS), { recursive: true });
  writeFileSync(RESULTS, `${JSON.stringify(run, null, 2)}\n`);
}

/** The chart and the docs' section from a run (`--replot`: from the last run's JSON, e.g. after changing the chart). */
async function publish(run: SavedRun): Promise<void> {
  await ensureGnuplot();
  const date = run.date.slice(0, 10);
  await chart(run.cells, date);
  writeDoc(run, date);
  process.stdout.write(`wrote ${CHART} and its section of ${DOC}\n`);
}

const name = 'bench/datapath-scale.ts';
const holdAt = process.argv.indexOf('--hold');
const work =
  holdAt >= 0
    ? hold(JSON.parse(process.argv[holdAt + 1]!) as HoldSpec)
    : process.argv.includes('--replot')
      ? publish(JSON.parse(readFileSync(RESULTS, 'utf8')) as SavedRun)
      : process.argv[2]?.startsWith('--merge=')
        ? publishMerged(process.argv[2].slice('--merge='.length).split(','))
        : main(parseOptions(process.argv.slice(2)));
await work.catch((err: unknown) => {
  process.stderr.write(`${name}${holdAt >= 0 ? ' (holder)' : ''}: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
