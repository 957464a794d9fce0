import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { RoutesDataplane } from '../../src/dataplane/routes/index.js';
import { TunnelDevice, TunnelError, detectTunnelMode, vxlanMacOf, type TunnelDesired } from '../../src/dataplane/tunnel/index.js';
import { runCommand } from '../../src/host/command.js';
import { IpJsonObject, readIpJson, runIp, runIpBatch } from '../../src/host/ip.js';
import { findLink, listLinks } from '../../src/host/links.js';
import { createNetns, deleteNetns } from '../../src/host/netns.js';
import { parseCidr, parseIp } from '../../src/model/ip.js';
import { claimPrefix, releasePrefix } from '../../src/sandbox/registry.js';
import { capabilitySkip } from '../support/capability.js';

test('VXLAN MACs are derived from the underlay address: locally administered, unique for IPv4', () => {
  assert.equal(vxlanMacOf(parseIp('192.168.77.2')), '02:57:c0:a8:4d:02');
  assert.match(vxlanMacOf(parseIp('fd00::1')), /^02:57(:[0-9a-f]{2}){4}$/);
  assert.notEqual(vxlanMacOf(parseIp('fd00::1')), vxlanMacOf(parseIp('fd00::2')));
});

const skip = await capabilitySkip('tunnel tests');

interface Side {
  readonly netns: string;
  readonly underlay: string;
  readonly internal: string;
  readonly pod: string;
  readonly podCidr: string;
  tunnel: TunnelDevice;
  routes: RoutesDataplane;
}

describe('VXLAN tunnel between two namespaces', { skip }, () => {
  let prefix = '';
  let a: Side;
  let b: Side;

  const desiredOf = (self: Side, ...others: Side[]): TunnelDesired => ({
    localUnderlayIP: parseIp(self.underlay),
    // The local node is in the list too, as the mesh hands over a whole location.
    members: [self, ...others].map((s) => ({ internalIP: parseIp(s.internal), underlayIP: parseIp(s.underlay) })),
  });
  const podRoute = (self: Side, other: Side) => ({
    routes: [{ dst: parseCidr(other.podCidr), gw: parseIp(other.internal), dev: self.tunnel.name, src: parseIp(self.pod), onlink: true, table: 'main' as const }],
    rules: [],
  });
  const packets = async (side: Side): Promise<{ rx: number; tx: number }> => {
    const [entry] = await readIpJson(['-s', 'link', 'show', 'dev', side.tunnel.name], { netns: side.netns });
    const stats = new IpJsonObject(entry, 'link').object('stats64');
    return { rx: stats?.object('rx')?.number('packets') ?? -1, tx: stats?.object('tx')?.number('packets') ?? -1 };
  };
  const ping = (from: Side, to: Side) =>
    runCommand('ping', ['-c', '3', '-i', '0.2', '-W', '1', to.pod], { netns: from.netns, allowFailure: true });

  before(async () => {
    prefix = claimPrefix();
    const side = (name: string, n: number): Side =>
      ({
        netns: `${prefix}tun${name}`,
        underlay: `192.168.77.${n}`,
        internal: `172.16.77.${n}`,
        pod: `10.244.${n}.1`,
        podCidr: `10.244.${n}.0/24`,
      }) as Side;
    a = side('a', 1);
    b = side('b', 2);
    await createNetns([a.netns, b.netns]);
    await runIp(['link', 'add', 'u0', 'type', 'veth', 'peer', 'name', 'u0', 'netns', b.netns], { netns: a.netns });
    for (const s of [a, b]) {
      // The internal IP sits on lo, apart from the underlay address, so the test shows routes
      // via an internal IP reach the node at its (different) underlay address.
      await runIpBatch(
        [
          ['link', 'set', 'lo', 'up'],
          ['addr', 'add', `${s.underlay}/24`, 'dev', 'u0'],
          ['link', 'set', 'u0', 'up'],
          ['addr', 'add', `${s.internal}/32`, 'dev', 'lo'],
          ['addr', 'add', `${s.pod}/32`, 'dev', 'lo'],
        ],
        { netns: s.netns },
      );
      s.tunnel = await TunnelDevice.open({ netns: s.netns, mode: 'vxlan' });
      s.routes = new RoutesDataplane({ netns: s.netns });
    }
  });

  after(async () => {
    if (a !== undefined) await deleteNetns([a.netns, b.netns]);
    if (prefix !== '') releasePrefix(prefix);
  });

  test('mode detection leaves no probe link behind and agrees with the kernel', async () => {
    const before = (await listLinks({ netns: a.netns })).map((l) => l.name);
    const mode = await detectTunnelMode({ netns: a.netns });
    assert.deepEqual((await listLinks({ netns: a.netns })).map((l) => l.name), before);
    // Detection autoloads the module where it exists, so afterwards /sys/module tells the truth.
    assert.equal(mode, existsSync('/sys/module/ipip') ? 'ipip' : 'vxlan');
  });

  test('the first apply creates the device and one FDB and one neighbour entry per peer', async () => {
    assert.deepEqual(await a.tunnel.apply(desiredOf(a, b)), { written: 5 });
    assert.deepEqual(await b.tunnel.apply(desiredOf(b, a)), { written: 5 });
    const link = await findLink(a.tunnel.name, { netns: a.netns });
    assert.equal(link?.kind, 'vxlan');
    assert.equal(link?.mac, vxlanMacOf(parseIp(a.underlay)));
    assert.equal(link?.mtu, 1450, 'the MTU follows the underlay device minus the VXLAN overhead');
  });

  test('pods ping each other through the VXLAN device, routed via the internal IPs', async () => {
    assert.deepEqual(await a.routes.apply(podRoute(a, b)), { written: 1 });
    assert.deepEqual(await b.routes.apply(podRoute(b, a)), { written: 1 });
    const [beforeA, beforeB] = [await packets(a), await packets(b)];
    const result = await ping(a, b);
    assert.equal(result.exitCode, 0, result.stdout + result.stderr);
    const [afterA, afterB] = [await packets(a), await packets(b)];
    assert.ok(afterA.tx - beforeA.tx >= 3 && afterA.rx - beforeA.rx >= 3, `a: ${JSON.stringify([beforeA, afterA])}`);
    assert.ok(afterB.tx - beforeB.tx >= 3 && afterB.rx - beforeB.rx >= 3, `b: ${JSON.stringify([beforeB, afterB])}`);
  });

  test('applying the same members again writes nothing', async () => {
    assert.deepEqual(await a.tunnel.apply(desiredOf(a, b)), { written: 0 });
    assert.deepEqual(await b.tunnel.apply(desiredOf(b, a)), { written: 0 });
  });

  test('a forwarding entry deleted by hand comes back with one write', async () => {
    await runCommand('bridge', ['-n', a.netns, 'fdb', 'del', vxlanMacOf(parseIp(b.underlay)), 'dev', a.tunnel.name, 'self']);
    assert.equal((await ping(a, b)).exitCode, 1);
    assert.deepEqual(await a.tunnel.apply(desiredOf(a, b)), { written: 1 });
    assert.equal((await ping(a, b)).exitCode, 0);
  });

  test('a member that leaves loses its FDB and neighbour entries', async () => {
    assert.deepEqual(await a.tunnel.apply(desiredOf(a)), { written: 2 });
    assert.equal((await ping(a, b)).exitCode, 1);
    assert.deepEqual(await readIpJson(['neigh', 'show', 'dev', a.tunnel.name, 'nud', 'permanent'], { netns: a.netns }), []);
    assert.deepEqual(await a.tunnel.apply(desiredOf(a, b)), { written: 2 });
    assert.equal((await ping(a, b)).exitCode, 0);
  });

  test('on a dual-stack underlay the IPv4 tunnel carries IPv6 too, routed via the IPv6 internal IPs', async () => {
    const v6 = (s: Side) => ({ internal: `fd77::${s === a ? 1 : 2}`, pod: `fd44:${s === a ? 1 : 2}::1` });
    for (const s of [a, b]) await runIpBatch([['addr', 'add', `${v6(s).internal}/128`, 'dev', 'lo', 'nodad'], ['addr', 'add', `${v6(s).pod}/128`, 'dev', 'lo', 'nodad']], { netns: s.netns });
    const dualOf = (self: Side, other: Side): TunnelDesired => ({
      localUnderlayIP: parseIp(self.underlay),
      members: [self, other].map((s) => ({ internalIP: parseIp(s.internal), otherInternalIP: parseIp(v6(s).internal), underlayIP: parseIp(s.underlay) })),
    });
    assert.deepEqual(await a.tunnel.apply(dualOf(a, b)), { written: 1 }, "one more neighbour entry: b's IPv6 internal IP at b's MAC");
    assert.deepEqual(await b.tunnel.apply(dualOf(b, a)), { written: 1 });
    const neighbours = await readIpJson(['-6', 'neigh', 'show', 'dev', a.tunnel.name, 'nud', 'permanent'], { netns: a.netns });
    assert.deepEqual(neighbours.map((n) => [new IpJsonObject(n, 'neigh').string('dst'), new IpJsonObject(n, 'neigh').string('lladdr')]), [[v6(b).internal, vxlanMacOf(parseIp(b.underlay))]]);
    const route6 = (self: Side, other: Side) => ({
      routes: [
        ...podRoute(self, other).routes,
        { dst: parseCidr(`${v6(other).pod}/128`), gw: parseIp(v6(other).internal), dev: self.tunnel.name, src: parseIp(v6(self).pod), onlink: true, table: 'main' as const },
      ],
      rules: [],
    });
    assert.deepEqual(await a.routes.apply(route6(a, b)), { written: 1 });
    assert.deepEqual(await b.routes.apply(route6(b, a)), { written: 1 });
    const before = await packets(a);
    const result = await runCommand('ping', ['-6', '-c', '3', '-i', '0.2', '-W', '1', v6(b).pod], { netns: a.netns, allowFailure: true });
    assert.equal(result.exitCode, 0, result.stdout + result.stderr);
    const after = await packets(a);
    assert.ok(after.tx - before.tx >= 3 && after.rx - before.rx >= 3, `the IPv6 pings crossed the tunnel: ${JSON.stringify([before, after])}`);
  });

  test('an underlay address the node does not hold is a clear error', async () => {
    await assert.rejects(a.tunnel.apply({ localUnderlayIP: parseIp('192.168.78.1'), members: [] }), (e: unknown) => {
      assert.ok(e instanceof TunnelError);
      assert.match(e.message, /localUnderlayIP: 192\.168\.78\.1 is not assigned to any interface/);
      return true;
    });
  });

  test('cleanup removes the device, and a second cleanup has nothing to do', async () => {
    for (const s of [a, b]) {
      await s.routes.cleanup();
      await s.tunnel.cleanup();
      assert.equal(await findLink(s.tunnel.name, { netns: s.netns }), undefined);
      await s.tunnel.cleanup();
    }
  });
});
