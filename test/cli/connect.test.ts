// `wirelane connect`'s pure parts: its flags, the Peer object it registers, and showconf peer
// agreeing on the service CIDRs. The whole command runs in test/integration/connect.test.ts.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseConnectFlags } from '../../src/cli/connect.js';
import type { Values } from '../../src/cli/command.js';
import { formatCidr } from '../../src/model/ip.js';
import { generatePrivateKey, publicKeyOf } from '../../src/model/key.js';
import { cliPath } from '../../src/sandbox/mesh-cluster.js';
import { decodePeer, peerObject } from '../../src/sources/peer.js';

const FIXTURE = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..', 'fixtures', 'cluster.yaml');

const DEFAULTS: Values = {
  'persistent-keepalive': '10',
  interface: 'wirelane-peer0',
  mtu: '1420',
  'state-dir': '/var/lib/wirelane',
  kubeconfig: '/tmp/kubeconfig',
  'resync-period': '30s',
  'topology-label': 'topology.kubernetes.io/region',
};
const parse = (over: Values, positionals = ['laptop']) => parseConnectFlags({ ...DEFAULTS, ...over }, positionals);

test('the flags give the Peer to register and where its key lives', () => {
  const flags = parse({ 'allowed-ip': ['10.5.0.1/32', 'fd05::1'], 'persistent-keepalive': '0' });
  assert.equal(flags.peer.name, 'laptop');
  assert.deepEqual(flags.peer.allowedIPs.map(formatCidr), ['10.5.0.1/32', 'fd05::1/128'], 'a bare address is one address');
  assert.equal(flags.peer.persistentKeepalive, 0);
  assert.equal(flags.keyFile, '/var/lib/wirelane/peer-laptop.key');
  assert.equal(parse({ 'allowed-ip': ['10.5.0.1'], 'key-file': '/etc/wl/k' }).keyFile, '/etc/wl/k');
  assert.equal(flags.resyncPeriodMs, 30_000);
  assert.equal(flags.interface, 'wirelane-peer0');
});

test('bad flags are usage errors naming the flag', () => {
  const cases: [Values, string[], RegExp][] = [
    [{}, ['laptop'], /--allowed-ip is required/],
    [{ 'allowed-ip': ['10.5.0.0/24'] }, ['laptop'], /--allowed-ip: 10\.5\.0\.0\/24 is not one address \(\/32\)/],
    [{ 'allowed-ip': ['10.5.0.1/32', '10.5.0.2/32'] }, ['laptop'], /at most one address per family/],
    [{ 'allowed-ip': ['10.5.0.300'] }, ['laptop'], /--allowed-ip: /],
    [{ 'allowed-ip': ['10.5.0.1'] }, [], /want: connect NAME/],
    [{ 'allowed-ip': ['10.5.0.1'] }, ['a', 'b'], /want: connect NAME/],
    [{ 'allowed-ip': ['10.5.0.1'] }, ['Laptop_1'], /not a Kubernetes object name/],
    [{ 'allowed-ip': ['10.5.0.1'] }, ['../key'], /not a Kubernetes object name/],
    [{ 'allowed-ip': ['10.5.0.1'], 'persistent-keepalive': '-1' }, ['laptop'], /--persistent-keepalive: "-1"/],
    [{ 'allowed-ip': ['10.5.0.1'], interface: 'much-too-long-name' }, ['laptop'], /--interface: "much-too-long-name"/],
    [{ 'allowed-ip': ['10.5.0.1'], mtu: '100' }, ['laptop'], /--mtu: "100"/],
  ];
  for (const [values, positionals, message] of cases) assert.throws(() => parse(values, positionals), { name: 'UsageError', message }, JSON.stringify(values));
});

test('the Peer object decodes back to what was registered', () => {
  const publicKey = publicKeyOf(generatePrivateKey());
  const flags = parse({ 'allowed-ip': ['10.5.0.1/32', 'fd05::1/128'], 'persistent-keepalive': '25' });
  const object = peerObject({ ...flags.peer, publicKey });
  assert.deepEqual(object, {
    apiVersion: 'wirelane.io/v1alpha1',
    kind: 'Peer',
    metadata: { name: 'laptop' },
    spec: { allowedIPs: ['10.5.0.1/32', 'fd05::1/128'], publicKey, persistentKeepalive: 25 },
  });
  const decoded = decodePeer(object);
  assert.deepEqual({ ...decoded, allowedIPs: decoded.allowedIPs.map(formatCidr) }, { name: 'laptop', allowedIPs: ['10.5.0.1/32', 'fd05::1/128'], publicKey, persistentKeepalive: 25 });
  assert.equal('persistentKeepalive' in (peerObject({ ...flags.peer, persistentKeepalive: 0, publicKey }).spec), false, 'no keepalive, no field');
});

test('showconf peer --service-cidr gives the range to the first node\'s segment, as connect does', () => {
  const r = spawnSync(process.execPath, [cliPath(), 'showconf', 'peer', 'laptop', '--from', FIXTURE, '--service-cidr', '10.96.0.0/12'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const allowed = r.stdout.split('\n').filter((l) => l.startsWith('AllowedIPs = '));
  assert.equal(allowed.length, 2);
  assert.match(allowed[0] ?? '', /^AllowedIPs = 10\.2\.1\.0\/24, .*10\.96\.0\.0\/12/, 'segment location:1 holds node a');
  assert.doesNotMatch(allowed[1] ?? '', /10\.96\.0\.0\/12/);
});

test('connect\'s usage errors are one line with exit code 2', () => {
  const r = spawnSync(process.execPath, [cliPath(), 'connect', 'laptop', '--kubeconfig', '/nonexistent', '--allowed-ip', '10.5.0.0/24'], { encoding: 'utf8' });
  assert.equal(r.status, 2);
  assert.equal(r.stderr, 'wirelane: --allowed-ip: 10.5.0.0/24 is not one address (/32)\n');
  const help = spawnSync(process.execPath, [cliPath(), 'connect', '--help'], { encoding: 'utf8' });
  assert.equal(help.status, 0);
  assert.match(help.stdout, /^Usage: wirelane connect NAME/);
});
