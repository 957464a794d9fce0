// Benchmark: the agent's memory and start-up at scale (issue 16, item 4). One real agent
// (`bin/wirelane.js agent`, as installed) in a sandbox node, with 10,000 Services × 10 endpoints and
// 1,000 Nodes (999 of them simulated, in 100 locations), per service mode and per source (a cluster
// file; the test API server of test/kube-apiserver, in this process). Per cell:
// - start → first complete sync: from the spawn to the agent's "services applied" (services run after
//   the mesh in the same reconcile, so the first sync is then complete);
// - RSS (/proc/PID/status VmRSS, sampled every 100 ms): steady = the median over an idle phase of
//   several resyncs, peak = VmHWM; idle after the first sync, then a churn run, then idle again;
// - growth under churn: the idle median after the churn against the one before it; with
//   --churn-rounds=N the churn runs N times, idle after each, so growth that stops (code compiled and
//   caches filled by the first changes) shows apart from growth that goes on.
// The churn compresses an hour of changes into `--churn-seconds` (default 180): each second 10
// EndpointSlice changes (an endpoint moved or its readiness flipped), one Service replaced (deleted
// with its slice, another created) and 4 Node status updates (a kubelet's heartbeat in the object).
// With the file source the whole file is rewritten once a second (an operator's or a sync job's
// `kubectl get > file`), so the agent sees each second's changes at once.
// The agent runs with --resync-period 5s: idle resyncs are what issue 16 found growing.
// Run: node --import tsx bench/agent-memory.ts [--modes=ebpf,iptables,userspace] [--sources=file,kubernetes]
//        [--churn-seconds=180] [--churn-rounds=1] [--idle-seconds=30] [--services=10000] [--nodes=1000] [--cli=OTHER/dist/cli/wirelane.js]
//        [--node-flags=--flag,--flag=value] [--agent-env=NAME=VALUE,NAME=VALUE (e.g. MALLOC_ARENA_MAX=2)] [--snapshots=DIR (heap snapshots after each idle phase, for where the memory goes)]
//        [--cpu-profile=DIR (the agent's CPU profiles from its start to its first complete sync and over the first idle phase, summarised; bench/agent-cpu-profile.mjs)]
// Prints a table and writes bench/results/agent-memory.json. Needs root (namespaces, cgroups, BPF).
import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { agentEnv, agentNodeFlags } from './agent-flags.js';
import { formatSummary, summariseProfiles } from './cpu-profiles.js';
import { type SpawnedProcess } from '../src/host/command.js';
import { AGENT_TOOLS } from '../src/sandbox/support.js';
import { sandboxUnsupportedReason } from '../src/sandbox/support.js';
import { createMeshCluster } from '../test/harness/mesh-cluster.js';
import type { KubeApiServer, KubeObject } from '../test/kube-apiserver/index.js';

type Mode = 'ebpf' | 'iptables' | 'userspace';
type SourceKind = 'file' | 'kubernetes';

interface Options {
  readonly modes: readonly Mode[];
  readonly sources: readonly SourceKind[];
  readonly services: number;
  readonly nodes: number;
  readonly churnSeconds: number;
  /** The churn run this many times, each followed by an idle phase. */
  readonly churnRounds: number;
  readonly idleSeconds: number;
  /** Another build's dist/cli/wirelane.js to run as the agent (the "before" of a change). */
  readonly cli?: string;
  /** More V8 flags for the agent, after the entry point's (to measure one before it goes in bin/wirelane.js). */
  readonly nodeFlags: readonly string[];
  /** More environment for the agent, after the entry point's (malloc tunables, to measure them before they go in it). */
  readonly agentEnv: Readonly<Record<string, string>>;
  /** A folder for heap snapshots of the agent after the first idle phase and after the churn's. */
  readonly snapshots?: string;
  /** A folder for CPU profiles of the agent up to its first complete sync (one subfolder per cell). */
  readonly cpuProfile?: string;
}

const ENDPOINTS = 10;
const LOCATIONS = 100;
const RESYNC = '5s';
const SAMPLE_MS = 100;
/** The first sync must come within this, or the cell is reported as failed. */
const FIRST_SYNC_TIMEOUT_MS = 300_000;
const GOALS = { steadyMiB: 150, peakMiB: 250, firstSyncS: 3 };

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const RESULTS = join(root, 'bench', 'results', 'agent-memory.json');
const ENTRY = join(root, 'bin', 'wirelane.js');
const PROFILER = join(root, 'bench', 'agent-cpu-profile.mjs');

// --- the cluster's objects -------------------------------------------------------------------------

const fakeNodeName = (i: number): string => `n-${String(i).padStart(4, '0')}`;
/** Simulated node i (1-based; 0 is the real node, 10.244.0.0/24): a /24 of its own. */
const podPrefix = (i: number): string => `10.${245 + (i >> 8)}.${i & 255}`;

function fakeNode(i: number): KubeObject {
  const key = randomBytes(32).toString('base64');
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name: fakeNodeName(i),
      labels: { 'topology.kubernetes.io/region': `loc-${i % LOCATIONS}`, 'kubernetes.io/hostname': fakeNodeName(i), 'kubernetes.io/os': 'linux' },
      annotations: {
        'wirelane.io/key': key,
        // On the sandbox's underlay but nobody's: handshakes to them go nowhere outside the sandbox.
        'wirelane.io/endpoint': `172.31.${100 + (i >> 8)}.${i & 255}:51820`,
        'wirelane.io/internal-ip': `172.31.${100 + (i >> 8)}.${i & 255}/16`,
        'node.alpha.kubernetes.io/ttl': '0',
      },
    },
    spec: { podCIDR: `${podPrefix(i)}.0/24`, podCIDRs: [`${podPrefix(i)}.0/24`] },
    status: nodeStatus(0),
  };
}

function nodeStatus(tick: number): Record<string, unknown> {
  const at = new Date(Date.UTC(2026, 11, 2) + tick * 1000).toISOString().replace(/\.\d+Z$/, 'Z');
  return {
    conditions: [
      { type: 'MemoryPressure', status: 'False', lastHeartbeatTime: at, lastTransitionTime: '2026-12-01T00:00:00Z', reason: 'KubeletHasSufficientMemory', message: 'kubelet has sufficient memory available' },
      { type: 'DiskPressure', status: 'False', lastHeartbeatTime: at, lastTransitionTime: '2026-12-01T00:00:00Z', reason: 'KubeletHasNoDiskPressure', message: 'kubelet has no disk pressure' },
      { type: 'Ready', status: 'True', lastHeartbeatTime: at, lastTransitionTime: '2026-12-01T00:00:00Z', reason: 'KubeletReady', message: 'kubelet is posting ready status' },
    ],
    nodeInfo: { kubeletVersion: 'v1.31.0', containerRuntimeVersion: 'containerd://1.7.0', osImage: 'Debian GNU/Linux 12 (bookworm)', architecture: 'amd64' },
  };
}

const serviceName = (i: number): string => `svc-${String(i).padStart(5, '0')}`;
const clusterIP = (i: number): string => `10.${96 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`;

/** What the API server's field managers leave on an object, as `kubectl get -o yaml` prints it. */
function managedFields(manager: string): unknown[] {
  return [{ manager, operation: 'Update', apiVersion: 'v1', time: '2026-12-01T00:00:00Z', fieldsType: 'FieldsV1', fieldsV1: { 'f:metadata': { 'f:labels': { '.': {}, 'f:app': {} } }, 'f:spec': { 'f:ports': {}, 'f:selector': {} } } }];
}

function service(i: number): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: serviceName(i), namespace: 'bench', labels: { app: serviceName(i) }, managedFields: managedFields('kubectl-client-side-apply') },
    // Cluster IPs from 10.96.0.1 on (10.96.0.0/12 holds a million).
    spec: { type: 'ClusterIP', clusterIP: clusterIP(i + 1), clusterIPs: [clusterIP(i + 1)], ipFamilies: ['IPv4'], ports: [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 8080 }], selector: { app: serviceName(i) }, sessionAffinity: 'None', internalTrafficPolicy: 'Cluster' },
    status: { loadBalancer: {} },
  };
}

function endpoint(node: number, j: number, ready: boolean): Record<string, unknown> {
  return { addresses: [`${podPrefix(node)}.${1 + j}`], conditions: { ready, serving: ready, terminating: false }, nodeName: fakeNodeName(node), targetRef: { kind: 'Pod', namespace: 'bench', name: `pod-${node}-${j}` } };
}

function slice(i: number, nodes: number, variant = 0): KubeObject {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      name: `${serviceName(i)}-abcde`,
      namespace: 'bench',
      labels: { 'kubernetes.io/service-name': serviceName(i), 'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io' },
      annotations: { 'endpoints.kubernetes.io/last-change-trigger-time': '2026-12-01T00:00:00Z' },
      managedFields: managedFields('kube-controller-manager'),
    },
    addressType: 'IPv4',
    ports: [{ name: 'http', protocol: 'TCP', port: 8080 }],
    endpoints: Array.from({ length: ENDPOINTS }, (_, j) => endpoint(1 + ((i * ENDPOINTS + j + variant) % (nodes - 1)), (i + j) % 200, !(variant % 2 === 1 && j === 0))),
  };
}

// --- the cluster, per source -----------------------------------------------------------------------

/** What the churn changes, whichever source holds the objects. */
interface ClusterObjects {
  replaceSlice(i: number, object: KubeObject): void;
  addService(i: number): void;
  removeService(i: number): void;
  updateNodeStatus(i: number, tick: number): void;
  /** Makes the changes so far visible to the agent (the file source: rewrites the file). */
  flush(): Promise<void>;
}

function apiObjects(api: KubeApiServer, nodes: number): ClusterObjects {
  const strip = (o: KubeObject): KubeObject => {
    const { apiVersion: _a, kind: _k, ...rest } = o;
    return rest as KubeObject;
  };
  return {
    replaceSlice: (_i, object) => void api.update('endpointslices', strip(object)),
    addService: (i) => {
      api.create('services', strip(service(i)));
      api.create('endpointslices', strip(slice(i, nodes)));
    },
    removeService: (i) => {
      api.delete('endpointslices', `${serviceName(i)}-abcde`, 'bench');
      api.delete('services', serviceName(i), 'bench');
    },
    updateNodeStatus: (i, tick) => {
      const current = api.get('nodes', fakeNodeName(i));
      if (current !== undefined) api.update('nodes', { ...current, status: nodeStatus(tick) });
    },
    flush: async () => {},
  };
}

// --- measuring ------------------------------------------------------------------------------------

interface Sample {
  readonly at: number;
  readonly rssKiB: number;
}

class RssSampler {
  readonly samples: Sample[] = [];
  hwmKiB = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly pid: number) {
    this.timer = setInterval(() => this.sample(), SAMPLE_MS);
  }

  private sample(): void {
    let status: string;
    try {
      status = readFileSync(`/proc/${this.pid}/status`, 'utf8');
    } catch {
      return; // exited
    }
    const rss = /VmRSS:\s+(\d+) kB/.exec(status);
    const hwm = /VmHWM:\s+(\d+) kB/.exec(status);
    if (rss) this.samples.push({ at: Date.now(), rssKiB: Number(rss[1]) });
    if (hwm) this.hwmKiB = Math.max(this.hwmKiB, Number(hwm[1]));
  }

  /** Median and maximum RSS between two instants. */
  between(from: number, to: number): { medianMiB: number; maxMiB: number } {
    const values = this.samples.filter((s) => s.at >= from && s.at <= to).map((s) => s.rssKiB).sort((a, b) => a - b);
    if (values.length === 0) return { medianMiB: NaN, maxMiB: NaN };
    return { medianMiB: mib(values[Math.floor(values.length / 2)]!), maxMiB: mib(values.at(-1)!) };
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

const mib = (kib: number): number => Math.round((kib / 1024) * 10) / 10;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

interface Cell {
  readonly mode: Mode;
  readonly source: SourceKind;
  /** Seconds from the spawn to "services applied"; undefined when it never came. */
  readonly firstSyncS?: number;
  /**
   * The agent's CPU seconds (user + system) when "services applied" was seen (polled every 200 ms):
   * what the first sync cost whatever else the machine runs, where the wall time above depends on
   * the load.
   */
  readonly firstSyncCpuS?: number;
  readonly error?: string;
  /** `cpuPercent`: the agent's CPU over the phase (resyncs with nothing changed), what a flag trades memory for. */
  readonly idleBefore?: { medianMiB: number; maxMiB: number; cpuPercent: number };
  readonly churn?: { medianMiB: number; maxMiB: number; changes: number };
  /** After the last churn round. */
  readonly idleAfter?: { medianMiB: number; maxMiB: number; cpuPercent: number };
  /** The idle median after each churn round, in order. */
  readonly idleAfterRounds?: readonly number[];
  /**
   * The V8 heap (used of total) and memory outside it (Buffers), from the agent's metrics at the end
   * of each idle phase: RSS above the idle one with the same heap used is memory not given back, not
   * objects kept.
   */
  readonly heapBefore?: HeapFigures;
  readonly heapAfter?: HeapFigures;
  readonly peakMiB?: number;
  readonly clusterFileMiB?: number;
  /** The machine's 1-minute load average at the end of the cell. */
  readonly loadAverage?: number;
  /** Resyncs (service syncs) seen during the run, from the agent's metrics. */
  readonly serviceSyncs?: number;
}

interface HeapFigures {
  readonly usedMiB: number;
  readonly totalMiB: number;
  readonly externalMiB: number;
  /**
   * The RSS by kind at the same moment (/proc/PID/status): anonymous (V8's heap, malloc), file-backed
   * (code, and the BPF array maps the agent maps: their pages are the kernel's map memory, there
   * whether mapped or not), shared memory; `bpfMapsMiB` is the part of it in BPF map mappings.
   */
  readonly rss: { readonly anonMiB: number; readonly fileMiB: number; readonly shmemMiB: number; readonly bpfMapsMiB: number };
}

async function heapFigures(cluster: Awaited<ReturnType<typeof createMeshCluster>>['cluster'], pid: number): Promise<HeapFigures> {
  const metrics = await cluster.metrics('a');
  const of = (name: string): number => mib((metrics.get(name) ?? NaN) / 1024);
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string): number => mib(Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? NaN));
  return {
    usedMiB: of('nodejs_heap_size_used_bytes'),
    totalMiB: of('nodejs_heap_size_total_bytes'),
    externalMiB: of('nodejs_external_memory_bytes'),
    rss: { anonMiB: kib('RssAnon'), fileMiB: kib('RssFile'), shmemMiB: kib('RssShmem'), bpfMapsMiB: mib(bpfMapRssKiB(pid)) },
  };
}

/** Resident KiB of a process's mappings of BPF maps (/proc/PID/smaps: `anon_inode:bpf-map`). */
function bpfMapRssKiB(pid: number): number {
  let total = 0;
  let inMap = false;
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    if (/^[0-9a-f]+-[0-9a-f]+ /.test(line)) inMap = line.endsWith('anon_inode:bpf-map');
    else if (inMap && line.startsWith('Rss:')) total += Number(/(\d+) kB/.exec(line)?.[1] ?? 0);
  }
  return total;
}

/** User + system CPU seconds a process has used (/proc/PID/stat, fields 14 and 15, in clock ticks of 1/100 s). */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** The agent's CPU since `fromS` seconds of CPU at `fromMs`, in percent of one core. */
function cpuPercent(pid: number, fromS: number, fromMs: number): number {
  return Math.round(((cpuSeconds(pid) - fromS) / ((Date.now() - fromMs) / 1000)) * 1000) / 10;
}

const loadAverage = (): number => Math.round(loadavg()[0]! * 10) / 10;

/** The time (epoch ms) of the agent's first log line with this message, if any. */
function logTime(log: string, message: string): number | undefined {
  for (const line of log.split('\n')) {
    if (!line.includes(`"msg":"${message}"`)) continue;
    try {
      return (JSON.parse(line) as { time: number }).time;
    } catch {
      continue;
    }
  }
  return undefined;
}

async function cell(mode: Mode, source: SourceKind, opts: Options): Promise<Cell> {
  process.stdout.write(`${mode} / ${source}: building ${opts.nodes} nodes, ${opts.services} services…\n`);
  const started = await createMeshCluster({ nodes: [{ name: 'a', location: 'here' }], source });
  const { cluster, api } = started;
  let agent: SpawnedProcess | undefined;
  let sampler: RssSampler | undefined;
  let failed = true;
  try {
    const objects: ClusterObjects = await populate(cluster, api, opts);
    const clusterFileMiB = source === 'file' ? mib(statSync(cluster.clusterFile).size / 1024) : undefined;
    const spawnedAt = Date.now();
    // The installed entry point (its V8 flags), as the DaemonSet runs the agent; info: what an operator runs.
    const profileDir = opts.cpuProfile === undefined ? undefined : resolve(opts.cpuProfile, `${mode}-${source}`);
    const env = { ...agentEnv(), ...opts.agentEnv, ...(profileDir !== undefined && { WIRELANE_CPU_PROFILE_DIR: profileDir }) };
    const nodeFlags = [...agentNodeFlags(), ...opts.nodeFlags, ...snapshotFlags(opts), ...(profileDir === undefined ? [] : [`--import=${PROFILER}`])];
    agent = cluster.startAgent('a', ['--service-proxy', mode, '--resync-period', RESYNC, '--log-level', 'info'], { nodeFlags, env, ...(opts.cli !== undefined && { cli: opts.cli }) });
    sampler = new RssSampler(agent.pid);
    const deadline = spawnedAt + FIRST_SYNC_TIMEOUT_MS;
    let appliedAt: number | undefined;
    while (appliedAt === undefined && Date.now() < deadline && agent.exitCode === null) {
      await sleep(200);
      appliedAt = logTime(await cluster.log('a'), 'services applied');
    }
    if (appliedAt === undefined) {
      const why = agent.exitCode !== null ? `the agent exited (${agent.exitCode}) before` : `no "services applied" within ${FIRST_SYNC_TIMEOUT_MS / 1000} s`;
      throw new Error(`${why}; log: ${cluster.logFile('a')}`);
    }
    const firstSyncCpuS = cpuSeconds(agent.pid);
    const firstSyncS = (appliedAt - spawnedAt) / 1000;
    if (profileDir !== undefined) {
      await writeProfile(agent, profileDir, 'first sync');
      // The idle phase's profile gets the folder to itself.
      mkdirSync(join(profileDir, 'first-sync'), { recursive: true });
      for (const f of readdirSync(profileDir).filter((f) => f.endsWith('.cpuprofile'))) renameSync(join(profileDir, f), join(profileDir, 'first-sync', f));
    }
    process.stdout.write(`  first sync ${firstSyncS.toFixed(1)} s (CPU ${firstSyncCpuS.toFixed(1)} s, load ${loadAverage()}); idle ${opts.idleSeconds} s…\n`);
    // A few resyncs settle the heap first (the first sync's garbage), then the idle phase is measured.
    await sleep(5_000);
    const idle1 = Date.now();
    const cpu1 = cpuSeconds(agent.pid);
    if (profileDir !== undefined) process.kill(agent.pid, 'SIGUSR2');
    await sleep(opts.idleSeconds * 1000);
    if (profileDir !== undefined) await writeProfile(agent, profileDir, 'idle (resyncs with nothing changed)');
    const idleBefore = { ...sampler.between(idle1, Date.now()), cpuPercent: cpuPercent(agent.pid, cpu1, idle1) };
    const heapBefore = await heapFigures(cluster, agent.pid);
    await snapshot(agent, opts);
    let churnStats: NonNullable<Cell['churn']> | undefined;
    let idleAfter: NonNullable<Cell['idleAfter']> | undefined;
    const idleAfterRounds: number[] = [];
    for (let round = 0; round < opts.churnRounds; round++) {
      process.stdout.write(`  idle: median ${idleAfter?.medianMiB ?? idleBefore.medianMiB} MiB; churn ${opts.churnSeconds} s…\n`);
      const churnFrom = Date.now();
      const changes = await churn(objects, opts, round);
      const stats = sampler.between(churnFrom, Date.now());
      churnStats = { medianMiB: Math.max(stats.medianMiB, churnStats?.medianMiB ?? 0), maxMiB: Math.max(stats.maxMiB, churnStats?.maxMiB ?? 0), changes: changes + (churnStats?.changes ?? 0) };
      await sleep(5_000);
      const idle2 = Date.now();
      const cpu2 = cpuSeconds(agent.pid);
      await sleep(opts.idleSeconds * 1000);
      idleAfter = { ...sampler.between(idle2, Date.now()), cpuPercent: cpuPercent(agent.pid, cpu2, idle2) };
      idleAfterRounds.push(idleAfter.medianMiB);
    }
    const heapAfter = await heapFigures(cluster, agent.pid);
    await snapshot(agent, opts);
    const serviceSyncs = await syncCount(cluster, 'services');
    failed = false;
    const result: Cell = { mode, source, firstSyncS, firstSyncCpuS, loadAverage: loadAverage(), idleBefore, ...(churnStats && { churn: churnStats }), ...(idleAfter && { idleAfter, idleAfterRounds }), heapBefore, heapAfter, peakMiB: mib(sampler.hwmKiB), serviceSyncs, ...(clusterFileMiB !== undefined && { clusterFileMiB }) };
    process.stdout.write(`  ${JSON.stringify(result)}\n`);
    return result;
  } catch (err) {
    return { mode, source, error: err instanceof Error ? err.message : String(err), ...(sampler && { peakMiB: mib(sampler.hwmKiB) }) };
  } finally {
    sampler?.stop();
    if (failed) process.stderr.write(`${await cluster.logTails(20)}\n`);
    // The agent's log outlives the cluster's folder (e.g. with --node-flags=--trace-gc).
    mkdirSync(dirname(RESULTS), { recursive: true });
    copyFileSync(cluster.logFile('a'), join(dirname(RESULTS), `agent-memory-${mode}-${source}.log`));
    await started.destroy(false);
  }
}

/** The profiler writes its last profile on SIGUSR2 (bench/agent-cpu-profile.mjs); its summary is printed. */
async function writeProfile(agent: SpawnedProcess, dir: string, phase: string): Promise<void> {
  const count = (): number => readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')).length;
  const before = count();
  process.kill(agent.pid, 'SIGUSR2');
  const deadline = Date.now() + 30_000;
  while (count() === before && Date.now() < deadline) await sleep(200);
  await sleep(500); // written with one writeFileSync: whole once the next file check sees it
  const gaps = readdirSync(dir).filter((f) => f.endsWith('-unsampled.json')).map((f) => readFileSync(join(dir, f), 'utf8').trim());
  process.stdout.write(`  CPU profile (${phase}) in ${dir}\n${formatSummary(summariseProfiles(dir))}\nunsampled (the addon's probes):\n${gaps.join('\n')}\n`);
}

/** The agent writes a heap snapshot on SIGUSR2 into the folder (only with --snapshots). */
function snapshotFlags(opts: Options): string[] {
  return opts.snapshots === undefined ? [] : ['--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${opts.snapshots}`];
}

/** Asks for a snapshot and waits until the agent has written it (it stops the agent meanwhile). */
async function snapshot(agent: SpawnedProcess, opts: Options): Promise<void> {
  if (opts.snapshots === undefined) return;
  mkdirSync(opts.snapshots, { recursive: true });
  const files = (): string[] => readdirSync(opts.snapshots!).filter((f) => f.endsWith('.heapsnapshot'));
  const before = files().length;
  process.kill(agent.pid, 'SIGUSR2');
  const deadline = Date.now() + 120_000;
  while (files().length === before && Date.now() < deadline) await sleep(500);
  // The file appears (empty) before it is written: done when its size holds for two seconds.
  const file = join(opts.snapshots, files().sort().at(-1) ?? '');
  let size = -1;
  while (Date.now() < deadline && (size <= 0 || statSync(file).size !== size)) {
    size = statSync(file).size;
    await sleep(2_000);
  }
  process.stdout.write(`  heap snapshot in ${opts.snapshots}\n`);
}

async function syncCount(cluster: Awaited<ReturnType<typeof createMeshCluster>>['cluster'], loop: string): Promise<number | undefined> {
  const metrics = await cluster.metrics('a');
  return metrics.get(`wirelane_syncs_total{loop="${loop}",result="success"}`);
}

async function populate(cluster: Awaited<ReturnType<typeof createMeshCluster>>['cluster'], api: KubeApiServer | undefined, opts: Options): Promise<ClusterObjects> {
  const nodes = Array.from({ length: opts.nodes - 1 }, (_, k) => fakeNode(k + 1));
  const services = Array.from({ length: opts.services }, (_, i) => service(i));
  const slices = Array.from({ length: opts.services }, (_, i) => slice(i, opts.nodes));
  if (api !== undefined) {
    const strip = ({ apiVersion: _a, kind: _k, ...rest }: KubeObject): KubeObject => rest as KubeObject;
    for (const n of nodes) api.create('nodes', strip(n));
    for (const s of services) api.create('services', strip(s));
    for (const s of slices) api.create('endpointslices', strip(s));
    return apiObjects(api, opts.nodes);
  }
  // The file: the harness's own Node first, then everything else, one JSON document each, without
  // managedFields (kubectl prints none by default).
  for (const o of [...services, ...slices]) delete o.metadata.managedFields;
  const held = { nodes, services: new Map(services.map((s, i) => [i, s])), slices: new Map(slices.map((s, i) => [i, s])) };
  let base: Record<string, unknown>[] = [];
  await cluster.editClusterFile((objects) => {
    base = objects.slice();
    objects.push(...(nodes as unknown as Record<string, unknown>[]), ...(services as unknown as Record<string, unknown>[]), ...(slices as unknown as Record<string, unknown>[]));
  });
  return {
    replaceSlice: (i, object) => {
      delete object.metadata.managedFields;
      held.slices.set(i, object);
    },
    addService: (i) => {
      held.services.set(i, service(i));
      held.slices.set(i, slice(i, opts.nodes));
      delete held.services.get(i)!.metadata.managedFields;
      delete held.slices.get(i)!.metadata.managedFields;
    },
    removeService: (i) => {
      held.services.delete(i);
      held.slices.delete(i);
    },
    updateNodeStatus: (i, tick) => {
      const n = held.nodes[i - 1];
      if (n !== undefined) held.nodes[i - 1] = { ...n, status: nodeStatus(tick) };
    },
    flush: () =>
      cluster.editClusterFile((objects) => {
        objects.length = 0;
        objects.push(...base, ...([...held.nodes, ...held.services.values(), ...held.slices.values()] as unknown as Record<string, unknown>[]));
      }),
  };
}

/** The churn: each second 10 slice changes, one Service replaced, 4 Node status updates. Returns the count of object changes. */
/** `round`: rounds before this one (each goes on where the last stopped). */
async function churn(objects: ClusterObjects, opts: Options, round: number): Promise<number> {
  let changes = 0;
  let nextService = opts.services + round * opts.churnSeconds;
  let oldest = round * opts.churnSeconds;
  const start = Date.now();
  for (let tick = round * opts.churnSeconds + 1; tick <= (round + 1) * opts.churnSeconds; tick++) {
    for (let k = 0; k < 10; k++) {
      const i = (tick * 7919 + k * 104_729) % opts.services;
      if (i < oldest) continue; // replaced already
      objects.replaceSlice(i, slice(i, opts.nodes, tick));
      changes += 1;
    }
    objects.removeService(oldest++);
    objects.addService(nextService++);
    changes += 4;
    for (let k = 0; k < 4; k++) {
      objects.updateNodeStatus(1 + ((tick * 4 + k) % (opts.nodes - 1)), tick);
      changes += 1;
    }
    await objects.flush();
    const wait = start + (tick - round * opts.churnSeconds) * 1000 - Date.now();
    if (wait > 0) await sleep(wait);
  }
  return changes;
}

// --- output ---------------------------------------------------------------------------------------

function table(cells: readonly Cell[]): string {
  const rows = [['mode', 'source', 'first sync s (CPU s)', 'idle MiB (median/max)', 'churn MiB (median/max)', 'idle after MiB (median/max)', 'peak MiB (VmHWM)', 'heap used/total, external; RSS anon/file/shmem MiB (before → after churn)', 'load']];
  const pair = (p: { medianMiB: number; maxMiB: number } | undefined): string => (p ? `${p.medianMiB} / ${p.maxMiB}` : '-');
  // Several rounds: each round's median, then the last one's max.
  const afterRounds = (c: Cell): string =>
    (c.idleAfterRounds?.length ?? 0) > 1 && c.idleAfter ? `${c.idleAfterRounds!.join(', ')} / ${c.idleAfter.maxMiB}` : pair(c.idleAfter);
  const heap = (h: HeapFigures | undefined): string => (h ? `${h.usedMiB}/${h.totalMiB}, ${h.externalMiB}; ${h.rss.anonMiB}/${h.rss.fileMiB} (BPF maps ${h.rss.bpfMapsMiB})/${h.rss.shmemMiB}` : '-');
  for (const c of cells) {
    if (c.error !== undefined) {
      rows.push([c.mode, c.source, `failed: ${c.error}`, '', '', '', c.peakMiB !== undefined ? String(c.peakMiB) : '-', '', '']);
      continue;
    }
    rows.push([c.mode, c.source, `${c.firstSyncS!.toFixed(1)} (${c.firstSyncCpuS?.toFixed(1) ?? '-'})`, pair(c.idleBefore), pair(c.churn), afterRounds(c), String(c.peakMiB), `${heap(c.heapBefore)} → ${heap(c.heapAfter)}`, String(c.loadAverage ?? '-')]);
  }
  const widths = rows[0]!.map((_, k) => Math.max(...rows.map((r) => r[k]!.length)));
  return rows.map((r) => r.map((v, k) => v.padEnd(widths[k]!)).join('  ')).join('\n');
}

function parseOptions(argv: readonly string[]): Options {
  const value = (name: string): string | undefined => argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
  const list = <T extends string>(name: string, all: readonly T[]): T[] => {
    const v = value(name);
    if (v === undefined) return [...all];
    const picked = v.split(',') as T[];
    for (const p of picked) if (!all.includes(p)) throw new Error(`--${name}: ${p} is not one of ${all.join(', ')}`);
    return picked;
  };
  const int = (name: string, fallback: number): number => {
    const v = value(name);
    const n = v === undefined ? fallback : Number(v);
    if (!Number.isInteger(n) || n < 0) throw new Error(`--${name}: ${v} is not a whole number`);
    return n;
  };
  return {
    modes: list<Mode>('modes', ['ebpf', 'iptables', 'userspace']),
    sources: list<SourceKind>('sources', ['file', 'kubernetes']),
    services: int('services', 10_000),
    nodes: Math.max(2, int('nodes', 1000)),
    churnSeconds: int('churn-seconds', 180),
    churnRounds: Math.max(1, int('churn-rounds', 1)),
    idleSeconds: int('idle-seconds', 30),
    ...(value('cli') !== undefined && { cli: value('cli') }),
    nodeFlags: value('node-flags')?.split(',').filter((f) => f !== '') ?? [],
    agentEnv: Object.fromEntries((value('agent-env')?.split(',').filter((f) => f !== '') ?? []).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)])),
    ...(value('snapshots') !== undefined && { snapshots: value('snapshots') }),
    ...(value('cpu-profile') !== undefined && { cpuProfile: value('cpu-profile') }),
  };
}

async function main(opts: Options): Promise<void> {
  // Both answer SIGUSR2.
  if (opts.snapshots !== undefined && opts.cpuProfile !== undefined) throw new Error('--snapshots and --cpu-profile: one at a time');
  const unsupported = await sandboxUnsupportedReason([...AGENT_TOOLS, ['bpftool', ['version']]]);
  if (unsupported !== undefined) throw new Error(unsupported);
  const cells: Cell[] = [];
  for (const mode of opts.modes) {
    for (const source of opts.sources) {
      cells.push(await cell(mode, source, opts));
      save(cells, opts, true);
    }
  }
  process.stdout.write(`Agent memory and start-up, ${opts.services} services × ${ENDPOINTS} endpoints, ${opts.nodes} nodes, resync ${RESYNC}\n${table(cells)}\n`);
  process.stdout.write(`goals (ebpf): steady < ${GOALS.steadyMiB} MiB, peak < ${GOALS.peakMiB} MiB, first sync < ${GOALS.firstSyncS} s, no growth under churn\n`);
  save(cells, opts, false);
  process.stdout.write(`wrote ${RESULTS}\n`);
}

function save(cells: readonly Cell[], opts: Options, partial: boolean): void {
  mkdirSync(dirname(RESULTS), { recursive: true });
  const run = { date: new Date().toISOString(), node: process.version, entry: ENTRY, resync: RESYNC, endpointsPerService: ENDPOINTS, ...opts, cells, ...(partial && { partial: true }) };
  writeFileSync(RESULTS, `${JSON.stringify(run, null, 2)}\n`);
}

await main(parseOptions(process.argv.slice(2))).catch((err: unknown) => {
  process.stderr.write(`bench/agent-memory.ts: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
