// `wirelane status` text from the agent's /status document: ages against the agent's clock.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { AgentStatus } from '../../src/agent/status.js';
import { formatAge, formatBytes, renderStatus } from '../../src/cli/status-text.js';

const KEY_A = 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa0=';
const KEY_C = 'cccccccccccccccccccccccccccccccccccccccccc0=';
const KEY_L = 'LLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLL0=';

const document: AgentStatus = {
  node: 'a',
  version: '0.1.0',
  time: '2026-12-02T14:00:00.000Z',
  ready: true,
  notReady: null,
  healthy: true,
  serviceProxy: { mode: 'iptables', chosenBy: 'auto', reasons: ['ebpf: the kernel has no BTF'], servicePorts: 12 },
  mesh: {
    segment: 'location:east',
    leader: true,
    granularity: 'location',
    nodes: [
      { name: 'a', location: 'east', segment: 'location:east', leader: true },
      { name: 'b', location: 'east', segment: 'location:east', leader: false },
      { name: 'c', location: 'west', segment: 'location:west', leader: true },
    ],
    segments: [
      { key: 'location:east', location: 'east', leader: 'a', nodes: ['a', 'b'], endpoint: '172.31.0.10:51820', wireguardIP: '10.4.0.1', wireguardIPs: ['10.4.0.1'], publicKey: KEY_A, allowedIPs: [], allowedLocationIPs: [], persistentKeepalive: 0 },
      { key: 'location:west', location: 'west', leader: 'c', nodes: ['c'], endpoint: '172.31.0.12:51820', wireguardIP: '10.4.0.2', wireguardIPs: ['10.4.0.2'], publicKey: KEY_C, allowedIPs: ['10.244.2.0/24'], allowedLocationIPs: [], persistentKeepalive: 0 },
    ],
    peers: ['laptop'],
  },
  wireguard: {
    interface: 'wirelane0',
    error: null,
    publicKey: KEY_A,
    listenPort: 51820,
    peers: [
      { name: 'location:west', kind: 'segment', publicKey: KEY_C, endpoint: '172.31.0.12:51820', latestHandshake: '2026-12-02T13:59:18.000Z', rxBytes: 1536, txBytes: 92, allowedIPs: ['10.244.2.0/24'] },
      { name: 'laptop', kind: 'peer', publicKey: KEY_L, endpoint: null, latestHandshake: null, rxBytes: 0, txBytes: 0, allowedIPs: ['10.5.0.1/32'] },
    ],
  },
  syncs: [
    { loop: 'mesh', lastSuccess: '2026-12-02T13:59:58.000Z', lastFailure: null, dueSince: null, runningSince: null },
    { loop: 'services', lastSuccess: '2026-12-02T13:59:57.500Z', lastFailure: { at: '2026-12-02T13:55:00.000Z', error: 'services: iptables-restore: exit 4' }, dueSince: null, runningSince: null },
  ],
  sources: [
    { resource: 'Node', state: 'synced', lastSynced: '2026-12-02T13:00:00.000Z', watchingSince: '2026-12-02T13:00:00.000Z', lastError: null },
    { resource: 'Service', state: 'stale', lastSynced: '2026-12-01T10:00:00.000Z', watchingSince: null, lastError: 'list: 500 Internal Server Error' },
  ],
  lastError: { at: '2026-12-02T13:55:00.000Z', loop: 'services', error: 'services: iptables-restore: exit 4' },
};

describe('renderStatus', () => {
  test('a ready node: every part, ages against the agent clock', () => {
    assert.equal(
      renderStatus(document),
      [
        'Node:           a (wirelane 0.1.0)',
        'Ready:          yes',
        'Healthy:        yes',
        'Service proxy:  iptables (auto)',
        '                stepped down: ebpf: the kernel has no BTF',
        'Service ports:  12 programmed',
        'Mesh:           3 nodes in 2 segments (location), 1 Peer; this node leads location:east',
        '  SEGMENT        LEADER  NODES  ENDPOINT           WIREGUARD IP',
        '  location:east  a       a,b    172.31.0.10:51820  10.4.0.1',
        '  location:west  c       c      172.31.0.12:51820  10.4.0.2',
        'WireGuard:      wirelane0, port 51820, 2 peers',
        '  PEER           ENDPOINT           HANDSHAKE  RX       TX    KEY',
        '  location:west  172.31.0.12:51820  42s ago    1.5 KiB  92 B  cccccccc…',
        '  Peer laptop    -                  never      0 B      0 B   LLLLLLLL…',
        'Syncs:',
        '  LOOP      LAST SUCCESS  LAST FAILURE  DUE',
        '  mesh      2s ago        -             -',
        '  services  2s ago        5m00s ago     -',
        'Sources:',
        '  RESOURCE  STATE   LAST SYNC  ERROR',
        '  Node      synced  1h00m ago  -',
        '  Service   stale   1d04h ago  list: 500 Internal Server Error',
        'Last error:     5m00s ago (services): services: iptables-restore: exit 4',
        '',
      ].join('\n'),
    );
  });

  test('not ready, no topology, no device, services off', () => {
    const text = renderStatus({
      ...document,
      ready: false,
      notReady: 'not synced: Node (forbidden: list: 403 Forbidden)',
      healthy: false,
      serviceProxy: { mode: 'off', chosenBy: null, reasons: [], servicePorts: null },
      mesh: null,
      wireguard: { interface: 'wirelane0', error: 'wg: Unable to access interface: No such device', publicKey: null, listenPort: null, peers: [] },
      lastError: null,
    });
    assert.match(text, /^Ready: {10}no: not synced: Node \(forbidden: list: 403 Forbidden\)$/m);
    assert.match(text, /^Healthy: {8}no \(see \/healthz\)$/m);
    assert.match(text, /^Service proxy: {2}off$/m);
    assert.doesNotMatch(text, /Service ports/);
    assert.match(text, /^Mesh: {11}no topology yet$/m);
    assert.match(text, /^WireGuard: {6}wirelane0: unreadable: wg: Unable to access interface: No such device$/m);
    assert.match(text, /^Last error: {5}none$/m);
  });
});

describe('formatAge and formatBytes', () => {
  const ages: [number, string][] = [
    [-5000, '0s'],
    [999, '0s'],
    [59_999, '59s'],
    [60_000, '1m00s'],
    [3_599_000, '59m59s'],
    [3_600_000, '1h00m'],
    [86_399_000, '23h59m'],
    [90_000_000, '1d01h'],
  ];
  for (const [ms, text] of ages) test(`${ms} ms is ${text}`, () => assert.equal(formatAge(ms), text));
  test('bytes in binary units', () => {
    assert.deepEqual([0, 1023, 1024, 1536, 5 * 1024 ** 3].map(formatBytes), ['0 B', '1023 B', '1.0 KiB', '1.5 KiB', '5.0 GiB']);
  });
});
