// The test API server against the real @kubernetes/client-node 1.4.0: informers, patchNode,
// kubeconfig loading, and the failure modes (410 Expired, dropped watches, 404).
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import {
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  DiscoveryV1Api,
  type Informer,
  KubeConfig,
  type KubernetesListObject,
  type KubernetesObject,
  type ObjectCache,
  type V1Lease,
  PatchStrategy,
  makeInformer,
  setHeaderOptions,
} from '@kubernetes/client-node';
import { type KubeApiServerOptions, type KubeObject, startKubeApiServer } from './kube-apiserver/index.js';

type Watched<T extends KubernetesObject> = Informer<T> & ObjectCache<T> & { readonly events: string[] };

// One server, one kubeconfig file and the informers of a test, all torn down after it.
async function startCluster(t: TestContext, options?: KubeApiServerOptions) {
  const server = await startKubeApiServer(options);
  const dir = await mkdtemp(join(tmpdir(), 'kube-apiserver-test-'));
  const informers: Informer<KubernetesObject>[] = [];
  t.after(async () => {
    for (const informer of informers) await informer.stop();
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });
  const kubeconfigPath = join(dir, 'kubeconfig.yaml');
  await server.writeKubeconfig(kubeconfigPath);
  const kubeconfig = new KubeConfig();
  kubeconfig.loadFromFile(kubeconfigPath);

  // Starts an informer that records "add a", "update a", "delete a" and "error ..." as they come.
  async function inform<T extends KubernetesObject>(
    path: string,
    list: () => Promise<KubernetesListObject<T>>,
    labelSelector?: string,
  ): Promise<Watched<T>> {
    const informer = makeInformer<T>(kubeconfig, path, list, labelSelector);
    const events: string[] = [];
    const nameOf = (o: T): string => [o.metadata?.namespace, o.metadata?.name].filter(Boolean).join('/');
    informer.on('add', (o) => events.push(`add ${nameOf(o)}`));
    informer.on('update', (o) => events.push(`update ${nameOf(o)}`));
    informer.on('delete', (o) => events.push(`delete ${nameOf(o)}`));
    informer.on('error', (err) => events.push(`error ${String(err)}`));
    informers.push(informer as Informer<KubernetesObject>);
    await informer.start();
    return Object.assign(informer, { events });
  }

  return { server, kubeconfig, kubeconfigPath, inform };
}

// Waits for a condition by polling; informers apply events asynchronously.
async function until(what: string, check: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

function node(name: string, annotations: Record<string, string> = {}): KubeObject {
  return { metadata: { name, annotations }, spec: { podCIDR: '10.4.0.0/24' } };
}

function namesIn(objects: readonly KubernetesObject[]): string[] {
  return objects.map((o) => o.metadata?.name ?? '').sort();
}

function nodeInformer(cluster: Awaited<ReturnType<typeof startCluster>>) {
  const core = cluster.kubeconfig.makeApiClient(CoreV1Api);
  return cluster.inform('/api/v1/nodes', () => core.listNode());
}

// Reads a watch stream with plain fetch until the server ends it, one parsed event per line.
async function watchEvents(url: string): Promise<{ type: string; object: { code?: number; reason?: string; metadata?: { name?: string } } }[]> {
  const response = await fetch(url);
  assert.equal(response.status, 200);
  const text = await response.text();
  return text
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line));
}

test('a node informer lists existing nodes, then sees them added, updated and deleted', async (t) => {
  const cluster = await startCluster(t);
  cluster.server.create('nodes', node('a'));
  cluster.server.create('nodes', node('b'));
  const informer = await nodeInformer(cluster);
  await until('the initial list', () => informer.list().length === 2);
  assert.deepEqual(informer.events, ['add a', 'add b']);

  cluster.server.create('nodes', node('c'));
  const b = cluster.server.get('nodes', 'b');
  assert.ok(b);
  cluster.server.update('nodes', { ...b, metadata: { ...b.metadata, labels: { zone: 'x' } } });
  cluster.server.delete('nodes', 'a');
  await until('three watch events', () => informer.events.length === 5);
  assert.deepEqual(informer.events.slice(2), ['add c', 'update b', 'delete a']);
  assert.deepEqual(namesIn(informer.list()), ['b', 'c']);
  assert.deepEqual(informer.get('b')?.metadata?.labels, { zone: 'x' });
  assert.equal(informer.get('b')?.metadata?.resourceVersion, cluster.server.get('nodes', 'b')?.metadata.resourceVersion);
  assert.equal(cluster.server.requestCount('list', 'nodes'), 1);
});

test('after the history expires and watches drop, the informer lists again and converges', async (t) => {
  const cluster = await startCluster(t);
  cluster.server.create('nodes', node('a'));
  cluster.server.create('nodes', node('b'));
  const informer = await nodeInformer(cluster);
  await until('the initial list', () => informer.list().length === 2);
  await cluster.server.waitForRequests('watch', 'nodes', 1);

  // While the informer is cut off: one node goes, one changes, one comes; none of it is streamed.
  assert.equal(cluster.server.dropWatches(), 1);
  cluster.server.delete('nodes', 'a');
  cluster.server.update('nodes', node('b', { 'wirelane.io/location': 'west' }));
  cluster.server.create('nodes', node('c'));
  cluster.server.expireHistory();

  // It re-watches from its old resourceVersion, gets ERROR 410 Expired, and lists again.
  await cluster.server.waitForRequests('list', 'nodes', 2);
  await until('the informer to converge', () => informer.events.length === 5);
  assert.deepEqual(informer.events.slice(2).sort(), ['add c', 'delete a', 'update b']);
  assert.deepEqual(namesIn(informer.list()), namesIn(cluster.server.list('nodes') as KubernetesObject[]));
  assert.deepEqual(informer.get('b')?.metadata?.annotations, { 'wirelane.io/location': 'west' });
  await cluster.server.waitForRequests('watch', 'nodes', 3);
  assert.equal(cluster.server.openWatches('nodes'), 1);
});

test('a dropped watch within the history window resumes without listing again', async (t) => {
  const cluster = await startCluster(t);
  cluster.server.create('nodes', node('a'));
  const informer = await nodeInformer(cluster);
  await cluster.server.waitForRequests('watch', 'nodes', 1);
  cluster.server.dropWatches();
  cluster.server.delete('nodes', 'a');
  await until('the missed delete to be replayed', () => informer.events.includes('delete a'));
  assert.equal(cluster.server.requestCount('list', 'nodes'), 1);
  assert.equal(cluster.server.requestCount('watch', 'nodes'), 2);
});

test('an abruptly dropped watch is an informer error, and start() recovers', async (t) => {
  const cluster = await startCluster(t);
  cluster.server.create('nodes', node('a'));
  const informer = await nodeInformer(cluster);
  await cluster.server.waitForRequests('watch', 'nodes', 1);
  cluster.server.dropWatches({ abrupt: true });
  await until('the error callback', () => informer.events.some((e) => e.startsWith('error')));
  // client-node 1.4.0 does not restart after an error; the caller must call start() again.
  cluster.server.create('nodes', node('b'));
  await informer.start();
  await until('the restarted informer to see b', () => informer.get('b') !== undefined);
});

test('patchNode with a merge patch adds and removes annotations, and the informer sees it', async (t) => {
  const cluster = await startCluster(t);
  cluster.server.create('nodes', node('a', { 'wirelane.io/key': 'old', 'wirelane.io/leader': 'true' }));
  const informer = await nodeInformer(cluster);
  await until('the initial list', () => informer.list().length === 1);
  const core = cluster.kubeconfig.makeApiClient(CoreV1Api);
  const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

  const patched = await core.patchNode(
    { name: 'a', body: { metadata: { annotations: { 'wirelane.io/key': 'new', 'wirelane.io/leader': null } } } },
    mergePatch,
  );
  assert.deepEqual(patched.metadata?.annotations, { 'wirelane.io/key': 'new' });
  await until('the informer to see the patch', () => informer.events.includes('update a'));
  assert.deepEqual(informer.get('a')?.metadata?.annotations, { 'wirelane.io/key': 'new' });
  assert.equal(cluster.server.get('nodes', 'a')?.metadata.resourceVersion, patched.metadata?.resourceVersion);

  // The same patch again changes nothing, so neither the resourceVersion nor a watch event moves.
  const again = await core.patchNode({ name: 'a', body: { metadata: { annotations: { 'wirelane.io/key': 'new' } } } }, mergePatch);
  assert.equal(again.metadata?.resourceVersion, patched.metadata?.resourceVersion);

  const strategic = await core.patchNode(
    { name: 'a', body: { metadata: { annotations: { 'wirelane.io/endpoint': '10.0.0.1:51820' } } } },
    setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch),
  );
  assert.equal(strategic.metadata?.annotations?.['wirelane.io/endpoint'], '10.0.0.1:51820');
  await until('the informer to see the second patch', () => informer.events.filter((e) => e === 'update a').length === 2);
});

test('patchNode sends a JSON patch by default, with ~1 escapes for annotation keys', async (t) => {
  const cluster = await startCluster(t);
  cluster.server.create('nodes', node('a', { 'wirelane.io/key': 'old', 'wirelane.io/leader': 'true' }));
  const core = cluster.kubeconfig.makeApiClient(CoreV1Api);
  const patched = await core.patchNode({
    name: 'a',
    body: [
      { op: 'replace', path: '/metadata/annotations/wirelane.io~1key', value: 'new' },
      { op: 'remove', path: '/metadata/annotations/wirelane.io~1leader' },
      { op: 'add', path: '/metadata/annotations/wirelane.io~1last-seen', value: '1700000000' },
    ],
  });
  assert.deepEqual(patched.metadata?.annotations, { 'wirelane.io/key': 'new', 'wirelane.io/last-seen': '1700000000' });
  assert.equal(cluster.server.requests.at(-1)?.contentType, 'application/json-patch+json');

  // A merge-patch body sent with the default Content-Type is rejected, as a real server does.
  await assert.rejects(core.patchNode({ name: 'a', body: { metadata: { annotations: { x: 'y' } } } }), { code: 400 });
  // Removing a key that is not there fails the whole patch with 422.
  await assert.rejects(core.patchNode({ name: 'a', body: [{ op: 'remove', path: '/metadata/annotations/missing' }] }), { code: 422 });
  // A resourceVersion in the patch is a precondition.
  await assert.rejects(
    core.patchNode(
      { name: 'a', body: { metadata: { resourceVersion: '1', annotations: { x: 'y' } } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    ),
    { code: 409 },
  );
  assert.equal(cluster.server.get('nodes', 'a')?.metadata.annotations?.x, undefined);
});

test('informers for peers, services and endpoint slices work', async (t) => {
  const cluster = await startCluster(t);
  const { server, kubeconfig } = cluster;
  server.create('peers', { metadata: { name: 'laptop' }, spec: { allowedIPs: ['10.5.0.1/32'], publicKey: 'k' } });
  server.create('services', { metadata: { name: 'web', namespace: 'shop' }, spec: { clusterIP: '10.96.0.10' } });
  server.create('services', { metadata: { name: 'dns', namespace: 'kube-system', labels: { 'service.kubernetes.io/headless': '' } } });
  server.create('endpointslices', {
    metadata: { name: 'web-abc', namespace: 'shop', labels: { 'kubernetes.io/service-name': 'web' } },
    addressType: 'IPv4',
    endpoints: [{ addresses: ['10.4.0.5'] }],
  });

  const custom = kubeconfig.makeApiClient(CustomObjectsApi);
  const peers = await cluster.inform(
    '/apis/wirelane.io/v1alpha1/peers',
    // listClusterCustomObject is typed `any`: the body is a PeerList.
    () => custom.listClusterCustomObject({ group: 'wirelane.io', version: 'v1alpha1', plural: 'peers' }) as Promise<KubernetesListObject<KubernetesObject>>,
  );
  const core = kubeconfig.makeApiClient(CoreV1Api);
  const services = await cluster.inform('/api/v1/services', () => core.listServiceForAllNamespaces());
  const discovery = kubeconfig.makeApiClient(DiscoveryV1Api);
  const slices = await cluster.inform('/apis/discovery.k8s.io/v1/namespaces/shop/endpointslices', () =>
    discovery.listNamespacedEndpointSlice({ namespace: 'shop' }),
  );
  await until('the initial lists', () => peers.list().length === 1 && services.list().length === 2 && slices.list().length === 1);
  assert.equal(peers.get('laptop')?.kind, 'Peer');
  assert.equal(services.get('web', 'shop')?.spec?.clusterIP, '10.96.0.10');

  server.create('peers', { metadata: { name: 'phone' }, spec: { allowedIPs: ['10.5.0.2/32'], publicKey: 'p' } });
  server.delete('services', 'dns', 'kube-system');
  server.create('endpointslices', { metadata: { name: 'other', namespace: 'elsewhere' }, addressType: 'IPv4', endpoints: [] });
  server.update('endpointslices', {
    metadata: { name: 'web-abc', namespace: 'shop', labels: { 'kubernetes.io/service-name': 'web' } },
    addressType: 'IPv4',
    endpoints: [{ addresses: ['10.4.0.5'] }, { addresses: ['10.4.1.7'] }],
  });
  await until('watch events on all three', () =>
    peers.events.includes('add phone') && services.events.includes('delete kube-system/dns') && slices.events.includes('update shop/web-abc'),
  );
  assert.equal(slices.get('web-abc', 'shop')?.endpoints.length, 2);
  assert.equal(slices.get('other', 'elsewhere'), undefined, 'a namespaced watch sees only its namespace');

  // The kube-proxy style selector leaves headless services out, in LIST and WATCH alike.
  const selected = await core.listServiceForAllNamespaces({ labelSelector: '!service.kubernetes.io/headless' });
  assert.deepEqual(namesIn(selected.items), ['web']);
});

test('a Peer is created (POST, 409 when it exists) and deleted (DELETE, 404 when gone), and a watch sees both', async (t) => {
  const cluster = await startCluster(t);
  const custom = cluster.kubeconfig.makeApiClient(CustomObjectsApi);
  const path = { group: 'wirelane.io', version: 'v1alpha1', plural: 'peers' };
  const peers = await cluster.inform(
    '/apis/wirelane.io/v1alpha1/peers',
    () => custom.listClusterCustomObject(path) as Promise<KubernetesListObject<KubernetesObject>>,
  );
  const body = { apiVersion: 'wirelane.io/v1alpha1', kind: 'Peer', metadata: { name: 'laptop' }, spec: { allowedIPs: ['10.5.0.1/32'], publicKey: 'k' } };
  const created = (await custom.createClusterCustomObject({ ...path, body })) as KubeObject;
  assert.equal(created.metadata.name, 'laptop');
  assert.ok(created.metadata.resourceVersion, 'the created object carries its resourceVersion');
  await assert.rejects(custom.createClusterCustomObject({ ...path, body }), { code: 409 });
  await until('the watch to see the Peer', () => peers.events.includes('add laptop'));
  assert.equal(cluster.server.requestCount('create', 'peers'), 2);

  await custom.deleteClusterCustomObject({ ...path, name: 'laptop' });
  assert.equal(cluster.server.get('peers', 'laptop'), undefined);
  await assert.rejects(custom.deleteClusterCustomObject({ ...path, name: 'laptop' }), { code: 404 });
  await until('the watch to see it go', () => peers.events.includes('delete laptop'));
  assert.equal(cluster.server.requestCount('delete', 'peers'), 2);
});

test('a missing object is a 404 with a NotFound Status, and unsupported requests say why', async (t) => {
  const cluster = await startCluster(t);
  const core = cluster.kubeconfig.makeApiClient(CoreV1Api);
  const err: unknown = await core.readNode({ name: 'ghost' }).then(
    () => assert.fail('reading a missing node succeeded'),
    (e: unknown) => e,
  );
  // client-node 1.4.0 puts the raw response text in ApiException.body.
  const { code, body } = err as { code: number; body: string };
  assert.equal(code, 404);
  assert.deepEqual(JSON.parse(body), {
    apiVersion: 'v1',
    kind: 'Status',
    metadata: {},
    status: 'Failure',
    message: 'nodes "ghost" not found',
    reason: 'NotFound',
    details: { name: 'ghost', kind: 'nodes' },
    code: 404,
  });
  await assert.rejects(core.patchNode({ name: 'ghost', body: [] }), { code: 404 });

  const { url } = cluster.server;
  const unknownPath = await fetch(`${url}/api/v1/pods`);
  assert.equal(unknownPath.status, 404);
  cluster.server.create('nodes', node('a'));
  const put = await fetch(`${url}/api/v1/nodes`, { method: 'PUT', body: '{}' });
  assert.equal(put.status, 405);
  assert.match(((await put.json()) as { message: string }).message, /PUT \/api\/v1\/nodes is not supported/);
  const apply = await fetch(`${url}/api/v1/nodes/a`, { method: 'PATCH', headers: { 'Content-Type': PatchStrategy.ServerSideApply }, body: '{}' });
  assert.equal(apply.status, 415);
  const badVersion = await fetch(`${url}/api/v1/nodes?watch=true&resourceVersion=abc`);
  assert.equal(badVersion.status, 400);
});

test('a watch from a resourceVersion older than the history window gets ERROR 410 Expired', async (t) => {
  const cluster = await startCluster(t, { historyLimit: 2 });
  const first = cluster.server.create('nodes', node('a'));
  cluster.server.create('nodes', node('b'));
  cluster.server.create('nodes', node('c'));
  cluster.server.create('nodes', node('d'));
  const events = await watchEvents(`${cluster.server.url}/api/v1/nodes?watch=1&resourceVersion=${first.metadata.resourceVersion}`);
  assert.equal(events.length, 1);
  assert.equal(events[0]?.type, 'ERROR');
  assert.equal(events[0]?.object.code, 410);
  assert.equal(events[0]?.object.reason, 'Expired');
});

test('a watch ends after timeoutSeconds with a bookmark, and replays from its resourceVersion', async (t) => {
  const cluster = await startCluster(t);
  const a = cluster.server.create('nodes', node('a'));
  cluster.server.create('nodes', node('b'));
  const started = Date.now();
  const events = await watchEvents(
    `${cluster.server.url}/api/v1/nodes?watch=true&resourceVersion=${a.metadata.resourceVersion}&timeoutSeconds=1&allowWatchBookmarks=true`,
  );
  assert.ok(Date.now() - started >= 900, 'the stream lasted about timeoutSeconds');
  assert.deepEqual(
    events.map((e) => `${e.type} ${e.object.metadata?.name ?? ''}`),
    ['ADDED b', 'BOOKMARK '],
  );
});

test('the kubeconfig carries the bearer token a server may require', async (t) => {
  const cluster = await startCluster(t, { token: 'sekrit' });
  cluster.server.create('nodes', node('a'));
  const core = cluster.kubeconfig.makeApiClient(CoreV1Api);
  assert.deepEqual(namesIn((await core.listNode()).items), ['a']);
  assert.equal((await fetch(`${cluster.server.url}/api/v1/nodes`)).status, 401);
});

test('a server listens on the host it is given', async (t) => {
  const cluster = await startCluster(t, { host: '127.0.0.2' });
  assert.match(cluster.server.url, /^http:\/\/127\.0\.0\.2:\d+$/);
  cluster.server.create('nodes', node('a'));
  const core = cluster.kubeconfig.makeApiClient(CoreV1Api);
  assert.deepEqual(namesIn((await core.listNode()).items), ['a']);
});

// --- Fault switches -------------------------------------------------------------------------------

// Opens a watch with plain fetch and collects its lines until it ends; `ended` says how.
function openWatch(url: string): { lines: string[]; ended: Promise<'end' | 'error'> } {
  const lines: string[] = [];
  const ended = (async (): Promise<'end' | 'error'> => {
    const response = await fetch(url);
    assert.equal(response.status, 200);
    const decoder = new TextDecoder();
    try {
      for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
        lines.push(...decoder.decode(chunk, { stream: true }).split('\n').filter((l) => l !== ''));
      }
      return 'end';
    } catch {
      return 'error';
    }
  })();
  return { lines, ended };
}

test('failRequests: every request gets the status until switched off, and open watches are cut', async (t) => {
  const cluster = await startCluster(t);
  const { server } = cluster;
  server.create('nodes', node('a'));
  const watch = openWatch(`${server.url}/api/v1/nodes?watch=true`);
  await server.waitForRequests('watch', 'nodes', 1);
  await until('the watch to be open', () => server.openWatches('nodes') === 1);

  server.failRequests({ status: 503 });
  assert.equal(await watch.ended, 'error', 'an outage cuts open watches abruptly');
  assert.equal(server.failingRequests, true);
  for (const path of ['/api/v1/nodes', '/api/v1/nodes/a', '/api/v1/nodes?watch=1', '/apis/wirelane.io/v1alpha1/peers']) {
    const response = await fetch(`${server.url}${path}`);
    assert.equal(response.status, 503, path);
    assert.deepEqual(await response.json(), {
      apiVersion: 'v1',
      kind: 'Status',
      metadata: {},
      status: 'Failure',
      message: 'injected fault: the test API server answers 503 to every request',
      reason: 'ServiceUnavailable',
      code: 503,
    });
  }
  const core = cluster.kubeconfig.makeApiClient(CoreV1Api);
  await assert.rejects(core.listNode(), { code: 503 });

  server.stopFailingRequests();
  assert.equal(server.failingRequests, false);
  assert.equal((await fetch(`${server.url}/api/v1/nodes`)).status, 200);
  // Counted and timed like any other request.
  const lists = server.requestsOf('list', 'nodes');
  assert.deepEqual(lists.map((r) => r.status), [503, 503, 200]);
  assert.ok(lists.every((r, i) => i === 0 || r.at >= (lists[i - 1]?.at ?? 0)));
});

test('failRequests for a period ends by itself, and can be narrowed to verbs and resources', async (t) => {
  const { server } = await startCluster(t);
  server.create('nodes', node('a'));
  server.failRequests({ forMs: 300, verbs: ['list'], resources: ['nodes'] });
  assert.equal((await fetch(`${server.url}/api/v1/nodes`)).status, 500);
  assert.equal((await fetch(`${server.url}/api/v1/nodes/a`)).status, 200, 'a GET is not a list');
  assert.equal((await fetch(`${server.url}/apis/wirelane.io/v1alpha1/peers`)).status, 200, 'another resource');
  await until('the outage to run out', () => !server.failingRequests, 3000);
  assert.equal((await fetch(`${server.url}/api/v1/nodes`)).status, 200);
});

test('cutWatchesEvery ends every open watch again and again until switched off', async (t) => {
  const { server } = await startCluster(t);
  server.create('nodes', node('a'));
  server.cutWatchesEvery(100);
  const first = openWatch(`${server.url}/api/v1/nodes?watch=true`);
  assert.equal(await first.ended, 'end');
  assert.deepEqual(first.lines.map((l) => (JSON.parse(l) as { type: string }).type), ['ADDED']);
  const second = openWatch(`${server.url}/api/v1/nodes?watch=true&resourceVersion=${server.resourceVersion}`);
  assert.equal(await second.ended, 'end');

  server.cutWatchesEvery(100, { abrupt: true });
  assert.equal(await openWatch(`${server.url}/api/v1/nodes?watch=true`).ended, 'error');

  server.cutWatchesEvery(0);
  const kept = openWatch(`${server.url}/api/v1/nodes?watch=true&resourceVersion=${server.resourceVersion}`);
  await until('the watch to be open', () => server.openWatches('nodes') === 1);
  server.create('nodes', node('b'));
  await until('the event to arrive', () => kept.lines.length === 1);
  assert.equal(server.openWatches('nodes'), 1, 'no cut after switching off');
  server.dropWatches();
  assert.equal(await kept.ended, 'end');
});

test('answerWatches: every watch gets 410 Gone, in the stream or as the HTTP status', async (t) => {
  const { server } = await startCluster(t);
  server.create('nodes', node('a'));
  const from = server.resourceVersion;
  server.answerWatches('gone-event');
  const events = await watchEvents(`${server.url}/api/v1/nodes?watch=true&resourceVersion=${from}`);
  assert.deepEqual(events.map((e) => [e.type, e.object.code, e.object.reason]), [['ERROR', 410, 'Expired']]);

  server.answerWatches('gone-status');
  const response = await fetch(`${server.url}/api/v1/nodes?watch=true&resourceVersion=${from}`);
  assert.equal(response.status, 410);
  assert.equal(((await response.json()) as { reason: string }).reason, 'Expired');
  assert.equal((await fetch(`${server.url}/api/v1/nodes`)).status, 200, 'lists are not affected');

  server.answerWatches('served');
  const watch = openWatch(`${server.url}/api/v1/nodes?watch=true&resourceVersion=${from}`);
  await until('the watch to be open', () => server.openWatches('nodes') === 1);
  server.dropWatches();
  assert.equal(await watch.ended, 'end');
  assert.deepEqual(watch.lines, []);
});

test('delayLists answers late with the state of when the list was asked', async (t) => {
  const { server } = await startCluster(t);
  server.create('nodes', node('a'));
  const asked = server.resourceVersion;
  server.delayLists(400, 'nodes');
  const started = Date.now();
  const pending = fetch(`${server.url}/api/v1/nodes`).then((r) => r.json() as Promise<{ metadata: { resourceVersion: string }; items: KubeObject[] }>);
  await server.waitForRequests('list', 'nodes', 1);
  server.create('nodes', node('b'));
  const list = await pending;
  assert.ok(Date.now() - started >= 400, 'the answer came after the delay');
  assert.equal(list.metadata.resourceVersion, asked);
  assert.deepEqual(list.items.map((o) => o.metadata.name), ['a']);
  const peers = Date.now();
  await fetch(`${server.url}/apis/wirelane.io/v1alpha1/peers`);
  assert.ok(Date.now() - peers < 400, 'another resource is not delayed');

  server.delayLists(0, 'nodes');
  const now = (await (await fetch(`${server.url}/api/v1/nodes`)).json()) as { items: KubeObject[] };
  assert.deepEqual(now.items.map((o) => o.metadata.name), ['a', 'b']);
});

test('setResourceAnswer: a resource answers 404 as a missing CRD or 403 as RBAC does, and comes back', async (t) => {
  const { server } = await startCluster(t);
  server.create('peers', { metadata: { name: 'p' }, spec: {} });
  const peersUrl = `${server.url}/apis/wirelane.io/v1alpha1/peers`;
  const watch = openWatch(`${peersUrl}?watch=true&resourceVersion=${server.resourceVersion}`);
  await until('the watch to be open', () => server.openWatches('peers') === 1);

  server.setResourceAnswer('peers', 'missing');
  assert.equal(await watch.ended, 'end', 'open watches on a removed CRD end');
  for (const url of [peersUrl, `${peersUrl}?watch=true`, `${peersUrl}/p`]) {
    const response = await fetch(url);
    assert.equal(response.status, 404, url);
    assert.equal(((await response.json()) as { reason: string }).reason, 'NotFound');
  }
  assert.equal((await fetch(`${server.url}/api/v1/nodes`)).status, 200, 'other resources are served');

  server.setResourceAnswer('peers', 'forbidden');
  const forbidden = await fetch(peersUrl);
  assert.equal(forbidden.status, 403);
  const status = (await forbidden.json()) as { reason: string; message: string };
  assert.equal(status.reason, 'Forbidden');
  assert.match(status.message, /cannot list resource "peers"/);

  server.setResourceAnswer('peers', 'served');
  const list = (await (await fetch(peersUrl)).json()) as { items: KubeObject[] };
  assert.deepEqual(list.items.map((o) => o.metadata.name), ['p']);
});

test('a resourceVersion newer than the server has is answered 504 ResourceVersionTooLarge', async (t) => {
  const { server } = await startCluster(t);
  server.create('nodes', node('a'));
  const future = Number(server.resourceVersion) + 10;
  for (const url of [`${server.url}/api/v1/nodes?resourceVersion=${future}`, `${server.url}/api/v1/nodes?watch=1&resourceVersion=${future}`]) {
    const response = await fetch(url);
    assert.equal(response.status, 504, url);
    const status = (await response.json()) as { reason: string; details: { causes: { reason: string }[] } };
    assert.equal(status.reason, 'Timeout');
    assert.deepEqual(status.details.causes.map((c) => c.reason), ['ResourceVersionTooLarge']);
  }
  assert.equal((await fetch(`${server.url}/api/v1/nodes?resourceVersion=${server.resourceVersion}`)).status, 200);
});

function lease(name: string, location: string, holder: string): V1Lease {
  return {
    metadata: { name, namespace: 'wirelane', labels: { 'wirelane.io/location': location } },
    spec: { holderIdentity: holder, leaseDurationSeconds: 10, renewTime: new Date('2026-12-02T10:00:00.000Z') },
  };
}

test('Leases: created, replaced with resourceVersion preconditions (409 stale, 422 none), and watched by label selector', async (t) => {
  const cluster = await startCluster(t);
  const coordination = cluster.kubeconfig.makeApiClient(CoordinationV1Api);
  const selector = 'wirelane.io/location=east';
  const east = await cluster.inform(
    '/apis/coordination.k8s.io/v1/namespaces/wirelane/leases',
    () => coordination.listNamespacedLease({ namespace: 'wirelane', labelSelector: selector }),
    selector,
  );
  const a = await coordination.createNamespacedLease({ namespace: 'wirelane', body: lease('a', 'east', 'a') });
  await coordination.createNamespacedLease({ namespace: 'wirelane', body: lease('c', 'west', 'c') });
  await assert.rejects(coordination.createNamespacedLease({ namespace: 'wirelane', body: lease('a', 'east', 'a') }), { code: 409 });

  const renewed = await coordination.replaceNamespacedLease({
    name: 'a',
    namespace: 'wirelane',
    body: { ...a, spec: { ...a.spec, renewTime: new Date('2026-12-02T10:00:05.000Z') } },
  });
  assert.notEqual(renewed.metadata?.resourceVersion, a.metadata?.resourceVersion);
  // A renewal from a stale copy, or without a version at all, is refused as a real server does.
  await assert.rejects(coordination.replaceNamespacedLease({ name: 'a', namespace: 'wirelane', body: a }), { code: 409 });
  const { resourceVersion: _rv, ...unversioned } = a.metadata ?? {};
  await assert.rejects(coordination.replaceNamespacedLease({ name: 'a', namespace: 'wirelane', body: { ...a, metadata: unversioned } }), { code: 422 });
  const read = await coordination.readNamespacedLease({ name: 'a', namespace: 'wirelane' });
  assert.equal(read.metadata?.resourceVersion, renewed.metadata?.resourceVersion);
  assert.equal(cluster.server.requestCount('update', 'leases'), 3);

  await until('the east watch to see a created and renewed', () => east.events.join() === 'add wirelane/a,update wirelane/a');
  // c (west) was never delivered to the east watch: neither by the list nor by the stream.
  assert.deepEqual(namesIn(east.list()), ['a']);
  // Moved out of the selection: a DELETED for the east watch, as a real server sends.
  await coordination.replaceNamespacedLease({ name: 'a', namespace: 'wirelane', body: { ...read, metadata: { ...read.metadata, labels: { 'wirelane.io/location': 'west' } } } });
  await until('a to leave the east selection', () => east.events.at(-1) === 'delete wirelane/a');
});

test('deliveries: what watches sent, per client (User-Agent) and per resource', async (t) => {
  const cluster = await startCluster(t);
  const { url } = cluster.server;
  const watch = (client: string, path: string): AbortController => {
    const abort = new AbortController();
    void fetch(`${url}${path}?watch=true&resourceVersion=0`, { headers: { 'User-Agent': client }, signal: abort.signal })
      .then((r) => r.text())
      .catch(() => undefined);
    return abort;
  };
  const watches = [watch('agent-a', '/api/v1/nodes'), watch('agent-b', '/apis/coordination.k8s.io/v1/namespaces/wirelane/leases')];
  t.after(() => watches.forEach((w) => w.abort()));
  await until('both watches to open', () => cluster.server.openWatches() === 2);
  cluster.server.create('nodes', node('n1'));
  cluster.server.create('nodes', node('n2'));
  cluster.server.create('leases', lease('l1', 'east', 'l1') as KubeObject);
  await until('three deliveries', () => [...cluster.server.deliveries().values()].reduce((n, d) => n + d.events, 0) === 3);
  const a = cluster.server.deliveries().get('agent-a');
  const b = cluster.server.deliveries().get('agent-b');
  assert.deepEqual([a?.events, a?.watches, b?.events, b?.watches], [2, 1, 1, 1]);
  assert.ok(a !== undefined && a.bytes > JSON.stringify(node('n1')).length * 2, 'bytes count whole event lines');
  assert.deepEqual([...cluster.server.deliveries('leases').keys()], ['agent-b']);
  assert.deepEqual([...(a?.objects ?? [])], [['n1', 1], ['n2', 1]], 'which objects each client was told of');
  assert.deepEqual([...(b?.objects ?? [])], [['wirelane/l1', 1]]);
  cluster.server.resetDeliveries();
  assert.equal(cluster.server.deliveries().get('agent-a')?.events, 0);
});
