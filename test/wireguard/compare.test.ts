import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseEndpoint } from '../../src/model/endpoint.js';
import { parseCidr } from '../../src/model/ip.js';
import { type WireGuardKey, generatePrivateKey, publicKeyOf } from '../../src/model/key.js';
import { ZERO_KEY, describeDiff, diffConfig, equalConfig } from '../../src/wireguard/compare.js';
import type { WireGuardConfig, WireGuardPeer } from '../../src/wireguard/config.js';
import { WireGuardConfigError, checkConfig } from '../../src/wireguard/validate.js';

const PRIVATE = generatePrivateKey();
const [A, B, C] = [0, 1, 2].map(() => publicKeyOf(generatePrivateKey())) as [WireGuardKey, WireGuardKey, WireGuardKey];
const PSK = generatePrivateKey();

const cidrs = (...texts: string[]) => texts.map(parseCidr);
const peer = (publicKey: WireGuardKey, fields: Partial<WireGuardPeer> = {}): WireGuardPeer => ({ publicKey, allowedIPs: [], ...fields });
const config = (peers: WireGuardPeer[], iface: WireGuardConfig['interface'] = { privateKey: PRIVATE, listenPort: 51820 }): WireGuardConfig => ({
  interface: iface,
  peers,
});

const BASE = config([
  peer(A, { allowedIPs: cidrs('10.0.1.0/24', '10.4.0.1/32'), endpoint: parseEndpoint('192.0.2.1:51820'), persistentKeepalive: 25 }),
  peer(B, { allowedIPs: cidrs('10.0.2.0/24'), presharedKey: PSK }),
]);

test('configs that differ only in form are equal', () => {
  const cases: [string, WireGuardConfig][] = [
    ['peers reordered', config([...BASE.peers].reverse())],
    ['allowed IPs reordered', config([peer(A, { ...BASE.peers[0], allowedIPs: cidrs('10.4.0.1/32', '10.0.1.0/24') }), BASE.peers[1] as WireGuardPeer])],
    ['host bits set, as wg masks them', config([peer(A, { ...BASE.peers[0], allowedIPs: cidrs('10.0.1.77/24', '10.4.0.1/32') }), BASE.peers[1] as WireGuardPeer])],
    ['an allowed IP repeated', config([peer(A, { ...BASE.peers[0], allowedIPs: cidrs('10.0.1.0/24', '10.4.0.1/32', '10.0.1.0/24') }), BASE.peers[1] as WireGuardPeer])],
    ['fwmark 0', config(BASE.peers as WireGuardPeer[], { ...BASE.interface, fwMark: 0 })],
  ];
  for (const [name, other] of cases) {
    assert.ok(equalConfig(BASE, other), name);
    assert.ok(equalConfig(other, BASE), `${name} (reversed)`);
    assert.equal(diffConfig(BASE, other).changed, false, name);
  }
});

test('keepalive 0 and a zero preshared key are the same as none', () => {
  const bare = config([peer(C, { allowedIPs: cidrs('10.9.0.0/16') })]);
  const explicit = config([peer(C, { allowedIPs: cidrs('10.9.0.0/16'), persistentKeepalive: 0, presharedKey: ZERO_KEY })]);
  assert.ok(equalConfig(bare, explicit));
  assert.equal(diffConfig(bare, explicit).changed, false);
  assert.equal(diffConfig(explicit, bare).changed, false);
});

test('configs that differ in substance are not equal', () => {
  const [a, b] = BASE.peers as [WireGuardPeer, WireGuardPeer];
  const cases: [string, WireGuardConfig][] = [
    ['another private key', config([a, b], { ...BASE.interface, privateKey: generatePrivateKey() })],
    ['no private key', config([a, b], { listenPort: 51820 })],
    ['another listen port', config([a, b], { ...BASE.interface, listenPort: 51821 })],
    ['a fwmark', config([a, b], { ...BASE.interface, fwMark: 1 })],
    ['a peer fewer', config([a])],
    ['a peer more', config([a, b, peer(C)])],
    ['another allowed-IP prefix length', config([{ ...a, allowedIPs: cidrs('10.0.1.0/25', '10.4.0.1/32') }, b])],
    ['an allowed IP fewer', config([{ ...a, allowedIPs: cidrs('10.0.1.0/24') }, b])],
    ['another endpoint port', config([{ ...a, endpoint: parseEndpoint('192.0.2.1:51821') }, b])],
    ['no endpoint', config([peer(A, { allowedIPs: a.allowedIPs, persistentKeepalive: 25 }), b])],
    ['another keepalive', config([{ ...a, persistentKeepalive: 10 }, b])],
    ['no preshared key', config([a, peer(B, { allowedIPs: b.allowedIPs })])],
  ];
  for (const [name, other] of cases) {
    assert.equal(equalConfig(BASE, other), false, name);
    assert.equal(equalConfig(other, BASE), false, `${name} (reversed)`);
  }
});

test('the diff names removed peers, new peers and only the changed fields of existing ones', () => {
  const [a] = BASE.peers as [WireGuardPeer];
  const desired = config([
    { ...a, allowedIPs: cidrs('10.0.1.0/24'), persistentKeepalive: undefined },
    peer(C, { allowedIPs: cidrs('10.0.3.0/24'), endpoint: parseEndpoint('[2001:db8::3]:51820') }),
  ]);
  const diff = diffConfig(BASE, desired);
  assert.equal(diff.changed, true);
  assert.deepEqual(diff.interface, {});
  assert.deepEqual(diff.removePeers, [B]);
  const byKey = new Map(diff.upsertPeers.map((u) => [u.peer.publicKey, u]));
  assert.deepEqual(byKey.get(A)?.fields, ['allowedIPs', 'persistentKeepalive']);
  assert.equal(byKey.get(A)?.created, false);
  assert.deepEqual(byKey.get(C)?.fields, ['endpoint', 'allowedIPs']);
  assert.equal(byKey.get(C)?.created, true);
});

test('interface fields: absent private key and listen port are kept, fwmark absent means off', () => {
  const current = config([], { privateKey: PRIVATE, listenPort: 40000, fwMark: 0x10 });
  const diff = diffConfig(current, config([], {}));
  assert.deepEqual(diff.interface, { fwMark: 0 });
  const other = generatePrivateKey();
  assert.deepEqual(diffConfig(current, config([], { privateKey: other, listenPort: 51820, fwMark: 0x10 })).interface, {
    privateKey: other,
    listenPort: 51820,
  });
});

test('a desired peer without an endpoint keeps the one the device learned', () => {
  const learned = config([peer(A, { endpoint: parseEndpoint('198.51.100.7:40001'), allowedIPs: cidrs('10.0.1.0/24') })]);
  const desired = config([peer(A, { allowedIPs: cidrs('10.0.1.0/24') })]);
  assert.equal(diffConfig(learned, desired).changed, false);
});

test('ignoreEndpointOf lets a roaming peer keep its endpoint, but a new peer still gets one', () => {
  const roamed = config([peer(A, { endpoint: parseEndpoint('198.51.100.7:40001'), allowedIPs: cidrs('10.0.1.0/24') })]);
  const desired = config([
    peer(A, { endpoint: parseEndpoint('192.0.2.1:51820'), allowedIPs: cidrs('10.0.1.0/24', '10.0.9.0/24') }),
    peer(B, { endpoint: parseEndpoint('192.0.2.2:51820') }),
  ]);
  assert.deepEqual(
    diffConfig(roamed, desired).upsertPeers.find((u) => u.peer.publicKey === A)?.fields,
    ['endpoint', 'allowedIPs'],
  );
  const diff = diffConfig(roamed, desired, { ignoreEndpointOf: new Set([A, B]) });
  const [updateA, updateB] = [A, B].map((key) => diff.upsertPeers.find((u) => u.peer.publicKey === key));
  assert.deepEqual(updateA?.fields, ['allowedIPs']);
  assert.equal(updateA?.peer.endpoint, undefined, 'the write must not carry the configured endpoint');
  assert.deepEqual(updateB?.fields, ['endpoint']);
  assert.equal(diffConfig(roamed, config([peer(A, desired.peers[0])]), { ignoreEndpointOf: new Set([A]) }).changed, true);
  const sameIPs = config([peer(A, { endpoint: parseEndpoint('192.0.2.1:51820'), allowedIPs: cidrs('10.0.1.0/24') })]);
  assert.equal(diffConfig(roamed, sameIPs, { ignoreEndpointOf: new Set([A]) }).changed, false);
});

test('ignoreEndpointOf still writes an endpoint to a roaming peer the device has none for (discovered after it was added)', () => {
  const unknown = config([peer(A, { allowedIPs: cidrs('10.5.0.1/32') })]);
  const discovered = config([peer(A, { endpoint: parseEndpoint('198.51.100.4:51820'), allowedIPs: cidrs('10.5.0.1/32') })]);
  const diff = diffConfig(unknown, discovered, { ignoreEndpointOf: new Set([A]) });
  assert.deepEqual(diff.upsertPeers.map((u) => [u.fields, u.peer.endpoint]), [[['endpoint'], parseEndpoint('198.51.100.4:51820')]]);
});

test('a DNS-named desired endpoint differs from the resolved IP the device shows (resolve first)', () => {
  const current = config([peer(A, { endpoint: parseEndpoint('192.0.2.1:51820') })]);
  const desired = config([peer(A, { endpoint: parseEndpoint('node-a.example.com:51820') })]);
  assert.deepEqual(diffConfig(current, desired).upsertPeers[0]?.fields, ['endpoint']);
});

test('describeDiff names public keys and fields, never private or preshared keys', () => {
  const desired = config([peer(B, { allowedIPs: cidrs('10.0.2.0/24'), presharedKey: generatePrivateKey() }), peer(C)], {
    privateKey: generatePrivateKey(),
  });
  const diff = diffConfig(BASE, desired);
  const lines = describeDiff(diff);
  const upserts = new Map([
    [B, `peer ${B}: set presharedKey (allowed IPs 10.0.2.0/24)`],
    [C, `peer ${C}: add (allowed IPs (none))`],
  ]);
  // Upserts come ordered by public key.
  assert.deepEqual(lines, ['interface: set privateKey', `peer ${A}: remove`, ...[B, C].sort().map((key) => upserts.get(key))]);
  const text = lines.join('\n');
  assert.ok(!text.includes(desired.interface.privateKey as string));
  assert.ok(!text.includes(desired.peers[0]?.presharedKey as string));
});

test('checkConfig rejects a public key twice and an allowed IP on two peers', () => {
  assert.throws(() => checkConfig(config([peer(A), peer(A)])), (e: Error) => e instanceof WireGuardConfigError && e.message.includes(`peer "${A}": public key appears twice`));
  assert.throws(
    () => checkConfig(config([peer(A, { allowedIPs: cidrs('10.0.0.0/24') }), peer(B, { allowedIPs: cidrs('10.0.0.9/24') })])),
    /allowed IP 10\.0\.0\.0\/24 is also on peer/,
  );
  checkConfig(config([peer(A, { allowedIPs: cidrs('10.0.0.0/16') }), peer(B, { allowedIPs: cidrs('10.0.0.0/24') })]));
});
