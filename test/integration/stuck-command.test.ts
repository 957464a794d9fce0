// Issue 10, item 5: a stuck command. Agent a runs with a `wg` that hangs (a wrapper first on its
// PATH that, while a flag file exists, ignores SIGTERM and sleeps): /healthz answers 503 naming the
// mesh loop and its wireguard step, the other steps and the loop keep going, nothing is removed
// (cross-location pings keep flowing), and /healthz is 200 again once wg answers.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { runCommand } from '../../src/host/command.js';
import type { MeshCluster } from '../../src/sandbox/mesh-cluster.js';
import { startMeshCluster } from '../harness/mesh-cluster.js';
import { AGENT_TOOLS, capabilitySkip } from '../support/capability.js';
import { SteadyTraffic, summary, totalFailed } from '../support/traffic.js';
import { until } from '../support/wait.js';

const skip = await capabilitySkip('stuck command test', AGENT_TOOLS);

const RESYNC_SECONDS = 3;
/** /healthz's bound: 2 × the resync period. */
const BOUND_SECONDS = 2 * RESYNC_SECONDS;
/** From the hang to a 503: up to one resync until a sync is due, the bound, and room for a loaded machine. */
const UNHEALTHY_WAIT_MS = (RESYNC_SECONDS + BOUND_SECONDS) * 1000 * 3;

const NODES = [
  { name: 'a', location: 'east' },
  { name: 'c', location: 'west' },
];

/** A wg that hangs while `flag` exists, writing its pid and its sleep's to `pids`; else the real one. */
function hangingWg(flag: string, pids: string, realWg: string): string {
  return `#!/bin/sh
if [ -e '${flag}' ]; then
  trap '' TERM
  echo $$ >> '${pids}'
  sleep 1000000 &
  echo $! >> '${pids}'
  wait
fi
exec '${realWg}' "$@"
`;
}

async function healthz(cluster: MeshCluster, node: string): Promise<{ status: number; body: string }> {
  const r = await cluster.sandbox.exec(cluster.sandbox.node(node), 'curl', ['-s', '--max-time', '5', '-w', '\n%{http_code}', 'http://127.0.0.1:1107/healthz'], {
    allowFailure: true,
  });
  const at = r.stdout.lastIndexOf('\n');
  return { status: Number(r.stdout.slice(at + 1)), body: r.stdout.slice(0, at) };
}

async function routeTo(cluster: MeshCluster, node: string, dst: string): Promise<string> {
  return (await cluster.sandbox.exec(cluster.sandbox.node(node), 'ip', ['route', 'show', 'exact', dst])).stdout.trim();
}

/** Still running, and still the wrapper or its sleep in node a's namespace (not a reused pid). */
async function stillOurs(pid: number, wrapper: string, netns: string): Promise<boolean> {
  const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
  const state = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  const ns = await readlink(`/proc/${pid}/ns/net`).catch(() => '');
  const ours = cmdline.includes(wrapper) || cmdline === 'sleep\u00001000000\u0000';
  return ours && ns === netns && !/^\d+ \(.*\) Z/.test(state);
}

test('a hanging wg: /healthz answers 503 naming the step, the other steps and the loop go on, and 200 once wg answers', { skip }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'wirelane-stuck-wg-'));
  const flag = join(dir, 'hang');
  const pids = join(dir, 'pids');
  const wrapper = join(dir, 'wg');
  const recordedPids = async () => (await readFile(pids, 'utf8').catch(() => '')).split('\n').filter(Boolean).map(Number);
  let netnsA = '';
  t.after(async () => {
    await rm(flag, { force: true });
    // The agent kills what it started; whatever is left after a failure goes here, by pid.
    for (const pid of await recordedPids()) if (await stillOurs(pid, wrapper, netnsA)) process.kill(pid, 'SIGKILL');
    await rm(dir, { recursive: true, force: true });
  });
  const realWg = (await runCommand('sh', ['-c', 'command -v wg'])).stdout.trim();
  await writeFile(wrapper, hangingWg(flag, pids, realWg), { mode: 0o755 });

  const { cluster } = await startMeshCluster(t, {
    nodes: NODES,
    source: 'file',
    agentArgs: ['--resync-period', `${RESYNC_SECONDS}s`, '--command-timeout', '1s', '--service-proxy', 'iptables'],
  });
  const agentA = cluster.startAgent('a', [], { env: { PATH: `${dir}:${process.env['PATH'] ?? '/usr/bin:/bin'}` } });
  netnsA = await readlink(`/proc/${agentA.pid}/ns/net`);
  cluster.startAgent('c');
  await cluster.waitReady();
  const podA = cluster.sandbox.node('a').pods[0]!;
  const podC = cluster.sandbox.node('c').pods[0]!;
  assert.ok(await cluster.waitPing(podA, podC.ip), 'the mesh works before the fault');
  await until('a healthy /healthz on a', async () => (await healthz(cluster, 'a')).status === 200, 20_000, 200);
  const before = await cluster.metrics('a');
  const traffic = SteadyTraffic.start(cluster.sandbox, [{ name: 'pod a → pod c (cross-location ping)', from: podA, protocol: 'ping', host: podC.ip }]);
  t.after(() => traffic.stop());
  const start = traffic.counts();

  await writeFile(flag, '');
  const hungAt = Date.now();
  let unhealthy = { status: 0, body: '' };
  await until('/healthz on a to answer 503', async () => (unhealthy = await healthz(cluster, 'a')).status === 503, UNHEALTHY_WAIT_MS, 200);
  t.diagnostic(`503 ${((Date.now() - hungAt) / 1000).toFixed(1)} s after wg started hanging:\n${unhealthy.body}`);
  const [head, ...lines] = unhealthy.body.split('\n');
  assert.match(head ?? '', /^unhealthy: mesh( and services)? sync overdue \(bound 6\.0 s\)$/);
  const mesh = lines.find((l) => l.startsWith('mesh: ')) ?? '';
  assert.match(mesh, /^mesh: sync due since \d{4}-\d\d-\d\dT[\d:.]+Z \(\d+\.\d s ago\), last sync \d+\.\d s ago/);
  assert.match(mesh, new RegExp(`last error \\d+\\.\\d s ago: wireguard: WireGuard interface "${cluster.interfaceOf('a')}": wg showconf timed out after 1000 ms`));

  // The other steps still run: a route the test deletes comes back at the next resync.
  const podRoute = '10.244.1.0/24';
  const route = await routeTo(cluster, 'a', podRoute);
  assert.match(route, new RegExp(`dev ${cluster.interfaceOf('a')}`));
  const pingsWhileStuck = traffic.since(start);
  await traffic.stop();
  await cluster.sandbox.exec(cluster.sandbox.node('a'), 'ip', ['route', 'del', podRoute]);
  const deletedAt = Date.now();
  await until('the routes step to put the route back', async () => (await routeTo(cluster, 'a', podRoute)) === route, UNHEALTHY_WAIT_MS, 200);
  t.diagnostic(`route ${podRoute} back ${((Date.now() - deletedAt) / 1000).toFixed(1)} s after its deletion`);
  assert.ok(existsSync(flag) && (await healthz(cluster, 'a')).status === 503, 'wg still hangs while the route came back');

  // The loop keeps going: failing mesh syncs and successful service syncs keep being counted.
  const during = await cluster.metrics('a');
  const grew = (name: string) => (during.get(name) ?? 0) - (before.get(name) ?? 0);
  assert.ok(grew('wirelane_syncs_total{loop="mesh",result="failure"}') >= 2, 'mesh syncs keep running and failing');
  assert.ok(grew('wirelane_syncs_total{loop="services",result="success"}') >= 2, 'service syncs keep running and succeeding');
  assert.ok(grew('wirelane_reconcile_duration_seconds_count') >= 2, 'reconciles keep being counted');
  assert.ok(grew('wirelane_errors_total{step="wireguard"}') >= 2, 'each timed-out wireguard step is a step error');
  assert.ok(grew('wirelane_command_timeouts_total{command="wg"}') >= 2, 'and a command timeout');
  assert.equal(grew('wirelane_errors_total{step="routes"}'), 0);
  assert.equal(grew('wirelane_errors_total{step="iptables"}'), 0);
  // Nothing was taken down on the word of a command that did not answer.
  assert.ok(pingsWhileStuck['pod a → pod c (cross-location ping)']!.sent > 0);
  assert.equal(totalFailed(pingsWhileStuck), 0, summary(pingsWhileStuck));

  await rm(flag);
  const answersAt = Date.now();
  let healthy = { status: 0, body: '' };
  await until('/healthz on a to answer 200 again', async () => (healthy = await healthz(cluster, 'a')).status === 200, UNHEALTHY_WAIT_MS, 200);
  t.diagnostic(`200 ${((Date.now() - answersAt) / 1000).toFixed(1)} s after wg answers again; ${summary(pingsWhileStuck)}`);
  assert.match(healthy.body, /^ok\nmesh: last sync \d+\.\d s ago/);
  // Every wrapper and sleep the agent timed out was killed, SIGTERM ignored or not.
  const stuck = await recordedPids();
  assert.ok(stuck.length >= 4, `recorded ${stuck.length} pids`);
  for (const pid of stuck) assert.equal(await stillOurs(pid, wrapper, netnsA), false, `pid ${pid} still runs`);
});
