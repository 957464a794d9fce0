// The Kubernetes source against a failing API server (the test server's fault switches): unknown is
// never read as empty, requests back off, and missing or forbidden resources are explicit states.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { type TestContext, test } from 'node:test';
import { pino } from 'pino';
import { AgentMetrics } from '../../src/observability/metrics.js';
import { loadKubeAccess } from '../../src/sources/kubernetes/kube-access.js';
import { KubernetesSource } from '../../src/sources/kubernetes/kubernetes-source.js';
import type { ResourceSyncState, SourceObjectKind } from '../../src/sources/source.js';
import { type KubeApiServer, type RequestRecord, type ResourceName, startKubeApiServer } from '../kube-apiserver/index.js';
import { until } from '../support/wait.js';

const KINDS: readonly SourceObjectKind[] = ['Node', 'Peer', 'Service', 'EndpointSlice'];
const RESOURCE: Readonly<Record<SourceObjectKind, ResourceName>> = { Node: 'nodes', Peer: 'peers', Service: 'services', EndpointSlice: 'endpointslices' };

interface Cluster {
  readonly server: KubeApiServer;
  readonly source: KubernetesSource;
  readonly metrics: AgentMetrics;
  /** The JSON log lines the source wrote. */
  readonly logs: { level: number; msg: string }[];
  /** Starts the source (resolves when its start() does); onChange runs the onEveryChange checks. */
  start(): Promise<void>;
  names(kind: SourceObjectKind): string[];
  state(kind: SourceObjectKind): ResourceSyncState | undefined;
  /** Runs `check` on every onChange, besides the test's own polling. */
  onEveryChange(check: () => void): void;
}

async function cluster(t: TestContext, seed: (server: KubeApiServer) => void = seedSmall): Promise<Cluster> {
  const server = await startKubeApiServer();
  const dir = await mkdtemp(join(tmpdir(), 'wirelane-kube-faults-'));
  await server.writeKubeconfig(join(dir, 'kubeconfig'));
  seed(server);
  const logs: { level: number; msg: string }[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n').filter((l) => l !== '')) logs.push(JSON.parse(line) as { level: number; msg: string });
      done();
    },
  });
  const metrics = new AgentMetrics();
  const source = new KubernetesSource(await loadKubeAccess(join(dir, 'kubeconfig')), pino({ level: 'info' }, sink), true, { metrics: metrics.source });
  const checks: (() => void)[] = [];
  t.after(async () => {
    await source.stop();
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });
  return {
    server,
    source,
    metrics,
    logs,
    start: () =>
      source.start(() => {
        for (const check of checks) check();
      }),
    names: (kind) =>
      source
        .snapshot()
        .filter((o) => o.kind === kind)
        .map((o) => o.object.metadata?.name ?? '')
        .sort(),
    state: (kind) => source.resourceStatus().find((s) => s.kind === kind)?.state,
    onEveryChange: (check) => checks.push(check),
  };
}

async function metricValue(c: Cluster, name: string, labels: Readonly<Record<string, string>>): Promise<number> {
  const metric = c.metrics.registry.getSingleMetric(name);
  assert.ok(metric, `metric ${name} exists`);
  const { values } = await metric.get();
  const found = values.find((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l));
  return found?.value ?? 0;
}

function seedSmall(server: KubeApiServer): void {
  for (const name of ['a', 'b', 'c']) server.create('nodes', { metadata: { name, annotations: { 'wirelane.io/location': 'eu' } } });
  for (const name of ['p1', 'p2']) server.create('peers', { metadata: { name }, spec: { allowedIPs: ['10.5.0.1/32'] } });
  for (const name of ['s1', 's2']) {
    server.create('services', { metadata: { name, namespace: 'default' }, spec: { clusterIP: '10.96.0.1' } });
    server.create('endpointslices', {
      metadata: { name: `${name}-x`, namespace: 'default', labels: { 'kubernetes.io/service-name': name } },
      addressType: 'IPv4',
      endpoints: [],
    });
  }
}

/**
 * Watches the snapshot, on every onChange and by polling, for a moment at which some object that
 * must be there is not: an empty or partial store. Returns the violations seen and the checks made.
 */
function guardSnapshot(c: Cluster, required: Readonly<Partial<Record<SourceObjectKind, readonly string[]>>>) {
  const violations: string[] = [];
  let checks = 0;
  let active = true;
  const check = (when: string): void => {
    if (!active) return;
    checks += 1;
    for (const kind of KINDS) {
      const have = new Set(c.names(kind));
      const lacking = (required[kind] ?? []).filter((n) => !have.has(n));
      if (lacking.length > 0) violations.push(`${when}: ${kind} lacks ${lacking.length} (e.g. ${lacking[0]})`);
    }
  };
  c.onEveryChange(() => check('onChange'));
  const timer = setInterval(() => check('poll'), 5);
  return {
    violations,
    checks: () => checks,
    stop(): void {
      active = false;
      clearInterval(timer);
    },
  };
}

function snapshotOf(c: Cluster): Record<SourceObjectKind, string[]> {
  return { Node: c.names('Node'), Peer: c.names('Peer'), Service: c.names('Service'), EndpointSlice: c.names('EndpointSlice') };
}

function serverNames(server: KubeApiServer, kind: SourceObjectKind): string[] {
  return server
    .list(RESOURCE[kind])
    .map((o) => o.metadata.name)
    .sort();
}

function failed(records: readonly RequestRecord[]): RequestRecord[] {
  return records.filter((r) => r.status >= 400);
}

function gaps(records: readonly RequestRecord[]): number[] {
  return records.slice(1).map((r, i) => r.at - (records[i]?.at ?? r.at));
}

test('during a 500 outage the snapshot keeps every object, and changes made meanwhile appear after it', async (t) => {
  const c = await cluster(t);
  await c.start();
  const before = snapshotOf(c);
  const guard = guardSnapshot(c, before);

  c.server.failRequests({ status: 500 });
  // Every resource has tried again and failed a few times.
  for (const kind of KINDS) {
    await until(`${kind}: two failed requests`, () => failed(c.server.requests.filter((r) => r.resource === RESOURCE[kind])).length >= 2, 10_000);
  }
  assert.deepEqual(snapshotOf(c), before);
  assert.equal(c.source.hasSynced(), true, 'synced once stays synced once');
  for (const kind of KINDS) assert.equal(c.state(kind), 'stale', kind);
  assert.equal(await metricValue(c, 'wirelane_source_sync_state', { resource: 'nodes', state: 'stale' }), 1);
  // One line per resource for the change to stale, however many retries failed.
  assert.equal(c.logs.filter((l) => /Node .*: stale: watch: 500/.test(l.msg)).length, 1);

  // Changes during the outage: the source cannot see them yet.
  c.server.create('nodes', { metadata: { name: 'd' } });
  c.server.delete('services', 's2', 'default');
  c.server.create('peers', { metadata: { name: 'p3' }, spec: { allowedIPs: ['10.5.0.3/32'] } });
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.deepEqual(snapshotOf(c), before);
  guard.stop();
  assert.deepEqual(guard.violations, []);
  assert.ok(guard.checks() > 10);

  c.server.stopFailingRequests();
  await until('the changes made during the outage', () => KINDS.every((kind) => c.names(kind).join() === serverNames(c.server, kind).join()), 20_000);
  await until('every resource synced again', () => KINDS.every((kind) => c.state(kind) === 'synced'), 20_000);
  assert.equal(c.logs.filter((l) => /Node .*: synced \(watching again\)/.test(l.msg)).length, 1);
});

test('watch cuts and 410s never leave the store empty or partial; a 410 leads to one re-list from the last version', async (t) => {
  const c = await cluster(t, (server) => {
    seedSmall(server);
    for (let i = 0; i < 1000; i++) server.create('services', { metadata: { name: `svc-${i}`, namespace: 'load' }, spec: { clusterIP: '10.96.1.1' } });
  });
  await c.start();
  const required = snapshotOf(c);
  assert.equal(required.Service.length, 1002);
  const guard = guardSnapshot(c, required);

  // A clean 410: the history expires while the watch is cut; the next watch gets 410 and re-lists.
  const lists = c.server.requestCount('list', 'services');
  c.server.expireHistory();
  c.server.dropWatches({ abrupt: true });
  await c.server.waitForRequests('list', 'services', lists + 1);
  const relist = c.server.requestsOf('list', 'services').at(-1);
  const listedAt = new URLSearchParams(relist?.query).get('resourceVersion');
  assert.ok(listedAt !== null && Number(listedAt) > 0, `the re-list asks for the last version seen, not 0 or a quorum read (${relist?.query})`);
  await until('watching again', () => c.server.openWatches('services') === 1);
  assert.equal(c.server.requestCount('list', 'services'), lists + 1, 'one re-list');

  // Every watch answered 410 (in the stream, then as the status): each is followed by a re-list.
  c.server.answerWatches('gone-event');
  c.server.dropWatches();
  const listsBefore410 = c.server.requestCount('list', 'services');
  await c.server.waitForRequests('list', 'services', listsBefore410 + 2, 10_000);
  c.server.answerWatches('gone-status');
  await c.server.waitForRequests('list', 'services', listsBefore410 + 3, 10_000);
  c.server.answerWatches('served');
  await until('every watch open again', () => KINDS.every((kind) => c.server.openWatches(RESOURCE[kind]) === 1), 20_000);

  // Watches cut abruptly every 50 ms while objects change.
  c.server.cutWatchesEvery(50, { abrupt: true });
  for (let i = 0; i < 20; i++) {
    c.server.create('nodes', { metadata: { name: `n-${i}` } });
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  c.server.clearFaults();
  c.server.create('services', { metadata: { name: 'late', namespace: 'default' }, spec: { clusterIP: '10.96.0.9' } });
  await until('the source to converge', () => KINDS.every((kind) => c.names(kind).join() === serverNames(c.server, kind).join()), 20_000);
  guard.stop();
  assert.deepEqual(guard.violations, []);
  const expired = await metricValue(c, 'wirelane_source_watch_restarts_total', { resource: 'services', reason: 'expired' });
  assert.ok(expired >= 3, `${expired} watches ended by 410`);
  const broken = await metricValue(c, 'wirelane_source_watch_restarts_total', { resource: 'nodes', reason: 'failed' });
  assert.ok(broken >= 1, `${broken} watches broken`);
});

test('lists ask the watch cache (resourceVersion=0) and watches resume from the last version without a list', async (t) => {
  const c = await cluster(t);
  await c.start();
  for (const kind of KINDS) {
    const [list, ...more] = c.server.requestsOf('list', RESOURCE[kind]);
    assert.equal(more.length, 0);
    assert.equal(new URLSearchParams(list?.query).get('resourceVersion'), '0', `${kind}: ${list?.query}`);
  }
  await until('every watch open', () => KINDS.every((kind) => c.server.openWatches(RESOURCE[kind]) === 1));
  const listedAt = c.server.resourceVersion;
  for (const kind of KINDS) {
    const watch = new URLSearchParams(c.server.requestsOf('watch', RESOURCE[kind])[0]?.query);
    assert.equal(watch.get('resourceVersion'), listedAt, kind);
    assert.equal(watch.get('allowWatchBookmarks'), 'true', kind);
  }

  const d = c.server.create('nodes', { metadata: { name: 'd' } });
  await until('the new node', () => c.names('Node').includes('d'));
  c.server.dropWatches();
  await c.server.waitForRequests('watch', 'nodes', 2);
  assert.equal(new URLSearchParams(c.server.requestsOf('watch', 'nodes')[1]?.query).get('resourceVersion'), d.metadata.resourceVersion);

  // A bookmark moves the version on too.
  await until('the node watch open again', () => c.server.openWatches('nodes') === 1);
  c.server.create('services', { metadata: { name: 'moves-the-version', namespace: 'default' } });
  c.server.sendBookmarks();
  const bookmarked = c.server.resourceVersion;
  await new Promise((resolve) => setTimeout(resolve, 100));
  c.server.dropWatches();
  await c.server.waitForRequests('watch', 'nodes', 3);
  assert.equal(new URLSearchParams(c.server.requestsOf('watch', 'nodes')[2]?.query).get('resourceVersion'), bookmarked);
  for (const kind of KINDS) assert.equal(c.server.requestCount('list', RESOURCE[kind]), 1, `${kind}: no re-list`);
});

test('a server whose versions went back (restored) answers "too large"; the source re-lists with a consistent read', async (t) => {
  const c = await cluster(t);
  await c.start();
  await until('the node watch open', () => c.server.openWatches('nodes') === 1);
  // The store is rebuilt with fewer changes than before: its resourceVersion is behind the source's.
  await c.server.close();
  const restored = await startKubeApiServer({ port: c.server.port });
  t.after(() => restored.close());
  restored.create('nodes', { metadata: { name: 'restored' } });
  await until('the restored node', () => c.names('Node').join() === 'restored', 15_000);
  const lists = restored.requestsOf('list', 'nodes');
  assert.ok(lists.some((r) => new URLSearchParams(r.query).get('resourceVersion') === null), `a consistent list: ${lists.map((r) => r.query).join(' ')}`);
});

test('slow lists (5 s) empty nothing', async (t) => {
  const c = await cluster(t);
  await c.start();
  const before = snapshotOf(c);
  const guard = guardSnapshot(c, before);
  c.server.delayLists(5000);
  const lists = c.server.requestCount('list', 'nodes');
  c.server.create('nodes', { metadata: { name: 'e' } });
  c.server.expireHistory();
  c.server.dropWatches({ abrupt: true });
  await c.server.waitForRequests('list', 'nodes', lists + 1);
  await until('the slow list to land', () => c.names('Node').includes('e'), 15_000);
  guard.stop();
  assert.deepEqual(guard.violations, []);
  assert.equal(c.server.requestCount('list', 'nodes'), lists + 1, 'one list, not abandoned and repeated');
  assert.equal(c.state('Node'), 'synced');
});

test('a start-up during a 20 s outage backs off with growing, jittered gaps, and the backoff resets after success', async (t) => {
  const c = await cluster(t);
  c.server.failRequests({ status: 500, forMs: 20_000 });
  const outageStart = Date.now();
  let started = false;
  const starting = c.start().then(() => (started = true));
  await until('the outage to end', () => !c.server.failingRequests, 25_000);
  assert.equal(started, false, 'start() waits for the first successful lists');
  assert.equal(c.source.hasSynced(), false);
  for (const kind of KINDS) {
    assert.equal(c.state(kind), 'never-synced');
    assert.deepEqual(c.names(kind), [], 'nothing is known, and nothing is made up');
  }
  const gapsOf: Record<string, number[]> = {};
  for (const kind of KINDS) {
    const lists = c.server.requestsOf('list', RESOURCE[kind]).filter((r) => r.at - outageStart < 20_000);
    // 0.5 s doubling, up to 25 % shorter: 6 lists in 20 s (without backoff, 2 a second would be 40).
    assert.ok(lists.length >= 4 && lists.length <= 8, `${kind}: ${lists.length} lists in 20 s`);
    const g = gaps(lists);
    gapsOf[kind] = g;
    for (let i = 1; i < g.length; i++) assert.ok((g[i] ?? 0) >= 0.8 * (g[i - 1] ?? 0), `${kind}: gaps grow: ${g.join(', ')}`);
    assert.ok((g.at(-1) ?? 0) >= 8 * (g[0] ?? 0), `${kind}: gaps grow: ${g.join(', ')}`);
  }
  // Jitter: resources that failed together do not retry in lock-step.
  const firstGaps = KINDS.map((kind) => gapsOf[kind]?.[1]);
  assert.ok(new Set(firstGaps).size > 1, `jittered: ${firstGaps.join(', ')}`);
  assert.equal(await metricValue(c, 'wirelane_source_list_failures_total', { resource: 'nodes', reason: 'server_error' }), c.server.requestsOf('list', 'nodes').filter((r) => r.status === 500).length);

  await starting;
  assert.equal(c.source.hasSynced(), true);
  assert.ok((await metricValue(c, 'wirelane_source_last_successful_list_timestamp_seconds', { resource: 'nodes' })) * 1000 >= outageStart);
  const lastGap = gapsOf.Node?.at(-1) ?? 0;

  // After a success the next outage starts again from short delays.
  await until('the node watch open', () => c.server.openWatches('nodes') === 1);
  const mark = c.server.requests.length;
  c.server.failRequests({ status: 500 });
  await until('three failed requests on nodes', () => failed(c.server.requests.slice(mark).filter((r) => r.resource === 'nodes')).length >= 3, 10_000);
  const again = gaps(failed(c.server.requests.slice(mark).filter((r) => r.resource === 'nodes')));
  assert.ok((again[0] ?? Infinity) * 4 < lastGap, `reset: ${again.join(', ')} after ${lastGap}`);
  c.server.stopFailingRequests();
});

test('watches the server keeps answering with 410 or ending at once do not become a hot loop', async (t) => {
  const c = await cluster(t);
  await c.start();
  await until('the node watch open', () => c.server.openWatches('nodes') === 1);
  const from = Date.now();
  const mark = c.server.requests.length;
  c.server.answerWatches('gone-event');
  c.server.dropWatches();
  await new Promise((resolve) => setTimeout(resolve, 6000));
  c.server.answerWatches('served');
  const lists = c.server.requests.slice(mark).filter((r) => r.verb === 'list' && r.resource === 'nodes' && r.at - from < 6000);
  // Re-lists 0.5, 1, 2 s apart, more slowly each time: 3 or 4 in 6 s, where re-listing at once would be hundreds.
  assert.ok(lists.length >= 2 && lists.length <= 6, `${lists.length} lists in 6 s`);
  const g = gaps(lists);
  assert.ok(g.every((gap, i) => i === 0 || gap >= 0.8 * (g[i - 1] ?? 0)), `gaps grow: ${g.join(', ')}`);
  assert.deepEqual(snapshotOf(c).Node, serverNames(c.server, 'Node'));

  await until('the node watch open', () => c.server.openWatches('nodes') === 1, 10_000);
  const mark2 = c.server.requests.length;
  c.server.cutWatchesEvery(10);
  await new Promise((resolve) => setTimeout(resolve, 4000));
  c.server.cutWatchesEvery(0);
  const watches = c.server.requests.slice(mark2).filter((r) => r.verb === 'watch' && r.resource === 'nodes');
  assert.ok(watches.length <= 8, `${watches.length} watches in 4 s, each ended within 10 ms`);
  assert.equal(c.server.requests.slice(mark2).filter((r) => r.verb === 'list' && r.resource === 'nodes').length, 0, 'a watch that ends cleanly is resumed, not re-listed');
});

test('a missing Peer CRD (404) is an explicit state: start proceeds, Nodes work, and the CRD is picked up later', async (t) => {
  const c = await cluster(t);
  c.server.setResourceAnswer('peers', 'missing');
  await c.start();
  assert.equal(c.state('Peer'), 'missing');
  assert.equal(c.source.hasSynced(), true);
  assert.deepEqual(c.names('Peer'), []);
  assert.equal(await metricValue(c, 'wirelane_source_sync_state', { resource: 'peers', state: 'missing' }), 1);
  assert.equal(await metricValue(c, 'wirelane_source_list_failures_total', { resource: 'peers', reason: 'not_found' }) >= 1, true);
  c.server.create('nodes', { metadata: { name: 'd' } });
  await until('Nodes keep working', () => c.names('Node').includes('d'));
  await c.server.waitForRequests('list', 'peers', 3, 10_000);
  const missingLines = c.logs.filter((l) => /Peer .*missing \(404\).*is its CRD installed/.test(l.msg));
  assert.equal(missingLines.length, 1, 'logged once, not once per retry');
  assert.equal(missingLines[0]?.level, 40, 'a warning');

  c.server.setResourceAnswer('peers', 'served');
  await until('the Peers of the CRD installed later', () => c.names('Peer').join() === 'p1,p2', 15_000);
  assert.equal(c.state('Peer'), 'synced');

  // A 404 after the Peers were known keeps them: a CRD the API server has not registered yet (it
  // happens at its start-up) must not remove every Peer.
  c.server.setResourceAnswer('peers', 'missing');
  await until('missing again', () => c.state('Peer') === 'missing', 15_000);
  assert.deepEqual(c.names('Peer'), ['p1', 'p2']);
});

test('a forbidden resource (403) is not synced, never an empty list, until RBAC allows it', async (t) => {
  const c = await cluster(t);
  c.server.setResourceAnswer('services', 'forbidden');
  let started = false;
  const starting = c.start().then(() => (started = true));
  await until('Nodes synced', () => c.state('Node') === 'synced');
  await c.server.waitForRequests('list', 'services', 3, 10_000);
  assert.equal(started, false);
  assert.equal(c.source.hasSynced(), false);
  const status = c.source.resourceStatus().find((s) => s.kind === 'Service');
  assert.equal(status?.state, 'forbidden');
  assert.equal(status?.settled, false);
  assert.match(status?.lastError ?? '', /^list: 403 Forbidden: services is forbidden/);
  assert.deepEqual(c.names('Service'), [], 'nothing known, nothing made up');
  assert.equal(await metricValue(c, 'wirelane_source_sync_state', { resource: 'services', state: 'forbidden' }), 1);
  assert.ok((await metricValue(c, 'wirelane_source_list_failures_total', { resource: 'services', reason: 'forbidden' })) >= 2);
  const lines = c.logs.filter((l) => /Service .*forbidden \(403\)/.test(l.msg));
  assert.equal(lines.length, 1);
  assert.equal(lines[0]?.level, 50, 'an error');

  c.server.setResourceAnswer('services', 'served');
  await starting;
  assert.equal(c.source.hasSynced(), true);
  assert.deepEqual(c.names('Service'), ['s1', 's2']);

  // Forbidden after a sync keeps what was known.
  c.server.setResourceAnswer('services', 'forbidden');
  c.server.expireHistory();
  c.server.dropWatches({ abrupt: true });
  await until('forbidden again', () => c.state('Service') === 'forbidden', 10_000);
  assert.deepEqual(c.names('Service'), ['s1', 's2']);
});
