// Issue 11, item 3: socket-LB state per owner, on the real kernel. Two "pods" (network namespaces,
// each with its own echo backend on 127.0.0.11, processes in the test's cgroup under the socket
// programs) use one ClusterIP. One pod keeps a connected and an unconnected UDP socket open; the
// other opens and closes 100,000 sockets towards ClusterIPs, six times the reverse-translation
// map's size. The first pod's replies still come from the service address, and once the churning
// sockets are closed the maps hold the first pod's entries and nothing else.
import assert from 'node:assert/strict';
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { openPinnedMap } from '../../src/bpf/index.js';
import { runCommand } from '../../src/host/command.js';
import { createNetns, deleteNetns } from '../../src/host/netns.js';
import { EbpfServiceProxy, MAP_NAMES, mapPinPath } from '../../src/dataplane/ebpf/index.js';
import { parseIp } from '../../src/model/ip.js';
import type { ServicePort } from '../../src/model/service.js';
import { bpffsDir, bpfSkip, cgroupDir, onCleanup, uniqueName } from '../bpf/harness.js';
import { applyMap } from '../support/apply-map.js';
import { backend, serviceMap, servicePort } from '../support/service-map.js';

const skip = await bpfSkip('socket LB churn test');

const SERVICE = { ip: '10.250.0.1', udp: 53, tcp: 80 };
const BACKEND = '127.0.0.11';
const SOCK_LB_ENTRIES = 16384;
const CHURN = { unconnected: 40_000, connected: 58_000, tcp: 2_000 };

/** Echo on TCP and UDP `port`, answering `<name>`; prints ready once both listen. */
const SERVER = `
import { createServer } from 'node:net';
import { createSocket } from 'node:dgram';
const [name, host, udpPort, tcpPort] = process.argv.slice(1);
const udp = createSocket('udp4');
udp.on('message', (_m, from) => udp.send(name, from.port, from.address));
let ready = 0;
const up = () => { if (++ready === 2) process.stdout.write('ready\\n'); };
udp.bind(Number(udpPort), host, up);
createServer((s) => { s.on('error', () => {}); s.end(name); }).listen(Number(tcpPort), host, up);
`;

/** Two UDP sockets kept open, a connected and an unconnected one; on each stdin line, one request on each. */
const KEEPER = `
import { createSocket } from 'node:dgram';
import { createInterface } from 'node:readline';
const [host, port] = process.argv.slice(1);
const connected = createSocket('udp4');
const unconnected = createSocket('udp4');
await new Promise((r) => connected.connect(Number(port), host, r));
await new Promise((r) => unconnected.bind(0, r));
function ask(sock, isConnected) {
  return new Promise((resolve) => {
    const timer = setTimeout(() => done({ error: 'ETIMEDOUT' }), 2000);
    const onMessage = (m, rinfo) => done({ answer: m.toString(), from: rinfo.address + ':' + rinfo.port });
    function done(r) { clearTimeout(timer); sock.off('message', onMessage); resolve(r); }
    sock.on('message', onMessage);
    if (isConnected) sock.send('ping'); else sock.send('ping', Number(port), host);
  });
}
for await (const _line of createInterface({ input: process.stdin })) {
  process.stdout.write(JSON.stringify({ connected: await ask(connected, true), unconnected: await ask(unconnected, false) }) + '\\n');
}
`;

/**
 * Sockets towards the ClusterIPs, BATCH open at a time, each closed once done: UDP sockets that ask
 * the echo service once, as a resolver does (unconnected: sendmsg; connected: connect), and TCP
 * connections. Prints how many.
 */
const CHURNER = `
import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
const [serviceIp, udpPort, tcpPort, unconnected, connected, tcp] = process.argv.slice(1);
const BATCH = 200;
let made = 0;
async function batches(total, open) {
  for (let done = 0; done < total; done += BATCH) {
    const sockets = await Promise.all(Array.from({ length: Math.min(BATCH, total - done) }, open));
    await Promise.all(sockets.map((close) => close()));
    made += sockets.length;
  }
}
// Asks once and waits for the answer (or a second), then hands back the close.
const udp = (isConnected) => () => new Promise((resolve) => {
  const s = createSocket('udp4');
  const close = () => new Promise((r) => s.close(r));
  const timer = setTimeout(() => resolve(close), 1000);
  s.on('error', () => {});
  s.once('message', () => { clearTimeout(timer); resolve(close); });
  if (isConnected) s.connect(Number(udpPort), serviceIp, () => s.send('x'));
  else s.send('x', Number(udpPort), serviceIp);
});
await batches(Number(unconnected), udp(false));
await batches(Number(connected), udp(true));
await batches(Number(tcp), () => new Promise((resolve) => {
  const s = connect({ host: serviceIp, port: Number(tcpPort) });
  const close = () => new Promise((r) => { s.once('close', r); s.destroy(); });
  s.on('error', () => resolve(close));
  s.on('connect', () => resolve(close));
}));
process.stdout.write(made + '\\n');
`;

interface World {
  readonly pods: readonly [string, string];
  readonly cgroup: string;
  readonly pins: string;
}

async function world(t: TestContext): Promise<World> {
  const pods = [uniqueName('wlpod'), uniqueName('wlpod')] as const;
  await createNetns([...pods]);
  onCleanup(t, () => deleteNetns([...pods]));
  for (const netns of pods) await runCommand('ip', ['-n', netns, 'link', 'set', 'lo', 'up']);
  return { pods, cgroup: cgroupDir(t), pins: join(await bpffsDir(t), 'wirelane') };
}

/** A Node program in `netns`, moved into the cgroup first (`ip netns exec` mounts a /sys without the cgroup2 mount). */
function run(t: TestContext, w: World, netns: string, program: string, args: readonly string[]): ChildProcessWithoutNullStreams {
  const child = spawn('sh', ['-c', 'echo $$ > "$1/cgroup.procs" && shift && exec "$@"', 'sh', w.cgroup, 'ip', 'netns', 'exec', netns, process.execPath, '--input-type=module', '-e', program, ...args]);
  onCleanup(t, () => {
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
  });
  return child;
}

/** Resolves with the child's next stdout line. */
function nextLine(child: ChildProcessWithoutNullStreams, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let buffer = '';
    let err = '';
    const timer = setTimeout(() => finish(new Error(`no line within ${timeoutMs} ms: ${err}`)), timeoutMs);
    const onData = (d: Buffer): void => {
      buffer += d.toString();
      const at = buffer.indexOf('\n');
      if (at >= 0) finish(undefined, buffer.slice(0, at));
    };
    const onErr = (d: Buffer): void => {
      err += d.toString();
    };
    const onExit = (code: number | null): void => finish(new Error(`exited (${code}) before a line: ${err}`));
    function finish(error: Error | undefined, line?: string): void {
      clearTimeout(timer);
      child.stdout.off('data', onData);
      child.stderr.off('data', onErr);
      child.off('exit', onExit);
      if (error) reject(error);
      else resolve(line ?? '');
    }
    child.stdout.on('data', onData);
    child.stderr.on('data', onErr);
    child.on('exit', onExit);
  });
}

function entries(w: World, name: string): number {
  const map = openPinnedMap(mapPinPath(w.pins, name as never));
  try {
    return map.keys().length;
  } finally {
    map.close();
  }
}

test("one pod's 100,000 sockets towards ClusterIPs leave another pod's UDP replies translated, and nothing behind once closed", { skip, timeout: 120_000 }, async (t) => {
  const w = await world(t);
  const [keeperPod, churnPod] = w.pods;
  for (const netns of w.pods) {
    const server = run(t, w, netns, SERVER, [netns === keeperPod ? 'keeper-backend' : 'churn-backend', BACKEND, '8053', '8080']);
    assert.equal(await nextLine(server, 10_000), 'ready');
  }
  const proxy = await EbpfServiceProxy.open({ bpffsDir: w.pins, cgroupRoot: w.cgroup, sizes: { sockLbEntries: SOCK_LB_ENTRIES } });
  onCleanup(t, () => proxy.cleanup());
  const at = (service: string, protocol: 'TCP' | 'UDP', ip: string, port: number, to: number): ServicePort => {
    const endpoints = [backend(`${BACKEND}:${to}`, true)];
    return servicePort({ service: `test/${service}`, portName: protocol.toLowerCase(), protocol, clusterIPs: [parseIp(ip)], port, clusterEndpoints: endpoints, internalEndpoints: endpoints, externalEndpoints: endpoints });
  };
  await applyMap(proxy, serviceMap([at('dns', 'UDP', SERVICE.ip, SERVICE.udp, 8053), at('web', 'TCP', SERVICE.ip, SERVICE.tcp, 8080)]));
  assert.equal(proxy.maps.sockRev.maxEntries, SOCK_LB_ENTRIES);

  const keeper = run(t, w, keeperPod, KEEPER, [SERVICE.ip, String(SERVICE.udp)]);
  const ask = async (): Promise<unknown> => {
    keeper.stdin.write('go\n');
    return JSON.parse(await nextLine(keeper, 10_000)) as unknown;
  };
  const translated = { answer: 'keeper-backend', from: `${SERVICE.ip}:${SERVICE.udp}` };
  assert.deepEqual(await ask(), { connected: translated, unconnected: translated });
  // The keeper's: one reverse entry per socket, and the unconnected socket's backend memory.
  const kept = { rev: entries(w, MAP_NAMES.sockRev), affinity: entries(w, MAP_NAMES.affinity) };
  assert.deepEqual(kept, { rev: 2, affinity: 1 });

  const churner = run(t, w, churnPod, CHURNER, [SERVICE.ip, String(SERVICE.udp), String(SERVICE.tcp), String(CHURN.unconnected), String(CHURN.connected), String(CHURN.tcp)]);
  const started = Date.now();
  const made = Number(await nextLine(churner, 100_000));
  t.diagnostic(`churn: ${made} sockets in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  assert.equal(made, CHURN.unconnected + CHURN.connected + CHURN.tcp);
  assert.ok(made > 6 * SOCK_LB_ENTRIES);

  // The connected socket's reverse entry was written at connect(), before the churn: its reply is
  // still the service's.
  assert.deepEqual(await ask(), { connected: translated, unconnected: translated });
  assert.deepEqual({ rev: entries(w, MAP_NAMES.sockRev), affinity: entries(w, MAP_NAMES.affinity) }, kept, 'the churning sockets left nothing behind');
});
