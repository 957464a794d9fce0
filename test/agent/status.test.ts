// The /status document from what the agent holds: names for the device's peers, readiness as /readyz
// says it, the latest failure of any loop, and no key but public ones.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { buildStatus, readinessOf, type StatusInput } from '../../src/agent/status.js';
import { computeTopology } from '../../src/mesh/topology.js';
import { parseEndpoint } from '../../src/model/endpoint.js';
import { parseCidr } from '../../src/model/ip.js';
import { NEVER_SYNCED } from '../../src/agent/sync-health.js';
import { keyOf, node, options, peer } from '../mesh/builder.js';

const T0 = Date.parse('2026-12-02T14:00:00.000Z');
const topology = computeTopology(
  {
    nodes: [
      node('a', { loc: 'east', ep: '10.1.0.1:51820', ip: '192.168.0.1/24', pods: ['10.2.1.0/24'] }),
      node('b', { loc: 'east', ep: '10.1.0.2:51820', ip: '192.168.0.2/24', pods: ['10.2.2.0/24'] }),
      node('c', { loc: 'west', ep: '10.1.0.3:51820', ip: '192.168.1.1/24', pods: ['10.2.3.0/24'] }),
    ],
    peers: [peer('laptop', { ips: ['10.5.0.1/32'], psk: 'shared' })],
  },
  options('a'),
);

function input(over: Partial<StatusInput> = {}): StatusInput {
  return {
    node: 'a',
    version: '0.1.0',
    now: T0,
    readiness: { ready: true },
    healthy: true,
    serviceProxy: { mode: 'iptables', chosen: { by: 'auto', reasons: ['ebpf: no BTF'] }, servicePorts: 3 },
    topology,
    device: {
      interface: 'wirelane0',
      status: {
        publicKey: keyOf('a'),
        listenPort: 51820,
        peers: [
          { publicKey: keyOf('c'), endpoint: parseEndpoint('10.1.0.3:51820'), allowedIPs: [parseCidr('10.2.3.0/24')], latestHandshake: new Date(T0 - 42_000), rxBytes: 2048n, txBytes: 10n },
          { publicKey: keyOf('laptop'), allowedIPs: [parseCidr('10.5.0.1/32')], rxBytes: 0n, txBytes: 0n },
          { publicKey: keyOf('stranger'), allowedIPs: [], rxBytes: 0n, txBytes: 0n },
        ],
      },
    },
    loops: [
      { loop: 'mesh', state: { ...NEVER_SYNCED, lastSuccess: T0 - 1000, lastFailure: { at: T0 - 60_000, error: `wireguard: wg set: bad key ${keyOf('a')}\nmore` } } },
      { loop: 'services', state: { ...NEVER_SYNCED, lastSuccess: T0 - 2000, lastFailure: { at: T0 - 5_000, error: 'services: iptables-restore: exit 4' } } },
    ],
    resources: [{ kind: 'Node', state: 'synced', settled: true, lastSynced: T0 - 30_000 }],
    ...over,
  };
}

describe('buildStatus', () => {
  test('the device peers are named by the segment or Peer holding their key', () => {
    const s = buildStatus(input());
    assert.deepEqual(
      s.wireguard.peers.map((p) => [p.name, p.kind, p.endpoint, p.latestHandshake, p.rxBytes]),
      [
        ['location:west', 'segment', '10.1.0.3:51820', '2026-12-02T13:59:18.000Z', 2048],
        ['laptop', 'peer', null, null, 0],
        [null, null, null, null, 0],
      ],
    );
    assert.equal(s.wireguard.listenPort, 51820);
  });

  test('mesh: segments with their leaders, every node with its segment', () => {
    const s = buildStatus(input());
    assert.deepEqual(s.mesh?.segments.map((g) => [g.key, g.leader, g.nodes]), [
      ['location:east', 'a', ['a', 'b']],
      ['location:west', 'c', ['c']],
    ]);
    assert.deepEqual(s.mesh?.nodes.map((n) => [n.name, n.segment, n.leader]), [
      ['a', 'location:east', true],
      ['b', 'location:east', false],
      ['c', 'location:west', true],
    ]);
    assert.equal(s.mesh?.leader, true);
    assert.deepEqual(s.mesh?.peers, ['laptop']);
  });

  test('service proxy: the mode, how it was chosen, the ports programmed; off has none', () => {
    assert.deepEqual(buildStatus(input()).serviceProxy, { mode: 'iptables', chosenBy: 'auto', reasons: ['ebpf: no BTF'], servicePorts: 3 });
    assert.deepEqual(buildStatus(input({ serviceProxy: undefined })).serviceProxy, { mode: 'off', chosenBy: null, reasons: [], servicePorts: null });
  });

  test('the last error is the latest failure of any loop; key-shaped text is masked', () => {
    const s = buildStatus(input());
    assert.deepEqual(s.lastError, { at: '2026-12-02T13:59:55.000Z', loop: 'services', error: 'services: iptables-restore: exit 4' });
    assert.equal(s.syncs[0]?.lastFailure?.error, 'wireguard: wg set: bad key (key)');
    assert.equal(s.syncs[0]?.lastSuccess, '2026-12-02T13:59:59.000Z');
  });

  test('no private or preshared key anywhere in the document', () => {
    const text = JSON.stringify(buildStatus(input()));
    const keys = [...text.matchAll(/[A-Za-z0-9+/]{43}=/g)].map((m) => m[0]);
    assert.deepEqual(new Set(keys), new Set([keyOf('a'), keyOf('c'), keyOf('laptop'), keyOf('stranger')]));
    assert.ok(!text.includes(keyOf('shared')));
  });

  test('a device that cannot be read, no topology yet', () => {
    const s = buildStatus(input({ topology: undefined, device: { interface: 'wirelane0', error: 'wg: Unable to access interface' } }));
    assert.equal(s.mesh, null);
    assert.deepEqual(s.wireguard, { interface: 'wirelane0', error: 'wg: Unable to access interface', publicKey: null, listenPort: null, peers: [] });
  });

  test('sources: state and last sync per resource', () => {
    assert.deepEqual(buildStatus(input()).sources, [{ resource: 'Node', state: 'synced', lastSynced: '2026-12-02T13:59:30.000Z', watchingSince: null, lastError: null }]);
  });
});

describe('readinessOf', () => {
  test("/readyz's rule: unsynced resources first, then the first apply", () => {
    assert.deepEqual(readinessOf(['Service (forbidden)'], false), { ready: false, reason: 'not synced: Service (forbidden)' });
    assert.deepEqual(readinessOf([], false), { ready: false, reason: 'no successful apply yet' });
    assert.deepEqual(readinessOf([], true), { ready: true });
  });
});
