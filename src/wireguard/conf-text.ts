// The text format of `wg setconf` / `wg showconf`: rendering and parsing WireGuardConfig.
import { type Endpoint, formatEndpoint, parseEndpoint } from '../model/endpoint.js';
import { type Cidr, ParseError, compareCidr, equalCidr, formatCidr, networkOf, parseIpOrCidr } from '../model/ip.js';
import { type WireGuardKey, parseKey } from '../model/key.js';
import type { WireGuardConfig, WireGuardInterface, WireGuardPeer } from './config.js';

/** A malformed line in a WireGuard configuration; `line` is 1-based. Never carries key material. */
export class ConfigLineError extends ParseError {
  constructor(
    readonly line: number,
    detail: string,
  ) {
    super(`WireGuard config line ${line}: ${detail}`);
  }
}

export interface RenderOptions {
  /** Replace private and preshared keys by `(hidden)`: for showconf output and logs. */
  readonly hideKeys?: boolean;
}

const HIDDEN = '(hidden)';

/**
 * Renders a config in the `wg setconf` format. Output is canonical so that two configs that are
 * semantically equal render identically: peers ordered by public key, allowed IPs masked to their
 * network (as `wg` stores them), de-duplicated and ordered.
 */
export function renderConfig(config: WireGuardConfig, options: RenderOptions = {}): string {
  const secret = (key: WireGuardKey): string => (options.hideKeys ? HIDDEN : key);
  const sections = [renderInterface(config.interface, secret)];
  const peers = [...config.peers].sort((a, b) => compareKey(a.publicKey, b.publicKey));
  for (const peer of peers) sections.push(renderPeer(peer, secret));
  return sections.join('\n');
}

/** The config with private and preshared keys hidden; the only rendering fit for logs and terminals. */
export function renderConfigForDisplay(config: WireGuardConfig): string {
  return renderConfig(config, { hideKeys: true });
}

function renderInterface(iface: WireGuardInterface, secret: (key: WireGuardKey) => string): string {
  const lines = ['[Interface]'];
  if (iface.privateKey !== undefined) lines.push(`PrivateKey = ${secret(iface.privateKey)}`);
  if (iface.listenPort !== undefined) lines.push(`ListenPort = ${iface.listenPort}`);
  if (iface.fwMark) lines.push(`FwMark = ${formatFwMark(iface.fwMark)}`);
  return `${lines.join('\n')}\n`;
}

function renderPeer(peer: WireGuardPeer, secret: (key: WireGuardKey) => string): string {
  const lines = ['[Peer]', `PublicKey = ${peer.publicKey}`];
  if (peer.presharedKey !== undefined) lines.push(`PresharedKey = ${secret(peer.presharedKey)}`);
  const allowed = canonicalAllowedIPs(peer.allowedIPs);
  if (allowed.length > 0) lines.push(`AllowedIPs = ${allowed.map(formatCidr).join(', ')}`);
  if (peer.endpoint !== undefined) lines.push(`Endpoint = ${formatEndpoint(peer.endpoint)}`);
  if (peer.persistentKeepalive) lines.push(`PersistentKeepalive = ${peer.persistentKeepalive}`);
  return `${lines.join('\n')}\n`;
}

/** `wg showconf` prints the mark in hex; using the same form keeps our output diffable against it. */
export function formatFwMark(mark: number): string {
  return `0x${mark.toString(16)}`;
}

/** Allowed IPs as WireGuard holds them: masked to the network, de-duplicated, ordered. */
export function canonicalAllowedIPs(cidrs: readonly Cidr[]): Cidr[] {
  const sorted = cidrs.map(networkOf).sort(compareCidr);
  return sorted.filter((cidr, i) => i === 0 || !equalCidr(cidr, sorted[i - 1] as Cidr));
}

export function compareKey(a: WireGuardKey, b: WireGuardKey): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

interface PeerDraft {
  publicKey?: WireGuardKey;
  presharedKey?: WireGuardKey;
  endpoint?: Endpoint;
  allowedIPs: Cidr[];
  persistentKeepalive?: number;
  readonly line: number;
}

/**
 * Parses `wg showconf` output (and our own rendering, and hand-written `wg setconf` files): keys
 * and section names are case-insensitive, `#` starts a comment, AllowedIPs may repeat and
 * accumulate, `(none)` means absent, `PersistentKeepalive = off` means 0. Allowed IPs are kept as
 * written (not masked); comparison masks them. wg-quick keys (Address, DNS, ...) are rejected:
 * they are not part of what the device holds.
 */
export function parseConfig(text: string): WireGuardConfig {
  const iface: { privateKey?: WireGuardKey; listenPort?: number; fwMark?: number } = {};
  const peers: PeerDraft[] = [];
  let section: 'none' | 'interface' | 'peer' = 'none';

  text.split(/\r?\n/).forEach((raw, index) => {
    const line = index + 1;
    const content = raw.replace(/#.*$/, '').trim();
    if (content === '') return;
    const header = /^\[\s*(\w+)\s*\]$/.exec(content);
    if (header) {
      const name = (header[1] as string).toLowerCase();
      if (name === 'interface') section = 'interface';
      else if (name === 'peer') {
        section = 'peer';
        peers.push({ allowedIPs: [], line });
      } else throw new ConfigLineError(line, `unknown section [${header[1]}]`);
      return;
    }
    const eq = content.indexOf('=');
    if (eq <= 0) throw new ConfigLineError(line, 'expected "Key = Value" or a [Section]');
    const key = content.slice(0, eq).trim();
    const value = content.slice(eq + 1).trim();
    const field = key.toLowerCase();
    if (section === 'none') throw new ConfigLineError(line, `${key} outside [Interface] or [Peer]`);
    if (section === 'interface') {
      if (field === 'privatekey') {
        const parsed = parseOptionalKey(value, line, 'PrivateKey');
        if (parsed === undefined) delete iface.privateKey;
        else iface.privateKey = parsed;
      } else if (field === 'listenport') iface.listenPort = parseNumberField(value, line, 'ListenPort', 65535);
      else if (field === 'fwmark') iface.fwMark = value.toLowerCase() === 'off' ? 0 : parseNumberField(value, line, 'FwMark', 0xffffffff);
      else throw new ConfigLineError(line, `unknown [Interface] key "${key}"`);
      return;
    }
    const peer = peers[peers.length - 1] as PeerDraft;
    if (field === 'publickey') {
      const parsed = parseOptionalKey(value, line, 'PublicKey');
      if (parsed === undefined) throw new ConfigLineError(line, 'PublicKey must not be (none)');
      peer.publicKey = parsed;
    } else if (field === 'presharedkey') {
      const parsed = parseOptionalKey(value, line, 'PresharedKey');
      if (parsed === undefined) delete peer.presharedKey;
      else peer.presharedKey = parsed;
    } else if (field === 'allowedips') {
      if (value === '(none)') return;
      for (const part of value.split(',')) {
        const item = part.trim();
        if (item === '') continue;
        // As in wg, a bare address is a host prefix.
        peer.allowedIPs.push(parseField(() => parseIpOrCidr(item), line, `AllowedIPs entry "${item}" is not a CIDR`));
      }
    } else if (field === 'endpoint') {
      if (value === '(none)') delete peer.endpoint;
      else peer.endpoint = parseField(() => parseEndpoint(value), line, `Endpoint "${value}" is not host:port or [IPv6]:port`);
    } else if (field === 'persistentkeepalive') {
      peer.persistentKeepalive = value.toLowerCase() === 'off' ? 0 : parseNumberField(value, line, 'PersistentKeepalive', 65535);
    } else throw new ConfigLineError(line, `unknown [Peer] key "${key}"`);
  });

  return { interface: iface, peers: peers.map(finishPeer) };
}

function finishPeer(draft: PeerDraft): WireGuardPeer {
  const { line, publicKey, ...rest } = draft;
  if (publicKey === undefined) throw new ConfigLineError(line, '[Peer] has no PublicKey');
  return { publicKey, ...rest };
}

function parseOptionalKey(value: string, line: number, name: string): WireGuardKey | undefined {
  if (value === '(none)') return undefined;
  // The value is not repeated in the message: it may be a private or preshared key.
  return parseField(() => parseKey(value), line, `${name} is not a WireGuard key (want base64 of 32 bytes)`);
}

function parseNumberField(value: string, line: number, name: string, max: number): number {
  const n = /^0x[0-9a-f]+$/i.test(value) ? parseInt(value.slice(2), 16) : /^\d+$/.test(value) ? Number(value) : NaN;
  if (!(n >= 0 && n <= max)) throw new ConfigLineError(line, `${name} "${value}" is not a number in 0..${max}`);
  return n;
}

function parseField<T>(parse: () => T, line: number, detail: string): T {
  try {
    return parse();
  } catch (error) {
    if (error instanceof ParseError) throw new ConfigLineError(line, detail);
    throw error;
  }
}
