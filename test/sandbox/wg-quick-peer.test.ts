// The Peer's own [Interface] settings added to what `showconf peer` prints (sandbox/wg-quick-peer.ts).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { generatePrivateKey } from '../../src/model/key.js';
import { completePeerConfig } from '../../src/sandbox/wg-quick-peer.js';

const SHOWN = '[Interface]\n\n[Peer]\nPublicKey = x\nAllowedIPs = 10.244.0.0/24\n';

test("the host's private key and addresses go into showconf's [Interface], the [Peer]s stay as printed", () => {
  const privateKey = generatePrivateKey();
  const config = completePeerConfig(SHOWN, { privateKey, addresses: ['10.5.0.1/32', 'fd05::1/128'] });
  assert.equal(config, `[Interface]\nPrivateKey = ${privateKey}\nAddress = 10.5.0.1/32, fd05::1/128\n\n[Peer]\nPublicKey = x\nAllowedIPs = 10.244.0.0/24\n`);
});

test('a fixed listen port follows the addresses', () => {
  const privateKey = generatePrivateKey();
  const config = completePeerConfig(SHOWN, { privateKey, addresses: ['10.5.0.1/32'], listenPort: 51820 });
  assert.equal(config, `[Interface]\nPrivateKey = ${privateKey}\nAddress = 10.5.0.1/32\nListenPort = 51820\n\n[Peer]\nPublicKey = x\nAllowedIPs = 10.244.0.0/24\n`);
});

test('a text that does not start with [Interface] is refused, naming what it started with', () => {
  assert.throws(() => completePeerConfig('[Peer]\n', { privateKey: generatePrivateKey(), addresses: ['10.5.0.1/32'] }), /expected an \[Interface\] section first, got "\[Peer\]"/);
});
