// Peer custom resource (wirelane.io/v1alpha1, cluster-scoped) → MeshPeer. Unlike a node annotation, a
// bad Peer field rejects the whole Peer: half a WireGuard peer would route traffic to the wrong place.
import { type Endpoint, parseEndpoint, parsePort } from '../model/endpoint.js';
import { type Cidr, ParseError, parseCidr } from '../model/ip.js';
import { parseKey } from '../model/key.js';
import type { MeshPeer } from '../model/mesh.js';
import { type KubeObject, isRecord } from './objects.js';
import { InvalidObjectError } from './problem.js';

export const PEER_GROUP = 'wirelane.io';
export const PEER_VERSION = 'v1alpha1';
export const PEER_PLURAL = 'peers';

export function decodePeer(obj: KubeObject): MeshPeer {
  const name = obj.metadata?.name ?? '';
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
    parse(`spec.allowedIPs[${i}]`, () => parseCidr(String(text))),
  );
  const publicKey = parse('spec.publicKey', () => parseKey(String(spec['publicKey'] ?? '')));
  const keepalive = spec['persistentKeepalive'] ?? 0;
  if (typeof keepalive !== 'number' || !Number.isInteger(keepalive) || keepalive < 0 || keepalive > 65535) {
    fail('spec.persistentKeepalive', `${JSON.stringify(keepalive)} is not a keepalive in seconds (0-65535)`);
  }
  const psk = spec['presharedKey'];
  const presharedKey = psk === undefined || psk === '' ? undefined : parse('spec.presharedKey', () => parseKey(String(psk)));
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
  const port = parsePort(String(value['port']));
  return parseEndpoint(host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`);
}
