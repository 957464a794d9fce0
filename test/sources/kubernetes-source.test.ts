import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { createLogger } from '../../src/observability/logger.js';
import { KubernetesSource, loadKubeConfig } from '../../src/sources/kubernetes/kubernetes-source.js';
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
  const source = new KubernetesSource(loadKubeConfig(join(dir, 'kubeconfig')), log, true);
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
