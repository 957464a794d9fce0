import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { topologyToJSON } from '../../src/mesh/json.js';
import { computeTopology } from '../../src/mesh/topology.js';
import { formatIp } from '../../src/model/ip.js';
import { keyOf, node, options, peer } from './builder.js';

describe('topology as JSON', () => {
  const nodes = [
    node('a', { loc: '1', ep: '10.1.0.1:51820', ip: '192.168.0.1/24', pods: ['10.2.1.0/24'] }),
    node('c', { loc: '1', ep: '10.1.0.3:51820', ip: '192.168.0.2/24', pods: ['10.2.3.0/24'] }),
    node('b', { loc: '2', ep: '10.1.0.2:51820', ip: '192.168.1.1/24', pods: ['10.2.2.0/24'] }),
  ];
  const peers = [peer('pa', { ips: ['10.5.0.1/24'] })];
  const t = computeTopology({ nodes, peers }, options('a', { local: true, encapsulate: 'always' }));
  const wg = (i: number): string => formatIp(t.segments[i]?.wireguardIP ?? { family: 4, value: 0n });

  test('the documented shape, IPs as strings and absent values as null', () => {
    const json: unknown = JSON.parse(JSON.stringify(topologyToJSON(t)));
    assert.deepEqual(json, {
      node: 'a',
      leader: true,
      wireguardCIDR: `${wg(0)}/16`,
      wireguardCIDRs: [`${wg(0)}/16`],
      granularity: 'location',
      subnet: '10.4.0.0/16',
      subnets: ['10.4.0.0/16'],
      segments: [
        {
          key: 'location:1',
          location: '1',
          leader: 'a',
          nodes: ['a', 'c'],
          wireguardIP: wg(0),
          wireguardIPs: [wg(0)],
          endpoint: '10.1.0.1:51820',
          publicKey: keyOf('a'),
          allowedIPs: ['10.2.1.0/24', '192.168.0.1/32', '10.2.3.0/24', '192.168.0.2/32', `${wg(0)}/32`],
          allowedLocationIPs: [],
          persistentKeepalive: 0,
        },
        {
          key: 'location:2',
          location: '2',
          leader: 'b',
          nodes: ['b'],
          wireguardIP: wg(1),
          wireguardIPs: [wg(1)],
          endpoint: '10.1.0.2:51820',
          publicKey: keyOf('b'),
          allowedIPs: ['10.2.2.0/24', '192.168.1.1/32', `${wg(1)}/32`],
          allowedLocationIPs: [],
          persistentKeepalive: 0,
        },
      ],
      peers: [{ name: 'pa', publicKey: keyOf('pa'), endpoint: null, allowedIPs: ['10.5.0.0/24'], persistentKeepalive: 0 }],
      routes: [
        { dst: '10.2.3.0/24', gw: '192.168.0.2', dev: 'tunl0', src: null, onlink: true, table: 'main' },
        { dst: '192.168.0.2/32', gw: '192.168.0.2', dev: 'tunl0', src: null, onlink: true, table: 1107 },
        { dst: '10.2.2.0/24', gw: wg(1), dev: 'wirelane0', src: '192.168.0.1', onlink: true, table: 'main' },
        { dst: '192.168.1.1/32', gw: wg(1), dev: 'wirelane0', src: '192.168.0.1', onlink: true, table: 'main' },
        { dst: '10.5.0.0/24', gw: null, dev: 'wirelane0', src: null, onlink: false, table: 'main' },
      ],
      rules: [
        { from: '10.2.1.0/24', to: '192.168.0.2/32', iif: null, table: 1107 },
        { from: null, to: '192.168.0.2/32', iif: 'wirelane0', table: 1107 },
      ],
    });
  });

  test('a non-leader reports the subnet as its WireGuard CIDR', () => {
    const json = topologyToJSON(computeTopology({ nodes, peers }, options('c')));
    assert.equal(json.leader, false);
    assert.equal(json.wireguardCIDR, '10.4.0.0/16');
  });
});
