// The manifests an operator applies must match what the agent does: the Peer schema what the
// decoder requires, RBAC exactly the API calls the Kubernetes source makes, the DaemonSet's
// arguments what the agent accepts.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { parseArgs } from 'node:util';
import { agent, parseAgentConfig } from '../../src/cli/agent.js';
import { decodePeer } from '../../src/sources/peer.js';

const DEPLOY = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..', '..', 'deploy');
// `any`: the tests walk deep into arbitrary manifest YAML and assert on what they find.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Manifest = Record<string, any>;
const docs = (file: string): Manifest[] => parseAllDocuments(readFileSync(join(DEPLOY, file), 'utf8')).map((d) => d.toJS() as Manifest);

test('the Peer schema requires what the decoder requires', () => {
  const [crd] = docs('crd-peer.yaml');
  const spec = crd!.spec.versions[0].schema.openAPIV3Schema.properties.spec;
  assert.deepEqual(spec.required, ['allowedIPs', 'publicKey']);
  assert.throws(() => decodePeer({ metadata: { name: 'p' }, spec: { publicKey: 'x' } }), /allowedIPs/);
  assert.deepEqual(Object.keys(spec.properties).sort(), ['allowedIPs', 'endpoint', 'persistentKeepalive', 'presharedKey', 'publicKey']);
});

test('RBAC grants exactly the calls the Kubernetes source makes', () => {
  const role = docs('rbac.yaml').find((d) => d['kind'] === 'ClusterRole')!;
  assert.deepEqual(role['rules'], [
    { apiGroups: [''], resources: ['nodes'], verbs: ['list', 'watch', 'patch'] },
    { apiGroups: ['wirelane.io'], resources: ['peers'], verbs: ['list', 'watch'] },
    { apiGroups: [''], resources: ['services'], verbs: ['list', 'watch'] },
    { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['list', 'watch'] },
  ]);
});

test("the DaemonSet's arguments are ones the agent accepts", () => {
  const [ds] = docs('daemonset.yaml');
  const container = ds!.spec.template.spec.containers[0];
  const [command, ...args] = (container.args as string[]).map((a) => a.replace('$(NODE_NAME)', 'node-1'));
  assert.equal(command, 'agent');
  const parsed = parseArgs({ args, options: agent.options, strict: true });
  const saved = process.env['KUBECONFIG'];
  process.env['KUBECONFIG'] = '/dev/null'; // stands in for the in-cluster credentials
  const config = parseAgentConfig(parsed.values);
  if (saved === undefined) delete process.env['KUBECONFIG'];
  else process.env['KUBECONFIG'] = saved;
  assert.equal(config.hostname, 'node-1');
  assert.equal(config.cleanUp, true);
  assert.equal(container.readinessProbe.httpGet.path, '/readyz');
});

test('the DaemonSet gives eBPF mode the host cgroup v2 root, bpffs and PID namespace', () => {
  const [ds] = docs('daemonset.yaml');
  const pod = ds!.spec.template.spec;
  const container = pod.containers[0];
  assert.equal(pod.hostPID, true);
  const volume = (name: string) => pod.volumes.find((v: Manifest) => v['name'] === name)?.hostPath?.path;
  const mountOf = (path: string) => container.volumeMounts.find((m: Manifest) => m['mountPath'] === path);
  const cgroupRoot = (container.args as string[]).find((a) => a.startsWith('--cgroup-root='))?.split('=')[1];
  assert.equal(volume(mountOf(cgroupRoot!)?.name), '/sys/fs/cgroup');
  assert.equal(volume(mountOf('/sys/fs/bpf')?.name), '/sys/fs/bpf');
  assert.equal(mountOf('/sys/fs/bpf')?.mountPropagation, 'Bidirectional');
});
