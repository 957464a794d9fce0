import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseEndpoint } from '../../src/model/endpoint.js';
import { electLeader, isPublicEndpoint } from '../../src/mesh/leader.js';
import { computeTopology } from '../../src/mesh/topology.js';
import { member, node, options } from './builder.js';

describe('public endpoints', () => {
  const cases: [string, boolean][] = [
    ['10.1.0.1:51820', false],
    ['172.16.5.1:51820', false],
    ['172.32.0.1:51820', true],
    ['192.168.1.1:51820', false],
    ['203.0.113.1:51820', true],
    ['[fd00::1]:51820', false],
    ['[fc00::1]:51820', false],
    ['[2001:db8::1]:51820', true],
    ['node.example.com:51820', false],
  ];
  for (const [endpoint, expected] of cases) {
    test(`${endpoint} is ${expected ? '' : 'not '}public`, () => {
      assert.equal(isPublicEndpoint(parseEndpoint(endpoint)), expected);
    });
  }
  test('no endpoint is not public', () => assert.equal(isPublicEndpoint(undefined), false));
});

describe('leader election (members scanned in name order)', () => {
  const pods = ['10.2.0.0/24'];
  const priv = (n: number): string => `10.1.0.${n}:51820`;
  const pub = (n: number): string => `203.0.113.${n}:51820`;
  const cases: { name: string; members: ReturnType<typeof node>[]; leader: string }[] = [
    {
      name: 'the first annotated node with a public endpoint wins over an earlier annotated private one',
      members: [node('a', { ep: priv(1), leader: true, pods }), node('b', { ep: pub(2), pods }), node('c', { ep: pub(3), leader: true, pods })],
      leader: 'c',
    },
    {
      name: 'the first annotated node wins over public unannotated nodes',
      members: [node('a', { ep: pub(1), pods }), node('b', { ep: priv(2), leader: true, pods }), node('c', { ep: priv(3), leader: true, pods })],
      leader: 'b',
    },
    {
      name: 'without annotations the first public node wins',
      members: [node('a', { ep: priv(1), pods }), node('b', { ep: pub(2), pods }), node('c', { ep: pub(3), pods })],
      leader: 'b',
    },
    {
      name: 'without annotations or public endpoints the first node wins',
      members: [node('a', { ep: priv(1), pods }), node('b', { ep: priv(2), pods })],
      leader: 'a',
    },
    {
      name: 'a DNS endpoint is not public, so an annotated DNS node falls to step two',
      members: [node('a', { ep: 'a.example.com:51820', leader: true, pods }), node('b', { ep: pub(2), leader: true, pods })],
      leader: 'b',
    },
    {
      name: 'a DNS endpoint does not count as public for step three',
      members: [node('a', { ep: priv(1), pods }), node('b', { ep: 'b.example.com:51820', pods }), node('c', { ep: pub(3), pods })],
      leader: 'c',
    },
    {
      name: 'an IPv6 ULA endpoint is not public, a global one is',
      members: [node('a', { ep: '[fd00::1]:51820', pods }), node('b', { ep: '[2001:db8::2]:51820', pods })],
      leader: 'b',
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      assert.equal(electLeader(c.members).name, c.leader);
      // The topology sorts members by name itself: the input order does not matter.
      const nodes = [...c.members].reverse().map((n, i) => ({
        ...n,
        location: 'x',
        internalIP: { family: 4 as const, addr: 0xc0a80001n + BigInt(i), bits: 24 },
        podCIDRs: [{ family: 4 as const, addr: 0x0a020000n + (BigInt(i) << 8n), bits: 24 }],
      }));
      const t = computeTopology({ nodes, peers: [] }, options(c.members[0]?.name ?? ''));
      assert.equal(t.segments[0]?.leader.name, c.leader);
    });
  }

  test('the segment takes the leader key, endpoint and keepalive', () => {
    const t = computeTopology({ nodes: [member('a', 1), member('a', 2, { leader: true, keepalive: 25 })], peers: [] }, options('a1'));
    const s = t.segments[0];
    assert.equal(s?.leader.name, 'a2');
    assert.equal(s?.publicKey, member('a', 2).publicKey);
    assert.equal(s?.persistentKeepalive, 25);
    assert.equal(t.leader, false);
  });
});
