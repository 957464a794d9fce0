// Turns a WireGuardDiff into the `wg` invocations that apply it without touching unchanged peers.
//
// `wg setconf` would replace every peer; instead:
// - `wg set NAME peer K remove ...` drops peers, and clears allowed IPs (a config file cannot say
//   "no allowed IPs": `AllowedIPs =` is a parse error);
// - `wg addconf NAME FILE` writes the rest, keys in a private file, never on argv. For an
//   existing peer `PersistentKeepalive = off` and the zero preshared key clear those fields, and
//   lines left out leave fields as they are, but for AllowedIPs: `wg` replaces a peer's allowed IPs
//   for every [Peer] section, with the section's list, none when it has no AllowedIPs line. So a
//   section always carries the peer's whole list (a change of endpoint alone once blackholed the
//   peer until the next reconcile restored its allowed IPs).
import { formatEndpoint } from '../model/endpoint.js';
import { formatCidr } from '../model/ip.js';
import { canonicalAllowedIPs, formatFwMark } from './conf-text.js';
import { type PeerUpdate, type WireGuardDiff, ZERO_KEY } from './compare.js';

export interface WireGuardWrites {
  /** Arguments after `wg set NAME`; empty when nothing is removed or cleared. */
  readonly setArgs: readonly string[];
  /** Text for `wg addconf NAME FILE`; undefined when there is nothing to add. Holds keys. */
  readonly addconf: string | undefined;
}

export function planWrites(diff: WireGuardDiff): WireGuardWrites {
  const setArgs: string[] = [];
  for (const key of diff.removePeers) setArgs.push('peer', key, 'remove');

  const sections: string[] = [];
  const iface = diff.interface;
  const ifaceLines: string[] = [];
  if (iface.privateKey !== undefined) ifaceLines.push(`PrivateKey = ${iface.privateKey}`);
  if (iface.listenPort !== undefined) ifaceLines.push(`ListenPort = ${iface.listenPort}`);
  if (iface.fwMark !== undefined) ifaceLines.push(`FwMark = ${iface.fwMark ? formatFwMark(iface.fwMark) : 'off'}`);
  if (ifaceLines.length > 0) sections.push(['[Interface]', ...ifaceLines].join('\n'));

  for (const update of diff.upsertPeers) {
    const peerLines = peerLinesOf(update);
    if (update.fields.includes('allowedIPs') && update.peer.allowedIPs.length === 0) {
      setArgs.push('peer', update.peer.publicKey, 'allowed-ips', '');
    }
    // A created peer with nothing else to set still needs its section to come into existence.
    if (peerLines.length > 0 || update.created) sections.push(['[Peer]', `PublicKey = ${update.peer.publicKey}`, ...peerLines].join('\n'));
  }
  return { setArgs, addconf: sections.length > 0 ? `${sections.join('\n\n')}\n` : undefined };
}

function peerLinesOf({ peer, fields }: PeerUpdate): string[] {
  const lines: string[] = [];
  if (fields.includes('presharedKey')) lines.push(`PresharedKey = ${peer.presharedKey ?? ZERO_KEY}`);
  const allowed = canonicalAllowedIPs(peer.allowedIPs);
  if (allowed.length > 0) lines.push(`AllowedIPs = ${allowed.map(formatCidr).join(', ')}`);
  if (fields.includes('endpoint') && peer.endpoint !== undefined) lines.push(`Endpoint = ${formatEndpoint(peer.endpoint)}`);
  if (fields.includes('persistentKeepalive')) lines.push(`PersistentKeepalive = ${peer.persistentKeepalive || 'off'}`);
  return lines;
}
