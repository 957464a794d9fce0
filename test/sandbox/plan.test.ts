import assert from 'node:assert/strict';
import { test } from 'node:test';
import { containsIp, formatCidr, overlaps, parseCidr, parseIp } from '../../src/model/ip.js';
import {
  buildPhasesOf,
  managementRuleset,
  managementSubnetOf,
  planSandbox,
  SandboxSpecError,
  type SandboxSpec,
} from '../../src/sandbox/index.js';

const SPEC: SandboxSpec = {
  management: true,
  nodes: [
    {
      name: 'a1',
      location: 'a',
      underlayAddress: '172.31.0.11/16',
      underlayAddress6: 'fd31::11/64',
      podCIDRs: ['10.244.1.0/24', 'fd44:1::/64'],
      pods: 2,
    },
    { name: 'b1', location: 'b', underlayAddress: '172.31.0.21/16', podCIDRs: ['10.244.2.0/24'], pods: 1 },
  ],
  outside: [{ name: 'client', underlayAddress: '172.31.1.1/16' }],
};

const plan = planSandbox(SPEC, 'wl0a1b-');

test('every namespace carries the prefix and is unique', () => {
  assert.deepEqual(plan.namespaces, [
    'wl0a1b-underlay',
    'wl0a1b-a1',
    'wl0a1b-a1-pod0',
    'wl0a1b-a1-pod1',
    'wl0a1b-b1',
    'wl0a1b-b1-pod0',
    'wl0a1b-client',
  ]);
});

test('pods get consecutive addresses after the gateway, the first address of the pod CIDR', () => {
  const [a1, b1] = plan.nodes;
  assert.deepEqual(a1?.podGateways, ['10.244.1.1', 'fd44:1::1']);
  assert.deepEqual(
    a1?.pods.map((p) => [p.name, p.ip, p.ipv6, p.nodeIface]),
    [
      ['a1-pod0', '10.244.1.2', 'fd44:1::2', 'veth0'],
      ['a1-pod1', '10.244.1.3', 'fd44:1::3', 'veth1'],
    ],
  );
  assert.deepEqual(b1?.pods.map((p) => [p.ip, p.ipv6]), [['10.244.2.2', undefined]]);
});

test('every interface name fits IFNAMSIZ and only the root link carries the prefix', () => {
  const phases = buildPhasesOf(plan, 4242);
  const names = phases
    .flatMap((p) => p.batches.flatMap((b) => b.commands))
    .flatMap((cmd) => cmd.flatMap((arg, i) => (['name', 'add'].includes(cmd[i - 1] ?? '') && cmd[0] === 'link' ? [arg] : [])));
  assert.ok(names.length > 0);
  for (const name of names) assert.ok(name.length <= 15, `${name} is longer than 15 characters`);
  assert.deepEqual(names.filter((n) => n.startsWith('wl')), ['wl0a1b-mgmt']);
});

test('the management link is created straight into the caller\'s namespace, by pid', () => {
  const commands = buildPhasesOf(plan, 4242).flatMap((p) => p.batches.flatMap((b) => b.commands));
  const mgmt = commands.find((c) => c.includes('mgmt0') && c[1] === 'add');
  assert.deepEqual(mgmt?.slice(-4), ['name', 'wl0a1b-mgmt', 'netns', '4242']);
});

test('nodes and outside hosts each get one route to the management address, and the underlay one back', () => {
  const batches = buildPhasesOf(plan, 4242).flatMap((p) => p.batches);
  const root = plan.management!.rootAddress.ip;
  for (const host of [...plan.nodes, ...plan.outside]) {
    const routes = batches.filter((b) => b.netns === host.netns).flatMap((b) => b.commands).filter((c) => c[0] === 'route' && c[2] === `${root}/32`);
    assert.deepEqual(routes, [['route', 'add', `${root}/32`, 'via', '169.254.0.1', 'dev', host.underlayIface, 'onlink', 'src', host.underlay.ip]], host.name);
    const back = batches.filter((b) => b.netns === plan.underlayNetns).flatMap((b) => b.commands).filter((c) => c[0] === 'route' && c[2] === `${host.underlay.ip}/32`);
    assert.equal(back.length, 1, `the underlay routes ${host.name}'s address back`);
  }
});

test('no batch argument needs quoting', () => {
  for (const phase of buildPhasesOf(plan, 1)) {
    for (const cmd of phase.batches.flatMap((b) => b.commands)) {
      for (const arg of cmd) assert.match(arg, /^[^\s"'#\\]+$/, cmd.join(' '));
    }
  }
});

test('management subnets are /30s inside 100.64.0.0/10, one per prefix', () => {
  const range = parseCidr('100.64.0.0/10');
  const first = managementSubnetOf('wl0000-');
  const last = managementSubnetOf('wlffff-');
  assert.equal(formatCidr(first), '100.64.0.0/30');
  assert.ok(overlaps(range, last) && last.bits === 30);
  assert.ok(!overlaps(managementSubnetOf('wl1234-'), managementSubnetOf('wl1235-')));
  assert.ok(containsIp(managementSubnetOf('wl0a1b-'), parseIp(plan.management!.rootAddress.ip)));
  assert.ok(containsIp(managementSubnetOf('wl0a1b-'), parseIp(plan.management!.underlayAddress.ip)));
});

test('the management firewall forwards only to the management address', () => {
  const rules = managementRuleset(plan.management!);
  assert.match(rules, new RegExp(`oifname "mgmt0" ip daddr != ${plan.management!.rootAddress.ip.replaceAll('.', '\\.')} drop`));
  assert.match(rules, /iifname "mgmt0" ct state != \{ established, related \} drop/);
  assert.match(rules, /oifname "mgmt0" masquerade/);
});

test('without management nothing touches the root namespace', () => {
  const bare = planSandbox({ ...SPEC, management: false }, 'wl0a1b-');
  assert.equal(bare.management, undefined);
  const rootBatches = buildPhasesOf(bare, 1)
    .flatMap((p) => p.batches)
    .filter((b) => b.netns === undefined);
  // Only the first phase runs in the root namespace: it creates namespaces and sets sysctls inside them.
  for (const cmd of rootBatches.flatMap((b) => b.commands)) {
    assert.ok(cmd[0] === 'netns' && (cmd[1] === 'add' || (cmd[1] === 'exec' && cmd[2]?.startsWith('wl0a1b-'))), cmd.join(' '));
  }
});

const INVALID: [string, SandboxSpec, RegExp][] = [
  ['no nodes', { nodes: [] }, /nodes is empty/],
  ['a bad name', { nodes: [{ name: 'A_1', underlayAddress: '172.31.0.1/16' }] }, /sandbox host "A_1": name must be/],
  ['an underlay address without a prefix', { nodes: [{ name: 'a', underlayAddress: '172.31.0.1' }] }, /sandbox node "a": underlayAddress: "172.31.0.1" is not a CIDR/],
  ['an IPv6 address as the IPv4 underlay', { nodes: [{ name: 'a', underlayAddress: 'fd00::1/64' }] }, /underlayAddress: "fd00::1\/64" is not an IPv4 CIDR/],
  [
    'a duplicate underlay address',
    { nodes: [{ name: 'a', underlayAddress: '172.31.0.1/16' }], outside: [{ name: 'c', underlayAddress: '172.31.0.1/16' }] },
    /sandbox host "c": underlay address 172.31.0.1 is also used by "a"/,
  ],
  [
    'two hosts with one name',
    { nodes: [{ name: 'a', underlayAddress: '172.31.0.1/16' }, { name: 'a', underlayAddress: '172.31.0.2/16' }] },
    /two hosts would share namespace "wl0a1b-a"/,
  ],
  ['a host named like the underlay', { nodes: [{ name: 'underlay', underlayAddress: '172.31.0.1/16' }] }, /share namespace "wl0a1b-underlay"/],
  ['pods without an IPv4 pod CIDR', { nodes: [{ name: 'a', underlayAddress: '172.31.0.1/16', podCIDRs: ['fd44::/64'], pods: 1 }] }, /pods need an IPv4 pod CIDR/],
  ['too many pods for the CIDR', { nodes: [{ name: 'a', underlayAddress: '172.31.0.1/16', podCIDRs: ['10.0.0.0/29'], pods: 6 }] }, /podCIDRs\[0\] "10.0.0.0\/29" is too small for 6 pods/],
  ['two IPv4 pod CIDRs', { nodes: [{ name: 'a', underlayAddress: '172.31.0.1/16', podCIDRs: ['10.0.0.0/24', '10.0.1.0/24'] }] }, /more than one CIDR per family/],
  ['a fractional pod count', { nodes: [{ name: 'a', underlayAddress: '172.31.0.1/16', podCIDRs: ['10.0.0.0/24'], pods: 1.5 }] }, /pods 1.5 is not a non-negative integer/],
];

for (const [what, spec, message] of INVALID) {
  test(`a spec with ${what} is rejected, naming the field`, () => {
    assert.throws(() => planSandbox(spec, 'wl0a1b-'), (e: unknown) => e instanceof SandboxSpecError && message.test(e.message));
  });
}

test('a prefix outside the pattern is rejected', () => {
  assert.throws(() => planSandbox(SPEC, 'test-'), SandboxSpecError);
});
