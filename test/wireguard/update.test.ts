import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseEndpoint } from '../../src/model/endpoint.js';
import { parseCidr } from '../../src/model/ip.js';
import { type WireGuardKey, generatePrivateKey, publicKeyOf } from '../../src/model/key.js';
import { ZERO_KEY, diffConfig } from '../../src/wireguard/compare.js';
import { parseConfig } from '../../src/wireguard/conf-text.js';
import type { WireGuardConfig, WireGuardPeer } from '../../src/wireguard/config.js';
import { planWrites } from '../../src/wireguard/update.js';

const keys = [0, 1, 2, 3].map(() => publicKeyOf(generatePrivateKey())).sort() as [WireGuardKey, WireGuardKey, WireGuardKey, WireGuardKey];
const [A, B, C, D] = keys;
const PSK = generatePrivateKey();
const cidrs = (...texts: string[]) => texts.map(parseCidr);
const peer = (publicKey: WireGuardKey, fields: Partial<WireGuardPeer> = {}): WireGuardPeer => ({ publicKey, allowedIPs: [], ...fields });

test('nothing to write for an unchanged config', () => {
  const same: WireGuardConfig = { interface: {}, peers: [peer(A, { allowedIPs: cidrs('10.0.0.0/24') })] };
  assert.deepEqual(planWrites(diffConfig(same, same)), { setArgs: [], addconf: undefined });
});

test('removals and emptied allowed IPs go to wg set; the rest to addconf with only changed fields', () => {
  const current: WireGuardConfig = {
    interface: { listenPort: 51820, fwMark: 7 },
    peers: [
      peer(A, { allowedIPs: cidrs('10.0.1.0/24'), presharedKey: PSK, persistentKeepalive: 25, endpoint: parseEndpoint('192.0.2.1:1') }),
      peer(B, { allowedIPs: cidrs('10.0.2.0/24') }),
      peer(C, { allowedIPs: cidrs('10.0.3.0/24') }),
    ],
  };
  const desired: WireGuardConfig = {
    interface: { listenPort: 51820 },
    peers: [
      peer(A, { allowedIPs: cidrs('10.0.1.0/24', '10.0.4.1/24'), endpoint: parseEndpoint('192.0.2.1:1') }),
      peer(B),
      peer(D, { allowedIPs: cidrs('10.0.5.0/24'), endpoint: parseEndpoint('[2001:db8::5]:51820'), presharedKey: PSK, persistentKeepalive: 5 }),
    ],
  };
  const writes = planWrites(diffConfig(current, desired));
  assert.deepEqual(writes.setArgs, ['peer', C, 'remove', 'peer', B, 'allowed-ips', '']);
  assert.equal(
    writes.addconf,
    `[Interface]
FwMark = off

[Peer]
PublicKey = ${A}
PresharedKey = ${ZERO_KEY}
AllowedIPs = 10.0.1.0/24, 10.0.4.0/24
PersistentKeepalive = off

[Peer]
PublicKey = ${D}
PresharedKey = ${PSK}
AllowedIPs = 10.0.5.0/24
Endpoint = [2001:db8::5]:51820
PersistentKeepalive = 5
`,
  );
  // What addconf receives is valid `wg` config text.
  assert.equal(parseConfig(writes.addconf as string).peers.length, 2);
});

test('a new peer with nothing but its key still gets a section; interface keys are written when they change', () => {
  const privateKey = generatePrivateKey();
  const writes = planWrites(diffConfig({ interface: {}, peers: [] }, { interface: { privateKey, listenPort: 4, fwMark: 255 }, peers: [peer(A)] }));
  assert.deepEqual(writes.setArgs, []);
  assert.equal(writes.addconf, `[Interface]\nPrivateKey = ${privateKey}\nListenPort = 4\nFwMark = 0xff\n\n[Peer]\nPublicKey = ${A}\n`);
});

test('a section for an endpoint or keepalive change carries the whole AllowedIPs list: wg replaces it for every [Peer] section', () => {
  const allowedIPs = cidrs('10.0.1.0/24', '10.4.0.1/32');
  const current: WireGuardConfig = { interface: {}, peers: [peer(A, { allowedIPs, endpoint: parseEndpoint('192.0.2.1:51820') }), peer(B, { allowedIPs: cidrs('10.0.2.0/24') })] };
  const desired: WireGuardConfig = { interface: {}, peers: [peer(A, { allowedIPs, endpoint: parseEndpoint('192.0.2.9:51820') }), peer(B, { allowedIPs: cidrs('10.0.2.0/24'), persistentKeepalive: 25 })] };
  const diff = diffConfig(current, desired);
  assert.deepEqual(diff.upsertPeers.map((u) => u.fields), [['endpoint'], ['persistentKeepalive']]);
  const text = planWrites(diff).addconf ?? '';
  assert.equal(
    text,
    `[Peer]\nPublicKey = ${A}\nAllowedIPs = 10.0.1.0/24, 10.4.0.1/32\nEndpoint = 192.0.2.9:51820\n\n[Peer]\nPublicKey = ${B}\nAllowedIPs = 10.0.2.0/24\nPersistentKeepalive = 25\n`,
  );
});
