// `kubectl apply -f deploy/` is the whole install: every manifest one the Kubernetes API accepts, in
// an order that applies in one go, naming the image that scripts/build-image.mjs builds.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { test } from 'node:test';
import { parseArgs } from 'node:util';
import { parseAllDocuments } from 'yaml';
import { agent } from '../../src/cli/agent.js';
import { validateManifest } from './kubernetes-schema.js';

const ROOT = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..', '..');
const DEPLOY = join(ROOT, 'deploy');
// `any`: the tests walk deep into arbitrary manifest YAML and assert on what they find.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Manifest = Record<string, any>;

const isManifestFile = (name: string) => /\.(ya?ml|json)$/.test(name);
const documentsOf = (path: string): Manifest[] => parseAllDocuments(readFileSync(path, 'utf8')).map((d) => d.toJS() as Manifest);
const describe = (m: Manifest) => `${m['kind']} ${m['metadata']?.name}`;

/** What `kubectl apply -f deploy/` reads: the directory's manifest files in name order, not its subdirectories. */
function applied(): { file: string; manifest: Manifest }[] {
  return readdirSync(DEPLOY)
    .filter((f) => isManifestFile(f) && statSync(join(DEPLOY, f)).isFile())
    .sort()
    .flatMap((file) => documentsOf(join(DEPLOY, file)).map((manifest) => ({ file, manifest })));
}

/** Every manifest under deploy/, subdirectories included. */
function allManifests(dir = DEPLOY): { file: string; manifest: Manifest }[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return allManifests(path);
    return isManifestFile(e.name) ? documentsOf(path).map((manifest) => ({ file: relative(DEPLOY, path), manifest })) : [];
  });
}

function podSpecsOf(manifest: Manifest): Manifest[] {
  return manifest['spec']?.template?.spec === undefined ? [] : [manifest['spec'].template.spec];
}

test('every manifest under deploy/ is one the Kubernetes API accepts: kind, every field, types, required fields', () => {
  const manifests = allManifests();
  assert.ok(manifests.length >= 7);
  for (const { file, manifest } of manifests) assert.deepEqual(validateManifest(manifest), [], `${file}: ${describe(manifest)}`);
});

test('the schema check rejects what the API rejects', () => {
  const daemonSet = (container: Manifest): Manifest => ({
    apiVersion: 'apps/v1',
    kind: 'DaemonSet',
    metadata: { name: 'x' },
    spec: { selector: { matchLabels: { a: 'b' } }, template: { metadata: { labels: { a: 'b' } }, spec: { containers: [{ name: 'c', image: 'i', ...container }] } } },
  });
  const crd = (property: Manifest): Manifest => ({
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: 'xs.example.io' },
    spec: {
      group: 'example.io',
      scope: 'Cluster',
      names: { kind: 'X', plural: 'xs' },
      versions: [{ name: 'v1', served: true, storage: true, schema: { openAPIV3Schema: { type: 'object', properties: { p: property } } } }],
    },
  });
  const container = '.spec.template.spec.containers[0]';
  const cases: [string, Manifest, string[]][] = [
    ['a misspelt field', daemonSet({ securityContext: { privilegd: true } }), [`${container}.securityContext.privilegd: unknown field`]],
    ['a field of another object', daemonSet({ hostNetwork: true }), [`${container}.hostNetwork: unknown field`]],
    ['a string for an integer', daemonSet({ ports: [{ containerPort: '1107' }] }), [`${container}.ports[0].containerPort: string "1107", want an integer`]],
    ['a value outside an enum', daemonSet({ ports: [{ containerPort: 1, protocol: 'tcp' }] }), [`${container}.ports[0].protocol: string "tcp" is not one of "SCTP", "TCP", "UDP"`]],
    ['a bad quantity', daemonSet({ resources: { requests: { cpu: 'lots' } } }), [`${container}.resources.requests.cpu: string "lots", want a number; "lots" is not a quantity`]],
    ['a missing required field', daemonSet({ volumeMounts: [{ name: 'v' }] }), [`${container}.volumeMounts[0].mountPath: required, missing`]],
    ['a map of strings with a number', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'n', labels: { a: 1 } } }, ['.metadata.labels.a: number 1, want a string']],
    ['an unknown keyword in a CRD schema', crd({ type: 'string', descripton: 'x' }), ['.spec.versions[0].schema.openAPIV3Schema.properties.p.descripton: unknown field']],
    ['an unknown apiVersion', { apiVersion: 'apps/v2', kind: 'DaemonSet' }, ['.: the API has no kind DaemonSet in apps/v2']],
    ['a type that is not a kind', { apiVersion: 'apps/v1', kind: 'DaemonSetSpec' }, ['.: the API has no kind DaemonSetSpec in apps/v1']],
  ];
  for (const [name, manifest, problems] of cases) assert.deepEqual(validateManifest(manifest), problems, name);
  // And what the data of the schema package lost is accepted again (see kubernetes-schema.ts).
  assert.deepEqual(validateManifest(crd({ type: 'string', description: 'd', 'x-kubernetes-preserve-unknown-fields': true })), []);
});

test('kubectl apply -f deploy/ installs everything in one go: each namespace before what lives in it', () => {
  const manifests = applied().map((a) => a.manifest);
  const kinds = new Set(manifests.map((m) => m['kind']));
  for (const kind of ['Namespace', 'CustomResourceDefinition', 'ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'DaemonSet']) {
    assert.ok(kinds.has(kind), `deploy/ has a ${kind}`);
  }
  const created = new Set<string>();
  for (const m of manifests) {
    const namespace = m['metadata']?.namespace;
    if (namespace !== undefined) assert.ok(created.has(namespace), `${describe(m)}: namespace ${namespace} is created before it`);
    if (m['kind'] === 'Namespace') created.add(m['metadata'].name);
  }
  assert.ok(!manifests.some((m) => m['metadata']?.name === 'wirelane-uninstall'), 'the uninstall DaemonSet is not part of the install');
});

test('every image in deploy/ is the one scripts/build-image.mjs builds: package.json name:version', () => {
  const built = spawnSync(process.execPath, [join(ROOT, 'scripts', 'build-image.mjs'), '--name'], { encoding: 'utf8' });
  assert.equal(built.status, 0, built.stderr);
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { name: string; version: string };
  assert.equal(built.stdout, `${pkg.name}:${pkg.version}\n`);
  const images = allManifests().flatMap(({ manifest }) =>
    podSpecsOf(manifest).flatMap((pod) => [...(pod['initContainers'] ?? []), ...pod['containers']].map((c: Manifest) => c['image'])),
  );
  assert.ok(images.length >= 4);
  for (const image of images) assert.equal(image, built.stdout.trim());
});

test('the ClusterRoleBinding binds the service account both DaemonSets run as', () => {
  const manifests = allManifests().map((a) => a.manifest);
  const account = manifests.find((m) => m['kind'] === 'ServiceAccount')!;
  const [subject] = manifests.find((m) => m['kind'] === 'ClusterRoleBinding')!['subjects'];
  assert.deepEqual(subject, { kind: 'ServiceAccount', name: account['metadata'].name, namespace: account['metadata'].namespace });
  for (const ds of manifests.filter((m) => m['kind'] === 'DaemonSet')) {
    assert.equal(ds['metadata'].namespace, account['metadata'].namespace, describe(ds));
    assert.equal(ds['spec'].template.spec.serviceAccountName, account['metadata'].name, describe(ds));
  }
});

test('the install keeps /metrics on loopback; the optional metrics Service scrapes the port its comment tells the DaemonSet to open', () => {
  const ds = applied().map((a) => a.manifest).find((m) => m['kind'] === 'DaemonSet')!;
  assert.ok(!applied().some((a) => a.manifest['kind'] === 'Service'), 'no metrics Service in the install itself');
  const agentContainer = ds['spec'].template.spec.containers.find((c: Manifest) => c['name'] === 'agent');
  const args = parseArgs({ args: (agentContainer.args as string[]).slice(1), options: agent.options, strict: true }).values;
  assert.equal(args['metrics-listen'], '127.0.0.1:1108');
  assert.equal(agentContainer.ports.find((p: Manifest) => p['name'] === 'health')?.containerPort, Number(String(args['listen']).split(':').pop()));
  const { manifest: service, file } = allManifests().find((a) => a.manifest['kind'] === 'Service')!;
  assert.equal(file, join('metrics', 'service.yaml'));
  assert.equal(service['spec'].clusterIP, 'None');
  assert.equal(service['metadata'].namespace, ds['metadata'].namespace);
  const podLabels = ds['spec'].template.metadata.labels as Record<string, string>;
  for (const [key, value] of Object.entries(service['spec'].selector as Record<string, string>)) assert.equal(podLabels[key], value, key);
  const [port] = service['spec'].ports;
  assert.deepEqual([port.port, port.targetPort, service['metadata'].annotations['prometheus.io/port']], [1108, 1108, '1108']);
  assert.match(readFileSync(join(DEPLOY, file), 'utf8'), /--metrics-listen=\$\(HOST_IP\):1108/);
  assert.ok(agentContainer.env.some((e: Manifest) => e['name'] === 'HOST_IP' && e['valueFrom'].fieldRef.fieldPath === 'status.hostIP'));
});
