// The fast path on kernels without tcx: clsact filters with our handle and priority. Forced with
// tcMode 'clsact' (this machine has tcx), the data path runs in a child inside the test's network
// namespace (fast-path-clsact-child.ts: it reads the bridge's ports from its own sysfs), and every
// claim is read back from the kernel: the filters by `tc -j filter show`, the writes by `tc monitor`
// (a filter replaced with the same program keeps its ids, so only the monitor tells a write).
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, mkdtempSync, rmdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { test, type TestContext } from 'node:test';
import { FAST_PATH_DIR, type FastPathDesired, type FastPathReport } from '../../src/dataplane/ebpf/fast-path.js';
import { runCommand } from '../../src/host/command.js';
import { until } from '../support/wait.js';
import { bpfSkip, onCleanup, uniqueName } from '../bpf/harness.js';

const skip = await bpfSkip('fast path clsact tests');

const CHILD = new URL('./fast-path-clsact-child.ts', import.meta.url).pathname;
const OURS = { handle: 0x4650, priority: 2 };
/** Another program's filters: at our priority with another handle, and at our handle with another priority. */
const FOREIGN = [
  { handle: 0x1, priority: 2 },
  { handle: 0x4650, priority: 3 },
];
const BRIDGE = 'br-pods';
const PODS = ['pod-a', 'pod-b'];
const EVERYWHERE = (underlay: readonly string[], wireguard?: string): FastPathDesired => ({
  clusterPodCidrs: [],
  localPodCidrs: [],
  bridge: BRIDGE,
  underlay,
  ...(wireguard === undefined ? {} : { wireguard }),
});
const NOTHING: Omit<FastPathReport, 'written'> = { attached: 0, detached: 0 };

/** One filter on an interface's ingress, as `tc -j filter show` prints it. */
interface Filter {
  readonly pref: number;
  readonly handle: string;
  readonly program: string;
  readonly id: number;
}

interface TcFilterJson {
  readonly pref: number;
  readonly options?: { readonly handle: string; readonly prog?: { readonly id: number; readonly name: string } };
}

/** The test's namespace: a pod bridge with two ports, an underlay (veth), a WireGuard-like device (tun, no link-layer header), a spare. */
async function namespace(t: TestContext): Promise<string> {
  const ns = uniqueName('wl-fpc');
  await runCommand('ip', ['netns', 'add', ns]);
  onCleanup(t, () => runCommand('ip', ['netns', 'del', ns]));
  const ip = (...args: string[]) => runCommand('ip', ['-n', ns, ...args]);
  await ip('link', 'add', BRIDGE, 'type', 'bridge');
  for (const pod of PODS) {
    await ip('link', 'add', pod, 'type', 'veth', 'peer', 'name', `${pod}-p`);
    await ip('link', 'set', pod, 'master', BRIDGE);
  }
  for (const veth of ['ul0', 'stale0', 'mark0']) await ip('link', 'add', veth, 'type', 'veth', 'peer', 'name', `${veth}-p`);
  await ip('tuntap', 'add', 'wg0', 'mode', 'tun');
  return ns;
}

/** A private bpffs under the temporary directory: `ip netns exec` re-mounts /sys, hiding /sys/fs/bpf from the child. */
async function privateBpffs(t: TestContext): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'wirelane-fpc-bpffs-'));
  onCleanup(t, () => rmdirSync(dir));
  await runCommand('mount', ['-t', 'bpf', 'bpf', dir]);
  onCleanup(t, () => runCommand('umount', [dir]));
  return dir;
}

/** A process in the namespace, killed by PID after the test if it still runs. */
function spawnIn(t: TestContext, ns: string, argv: readonly string[]): ChildProcessWithoutNullStreams {
  const child = spawn('ip', ['netns', 'exec', ns, ...argv], { stdio: ['pipe', 'pipe', 'pipe'] });
  onCleanup(t, () => {
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
  });
  return child;
}

/** The data path in the namespace: each call sends one command and waits for its answer. */
function fastPathIn(t: TestContext, ns: string, bpffs: string): (command: Record<string, unknown>) => Promise<unknown> {
  const child = spawnIn(t, ns, [process.execPath, '--import', 'tsx', CHILD, bpffs]);
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const answers = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  return async (command) => {
    child.stdin.write(`${JSON.stringify(command)}\n`);
    const next = await answers.next();
    if (next.done === true) throw new Error(`the fast path's child exited: ${stderr}`);
    const answer = JSON.parse(next.value) as { result?: unknown; error?: string };
    if (answer.error !== undefined) throw new Error(`${String(command['op'])}: ${answer.error}`);
    return answer.result;
  };
}

/**
 * `tc monitor` in the namespace. mark() returns the filter events since the last mark, once the
 * monitor has printed a sentinel filter added after them (on mark0, each at a priority of its own;
 * added again until one is printed, since the monitor may not listen yet at the first mark).
 */
function monitorIn(t: TestContext, ns: string, fastPath: (command: Record<string, unknown>) => Promise<unknown>): { mark(): Promise<string[]> } {
  const child = spawnIn(t, ns, ['tc', 'monitor']);
  const lines: string[] = [];
  createInterface({ input: child.stdout }).on('line', (line) => lines.push(line));
  let sentinel = 100;
  let seen = 0;
  return {
    async mark() {
      const markers: string[] = [];
      const printed = () => lines.findLastIndex((l) => markers.some((m) => l.includes(m)));
      await until('tc monitor to print a sentinel filter', async () => {
        if (printed() >= 0) return true;
        const priority = ++sentinel;
        markers.push(`dev mark0 ingress protocol all pref ${priority} `);
        await fastPath({ op: 'foreign', interface: 'mark0', handle: 1, priority });
        return printed() >= 0;
      }, 30_000, 200);
      const at = printed();
      const events = lines.slice(seen, at).filter((l) => / filter /.test(l) && !l.includes('dev mark0 '));
      seen = at + 1;
      return events;
    },
  };
}

async function filtersOf(ns: string, iface: string): Promise<Filter[]> {
  const { stdout } = await runCommand('ip', ['netns', 'exec', ns, 'tc', '-j', 'filter', 'show', 'dev', iface, 'ingress']);
  return (JSON.parse(stdout || '[]') as TcFilterJson[])
    .flatMap((f) => (f.options?.prog === undefined ? [] : [{ pref: f.pref, handle: f.options.handle, program: f.options.prog.name, id: f.options.prog.id }]))
    .sort((a, b) => a.pref - b.pref || a.handle.localeCompare(b.handle));
}

const isOurs = (f: Filter) => f.pref === OURS.priority && f.handle === `0x${OURS.handle.toString(16)}`;

/** Our filter's program on each interface (undefined: none), and that no interface has two of ours. */
async function oursOn(ns: string, ifaces: readonly string[]): Promise<Record<string, { program: string; id: number } | undefined>> {
  const out: Record<string, { program: string; id: number } | undefined> = {};
  for (const iface of ifaces) {
    const ours = (await filtersOf(ns, iface)).filter(isOurs);
    assert.ok(ours.length <= 1, `${iface}: ${ours.length} filters at our handle and priority`);
    out[iface] = ours[0] === undefined ? undefined : { program: ours[0].program, id: ours[0].id };
  }
  return out;
}

const report = (value: unknown) => {
  const { attached, detached } = value as FastPathReport;
  return { attached, detached };
};

test('clsact: attached once; a second apply, a follow, a restarted agent and a deleted pod write nothing', { skip }, async (t) => {
  const ns = await namespace(t);
  const bpffs = await privateBpffs(t);
  const fastPath = fastPathIn(t, ns, bpffs);
  const monitor = monitorIn(t, ns, fastPath);
  const wanted = [...PODS, 'ul0', 'wg0'];
  await monitor.mark();

  assert.deepEqual(report(await fastPath({ op: 'apply', desired: EVERYWHERE(['ul0'], 'wg0') })), { attached: 4, detached: 0 });
  const first = await oursOn(ns, wanted);
  assert.deepEqual(
    Object.fromEntries(Object.entries(first).map(([iface, f]) => [iface, f?.program])),
    { 'pod-a': 'fp_pod', 'pod-b': 'fp_pod', ul0: 'fp_l2', wg0: 'fp_l3' },
    'fp_pod on the bridge ports, fp_l2 on the underlay, fp_l3 on the device without a link-layer header',
  );
  const added = await monitor.mark();
  assert.deepEqual(added.map((l) => /^added filter dev (\S+) ingress .* handle 0x4650 /.exec(l)?.[1]).sort(), [...wanted].sort(), 'one filter added per interface, nothing else');

  assert.deepEqual(await fastPath({ op: 'apply', desired: EVERYWHERE(['ul0'], 'wg0') }), { ...NOTHING, written: 0 });
  assert.deepEqual(await fastPath({ op: 'follow' }), { ...NOTHING, written: 0 });
  assert.deepEqual(await monitor.mark(), [], 'a second apply and a follow write no filter');
  assert.deepEqual(await oursOn(ns, wanted), first, 'the same filters, the same programs');

  // An agent restarted: a new load, whose programs are the same code over the same maps.
  await fastPath({ op: 'close' });
  assert.deepEqual(report(await fastPath({ op: 'apply', desired: EVERYWHERE(['ul0'], 'wg0') })), NOTHING);
  assert.deepEqual(report(await fastPath({ op: 'follow' })), NOTHING);
  assert.deepEqual(await monitor.mark(), [], 'the earlier run\'s identical programs are kept, not replaced');
  assert.deepEqual(await oursOn(ns, wanted), first);

  // A pod deleted: the filter goes with its veth; nothing to detach, and no error.
  await runCommand('ip', ['-n', ns, 'link', 'del', 'pod-b']);
  assert.deepEqual(report(await fastPath({ op: 'follow' })), NOTHING);
  assert.deepEqual(report(await fastPath({ op: 'follow' })), NOTHING);
  assert.deepEqual(await monitor.mark(), [], 'no filter written');
  assert.deepEqual(await oursOn(ns, ['pod-a']), { 'pod-a': first['pod-a'] }, 'the other pod keeps its filter');
});

test('clsact: interfaces no longer wanted lose our filter, another\'s stays; clean-up removes ours', { skip }, async (t) => {
  const ns = await namespace(t);
  const bpffs = await privateBpffs(t);
  const fastPath = fastPathIn(t, ns, bpffs);
  const all = [...PODS, 'ul0', 'wg0', 'stale0'];

  // An earlier run had stale0 for an underlay too.
  assert.deepEqual(report(await fastPath({ op: 'apply', desired: EVERYWHERE(['ul0', 'stale0'], 'wg0') })), { attached: 5, detached: 0 });
  await fastPath({ op: 'close' });
  const foreign: Record<string, Filter[]> = {};
  for (const iface of ['pod-b', 'ul0', 'stale0']) {
    for (const f of FOREIGN) await fastPath({ op: 'foreign', interface: iface, ...f });
    foreign[iface] = (await filtersOf(ns, iface)).filter((f) => !isOurs(f));
    assert.equal(foreign[iface]?.length, FOREIGN.length, `${iface}: the foreign filters are there`);
  }
  const foreignOn = async (iface: string) => (await filtersOf(ns, iface)).filter((f) => !isOurs(f));

  assert.deepEqual(report(await fastPath({ op: 'apply', desired: EVERYWHERE(['ul0'], 'wg0') })), { attached: 0, detached: 1 });
  assert.equal((await oursOn(ns, ['stale0']))['stale0'], undefined, 'the earlier run\'s filter on stale0 is gone');
  assert.deepEqual(await foreignOn('stale0'), foreign['stale0'], 'another\'s filters on stale0 stay');

  // A pod's port leaves the bridge while its veth stays: the next follow detaches.
  await runCommand('ip', ['-n', ns, 'link', 'set', 'pod-b', 'nomaster']);
  assert.deepEqual(report(await fastPath({ op: 'follow' })), { attached: 0, detached: 1 });
  assert.equal((await oursOn(ns, ['pod-b']))['pod-b'], undefined, 'pod-b lost our filter');
  assert.deepEqual(await foreignOn('pod-b'), foreign['pod-b'], 'another\'s filters on pod-b stay');
  assert.deepEqual(report(await fastPath({ op: 'follow' })), NOTHING, 'and only once');

  // The underlay and the WireGuard device are no longer ones.
  assert.deepEqual(report(await fastPath({ op: 'apply', desired: EVERYWHERE([]) })), { attached: 0, detached: 2 });
  const left = await oursOn(ns, all);
  assert.deepEqual(Object.keys(left).filter((iface) => left[iface] !== undefined), ['pod-a'], 'ours only on the port still on the bridge');
  assert.deepEqual(await foreignOn('ul0'), foreign['ul0'], 'another\'s filters on ul0 stay');

  await fastPath({ op: 'close' });
  assert.deepEqual(await fastPath({ op: 'cleanup' }), ['1 fast-path tc programs detached', `fast-path pins removed from ${bpffs}`]);
  assert.deepEqual(Object.values(await oursOn(ns, all)), all.map(() => undefined), 'no filter of ours anywhere');
  for (const iface of ['pod-b', 'ul0', 'stale0']) assert.deepEqual(await foreignOn(iface), foreign[iface], `${iface}: another's filters stay`);
  assert.equal(existsSync(join(bpffs, FAST_PATH_DIR)), false, 'and no pins');
});

test('clsact: every interface is searched for an earlier run\'s filters at the first apply only', { skip }, async (t) => {
  const ns = await namespace(t);
  const bpffs = await privateBpffs(t);
  const fastPath = fastPathIn(t, ns, bpffs);
  assert.deepEqual(report(await fastPath({ op: 'apply', desired: EVERYWHERE(['ul0'], 'wg0') })), { attached: 4, detached: 0 });
  // A filter with our handle and priority on the spare interface, as an earlier run would have left it.
  await fastPath({ op: 'foreign', interface: 'stale0', ...OURS });
  assert.notEqual((await oursOn(ns, ['stale0']))['stale0'], undefined);

  // Later applies look only where this process attached: no listing of every interface each resync.
  assert.deepEqual(report(await fastPath({ op: 'apply', desired: EVERYWHERE(['ul0'], 'wg0') })), NOTHING);
  assert.notEqual((await oursOn(ns, ['stale0']))['stale0'], undefined, 'not searched for after the first apply');

  // A restarted agent searches again.
  await fastPath({ op: 'close' });
  assert.deepEqual(report(await fastPath({ op: 'apply', desired: EVERYWHERE(['ul0'], 'wg0') })), { attached: 0, detached: 1 });
  assert.equal((await oursOn(ns, ['stale0']))['stale0'], undefined, 'found and removed by the next process\'s first apply');
});

test('clsact: a filter of ours holding another load\'s program (other maps) is replaced in place, once', { skip }, async (t) => {
  const ns = await namespace(t);
  const bpffs = await privateBpffs(t);
  const fastPath = fastPathIn(t, ns, bpffs);
  const monitor = monitorIn(t, ns, fastPath);
  // At our handle and priority, the same code over maps of its own: it would serve stale state.
  const stranger = await fastPath({ op: 'foreign', interface: 'ul0', ...OURS });
  await monitor.mark();

  assert.deepEqual(report(await fastPath({ op: 'apply', desired: EVERYWHERE(['ul0']) })), { attached: 2, detached: 0 }, 'the bridge ports attached; ul0 swapped, not attached');
  const ul0 = (await oursOn(ns, ['ul0']))['ul0'];
  assert.equal(ul0?.program, 'fp_l2');
  assert.notEqual(ul0?.id, stranger, 'ul0\'s filter holds this load\'s program now');
  assert.deepEqual((await filtersOf(ns, 'ul0')).length, 1, 'replaced, not added beside it');
  assert.deepEqual((await monitor.mark()).map((l) => /^(\w+) filter dev (\S+) /.exec(l)?.slice(1, 3).join(' ')).sort(), ['added pod-a', 'added pod-b', 'replaced ul0']);

  assert.deepEqual(report(await fastPath({ op: 'apply', desired: EVERYWHERE(['ul0']) })), NOTHING);
  assert.deepEqual(await monitor.mark(), [], 'the swapped filter is not written again');
});
