// The eBPF service proxy on the real kernel: socket-LB programs on a test-owned cgroup, pins in a
// test-owned bpffs directory, clients moved into the cgroup and run in a test-owned network
// namespace that has only loopback (a translation that does not happen fails there instead of
// leaving the machine), echo backends on 127.0.0.x / ::1 in the same namespace.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { isDeepStrictEqual } from 'node:util';
import { type TestContext, test } from 'node:test';
import { pino } from 'pino';
import { openPinnedLink } from '../../src/bpf/index.js';
import { runCommand } from '../../src/host/command.js';
import { createNetns, deleteNetns } from '../../src/host/netns.js';
import { EbpfServiceProxy, EbpfStartError, SOCK_LB_PROGRAMS, linkPinPath } from '../../src/dataplane/ebpf/index.js';
import { NodePortDatapath } from '../../src/dataplane/ebpf/nodeport.js';
import { readSockLbStats } from '../../src/dataplane/ebpf/sock-lb.js';
import { type Ip, parseIp } from '../../src/model/ip.js';
import type { ServiceBackend, ServiceMap, ServicePort } from '../../src/model/service.js';
import { bpffsDir, bpfSkip, cgroupDir, onCleanup, uniqueName } from '../bpf/harness.js';
import { applyMap } from '../support/apply-map.js';
import { type BpfIds, added, heldIds, ownedIds, pinnedIds, stillThere } from '../support/own-bpf.js';
import { servicePort as basePort } from '../support/service-map.js';
import { until } from '../support/wait.js';

const skip = await bpfSkip('eBPF service proxy tests');
const OPTIONS = { skip, timeout: 60_000 };

// ---- the world: a namespace with echo backends, clients inside a cgroup -------------------------

const SERVER = `
import { createServer } from 'node:net';
import { createSocket } from 'node:dgram';
const [name, host, port] = process.argv.slice(1);
const udp = createSocket(host.includes(':') ? 'udp6' : 'udp4');
udp.on('message', (_m, from) => udp.send(name + ' ' + from.address + ':' + from.port, from.port, from.address));
let ready = 0;
const up = () => { if (++ready === 2) process.stdout.write('ready\\n'); };
udp.bind(Number(port), host, up);
createServer((s) => { s.on('error', () => {}); s.end(name + ' ' + s.remoteAddress + ':' + s.remotePort); }).listen(Number(port), host, up);
`;

// One JSON line per request: {answer, peer} (peer: getpeername, or for UDP the reply's source), or {error}.
const CLIENT = `
import { connect } from 'node:net';
import { createSocket } from 'node:dgram';
const [protocol, host, port, count, mode, interval = '0'] = process.argv.slice(1);
const timeout = 1500;
const out = (o) => process.stdout.write(JSON.stringify(o) + '\\n');
function tcp() {
  return new Promise((resolve) => {
    let answer = '', peer = '';
    const s = connect({ host, port: Number(port), timeout });
    s.on('connect', () => { peer = s.remoteAddress + ':' + s.remotePort; });
    s.on('data', (d) => (answer += d));
    s.on('end', () => resolve({ answer, peer }));
    s.on('timeout', () => { s.destroy(); resolve({ error: 'ETIMEDOUT' }); });
    s.on('error', (e) => resolve({ error: e.code }));
  });
}
function udpOnce(sock, connected) {
  return new Promise((resolve) => {
    const timer = setTimeout(() => done({ error: 'ETIMEDOUT' }), timeout);
    const onMessage = (m, rinfo) => done({ answer: m.toString(), peer: connected ? sock.remoteAddress().address + ':' + sock.remoteAddress().port : rinfo.address + ':' + rinfo.port, from: rinfo.address + ':' + rinfo.port });
    const onError = (e) => done({ error: e.code });
    function done(r) { clearTimeout(timer); sock.off('message', onMessage); sock.off('error', onError); resolve(r); }
    sock.on('message', onMessage);
    sock.on('error', onError);
    // Without a callback Node drops a send's error (a refused sendmsg()).
    const sent = (e) => e && done({ error: e.code });
    if (connected) sock.send('ping', sent); else sock.send('ping', Number(port), host, sent);
  });
}
function udpSocket(connected) {
  return new Promise((resolve) => {
    const sock = createSocket(host.includes(':') ? 'udp6' : 'udp4');
    // An error between requests (a socket the agent ended) is kept for the next request to report.
    sock.on('error', (e) => { sock.lastError = e.code; });
    if (!connected) { sock.bind(0, () => resolve({ sock })); return; }
    // A refused connect() comes back as the callback's argument.
    sock.connect(Number(port), host, (e) => resolve(e ? { error: e.code, sock } : { sock }));
  });
}
let shared;
for (let i = 0; i < Number(count); i++) {
  if (i > 0) await new Promise((r) => setTimeout(r, Number(interval)));
  if (protocol === 'tcp') { out(await tcp()); continue; }
  const connected = mode !== 'unconnected' && mode !== 'same-socket';
  // connected-socket: one connected socket, reopened (as an application would) after an error.
  if (shared?.sock.lastError) { out({ error: shared.sock.lastError }); shared.sock.close(); shared = undefined; continue; }
  const reuse = mode === 'same-socket' || mode === 'connected-socket';
  const made = reuse ? (shared ??= await udpSocket(connected)) : await udpSocket(connected);
  if (made.error) { made.sock?.close(); out({ error: made.error }); continue; }
  const reply = await udpOnce(made.sock, connected);
  out(reply);
  // An error while a request waited (the socket ended under it) is reported once, by that request.
  if (made === shared && mode === 'connected-socket' && reply.error && reply.error !== 'ETIMEDOUT') { shared.sock.close(); shared = undefined; continue; }
  if (made !== shared) made.sock.close();
}
shared?.sock.close();
`;

interface World {
  readonly netns: string;
  readonly cgroup: string;
  readonly pins: string;
}

async function world(t: TestContext): Promise<World> {
  const netns = uniqueName('wlebpf');
  await createNetns([netns]);
  onCleanup(t, () => deleteNetns([netns]));
  await runCommand('ip', ['-n', netns, 'link', 'set', 'lo', 'up']);
  return { netns, cgroup: cgroupDir(t), pins: join(await bpffsDir(t), 'wirelane') };
}

function killOnCleanup(t: TestContext, child: ChildProcess): void {
  onCleanup(t, () => {
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
  });
}

/** An echo backend (TCP and UDP) on host:port in the namespace, answering `<name> <client>`. */
async function startBackend(t: TestContext, w: World, name: string, host: string, port: number): Promise<void> {
  const child = spawn('ip', ['netns', 'exec', w.netns, process.execPath, '--input-type=module', '-e', SERVER, name, host, String(port)], { stdio: ['ignore', 'pipe', 'pipe'] });
  killOnCleanup(t, child);
  await new Promise<void>((resolve, reject) => {
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.stdout.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
    child.on('exit', (code) => reject(new Error(`backend ${name} exited (${code}): ${err}`)));
  });
}

type Reply = { answer?: string; peer?: string; from?: string; error?: string };

/**
 * Runs the client inside the cgroup (a shell moves itself there, then execs) in the namespace.
 * `progress` receives each reply as it comes, for a test that acts while the flow runs.
 */
async function request(t: TestContext, w: World, protocol: 'tcp' | 'udp', host: string, port: number, count = 1, mode = '', intervalMs = 0, progress: Reply[] = []): Promise<Reply[]> {
  // Into the cgroup first: `ip netns exec` mounts a fresh /sys, where the cgroup2 mount is gone.
  const child = spawn(
    'sh',
    ['-c', 'echo $$ > "$1/cgroup.procs" && shift && exec "$@"', 'sh', w.cgroup, 'ip', 'netns', 'exec', w.netns, process.execPath, '--input-type=module', '-e', CLIENT, protocol, host, String(port), String(count), mode, String(intervalMs)],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  killOnCleanup(t, child);
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
    const lines = out.split('\n');
    out = lines.pop() ?? '';
    for (const line of lines) if (line !== '') progress.push(JSON.parse(line) as Reply);
  });
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  clearTimeout(timer);
  assert.equal(code, 0, `client failed: ${err}`);
  assert.equal(out, '', 'the client ends its last line');
  return progress;
}

const names = (replies: Reply[]) => replies.map((r) => r.error ?? r.answer?.split(' ')[0]);

// ---- service maps ---------------------------------------------------------------------------------

const backend = (ip: string, port: number, local = true): ServiceBackend => ({ ip: parseIp(ip), port, local });

function port(service: string, protocol: 'TCP' | 'UDP', clusterIP: string, servicePort: number, endpoints: ServiceBackend[], extra: Partial<ServicePort> = {}): ServicePort {
  return basePort({ service: `test/${service}`, portName: protocol.toLowerCase(), protocol, clusterIPs: [parseIp(clusterIP)], port: servicePort, clusterEndpoints: endpoints, ...extra });
}

function serviceMap(ports: ServicePort[], nodePortAddresses: Ip[] = []): ServiceMap {
  const sorted = [...ports].sort((a, b) => (a.service + a.protocol < b.service + b.protocol ? -1 : 1));
  return { node: 'test', nodePortAddresses, clusterCIDRs: [], servicePorts: sorted };
}

const THREE = [backend('127.0.0.11', 8080), backend('127.0.0.12', 8080), backend('127.0.0.13', 8080)];

async function startThree(t: TestContext, w: World): Promise<void> {
  await Promise.all(['b1', 'b2', 'b3'].map((name, i) => startBackend(t, w, name, `127.0.0.1${i + 1}`, 8080)));
}

async function openProxy(t: TestContext, w: World): Promise<EbpfServiceProxy> {
  const proxy = await EbpfServiceProxy.open({ bpffsDir: w.pins, cgroupRoot: w.cgroup });
  // cleanup() is idempotent: also on failure nothing of the proxy stays attached.
  onCleanup(t, () => proxy.cleanup());
  return proxy;
}

/** The kernel objects of the proxy in `w`: its pinned maps and links, the programs using those maps, their links and any link on its cgroup. */
async function proxyIds(w: World): Promise<BpfIds> {
  const pinned = pinnedIds(w.pins);
  const owned = await ownedIds({ maps: pinned.maps, progs: pinned.progs, cgroups: [w.cgroup] });
  return { ...owned, links: new Set([...pinned.links, ...owned.links]) };
}

/** Nothing of a failed start stays: no BPF object held open by this process, no link on the test's cgroup. */
async function assertNothingLeft(held: BpfIds, w: World): Promise<void> {
  assert.deepEqual(added(held, heldIds()), { maps: [], progs: [], links: [] }, 'no map, program or link held open');
  assert.deepEqual([...(await ownedIds({ maps: [], cgroups: [w.cgroup] })).links], [], 'no link on the cgroup');
}

// ---- tests ----------------------------------------------------------------------------------------

test('ClusterIP over TCP and UDP reaches every backend, and the socket sees the service address', OPTIONS, async (t) => {
  const w = await world(t);
  await startThree(t, w);
  const proxy = await openProxy(t, w);
  assert.equal(proxy.adopted, false);
  const report = await applyMap(proxy, serviceMap([port('web', 'TCP', '10.250.0.1', 80, THREE), port('web', 'UDP', '10.250.0.1', 53, THREE)]));
  // 3 backends, and per port 3 slots + the service entry.
  assert.equal(report.written, 3 + 2 * 4);

  const tcp = await request(t, w, 'tcp', '10.250.0.1', 80, 45);
  assert.deepEqual(new Set(names(tcp)), new Set(['b1', 'b2', 'b3']), 'spread over every backend');
  for (const r of tcp) assert.equal(r.peer, '10.250.0.1:80', 'getpeername shows the service');

  const connected = await request(t, w, 'udp', '10.250.0.1', 53, 30);
  assert.deepEqual(new Set(names(connected)), new Set(['b1', 'b2', 'b3']));
  for (const r of connected) assert.equal(r.peer, '10.250.0.1:53');
  const unconnected = await request(t, w, 'udp', '10.250.0.1', 53, 5, 'unconnected');
  for (const r of unconnected) {
    assert.match(r.answer ?? '', /^b[123] /);
    assert.equal(r.from, '10.250.0.1:53', 'recvmsg shows the reply coming from the service');
  }
  // Destinations that are no service pass untouched.
  assert.deepEqual(names(await request(t, w, 'tcp', '127.0.0.12', 8080)), ['b2']);
});

test('IPv6 ClusterIP and a NodePort on a node address', OPTIONS, async (t) => {
  const w = await world(t);
  await runCommand('ip', ['-n', w.netns, 'link', 'add', 'node0', 'type', 'veth', 'peer', 'name', 'node0p']);
  await runCommand('ip', ['-n', w.netns, 'addr', 'add', '192.168.77.1/24', 'dev', 'node0']);
  await runCommand('ip', ['-n', w.netns, 'link', 'set', 'node0', 'up']);
  await startBackend(t, w, 'v6a', '::1', 8081);
  await startBackend(t, w, 'v6b', '::1', 8082);
  await startBackend(t, w, 'b1', '127.0.0.11', 8080);
  const proxy = await openProxy(t, w);
  await applyMap(
    proxy,
    serviceMap(
      [
        port('v6', 'TCP', 'fd00:250::1', 80, [backend('::1', 8081), backend('::1', 8082)]),
        port('np', 'TCP', '10.250.0.2', 80, [backend('127.0.0.11', 8080)], { nodePort: 30080 }),
      ],
      [parseIp('192.168.77.1')],
    ),
  );
  const v6 = await request(t, w, 'tcp', 'fd00:250::1', 80, 30);
  assert.deepEqual(new Set(names(v6)), new Set(['v6a', 'v6b']));
  for (const r of v6) assert.equal(r.peer, 'fd00:250::1:80');
  const nodePort = await request(t, w, 'tcp', '192.168.77.1', 30080, 3);
  assert.deepEqual(names(nodePort), ['b1', 'b1', 'b1']);
  for (const r of nodePort) assert.equal(r.peer, '192.168.77.1:30080');
  // Loopback is no NodePort address (CVE-2020-8558): untouched, so refused by the namespace.
  assert.deepEqual(names(await request(t, w, 'tcp', '127.0.0.1', 30080)), ['ECONNREFUSED']);
});

test('ClientIP affinity sticks to one backend within its timeout and chooses again after it', OPTIONS, async (t) => {
  const w = await world(t);
  await startThree(t, w);
  const proxy = await openProxy(t, w);
  await applyMap(proxy, serviceMap([port('sticky', 'TCP', '10.250.0.3', 80, THREE, { sessionAffinityTimeoutSeconds: 1 })]));
  const first = names(await request(t, w, 'tcp', '10.250.0.3', 80, 15));
  assert.equal(new Set(first).size, 1, `sticky: ${first.join(', ')}`);
  // Each request renews the 1 s affinity, so they come more than 1 s apart.
  await until('the affinity to expire', async () => names(await request(t, w, 'tcp', '10.250.0.3', 80))[0] !== first[0], 30_000, 1200);
});

test('a service without endpoints refuses at once, TCP and UDP, connected or not, and counts each refusal', OPTIONS, async (t) => {
  const w = await world(t);
  const proxy = await openProxy(t, w);
  await applyMap(proxy, serviceMap([port('empty', 'TCP', '10.250.0.4', 80, []), port('empty', 'UDP', '10.250.0.4', 53, [])]));
  // Refused, not timed out (the client reports a timeout as ETIMEDOUT).
  assert.deepEqual(names(await request(t, w, 'tcp', '10.250.0.4', 80)), ['ECONNREFUSED']);
  assert.deepEqual(names(await request(t, w, 'udp', '10.250.0.4', 53)), ['ECONNREFUSED']);
  assert.deepEqual(names(await request(t, w, 'udp', '10.250.0.4', 53, 1, 'unconnected')), ['ECONNREFUSED']);
  // One connect(), one connect() of UDP and one sendmsg() (wirelane_sock_lb_refusals_total).
  assert.deepEqual(readSockLbStats(w.pins), { noEndpoint: 3n, noLocalEndpoint: 0n, noBackend: 0n });
});

test('a removed backend gets no new connections, and a one-endpoint change writes only its entries', OPTIONS, async (t) => {
  const w = await world(t);
  await startThree(t, w);
  await startBackend(t, w, 'b4', '127.0.0.14', 8080);
  const proxy = await openProxy(t, w);
  const others = Array.from({ length: 20 }, (_, i) => port(`other${i}`, 'TCP', `10.250.1.${i + 1}`, 80, THREE));
  await applyMap(proxy, serviceMap([port('web', 'TCP', '10.250.0.5', 80, THREE), ...others]));
  // b4 replaces b2 in b2's slot; b2 stays in the other services, so its backend entry stays.
  const replaced = [THREE[0]!, backend('127.0.0.14', 8080), THREE[2]!];
  const report = await applyMap(proxy, serviceMap([port('web', 'TCP', '10.250.0.5', 80, replaced), ...others]));
  assert.equal(report.ports, 1);
  assert.equal(report.written, 2, 'the new backend and the one slot it takes over');
  const seen = names(await request(t, w, 'tcp', '10.250.0.5', 80, 40));
  assert.ok(!seen.includes('b2'), seen.join(', '));
  assert.deepEqual(new Set(seen), new Set(['b1', 'b3', 'b4']));

  // Shrinking: the count goes first, then the tail; a backend nobody uses any more is deleted.
  const shrink = await applyMap(proxy, serviceMap([port('web', 'TCP', '10.250.0.5', 80, [THREE[0]!]), ...others]));
  // slot 2 takes nothing (b1 stays in slot 1): service entry, 2 tail slots, b4's backend entry.
  assert.equal(shrink.written, 4);
  assert.deepEqual(new Set(names(await request(t, w, 'tcp', '10.250.0.5', 80, 10))), new Set(['b1']));
  // Nothing changed: nothing written.
  assert.equal((await applyMap(proxy, serviceMap([port('web', 'TCP', '10.250.0.5', 80, [THREE[0]!]), ...others]))).written, 0);
});

test('an unconnected UDP socket keeps its backend, and moves when that backend leaves', OPTIONS, async (t) => {
  const w = await world(t);
  await startThree(t, w);
  const proxy = await openProxy(t, w);
  await applyMap(proxy, serviceMap([port('dns', 'UDP', '10.250.0.6', 53, THREE)]));
  const flow = names(await request(t, w, 'udp', '10.250.0.6', 53, 10, 'same-socket'));
  assert.equal(new Set(flow).size, 1, `one socket, one backend: ${flow.join(', ')}`);

  // A flow of datagrams 100 ms apart starts on b1, the only backend; b1 leaves once the flow has
  // answers from it, with most of the flow still to come.
  await applyMap(proxy, serviceMap([port('dns', 'UDP', '10.250.0.6', 53, [THREE[0]!])]));
  const progress: Reply[] = [];
  const running = request(t, w, 'udp', '10.250.0.6', 53, 40, 'same-socket', 100, progress);
  await until('the flow\'s first answers', () => progress.length >= 3, 20_000);
  await applyMap(proxy, serviceMap([port('dns', 'UDP', '10.250.0.6', 53, [THREE[1]!, THREE[2]!])]));
  const moved = names(await running);
  assert.equal(moved[0], 'b1');
  assert.match(moved.at(-1) ?? '', /^b[23]$/, `the flow stayed on the removed backend: ${moved.join(', ')}`);
});

/**
 * Where a connected UDP socket's flow shows it was ended (bpf_sock_destroy: the kernel sets
 * ECONNABORTED on the socket and disconnects it): that error, or EDESTADDRREQ when the client's next
 * send runs before the error is read (a send on a socket no longer connected; nothing else in these
 * tests disconnects one). -1 when neither is there.
 */
function endedAt(answers: readonly (string | undefined)[]): number {
  return answers.findIndex((a) => a === 'ECONNABORTED' || a === 'EDESTADDRREQ');
}

test('a connected UDP socket on a removed backend is ended and reconnects to a current one; others are left alone', OPTIONS, async (t) => {
  const w = await world(t);
  await startThree(t, w);
  const proxy = await openProxy(t, w);
  await applyMap(proxy, serviceMap([port('dns', 'UDP', '10.250.0.7', 53, [THREE[0]!])]));
  // Two flows of one connected socket each, 150 ms between datagrams: one through the service,
  // one to b1's own address (no translation: not the agent's to end).
  const progress = { viaService: [] as Reply[], direct: [] as Reply[] };
  const viaService = request(t, w, 'udp', '10.250.0.7', 53, 40, 'connected-socket', 150, progress.viaService);
  const direct = request(t, w, 'udp', '127.0.0.11', 8080, 40, 'connected-socket', 150, progress.direct);
  await until('both flows\' first answers', () => progress.viaService.length >= 3 && progress.direct.length >= 3, 20_000);
  const report = await applyMap(proxy, serviceMap([port('dns', 'UDP', '10.250.0.7', 53, [THREE[1]!])]));
  assert.equal(report.socketsTerminated, 1);
  const answers = names(await viaService);
  const aborted = endedAt(answers);
  assert.ok(aborted > 0 && answers.slice(0, aborted).every((b) => b === 'b1'), answers.join(', '));
  assert.ok(answers.slice(aborted + 1).length > 0 && answers.slice(aborted + 1).every((b) => b === 'b2'), answers.join(', '));
  assert.deepEqual(new Set(names(await direct)), new Set(['b1']));
  // Nothing changed: nothing is ended.
  assert.equal((await applyMap(proxy, serviceMap([port('dns', 'UDP', '10.250.0.7', 53, [THREE[1]!])]))).socketsTerminated, 0);
});

test('more stale UDP flows than the termination map holds still end the socket of a removed backend', OPTIONS, async (t) => {
  const w = await world(t);
  await startThree(t, w);
  const proxy = await openProxy(t, w);
  // 4,500 UDP services removed at once (4,500 stale destinations, more than wl_sock_term's 4,096
  // entries) beside the one whose backend moves; it sorts last, so its key is in the second chunk.
  const fillers = Array.from({ length: 4_500 }, (_, i) => port(`filler-${String(i).padStart(4, '0')}`, 'UDP', `10.251.${i >> 8}.${i & 255}`, 53, [THREE[2]!]));
  await applyMap(proxy, serviceMap([...fillers, port('zz-dns', 'UDP', '10.250.0.8', 53, [THREE[0]!])]));
  const progress: Reply[] = [];
  const viaService = request(t, w, 'udp', '10.250.0.8', 53, 40, 'connected-socket', 150, progress);
  await until('the flow\'s first answers', () => progress.length >= 3, 20_000);
  const report = await applyMap(proxy, serviceMap([port('zz-dns', 'UDP', '10.250.0.8', 53, [THREE[1]!])]));
  assert.equal(report.socketsTerminated, 1);
  const answers = names(await viaService);
  assert.ok(endedAt(answers) > 0 && answers.at(-1) === 'b2', answers.join(', '));
});

test('a new instance re-adopts the pins without detaching anything; traffic flows while no agent runs', OPTIONS, async (t) => {
  const w = await world(t);
  await startThree(t, w);
  const first = await openProxy(t, w);
  await applyMap(first, serviceMap([port('web', 'TCP', '10.250.0.7', 80, THREE)]));
  const linksBefore = SOCK_LB_PROGRAMS.map((p) => linkIdOf(p, w));
  // The agent goes away without cleaning up (its handles close as a crash would close them).
  first.close();
  assert.deepEqual(new Set(names(await request(t, w, 'tcp', '10.250.0.7', 80, 30))), new Set(['b1', 'b2', 'b3']), 'served while no agent runs');

  const second = await openProxy(t, w);
  assert.equal(second.adopted, true);
  assert.deepEqual(SOCK_LB_PROGRAMS.map((p) => linkIdOf(p, w)), linksBefore, 'the same links, never detached');
  // The first apply of the new agent compares with the maps: unchanged services write nothing.
  assert.equal((await applyMap(second, serviceMap([port('web', 'TCP', '10.250.0.7', 80, THREE)]))).written, 0);
  // A change made while no agent ran lands.
  const report = await applyMap(second, serviceMap([port('web', 'TCP', '10.250.0.7', 80, [THREE[1]!])]));
  assert.ok(report.written > 0);
  assert.deepEqual(new Set(names(await request(t, w, 'tcp', '10.250.0.7', 80, 10))), new Set(['b2']));
});

/** The kernel id of the link pinned for `program` (closing the handle detaches nothing pinned). */
function linkIdOf(program: string, w: World): number {
  const link = openPinnedLink(linkPinPath(w.pins, program));
  try {
    return link.info().id;
  } finally {
    link.close();
  }
}

test('cleanup detaches every program and removes every pin and map', OPTIONS, async (t) => {
  const w = await world(t);
  const proxy = await openProxy(t, w);
  await applyMap(proxy, serviceMap([port('web', 'TCP', '10.250.0.8', 80, THREE)]));
  const mine = await proxyIds(w);
  assert.ok(mine.links.size >= SOCK_LB_PROGRAMS.length, `links attached: ${mine.links.size}`);
  assert.ok(mine.progs.size >= SOCK_LB_PROGRAMS.length, `programs loaded: ${mine.progs.size}`);
  await proxy.cleanup();
  // The kernel frees programs and maps once their last reference is gone, after an RCU grace period.
  const none = { maps: [], progs: [], links: [] };
  await until('the proxy\'s maps, programs and links to be freed', async () => isDeepStrictEqual(await stillThere(mine), none)).catch(() => {});
  assert.deepEqual(await stillThere(mine), none, 'left behind');
  assert.equal(existsSync(w.pins), false, 'the pin directory is gone');
});

test('an object whose map layout differs from the codec fails clearly and leaves nothing behind', OPTIONS, async (t) => {
  const w = await world(t);
  const dir = mkdtempSync(join(tmpdir(), 'wlebpf-layout-'));
  onCleanup(t, () => rmSync(dir, { recursive: true, force: true }));
  const source = join(dir, 'wrong.bpf.c');
  // The header's maps, but the services key grown by 4 bytes, as a stale build would have it.
  writeFileSync(
    source,
    `#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#define WL_NO_MAP_DEFINITIONS
#include "wirelane_maps.h"
struct wrong_key { struct wl_service_key key; __u32 extra; };
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 16); __uint(map_flags, BPF_F_NO_PREALLOC); __type(key, struct wrong_key); __type(value, struct wl_service_value); } wl_services SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 16); __uint(map_flags, BPF_F_NO_PREALLOC); __type(key, __u32); __type(value, struct wl_backend); } wl_backends SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 16); __type(key, struct wl_node_addr_key); __type(value, struct wl_node_addr_value); } wl_node_addrs SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_LRU_HASH); __uint(max_entries, 16); __type(key, struct wl_affinity_key); __type(value, struct wl_affinity_value); } wl_affinity SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_LRU_HASH); __uint(max_entries, 16); __type(key, struct wl_sock_rev_key); __type(value, struct wl_sock_rev_value); } wl_sock_rev SEC(".maps");
SEC("cgroup/connect4") int sock_connect4(struct bpf_sock_addr *ctx) { return 1; }
char LICENSE[] SEC("license") = "GPL";
`,
  );
  const root = new URL('../../', import.meta.url).pathname;
  const object = join(dir, 'wrong.bpf.o');
  await runCommand('clang', ['-g', '-O2', '-target', 'bpf', '-D__TARGET_ARCH_x86', `-I${root}build/bpf`, `-I${root}bpf/include`, '-c', source, '-o', object]);
  const held = heldIds();
  await assert.rejects(EbpfServiceProxy.open({ bpffsDir: w.pins, cgroupRoot: w.cgroup, objectPath: object }), (error: unknown) => {
    assert.ok(error instanceof EbpfStartError);
    assert.match(error.message, /map wl_services: key size 28 in the object, 24 in the codec/);
    return true;
  });
  await assertNothingLeft(held, w);
  assert.deepEqual(readdirSync(w.pins).filter((name) => name !== 'links'), [], 'no map pinned');
});

test('a start that cannot attach removes what it made and says why', OPTIONS, async (t) => {
  const w = await world(t);
  const notACgroup = mkdtempSync(join(tmpdir(), 'wlebpf-nocg-'));
  onCleanup(t, () => rmSync(notACgroup, { recursive: true, force: true }));
  const held = heldIds();
  await assert.rejects(EbpfServiceProxy.open({ bpffsDir: w.pins, cgroupRoot: notACgroup }), (error: unknown) => {
    assert.ok(error instanceof EbpfStartError);
    assert.match(error.message, new RegExp(`socket LB on cgroup ${notACgroup}`));
    return true;
  });
  await assertNothingLeft(held, w);
  assert.deepEqual(readdirSync(w.pins).filter((name) => name !== 'links'), [], 'no map pin left');
  assert.deepEqual(readdirSync(join(w.pins, 'links')), [], 'no link pin left');
});

test('with the tc NodePort data path: both attach over the shared maps, and cleanup removes both', OPTIONS, async (t) => {
  const w = await world(t);
  await runCommand('ip', ['-n', w.netns, 'link', 'add', 'uplink0', 'type', 'veth', 'peer', 'name', 'uplink1']);
  await runCommand('ip', ['-n', w.netns, 'link', 'set', 'uplink0', 'up']);
  const proxy = await EbpfServiceProxy.open({
    bpffsDir: w.pins,
    cgroupRoot: w.cgroup,
    nodePort: { enabled: true, interfaces: ['uplink0'] },
    northSouth: (options) => new NodePortDatapath({ ...options, netns: `/var/run/netns/${w.netns}` }),
  });
  onCleanup(t, () => proxy.cleanup());
  const report = await applyMap(proxy, serviceMap([port('np', 'TCP', '10.250.0.9', 80, THREE, { nodePort: 30080 })], [parseIp('192.168.77.1')]));
  // The socket side's entries (3 backends; ClusterIP, NodePort internal and external: 3 × 4; 1 node
  // address) and the tc side's own (its masquerade addresses).
  assert.ok(report.written > 3 + 12 + 1, `written ${report.written}`);
  // The tc programs use the shared maps too, so their links count as the proxy's.
  const mine = await proxyIds(w);
  assert.ok(mine.links.size >= SOCK_LB_PROGRAMS.length + 2, `links: ${mine.links.size}`);
  await proxy.cleanup();
  assert.deepEqual((await stillThere(mine)).links, [], 'no link left');
  assert.equal(existsSync(w.pins), false, 'no pin left');
});

test('tables of the sizes asked for hold that many backends and frontends; what does not fit is logged and counted, the rest is served', OPTIONS, async (t) => {
  const w = await world(t);
  await startThree(t, w);
  const lines: Array<{ level: number; msg: string; byTable?: Record<string, number> }> = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(JSON.parse(chunk.toString()) as (typeof lines)[number]);
      done();
    },
  });
  const proxy = await EbpfServiceProxy.open({ bpffsDir: w.pins, cgroupRoot: w.cgroup, sizes: { serviceEntries: 12, backendEntries: 100 }, log: pino({ level: 'info' }, sink) });
  onCleanup(t, () => proxy.cleanup());
  assert.equal(proxy.maps.services.maxEntries, 12);
  assert.equal(proxy.maps.backends.maxEntries, 101, 'id 0 means none');
  // 100 distinct backends: ten services of ten, the three live ones among them (service 0).
  const tenOf = (s: number) => (s === 0 ? [...THREE, ...Array.from({ length: 7 }, (_, i) => backend(`127.0.50.${i + 1}`, 8080))] : Array.from({ length: 10 }, (_, i) => backend(`127.0.${s}.${i + 1}`, 8080)));
  const ports = Array.from({ length: 10 }, (_, s) => port(`s${s}`, 'TCP', `10.250.0.${s + 1}`, 80, tenOf(s)));
  const full = await applyMap(proxy, serviceMap(ports));
  assert.deepEqual(full.unfit, { services: 0, backends: 0, slots: 0 });
  assert.equal(proxy.maps.services.keys().length, 10);
  assert.equal(lines.filter((l) => l.level >= 40).length, 0, 'nothing to warn about');

  // One more backend than wl_backends holds: its frontend is left out, the others are programmed.
  const extra = port('extra', 'TCP', '10.250.0.100', 80, [backend('127.0.100.1', 8080)]);
  const shared = port('shared', 'TCP', '10.250.0.101', 80, THREE);
  const over = await applyMap(proxy, serviceMap([...ports, extra, shared]));
  assert.deepEqual(over.unfit, { services: 0, backends: 1, slots: 0 });
  assert.equal(proxy.maps.services.keys().length, 11, 'the service of known backends fits');
  assert.deepEqual(new Set(names(await request(t, w, 'tcp', '10.250.0.101', 80, 20))), new Set(['b1', 'b2', 'b3']));
  const warned = lines.filter((l) => l.level === 40);
  assert.equal(warned.length, 1);
  assert.match(warned[0]!.msg, /1 service frontend\(s\) do not fit: wl_backends \(100 backends: --backend-entries\) full; 1 not programmed.*test\/extra:tcp\/TCP 10\.250\.0\.100 port 80/);
  // Planned again at every apply, logged once.
  assert.deepEqual((await applyMap(proxy, serviceMap([...ports, extra, shared]))).unfit, { services: 0, backends: 1, slots: 0 });
  assert.equal(lines.filter((l) => l.level === 40).length, 1, 'the same unfit frontends are not logged again');

  // A frontend past wl_services' size.
  const more = [13, 14].map((n) => port(`more${n}`, 'TCP', `10.250.0.${n}`, 80, THREE));
  const past = await applyMap(proxy, serviceMap([...ports, shared, ...more]));
  assert.deepEqual(past.unfit, { services: 1, backends: 0, slots: 0 }, "the extra service is gone, its backend with it; one of the two new ones is past wl_services' 12");
  assert.equal(proxy.maps.services.keys().length, 12);
  assert.match(lines.at(-1)!.msg, /wl_services \(12 frontends: --service-entries\) full/);

  // Room again: the next apply programs it without its service changing.
  await applyMap(proxy, serviceMap([...ports.slice(1), shared, ...more]));
  const fits = await applyMap(proxy, serviceMap([...ports.slice(1), shared, ...more]));
  assert.deepEqual(fits.unfit, { services: 0, backends: 0, slots: 0 });
  assert.equal(proxy.maps.services.keys().length, 12);
  assert.match(lines.at(-1)!.msg, /every service frontend fits in the maps again/);
  assert.deepEqual(new Set(names(await request(t, w, 'tcp', '10.250.0.14', 80, 20))), new Set(['b1', 'b2', 'b3']));
});
