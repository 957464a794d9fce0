// The manifests an operator applies must match what the agent does: the Peer schema what the
// decoder requires, RBAC exactly the API calls the Kubernetes source makes, the DaemonSet's
// arguments what the agent accepts.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { parseArgs } from 'node:util';
import { agent, parseAgentConfig } from '../../src/cli/agent.js';
import { wireguardGo } from '../../src/cli/wireguard-go.js';
import { cniNetworkOf } from '../../src/cni/conflist.js';
import { parseCidr } from '../../src/model/ip.js';
import { DEFAULT_LEASE_NAMESPACE } from '../../src/sources/lease.js';
import { decodePeer } from '../../src/sources/peer.js';
import { UAPI_DIR } from '../../src/wireguard/uapi-socket.js';

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
  // Heartbeats (sources/kubernetes/lease-heartbeats.ts): Leases in the one namespace the agent runs in.
  const heartbeats = docs('rbac.yaml').find((d) => d['kind'] === 'Role')!;
  assert.equal(heartbeats['metadata'].namespace, DEFAULT_LEASE_NAMESPACE);
  assert.deepEqual(heartbeats['rules'], [{ apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'list', 'watch', 'create', 'update'] }]);
  const binding = docs('rbac.yaml').find((d) => d['kind'] === 'RoleBinding')!;
  assert.deepEqual([binding['metadata'].namespace, binding['roleRef'].name, binding['subjects']], [
    DEFAULT_LEASE_NAMESPACE,
    heartbeats['metadata'].name,
    [{ kind: 'ServiceAccount', name: 'wirelane', namespace: 'wirelane' }],
  ]);
});

test("the CLI's optional roles grant exactly what its commands call", () => {
  const roles = new Map(docs('clients/rbac.yaml').map((d) => [d['metadata'].name as string, d['rules']]));
  // One LIST of each kind (cli/cluster-objects.ts).
  assert.deepEqual(roles.get('wirelane-view'), [
    { apiGroups: [''], resources: ['nodes', 'services'], verbs: ['list'] },
    { apiGroups: ['wirelane.io'], resources: ['peers'], verbs: ['list'] },
    { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['list'] },
    { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['list'] },
  ]);
  // Follows Nodes and Peers; reads, creates, patches and deletes its own Peer (peer/registration.ts).
  assert.deepEqual(roles.get('wirelane-connect'), [
    { apiGroups: [''], resources: ['nodes'], verbs: ['list', 'watch'] },
    { apiGroups: ['wirelane.io'], resources: ['peers'], verbs: ['list', 'watch', 'get', 'create', 'patch', 'delete'] },
    { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['list'] },
  ]);
});

/** The agent container's configuration as the agent parses it. */
function agentConfigOf(container: Manifest) {
  const [, ...args] = (container.args as string[]).map((a) => a.replace('$(NODE_NAME)', 'node-1'));
  const saved = process.env['KUBECONFIG'];
  process.env['KUBECONFIG'] = '/dev/null'; // stands in for the in-cluster credentials
  try {
    return parseAgentConfig(parseArgs({ args, options: agent.options, strict: true }).values);
  } finally {
    if (saved === undefined) delete process.env['KUBECONFIG'];
    else process.env['KUBECONFIG'] = saved;
  }
}

test("the DaemonSet's arguments are ones the agent accepts", () => {
  const [ds] = docs('daemonset.yaml');
  const container = ds!.spec.template.spec.containers[0];
  assert.equal(container.args[0], 'agent');
  assert.equal(agentConfigOf(container).hostname, 'node-1');
  // Its heartbeat Leases go where its Role lets it write them: its own namespace.
  assert.equal(agentConfigOf(container).leaseNamespace, ds!.metadata.namespace);
  assert.equal(container.readinessProbe.httpGet.path, '/readyz');
});

test("CNI mode: the init container installs the plugins the agent's configuration names into the host's /opt/cni/bin, the agent writes into the host's /etc/cni/net.d", () => {
  const [ds] = docs('daemonset.yaml');
  const pod = ds!.spec.template.spec;
  const config = agentConfigOf(pod.containers.find((c: Manifest) => c['name'] === 'agent'));
  assert.equal(config.cni, true);
  const hostPathOf = (container: Manifest, mountPath: string) =>
    pod.volumes.find((v: Manifest) => v['name'] === container['volumeMounts'].find((m: Manifest) => m['mountPath'] === mountPath)?.name)?.hostPath?.path;
  const agentContainer = pod.containers.find((c: Manifest) => c['name'] === 'agent');
  assert.equal(hostPathOf(agentContainer, dirname(config.cniConfFile)), '/etc/cni/net.d');
  const install = pod.initContainers.find((c: Manifest) => c['name'] === 'install-cni');
  assert.ok(install, 'an install-cni init container');
  assert.equal(install.image, agentContainer.image, 'the plugins come from the image the agent runs');
  assert.equal(hostPathOf(install, '/host/opt/cni/bin'), '/opt/cni/bin');
  const script = (install.command as string[]).join(' ');
  const network = cniNetworkOf({ podCIDRs: [parseCidr('10.244.0.0/24')], mtu: 1420 });
  assert.ok('list' in network);
  const named = [...network.list.plugins.flatMap((p) => [p.type, ...(typeof p['ipam'] === 'object' ? [(p['ipam'] as { type: string }).type] : [])]), 'loopback'];
  for (const plugin of named) assert.match(script, new RegExp(`\\b${plugin}\\b`), `${plugin} is installed`);
  assert.match(script, /\/usr\/lib\/cni\/\$plugin/, "copied from Debian's plugin directory in the image");
  const packages = readFileSync(join(DEPLOY, '..', 'image', 'packages.txt'), 'utf8');
  assert.match(packages, /^containernetworking-plugins\b/m, 'the image has the plugins');
});

test('a restart of the agent removes nothing: it runs with --clean-up=false', () => {
  const [ds] = docs('daemonset.yaml');
  assert.equal(agentConfigOf(ds!.spec.template.spec.containers[0]).cleanUp, false);
});

test("the DaemonSet runs wireguard-go in a container of its own, for the agent's interface, and the agent adopts it", () => {
  const [ds] = docs('daemonset.yaml');
  const pod = ds!.spec.template.spec;
  const [agentContainer, wireguard] = [pod.containers.find((c: Manifest) => c['name'] === 'agent'), pod.containers.find((c: Manifest) => c['name'] === 'wireguard')];
  assert.ok(wireguard, 'a wireguard container');
  const [command, ...args] = wireguard.args as string[];
  assert.equal(command, 'wireguard-go');
  const values = parseArgs({ args, options: wireguardGo.options, strict: true }).values;
  const config = agentConfigOf(agentContainer);
  assert.equal(values['interface'], config.interface);
  assert.equal(config.userspaceWireGuard, 'external');
  // The UAPI socket is how the agent finds and configures the device: both see the host's directory.
  const socketsVolume = (c: Manifest) => c['volumeMounts'].find((m: Manifest) => m['mountPath'] === UAPI_DIR)?.name;
  assert.equal(socketsVolume(wireguard), socketsVolume(agentContainer));
  assert.equal(pod.volumes.find((v: Manifest) => v['name'] === socketsVolume(wireguard))?.hostPath?.path, UAPI_DIR);
  assert.equal(wireguard.securityContext?.privileged, true, 'wireguard-go opens /dev/net/tun');
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
