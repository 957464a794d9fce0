import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatEndpoint } from '../../src/model/endpoint.js';
import { formatCidr } from '../../src/model/ip.js';
import { generatePrivateKey, publicKeyOf } from '../../src/model/key.js';
import { decodePeer } from '../../src/sources/peer.js';

const KEY = publicKeyOf(generatePrivateKey());
const peer = (spec: Record<string, unknown>) => ({ apiVersion: 'wirelane.io/v1alpha1', kind: 'Peer', metadata: { name: 'laptop' }, spec });

test('a valid Peer decodes with every field', () => {
  const psk = generatePrivateKey();
  const p = decodePeer(peer({ allowedIPs: ['10.5.0.1/32', 'fd05::1/128'], publicKey: KEY, endpoint: '1.2.3.4:51820', persistentKeepalive: 10, presharedKey: psk }));
  assert.equal(p.name, 'laptop');
  assert.deepEqual(p.allowedIPs.map(formatCidr), ['10.5.0.1/32', 'fd05::1/128']);
  assert.equal(p.publicKey, KEY);
  assert.equal(p.endpoint && formatEndpoint(p.endpoint), '1.2.3.4:51820');
  assert.equal(p.persistentKeepalive, 10);
  assert.equal(p.presharedKey, psk);
});

test("Kilo's endpoint shape {dnsOrIP, port} is accepted", () => {
  const ip = decodePeer(peer({ allowedIPs: ['10.5.0.1/32'], publicKey: KEY, endpoint: { dnsOrIP: { ip: 'fd00::1' }, port: 7 } }));
  assert.equal(ip.endpoint && formatEndpoint(ip.endpoint), '[fd00::1]:7');
  const dns = decodePeer(peer({ allowedIPs: ['10.5.0.1/32'], publicKey: KEY, endpoint: { dnsOrIP: { dns: 'vpn.example.com' }, port: 7 } }));
  assert.equal(dns.endpoint && formatEndpoint(dns.endpoint), 'vpn.example.com:7');
  const none = decodePeer(peer({ allowedIPs: ['10.5.0.1/32'], publicKey: KEY }));
  assert.equal(none.endpoint, undefined);
  assert.equal(none.persistentKeepalive, 0);
});

test('a malformed Peer is rejected with the field at fault', () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ publicKey: KEY }, /spec.allowedIPs: want a non-empty list/],
    [{ allowedIPs: [], publicKey: KEY }, /spec.allowedIPs: want a non-empty list/],
    [{ allowedIPs: ['10.5.0.1/32', 'x'], publicKey: KEY }, /spec.allowedIPs\[1\]: "x" is not a CIDR/],
    [{ allowedIPs: ['10.5.0.1/32'], publicKey: 'nope' }, /spec.publicKey: not a WireGuard key/],
    [{ allowedIPs: ['10.5.0.1/32'], publicKey: KEY, persistentKeepalive: -3 }, /spec.persistentKeepalive/],
    [{ allowedIPs: ['10.5.0.1/32'], publicKey: KEY, presharedKey: 'short' }, /spec.presharedKey/],
    [{ allowedIPs: ['10.5.0.1/32'], publicKey: KEY, endpoint: '1.2.3.4' }, /spec.endpoint: .*want host:port/],
    [{ allowedIPs: ['10.5.0.1/32'], publicKey: KEY, endpoint: { port: 1 } }, /spec.endpoint/],
  ];
  for (const [spec, want] of cases) assert.throws(() => decodePeer(peer(spec)), want);
  assert.throws(() => decodePeer({ metadata: { name: 'x' } }), /Peer "x": spec: missing/);
});
