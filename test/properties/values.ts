// Valid field values, as text the way Kubernetes objects carry them: IPs, CIDRs, WireGuard keys,
// endpoints, ports and names. Written from the formats' definitions, not from the parsers under test.
import { fc } from './setup.js';

export const ipv4 = fc.ipV4();
export const ipv6 = fc.ipV6();
export const ip = fc.oneof(ipv4, ipv6);

export const cidrV4 = fc.tuple(ipv4, fc.integer({ min: 0, max: 32 })).map(([a, bits]) => `${a}/${bits}`);
export const cidrV6 = fc.tuple(ipv6, fc.integer({ min: 0, max: 128 })).map(([a, bits]) => `${a}/${bits}`);
export const cidr = fc.oneof(cidrV4, cidrV6);

/** Canonical base64 of 32 bytes, as `wg genkey | wg pubkey` prints it. */
export const wireGuardKey = fc
  .tuple(fc.bigInt({ min: 0n, max: (1n << 128n) - 1n }), fc.bigInt({ min: 0n, max: (1n << 128n) - 1n }))
  .map(([hi, lo]) => Buffer.from(((hi << 128n) | lo).toString(16).padStart(64, '0'), 'hex').toString('base64'));

export const port = fc.integer({ min: 1, max: 65535 });
export const nodePort = fc.integer({ min: 30000, max: 32767 });

// RFC 1123 labels; the last one starts with a letter so the name cannot read as an IPv4 address.
const dnsLabel = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,6}[a-z0-9])?$/);
const topLabel = fc.stringMatching(/^[a-z]([a-z0-9-]{0,6}[a-z0-9])?$/);
export const dnsName = fc
  .tuple(fc.array(dnsLabel, { maxLength: 3 }), topLabel)
  .map(([labels, top]) => [...labels, top].join('.'));

/** `host:port` with an IPv4 address, a bracketed IPv6 address or a DNS name. */
export const endpoint = fc.oneof(
  fc.tuple(ipv4, port).map(([a, p]) => `${a}:${p}`),
  fc.tuple(ipv6, port).map(([a, p]) => `[${a}]:${p}`),
  fc.tuple(dnsName, port).map(([h, p]) => `${h}:${p}`),
);

/** Object names (DNS-1123 labels), from a small pool so objects collide on names as real ones do. */
export const objectName = fc.oneof(
  fc.constantFrom('web', 'db', 'dns', 'api'),
  fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?$/),
);
export const namespace = fc.constantFrom('default', 'shop', 'kube-system');

/** IANA service names (RFC 6335): what a Service port may be called. */
export const portName = fc.oneof(fc.constantFrom('http', 'dns', 'metrics'), fc.stringMatching(/^[a-z][a-z0-9]{0,6}(-[a-z0-9]{1,6})?$/));

export const nodeName = fc.constantFrom('n1', 'n2', 'n3');
export const zone = fc.constantFrom('z1', 'z2');

/** Any value a free-form string field (a location, a label) may hold. */
export const freeText = fc.string({ maxLength: 12 });
