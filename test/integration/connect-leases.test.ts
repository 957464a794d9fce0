// `wirelane connect` judges nodes by the heartbeat Leases; last-seen is no heartbeat any more (it
// is fresh only where an agent just changed its Node). Until a Lease read succeeded, nothing is
// applied: here a's last-seen is fresh and c's is not, so judging by last-seen alone would configure
// a's segment and drop c's. A later failed read judges the nodes by the last Leases read as of then:
// three heartbeat windows of failing reads drop nobody, while a new Peer still comes in.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { SpawnedProcess } from '../../src/host/command.js';
import { generatePrivateKey, publicKeyOf } from '../../src/model/key.js';
import { cliPath } from '../../src/sandbox/mesh-cluster.js';
import { annotationsOf, startMeshCluster } from '../harness/mesh-cluster.js';
import type { KubeApiServer, KubeObject } from '../kube-apiserver/index.js';
import { AGENT_TOOLS, capabilitySkip } from '../support/capability.js';
import { until } from '../support/wait.js';

const skip = await capabilitySkip('connect integration test', AGENT_TOOLS);

const RESYNC_SECONDS = 3;
const WINDOW_MS = 2 * RESYNC_SECONDS * 1000;
const LAST_SEEN = 'wirelane.io/last-seen';

test('connect: nothing is applied before a Lease read succeeded; failed reads later age nobody', { skip, timeout: 300_000 }, async (t) => {
  const world = await startMeshCluster(t, {
    nodes: [
      { name: 'a', location: 'east' },
      { name: 'c', location: 'west' },
    ],
    source: 'kubernetes',
    outside: [{ name: 'laptop', underlayAddress: '172.31.1.1/16' }],
    agentArgs: ['--resync-period', `${RESYNC_SECONDS}s`],
  });
  const { cluster } = world;
  const api = world.api as KubeApiServer;
  const { sandbox } = cluster;
  const laptop = sandbox.outside[0]!;
  for (const n of ['a', 'c']) cluster.startAgent(n);
  await cluster.waitReady(undefined, 90_000);
  const keys = ['a', 'c'].map((n) => annotationsOf(world, n)['wirelane.io/key'] ?? '').sort();

  // c's last-seen old enough to judge c gone; a's written afresh, as alongside a change of a's.
  await until("c's last-seen to be older than a heartbeat window", () => Date.now() / 1000 - Number(annotationsOf(world, 'c')[LAST_SEEN]) > WINDOW_MS / 1000 + 1, 60_000, 200);
  api.failRequests({ status: 500, resources: ['leases'] });
  t.after(() => api.clearFaults());
  const a = api.get('nodes', 'a') as KubeObject;
  api.update('nodes', { ...a, metadata: { ...a.metadata, annotations: { ...a.metadata.annotations, [LAST_SEEN]: String(Math.floor(Date.now() / 1000)) } } });

  const stateDir = await mkdtemp(join(tmpdir(), 'wirelane-connect-'));
  t.after(() => rm(stateDir, { recursive: true, force: true }));
  const iface = `${sandbox.prefix}pc`;
  const log = join(stateDir, 'connect.log');
  const connectLog = () => readFile(log, 'utf8').catch(() => '');
  const child: SpawnedProcess = sandbox.spawn(laptop, process.execPath, [
    cliPath(), 'connect', 'laptop', '--kubeconfig', cluster.kubeconfig, '--allowed-ip', '10.5.0.1/32', '--interface', iface,
    '--state-dir', stateDir, '--resync-period', `${RESYNC_SECONDS}s`, '--persistent-keepalive', '0', '--log-level', 'debug',
  ], { stdout: { file: log }, stderr: { file: log } });
  let stopped = false;
  const stop = async (): Promise<number | undefined> => {
    stopped = true;
    await sandbox.stop(child, 20_000);
    return (await child).exitCode;
  };
  t.after(async () => {
    if (!stopped) await stop();
  });
  const waitFor = (what: string, check: () => boolean | Promise<boolean>, ms = 60_000) =>
    until(what, check, ms, 200).catch(async (err: Error) => assert.fail(`${err.message}\n--- connect\n${await connectLog()}`));
  const count = async (text: string) => (await connectLog()).split(text).length - 1;
  const peers = async () => (await sandbox.exec(laptop, 'wg', ['show', iface, 'peers'], { allowFailure: true })).stdout.split('\n').filter(Boolean).sort();

  await waitFor('three syncs to find the Leases unreadable', async () => (await count('nothing is applied until the heartbeat Leases have been read once')) >= 3);
  assert.deepEqual(await peers(), [], `nothing applied before a Lease read succeeded\n${await connectLog()}`);

  api.clearFaults();
  await waitFor('both leaders to be configured', async () => (await peers()).join() === keys.join());
  // (Peers are WireGuard peers of this host too: one is created below.)

  // The Leases fail again, for three heartbeat windows: every sample still has both leaders.
  api.failRequests({ status: 500, resources: ['leases'] });
  const failingSince = await count('judging nodes by the Leases read at');
  const phone = publicKeyOf(generatePrivateKey());
  api.create('peers', { apiVersion: 'wirelane.io/v1alpha1', kind: 'Peer', metadata: { name: 'phone' }, spec: { allowedIPs: ['10.5.0.2/32'], publicKey: phone } });
  const outageEnds = Date.now() + 3 * WINDOW_MS;
  while (Date.now() < outageEnds) {
    const now = await peers();
    assert.deepEqual(keys.filter((k) => now.includes(k)), keys, `both leaders stay while the Leases cannot be read\n${await connectLog()}`);
    await sleep(500);
  }
  assert.ok((await count('judging nodes by the Leases read at')) - failingSince >= 3, `syncs ran during the outage\n${await connectLog()}`);
  assert.ok((await peers()).includes(phone), `a Peer created meanwhile is configured\n${await connectLog()}`);
  api.clearFaults();
  await waitFor('connect to read the Leases again', async () => (await connectLog()).includes('heartbeat Leases read again'));
  assert.equal(await stop(), 0, `connect exits 0\n${await connectLog()}`);
});
