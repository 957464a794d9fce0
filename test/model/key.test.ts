import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { generatePrivateKey, parseKey, publicKeyOf } from '../../src/model/key.js';

test('keys must be canonical base64 of 32 bytes', () => {
  const good = generatePrivateKey();
  assert.equal(parseKey(` ${good}\n`), good);
  for (const bad of ['', 'abc', Buffer.alloc(31).toString('base64'), Buffer.alloc(33).toString('base64'), `${good.slice(0, -2)}!=`]) {
    assert.throws(() => parseKey(bad), /not a WireGuard key/, bad);
  }
});

test('generated private keys are clamped like wg genkey', () => {
  const raw = Buffer.from(generatePrivateKey(), 'base64');
  assert.equal((raw[0] as number) & 7, 0);
  assert.equal((raw[31] as number) & 0xc0, 0x40);
});

test('the public key matches the RFC 7748 test vector and wg pubkey', () => {
  // RFC 7748 section 6.1: Alice's private and public key.
  const alice = Buffer.from('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a', 'hex').toString('base64');
  const alicePublic = Buffer.from('8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a', 'hex').toString('base64');
  assert.equal(publicKeyOf(parseKey(alice)), alicePublic);
  if (existsSync('/usr/bin/wg')) {
    const key = generatePrivateKey();
    assert.equal(publicKeyOf(key), execFileSync('wg', ['pubkey'], { input: key }).toString().trim());
  }
});
