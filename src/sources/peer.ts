// Peer custom resource (wirelane.io/v1alpha1, cluster-scoped) → MeshPeer. Unlike a node annotation, a
// bad Peer field rejects the whole Peer: half a WireGuard peer would route traffic to the wrong place.
import { type Endpoint, parseEndpoint, parsePort } from '../model/endpoint.js';
import { type Cidr, ParseError, formatCidr, parseCidr } from '../model/ip.js';
import { type WireGuardKey, parseKey } from '../model/key.js';
import type { MeshPeer } from '../model/mesh.js';
import { type KubeObject, isRecord } from './objects.js';
import { InvalidObjectError } from './problem.js';

export const PEER_GROUP = 'wirelane.io';
export const PEER_VERSION = 'v1alpha1';
export const PEER_PLURAL = 'peers';

/** What a Peer object carries that `wirelane connect` writes: no endpoint (the nodes learn it), no preshared key. */
export interface PeerRegistration {
  readonly name: string;
  readonly allowedIPs: readonly Cidr[];
  readonly publicKey: WireGuardKey;
  readonly persistentKeepalive: number;
}

/** The Peer object for a registration, as the API takes it; decodePeer reads it back unchanged. */
export function peerObject(r: PeerRegistration): KubeObject & { readonly spec: Record<string, unknown> } {
  return {
    apiVersion: `${PEER_GROUP}/${PEER_VERSION}`,
    kind: 'Peer',
    metadata: { name: r.name },
    spec: {
      allowedIPs: r.allowedIPs.map(formatCidr),
      publicKey: r.publicKey,
      ...(r.persistentKeepalive > 0 && { persistentKeepalive: r.persistentKeepalive }),
    },
  };
}

export function decodePeer(obj: KubeObject): MeshPeer {
  const name = typeof obj.metadata?.name === 'string' ? obj.metadata.name : '';
  const fail = (field: string, message: string): never => {
    throw new InvalidObjectError({ kind: 'Peer', object: name, field, message });
  };
  // Runs a parser and turns its ParseError into a rejection naming the field.
  const parse = <T>(field: string, fn: () => T): T => {
    try {
      return fn();
    } catch (err) {
      if (err instanceof ParseError) return fail(field, err.message);
      throw err;
    }
  };
  if (name === '') fail('metadata.name', 'missing');
  const spec = obj.spec;
  if (!isRecord(spec)) return fail('spec', 'missing');

  const allowed = spec['allowedIPs'];
  if (!Array.isArray(allowed) || allowed.length === 0) fail('spec.allowedIPs', 'want a non-empty list of CIDRs');
  const allowedIPs: Cidr[] = (allowed as unknown[]).map((text, i) =>
    parse(`spec.allowedIPs[${i}]`, () => parseCidr(stringOf(text))),
  );
  const publicKey = parse('spec.publicKey', () => parseKey(stringOf(spec['publicKey'] ?? '')));
  const keepalive = spec['persistentKeepalive'] ?? 0;
  if (typeof keepalive !== 'number' || !Number.isInteger(keepalive) || keepalive < 0 || keepalive > 65535) {
    fail('spec.persistentKeepalive', `${JSON.stringify(keepalive)} is not a keepalive in seconds (0-65535)`);
  }
  const psk = spec['presharedKey'];
  const presharedKey = psk === undefined || psk === '' ? undefined : parse('spec.presharedKey', () => parseKey(stringOf(psk)));
  const endpoint = spec['endpoint'] === undefined ? undefined : parse('spec.endpoint', () => decodeEndpoint(spec['endpoint']));
  return {
    name,
    allowedIPs,
    publicKey,
    persistentKeepalive: keepalive as number,
    ...(endpoint && { endpoint }),
    ...(presharedKey && { presharedKey }),
  };
}

/** `"host:port"`, or Kilo's shape `{dnsOrIP: {dns | ip}, port}`. */
function decodeEndpoint(value: unknown): Endpoint {
  if (typeof value === 'string') return parseEndpoint(value);
  if (!isRecord(value) || !isRecord(value['dnsOrIP'])) throw new ParseError('want "host:port" or {dnsOrIP, port}');
  const host = value['dnsOrIP']['ip'] ?? value['dnsOrIP']['dns'];
  if (typeof host !== 'string' || host === '') throw new ParseError('dnsOrIP needs dns or ip');
  // Kilo writes the port as a number; a quoted one reads too, a list holding one does not.
  const portValue = value['port'];
  if (typeof portValue !== 'number' && typeof portValue !== 'string') throw new ParseError('port: want a number');
  const port = parsePort(String(portValue));
  return parseEndpoint(host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`);
}

// A CIDR or a key is a string: String() would read ["10.0.0.0/8"] as one and throw on {toString: 1}.
function stringOf(value: unknown): string {
  if (typeof value !== 'string') throw new ParseError(`${JSON.stringify(value) ?? 'undefined'} is not a string`);
  return value;
}
