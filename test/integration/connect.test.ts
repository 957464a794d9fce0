// Issue 14 item 4: `wirelane connect` on a host outside the cluster (the kubernetes source, the test
// API server) registers its Peer, brings up its interface with routes to the pod and service
// ranges, reaches a pod and a ClusterIP served from another location, and on SIGTERM removes the
// Peer, the interface, its routes and its wireguard-go, exiting 0; a second run reuses its key.
// Until a leader completes a first handshake it routes nothing (issue 12): the laptop keeps
// reaching node IPs on its own routes while its packets to the leaders are dropped.
// The agents serve Services with iptables; the services conformance suite has a Peer client in
// every mode.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { PEER_ROUTE_PROTOCOL } from '../../src/peer/connection.js';
import type { SpawnedProcess } from '../../src/host/command.js';
import { parseKey, publicKeyOf } from '../../src/model/key.js';
import { cliPath, WIREGUARD_PORT } from '../../src/sandbox/mesh-cluster.js';
import { uapiSocketPath } from '../../src/wireguard/uapi-socket.js';
import { startMeshCluster } from '../harness/mesh-cluster.js';
import { CLUSTER_IP, TARGET_PORT, webEndpoints, webService } from '../harness/web-service.js';
import type { KubeApiServer } from '../kube-apiserver/index.js';
import { AGENT_TOOLS, capabilitySkip } from '../support/capability.js';
import { until } from '../support/wait.js';

const skip = await capabilitySkip('connect integration test', [...AGENT_TOOLS, ['curl', ['--version']]]);

const PEER_IP = '10.5.0.1';
/** In the laptop's namespace: its WireGuard packets to the leaders' port are dropped, so no handshake completes. */
const NO_HANDSHAKE_TABLE = 'wltest_no_handshake';
const NO_HANDSHAKE = `table inet ${NO_HANDSHAKE_TABLE} {\n  chain out {\n    type filter hook output priority 0; policy accept;\n    udp dport ${WIREGUARD_PORT} drop\n  }\n}\n`;
const SERVICE_CIDR = '10.96.0.0/12';
// Heartbeats every 2.5 s, nodes judged gone after 10 s: wide enough for a loaded machine.
const RESYNC = '5s';

// A one-line HTTP server naming its pod: the ClusterIP's backend.
const HTTP_SERVER = `require('node:http').createServer((_q, s) => s.end(process.argv[1] + '\\n')).listen(${TARGET_PORT});`;

test('connect: a host outside joins as a Peer, reaches a pod and a ClusterIP, and leaves nothing behind', { skip, timeout: 300_000 }, async (t) => {
  const { cluster, api: maybeApi } = await startMeshCluster(t, {
    nodes: [
      { name: 'a', location: 'east' },
      { name: 'b', location: 'east' },
      { name: 'c', location: 'west' },
    ],
    source: 'kubernetes',
    outside: [{ name: 'laptop', underlayAddress: '172.31.1.1/16' }],
    agentArgs: ['--resync-period', RESYNC, '--service-proxy', 'iptables', '--service-cidr', SERVICE_CIDR],
  });
  const api = maybeApi as KubeApiServer;
  const { sandbox } = cluster;
  const laptop = sandbox.outside[0]!;
  // The backend lives in the other location than the one the service range is routed to (a's).
  const backend = sandbox.node('c').pods[0]!;
  sandbox.spawn(backend, process.execPath, ['-e', HTTP_SERVER, backend.name], { stdout: 'ignore', stderr: 'ignore' });
  api.create('services', webService('ClusterIP'));
  api.create('endpointslices', webEndpoints([backend]));
  for (const n of ['a', 'b', 'c']) cluster.startAgent(n);
  await cluster.waitReady(undefined, 90_000);

  const stateDir = await mkdtemp(join(tmpdir(), 'wirelane-connect-'));
  t.after(() => rm(stateDir, { recursive: true, force: true }));
  const iface = `${sandbox.prefix}pc`;
  const log = join(stateDir, 'connect.log');
  const start = (): SpawnedProcess =>
    sandbox.spawn(laptop, process.execPath, [
      cliPath(), 'connect', 'laptop', '--kubeconfig', cluster.kubeconfig, '--allowed-ip', `${PEER_IP}/32`, '--interface', iface,
      '--state-dir', stateDir, '--resync-period', RESYNC, '--service-cidr', SERVICE_CIDR, '--log-level', 'debug',
    ], { stdout: { file: log }, stderr: { file: log } });
  const connectLog = () => readFile(log, 'utf8').catch(() => '');
  // A wait that fails with connect's log, which the harness does not print.
  const waitFor = (what: string, check: () => boolean | Promise<boolean>) =>
    until(what, check, 60_000, 100).catch(async (err: Error) => assert.fail(`${err.message}\n--- connect\n${await connectLog()}`));
  const stop = async (child: SpawnedProcess): Promise<number | undefined> => {
    await sandbox.stop(child, 20_000);
    return (await child).exitCode;
  };

  await sandbox.exec(laptop, 'nft', ['-f', '-'], { input: NO_HANDSHAKE });
  const first = start();
  await waitFor('the Peer object', () => api.get('peers', 'laptop') !== undefined);
  const keyFile = join(stateDir, 'peer-laptop.key');
  assert.equal((await stat(keyFile)).mode & 0o777, 0o600, 'the private key is 0600');
  const publicKey = publicKeyOf(parseKey((await readFile(keyFile, 'utf8')).trim()));
  assert.deepEqual(api.get('peers', 'laptop')?.['spec'], { allowedIPs: [`${PEER_IP}/32`], publicKey, persistentKeepalive: 10 });
  assert.ok(!(await connectLog()).includes((await readFile(keyFile, 'utf8')).trim()), 'the private key is never logged');

  await waitFor('connect to say it waits for a first handshake', async () => (await connectLog()).includes('no handshake with any leader'));
  const routesBefore = (await sandbox.exec(laptop, 'ip', ['route', 'show', 'table', 'all', 'proto', String(PEER_ROUTE_PROTOCOL)])).stdout.trim();
  assert.equal(routesBefore, '', 'no route into the tunnel before a first handshake');
  const nodeIP = sandbox.node('a').underlayIP;
  assert.ok(await cluster.ping(laptop, nodeIP), `the laptop still reaches node a (${nodeIP}) on its own route`);
  await sandbox.exec(laptop, 'nft', ['delete', 'table', 'inet', NO_HANDSHAKE_TABLE]);
  await waitFor('connect to route after the first handshake', async () => (await connectLog()).includes('first handshake: routing'));

  for (const pod of sandbox.pods) {
    assert.ok(await cluster.waitPing(laptop, pod.ip, 30_000), `the laptop reaches ${pod.name}\n${await connectLog()}`);
  }
  for (const pod of sandbox.pods) assert.ok(await cluster.waitPing(pod, PEER_IP), `${pod.name} reaches the laptop`);
  const routes = (await sandbox.exec(laptop, 'ip', ['-4', 'route', 'show', 'proto', String(PEER_ROUTE_PROTOCOL)])).stdout;
  assert.match(routes, new RegExp(`^${SERVICE_CIDR.replace(/[./]/g, '\\$&')} dev ${iface} `, 'm'), 'the service range goes through the interface');
  let answer = '';
  await waitFor('the ClusterIP to answer over HTTP', async () => {
    answer = (await sandbox.exec(laptop, 'curl', ['-sf', '--max-time', '2', `http://${CLUSTER_IP}/`], { allowFailure: true })).stdout.trim();
    return answer !== '';
  });
  assert.equal(answer, backend.name, 'the backend in the other location answers the laptop');

  assert.equal(await stop(first), 0, `connect exits 0 on SIGTERM\n${await connectLog()}`);
  assert.equal(api.get('peers', 'laptop'), undefined, 'the Peer object is gone');
  const link = await sandbox.exec(laptop, 'ip', ['link', 'show', iface], { allowFailure: true });
  assert.notEqual(link.exitCode, 0, 'the interface is gone');
  for (const family of ['-4', '-6']) {
    assert.equal((await sandbox.exec(laptop, 'ip', [family, 'route', 'show', 'table', 'all', 'proto', String(PEER_ROUTE_PROTOCOL)])).stdout.trim(), '', `no ${family} route is left`);
  }
  assert.ok(!existsSync(uapiSocketPath(iface)), "wireguard-go's socket is gone");
  assert.deepEqual(await wireguardGoServing(iface), [], 'no wireguard-go serves the interface any more');
  assert.ok(!(await cluster.ping(sandbox.node('a').pods[0]!, PEER_IP)), 'the laptop is out of the mesh');

  // The next run is the same Peer to the cluster: the key file is reused.
  const second = start();
  await waitFor('the Peer object again', () => api.get('peers', 'laptop') !== undefined);
  assert.equal((api.get('peers', 'laptop')?.['spec'] as { publicKey?: unknown } | undefined)?.publicKey, publicKey, 'the same public key');
  assert.ok(await cluster.waitPing(laptop, backend.ip, 30_000), 'and it reaches the pods again');
  assert.equal(await stop(second), 0);
  assert.equal(api.get('peers', 'laptop'), undefined);
});

/** PIDs of wireguard-go processes whose command line serves `iface` (read from /proc, nothing signalled). */
async function wireguardGoServing(iface: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const argv = (await readFile(join('/proc', entry, 'cmdline'), 'utf8').catch(() => '')).split('\0');
    if (argv.some((a) => a.endsWith('wireguard-go')) && argv.includes(iface)) pids.push(Number(entry));
  }
  return pids;
}
