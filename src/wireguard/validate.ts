// Checks a desired config for what WireGuard would silently merge, so that applying it converges.
import { formatCidr } from '../model/ip.js';
import type { WireGuardKey } from '../model/key.js';
import { canonicalAllowedIPs } from './conf-text.js';
import type { WireGuardConfig } from './config.js';

export class WireGuardConfigError extends Error {
  override readonly name = 'WireGuardConfigError';
}

/**
 * Throws when two peers share a public key (wg merges them into one) or the same allowed IP
 * (wg hands it to the last peer written). Either way the device would never read back as the
 * desired config, and every apply would write again.
 */
export function checkConfig(config: WireGuardConfig): void {
  const seenKeys = new Set<WireGuardKey>();
  const ownerOf = new Map<string, WireGuardKey>();
  for (const peer of config.peers) {
    if (seenKeys.has(peer.publicKey)) {
      throw new WireGuardConfigError(`WireGuard peer "${peer.publicKey}": public key appears twice`);
    }
    seenKeys.add(peer.publicKey);
    for (const cidr of canonicalAllowedIPs(peer.allowedIPs)) {
      const text = formatCidr(cidr);
      const owner = ownerOf.get(text);
      if (owner !== undefined) {
        throw new WireGuardConfigError(`WireGuard peer "${peer.publicKey}": allowed IP ${text} is also on peer "${owner}"`);
      }
      ownerOf.set(text, peer.publicKey);
    }
  }
}
