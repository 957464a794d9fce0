// Issue acceptance 4: a Peer (plain wireguard-go configured with `wirelane showconf peer`) and the
// pods reach each other; an allowed-location IP is reachable while annotated, and not after.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { runCommand } from '../../src/host/command.js';
import { generatePrivateKey, publicKeyOf } from '../../src/model/key.js';
import { cliPath } from '../../src/sandbox/mesh-cluster.js';
import { startMeshCluster } from '../harness/mesh-cluster.js';
import { until } from '../support/wait.js';
import { AGENT_TOOLS, capabilitySkip } from '../support/capability.js';

const skip = await capabilitySkip('mesh integration tests', AGENT_TOOLS);

const PEER_IP = '10.5.0.1';
const LOCATION_IP = '10.99.0.1';

test('a Peer outside the cluster and the pods reach each other', { skip }, async (t) => {
  const { cluster } = await startMeshCluster(t, {
    nodes: [
      { name: 'a', location: 'east' },
      { name: 'b', location: 'east' },
      { name: 'c', location: 'west' },
    ],
    source: 'file',
    outside: [{ name: 'laptop', underlayAddress: '172.31.1.1/16' }],
    agentArgs: ['--resync-period', '2s'],
  });
  const privateKey = generatePrivateKey();
  await cluster.editClusterFile((objects) =>
    objects.push({
      apiVersion: 'wirelane.io/v1alpha1',
      kind: 'Peer',
      metadata: { name: 'laptop' },
      spec: { allowedIPs: [`${PEER_IP}/32`], publicKey: publicKeyOf(privateKey) },
    }),
  );
  for (const n of ['a', 'b', 'c']) cluster.startAgent(n);
  await cluster.waitReady();

  // The Peer's side, configured by hand the way an operator would.
  const showconf = await runCommand(process.execPath, [cliPath(), 'showconf', 'peer', 'laptop', '--from', cluster.clusterFile]);
  const conf = showconf.stdout.replace('[Interface]\n', `[Interface]\nPrivateKey = ${privateKey}\nListenPort = 51820\n`);
  const laptop = cluster.sandbox.outside[0]!;
  const iface = `${cluster.sandbox.prefix}pp`;
  const dir = await mkdtemp(join(tmpdir(), 'wirelane-peer-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'wg.conf'), conf, { mode: 0o600 });
  cluster.sandbox.spawn(laptop, 'wireguard-go', ['-f', iface]);
  await until('the peer device', async () => (await cluster.sandbox.exec(laptop, 'ip', ['link', 'show', iface], { allowFailure: true })).exitCode === 0);
  for (const args of [['wg', 'setconf', iface, join(dir, 'wg.conf')], ['ip', 'addr', 'add', `${PEER_IP}/32`, 'dev', iface], ['ip', 'link', 'set', iface, 'up'], ['ip', 'route', 'add', '10.244.0.0/16', 'dev', iface]]) {
    await cluster.sandbox.exec(laptop, args[0]!, args.slice(1));
  }

  for (const pod of cluster.sandbox.pods) {
    assert.ok(await cluster.waitPing(laptop, pod.ip), `the Peer reaches ${pod.name}`);
  }
  for (const pod of cluster.sandbox.pods) {
    assert.ok(await cluster.waitPing(pod, PEER_IP), `${pod.name} reaches the Peer`);
  }
});

test('an allowed-location IP is reachable while annotated and unreachable once the annotation is gone', { skip }, async (t) => {
  const { cluster } = await startMeshCluster(t, {
    nodes: [
      { name: 'a', location: 'east' },
      { name: 'b', location: 'east' },
      { name: 'c', location: 'west', annotations: { 'wirelane.io/allowed-location-ips': '10.99.0.0/24' } },
    ],
    source: 'file',
    agentArgs: ['--resync-period', '2s'],
  });
  // A network of location west that is not a pod network: an address behind its leader c.
  const c = cluster.sandbox.node('c');
  // (On lo: this kernel has no dummy links.)
  await cluster.sandbox.exec(c, 'ip', ['addr', 'add', `${LOCATION_IP}/32`, 'dev', 'lo']);
  for (const n of ['a', 'b', 'c']) cluster.startAgent(n);
  await cluster.waitReady();
  const podB = cluster.sandbox.node('b').pods[0]!;
  assert.ok(await cluster.waitPing(podB, LOCATION_IP), 'a pod of another location reaches the allowed-location IP');

  await cluster.editClusterFile((objects) => {
    const node = objects.find((o) => (o['metadata'] as { name: string }).name === 'c') as { metadata: { annotations: Record<string, string> } };
    delete node.metadata.annotations['wirelane.io/allowed-location-ips'];
  });
  await until('the allowed-location IP to become unreachable', async () => !(await cluster.ping(podB, LOCATION_IP)), 15_000, 200);
  assert.ok(await cluster.ping(podB, c.pods[0]!.ip), 'the rest of location west stays reachable');
});
