import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CNI_BRIDGE, CNI_NETWORK_NAME, cniNetworkOf, formatCniConfigList, isOwnCniConfigList, type CniNetworkInput } from '../../src/cni/conflist.js';
import { parseCidr } from '../../src/model/ip.js';

const cidrs = (...texts: string[]) => texts.map(parseCidr);

/** The host-local section of the bridge plugin, as the file says it. */
function ipamOf(input: CniNetworkInput): unknown {
  const network = cniNetworkOf(input);
  assert.ok('list' in network, JSON.stringify(network));
  return network.list.plugins[0]?.['ipam'];
}

test('a single-stack node: one range, an IPv4 default route, the mesh MTU on the bridge', () => {
  const network = cniNetworkOf({ podCIDRs: cidrs('10.244.1.0/24'), mtu: 1420 });
  assert.ok('list' in network);
  assert.deepEqual(network.list, {
    cniVersion: '0.4.0',
    name: 'wirelane',
    plugins: [
      {
        type: 'bridge',
        bridge: 'wirelane-br',
        isGateway: true,
        forceAddress: true,
        hairpinMode: true,
        ipMasq: false,
        mtu: 1420,
        ipam: { type: 'host-local', ranges: [[{ subnet: '10.244.1.0/24' }]], routes: [{ dst: '0.0.0.0/0' }] },
      },
      { type: 'portmap', capabilities: { portMappings: true }, snat: true },
    ],
  });
});

const RANGES: readonly { name: string; podCIDRs: string[]; ranges: string[]; routes: string[] }[] = [
  { name: 'dual stack, IPv4 first', podCIDRs: ['10.244.1.0/24', 'fd44:1::/64'], ranges: ['10.244.1.0/24', 'fd44:1::/64'], routes: ['0.0.0.0/0', '::/0'] },
  { name: 'dual stack listed IPv6 first: IPv4 still first', podCIDRs: ['fd44:1::/64', '10.244.1.0/24'], ranges: ['10.244.1.0/24', 'fd44:1::/64'], routes: ['0.0.0.0/0', '::/0'] },
  { name: 'IPv6 only', podCIDRs: ['fd44:1::/64'], ranges: ['fd44:1::/64'], routes: ['::/0'] },
  { name: 'host bits are masked off', podCIDRs: ['10.244.1.7/24', 'fd44:1::9/64'], ranges: ['10.244.1.0/24', 'fd44:1::/64'], routes: ['0.0.0.0/0', '::/0'] },
  { name: 'a second CIDR of a family is ignored (Kubernetes allows one per family)', podCIDRs: ['10.244.1.0/24', '10.244.9.0/24'], ranges: ['10.244.1.0/24'], routes: ['0.0.0.0/0'] },
  { name: 'the smallest IPv4 CIDR with room for a gateway and a pod', podCIDRs: ['10.244.1.0/30'], ranges: ['10.244.1.0/30'], routes: ['0.0.0.0/0'] },
];

for (const row of RANGES) {
  test(`host-local ranges and routes: ${row.name}`, () => {
    assert.deepEqual(ipamOf({ podCIDRs: cidrs(...row.podCIDRs), mtu: 1420 }), {
      type: 'host-local',
      ranges: row.ranges.map((subnet) => [{ subnet }]),
      routes: row.routes.map((dst) => ({ dst })),
    });
  });
}

test("host-local's state directory is set only when one is given", () => {
  assert.deepEqual(ipamOf({ podCIDRs: cidrs('10.244.1.0/24'), mtu: 1420, ipamDataDir: '/run/cni-ipam' }), {
    type: 'host-local',
    ranges: [[{ subnet: '10.244.1.0/24' }]],
    routes: [{ dst: '0.0.0.0/0' }],
    dataDir: '/run/cni-ipam',
  });
});

const NO_LIST: readonly { name: string; input: CniNetworkInput; outcome: 'missing' | 'invalid'; reason: RegExp }[] = [
  { name: 'no pod CIDR yet', input: { podCIDRs: [], mtu: 1420 }, outcome: 'missing', reason: /no pod CIDR/ },
  { name: 'an IPv4 /31 has no room for a pod', input: { podCIDRs: cidrs('10.244.1.0/31'), mtu: 1420 }, outcome: 'invalid', reason: /10\.244\.1\.0\/31 has no room/ },
  { name: 'an IPv4 /32', input: { podCIDRs: cidrs('10.244.1.1/32', 'fd44:1::/64'), mtu: 1420 }, outcome: 'invalid', reason: /10\.244\.1\.1\/32/ },
  { name: 'an IPv6 /127', input: { podCIDRs: cidrs('fd44:1::/127'), mtu: 1420 }, outcome: 'invalid', reason: /fd44:1::\/127/ },
  { name: 'an MTU below IPv6 minimum', input: { podCIDRs: cidrs('10.244.1.0/24'), mtu: 1279 }, outcome: 'invalid', reason: /MTU 1279/ },
  { name: 'an MTU that is no integer', input: { podCIDRs: cidrs('10.244.1.0/24'), mtu: 1420.5 }, outcome: 'invalid', reason: /MTU 1420\.5/ },
];

for (const row of NO_LIST) {
  test(`no configuration list: ${row.name}`, () => {
    const network = cniNetworkOf(row.input);
    assert.ok(row.outcome in network, JSON.stringify(network));
    assert.match((network as Record<string, string>)[row.outcome]!, row.reason);
  });
}

test('the text is stable: the same input gives the same bytes, a changed MTU or CIDR different ones', () => {
  const text = (podCIDRs: string[], mtu: number) => {
    const network = cniNetworkOf({ podCIDRs: cidrs(...podCIDRs), mtu });
    assert.ok('list' in network);
    return formatCniConfigList(network.list);
  };
  assert.equal(text(['10.244.1.0/24'], 1420), text(['10.244.1.0/24'], 1420));
  assert.notEqual(text(['10.244.1.0/24'], 1420), text(['10.244.1.0/24'], 1400));
  assert.notEqual(text(['10.244.1.0/24'], 1420), text(['10.244.2.0/24'], 1420));
  assert.ok(text(['10.244.1.0/24'], 1420).endsWith('}\n'));
});

const OWNERSHIP: readonly [string, string, boolean][] = [
  ['the list this agent writes', (() => { const n = cniNetworkOf({ podCIDRs: cidrs('10.244.1.0/24'), mtu: 1420 }); return 'list' in n ? formatCniConfigList(n.list) : ''; })(), true],
  ["Kilo's list", JSON.stringify({ cniVersion: '0.4.0', name: 'kilo', plugins: [{ type: 'bridge', bridge: 'kube-bridge' }] }), false],
  ['our name with another bridge (an operator\'s own list)', JSON.stringify({ name: CNI_NETWORK_NAME, plugins: [{ type: 'bridge', bridge: 'cni0' }] }), false],
  ['our bridge under another name', JSON.stringify({ name: 'pods', plugins: [{ type: 'bridge', bridge: CNI_BRIDGE }] }), false],
  ['no plugins', JSON.stringify({ name: CNI_NETWORK_NAME }), false],
  ['not JSON', 'name: wirelane', false],
  ['JSON null', 'null', false],
];

for (const [name, text, own] of OWNERSHIP) {
  test(`ownership of a configuration file: ${name} → ${own ? 'ours' : 'not ours'}`, () => {
    assert.equal(isOwnCniConfigList(text), own);
  });
}
