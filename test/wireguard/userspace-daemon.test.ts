// `wirelane wireguard-go` (the DaemonSet's wireguard container) and the agent's side of it
// (--userspace-wireguard external): the decision table, then real wireguard-go in a network
// namespace of this test. Names carry this process's pid: wireguard-go's socket directory is
// shared by every namespace.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { runCommand, spawnProcess, type SpawnedProcess } from '../../src/host/command.js';
import { findLink } from '../../src/host/links.js';
import { generatePrivateKey } from '../../src/model/key.js';
import { cliPath } from '../../src/sandbox/mesh-cluster.js';
import { stopProcess } from '../../src/sandbox/teardown.js';
import { WireGuardDevice } from '../../src/wireguard/device.js';
import { kernelHasWireGuard } from '../../src/wireguard/kernel-support.js';
import { uapiSocketAnswers, uapiSocketPath } from '../../src/wireguard/uapi-socket.js';
import { type DeviceState, decideDaemonAction } from '../../src/wireguard/userspace-daemon.js';
import { WIREGUARD_TOOLS, capabilitySkip } from '../support/capability.js';
import { until } from '../support/wait.js';

test('the daemon runs wireguard-go only for a free name on a kernel without WireGuard', () => {
  const cases: [DeviceState, boolean, string][] = [
    [{ kind: 'absent' }, false, 'run'],
    [{ kind: 'absent' }, true, 'idle'],
    [{ kind: 'kernel' }, true, 'idle'],
    // Someone else's wireguard-go, or a TUN link on its way up or out: never touched, looked at again.
    [{ kind: 'served' }, false, 'wait'],
    [{ kind: 'unserved-tun' }, false, 'wait'],
    [{ kind: 'foreign', linkKind: 'veth' }, false, 'wait'],
  ];
  for (const [state, kernel, want] of cases) assert.equal(decideDaemonAction('wl0', state, kernel).kind, want, `${JSON.stringify(state)}, kernel ${kernel}`);
  assert.match((decideDaemonAction('wl0', { kind: 'served' }, false) as { reason: string }).reason, /another wireguard-go serves wl0/);
});

test('wirelane wireguard-go has --help', () => {
  const r = spawnSync(process.execPath, [cliPath(), 'wireguard-go', '--help'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^Usage: wirelane wireguard-go/);
});

const skip = await capabilitySkip('userspace WireGuard daemon test', WIREGUARD_TOOLS);

const id = process.pid.toString(36);
const NS = `wl-wgd-${id}`;
const NAME = `wld${id}`;
const started: SpawnedProcess[] = [];
/**
 * Production nodes usually have the module; this machine has not. What the daemon does there (it
 * idles) is the decision table's; the tests below need wireguard-go and check they have it.
 */
let kernel = false;

/** `wirelane wireguard-go` for NAME inside the test's namespace, as the wireguard container runs it. */
function startDaemon(): SpawnedProcess {
  const child = spawnProcess(process.execPath, [cliPath(), 'wireguard-go', '--interface', NAME], { netns: NS });
  started.push(child);
  return child;
}

const served = async () => (await findLink(NAME, { netns: NS }))?.kind === 'tun' && (await uapiSocketAnswers(uapiSocketPath(NAME)));
const pidsInNamespace = () => spawnSync('ip', ['netns', 'pids', NS], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean).map(Number);
const wireguardGoPid = () => pidsInNamespace().find((pid) => /wireguard-go/.test(spawnSync('ps', ['-o', 'comm=', '-p', String(pid)], { encoding: 'utf8' }).stdout));

before(async () => {
  if (skip) return;
  await runCommand('ip', ['netns', 'add', NS]);
  kernel = await kernelHasWireGuard(NS);
});

/** Resolves once the process has written a line matching `pattern` to stderr (its log). */
async function logged(child: SpawnedProcess, pattern: RegExp): Promise<void> {
  let text = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    text += chunk.toString();
  });
  await until(`a log line matching ${pattern}`, () => pattern.test(text), 15_000, 50);
}

after(async () => {
  if (skip) return;
  for (const child of started) await stopProcess(child, 2000);
  // A wireguard-go whose starter died (a failed release test) still runs in the namespace, and its
  // TUN would keep the deleted namespace alive: everything in it is this test's.
  for (const pid of pidsInNamespace()) process.kill(pid, 'SIGKILL');
  await runCommand('ip', ['netns', 'del', NS], { allowFailure: true });
});

test('an agent adopts the daemon\'s device, and its restart neither stops nor rewrites it', { skip }, async (t) => {
  if (kernel) return t.skip('this kernel has WireGuard: the daemon idles (test above)');
  const daemon = startDaemon();
  await until('the daemon to serve the device', served, 15_000, 50);
  const pid = wireguardGoPid();
  assert.ok(pid !== undefined, 'wireguard-go runs in the namespace');

  const config = { interface: { privateKey: generatePrivateKey(), listenPort: 51999 }, peers: [] };
  const first = new WireGuardDevice({ name: NAME, netns: NS, userspace: 'external' });
  assert.deepEqual(await first.ensure(), { backend: 'userspace', created: false });
  assert.equal((await first.apply(config)).written, true);
  // The agent stops without clean-up, the way the DaemonSet runs it; a new one starts.
  first.release();
  const second = new WireGuardDevice({ name: NAME, netns: NS, userspace: 'external' });
  assert.deepEqual(await second.ensure(), { backend: 'userspace', created: false });
  assert.equal((await second.apply(config)).written, false, 'the configuration outlived the agent');
  assert.equal(wireguardGoPid(), pid, 'the same wireguard-go serves it');

  // SIGTERM (the pod going away): wireguard-go removes its device and the daemon exits with it.
  await stopProcess(daemon, 5000);
  assert.equal((await daemon).exitCode, 0);
  assert.equal(await findLink(NAME, { netns: NS }), undefined);
});

test("when the daemon's wireguard-go goes (its container restarts) the agent hears of it and adopts the next one", { skip }, async (t) => {
  if (kernel) return t.skip('this kernel has WireGuard: the daemon idles (test above)');
  let gone = 0;
  const device = new WireGuardDevice({ name: NAME, netns: NS, userspace: 'external', watchIntervalMs: 100, onExternalGone: () => gone++ });
  t.after(() => device.release());
  const first = startDaemon();
  await until('the daemon to serve the device', served, 15_000, 50);
  await device.ensure();
  await stopProcess(first, 5000);
  await until('the device to report it', () => gone === 1, 10_000, 50);
  assert.equal(device.backend, undefined);
  const second = startDaemon();
  assert.deepEqual(await device.ensure(), { backend: 'userspace', created: false }, 'ensure waits for the next one');
  await stopProcess(second, 5000);
});

test('a second daemon waits for the first one\'s wireguard-go instead of stopping it, then takes over', { skip }, async (t) => {
  if (kernel) return t.skip('this kernel has WireGuard: the daemon idles (test above)');
  const firstDaemon = startDaemon();
  await until('the first daemon to serve the device', served, 15_000, 50);
  const pid = wireguardGoPid();
  const secondDaemon = startDaemon();
  await logged(secondDaemon, /another wireguard-go serves/);
  assert.equal(wireguardGoPid(), pid);

  await stopProcess(firstDaemon, 5000);
  await until('the second daemon to serve the device', async () => (await served()) && wireguardGoPid() !== pid, 15_000, 50);
  await stopProcess(secondDaemon, 5000);
});

test('an agent waiting for a daemon that never comes says where wireguard-go should come from', { skip }, async () => {
  const device = new WireGuardDevice({ name: NAME, netns: NS, userspace: 'external', readyTimeoutMs: 300 });
  if (kernel) {
    // The kernel's device needs no wireguard-go at all.
    assert.equal((await device.ensure()).backend, 'kernel');
    return device.destroy();
  }
  await assert.rejects(device.ensure(), /no wireguard-go serves it after 300 ms.*wirelane wireguard-go/);
  assert.equal(await findLink(NAME, { netns: NS }), undefined, 'the agent started none itself');
});

test('an agent stopping without clean-up exits, and the wireguard-go it started keeps serving', { skip }, async (t) => {
  if (kernel) return t.skip('this kernel has WireGuard: the agent starts no wireguard-go');
  const dir = mkdtempSync(join(tmpdir(), 'wirelane-release-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const script = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, 'child-release.ts');
  // A released child must not keep its parent alive: the agent would hang until SIGKILL.
  const r = spawnSync(process.execPath, ['--import', 'tsx', script, NAME, NS, join(dir, 'wireguard-go.log')], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(r.status, 0, `exited by itself: ${r.error?.message ?? r.stderr}`);
  const pid = Number(r.stdout.trim());
  assert.equal(wireguardGoPid(), pid, 'the wireguard-go it started still runs');
  assert.ok(await served(), 'and still serves the device');
  // Ours to end (it runs in this test's namespace): SIGTERM makes it remove the device.
  process.kill(pid, 'SIGTERM');
  await until('wireguard-go to exit', () => wireguardGoPid() === undefined, 10_000, 50);
});
