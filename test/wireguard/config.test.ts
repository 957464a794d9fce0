import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseEndpoint } from '../../src/model/endpoint.js';
import { ParseError, parseCidr } from '../../src/model/ip.js';
import { parseKey } from '../../src/model/key.js';
import { equalConfig } from '../../src/wireguard/compare.js';
import { ConfigLineError, parseConfig, renderConfig, renderConfigForDisplay } from '../../src/wireguard/conf-text.js';
import type { WireGuardConfig } from '../../src/wireguard/config.js';

// Throwaway keys from a wireguard-go device built while writing this module.
const PRIVATE = parseKey('6MlvShShGCpBTFfqLK+A6ln3I0RQ7WFhl2OyaQ4fp0s=');
const PEER_A = parseKey('Eo/LipsAUg9GDdwvOdqPpKn+vPRmLWEVVeUh8jZ+nE8=');
const PEER_B = parseKey('1jkOoAMiddIiin+WHr3PIj1xEh6/X5sCmPSgXKRIbEs=');
const PSK = parseKey('94nq73zwIPyxtATxTtq6+/WFYKW7wXfBn4p4xI7uEI8=');

// `wg showconf` of that device after `wg setconf` with AllowedIPs 10.1.2.3/24, fd00::1/64 and a
// second AllowedIPs line 10.9.9.9/32: wg masks host bits and merges the lines.
const SHOWCONF = `[Interface]
ListenPort = 51820
FwMark = 0x10
PrivateKey = ${PRIVATE}

[Peer]
PublicKey = ${PEER_A}
PresharedKey = ${PSK}
AllowedIPs = 10.1.2.0/24, fd00::/64, 10.9.9.9/32
Endpoint = [fd00::5]:51820
PersistentKeepalive = 25

[Peer]
PublicKey = ${PEER_B}
Endpoint = 192.168.1.1:1234
`;

const FULL: WireGuardConfig = {
  interface: { privateKey: PRIVATE, listenPort: 51820, fwMark: 16 },
  peers: [
    { publicKey: PEER_B, endpoint: parseEndpoint('192.168.1.1:1234'), allowedIPs: [] },
    {
      publicKey: PEER_A,
      presharedKey: PSK,
      endpoint: parseEndpoint('[fd00::5]:51820'),
      allowedIPs: ['10.9.9.9/32', 'fd00::1/64', '10.1.2.3/24'].map(parseCidr),
      persistentKeepalive: 25,
    },
  ],
};

test('rendering is canonical: peers by key, allowed IPs masked and ordered, IPv6 endpoints in brackets', () => {
  assert.equal(
    renderConfig(FULL),
    `[Interface]
PrivateKey = ${PRIVATE}
ListenPort = 51820
FwMark = 0x10

[Peer]
PublicKey = ${PEER_B}
Endpoint = 192.168.1.1:1234

[Peer]
PublicKey = ${PEER_A}
PresharedKey = ${PSK}
AllowedIPs = 10.1.2.0/24, 10.9.9.9/32, fd00::/64
Endpoint = [fd00::5]:51820
PersistentKeepalive = 25
`,
  );
});

test('rendering leaves out an absent private key, keepalive 0 and fwmark 0', () => {
  const config: WireGuardConfig = {
    interface: { fwMark: 0 },
    peers: [{ publicKey: PEER_A, allowedIPs: [parseCidr('10.0.0.1/32')], persistentKeepalive: 0 }],
  };
  assert.equal(renderConfig(config), `[Interface]\n\n[Peer]\nPublicKey = ${PEER_A}\nAllowedIPs = 10.0.0.1/32\n`);
});

test('rendering does not depend on the order of peers or allowed IPs', () => {
  const reordered: WireGuardConfig = {
    interface: FULL.interface,
    peers: [...FULL.peers].reverse().map((p) => ({ ...p, allowedIPs: [...p.allowedIPs].reverse() })),
  };
  assert.equal(renderConfig(reordered), renderConfig(FULL));
});

test('display rendering hides private and preshared keys but keeps public keys', () => {
  const shown = renderConfigForDisplay(FULL);
  assert.ok(!shown.includes(PRIVATE), 'private key shown');
  assert.ok(!shown.includes(PSK), 'preshared key shown');
  assert.match(shown, /^PrivateKey = \(hidden\)$/m);
  assert.match(shown, /^PresharedKey = \(hidden\)$/m);
  assert.ok(shown.includes(PEER_A) && shown.includes(PEER_B));
  assert.equal(renderConfig(FULL, { hideKeys: true }), shown);
});

test('real wg showconf output parses into the config that was written', () => {
  const parsed = parseConfig(SHOWCONF);
  assert.deepEqual(parsed.interface, { listenPort: 51820, fwMark: 16, privateKey: PRIVATE });
  assert.equal(parsed.peers.length, 2);
  assert.ok(equalConfig(parsed, FULL));
  const [a] = parsed.peers;
  assert.deepEqual(a?.allowedIPs, ['10.1.2.0/24', 'fd00::/64', '10.9.9.9/32'].map(parseCidr));
  assert.deepEqual(a?.endpoint, parseEndpoint('[fd00::5]:51820'));
});

test('render and parse round-trip', () => {
  const text = renderConfig(FULL);
  const parsed = parseConfig(text);
  assert.ok(equalConfig(parsed, FULL));
  assert.equal(renderConfig(parsed), text);
  assert.equal(renderConfig(parseConfig(SHOWCONF)), text);
});

test('parsing accepts any key case, comments, blank lines, CRLF, repeated AllowedIPs, (none) and off', () => {
  const text = [
    '# written by hand',
    '[interface]',
    'privatekey=' + PRIVATE + '   # trailing comment',
    'LISTENPORT = 1',
    'fwmark = off',
    '',
    '  [ Peer ]  ',
    'publickey = ' + PEER_A,
    'PresharedKey = (none)',
    'AllowedIPs = 10.0.0.0/8,',
    'allowedips = 10.1.0.0/16 , fd00::/8',
    'AllowedIPs = (none)',
    'AllowedIPs = 192.168.0.1',
    'Endpoint = (none)',
    'PersistentKeepalive = off',
    '[Peer]',
    'PublicKey = ' + PEER_B,
    'Endpoint = [2001:db8::1]:443',
    'PersistentKeepalive = 0x19',
  ].join('\r\n');
  const config = parseConfig(text);
  assert.deepEqual(config.interface, { privateKey: PRIVATE, listenPort: 1, fwMark: 0 });
  const [a, b] = config.peers;
  assert.deepEqual(a, {
    publicKey: PEER_A,
    allowedIPs: ['10.0.0.0/8', '10.1.0.0/16', 'fd00::/8', '192.168.0.1/32'].map(parseCidr),
    persistentKeepalive: 0,
  });
  assert.deepEqual(b, { publicKey: PEER_B, allowedIPs: [], endpoint: parseEndpoint('[2001:db8::1]:443'), persistentKeepalive: 25 });
  assert.deepEqual(parseConfig(''), { interface: {}, peers: [] });
});

test('a malformed line is a ParseError naming its line number', () => {
  const cases: [string, number, RegExp][] = [
    ['PrivateKey = x', 1, /outside \[Interface\] or \[Peer\]/],
    ['[Interface]\nPrivateKey = notakey', 2, /PrivateKey is not a WireGuard key/],
    ['[Interface]\n\nListenPort = 70000', 3, /ListenPort "70000" is not a number in 0\.\.65535/],
    ['[Interface]\nFwMark = red', 2, /FwMark "red"/],
    ['[Interface]\nAddress = 10.0.0.1/24', 2, /unknown \[Interface\] key "Address"/],
    ['[Interface]\nthis is not a key value', 2, /expected "Key = Value"/],
    ['[Wireguard]', 1, /unknown section \[Wireguard\]/],
    [`[Peer]\nPublicKey = ${PEER_A}\nAllowedIPs = 10.0.0.0/8, 10.0.0.300/32`, 3, /AllowedIPs entry "10\.0\.0\.300\/32" is not a CIDR/],
    [`[Peer]\nPublicKey = ${PEER_A}\nAllowedIPs = 10.0.0.0/33`, 3, /not a CIDR/],
    [`[Peer]\nPublicKey = ${PEER_A}\nEndpoint = fd00::1:51820`, 3, /Endpoint "fd00::1:51820" is not host:port/],
    [`[Peer]\nPublicKey = ${PEER_A}\nPersistentKeepalive = -1`, 3, /PersistentKeepalive "-1"/],
    [`[Peer]\nPublicKey = ${PEER_A}\nPersistentKeepalive = 65536`, 3, /PersistentKeepalive/],
    [`[Peer]\nPublicKey = (none)`, 2, /PublicKey must not be \(none\)/],
    [`[Interface]\n[Peer]\nAllowedIPs = 10.0.0.0/8`, 2, /\[Peer\] has no PublicKey/],
    [`[Peer]\nPublicKey = ${PEER_A}\nMTU = 1420`, 3, /unknown \[Peer\] key "MTU"/],
  ];
  for (const [text, line, message] of cases) {
    assert.throws(
      () => parseConfig(text),
      (error: unknown) => {
        assert.ok(error instanceof ConfigLineError && error instanceof ParseError, text);
        assert.equal(error.line, line, text);
        assert.match(error.message, new RegExp(`line ${line}: `), text);
        assert.match(error.message, message, text);
        return true;
      },
    );
  }
});

test('a rejected key is not repeated in the error message', () => {
  const almostKey = `${PRIVATE.slice(0, -2)}!=`;
  assert.throws(() => parseConfig(`[Interface]\nPrivateKey = ${almostKey}`), (error: Error) => !error.message.includes(almostKey.slice(0, 20)));
});
