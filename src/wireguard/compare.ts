// Semantic comparison of WireGuard configs, and the difference a device must write to match one.
//
// What counts as "the same" follows what WireGuard stores, so that a config read back with
// `wg showconf` compares equal to the one that was written:
// - peer order and allowed-IP order do not matter; allowed IPs compare masked (`wg` stores
//   10.1.2.3/24 as 10.1.2.0/24) and de-duplicated;
// - keepalive 0 ≡ absent, fwmark 0 ≡ absent, an all-zero preshared key ≡ absent (WireGuard uses
//   the zero key when none is set and `wg showconf` omits it);
// - endpoints compare as address + port. A DNS-named endpoint never equals the IP `wg showconf`
//   prints, so callers resolve names first (WireGuardDevice.apply does, see resolve.ts).
import { equalEndpoint } from '../model/endpoint.js';
import { type Cidr, equalCidr, formatCidr } from '../model/ip.js';
import type { WireGuardKey } from '../model/key.js';
import { canonicalAllowedIPs, compareKey } from './conf-text.js';
import type { WireGuardConfig, WireGuardPeer } from './config.js';

export const ZERO_KEY = 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=' as WireGuardKey;

/** True when a and b describe the same device state: every field counts, in canonical form. */
export function equalConfig(a: WireGuardConfig, b: WireGuardConfig): boolean {
  if (a.interface.privateKey !== b.interface.privateKey) return false;
  if (a.interface.listenPort !== b.interface.listenPort) return false;
  if ((a.interface.fwMark || 0) !== (b.interface.fwMark || 0)) return false;
  const aPeers = peersByKey(a.peers);
  const bPeers = peersByKey(b.peers);
  if (aPeers.size !== bPeers.size) return false;
  return [...aPeers.values()].every((peer) => {
    const other = bPeers.get(peer.publicKey);
    return other !== undefined && changedPeerFields(other, peer, true).length === 0;
  });
}

export type PeerField = 'presharedKey' | 'endpoint' | 'allowedIPs' | 'persistentKeepalive';

export interface PeerUpdate {
  /** The desired peer; `endpoint` is left out when the current one must be kept (see DiffOptions). */
  readonly peer: WireGuardPeer;
  /** The peer does not exist on the device yet. */
  readonly created: boolean;
  /** Fields to write; for a created peer, every field the peer has. */
  readonly fields: readonly PeerField[];
}

export interface InterfaceUpdate {
  readonly privateKey?: WireGuardKey;
  readonly listenPort?: number;
  /** 0 turns the mark off. */
  readonly fwMark?: number;
}

/**
 * What to write so a device matches the desired config. Holds key material (private and
 * preshared keys): log `describeDiff(diff)`, never the object itself.
 */
export interface WireGuardDiff {
  readonly changed: boolean;
  readonly interface: InterfaceUpdate;
  readonly removePeers: readonly WireGuardKey[];
  readonly upsertPeers: readonly PeerUpdate[];
}

export interface DiffOptions {
  /**
   * Peers whose endpoint WireGuard manages itself: roaming peers (keepalive set on their side)
   * move, and WireGuard follows the source address of their authenticated packets. For these,
   * a desired endpoint is only written while the device has none (the peer is new, or was added
   * before anyone knew where it is), never to pull an existing one back to where the config says.
   */
  readonly ignoreEndpointOf?: ReadonlySet<WireGuardKey>;
}

/**
 * The difference from `current` (as read from the device) to `desired`. Fields absent from
 * `desired` that WireGuard cannot be asked to forget, or that the device chooses, are kept:
 * - privateKey / listenPort undefined: keep the device's (wireguard-go picks a random port);
 * - a peer endpoint undefined: keep what the device has (a peer that reached us sets it).
 * fwMark, presharedKey and persistentKeepalive absent mean off, and are written as off.
 */
export function diffConfig(current: WireGuardConfig, desired: WireGuardConfig, options: DiffOptions = {}): WireGuardDiff {
  const iface: { privateKey?: WireGuardKey; listenPort?: number; fwMark?: number } = {};
  const want = desired.interface;
  const have = current.interface;
  if (want.privateKey !== undefined && want.privateKey !== have.privateKey) iface.privateKey = want.privateKey;
  if (want.listenPort !== undefined && want.listenPort !== have.listenPort) iface.listenPort = want.listenPort;
  if ((want.fwMark || 0) !== (have.fwMark || 0)) iface.fwMark = want.fwMark || 0;

  const currentPeers = peersByKey(current.peers);
  const desiredKeys = new Set(desired.peers.map((p) => p.publicKey));
  const removePeers = current.peers
    .map((p) => p.publicKey)
    .filter((key) => !desiredKeys.has(key))
    .sort(compareKey);

  const upsertPeers: PeerUpdate[] = [];
  for (const peer of [...desired.peers].sort((a, b) => compareKey(a.publicKey, b.publicKey))) {
    const existing = currentPeers.get(peer.publicKey);
    if (existing === undefined) {
      upsertPeers.push({ peer, created: true, fields: presentFields(peer) });
      continue;
    }
    // A roaming peer the device has no endpoint for yet is still written: a Peer behind NAT (a
    // laptop) is added before another leader discovers where it is, and a location behind NAT of
    // its own can only reach it, punching through both NATs, once it sends there first.
    const roamedAlready = existing.endpoint !== undefined && (options.ignoreEndpointOf?.has(peer.publicKey) ?? false);
    const keepEndpoint = peer.endpoint === undefined || roamedAlready;
    const fields = changedPeerFields(existing, peer, !keepEndpoint);
    if (fields.length === 0) continue;
    upsertPeers.push({ peer: keepEndpoint ? withoutEndpoint(peer) : peer, created: false, fields });
  }

  const changed = Object.keys(iface).length > 0 || removePeers.length > 0 || upsertPeers.length > 0;
  return { changed, interface: iface, removePeers, upsertPeers };
}

/** One line per change, with public keys only: safe to log. */
export function describeDiff(diff: WireGuardDiff): string[] {
  const lines: string[] = [];
  for (const field of ['privateKey', 'listenPort', 'fwMark'] as const) {
    if (diff.interface[field] !== undefined) lines.push(`interface: set ${field}`);
  }
  for (const key of diff.removePeers) lines.push(`peer ${key}: remove`);
  for (const update of diff.upsertPeers) {
    const allowed = canonicalAllowedIPs(update.peer.allowedIPs).map(formatCidr).join(',') || '(none)';
    const what = update.created ? 'add' : `set ${update.fields.join(', ')}`;
    lines.push(`peer ${update.peer.publicKey}: ${what} (allowed IPs ${allowed})`);
  }
  return lines;
}

function peersByKey(peers: readonly WireGuardPeer[]): Map<WireGuardKey, WireGuardPeer> {
  return new Map(peers.map((p) => [p.publicKey, p]));
}

/** Fields of `want` that differ from `have`; the endpoint only when `compareEndpoint`. */
function changedPeerFields(have: WireGuardPeer, want: WireGuardPeer, compareEndpoint: boolean): PeerField[] {
  const fields: PeerField[] = [];
  if (presharedOf(have) !== presharedOf(want)) fields.push('presharedKey');
  if (compareEndpoint && !equalEndpoint(have.endpoint, want.endpoint)) fields.push('endpoint');
  if (!equalAllowedIPs(have.allowedIPs, want.allowedIPs)) fields.push('allowedIPs');
  if ((have.persistentKeepalive || 0) !== (want.persistentKeepalive || 0)) fields.push('persistentKeepalive');
  return fields;
}

function presentFields(peer: WireGuardPeer): PeerField[] {
  const fields: PeerField[] = [];
  if (presharedOf(peer) !== undefined) fields.push('presharedKey');
  if (peer.endpoint !== undefined) fields.push('endpoint');
  if (peer.allowedIPs.length > 0) fields.push('allowedIPs');
  if (peer.persistentKeepalive) fields.push('persistentKeepalive');
  return fields;
}

function presharedOf(peer: WireGuardPeer): WireGuardKey | undefined {
  return peer.presharedKey === ZERO_KEY ? undefined : peer.presharedKey;
}

function equalAllowedIPs(a: readonly Cidr[], b: readonly Cidr[]): boolean {
  const ca = canonicalAllowedIPs(a);
  const cb = canonicalAllowedIPs(b);
  return ca.length === cb.length && ca.every((cidr, i) => equalCidr(cidr, cb[i] as Cidr));
}

function withoutEndpoint(peer: WireGuardPeer): WireGuardPeer {
  const { endpoint: _kept, ...rest } = peer;
  return rest;
}
