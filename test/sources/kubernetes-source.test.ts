import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { createLogger } from '../../src/observability/logger.js';
import { loadKubeAccess } from '../../src/sources/kubernetes/kube-access.js';
import { KubernetesSource } from '../../src/sources/kubernetes/kubernetes-source.js';
import { describeProblem } from '../../src/sources/problem.js';
import { decodeServiceInput } from '../../src/sources/service-input.js';
import { startKubeApiServer } from '../kube-apiserver/index.js';
import { until } from '../support/wait.js';

const log = createLogger('silent');

async function startSource(t: TestContext) {
  const server = await startKubeApiServer();
  const dir = await mkdtemp(join(tmpdir(), 'wirelane-kube-'));
  await server.writeKubeconfig(join(dir, 'kubeconfig'));
  server.create('nodes', { metadata: { name: 'a', annotations: { 'wirelane.io/location': 'eu' } } });
  server.create('peers', { apiVersion: 'wirelane.io/v1alpha1', kind: 'Peer', metadata: { name: 'p' }, spec: { allowedIPs: ['10.5.0.1/32'] } });
  server.create('services', { metadata: { name: 's', namespace: 'default' }, spec: { clusterIP: '10.96.0.1' } });
  server.create('endpointslices', { metadata: { name: 's-1', namespace: 'default', labels: { 'kubernetes.io/service-name': 's' } }, addressType: 'IPv4', endpoints: [] });
  const source = new KubernetesSource(await loadKubeAccess(join(dir, 'kubeconfig')), log, true);
  let changes = 0;
  t.after(async () => {
    await source.stop();
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });
  await source.start(() => changes++);
  const names = (kind: string) => source.snapshot().filter((o) => o.kind === kind).map((o) => o.object.metadata?.name).sort();
  return { server, source, names, changes: () => changes };
}

test('the source lists nodes, peers, services and endpoint slices and follows watch events', async (t) => {
  const { server, names, changes } = await startSource(t);
  assert.deepEqual(names('Node'), ['a']);
  assert.deepEqual(names('Peer'), ['p']);
  assert.deepEqual(names('Service'), ['s']);
  assert.deepEqual(names('EndpointSlice'), ['s-1']);
  const before = changes();
  server.create('nodes', { metadata: { name: 'b' } });
  server.delete('peers', 'p');
  await until('the new node and the deleted peer', () => names('Node').length === 2 && names('Peer').length === 0);
  assert.ok(changes() > before);
});

test('after the watch history expires and the connection drops, the source re-lists and converges', async (t) => {
  const { server, names } = await startSource(t);
  const lists = server.requestCount('list', 'nodes');
  server.dropWatches({ abrupt: true });
  server.delete('nodes', 'a');
  server.create('nodes', { metadata: { name: 'c' } });
  server.expireHistory();
  await until('a re-list that drops the deleted node', () => names('Node').join() === 'c', 8000);
  assert.ok(server.requestCount('list', 'nodes') > lists);
});

test('the publisher merge-patches only what differs, and null removes an annotation', async (t) => {
  const { server, source } = await startSource(t);
  const annotations = () => server.get('nodes', 'a')?.metadata?.annotations ?? {};
  assert.equal(await source.publisher.publishNode('a', { 'wirelane.io/key': 'K', 'wirelane.io/location': null }), true);
  assert.deepEqual(annotations(), { 'wirelane.io/key': 'K' });
  await until('the source to see the patch', () =>
    source.snapshot().some((o) => o.object.metadata?.annotations?.['wirelane.io/key'] === 'K'));
  const patches = server.requestCount('patch', 'nodes');
  assert.equal(await source.publisher.publishNode('a', { 'wirelane.io/key': 'K', 'wirelane.io/location': null }), false);
  assert.equal(server.requestCount('patch', 'nodes'), patches);
});

test('the publisher removes the agent-written annotations, and only those', async (t) => {
  const { server, source } = await startSource(t);
  const annotations = () => server.get('nodes', 'a')?.metadata?.annotations ?? {};
  await source.publisher.publishNode('a', { 'wirelane.io/key': 'K', 'wirelane.io/last-seen': '1700000000' });
  assert.deepEqual(await source.publisher.unpublishNode('a'), ['Node a: wirelane.io/key, wirelane.io/last-seen']);
  assert.deepEqual(annotations(), { 'wirelane.io/location': 'eu' }, "the operator's annotation stays");
  assert.deepEqual(await source.publisher.unpublishNode('a'), [], 'nothing left to remove');
});

test('Services and slices are held decoded: a re-list at the same versions keeps them, an update is decoded anew, a bad one keeps its problem', async (t) => {
  const { server, source } = await startSource(t);
  const slice = () => source.snapshot().find((o) => o.kind === 'EndpointSlice')!;
  const held = slice();
  // Not the body: the identity, and the decoded form beside it.
  assert.deepEqual(JSON.parse(JSON.stringify(held.object)), { metadata: { name: 's-1', namespace: 'default', resourceVersion: held.object.metadata?.resourceVersion } });
  assert.deepEqual(decodeServiceInput(source.snapshot()).slices.map((s) => s.name), ['s-1']);
  // A re-list with nothing changed keeps the held object, so nothing is decoded again.
  const listed = () => source.resourceStatus().find((s) => s.kind === 'EndpointSlice')?.lastSynced ?? 0;
  const before = listed();
  server.dropWatches({ abrupt: true });
  server.expireHistory();
  // lastSynced is set with the store's replacement, in the same turn.
  await until('a re-list of the slices', () => listed() > before, 8000);
  assert.equal(slice().object, held.object);
  // An update is decoded when it arrives, a bad address reported with its field.
  const body = { metadata: { name: 's-1', namespace: 'default', labels: { 'kubernetes.io/service-name': 's' } }, addressType: 'IPv4' };
  server.update('endpointslices', { ...body, endpoints: [{ addresses: ['10.244.0.500'] }] });
  await until('the bad update', () => slice().object !== held.object);
  assert.deepEqual(decodeServiceInput(source.snapshot()).problems.map(describeProblem), ['EndpointSlice "default/s-1": endpoints[0].addresses[0]: "10.244.0.500" is not an IP address']);
  const bad = slice().object;
  server.update('endpointslices', { ...body, endpoints: [{ addresses: ['10.244.0.5'] }] });
  await until('the fixed update', () => slice().object !== bad);
  const decoded = decodeServiceInput(source.snapshot());
  assert.deepEqual(decoded.problems, []);
  assert.deepEqual(decoded.slices[0]?.endpoints.map((e) => e.address.value), [0x0af40005n]);
});
