// `wg show NAME dump`: the device's live state, tab-separated, one line for the interface and one
// per peer. Private and preshared keys in it are dropped here and never leave this parser.
import { type Endpoint, parseEndpoint } from '../model/endpoint.js';
import { type Cidr, ParseError, parseCidr } from '../model/ip.js';
import { type WireGuardKey, parseKey } from '../model/key.js';

export interface PeerStatus {
  readonly publicKey: WireGuardKey;
  /** Where WireGuard currently sends to: the configured endpoint or the one a roaming peer used last. */
  readonly endpoint?: Endpoint;
  readonly allowedIPs: readonly Cidr[];
  /** Undefined when no handshake has completed yet. */
  readonly latestHandshake?: Date;
  readonly rxBytes: bigint;
  readonly txBytes: bigint;
  readonly persistentKeepalive?: number;
}

export interface WireGuardStatus {
  /** Undefined while the device has no private key. */
  readonly publicKey?: WireGuardKey;
  readonly listenPort: number;
  readonly fwMark?: number;
  readonly peers: readonly PeerStatus[];
}

export function parseDump(text: string): WireGuardStatus {
  const lines = text.split('\n').filter((line) => line.trim() !== '');
  const [head, ...rest] = lines;
  if (head === undefined) throw new ParseError('wg dump: empty output');
  const iface = fieldsOf(head, 4, 1);
  return {
    publicKey: optional(iface[1] as string, (v) => parseKeyAt(v, 1, 'public key')),
    listenPort: numberAt(iface[2] as string, 1, 'listen port'),
    fwMark: iface[3] === 'off' ? undefined : numberAt(iface[3] as string, 1, 'fwmark'),
    peers: rest.map((line, i) => parsePeerLine(line, i + 2)),
  };
}

function parsePeerLine(line: string, lineNo: number): PeerStatus {
  const [publicKey, , endpoint, allowed, handshake, rx, tx, keepalive] = fieldsOf(line, 8, lineNo) as [string, string, string, string, string, string, string, string];
  const handshakeSeconds = numberAt(handshake, lineNo, 'latest handshake');
  return {
    publicKey: parseKeyAt(publicKey, lineNo, 'public key'),
    endpoint: optional(endpoint, (v) => wrap(() => parseEndpoint(v), lineNo, `endpoint "${v}"`)),
    allowedIPs: allowed === '(none)' ? [] : allowed.split(',').map((c) => wrap(() => parseCidr(c), lineNo, `allowed IP "${c}"`)),
    latestHandshake: handshakeSeconds === 0 ? undefined : new Date(handshakeSeconds * 1000),
    rxBytes: BigInt(numberText(rx, lineNo, 'transfer rx')),
    txBytes: BigInt(numberText(tx, lineNo, 'transfer tx')),
    persistentKeepalive: keepalive === 'off' ? undefined : numberAt(keepalive, lineNo, 'persistent keepalive'),
  };
}

function fieldsOf(line: string, count: number, lineNo: number): string[] {
  const fields = line.split('\t');
  if (fields.length !== count) throw new ParseError(`wg dump line ${lineNo}: want ${count} tab-separated fields, got ${fields.length}`);
  return fields;
}

function optional<T>(value: string, parse: (v: string) => T): T | undefined {
  return value === '(none)' ? undefined : parse(value);
}

function numberText(value: string, lineNo: number, what: string): string {
  if (!/^\d+$/.test(value)) throw new ParseError(`wg dump line ${lineNo}: ${what} "${value}" is not a number`);
  return value;
}

function numberAt(value: string, lineNo: number, what: string): number {
  return /^0x[0-9a-f]+$/i.test(value) ? parseInt(value.slice(2), 16) : Number(numberText(value, lineNo, what));
}

function parseKeyAt(value: string, lineNo: number, what: string): WireGuardKey {
  return wrap(() => parseKey(value), lineNo, what);
}

function wrap<T>(parse: () => T, lineNo: number, what: string): T {
  try {
    return parse();
  } catch {
    throw new ParseError(`wg dump line ${lineNo}: ${what} is malformed`);
  }
}
