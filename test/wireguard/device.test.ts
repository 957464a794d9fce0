// Integration: two network namespaces joined by a veth pair, a WireGuard device in each, traffic
// through the tunnel. Names carry this process's pid: wireguard-go's socket directory is shared
// by every namespace, so device names must be unique on the machine (other tests run alongside).
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { listAddresses } from '../../src/host/addresses.js';
import { runCommand } from '../../src/host/command.js';
import { findLink } from '../../src/host/links.js';
import { parseEndpoint } from '../../src/model/endpoint.js';
import { parseCidr } from '../../src/model/ip.js';
import { generatePrivateKey, publicKeyOf } from '../../src/model/key.js';
import { probeTcp, UNUSED_PORT } from '../../src/sandbox/probe.js';
import { equalConfig } from '../../src/wireguard/compare.js';
import { renderConfig } from '../../src/wireguard/conf-text.js';
import type { WireGuardConfig } from '../../src/wireguard/config.js';
import { withSecretFile } from '../../src/wireguard/secret-file.js';
import { type BackendExit, WireGuardDevice } from '../../src/wireguard/device.js';
import { WIREGUARD_TOOLS, capabilitySkip } from '../support/capability.js';

const skip = await capabilitySkip('WireGuard device test', WIREGUARD_TOOLS);

const id = process.pid.toString(36);
const NS_A = `wl-wgdev-${id}-a`;
const NS_B = `wl-wgdev-${id}-b`;
const UNDERLAY_A = '10.250.0.1';
const UNDERLAY_B = '10.250.0.2';
const TUNNEL_A = parseCidr('10.251.0.1/24');
const TUNNEL_B = parseCidr('10.251.0.2/24');
const PORT_A = 51820;
const PORT_B = 51821;

const keyA = generatePrivateKey();
const keyB = generatePrivateKey();
const [pubA, pubB] = [publicKeyOf(keyA), publicKeyOf(keyB)];

// A has an endpoint for B; B has none for A and learns it from A's handshake, the way a roaming
// peer is reached.
const configA: WireGuardConfig = {
  interface: { privateKey: keyA, listenPort: PORT_A },
  peers: [{ publicKey: pubB, endpoint: parseEndpoint(`${UNDERLAY_B}:${PORT_B}`), allowedIPs: [parseCidr('10.251.0.2/32')] }],
};
const configB: WireGuardConfig = {
  interface: { privateKey: keyB, listenPort: PORT_B },
  // Host bits set on purpose: wg stores it masked and apply must still see no difference.
  peers: [{ publicKey: pubA, allowedIPs: [parseCidr('10.251.0.1/32'), parseCidr('10.253.7.7/24')] }],
};

const exits: BackendExit[] = [];
let exitSeen: (() => void) | undefined;
// A uses whatever the machine has (here: no kernel module, so wireguard-go); B always wireguard-go.
const devA = new WireGuardDevice({ name: `wlg${id}a`, netns: NS_A });
const devB = new WireGuardDevice({
  name: `wlg${id}b`,
  netns: NS_B,
  backend: 'userspace',
  onBackendExit: (exit) => {
    exits.push(exit);
    exitSeen?.();
  },
});

async function ip(netns: string, ...args: string[]): Promise<void> {
  await runCommand('ip', ['-n', netns, ...args]);
}

async function bringUp(device: WireGuardDevice, config: WireGuardConfig, address: typeof TUNNEL_A): Promise<void> {
  await device.ensure();
  await device.apply(config);
  await device.setAddress(address);
  await device.up();
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

before(async () => {
  if (skip) return;
  await runCommand('ip', ['netns', 'add', NS_A]);
  await runCommand('ip', ['netns', 'add', NS_B]);
  await ip(NS_A, 'link', 'add', 'under0', 'type', 'veth', 'peer', 'name', 'under0', 'netns', NS_B);
  for (const [ns, addr] of [[NS_A, UNDERLAY_A], [NS_B, UNDERLAY_B]] as const) {
    await ip(ns, 'addr', 'add', `${addr}/24`, 'dev', 'under0');
    await ip(ns, 'link', 'set', 'under0', 'up');
    await ip(ns, 'link', 'set', 'lo', 'up');
  }
});

after(async () => {
  if (skip) return;
  const pids = [devA.pid, devB.pid].filter((pid): pid is number => pid !== undefined);
  await Promise.allSettled([devA.destroy(), devB.destroy()]);
  for (const pid of pids.filter(isAlive)) process.kill(pid, 'SIGKILL');
  for (const ns of [NS_A, NS_B]) await runCommand('ip', ['netns', 'del', ns], { allowFailure: true });
});

test('ensure creates the interface (wireguard-go without a kernel module) and is idempotent', { skip }, async () => {
  const first = await devA.ensure();
  const module = await runCommand('ip', ['link', 'add', `wlk${id}`, 'type', 'wireguard'], { netns: NS_A, allowFailure: true });
  assert.equal(first.backend, module.exitCode === 0 ? 'kernel' : 'userspace');
  assert.equal(first.created, true);
  if (first.backend === 'userspace') {
    assert.ok(first.pid !== undefined && isAlive(first.pid));
    assert.ok(existsSync(devA.socketPath));
  }
  assert.deepEqual(await devA.ensure(), { ...first, created: false });
  assert.equal((await findLink(devA.name, { netns: NS_A }))?.name, devA.name);
  assert.equal(await findLink(devA.name), undefined, 'the link must live in the namespace, not the host');

  const b = await devB.ensure();
  assert.equal(b.backend, 'userspace');
  assert.ok(b.pid !== undefined && isAlive(b.pid));
});

test('a tunnel configured from our rendering carries traffic', { skip }, async () => {
  // `wg setconf` of the rendered text is the contract other tools (showconf, the CLI) rely on.
  await withSecretFile(renderConfig(configA), (path) => runCommand('wg', ['setconf', devA.name, path], { netns: NS_A }));
  assert.ok(equalConfig(await devA.read(), configA), 'read back what wg setconf wrote');
  assert.equal((await devA.apply(configA)).written, false);
  await bringUp(devA, configA, TUNNEL_A);
  assert.deepEqual(await devB.apply(configB), {
    written: true,
    changes: [`interface: set privateKey`, 'interface: set listenPort', `peer ${pubA}: add (allowed IPs 10.251.0.1/32,10.253.7.0/24)`],
    unresolved: [],
  });
  await devB.setAddress(TUNNEL_B);
  await devB.up();

  // Port 9 is closed: "refused" means the SYN crossed the tunnel and the RST came back.
  assert.equal(await probeTcp(NS_A, '10.251.0.2', UNUSED_PORT, 5000), 'refused');
  const peerB = (await devA.dump()).peers.find((p) => p.publicKey === pubB);
  assert.ok(peerB?.latestHandshake !== undefined, 'A completed a handshake with B');
  assert.ok((peerB?.rxBytes ?? 0n) > 0n);
  const peerA = (await devB.dump()).peers.find((p) => p.publicKey === pubA);
  assert.deepEqual(peerA?.endpoint, parseEndpoint(`${UNDERLAY_A}:${PORT_A}`), 'B learned where A is');
});

test('applying the same config again writes nothing, also over a learned endpoint and masked IPs', { skip }, async () => {
  assert.deepEqual(await devA.apply(configA), { written: false, changes: [], unresolved: [] });
  assert.equal((await devB.apply(configB)).written, false);
  assert.equal(await devA.setAddress(TUNNEL_A), false);
  assert.equal(await devA.up(), false);
});

test("changing one peer's allowed IPs writes that field only and keeps the session", { skip }, async () => {
  const before = (await devA.dump()).peers[0]?.latestHandshake;
  const wider: WireGuardConfig = {
    ...configA,
    peers: [{ ...configA.peers[0]!, allowedIPs: [parseCidr('10.251.0.2/32'), parseCidr('10.252.0.0/24')] }],
  };
  const result = await devA.apply(wider);
  assert.equal(result.written, true);
  assert.deepEqual(result.changes, [`peer ${pubB}: set allowedIPs (allowed IPs 10.251.0.2/32,10.252.0.0/24)`]);
  assert.ok(equalConfig(await devA.read(), wider));
  assert.equal((await devA.apply(wider)).written, false);
  assert.equal(await probeTcp(NS_A, '10.251.0.2', UNUSED_PORT, 5000), 'refused');
  assert.deepEqual((await devA.dump()).peers[0]?.latestHandshake, before, 'no new handshake was needed');
  assert.equal((await devA.apply(configA)).written, true);
});

test("changing only a peer's keepalive keeps its allowed IPs: the tunnel carries traffic right after", { skip }, async () => {
  const keepalive: WireGuardConfig = { ...configA, peers: [{ ...configA.peers[0]!, persistentKeepalive: 25 }] };
  const result = await devA.apply(keepalive);
  assert.deepEqual(result.changes, [`peer ${pubB}: set persistentKeepalive (allowed IPs 10.251.0.2/32)`]);
  assert.ok(equalConfig(await devA.read(), keepalive), 'the allowed IPs are still there');
  assert.equal(await probeTcp(NS_A, '10.251.0.2', UNUSED_PORT, 5000), 'refused');
  assert.equal((await devA.apply(configA)).written, true);
});

test('a peer left out of the config is removed, and comes back when it returns', { skip }, async () => {
  const result = await devA.apply({ interface: configA.interface, peers: [] });
  assert.deepEqual(result.changes, [`peer ${pubB}: remove`]);
  assert.deepEqual((await devA.read()).peers, []);
  assert.equal((await devA.apply(configA)).written, true);
  assert.equal(await probeTcp(NS_A, '10.251.0.2', UNUSED_PORT, 5000), 'refused');
});

test('mtu, up and down change only what differs', { skip }, async () => {
  assert.equal(await devA.setMtu(1380), true);
  assert.equal(await devA.setMtu(1380), false);
  assert.equal((await findLink(devA.name, { netns: NS_A }))?.mtu, 1380);
  assert.equal(await devA.down(), true);
  assert.equal(await devA.down(), false);
  assert.equal(await devA.up(), true);
  assert.equal(await devA.setAddress(parseCidr('10.251.0.11/24')), true);
  assert.equal(await devA.setAddress(TUNNEL_A), true);
});

test('setLink sets the mtu and the admin state together, and says which of them changed', { skip }, async () => {
  const link = async () => {
    const found = await findLink(devA.name, { netns: NS_A });
    return [found?.mtu, found?.up];
  };
  const before = (await findLink(devA.name, { netns: NS_A }))?.mtu ?? 0;
  assert.deepEqual(await devA.setLink({ mtu: 1370, up: false }), { mtu: true, up: true });
  assert.deepEqual(await link(), [1370, false]);
  assert.deepEqual(await devA.setLink({ mtu: 1370, up: true }), { mtu: false, up: true });
  assert.deepEqual(await devA.setLink({ mtu: before, up: true }), { mtu: true, up: false });
  assert.deepEqual(await devA.setLink({ mtu: before, up: true }), { mtu: false, up: false });
  assert.deepEqual(await link(), [before, true]);
});

test('setAddresses holds exactly one address per family, as a Peer\'s interface does', { skip }, async () => {
  const both = [parseCidr('10.251.0.21/32'), parseCidr('fd51::21/128')];
  const addresses = async () => (await listAddresses({ netns: NS_A, ifname: devA.name })).filter((a) => a.scope !== 'link').map((a) => a.cidr).sort();
  assert.equal(await devA.setAddresses(both), true);
  assert.deepEqual(await addresses(), ['10.251.0.21/32', 'fd51::21/128']);
  assert.equal(await devA.setAddresses(both), false, 'nothing to change');
  assert.equal(await devA.setAddresses([both[1]!]), true);
  assert.deepEqual(await addresses(), ['fd51::21/128']);
  assert.equal(await devA.setAddress(TUNNEL_A), true);
  assert.deepEqual(await addresses(), ['10.251.0.1/24']);
});

test('when wireguard-go dies the device reports it, and ensure plus apply rebuild the tunnel', { skip }, async () => {
  const pid = devB.pid;
  assert.ok(pid !== undefined);
  const seen = new Promise<void>((resolve) => {
    exitSeen = resolve;
  });
  process.kill(pid, 'SIGKILL');
  await Promise.race([seen, sleep(5000).then(() => assert.fail('onBackendExit was not called'))]);
  assert.deepEqual(exits.map((e) => [e.name, e.pid, e.signal]), [[devB.name, pid, 'SIGKILL']]);
  assert.equal(devB.backend, undefined);
  assert.equal(devB.pid, undefined);

  const again = await devB.ensure();
  assert.equal(again.created, true);
  assert.notEqual(again.pid, pid);
  // A still holds a session with the dead instance and would only notice after ~15 s of
  // silence; the restarted side knowing A's endpoint handshakes at once.
  const reaching: WireGuardConfig = { ...configB, peers: [{ ...configB.peers[0]!, endpoint: parseEndpoint(`${UNDERLAY_A}:${PORT_A}`) }] };
  assert.equal((await devB.apply(reaching)).written, true);
  assert.equal(await devB.setAddress(TUNNEL_B), true);
  assert.equal(await devB.up(), true);
  assert.equal(await probeTcp(NS_B, '10.251.0.1', UNUSED_PORT, 5000), 'refused');
});

test('destroy removes the link, stops wireguard-go and is idempotent', { skip }, async () => {
  const pids = [devA.pid, devB.pid];
  for (const device of [devA, devB]) {
    await device.destroy();
    await device.destroy();
    assert.equal(await findLink(device.name, { netns: device.netns }), undefined);
    assert.equal(existsSync(device.socketPath), false, `${device.socketPath} is gone`);
    assert.equal(device.pid, undefined);
  }
  for (const pid of pids) if (pid !== undefined) assert.equal(isAlive(pid), false, `wireguard-go ${pid} stopped`);
  assert.equal(exits.length, 1, 'destroy is not an unexpected exit');
});
