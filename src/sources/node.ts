// Kubernetes Node → MeshNode. A malformed annotation costs only that annotation: it is reported as a
// problem and the node keeps everything else (Kilo drops or half-parses such nodes silently).
import { type Endpoint, parseEndpoint } from '../model/endpoint.js';
import { type Cidr, ParseError, formatCidr, parseCidr, parseCidrPerFamily } from '../model/ip.js';
import { type WireGuardKey, parseKey } from '../model/key.js';
import type { MeshNode } from '../model/mesh.js';
import { ANNOTATIONS, type Annotation, type AnnotationSuffix, annotationsOf, readAnnotation } from './annotations.js';
import { parseGranularity } from './granularity.js';
import { type KubeObject, isRecord } from './objects.js';
import { InvalidObjectError, type Problem } from './problem.js';

export const DEFAULT_TOPOLOGY_LABEL = 'topology.kubernetes.io/region';

export interface NodeDecodeOptions {
  /** The label that names a node's location when it has no location annotation. */
  readonly topologyLabel: string;
}

export interface DecodedNode {
  readonly node: MeshNode;
  readonly problems: readonly Problem[];
}

/** Decodes a Node object; throws InvalidObjectError only when the object is unusable as a whole. */
export function decodeNode(obj: KubeObject, opts: NodeDecodeOptions): DecodedNode {
  const name = obj.metadata?.name;
  const problems: Problem[] = [];
  if (typeof name !== 'string' || name === '') {
    throw new InvalidObjectError({ kind: 'Node', object: '', field: 'metadata.name', message: 'missing' });
  }
  const problem = (field: string, message: string): void => {
    problems.push({ kind: 'Node', object: name, field, message });
  };
  const annotations = stringEntries(obj.metadata?.annotations, 'metadata.annotations', (k) => `annotation ${k}`, problem);
  const labels = stringEntries(obj.metadata?.labels, 'metadata.labels', (k) => `label ${k}`, problem);

  // Reads one annotation through `parse`; a bad value is reported and treated as absent, so Kilo's
  // spelling is read when ours is bad.
  function read<T>(suffix: AnnotationSuffix, parse: (value: string, a: Annotation) => T): T | undefined {
    for (const a of annotationsOf(annotations, suffix)) {
      try {
        return parse(a.value, a);
      } catch (err) {
        if (!(err instanceof ParseError)) throw err;
        problem(`annotation ${a.name}`, err.message);
      }
    }
    return undefined;
  }

  const location = read(ANNOTATIONS.location, (v) => v) ?? labels?.[opts.topologyLabel] ?? '';
  const endpoint = read(ANNOTATIONS.forceEndpoint, parseEndpoint) ?? read(ANNOTATIONS.endpoint, parseEndpoint);
  const internalIPs = decodeInternalIPs(read, problem);
  const persistentKeepalive = read(ANNOTATIONS.persistentKeepalive, parseKeepalive) ?? 0;
  const allowedLocationIPs = read(ANNOTATIONS.allowedLocationIPs, (v, a) => parseCidrList(v, a, problem)) ?? [];
  const discoveredEndpoints = read(ANNOTATIONS.discoveredEndpoints, parseDiscoveredEndpoints) ?? new Map();
  const publicKey = read(ANNOTATIONS.key, parseKey);
  const lastSeen = read(ANNOTATIONS.lastSeen, parseUnixSeconds);
  const wireguardIPs = withOtherFamily(read(ANNOTATIONS.wireguardIP, parseCidrPerFamily), read(ANNOTATIONS.otherWireguardIP, parseOtherFamily), problem);
  const granularity = read(ANNOTATIONS.granularity, parseGranularity);

  const node: MeshNode = {
    name,
    location,
    leader: readAnnotation(annotations, ANNOTATIONS.leader) !== undefined,
    podCIDRs: decodePodCIDRs(obj.spec, problem),
    persistentKeepalive,
    allowedLocationIPs,
    discoveredEndpoints,
    ...(endpoint && { endpoint }),
    ...(internalIPs?.[0] && { internalIP: internalIPs[0] }),
    ...(internalIPs?.[1] && { otherInternalIP: internalIPs[1] }),
    ...(publicKey && { publicKey }),
    ...(lastSeen !== undefined && { lastSeen }),
    ...(wireguardIPs && { wireguardIPs }),
    ...(granularity && { granularity }),
    // Presence is the mark; the value (the writer's clock when it marked) is for people.
    ...(readAnnotation(annotations, ANNOTATIONS.tunnelsBroken) !== undefined && { tunnelsBroken: true }),
  };
  return { node, problems };
}

// Each value that is not a string (an unquoted number in a cluster file) is reported and left out on
// its own: one bad annotation must not cost the node all the others. Undefined when not a map at all.
function stringEntries(
  value: unknown,
  field: string,
  entryField: (key: string) => string,
  problem: (field: string, message: string) => void,
): Record<string, string> | undefined {
  if (value === undefined || value === null) return {};
  if (!isRecord(value)) {
    problem(field, 'not a map of strings');
    return undefined;
  }
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(value)) {
    if (typeof v === 'string') out[k] = v;
    else problem(entryField(k), `${JSON.stringify(v)} is not a string`);
  }
  return out;
}

type Reader = <T>(suffix: AnnotationSuffix, parse: (value: string, a: Annotation) => T) => T | undefined;

// force-internal-ip "" or "-" means "this node has no internal IP" and must not fall back. On a
// dual-stack underlay it holds one CIDR per family (`192.168.0.1/24,fd00::1/64`): Kilo's single
// CIDR is the one-element case. The agent publishes one per annotation (withOtherFamily).
function decodeInternalIPs(read: Reader, problem: (field: string, message: string) => void): Cidr[] | undefined {
  const forced = read(ANNOTATIONS.forceInternalIP, (v): Cidr[] | 'none' => (v === '' || v === '-' ? 'none' : parseCidrPerFamily(v)));
  const other = read(ANNOTATIONS.otherInternalIP, parseOtherFamily);
  if (forced === 'none') return undefined;
  return forced ?? withOtherFamily(read(ANNOTATIONS.internalIP, parseCidrPerFamily), other, problem);
}

/** A CIDR and the annotation it was read from, to name in a problem. */
interface ReadCidr {
  readonly cidr: Cidr;
  readonly name: string;
}

const parseOtherFamily = (value: string, a: Annotation): ReadCidr => ({ cidr: parseCidr(value), name: a.name });

// A dual-stack node's agent publishes its first family in internal-ip / wireguard-ip, one CIDR as
// agents before dual stack parse it, and the other family in other-internal-ip / other-wireguard-ip.
// The previous version wrote both into the first (`v4,v6`): that is read as it is, and an other-
// annotation left from a later version (a rollback keeps annotations) is not added to it.
function withOtherFamily(first: Cidr[] | undefined, other: ReadCidr | undefined, problem: (field: string, message: string) => void): Cidr[] | undefined {
  const [only] = first?.length === 1 ? first : [];
  if (only === undefined || other === undefined) return first;
  if (other.cidr.family === only.family) {
    problem(`annotation ${other.name}`, `${formatCidr(other.cidr)} is of the family of ${formatCidr(only)}, not the other one`);
    return first;
  }
  return [only, other.cidr];
}


function decodePodCIDRs(spec: unknown, problem: (field: string, message: string) => void): Cidr[] {
  if (!isRecord(spec)) return [];
  const list = Array.isArray(spec['podCIDRs']) && spec['podCIDRs'].length > 0 ? spec['podCIDRs'] : [spec['podCIDR']];
  const field = Array.isArray(spec['podCIDRs']) && spec['podCIDRs'].length > 0 ? 'spec.podCIDRs' : 'spec.podCIDR';
  const out: Cidr[] = [];
  for (const text of list) {
    if (text === undefined || text === null || text === '') continue;
    try {
      if (typeof text !== 'string') throw new ParseError(`${JSON.stringify(text)} is not a CIDR`);
      out.push(parseCidr(text));
    } catch (err) {
      if (!(err instanceof ParseError)) throw err;
      problem(field, err.message);
    }
  }
  return out;
}

function parseKeepalive(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n > 65535) throw new ParseError(`"${text}" is not a keepalive in seconds (0-65535)`);
  return n;
}

function parseUnixSeconds(text: string): number {
  if (!/^\d{1,12}$/.test(text)) throw new ParseError(`"${text}" is not a time in unix seconds`);
  return Number(text);
}

// Good entries are kept; each bad one is reported on its own.
function parseCidrList(text: string, a: Annotation, problem: (field: string, message: string) => void): Cidr[] {
  const out: Cidr[] = [];
  for (const part of text.split(',').map((s) => s.trim())) {
    if (part === '') continue;
    try {
      out.push(parseCidr(part));
    } catch (err) {
      if (!(err instanceof ParseError)) throw err;
      problem(`annotation ${a.name}`, err.message);
    }
  }
  return out;
}

/** JSON object of public key → endpoint, as `"host:port"` or Kilo's `{"IP": "...", "Port": n}`. */
function parseDiscoveredEndpoints(text: string): Map<WireGuardKey, Endpoint> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new ParseError('not a JSON object');
  }
  if (!isRecord(parsed)) throw new ParseError('not a JSON object');
  const out = new Map<WireGuardKey, Endpoint>();
  for (const [key, value] of Object.entries(parsed)) {
    if (typeof value === 'string') {
      out.set(parseKey(key), parseEndpoint(value));
    } else if (isRecord(value) && typeof value['IP'] === 'string' && typeof value['Port'] === 'number') {
      const ip = value['IP'];
      out.set(parseKey(key), parseEndpoint(ip.includes(':') ? `[${ip}]:${value['Port']}` : `${ip}:${value['Port']}`));
    } else {
      throw new ParseError(`entry for ${key} is not an endpoint`);
    }
  }
  return out;
}

