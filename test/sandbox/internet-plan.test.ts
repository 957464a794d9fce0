// The routed sandbox as a plan: which bridge each host is plugged into, its way out, the routers'
// NAT, and the internet's narrower MTU; checked as the ip and nft lines the build runs.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildPhasesOf, planSandbox, routerRuleset, SandboxSpecError, udpDropCommand, type SandboxSpec } from '../../src/sandbox/index.js';
import { parseIp } from '../../src/model/ip.js';
import { WORLD_INTERNET, WORLD_LANS } from '../../src/sandbox/world.js';

const SPEC: SandboxSpec = {
  management: true,
  internet: WORLD_INTERNET,
  nodes: [
    { name: 'a', underlayAddress: WORLD_LANS.east1.v4(11), underlayAddress6: WORLD_LANS.east1.v6(11), podCIDRs: ['10.244.0.0/24', 'fd44::/64'], pods: 1 },
    { name: 'b', underlayAddress: WORLD_LANS.east2.v4(11), podCIDRs: ['10.244.1.0/24'], pods: 1 },
    { name: 'c', underlayAddress: WORLD_LANS.west.v4(11), publicAddress: WORLD_LANS.west.public(11), podCIDRs: ['10.244.2.0/24'] },
  ],
  outside: [
    { name: 'laptop', underlayAddress: WORLD_LANS.home.v4(10), underlayAddress6: WORLD_LANS.home.v6(10) },
    { name: 'server', underlayAddress: '198.51.100.50/24' },
  ],
};

const plan = planSandbox(SPEC, 'wl0a1b-');
const phases = buildPhasesOf(plan, 4242);
const linesIn = (netns: string): string[] => phases.flatMap((p) => p.batches.filter((b) => b.netns === netns).flatMap((b) => b.commands.map((c) => c.join(' '))));

test('the internet and every router get a namespace of their own', () => {
  assert.equal(plan.underlayNetns, 'wl0a1b-internet');
  assert.deepEqual(plan.namespaces.slice(0, 4), ['wl0a1b-internet', 'wl0a1b-r-east', 'wl0a1b-r-west', 'wl0a1b-r-home']);
});

test('each host is plugged into the bridge of the LAN holding its address, or into the internet', () => {
  const where = [...plan.nodes, ...plan.outside].map((h) => [h.name, h.attachment.netns, h.attachment.bridge, h.attachment.router]);
  assert.deepEqual(where, [
    ['a', 'wl0a1b-r-east', 'lan0', 'east'],
    ['b', 'wl0a1b-r-east', 'lan1', 'east'],
    ['c', 'wl0a1b-r-west', 'lan0', 'west'],
    ['laptop', 'wl0a1b-r-home', 'lan0', 'home'],
    ['server', 'wl0a1b-internet', 'br0', undefined],
  ]);
  assert.ok(linesIn('wl0a1b-a').includes('link add eth0 type veth peer name n0 netns wl0a1b-r-east'));
  assert.ok(linesIn('wl0a1b-r-east').includes('link set n1 master lan1'));
  assert.ok(linesIn('wl0a1b-internet').includes('link set o1 master br0'));
});

test('hosts leave through their router, a public address is the source of the default route', () => {
  const defaults = (netns: string) => linesIn(netns).filter((l) => l.startsWith('route add default'));
  assert.deepEqual(defaults('wl0a1b-a'), ['route add default via 10.1.1.1 dev eth0', 'route add default via fd01:1::1 dev eth0']);
  assert.deepEqual(defaults('wl0a1b-b'), ['route add default via 10.1.2.1 dev eth0'], 'no IPv6 route without an IPv6 address');
  assert.deepEqual(defaults('wl0a1b-c'), ['route add default via 10.2.1.1 dev eth0 src 203.0.113.11']);
  assert.ok(linesIn('wl0a1b-c').includes('addr add 203.0.113.11/28 dev eth0'));
  assert.deepEqual(defaults('wl0a1b-server'), ['route add default via 198.51.100.1 dev eth0']);
  assert.deepEqual(defaults('wl0a1b-r-west'), ['route add default via 198.51.100.1 dev eth0', 'route add default via fd00:100::1 dev eth0']);
});

test('the core routes each public prefix to its router, and no private one', () => {
  assert.deepEqual(linesIn('wl0a1b-internet').filter((l) => l.startsWith('route add')), ['route add 203.0.113.0/28 via 198.51.100.3 dev br0']);
});

test('routers hold every gateway of their LANs', () => {
  const west = linesIn('wl0a1b-r-west');
  for (const line of ['addr add 10.2.1.1/24 dev lan0', 'addr add 203.0.113.1/28 dev lan0', 'addr add fd02:1::1/64 dev lan0 nodad', 'addr add 198.51.100.3/24 dev eth0']) {
    assert.ok(west.includes(line), line);
  }
});

test('every link of the internet segment has its MTU, and no LAN link does', () => {
  const mtuLines = phases.flatMap((p) => p.batches.flatMap((b) => b.commands.filter((c) => c.includes('mtu')).map((c) => `${b.netns} ${c.join(' ')}`)));
  assert.deepEqual(mtuLines.sort(), [
    'wl0a1b-internet link set br0 mtu 1380',
    'wl0a1b-internet link set o1 mtu 1380',
    'wl0a1b-internet link set r0 mtu 1380',
    'wl0a1b-internet link set r1 mtu 1380',
    'wl0a1b-internet link set r2 mtu 1380',
    'wl0a1b-r-east link set eth0 mtu 1380',
    'wl0a1b-r-home link set eth0 mtu 1380',
    'wl0a1b-r-west link set eth0 mtu 1380',
    'wl0a1b-server link set eth0 mtu 1380',
  ]);
});

test('a router masquerades its private prefixes, lets only answers in, and routes its public prefix as it is', () => {
  const east = plan.internet!.routers[0]!;
  assert.equal(
    routerRuleset(east),
    [
      'table inet wirelane_sandbox {',
      '  chain input {',
      '    type filter hook input priority 0; policy accept;',
      '    iifname "eth0" meta l4proto { tcp, udp } ct state != { established, related } drop',
      '  }',
      '  set dropped_udp4 { type ipv4_addr . inet_service; }',
      '  set dropped_udp6 { type ipv6_addr . inet_service; }',
      '  chain forward {',
      '    type filter hook forward priority 0; policy accept;',
      '    ip daddr . udp dport @dropped_udp4 drop',
      '    ip6 daddr . udp dport @dropped_udp6 drop',
      '    iifname "eth0" ip daddr { 10.1.1.0/24, 10.1.2.0/24 } ct state != { established, related } drop',
      '    iifname "eth0" ip6 daddr { fd01:1::/64, fd01:2::/64 } ct state != { established, related } drop',
      '  }',
      '  chain postrouting {',
      '    type nat hook postrouting priority 100; policy accept;',
      '    oifname "eth0" ip saddr { 10.1.1.0/24, 10.1.2.0/24 } masquerade',
      '    oifname "eth0" ip6 saddr { fd01:1::/64, fd01:2::/64 } masquerade',
      '  }',
      '}',
      '',
    ].join('\n'),
  );
  assert.doesNotMatch(routerRuleset(plan.internet!.routers[1]!), /203\.0\.113/);
  const nft = phases.flatMap((p) => p.commands).filter((c) => c.netns.includes('-r-'));
  assert.deepEqual(nft.map((c) => c.netns), ['wl0a1b-r-east', 'wl0a1b-r-west', 'wl0a1b-r-home']);
});

test("a router drops the UDP to a host's port, by family, until the element is deleted again", () => {
  assert.deepEqual(udpDropCommand('add', parseIp('10.1.1.11'), 51820), ['add', 'element', 'inet', 'wirelane_sandbox', 'dropped_udp4', '{ 10.1.1.11 . 51820 }']);
  assert.deepEqual(udpDropCommand('delete', parseIp('fd01:1::11'), 51820), ['delete', 'element', 'inet', 'wirelane_sandbox', 'dropped_udp6', '{ fd01:1::11 . 51820 }']);
  assert.throws(() => udpDropCommand('add', parseIp('10.1.1.11'), 0), /UDP port 0 is not in \[1, 65535\]/);
});

test('with an internet, management goes by the default routes: no per-host route, no gateway on the bridge', () => {
  const all = phases.flatMap((p) => p.batches.flatMap((b) => b.commands.map((c) => c.join(' '))));
  assert.ok(!all.some((l) => l.includes('169.254.0.1')), 'no management gateway');
  assert.ok(all.includes('link add mgmt0 type veth peer name wl0a1b-mgmt netns 4242'));
});

test('routes come last, after every link is up', () => {
  assert.equal(phases.length, 4);
  assert.ok(phases[3]!.batches.flatMap((b) => b.commands).every((c) => c[0] === 'route'));
});

test('the flat bridge is unchanged without an internet: three phases, no router', () => {
  const flat = planSandbox({ nodes: [{ name: 'a', underlayAddress: '172.31.0.1/16' }] }, 'wl0a1b-');
  assert.equal(flat.internet, undefined);
  assert.equal(buildPhasesOf(flat, 1).length, 3);
  assert.equal(flat.nodes[0]!.attachment.netns, 'wl0a1b-underlay');
});

const INVALID: [string, SandboxSpec, RegExp][] = [
  ['a host in no LAN', { internet: WORLD_INTERNET, nodes: [{ name: 'a', underlayAddress: '172.31.0.1/16' }] }, /sandbox node "a": 172.31.0.1 is in no LAN and not on the internet/],
  ['a host with its LAN\'s address but another prefix length', { internet: WORLD_INTERNET, nodes: [{ name: 'a', underlayAddress: '10.1.1.5/16' }] }, /prefix length \/16 differs from its LAN's \/24/],
  ['an IPv6 address off the host\'s LAN', { internet: WORLD_INTERNET, nodes: [{ name: 'a', underlayAddress: '10.1.1.5/24', underlayAddress6: 'fd02:1::5/64' }] }, /underlayAddress6 is not an address of the segment/],
  ['a public address outside its LAN\'s public prefix', { internet: WORLD_INTERNET, nodes: [{ name: 'a', underlayAddress: '10.1.1.5/24', publicAddress: '203.0.113.5/28' }] }, /publicAddress 203.0.113.5\/28 is not in the public prefix of the host's LAN/],
  ['a public address on the flat bridge', { nodes: [{ name: 'a', underlayAddress: '172.31.0.1/16', publicAddress: '203.0.113.5/28' }] }, /publicAddress needs a sandbox with an internet/],
  ['overlapping LANs', { internet: { ...WORLD_INTERNET, routers: [{ name: 'x', internetAddress: '198.51.100.9/24', internetAddress6: 'fd00:100::9/64', lans: [{ cidr: '10.0.0.0/8' }, { cidr: '10.1.0.0/16' }] }] }, nodes: [{ name: 'a', underlayAddress: '10.1.0.5/16' }] }, /router "x": lans\[1\]: 10.1.0.0\/16 overlaps another segment/],
  ['a router off the internet', { internet: { ...WORLD_INTERNET, routers: [{ name: 'x', internetAddress: '192.0.2.1/24', internetAddress6: 'fd00:100::9/64', lans: [{ cidr: '10.0.0.0/8' }] }] }, nodes: [{ name: 'a', underlayAddress: '10.1.0.5/8' }] }, /router "x": internetAddress: "192.0.2.1\/24" is not an address of 198.51.100.0\/24/],
  ['an MTU below IPv6\'s minimum', { internet: { ...WORLD_INTERNET, mtu: 1000 }, nodes: [{ name: 'a', underlayAddress: '10.1.1.5/24' }] }, /internet: mtu 1000 is not an integer in \[1280, 9000\]/],
  ['a host named like a router\'s namespace', { internet: WORLD_INTERNET, nodes: [{ name: 'r-east', underlayAddress: '10.1.1.5/24' }] }, /share namespace "wl0a1b-r-east"/],
];

for (const [what, spec, message] of INVALID) {
  test(`a routed spec with ${what} is rejected, naming the field`, () => {
    assert.throws(() => planSandbox(spec, 'wl0a1b-'), (e: unknown) => e instanceof SandboxSpecError && message.test(e.message));
  });
}
