import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { computeTopology } from '../../src/mesh/topology.js';
import type { MeshOptions, Topology } from '../../src/mesh/types.js';
import { formatIp, parseCidr } from '../../src/model/ip.js';
import type { MeshNode, MeshPeer } from '../../src/model/mesh.js';
import { member, node, options, peer, showRoute, showRule } from './builder.js';

/** The WireGuard IP of a segment, for expectations. */
type W = (key: string) => string;

function wgOf(t: Topology): W {
  return (key) => {
    const s = t.segments.find((x) => x.key === key);
    assert.ok(s, `segment ${key}`);
    return formatIp(s.wireguardIP);
  };
}

interface Case {
  name: string;
  host: string;
  nodes?: MeshNode[];
  peers?: MeshPeer[];
  opts?: Partial<MeshOptions>;
  routes: (w: W) => string[];
  rules?: string[];
}

// Location a: a1 (leader), a2 in 192.168.1.0/24, a3 in another subnet. Location b: b1, b2.
const cluster = [member('a', 1), member('a', 2), member('a', 3, { ip: '192.168.99.3/24' }), member('b', 1), member('b', 2)];
const peers = [peer('p', { ips: ['10.5.0.1/32'] })];

const toB = (w: W, src = ' src 192.168.1.1'): string[] => [
  `10.2.21.0/24 via ${w('location:b')} dev wirelane0${src} onlink`,
  `192.168.2.1/32 via ${w('location:b')} dev wirelane0${src} onlink`,
  `10.2.22.0/24 via ${w('location:b')} dev wirelane0${src} onlink`,
  `192.168.2.2/32 via ${w('location:b')} dev wirelane0${src} onlink`,
];
const viaLeader = (w: W, dev: string): string[] => [
  `${w('location:a')}/32 via 192.168.1.1 dev ${dev} onlink`,
  `${w('location:b')}/32 via 192.168.1.1 dev ${dev} onlink`,
  `10.2.21.0/24 via 192.168.1.1 dev ${dev} onlink`,
  `192.168.2.1/32 via 192.168.1.1 dev ${dev} onlink`,
  `10.2.22.0/24 via 192.168.1.1 dev ${dev} onlink`,
  `192.168.2.2/32 via 192.168.1.1 dev ${dev} onlink`,
  `10.5.0.1/32 via 192.168.1.1 dev ${dev} onlink`,
];
const peerRoute = '10.5.0.1/32 dev wirelane0';

const cases: Case[] = [
  {
    name: 'a leader routes other locations\' pods and internal IPs via their WireGuard IP, and peers on the device',
    host: 'a1',
    routes: (w) => [...toB(w), peerRoute],
  },
  {
    name: 'a leader with encapsulation but without --local routes nothing inside its location',
    host: 'a1',
    opts: { encapsulate: 'always' },
    routes: (w) => [...toB(w), peerRoute],
  },
  {
    name: 'a leader with --local and no encapsulation routes location pods via internal IPs on the underlay',
    host: 'a1',
    opts: { local: true },
    routes: (w) => ['10.2.12.0/24 via 192.168.1.2 dev eth0 onlink', '10.2.13.0/24 via 192.168.99.3 dev eth0 onlink', ...toB(w), peerRoute],
  },
  {
    name: 'a leader with --local and encapsulate always tunnels to every member, with table 1107 and both rules',
    host: 'a1',
    opts: { local: true, encapsulate: 'always' },
    routes: (w) => [
      '10.2.12.0/24 via 192.168.1.2 dev tunl0 onlink',
      '192.168.1.2/32 via 192.168.1.2 dev tunl0 onlink table 1107',
      '10.2.13.0/24 via 192.168.99.3 dev tunl0 onlink',
      '192.168.99.3/32 via 192.168.99.3 dev tunl0 onlink table 1107',
      ...toB(w),
      peerRoute,
    ],
    rules: [
      'from 10.2.11.0/24 to 192.168.1.2/32 table 1107',
      'to 192.168.1.2/32 iif wirelane0 table 1107',
      'from 10.2.11.0/24 to 192.168.99.3/32 table 1107',
      'to 192.168.99.3/32 iif wirelane0 table 1107',
    ],
  },
  {
    name: 'a leader with --local and crosssubnet tunnels only to members outside its internal network',
    host: 'a1',
    opts: { local: true, encapsulate: 'crosssubnet' },
    routes: (w) => [
      '10.2.12.0/24 via 192.168.1.2 dev eth0 onlink',
      '10.2.13.0/24 via 192.168.99.3 dev tunl0 onlink',
      '192.168.99.3/32 via 192.168.99.3 dev tunl0 onlink table 1107',
      ...toB(w),
      peerRoute,
    ],
    rules: ['from 10.2.11.0/24 to 192.168.99.3/32 table 1107', 'to 192.168.99.3/32 iif wirelane0 table 1107'],
  },
  {
    name: 'a non-leader routes every WireGuard IP, other locations and peers via its leader\'s internal IP',
    host: 'a2',
    routes: (w) => viaLeader(w, 'eth0'),
  },
  {
    name: 'a non-leader with encapsulate always sends everything via the leader through the tunnel',
    host: 'a2',
    opts: { encapsulate: 'always' },
    routes: (w) => viaLeader(w, 'tunl0'),
  },
  {
    name: 'a non-leader with crosssubnet uses the underlay to a leader inside its internal network',
    host: 'a2',
    opts: { encapsulate: 'crosssubnet' },
    routes: (w) => viaLeader(w, 'eth0'),
  },
  {
    name: 'a non-leader with crosssubnet tunnels to a leader outside its internal network',
    host: 'a3',
    opts: { encapsulate: 'crosssubnet' },
    routes: (w) => viaLeader(w, 'tunl0'),
  },
  {
    name: 'a non-leader with --local routes location pods directly (no encapsulation, no rules)',
    host: 'a2',
    opts: { local: true },
    routes: (w) => {
      const [first, ...rest] = viaLeader(w, 'eth0');
      return [first as string, '10.2.11.0/24 via 192.168.1.1 dev eth0 onlink', '10.2.13.0/24 via 192.168.99.3 dev eth0 onlink', ...rest];
    },
  },
  {
    name: 'a non-leader with --local and crosssubnet tunnels to members outside, with the from-pod-CIDR rule only',
    host: 'a2',
    opts: { local: true, encapsulate: 'crosssubnet' },
    routes: (w) => {
      const [first, ...rest] = viaLeader(w, 'eth0');
      return [
        first as string,
        '10.2.11.0/24 via 192.168.1.1 dev eth0 onlink',
        '10.2.13.0/24 via 192.168.99.3 dev tunl0 onlink',
        '192.168.99.3/32 via 192.168.99.3 dev tunl0 onlink table 1107',
        ...rest,
      ];
    },
    rules: ['from 10.2.12.0/24 to 192.168.99.3/32 table 1107'],
  },
  {
    name: 'a non-leader with --local and encapsulate always tunnels to every member',
    host: 'a2',
    opts: { local: true, encapsulate: 'always' },
    routes: (w) => {
      const [first, ...rest] = viaLeader(w, 'tunl0');
      return [
        first as string,
        '10.2.11.0/24 via 192.168.1.1 dev tunl0 onlink',
        '192.168.1.1/32 via 192.168.1.1 dev tunl0 onlink table 1107',
        '10.2.13.0/24 via 192.168.99.3 dev tunl0 onlink',
        '192.168.99.3/32 via 192.168.99.3 dev tunl0 onlink table 1107',
        ...rest,
      ];
    },
    rules: ['from 10.2.12.0/24 to 192.168.1.1/32 table 1107', 'from 10.2.12.0/24 to 192.168.99.3/32 table 1107'],
  },
  {
    name: 'a leader does not route a member\'s internal IP through the tunnel to that same IP',
    host: 'a1',
    nodes: [member('a', 1), member('b', 1, { ep: '203.0.113.21:51820', ip: '203.0.113.21/24' })],
    peers: [],
    routes: (w) => [`10.2.21.0/24 via ${w('location:b')} dev wirelane0 src 192.168.1.1 onlink`],
  },
  {
    name: 'a leader whose internal IP is its endpoint sends from its segment\'s WireGuard IP (replies to the endpoint would not cross WireGuard)',
    host: 'a1',
    nodes: [member('a', 1, { ep: '192.168.1.1:51820' }), member('b', 1)],
    peers: [],
    routes: (w) => [
      `10.2.21.0/24 via ${w('location:b')} dev wirelane0 src ${w('location:a')} onlink`,
      `192.168.2.1/32 via ${w('location:b')} dev wirelane0 src ${w('location:a')} onlink`,
    ],
  },
  {
    name: 'a leader routes remote allowed-location IPs via the WireGuard IP, a non-leader via its leader',
    host: 'a1',
    nodes: [member('a', 1), member('b', 1, { allowed: ['172.20.0.0/24'] })],
    peers: [],
    routes: (w) => [
      `10.2.21.0/24 via ${w('location:b')} dev wirelane0 src 192.168.1.1 onlink`,
      `192.168.2.1/32 via ${w('location:b')} dev wirelane0 src 192.168.1.1 onlink`,
      `172.20.0.0/24 via ${w('location:b')} dev wirelane0 src 192.168.1.1 onlink`,
    ],
  },
  {
    name: 'a node without internal IP leads its own segment, routes without source and has no underlay routes',
    host: 'solo',
    nodes: [node('solo', { loc: 'a', ep: '203.0.113.9:51820', pods: ['10.2.99.0/24'] }), member('a', 1), member('a', 2)],
    peers: [],
    opts: { local: true, encapsulate: 'always' },
    routes: (w) => [
      `10.2.11.0/24 via ${w('location:a')} dev wirelane0 onlink`,
      `192.168.1.1/32 via ${w('location:a')} dev wirelane0 onlink`,
      `10.2.12.0/24 via ${w('location:a')} dev wirelane0 onlink`,
      `192.168.1.2/32 via ${w('location:a')} dev wirelane0 onlink`,
    ],
  },
  {
    name: 'a destination that comes up twice keeps its first route',
    host: 'a1',
    nodes: [member('a', 1), member('b', 1)],
    peers: [peer('p', { ips: ['192.168.2.1/32', '10.5.0.9/32'] })],
    routes: (w) => [
      `10.2.21.0/24 via ${w('location:b')} dev wirelane0 src 192.168.1.1 onlink`,
      `192.168.2.1/32 via ${w('location:b')} dev wirelane0 src 192.168.1.1 onlink`,
      '10.5.0.9/32 dev wirelane0',
    ],
  },
  {
    name: 'dual stack on a leader: IPv6 pod CIDRs go on the WireGuard device without an IPv4 gateway or source',
    host: 'a1',
    nodes: [member('a', 1, { pods: ['10.2.11.0/24', 'fd10:11::/64'] }), member('b', 1, { pods: ['10.2.21.0/24', 'fd10:21::/64'] })],
    peers: [peer('p6', { ips: ['fd05::1/128'] })],
    routes: (w) => [
      `10.2.21.0/24 via ${w('location:b')} dev wirelane0 src 192.168.1.1 onlink`,
      'fd10:21::/64 dev wirelane0',
      `192.168.2.1/32 via ${w('location:b')} dev wirelane0 src 192.168.1.1 onlink`,
      'fd05::1/128 dev wirelane0',
    ],
  },
  {
    name: 'dual stack on a non-leader: an IPv6 destination behind an IPv4-only leader gets no route',
    host: 'a2',
    nodes: [member('a', 1, { pods: ['10.2.11.0/24', 'fd10:11::/64'] }), member('a', 2, { pods: ['10.2.12.0/24', 'fd10:12::/64'] }), member('b', 1, { pods: ['10.2.21.0/24', 'fd10:21::/64'] })],
    peers: [],
    opts: { local: true, encapsulate: 'always' },
    routes: (w) => [
      `${w('location:a')}/32 via 192.168.1.1 dev tunl0 onlink`,
      '10.2.11.0/24 via 192.168.1.1 dev tunl0 onlink',
      '192.168.1.1/32 via 192.168.1.1 dev tunl0 onlink table 1107',
      `${w('location:b')}/32 via 192.168.1.1 dev tunl0 onlink`,
      '10.2.21.0/24 via 192.168.1.1 dev tunl0 onlink',
      '192.168.2.1/32 via 192.168.1.1 dev tunl0 onlink',
    ],
    rules: ['from 10.2.12.0/24 to 192.168.1.1/32 table 1107'],
  },
  {
    name: 'IPv6 only: gateways, sources and the WireGuard subnet are IPv6',
    host: 'x1',
    nodes: [
      node('x1', { loc: 'x', ep: '[2001:db8::1]:51820', ip: 'fd00:1::1/64', pods: ['fd10:1::/64'] }),
      node('x2', { loc: 'x', ep: '[2001:db8::2]:51820', ip: 'fd00:1::2/64', pods: ['fd10:2::/64'] }),
      node('y1', { loc: 'y', ep: '[2001:db8::3]:51820', ip: 'fd00:2::1/64', pods: ['fd10:3::/64'] }),
    ],
    peers: [],
    opts: { subnets: [parseCidr('fd00:4::/64')], local: true, encapsulate: 'crosssubnet' },
    routes: (w) => [
      'fd10:2::/64 via fd00:1::2 dev eth0 onlink',
      `fd10:3::/64 via ${w('location:y')} dev wirelane0 src fd00:1::1 onlink`,
      `fd00:2::1/128 via ${w('location:y')} dev wirelane0 src fd00:1::1 onlink`,
    ],
  },
];

// Dual stack: an IPv6 WireGuard subnet beside the IPv4 one, and a dual-stack underlay (192.168.L.i
// and fd31:L::i). Location a: a1 (leader), a2. Location b: b1.
const SUBNETS_46 = [parseCidr('10.4.0.0/16'), parseCidr('fd00:4::/64')];
const dual = (loc: string, i: number, underlay6 = true): MeshNode => {
  const l = loc.charCodeAt(0) - 96;
  const ip = `192.168.${l}.${i}/24${underlay6 ? `,fd31:${l}::${i}/64` : ''}`;
  return member(loc, i, { ip, pods: [`10.2.${l * 10 + i}.0/24`, `fd10:${l * 10 + i}::/64`] });
};
const dualCluster = [dual('a', 1), dual('a', 2), dual('b', 1)];

/** A segment's WireGuard IP of a family. */
function wg6Of(t: Topology, key: string, family: 4 | 6): string {
  const ip = t.segments.find((s) => s.key === key)?.wireguardIPs.find((w) => w.family === family);
  assert.ok(ip, `segment ${key} has an IPv${family} WireGuard IP`);
  return formatIp(ip);
}

interface DualCase {
  name: string;
  host: string;
  nodes?: MeshNode[];
  opts?: Partial<MeshOptions>;
  routes: (w: (key: string, family: 4 | 6) => string) => string[];
  rules?: string[];
}

/** A dual-stack a1's routes to location b: each family via b's WireGuard IP of that family. */
const dualToB = (w: (key: string, family: 4 | 6) => string): string[] => [
  `10.2.21.0/24 via ${w('location:b', 4)} dev wirelane0 src 192.168.1.1 onlink`,
  `fd10:21::/64 via ${w('location:b', 6)} dev wirelane0 src fd31:1::1 onlink`,
  `192.168.2.1/32 via ${w('location:b', 4)} dev wirelane0 src 192.168.1.1 onlink`,
  `fd31:2::1/128 via ${w('location:b', 6)} dev wirelane0 src fd31:1::1 onlink`,
];

/** A dual-stack a2's routes to location b via a1: IPv4 on `dev4`, IPv6 on `dev6`. */
const dualBViaLeader = (w: (key: string, family: 4 | 6) => string, dev4: string, dev6 = 'eth0'): string[] => [
  `${w('location:b', 4)}/32 via 192.168.1.1 dev ${dev4} onlink`,
  `${w('location:b', 6)}/128 via fd31:1::1 dev ${dev6} onlink`,
  `10.2.21.0/24 via 192.168.1.1 dev ${dev4} onlink`,
  `fd10:21::/64 via fd31:1::1 dev ${dev6} onlink`,
  `192.168.2.1/32 via 192.168.1.1 dev ${dev4} onlink`,
  `fd31:2::1/128 via fd31:1::1 dev ${dev6} onlink`,
];

/** Location a on two subnets of each family: a1 on 192.168.1.0/24 and fd31:1::/64, a3 on 192.168.3.0/24 and fd31:3::/64. */
const twoSubnets = (): MeshNode[] => [
  dual('a', 1),
  member('a', 3, { ip: '192.168.3.3/24,fd31:3::3/64', pods: ['10.2.13.0/24', 'fd10:13::/64'] }),
  dual('b', 1),
];

const dualCases: DualCase[] = [
  {
    name: 'a leader routes remote IPv6 pods and internal IPs via the segment\'s IPv6 WireGuard IP, from its IPv6 internal IP',
    host: 'a1',
    routes: (w) => dualToB(w),
  },
  {
    name: 'a non-leader routes both families via its leader\'s internal IP of that family, WireGuard IPs of both families included',
    host: 'a2',
    routes: (w) => [
      `${w('location:a', 4)}/32 via 192.168.1.1 dev eth0 onlink`,
      `${w('location:a', 6)}/128 via fd31:1::1 dev eth0 onlink`,
      ...dualBViaLeader(w, 'eth0'),
    ],
  },
  {
    name: 'the tunnel carries the internal IP\'s family only: with encapsulate always a non-leader sends IPv6 over the underlay',
    host: 'a2',
    nodes: [dual('a', 1), dual('a', 2), dual('b', 1)],
    opts: { encapsulate: 'always', local: true },
    routes: (w) => [
      `${w('location:a', 4)}/32 via 192.168.1.1 dev tunl0 onlink`,
      `${w('location:a', 6)}/128 via fd31:1::1 dev eth0 onlink`,
      '10.2.11.0/24 via 192.168.1.1 dev tunl0 onlink',
      'fd10:11::/64 via fd31:1::1 dev eth0 onlink',
      '192.168.1.1/32 via 192.168.1.1 dev tunl0 onlink table 1107',
      ...dualBViaLeader(w, 'tunl0'),
    ],
    rules: ['from 10.2.12.0/24 to 192.168.1.1/32 table 1107'],
  },
  {
    name: 'a VXLAN tunnel carries both families: with encapsulate always a non-leader sends IPv6 through it to the leader\'s IPv6 internal IP',
    host: 'a2',
    nodes: [dual('a', 1), dual('a', 2), dual('b', 1)],
    opts: { encapsulate: 'always', local: true, tunnelDevice: 'wirelane.vx', tunnelCarriesBothFamilies: true },
    routes: (w) => [
      `${w('location:a', 4)}/32 via 192.168.1.1 dev wirelane.vx onlink`,
      `${w('location:a', 6)}/128 via fd31:1::1 dev wirelane.vx onlink`,
      '10.2.11.0/24 via 192.168.1.1 dev wirelane.vx onlink',
      'fd10:11::/64 via fd31:1::1 dev wirelane.vx onlink',
      '192.168.1.1/32 via 192.168.1.1 dev wirelane.vx onlink table 1107',
      ...dualBViaLeader(w, 'wirelane.vx', 'wirelane.vx'),
    ],
    rules: ['from 10.2.12.0/24 to 192.168.1.1/32 table 1107'],
  },
  {
    name: 'a VXLAN tunnel with crosssubnet: IPv6 to a member on another IPv6 subnet is encapsulated, within one subnet it is not',
    host: 'a1',
    nodes: [...twoSubnets(), dual('a', 2)],
    opts: { encapsulate: 'crosssubnet', local: true, tunnelDevice: 'wirelane.vx', tunnelCarriesBothFamilies: true },
    routes: (w) => [
      '10.2.12.0/24 via 192.168.1.2 dev eth0 onlink',
      'fd10:12::/64 via fd31:1::2 dev eth0 onlink',
      '10.2.13.0/24 via 192.168.3.3 dev wirelane.vx onlink',
      'fd10:13::/64 via fd31:3::3 dev wirelane.vx onlink',
      '192.168.3.3/32 via 192.168.3.3 dev wirelane.vx onlink table 1107',
      ...dualToB(w),
    ],
    rules: ['from 10.2.11.0/24 to 192.168.3.3/32 table 1107', 'to 192.168.3.3/32 iif wirelane0 table 1107'],
  },
  {
    name: 'with --local a leader routes its members\' IPv6 pods via their IPv6 internal IPs, so traffic from other locations reaches them',
    host: 'a1',
    opts: { local: true },
    routes: (w) => [
      '10.2.12.0/24 via 192.168.1.2 dev eth0 onlink',
      'fd10:12::/64 via fd31:1::2 dev eth0 onlink',
      ...dualToB(w),
    ],
  },
  {
    name: 'an IPv4-only underlay: a leader routes IPv6 via the IPv6 WireGuard IP with no source (the kernel picks its own WireGuard IP)',
    host: 'a1',
    nodes: [dual('a', 1, false), dual('a', 2, false), dual('b', 1, false)],
    opts: { local: true },
    routes: (w) => [
      '10.2.12.0/24 via 192.168.1.2 dev eth0 onlink',
      `10.2.21.0/24 via ${w('location:b', 4)} dev wirelane0 src 192.168.1.1 onlink`,
      `fd10:21::/64 via ${w('location:b', 6)} dev wirelane0 onlink`,
      `192.168.2.1/32 via ${w('location:b', 4)} dev wirelane0 src 192.168.1.1 onlink`,
    ],
  },
  {
    name: 'an IPv4-only underlay: a non-leader has no next hop for IPv6 and routes IPv4 only',
    host: 'a2',
    nodes: [dual('a', 1, false), dual('a', 2, false), dual('b', 1, false)],
    routes: (w) => [
      `${w('location:a', 4)}/32 via 192.168.1.1 dev eth0 onlink`,
      `${w('location:b', 4)}/32 via 192.168.1.1 dev eth0 onlink`,
      '10.2.21.0/24 via 192.168.1.1 dev eth0 onlink',
      '192.168.2.1/32 via 192.168.1.1 dev eth0 onlink',
    ],
  },
];

describe('dual-stack routes', () => {
  for (const c of dualCases) {
    test(c.name, () => {
      const t = computeTopology({ nodes: c.nodes ?? dualCluster, peers: [] }, options(c.host, { subnets: SUBNETS_46, ...c.opts }));
      assert.deepEqual(t.routes.map(showRoute), c.routes((key, family) => wg6Of(t, key, family)));
      assert.deepEqual(t.rules.map(showRule), c.rules ?? []);
    });
  }

  test('one IPv4 --subnet gives the routes it gave before dual stack, IPv6 pods behind IPv4-only WireGuard on the device with no gateway', () => {
    const t = computeTopology({ nodes: dualCluster, peers: [] }, options('a1'));
    const w = wgOf(t);
    assert.deepEqual(t.routes.map(showRoute), [
      `10.2.21.0/24 via ${w('location:b')} dev wirelane0 src 192.168.1.1 onlink`,
      'fd10:21::/64 dev wirelane0 src fd31:1::1',
      `192.168.2.1/32 via ${w('location:b')} dev wirelane0 src 192.168.1.1 onlink`,
      'fd31:2::1/128 dev wirelane0 src fd31:1::1',
    ]);
  });
});

describe('routes and rules', () => {
  for (const c of cases) {
    test(c.name, () => {
      const t = computeTopology({ nodes: c.nodes ?? cluster, peers: c.peers ?? peers }, options(c.host, c.opts));
      assert.deepEqual(t.routes.map(showRoute), c.routes(wgOf(t)));
      assert.deepEqual(t.rules.map(showRule), c.rules ?? []);
    });
  }

  test('input order does not change routes or rules', () => {
    const opts = options('a1', { local: true, encapsulate: 'crosssubnet' });
    const a = computeTopology({ nodes: cluster, peers }, opts);
    const b = computeTopology({ nodes: [...cluster].reverse(), peers: [...peers].reverse() }, opts);
    assert.deepEqual(b.routes.map(showRoute), a.routes.map(showRoute));
    assert.deepEqual(b.rules.map(showRule), a.rules.map(showRule));
  });
});
