import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { listAddresses } from '../../src/host/addresses.js';
import { CommandError } from '../../src/host/command.js';
import { readIpJson, readIpJsonBatch, runIp, runIpBatch } from '../../src/host/ip.js';
import { findLink, listLinks } from '../../src/host/links.js';
import { createNetns, deleteNetns, listNetns } from '../../src/host/netns.js';
import { captureNetworkState, readAddressing } from '../../src/host/network-state.js';
import { listRoutes } from '../../src/host/routes.js';
import { listRules } from '../../src/host/rules.js';
import { readSysctl, writeSysctl } from '../../src/host/sysctl.js';
import { claimPrefix, releasePrefix } from '../../src/sandbox/registry.js';
import { capabilitySkip } from '../support/capability.js';

const skip = await capabilitySkip('ip-readers tests');

describe('ip readers against a real namespace', { skip }, () => {
  let prefix = '';
  let netns = '';
  const inNs = (): { netns: string } => ({ netns });

  before(async () => {
    // A claimed prefix keeps the leftover sweep of concurrent test runs away from this namespace.
    prefix = claimPrefix();
    netns = `${prefix}ipread`;
    await createNetns([netns]);
    await runIpBatch(
      [
        ['link', 'set', 'lo', 'up'],
        ['link', 'add', 'br0', 'type', 'bridge'],
        ['link', 'add', 'v0', 'type', 'veth', 'peer', 'name', 'v1'],
        ['link', 'set', 'v1', 'master', 'br0'],
        ['link', 'set', 'v0', 'mtu', '1400'],
        ['addr', 'add', '10.9.0.1/24', 'dev', 'v0'],
        ['addr', 'add', 'fd09::1/64', 'dev', 'v0', 'nodad'],
        ['link', 'set', 'v0', 'up'],
        ['route', 'add', '10.10.0.0/16', 'via', '10.9.0.2', 'dev', 'v0', 'proto', 'static', 'metric', '5', 'table', '100'],
        ['route', 'add', '10.11.0.7/32', 'dev', 'v0', 'src', '10.9.0.1'],
        ['route', 'add', 'blackhole', '10.12.0.0/16'],
        ['route', 'add', '10.13.0.0/16', 'nexthop', 'via', '10.9.0.2', 'dev', 'v0', 'nexthop', 'via', '10.9.0.3', 'dev', 'v0'],
        ['route', 'add', 'default', 'via', '10.9.0.254'],
        ['route', 'add', 'fd10::/64', 'via', 'fd09::2', 'dev', 'v0'],
        ['rule', 'add', 'fwmark', '0x10/0xff', 'table', '100', 'priority', '100'],
        ['rule', 'add', 'from', '10.1.0.0/16', 'to', '10.2.0.0/16', 'iif', 'v0', 'lookup', '200', 'pref', '200'],
        ['rule', 'add', 'not', 'from', '10.3.0.0/16', 'unreachable', 'pref', '300'],
      ],
      inNs(),
    );
  });

  after(async () => {
    await deleteNetns([netns]);
    releasePrefix(prefix);
  });

  test('links: names, kinds, admin state, mtu and bridge membership', async () => {
    const links = await listLinks(inNs());
    assert.deepEqual(links.map((l) => l.name).sort(), ['br0', 'lo', 'v0', 'v1']);
    const v0 = links.find((l) => l.name === 'v0');
    assert.equal(v0?.kind, 'veth');
    assert.equal(v0?.up, true);
    assert.equal(v0?.mtu, 1400);
    assert.match(v0?.mac ?? '', /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
    assert.equal((await findLink('v1', inNs()))?.master, 'br0');
    assert.equal((await findLink('v1', inNs()))?.up, false);
    assert.equal((await findLink('br0', inNs()))?.kind, 'bridge');
    assert.equal((await findLink('lo', inNs()))?.kind, undefined);
    assert.equal(await findLink('nope', inNs()), undefined);
  });

  test('addresses: one entry per address with family, prefix and scope', async () => {
    const v0 = (await listAddresses({ ...inNs(), ifname: 'v0' })).filter((a) => a.scope === 'global');
    assert.deepEqual(
      v0.map((a) => [a.family, a.cidr, a.address, a.prefixLength]),
      [
        [4, '10.9.0.1/24', '10.9.0.1', 24],
        [6, 'fd09::1/64', 'fd09::1', 64],
      ],
    );
    const lo = (await listAddresses(inNs())).filter((a) => a.ifname === 'lo');
    assert.deepEqual(lo.map((a) => [a.cidr, a.scope]), [['127.0.0.1/8', 'host'], ['::1/128', 'host']]);
  });

  test('routes: destinations as CIDRs, protocol, table, metric and gateways filled in', async () => {
    const main4 = await listRoutes({ ...inNs(), family: 4 });
    const byDst = new Map(main4.map((r) => [r.dst, r]));
    assert.deepEqual(byDst.get('0.0.0.0/0')?.gateway, '10.9.0.254');
    const host = byDst.get('10.11.0.7/32');
    assert.deepEqual([host?.dev, host?.scope, host?.protocol, host?.table, host?.prefsrc], ['v0', 'link', 'boot', 'main', '10.9.0.1']);
    assert.equal(byDst.get('10.9.0.0/24')?.protocol, 'kernel');
    assert.equal(byDst.get('10.12.0.0/16')?.type, 'blackhole');
    assert.deepEqual(
      byDst.get('10.13.0.0/16')?.nexthops.map((nh) => [nh.gateway, nh.dev]),
      [['10.9.0.2', 'v0'], ['10.9.0.3', 'v0']],
    );
    assert.equal(byDst.has('10.10.0.0/16'), false, 'table 100 is not main');

    const t100 = await listRoutes({ ...inNs(), family: 4, table: 100 });
    assert.deepEqual(
      t100.map((r) => [r.dst, r.gateway, r.protocol, r.metric, r.table]),
      [['10.10.0.0/16', '10.9.0.2', 'static', 5, '100']],
    );

    const all = await listRoutes({ ...inNs(), table: 'all' });
    assert.ok(all.some((r) => r.table === 'local' && r.type === 'local' && r.dst === '10.9.0.1/32'));
    assert.ok(all.some((r) => r.family === 6 && r.dst === 'fd10::/64' && r.gateway === 'fd09::2'));
  });

  test('rules: selectors, negation, tables and actions', async () => {
    const rules = await listRules({ ...inNs(), family: 4 });
    const byPriority = new Map(rules.map((r) => [r.priority, r]));
    assert.deepEqual(
      [byPriority.get(100)?.fwmark, byPriority.get(100)?.fwmask, byPriority.get(100)?.table, byPriority.get(100)?.action],
      ['0x10', '0xff', '100', 'lookup'],
    );
    const p200 = byPriority.get(200);
    assert.deepEqual([p200?.src, p200?.dst, p200?.iif, p200?.table], ['10.1.0.0/16', '10.2.0.0/16', 'v0', '200']);
    const p300 = byPriority.get(300);
    assert.deepEqual([p300?.not, p300?.src, p300?.action, p300?.table], [true, '10.3.0.0/16', 'unreachable', undefined]);
    assert.deepEqual([byPriority.get(32766)?.src, byPriority.get(32766)?.table], [undefined, 'main']);
    assert.ok((await listRules({ ...inNs(), family: 6 })).every((r) => r.family === 6));
  });

  test('sysctls are per namespace', async () => {
    // A new namespace starts from the host's value (devconf_inherit_init_net), whatever that is.
    const host = await readSysctl('net.ipv4.ip_forward');
    const initial = await readSysctl('net.ipv4.ip_forward', inNs());
    const flipped = initial === '1' ? '0' : '1';
    await writeSysctl('net.ipv4.ip_forward', flipped, inNs());
    assert.equal(await readSysctl('net.ipv4.ip_forward', inNs()), flipped);
    assert.equal(await readSysctl('net.ipv4.ip_forward'), host, "the host's value is untouched");
    await writeSysctl('net.ipv4.ip_forward', initial, inNs());
  });

  test('a network state snapshot is stable and sees a change', async () => {
    const first = await captureNetworkState(inNs());
    assert.deepEqual(await captureNetworkState(inNs()), first);
    await runIp(['route', 'add', '10.14.0.0/16', 'dev', 'v0'], inNs());
    const changed = await captureNetworkState(inNs());
    await runIp(['route', 'del', '10.14.0.0/16', 'dev', 'v0'], inNs());
    assert.notDeepEqual(changed.routes, first.routes);
    assert.deepEqual(await captureNetworkState(inNs()), first);
  });

  test('reads batched in one ip process give each read its own list, as read one by one', async () => {
    const reads = [['route', 'show', 'table', 'all', 'proto', 'static'], ['rule', 'show'], ['link', 'show'], ['route', 'show', 'table', 'all', 'proto', '99']];
    for (const family of ['-4', '-6']) {
      const globalArgs = ['-N', family, '-d'];
      const batched = await readIpJsonBatch(reads, { ...inNs(), globalArgs });
      const single = await Promise.all(reads.map((read) => readIpJson([...globalArgs, ...read], inNs())));
      assert.deepEqual(batched, single, family);
    }
    const [staticRoutes, rules, links, empty] = await readIpJsonBatch(reads, { ...inNs(), globalArgs: ['-4'] });
    assert.equal(staticRoutes?.length, 1, 'the static route of table 100');
    assert.ok((rules?.length ?? 0) >= 3, 'the rules');
    assert.deepEqual(links?.map((l) => (l as { ifname: string }).ifname).sort(), ['br0', 'lo', 'v0', 'v1']);
    assert.deepEqual(empty, [], 'nothing of protocol 99');
    await assert.rejects(readIpJsonBatch([['link', 'show'], ['link', 'show', 'dev', 'nosuch0']], inNs()), (e: unknown) => e instanceof CommandError, 'a read that fails fails the batch');
  });

  test('the addressing a reconcile reads, in two ip processes, is what the readers one by one give', async () => {
    const addressing = await readAddressing(inNs());
    assert.deepEqual(addressing, { addresses: await listAddresses(inNs()), links: await listLinks(inNs()), mainRoutes: await listRoutes(inNs()) });
    assert.ok(addressing.mainRoutes.some((r) => r.family === 6) && addressing.mainRoutes.some((r) => r.family === 4), 'both families');
  });

  test('a failing batch names the failing command and namespace', async () => {
    await assert.rejects(
      runIpBatch([['link', 'set', 'lo', 'up'], ['link', 'set', 'nosuchdev', 'up']], inNs()),
      (e: unknown) =>
        e instanceof CommandError && e.message.includes(`"link set nosuchdev up" in ${netns} failed`) && !e.message.includes('\n'),
    );
  });

  test('arguments that ip batch would split are refused before running', async () => {
    await assert.rejects(runIpBatch([['link', 'set', 'a b', 'up']], inNs()), /cannot be batched/);
  });

  test('namespaces: create, list, delete only what exists', async () => {
    const extra = `${prefix}ipread2`;
    await createNetns([extra]);
    assert.ok((await listNetns()).includes(extra));
    assert.deepEqual(await deleteNetns([extra, `${prefix}never-made`]), [extra]);
    assert.ok(!(await listNetns()).includes(extra));
  });
});
