// Benchmark: the iptables service proxy's rule sync at 1,000 and 10,000 services × 10 endpoints
// (ClusterIP, TCP, IPv4): the first full sync, an idle re-apply and a one-endpoint change both as
// partial syncs (from the proxy's record, no iptables-save) and as full read-and-compare syncs (the
// hourly one; before partial syncs, every apply was one), clean-up, and how much of it is the pure
// rule generation. iptables-save runs are counted per step. The host's iptables backend first (the one the
// agent uses), then the other one when installed, for comparison. Needs root; everything happens
// in a network namespace of its own, removed afterwards.
// Run: node --import tsx bench/iptables-services.ts   (prints a table, writes bench/results/iptables-services.json)
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { type BackendKind, type CommandRunner, detectIptablesBackend, iptablesBackend } from '../src/dataplane/iptables/backend.js';
import { FULL_SYNC_PERIOD_MS } from '../src/dataplane/iptables/chains.js';
import { computeServiceRules, IptablesServiceProxy } from '../src/dataplane/service-iptables/index.js';
import { runCommand } from '../src/host/command.js';
import { createNetns, deleteNetns } from '../src/host/netns.js';
import { parseCidr, type Ip } from '../src/model/ip.js';
import type { ServiceBackend, ServiceMap, ServicePort } from '../src/model/service.js';
import { ServiceChangeTracker } from '../src/services/changes.js';

const SIZES = [1_000, 10_000];
const ENDPOINTS = 10;
/** One-endpoint changes timed at the largest size; the median is reported. */
const CHANGES = 3;

const v4 = (value: number): Ip => ({ family: 4, value: BigInt(value >>> 0) });
const CLUSTER_IPS = 0x0a600000; // 10.96.0.0
const POD_IPS = 0x0a800000; // 10.128.0.0

function servicePort(i: number, endpointShift = 0): ServicePort {
  const endpoints: ServiceBackend[] = Array.from({ length: ENDPOINTS }, (_, j) => ({
    ip: v4(POD_IPS + i * ENDPOINTS + j + endpointShift),
    port: 8080,
    // This node holds one endpoint in 1,000 (100 pods at 10,000 services): only those get chains.
    local: (i * ENDPOINTS + j) % 1000 === 0,
  }));
  return {
    service: `bench/svc-${String(i).padStart(5, '0')}`,
    portName: 'http',
    protocol: 'TCP',
    clusterIPs: [v4(CLUSTER_IPS + 1 + i)],
    port: 80,
    externalIPs: [],
    loadBalancerIPs: [],
    loadBalancerSourceRanges: [],
    externalPolicyLocal: false,
    internalPolicyLocal: false,
    clusterEndpoints: endpoints,
    internalEndpoints: endpoints,
    externalEndpoints: endpoints,
  };
}

function serviceMap(services: number): ServiceMap {
  return {
    node: 'bench',
    nodePortAddresses: [v4(0xac1f000b)],
    clusterCIDRs: [parseCidr('10.128.0.0/12')],
    servicePorts: Array.from({ length: services }, (_, i) => servicePort(i)),
  };
}

/** The same map with one endpoint of one service replaced by a new address. */
function withOneEndpointChanged(map: ServiceMap, round: number): ServiceMap {
  const ports = [...map.servicePorts];
  const i = Math.floor(ports.length / 2);
  const old = ports[i]!;
  const moved = { ...old.clusterEndpoints[0]!, ip: v4(0x0ac00000 + round) }; // 10.192.0.x: unused elsewhere
  const endpoints = [moved, ...old.clusterEndpoints.slice(1)];
  ports[i] = { ...old, clusterEndpoints: endpoints, internalEndpoints: endpoints, externalEndpoints: endpoints };
  return { ...map, servicePorts: ports };
}

async function timed<T>(what: string, work: () => Promise<T> | T): Promise<{ ms: number; value: T }> {
  const start = performance.now();
  const value = await work();
  const ms = performance.now() - start;
  process.stderr.write(`  ${what}: ${ms.toFixed(0)} ms\n`);
  return { ms, value };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/** A step's time, restore calls (and the time in them) and iptables-save runs. */
interface Step {
  ms: number;
  restores: number;
  restoreMs: number;
  saves: number;
}

interface SizeResult {
  backend: BackendKind;
  services: number;
  endpointsPerService: number;
  chains: number;
  rules: number;
  generateMs: number;
  fullSyncMs: number;
  /** The same map again: partial (nothing read) and full (read and compared). */
  idlePartial: Step;
  idleFull: Step;
  /** Median of CHANGES one-endpoint changes each, partial and full. */
  oneEndpointPartial?: Step;
  oneEndpointFull?: Step;
  oneEndpointChangeRestoreLines?: number;
  cleanupMs: number;
}

async function benchSize(netns: string, backend: BackendKind, services: number): Promise<SizeResult> {
  const map = serviceMap(services);
  const generated = await timed(`${services} services: generate`, () => computeServiceRules(map));
  const v4Rules = generated.value[4]!;
  let saves = 0;
  let restoreMs = 0;
  const run: CommandRunner = async (file, args, opts) => {
    if (file.endsWith('-save')) saves += 1;
    const started = performance.now();
    try {
      return await runCommand(file, args, opts);
    } finally {
      if (file.endsWith('-restore')) restoreMs += performance.now() - started;
    }
  };
  // The bench's clock: moved on by the full-sync period to make the next apply a full one.
  let clock = 0;
  const proxy = new IptablesServiceProxy({ netns, backend: iptablesBackend(backend), run, now: () => clock });
  // As the agent applies: through the proxy's change tracker (its comparison is timed too).
  const tracker = new ServiceChangeTracker();
  const step = async (what: string, next: ServiceMap, sync: 'full' | 'partial'): Promise<Step & { lines: number }> => {
    if (sync === 'full') clock += FULL_SYNC_PERIOD_MS;
    const [before, restoreBefore] = [saves, restoreMs];
    const { ms, value } = await timed(`${services} services: ${what} (${backend}, ${sync})`, () => tracker.track(next, (changes) => proxy.apply(changes)));
    if (value.sync !== sync) throw new Error(`${what}: expected a ${sync} sync, got ${value.sync}`);
    return { ms, restores: value.written, restoreMs: restoreMs - restoreBefore, saves: saves - before, lines: value.restores.reduce((n, r) => n + r.input.split('\n').length - 1, 0) };
  };
  const medianStep = (steps: Step[]): Step => ({
    ms: median(steps.map((x) => x.ms)),
    restores: Math.max(...steps.map((x) => x.restores)),
    restoreMs: median(steps.map((x) => x.restoreMs)),
    saves: Math.max(...steps.map((x) => x.saves)),
  });
  try {
    const full = await step('first sync', map, 'full');
    if (full.restores !== 1) throw new Error(`full sync: expected one restore, got ${full.restores}`);
    const idlePartial = await step('idle apply', map, 'partial');
    const idleFull = await step('idle apply', map, 'full');
    const result: SizeResult = {
      backend,
      services,
      endpointsPerService: ENDPOINTS,
      chains: v4Rules.chains.length,
      rules: v4Rules.chains.reduce((n, c) => n + c.rules.length, 0) + v4Rules.jumps.length,
      generateMs: generated.ms,
      fullSyncMs: full.ms,
      idlePartial,
      idleFull,
      cleanupMs: 0,
    };
    if (services === SIZES[SIZES.length - 1]) {
      const partial: Step[] = [];
      const fullChanges: Step[] = [];
      for (let round = 1; round <= 2 * CHANGES; round++) {
        // Alternating, so that both kinds see the same load on this shared machine.
        const sync = round % 2 === 1 ? 'partial' : 'full';
        const change = await step('one-endpoint change', withOneEndpointChanged(map, round), sync);
        if (change.restores !== 1) throw new Error(`one-endpoint change: expected one restore, got ${change.restores}`);
        (sync === 'partial' ? partial : fullChanges).push(change);
        if (sync === 'partial') result.oneEndpointChangeRestoreLines = change.lines;
      }
      result.oneEndpointPartial = medianStep(partial);
      result.oneEndpointFull = medianStep(fullChanges);
    }
    result.cleanupMs = (await timed(`${services} services: clean-up (${backend})`, () => proxy.cleanup())).ms;
    return result;
  } catch (err) {
    await proxy.cleanup().catch(() => undefined);
    throw err;
  }
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('bench/iptables-services.ts needs root (it creates a network namespace)');
  const netns = `wl-bench-svc-${process.pid}`;
  const removeNetns = () => deleteNetns([netns]).catch(() => undefined);
  const onSignal = () => void removeNetns().then(() => process.exit(130));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  await createNetns([netns]);
  const results: SizeResult[] = [];
  let hostBackend: BackendKind | undefined;
  try {
    hostBackend = (await detectIptablesBackend(runCommand, netns)).kind;
    const other: BackendKind = hostBackend === 'nft' ? 'legacy' : 'nft';
    const otherInstalled = await runCommand(iptablesBackend(other).save[4], ['--version'], { allowFailure: true }).then((r) => r.exitCode === 0, () => false);
    for (const backend of otherInstalled ? [hostBackend, other] : [hostBackend]) {
      for (const services of SIZES) results.push(await benchSize(netns, backend, services));
    }
  } finally {
    await removeNetns();
  }

  const s = (ms: number | undefined) => (ms === undefined ? '-' : ms < 1000 ? `${ms.toFixed(0)} ms` : `${(ms / 1000).toFixed(2)} s`);
  const cell = (x: Step | undefined) => (x === undefined ? '-' : `${s(x.ms)} (${x.restores} restores${x.restores > 0 ? ` ${s(x.restoreMs)}` : ''}, ${x.saves} saves)`);
  const rows = [
    ['backend', 'services × endpoints', 'chains', 'rules', 'generate', 'first sync', 'idle: partial', 'idle: full', '1-endpoint: partial', '1-endpoint: full', 'clean-up'],
    ...results.map((r) => [
      `${r.backend}${r.backend === hostBackend ? ' (host)' : ''}`,
      `${r.services.toLocaleString('en')} × ${r.endpointsPerService}`,
      r.chains.toLocaleString('en'),
      r.rules.toLocaleString('en'),
      s(r.generateMs),
      s(r.fullSyncMs),
      cell(r.idlePartial),
      cell(r.idleFull),
      r.oneEndpointPartial === undefined ? '-' : `${cell(r.oneEndpointPartial)} ${r.oneEndpointChangeRestoreLines} lines`,
      cell(r.oneEndpointFull),
      s(r.cleanupMs),
    ]),
  ];
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  process.stdout.write('iptables service proxy, ClusterIP TCP, IPv4, 1 endpoint in 1,000 on this node\n');
  for (const row of rows) process.stdout.write(`${row.map((cell, c) => cell.padEnd(widths[c]!)).join('  ')}\n`);

  const out = join(dirname(fileURLToPath(import.meta.url)), 'results', 'iptables-services.json');
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify({ date: new Date().toISOString(), node: process.version, hostBackend, results }, null, 2)}\n`);
  process.stdout.write(`wrote ${out}\n`);
}

await main().catch((err: unknown) => {
  process.stderr.write(`bench/iptables-services.ts: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
