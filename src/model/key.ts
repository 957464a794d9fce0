// WireGuard keys: base64 of 32 bytes, generated and derived in-process with X25519.
import { createPrivateKey, createPublicKey, randomBytes } from 'node:crypto';
import { ParseError } from './ip.js';

/** A validated WireGuard key in its canonical base64 form. */
export type WireGuardKey = string & { readonly __brand: 'WireGuardKey' };

export function parseKey(text: string): WireGuardKey {
  const trimmed = text.trim();
  const bytes = Buffer.from(trimmed, 'base64');
  // Buffer.from ignores junk, so round-trip to reject anything that is not canonical base64.
  if (bytes.length !== 32 || bytes.toString('base64') !== trimmed) {
    throw new ParseError('not a WireGuard key (want base64 of 32 bytes)');
  }
  return trimmed as WireGuardKey;
}

// DER prefixes of PKCS#8 / SPKI X25519 keys: the raw 32 bytes follow them.
const PKCS8_X25519 = Buffer.from('302e020100300506032b656e04220420', 'hex');

export function generatePrivateKey(): WireGuardKey {
  const key = randomBytes(32);
  // Clamp as `wg genkey` does (RFC 7748), so the file matches what WireGuard tools write.
  key[0] = (key[0] as number) & 248;
  key[31] = ((key[31] as number) & 127) | 64;
  return key.toString('base64') as WireGuardKey;
}

export function publicKeyOf(privateKey: WireGuardKey): WireGuardKey {
  const der = Buffer.concat([PKCS8_X25519, Buffer.from(privateKey, 'base64')]);
  const spki = createPublicKey(createPrivateKey({ key: der, format: 'der', type: 'pkcs8' })).export({
    format: 'der',
    type: 'spki',
  });
  return spki.subarray(spki.length - 32).toString('base64') as WireGuardKey;
}
