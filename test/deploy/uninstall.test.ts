// deploy/uninstall/daemonset.yaml must run `wirelane cleanup` as the CLI accepts it, on every node the agent
// ran on, with the host paths where the agent's DaemonSet keeps what cleanup removes.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseArgs } from 'node:util';
import { parseAllDocuments } from 'yaml';
import { parsePlacementFlags } from '../../src/cli/agent.js';
import { cleanup } from '../../src/cli/cleanup.js';

const DEPLOY = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..', '..', 'deploy');
// `any`: the test walks deep into arbitrary manifest YAML and asserts on what it finds.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Manifest = Record<string, any>;
const podSpec = (file: string): Manifest => (parseAllDocuments(readFileSync(join(DEPLOY, file), 'utf8'))[0]!.toJS() as Manifest).spec.template.spec;

test('the uninstall DaemonSet runs wirelane cleanup with flags it accepts, before its pod is ready', () => {
  const pod = podSpec('uninstall/daemonset.yaml');
  const [init] = pod.initContainers;
  const [command, ...args] = (init.args as string[]).map((a) => a.replace('$(NODE_NAME)', 'node-1'));
  assert.equal(command, 'cleanup');
  const parsed = parseArgs({ args, options: cleanup.options, strict: true });
  assert.equal(parsed.values['hostname'], 'node-1');
  assert.equal(parsed.values['annotations'], 'true');
  assert.deepEqual(parsePlacementFlags(parsed.values), { interface: 'wirelane0', cniConfFile: '/etc/cni/net.d/10-wirelane.conflist' });
  assert.equal(pod.hostNetwork, true, "the host's links, routes and iptables");
  assert.equal(init.securityContext.privileged, true);
});

test("the uninstall DaemonSet reaches the nodes and host paths of the agent's", () => {
  const agent = podSpec('daemonset.yaml');
  const uninstall = podSpec('uninstall/daemonset.yaml');
  assert.deepEqual(uninstall.tolerations, agent.tolerations);
  assert.equal(uninstall.serviceAccountName, agent.serviceAccountName, 'RBAC to list and patch its Node');
  assert.equal(uninstall.initContainers[0].image, agent.containers[0].image);
  const hostPathAt = (spec: Manifest, container: Manifest, mountPath: string) => {
    const mount = container.volumeMounts.find((m: Manifest) => m['mountPath'] === mountPath);
    return spec.volumes.find((v: Manifest) => v['name'] === mount?.name)?.hostPath?.path;
  };
  // wireguard-go sockets, the xtables lock, the bpffs with the pins, the CNI configuration.
  for (const path of ['/var/run/wireguard', '/run/xtables.lock', '/sys/fs/bpf', '/etc/cni/net.d']) {
    assert.equal(hostPathAt(uninstall, uninstall.initContainers[0], path), hostPathAt(agent, agent.containers[0], path), path);
  }
});
