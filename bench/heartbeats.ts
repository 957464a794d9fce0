// Benchmark: what heartbeats cost each agent in watch deliveries, at 50, 200 and 1,000 nodes in
// locations of 10, for two designs:
// - annotations (before): every agent patches last-seen on its Node every half resync period and
//   watches every Node, so each heartbeat is delivered to every agent;
// - leases (now): node Leases watched by location, one segment Lease per location watched by all
//   (sources/lease.ts).
// A few real agents (the real KubernetesSource in-process: its reflectors, its NodeAnnotations
// publisher or LeaseHeartbeats) run among fake ones that write exactly what an agent writes, on the
// same cadence, and watch nothing (by symmetry every agent of a location receives the same). The test
// API server counts what its watches deliver per client (User-Agent). Time is compressed: a resync
// period of --resync (default 20 s) instead of 30 s; figures are per agent per resync period, and per
// minute at the default 30 s period (× 2).
// Run: node --import tsx bench/heartbeats.ts [--resync 20s] [--sizes 50,200,1000]
//      (prints a table, writes bench/results/heartbeats.json)
import { mkdirSync, writeFileSync } from 'node:fs';
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { durationFlag } from '../src/cli/flags.js';
import { createLogger } from '../src/observability/logger.js';
import { ANNOTATIONS, PREFIX } from '../src/sources/annotations.js';
import { loadKubeAccess } from '../src/sources/kubernetes/kube-access.js';
import { KubernetesSource } from '../src/sources/kubernetes/kubernetes-source.js';
import { DEFAULT_LEASE_NAMESPACE, leasesPath, nodeLease, nodeLeaseName, segmentLease, segmentLeaseName } from '../src/sources/lease.js';
import type { KubeObject } from '../src/sources/objects.js';
import { type KubeApiServer, type KubeObject as StoredObject, startKubeApiServer } from '../test/kube-apiserver/index.js';

type Design = 'annotations' | 'leases';

const { values } = parseArgs({ options: { resync: { type: 'string', default: '20s' }, sizes: { type: 'string', default: '50,200,1000' } } });
const RESYNC_MS = durationFlag('resync', values.resync ?? '20s');
const SIZES = (values.sizes ?? '').split(',').map(Number);
const PER_LOCATION = 10;
/** Real agents: the leader and a member of two locations. */
const REAL = ['node-0-0', 'node-0-1', 'node-1-0', 'node-1-1'];
const NS = DEFAULT_LEASE_NAMESPACE;
const log = createLogger('error');

const locationOf = (name: string): string => `loc-${name.split('-')[1]}`;
const isLeader = (name: string): boolean => name.endsWith('-0');

/** A Node as an agent leaves it: the labels and annotations it reads and writes (no kubelet status: real Nodes are larger). */
function nodeObject(i: number): StoredObject {
  const l = Math.floor(i / PER_LOCATION);
  const j = i % PER_LOCATION;
  const ip = `10.${100 + (l >> 8)}.${l & 255}.${j + 1}`;
  const key = Buffer.alloc(32, i % 251).toString('base64');
  return {
    metadata: {
      name: `node-${l}-${j}`,
      labels: { 'topology.kubernetes.io/region': `loc-${l}`, 'kubernetes.io/hostname': `node-${l}-${j}` },
      annotations: {
        [PREFIX + ANNOTATIONS.key]: key,
        [PREFIX + ANNOTATIONS.endpoint]: `${ip}:51820`,
        [PREFIX + ANNOTATIONS.internalIP]: `${ip}/24`,
        [PREFIX + ANNOTATIONS.granularity]: 'location',
        [PREFIX + ANNOTATIONS.lastSeen]: String(Math.floor(Date.now() / 1000)),
        ...(j === 0 && { [PREFIX + ANNOTATIONS.wireguardIP]: `10.4.${l >> 8}.${(l & 255) + 1}/16` }),
      },
    },
    spec: { podCIDR: `10.${i >> 8}.${i & 255}.0/24` },
  };
}

/** The fake agents' connections: a pool, as many agents behind one client would not open a thousand. */
const pool = new HttpAgent({ keepAlive: true, maxSockets: 32 });

class HttpStatusError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

function send(api: KubeApiServer, method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<KubeObject> {
  return new Promise((resolve, reject) => {
    const request = httpRequest(`${api.url}${path}`, { method, agent: pool, headers: { 'Content-Type': contentType } }, (response) => {
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (text += chunk));
      response.on('end', () => {
        const status = response.statusCode ?? 0;
        if (status >= 200 && status < 300) resolve(JSON.parse(text) as KubeObject);
        else reject(new HttpStatusError(status, `${method} ${path}: ${status}`));
      });
    });
    request.on('error', reject);
    request.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

/** A fake agent's heartbeat: the same request an agent of `design` makes (LeaseHeartbeats' too: a 409 or 404 re-reads once). */
function fakeHeartbeat(api: KubeApiServer, design: Design, name: string): () => Promise<void> {
  const written = new Map<string, KubeObject>();
  const putLease = async (build: (current: KubeObject | undefined) => KubeObject, leaseName: string): Promise<void> => {
    const put = (lease: KubeObject) =>
      lease.metadata?.resourceVersion === undefined ? send(api, 'POST', leasesPath(NS), lease) : send(api, 'PUT', `${leasesPath(NS)}/${leaseName}`, lease);
    let stored: KubeObject;
    try {
      stored = await put(build(written.get(leaseName)));
    } catch (err) {
      if (!(err instanceof HttpStatusError && (err.status === 409 || err.status === 404))) throw err;
      const fresh = await send(api, 'GET', `${leasesPath(NS)}/${leaseName}`).catch(() => undefined);
      stored = await put(build(fresh));
    }
    written.set(leaseName, stored);
  };
  let tick = 0;
  return async () => {
    const now = Date.now();
    if (design === 'annotations') {
      const patch = { metadata: { annotations: { [PREFIX + ANNOTATIONS.lastSeen]: String(Math.floor(now / 1000)) } } };
      await send(api, 'PATCH', `/api/v1/nodes/${name}`, patch, 'application/merge-patch+json');
      return;
    }
    const write = { namespace: NS, holder: name, location: locationOf(name), renewMs: now, durationSeconds: (2 * RESYNC_MS) / 1000 };
    await putLease((current) => nodeLease(write, current), nodeLeaseName(name));
    tick += 1;
    if (isLeader(name) && tick % 2 === 1) {
      const members = Array.from({ length: PER_LOCATION }, (_, j) => `node-${name.split('-')[1]}-${j}`);
      const key = `location:${locationOf(name)}`;
      await putLease((current) => segmentLease(write, key, members, current), segmentLeaseName(key));
    }
  };
}

interface Result {
  design: Design;
  nodes: number;
  locations: number;
  agents: number;
  eventsPerPeriod: number;
  bytesPerPeriod: number;
  maxEventsPerPeriod: number;
  eventsPerMinuteAt30s: number;
  bytesPerMinuteAt30s: number;
  writesPerPeriod: number;
}

async function run(design: Design, n: number): Promise<Result> {
  const api = await startKubeApiServer({ historyLimit: 50_000 });
  const dir = await mkdtemp(join(tmpdir(), 'wirelane-bench-heartbeats-'));
  const timers: NodeJS.Timeout[] = [];
  const sources: KubernetesSource[] = [];
  let stopping = false;
  try {
    for (let i = 0; i < n; i++) api.create('nodes', nodeObject(i));
    await api.writeKubeconfig(join(dir, 'kubeconfig'));
    const kubeconfig = await loadKubeAccess(join(dir, 'kubeconfig'));
    const names = Array.from({ length: n }, (_, i) => `node-${Math.floor(i / PER_LOCATION)}-${i % PER_LOCATION}`);
    const period = RESYNC_MS / 2;
    // The fake agents, their heartbeats spread evenly over the half period as independent agents' are.
    names.forEach((name, i) => {
      if (REAL.includes(name)) return;
      const beat = fakeHeartbeat(api, design, name);
      // One heartbeat at a time, as the agent's renewals: a slow one delays the next, never piles up.
      let busy = false;
      const tick = (): void => {
        if (busy) return;
        busy = true;
        void beat()
          .catch((err: Error) => stopping || process.stderr.write(`fake ${name}: ${err.message}\n`))
          .finally(() => (busy = false));
      };
      timers.push(setTimeout(() => {
        tick();
        timers.push(setInterval(tick, period));
      }, (period * i) / n));
    });
    // The real agents: the real source and its writer, on the agent's cadence.
    for (const name of REAL) {
      const source = new KubernetesSource(kubeconfig, log, false, {
        userAgent: `wirelane (node ${name})`,
        ...(design === 'leases' && { heartbeats: { namespace: NS, node: name, renewEveryMs: period, durationSeconds: (2 * RESYNC_MS) / 1000 } }),
      });
      sources.push(source);
      await source.start(() => {});
      if (design === 'leases') {
        source.heartbeats?.follow(locationOf(name));
        const members = Array.from({ length: PER_LOCATION }, (_, j) => `node-${name.split('-')[1]}-${j}`);
        source.heartbeats?.lead(isLeader(name) ? { key: `location:${locationOf(name)}`, location: locationOf(name), members } : undefined);
      } else {
        // As the agent did before Leases: last-seen in a merge patch every half resync period.
        const beat = (): void =>
          void source.publisher
            .publishNode(name, { [PREFIX + ANNOTATIONS.lastSeen]: String(Math.floor(Date.now() / 1000)) })
            .catch((err: Error) => stopping || process.stderr.write(`real ${name}: ${err.message}\n`));
        timers.push(setInterval(beat, period));
      }
    }
    await sleep(RESYNC_MS); // every heartbeat written once at least, every watch open
    api.resetDeliveries();
    const writesBefore = api.requestCount('patch') + api.requestCount('update');
    const measuredMs = 2 * RESYNC_MS;
    await sleep(measuredMs);
    const periods = measuredMs / RESYNC_MS;
    const delivered = REAL.map((name) => api.deliveries().get(`wirelane (node ${name})`) ?? { events: 0, bytes: 0, watches: 0 });
    const events = delivered.reduce((s, d) => s + d.events, 0) / REAL.length / periods;
    const bytes = delivered.reduce((s, d) => s + d.bytes, 0) / REAL.length / periods;
    return {
      design,
      nodes: n,
      locations: n / PER_LOCATION,
      agents: REAL.length,
      eventsPerPeriod: Math.round(events),
      bytesPerPeriod: Math.round(bytes),
      maxEventsPerPeriod: Math.round(Math.max(...delivered.map((d) => d.events)) / periods),
      eventsPerMinuteAt30s: Math.round(events * 2),
      bytesPerMinuteAt30s: Math.round(bytes * 2),
      writesPerPeriod: Math.round((api.requestCount('patch') + api.requestCount('update') - writesBefore) / periods),
    };
  } finally {
    stopping = true;
    pool.destroy();
    for (const t of timers) clearInterval(t);
    await Promise.all(sources.map((s) => s.stop()));
    await api.close();
    await rm(dir, { recursive: true, force: true });
  }
}

const results: Result[] = [];
for (const n of SIZES) {
  for (const design of ['annotations', 'leases'] as const) {
    const r = await run(design, n);
    results.push(r);
    process.stderr.write(`${design} ${n}: ${r.eventsPerPeriod} events, ${r.bytesPerPeriod} bytes per agent per period\n`);
  }
}

const kb = (b: number): string => (b / 1024).toFixed(1);
console.log(`resync period ${RESYNC_MS / 1000} s (compressed); per agent: events and KiB delivered per period, and per minute at the default 30 s`);
console.log('nodes  locations  design        events/period  KiB/period  events/min@30s  KiB/min@30s  writes/period  events ×fewer  bytes ×fewer');
for (const r of results) {
  const before = results.find((b) => b.nodes === r.nodes && b.design === 'annotations');
  const ratio = (a: number | undefined, b: number): string => (a === undefined || b === 0 ? '' : (a / b).toFixed(1));
  console.log(
    [
      String(r.nodes).padStart(5),
      String(r.locations).padStart(10),
      `  ${r.design.padEnd(12)}`,
      String(r.eventsPerPeriod).padStart(14),
      kb(r.bytesPerPeriod).padStart(11),
      String(r.eventsPerMinuteAt30s).padStart(15),
      kb(r.bytesPerMinuteAt30s).padStart(12),
      String(r.writesPerPeriod).padStart(14),
      (r.design === 'leases' ? ratio(before?.eventsPerPeriod, r.eventsPerPeriod) : '').padStart(14),
      (r.design === 'leases' ? ratio(before?.bytesPerPeriod, r.bytesPerPeriod) : '').padStart(13),
    ].join(' '),
  );
}
const out = join(dirname(fileURLToPath(import.meta.url)), 'results', 'heartbeats.json');
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, `${JSON.stringify({ benchmark: 'heartbeats', node: process.version, resyncPeriodMs: RESYNC_MS, results }, null, 2)}\n`);
