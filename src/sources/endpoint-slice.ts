// discovery.k8s.io/v1 EndpointSlice → EndpointSlice. A bad field rejects the whole slice (one error
// naming it and the field); what kube-proxy merely ignores is ignored here too: FQDN slices and
// ports without a number. A malformed last-change-trigger-time costs only the latency metric.
import { EMPTY } from '../model/lists.js';
import { type Family, ParseError } from '../model/ip.js';
import type { EndpointSlice, SliceEndpoint, SlicePort } from '../services/input.js';
import type { KubeObject } from './objects.js';
import type { Problem } from './problem.js';
import { ObjectFields } from './service.js';
import { LAST_CHANGE_TRIGGER_TIME, parseTriggerTime } from './trigger-time.js';

export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

// A Map: an object literal would answer `toString` with Object.prototype's.
const FAMILIES: ReadonlyMap<string, Family | 'FQDN'> = new Map<string, Family | 'FQDN'>([
  ['IPv4', 4],
  ['IPv6', 6],
  ['FQDN', 'FQDN'],
]);

/**
 * Returns undefined for an FQDN slice: no proxy forwards to names. `onProblem` hears of a field that
 * is left out while the slice is kept (the trigger time).
 */
export function decodeEndpointSlice(obj: KubeObject, onProblem: (problem: Problem) => void = () => {}): EndpointSlice | undefined {
  const f = new ObjectFields('EndpointSlice', obj);
  const record = obj as Record<string, unknown>;
  const addressType = f.string('addressType', record['addressType']) ?? f.fail('addressType', 'missing');
  const family = FAMILIES.get(addressType) ?? f.fail('addressType', `"${addressType}" is not one of IPv4, IPv6, FQDN`);
  if (family === 'FQDN') return undefined;
  const service = f.labels(obj)[SERVICE_NAME_LABEL] || f.fail(`metadata.labels[${SERVICE_NAME_LABEL}]`, 'missing');
  const triggeredAt = triggerTimeOf(obj, f.object, onProblem);
  return {
    namespace: f.namespaceOf(obj),
    name: obj.metadata?.name as string,
    service,
    family,
    ports: decodePorts(f, record['ports']),
    endpoints: f.list('endpoints', record['endpoints']).map((item, i) => decodeEndpoint(f, item, endpointFields(i), family)),
    ...(triggeredAt !== undefined && { triggeredAt }),
  };
}

function triggerTimeOf(obj: KubeObject, object: string, onProblem: (problem: Problem) => void): number | undefined {
  const value: unknown = obj.metadata?.annotations?.[LAST_CHANGE_TRIGGER_TIME];
  if (value === undefined) return undefined;
  const field = `metadata.annotations[${LAST_CHANGE_TRIGGER_TIME}]`;
  try {
    if (typeof value !== 'string') throw new ParseError('not a string');
    return parseTriggerTime(value);
  } catch (err) {
    if (!(err instanceof ParseError)) throw err;
    onProblem({ kind: 'EndpointSlice', object, field, message: `${err.message} (not used for wirelane_network_programming_duration_seconds)` });
    return undefined;
  }
}

function decodePorts(f: ObjectFields, value: unknown): SlicePort[] {
  const byName = new Map<string, number>();
  const out: SlicePort[] = [];
  f.list('ports', value).forEach((item, i) => {
    const at = `ports[${i}]`;
    const p = f.record(at, item) ?? f.fail(at, 'missing');
    // The API server defaults a missing name to '' (the unnamed Service port) and protocol to TCP.
    const name = f.portName(`${at}.name`, p['name']);
    const same = byName.get(name);
    if (same !== undefined) f.fail(`${at}.name`, `"${name}" is also the name of ports[${same}]`);
    byName.set(name, i);
    const protocol = f.protocol(`${at}.protocol`, p['protocol']);
    // kube-proxy ignores a port with no number ("all ports" is not implemented by anyone).
    const port = f.optionalPort(`${at}.port`, p['port']);
    if (port !== undefined) out.push({ name, protocol, port });
  });
  return out;
}

/** The names of an endpoint's fields in errors, built once per index (a slice lists up to 1,000). */
interface EndpointFields {
  readonly at: string;
  readonly addresses: string;
  readonly firstAddress: string;
  readonly conditions: string;
  readonly ready: string;
  readonly serving: string;
  readonly terminating: string;
  readonly nodeName: string;
  readonly zone: string;
  readonly hints: string;
  readonly forZones: string;
}

// Built per endpoint, these names were most of what decoding a slice allocated (~600 B an endpoint),
// for errors that almost never come.
const ENDPOINT_FIELDS: EndpointFields[] = [];
const ENDPOINT_FIELDS_KEPT = 1024;

function endpointFields(i: number): EndpointFields {
  const known = ENDPOINT_FIELDS[i];
  if (known !== undefined) return known;
  const at = `endpoints[${i}]`;
  const fields: EndpointFields = {
    at,
    addresses: `${at}.addresses`,
    firstAddress: `${at}.addresses[0]`,
    conditions: `${at}.conditions`,
    ready: `${at}.conditions.ready`,
    serving: `${at}.conditions.serving`,
    terminating: `${at}.conditions.terminating`,
    nodeName: `${at}.nodeName`,
    zone: `${at}.zone`,
    hints: `${at}.hints`,
    forZones: `${at}.hints.forZones`,
  };
  if (i < ENDPOINT_FIELDS_KEPT) ENDPOINT_FIELDS[i] = fields;
  return fields;
}

function decodeEndpoint(f: ObjectFields, item: unknown, at: EndpointFields, family: Family): SliceEndpoint {
  const e = f.record(at.at, item) ?? f.fail(at.at, 'missing');
  // Every address is checked, the first kept.
  const addresses = f.list(at.addresses, e['addresses']);
  if (addresses.length === 0) f.fail(at.addresses, 'missing');
  const address = f.ip(at.firstAddress, addresses[0], family);
  for (let j = 1; j < addresses.length; j++) f.ip(`${at.addresses}[${j}]`, addresses[j], family);
  const conditions = f.record(at.conditions, e['conditions']);
  // The API's nil meanings: ready unknown = ready, serving unknown = as ready, terminating unknown = not.
  const ready = f.boolean(at.ready, conditions?.['ready']) ?? true;
  const serving = f.boolean(at.serving, conditions?.['serving']) ?? ready;
  const terminating = f.boolean(at.terminating, conditions?.['terminating']) ?? false;
  const nodeName = f.string(at.nodeName, e['nodeName']);
  // Checked, not kept: a proxy routes by the hints, never by the endpoint's own zone (kube-proxy too).
  f.string(at.zone, e['zone']);
  const hints = f.record(at.hints, e['hints']);
  const forZones = f.list(at.forZones, hints?.['forZones']);
  const zoneHints = forZones.length === 0 ? EMPTY : forZones.map((z, k) => {
    const hint = f.record(`${at.forZones}[${k}]`, z);
    const name = f.string(`${at.forZones}[${k}].name`, hint?.['name']);
    return name === undefined || name === '' ? f.fail(`${at.forZones}[${k}].name`, 'missing') : name;
  });
  // A plain literal, every key always present: built from conditional spreads, each endpoint took a
  // slot more (8 B; 100,000 endpoints).
  return { address, ready, serving, terminating, nodeName: nodeName === undefined || nodeName === '' ? undefined : interned(nodeName), zoneHints };
}

/**
 * Node names, one string each however many endpoints name them: parsed JSON gives every
 * endpoint its own copy (~40 B each, 100,000 endpoints). Emptied at its bound, so names of nodes long
 * gone are not kept for ever.
 */
const NAMES = new Map<string, string>();
const NAMES_BOUND = 65_536;

function interned(name: string): string {
  const known = NAMES.get(name);
  if (known !== undefined) return known;
  if (NAMES.size >= NAMES_BOUND) NAMES.clear();
  NAMES.set(name, name);
  return name;
}
