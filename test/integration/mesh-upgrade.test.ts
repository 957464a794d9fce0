// A rolling upgrade from agents that predate Lease heartbeats. Such an agent judges every node by
// its last-seen annotation alone: while a Node looks like one of theirs (a key, a last-seen, no
// wirelane.io/heartbeat naming its last-seen), a real agent writes last-seen every half resync
// period; once that node announces Leases, it stops writing, and starts again when the node's agent
// is rolled back (its last-seen rewritten under the announcement left behind). The other way round, the real agent judges the older node
// by its last-seen alone: alive while it changes, gone once it stops. b runs no agent here: the test
// writes its Node as an older agent would, its endpoint inside b's own namespace.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { WIREGUARD_PORT } from '../../src/sandbox/mesh-cluster.js';
import { generatePrivateKey, publicKeyOf } from '../../src/model/key.js';
import { annotationsOf, metricOf, startMeshCluster } from '../harness/mesh-cluster.js';
import type { KubeApiServer, KubeObject } from '../kube-apiserver/index.js';
import { AGENT_TOOLS, capabilitySkip } from '../support/capability.js';
import { until } from '../support/wait.js';

const skip = await capabilitySkip('mesh integration tests', AGENT_TOOLS);

const RESYNC_SECONDS = 2;
const WINDOW_MS = 2 * RESYNC_SECONDS * 1000;
const LAST_SEEN = 'wirelane.io/last-seen';
const HEARTBEAT = 'wirelane.io/heartbeat';

test('mid-upgrade: last-seen is written every half resync period while an older agent may read it, and judged for it', { skip, timeout: 300_000 }, async (t) => {
  const world = await startMeshCluster(t, {
    nodes: [
      // One location: a leads it and has no remote segment whose tunnel could be judged broken
      // (b's agent is not there to answer), so none of a's annotations but last-seen moves.
      { name: 'a', location: 'east', annotations: { 'wirelane.io/leader': '' } },
      { name: 'b', location: 'east' },
    ],
    source: 'kubernetes',
    agentArgs: ['--resync-period', `${RESYNC_SECONDS}s`],
  });
  const { cluster } = world;
  const api = world.api as KubeApiServer;
  const b = cluster.sandbox.node('b');
  const olderKey = publicKeyOf(generatePrivateKey());
  // b's agent: `older` (before the Leases) writes its key, addresses and last-seen on its timer and
  // leaves any other annotation as it is; `upgraded` writes last-seen with its announcement.
  let agentOnB = 'older' as 'older' | 'upgraded' | 'stopped';
  const writeB = (): void => {
    const node = api.get('nodes', 'b') as KubeObject;
    const now = String(Math.floor(Date.now() / 1000));
    const annotations = {
      ...node.metadata.annotations,
      'wirelane.io/key': olderKey,
      'wirelane.io/endpoint': `${b.underlayIP}:${WIREGUARD_PORT}`,
      'wirelane.io/internal-ip': b.underlayCidr,
      [LAST_SEEN]: now,
      ...(agentOnB === 'upgraded' && { [HEARTBEAT]: `lease:${now}` }),
    };
    api.update('nodes', { ...node, metadata: { ...node.metadata, annotations } });
  };
  writeB();
  const bTimer = (async () => {
    for (;;) {
      await sleep(RESYNC_SECONDS * 1000);
      if (agentOnB === 'stopped') return;
      writeB();
    }
  })();
  t.after(async () => {
    agentOnB = 'stopped';
    await bTimer;
  });
  const readers = () => metricOf(cluster, 'a', 'wirelane_last_seen_readers');

  cluster.startAgent('a');
  await cluster.waitReady();
  await until('a to count b, judged by its last-seen', async () => (await metricOf(cluster, 'a', 'wirelane_nodes')) === 2, 60_000, 200);
  await until('a to see an older agent on b', async () => (await readers()) === 1, 60_000, 200);
  const ownLastSeen = () => annotationsOf(world, 'a')[LAST_SEEN] ?? '';
  assert.equal(annotationsOf(world, 'a')[HEARTBEAT], `lease:${ownLastSeen()}`, 'a announces its Lease heartbeats with its last-seen');

  // Nothing else of a's changes: each new last-seen is the timer's, not a write alongside a change.
  const others = (): string => JSON.stringify(Object.entries(annotationsOf(world, 'a')).filter(([k]) => k !== LAST_SEEN && k !== HEARTBEAT).sort());
  const unchanged = others();
  const keepsWriting = async (phase: string) => {
    const seen = new Set<string>();
    await until(`${phase}: a to write last-seen 4 times`, () => {
      assert.equal(others(), unchanged, `${phase}: a's other annotations stay as they are`);
      seen.add(ownLastSeen());
      return seen.size >= 4;
    }, 60_000, 100);
  };
  const writesNoMore = async (phase: string) => {
    await sleep(RESYNC_SECONDS * 1000); // a write decided before may still be on its way
    const stopped = ownLastSeen();
    await sleep(3 * RESYNC_SECONDS * 1000);
    assert.equal(ownLastSeen(), stopped, `${phase}: a writes last-seen no more`);
    assert.equal(others(), unchanged);
  };
  await keepsWriting('an older agent on b');
  assert.equal(await metricOf(cluster, 'a', 'wirelane_nodes'), 2, 'a still counts b');

  // b's agent is upgraded: it announces Leases. a stops writing last-seen on a timer.
  agentOnB = 'upgraded';
  writeB();
  await until('a to see nobody left who reads last-seen', async () => (await readers()) === 0, 60_000, 200);
  await writesNoMore('every node announces Leases');

  // b is rolled back: its older agent rewrites last-seen under the announcement it left behind.
  agentOnB = 'older';
  writeB();
  await until('a to see an older agent on b again', async () => (await readers()) === 1, 60_000, 200);
  await keepsWriting('b rolled back');

  // b's last-seen stops changing (and it has no Lease): a judges it gone.
  agentOnB = 'stopped';
  await bTimer;
  await until('a to judge b gone', async () => (await metricOf(cluster, 'a', 'wirelane_nodes')) === 1, 10 * WINDOW_MS, 200);
});
