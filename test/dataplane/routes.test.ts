import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { runIp, runIpBatch } from '../../src/host/ip.js';
import { createNetns, deleteNetns } from '../../src/host/netns.js';
import { readAddressing } from '../../src/host/network-state.js';
import { listRoutes, type Route as KernelRoute } from '../../src/host/routes.js';
import { listRules, type Rule as KernelRule } from '../../src/host/rules.js';
import { PartialApplyError, RoutesDataplane, planRoutes, type RoutesDesired } from '../../src/dataplane/routes/index.js';
import { parseCidr, parseIp } from '../../src/model/ip.js';
import { ENCAPSULATION_TABLE, type Route, type Rule } from '../../src/model/route.js';
import { claimPrefix, releasePrefix } from '../../src/sandbox/registry.js';
import { capabilitySkip } from '../support/capability.js';

const PROTO = 87;

function route(dst: string, dev: string, fields: { gw?: string; src?: string; onlink?: boolean; table?: Route['table'] } = {}): Route {
  return {
    dst: parseCidr(dst),
    dev,
    onlink: fields.onlink ?? false,
    table: fields.table ?? 'main',
    ...(fields.gw === undefined ? {} : { gw: parseIp(fields.gw) }),
    ...(fields.src === undefined ? {} : { src: parseIp(fields.src) }),
  };
}

function rule(fields: { from?: string; to?: string; iif?: string }): Rule {
  return {
    table: ENCAPSULATION_TABLE,
    ...(fields.from === undefined ? {} : { from: parseCidr(fields.from) }),
    ...(fields.to === undefined ? {} : { to: parseCidr(fields.to) }),
    ...(fields.iif === undefined ? {} : { iif: fields.iif }),
  };
}

const showRoute = (r: KernelRoute): string =>
  `${r.table} ${r.dst}${r.gateway === undefined ? '' : ` via ${r.gateway}`} dev ${r.dev}${r.flags.includes('onlink') ? ' onlink' : ''}${r.prefsrc === undefined ? '' : ` src ${r.prefsrc}`} proto ${r.protocol}`;
const showRule = (r: KernelRule): string =>
  `${r.priority} from ${r.src ?? 'all'} to ${r.dst ?? 'all'}${r.iif === undefined ? '' : ` iif ${r.iif}`} table ${r.table} proto ${r.protocol}`;

describe('route planning (pure)', () => {
  test('a destination with host bits set and onlink without a gateway plan no change against their kernel form', () => {
    const kernel: KernelRoute = {
      family: 4, type: '1', dst: '10.20.0.0/16', gateway: undefined, dev: 'v0', protocol: '87', scope: '253',
      table: '254', metric: undefined, prefsrc: undefined, flags: [], nexthops: [],
    };
    const plan = planRoutes([route('10.20.7.7/16', 'v0', { onlink: true })], [kernel], PROTO);
    assert.deepEqual(plan, { writes: [], rejected: [] });
  });

  test('two desired routes to one destination and table conflict; the first wins', () => {
    const plan = planRoutes([route('10.1.0.0/16', 'a'), route('10.1.0.0/16', 'b'), route('10.1.0.0/16', 'b', { table: 7 })], [], PROTO);
    assert.deepEqual(plan.writes.map((w) => w.what), ['add route 10.1.0.0/16 dev a table main', 'add route 10.1.0.0/16 dev b table 7']);
    assert.equal(plan.rejected.length, 1);
    assert.match(plan.rejected[0]?.reason ?? '', /conflicts with another desired route to 10\.1\.0\.0\/16 in table main \(dev a\)/);
  });

  test('5,000 unchanged routes plan no writes', () => {
    const desired = Array.from({ length: 5000 }, (_, i) => route(`10.${i >> 8}.${i & 255}.0/24`, 'wl0', { gw: '10.255.0.1', onlink: true }));
    const current: KernelRoute[] = desired.map((r, i) => ({
      family: 4, type: '1', dst: `10.${i >> 8}.${i & 255}.0/24`, gateway: '10.255.0.1', dev: r.dev, protocol: '87', scope: '0',
      table: '254', metric: undefined, prefsrc: undefined, flags: ['onlink'], nexthops: [],
    }));
    const plan = planRoutes(desired, current, PROTO);
    assert.equal(plan.writes.length, 0);
  });
});

const skip = await capabilitySkip('routes tests');

describe('routes dataplane against a real namespace', { skip }, () => {
  let prefix = '';
  let netns = '';
  let dataplane: RoutesDataplane;
  const inNs = (): { netns: string } => ({ netns });

  const ours = async (): Promise<string[]> =>
    (await listRoutes({ ...inNs(), table: 'all' })).filter((r) => r.protocol === String(PROTO)).map(showRoute).sort();
  const ourRules = async (): Promise<string[]> =>
    (await listRules(inNs())).filter((r) => r.protocol === String(PROTO)).map(showRule).sort();
  // IPv6 link-local routes come and go with the kernel's address configuration, not with us.
  const foreign = async (): Promise<string[]> => [
    ...(await listRoutes({ ...inNs(), table: 'all' })).filter((r) => r.protocol !== String(PROTO) && !r.dst.startsWith('fe80:')).map(showRoute),
    ...(await listRules(inNs())).filter((r) => r.protocol !== String(PROTO)).map(showRule),
  ].sort();

  const ROUTES = [
    route('10.20.0.0/16', 'v0', { gw: '10.30.0.1', onlink: true, src: '10.9.0.1' }),
    route('10.21.0.5/32', 'v0', { gw: '10.30.0.1', onlink: true, table: ENCAPSULATION_TABLE }),
    route('10.22.0.0/16', 'v0'),
    route('fd20::/64', 'v0', { gw: 'fd30::1', onlink: true, src: 'fd09::1' }),
    route('fd21::/64', 'v0', { table: ENCAPSULATION_TABLE }),
  ];
  const RULES = [
    rule({ from: '10.20.0.0/16', to: '10.21.0.5/32' }),
    rule({ iif: 'v0', to: '10.21.0.5/32' }),
    rule({ from: 'fd20::/64', to: 'fd21::1/128' }),
  ];
  const DESIRED: RoutesDesired = { routes: ROUTES, rules: RULES };
  let foreignBefore: string[] = [];

  before(async () => {
    prefix = claimPrefix();
    netns = `${prefix}routes`;
    await createNetns([netns]);
    await runIpBatch(
      [
        ['link', 'set', 'lo', 'up'],
        ['link', 'add', 'v0', 'type', 'veth', 'peer', 'name', 'v1'],
        ['addr', 'add', '10.9.0.1/24', 'dev', 'v0'],
        ['addr', 'add', 'fd09::1/64', 'dev', 'v0', 'nodad'],
        ['link', 'set', 'v0', 'up'],
        ['link', 'set', 'v1', 'up'],
        // Foreign state: the same destinations in other tables or with other protocols, and a rule
        // identical to one of ours but for its protocol.
        ['route', 'add', '10.20.0.0/16', 'via', '10.9.0.2', 'dev', 'v0', 'table', '100', 'proto', 'static'],
        ['route', 'add', '10.21.0.5/32', 'dev', 'v1', 'table', '200', 'proto', '88'],
        ['route', 'add', '10.50.0.0/16', 'via', '10.9.0.2', 'dev', 'v0'],
        ['route', 'add', 'fd50::/64', 'via', 'fd09::2', 'dev', 'v0', 'table', String(ENCAPSULATION_TABLE)],
        ['rule', 'add', 'from', '10.20.0.0/16', 'to', '10.21.0.5/32', 'table', String(ENCAPSULATION_TABLE), 'priority', '1107', 'protocol', '88'],
        ['rule', 'add', 'from', '10.20.0.0/16', 'lookup', '100', 'priority', '100'],
      ],
      inNs(),
    );
    foreignBefore = await foreign();
    dataplane = new RoutesDataplane({ netns, protocol: PROTO });
  });

  after(async () => {
    if (netns !== '') await deleteNetns([netns]);
    if (prefix !== '') releasePrefix(prefix);
  });

  test('the first apply installs every route and rule with our protocol', async () => {
    assert.deepEqual(await dataplane.apply(DESIRED), { written: 8 });
    assert.deepEqual(await ours(), [
      '1107 10.21.0.5/32 via 10.30.0.1 dev v0 onlink proto 87',
      '1107 fd21::/64 dev v0 proto 87',
      'main 10.20.0.0/16 via 10.30.0.1 dev v0 onlink src 10.9.0.1 proto 87',
      'main 10.22.0.0/16 dev v0 proto 87',
      'main fd20::/64 via fd30::1 dev v0 onlink src fd09::1 proto 87',
    ]);
    assert.deepEqual(await ourRules(), [
      // ip prints host prefixes of rules without their length.
      '1107 from 10.20.0.0/16 to 10.21.0.5 table 1107 proto 87',
      '1107 from all to 10.21.0.5 iif v0 table 1107 proto 87',
      '1107 from fd20::/64 to fd21::1 table 1107 proto 87',
    ]);
  });

  test('applying the same state again writes nothing', async () => {
    assert.deepEqual(await dataplane.apply(DESIRED), { written: 0 });
  });

  test('a route and a rule deleted by hand come back with one write each', async () => {
    await runIp(['route', 'del', '10.20.0.0/16', 'table', 'main', 'proto', String(PROTO)], inNs());
    await runIp(['-6', 'rule', 'del', 'from', 'fd20::/64', 'priority', '1107', 'protocol', String(PROTO)], inNs());
    assert.deepEqual(await dataplane.apply(DESIRED), { written: 2 });
    assert.ok((await ours()).includes('main 10.20.0.0/16 via 10.30.0.1 dev v0 onlink src 10.9.0.1 proto 87'));
    assert.equal((await ourRules()).length, 3);
  });

  test('read together with the addressing, a route and a rule deleted by hand still come back', async () => {
    await runIp(['route', 'del', '10.22.0.0/16', 'table', 'main', 'proto', String(PROTO)], inNs());
    await runIp(['rule', 'del', 'iif', 'v0', 'to', '10.21.0.5/32', 'priority', '1107', 'protocol', String(PROTO)], inNs());
    const { addressing, routing } = await dataplane.readWithAddressing();
    // The addressing is what discovery reads on its own.
    const alone = await readAddressing(inNs());
    assert.deepEqual(addressing.addresses, alone.addresses);
    assert.deepEqual(addressing.links.map((l) => l.name), alone.links.map((l) => l.name));
    assert.deepEqual(addressing.mainRoutes, alone.mainRoutes.map(({ family, dst, dev }) => ({ family, dst, dev })));
    assert.ok(routing !== undefined);
    assert.deepEqual(await dataplane.apply(DESIRED, routing), { written: 2 });
    assert.equal((await ours()).length, 5);
    assert.equal((await ourRules()).length, 3);
    assert.deepEqual(await dataplane.apply(DESIRED, (await dataplane.readWithAddressing()).routing), { written: 0 });
  });

  test('a route through a device created after the read is written, not failed for a missing device', async () => {
    const { routing } = await dataplane.readWithAddressing();
    await runIpBatch([['link', 'add', 'v2', 'type', 'veth', 'peer', 'name', 'v3'], ['link', 'set', 'v2', 'up']], inNs());
    try {
      const desired: RoutesDesired = { routes: [...ROUTES, route('10.62.0.0/16', 'v2')], rules: RULES };
      assert.deepEqual(await dataplane.apply(desired, routing), { written: 1 });
      assert.ok((await ours()).includes('main 10.62.0.0/16 dev v2 proto 87'));
    } finally {
      await runIp(['link', 'del', 'v2'], inNs());
    }
    assert.deepEqual(await dataplane.apply(DESIRED), { written: 0 });
  });

  test('a changed gateway replaces the route in place; a removed route and rule are deleted', async () => {
    const changed: RoutesDesired = {
      routes: [ROUTES[0], route('10.21.0.5/32', 'v0', { gw: '10.30.0.9', onlink: true, table: ENCAPSULATION_TABLE }), ROUTES[3], ROUTES[4]] as Route[],
      rules: RULES.slice(1),
    };
    assert.deepEqual(await dataplane.apply(changed), { written: 3 });
    const routes = await ours();
    assert.ok(routes.includes('1107 10.21.0.5/32 via 10.30.0.9 dev v0 onlink proto 87'));
    assert.equal(routes.filter((r) => r.includes('10.21.0.5/32')).length, 1);
    assert.ok(!routes.some((r) => r.includes('10.22.0.0/16')));
    assert.ok(!(await ourRules()).some((r) => r.startsWith('1107 from 10.20.0.0/16')));
    assert.deepEqual(await dataplane.apply(changed), { written: 0 });
  });

  test('a route whose device does not exist fails alone; the rest is applied', async () => {
    const desired: RoutesDesired = { routes: [...ROUTES, route('10.60.0.0/16', 'nosuchdev0')], rules: RULES };
    const error = await dataplane.apply(desired).then(
      () => assert.fail('apply should have failed'),
      (e: unknown) => e,
    );
    assert.ok(error instanceof PartialApplyError, String(error));
    // Back to DESIRED: the 10.21 gateway, 10.22 and the from-10.20 rule.
    assert.equal(error.written, 3);
    assert.deepEqual(error.failures, [{ what: 'add route 10.60.0.0/16 dev nosuchdev0 table main', reason: 'device "nosuchdev0" does not exist' }]);
    assert.match(error.message, /nosuchdev0/);
    assert.deepEqual(await dataplane.apply(DESIRED), { written: 0 });
  });

  test('a kernel refusal (source address not on this host) fails that route only', async () => {
    const desired: RoutesDesired = { routes: [...ROUTES, route('10.61.0.0/16', 'v0', { src: '192.0.2.99' })], rules: RULES };
    const error = await dataplane.apply(desired).catch((e: unknown) => e);
    assert.ok(error instanceof PartialApplyError, String(error));
    assert.equal(error.written, 0);
    assert.equal(error.failures.length, 1);
    assert.match(error.failures[0]?.what ?? '', /^add route 10\.61\.0\.0\/16 dev v0 table main$/);
    assert.match(error.failures[0]?.reason ?? '', /prefsrc/i);
  });

  test('foreign routes and rules, even with our destinations, were never touched', async () => {
    assert.deepEqual(await foreign(), foreignBefore);
  });

  test('cleanup removes every route and rule with our protocol and keeps the foreign ones', async () => {
    await dataplane.cleanup();
    assert.deepEqual(await ours(), []);
    assert.deepEqual(await ourRules(), []);
    assert.deepEqual(await foreign(), foreignBefore);
    assert.deepEqual(await dataplane.apply({ routes: [], rules: [] }), { written: 0 });
  });

  test('5,000 routes are reconciled in one batch, and an unchanged set writes nothing', async () => {
    const many = Array.from({ length: 5000 }, (_, i) => route(`10.${100 + (i >> 8)}.${i & 255}.0/24`, 'v0', { gw: '10.30.0.1', onlink: true }));
    assert.deepEqual(await dataplane.apply({ routes: many, rules: [] }), { written: 5000 });
    assert.deepEqual(await dataplane.apply({ routes: many, rules: [] }), { written: 0 });
    assert.deepEqual(await dataplane.apply({ routes: many.slice(10), rules: [] }), { written: 10 });
    await dataplane.cleanup();
    assert.deepEqual(await ours(), []);
    assert.deepEqual(await foreign(), foreignBefore);
  });
});
