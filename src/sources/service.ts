// Kubernetes Service → Service. A bad field rejects the whole Service with one error naming it and the
// field: half a Service would expose the wrong port or forward to the wrong place. Defaults are the
// API server's, since cluster-file objects never went through it.
import { EMPTY, orEmpty } from '../model/lists.js';
import { type Cidr, type Family, type Ip, ParseError, parseCidr, parseIp } from '../model/ip.js';
import { PROTOCOLS, type Protocol } from '../model/service.js';
import {
  type LoadBalancerIngress,
  SERVICE_TYPES,
  type Service,
  type ServicePortSpec,
  type ServiceType,
  type TrafficPolicy,
} from '../services/input.js';
import { DNS_LABEL, DNS_SUBDOMAIN, type KubeObject, isRecord, stringMap } from './objects.js';
import { InvalidObjectError, type ObjectKind } from './problem.js';

export const SERVICE_PROXY_NAME_LABEL = 'service.kubernetes.io/service-proxy-name';
export const DEFAULT_AFFINITY_TIMEOUT_SECONDS = 10800;
const MAX_AFFINITY_TIMEOUT_SECONDS = 86400;

/**
 * Reads the fields of one object and rejects the object as a whole at the first bad one. Shared by
 * the Service and EndpointSlice decoders, which must agree on what a port or protocol is.
 */
export class ObjectFields {
  readonly object: string;

  /** `namespaced` false for cluster-scoped kinds (Node), named without a namespace. */
  constructor(
    private readonly kind: ObjectKind,
    obj: KubeObject,
    namespaced = true,
  ) {
    const name = typeof obj.metadata?.name === 'string' ? obj.metadata.name : '';
    this.object = namespaced ? `${this.namespaceOf(obj)}/${name}` : name;
    if (name === '') this.fail('metadata.name', 'missing');
    // The API server enforces these; a cluster file does not, and names reach rule comments and logs.
    if (!DNS_SUBDOMAIN.test(name)) this.fail('metadata.name', `"${name}" is not a DNS subdomain (a-z, 0-9, '-' and '.')`);
    // A namespace that is not a string (`namespace: 2024` unquoted in a cluster file) is junk, not `default`.
    const ns: unknown = obj.metadata?.namespace;
    if (namespaced && ns !== undefined && ns !== null && typeof ns !== 'string') this.fail('metadata.namespace', `${describe(ns)} is not a string`);
    if (namespaced && !DNS_LABEL.test(this.namespaceOf(obj))) this.fail('metadata.namespace', 'not a DNS label (a-z, 0-9 and \'-\', at most 63)');
  }

  /** metadata.namespace, `default` when absent as the API server would set it. */
  namespaceOf(obj: KubeObject): string {
    const ns = obj.metadata?.namespace;
    return typeof ns === 'string' && ns !== '' ? ns : 'default';
  }

  fail(field: string, message: string): never {
    throw new InvalidObjectError({ kind: this.kind, object: this.object, field, message });
  }

  labels(obj: KubeObject): Readonly<Record<string, string>> {
    const labels = stringMap(obj.metadata?.labels ?? {});
    return labels ?? this.fail('metadata.labels', 'not a map of strings');
  }

  /** undefined and null read as absent. */
  record(field: string, value: unknown): Record<string, unknown> | undefined {
    if (value === undefined || value === null) return undefined;
    return isRecord(value) ? value : this.fail(field, `${describe(value)} is not an object`);
  }

  /** undefined and null read as empty. */
  list(field: string, value: unknown): readonly unknown[] {
    if (value === undefined || value === null) return EMPTY;
    return Array.isArray(value) ? value : this.fail(field, `${describe(value)} is not a list`);
  }

  /** undefined and null read as absent. */
  string(field: string, value: unknown): string | undefined {
    if (value === undefined || value === null) return undefined;
    return typeof value === 'string' ? value : this.fail(field, `${describe(value)} is not a string`);
  }

  /** A Service or EndpointSlice port name: '' (the unnamed port) or a DNS label, as the API server requires. */
  portName(field: string, value: unknown): string {
    const name = this.string(field, value) ?? '';
    if (name !== '' && !DNS_LABEL.test(name)) this.fail(field, `${JSON.stringify(name)} is not a DNS label (a-z, 0-9 and '-', at most 63)`);
    return name;
  }

  /** undefined and null read as absent. */
  boolean(field: string, value: unknown): boolean | undefined {
    if (value === undefined || value === null) return undefined;
    return typeof value === 'boolean' ? value : this.fail(field, `${describe(value)} is not true or false`);
  }

  /** A string from `choices`; absent or '' reads as `fallback`. */
  choice<T extends string>(field: string, value: unknown, choices: readonly T[], fallback: T): T {
    const text = this.string(field, value);
    if (text === undefined || text === '') return fallback;
    if ((choices as readonly string[]).includes(text)) return text as T;
    return this.fail(field, `"${text}" is not one of ${choices.join(', ')}`);
  }

  ip(field: string, value: unknown, family?: Family): Ip {
    const text = this.string(field, value) ?? this.fail(field, 'missing');
    const ip = this.parse(field, () => parseIp(text));
    if (family !== undefined && ip.family !== family) this.fail(field, `"${text}" is not an IPv${family} address`);
    return ip;
  }

  cidr(field: string, value: unknown): Cidr {
    // kube-proxy trims source ranges before parsing them; so do we.
    const text = (this.string(field, value) ?? this.fail(field, 'missing')).trim();
    return this.parse(field, () => parseCidr(text));
  }

  integer(field: string, value: unknown, min: number, max: number, what: string): number {
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
      return this.fail(field, `${describe(value)} is not ${what} (${min}-${max})`);
    }
    return value;
  }

  port(field: string, value: unknown): number {
    if (value === undefined || value === null) return this.fail(field, 'missing');
    return this.integer(field, value, 1, 65535, 'a port');
  }

  /** Absent, null and 0 (not allocated) read as no port. */
  optionalPort(field: string, value: unknown): number | undefined {
    return value === undefined || value === null || value === 0 ? undefined : this.port(field, value);
  }

  /** TCP when absent, as the API server defaults it. */
  protocol(field: string, value: unknown): Protocol {
    return this.choice(field, value, PROTOCOLS, 'TCP');
  }

  private parse<T>(field: string, fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      if (err instanceof ParseError) return this.fail(field, err.message);
      throw err;
    }
  }
}

function describe(value: unknown): string {
  return value === undefined ? 'missing' : JSON.stringify(value);
}

export function decodeService(obj: KubeObject): Service {
  const f = new ObjectFields('Service', obj);
  const labels = f.labels(obj);
  const spec = f.record('spec', obj.spec) ?? f.fail('spec', 'missing');
  const type = f.choice('spec.type', spec['type'], SERVICE_TYPES, 'ClusterIP');
  const { headless, clusterIPs } = decodeClusterIPs(f, spec);
  const ports = decodePorts(f, spec, type);
  const externalIPs = f.list('spec.externalIPs', spec['externalIPs']).map((v, i) => f.ip(`spec.externalIPs[${i}]`, v));
  const affinity = f.choice('spec.sessionAffinity', spec['sessionAffinity'], ['None', 'ClientIP'] as const, 'None');
  const externalTrafficPolicy = f.choice('spec.externalTrafficPolicy', spec['externalTrafficPolicy'], ['Cluster', 'Local', 'Global'] as const, 'Cluster');
  const internalTrafficPolicy: TrafficPolicy = f.choice('spec.internalTrafficPolicy', spec['internalTrafficPolicy'], ['Cluster', 'Local'] as const, 'Cluster');
  const healthCheckNodePort = f.optionalPort('spec.healthCheckNodePort', spec['healthCheckNodePort']);
  const loadBalancerSourceRanges = f
    .list('spec.loadBalancerSourceRanges', spec['loadBalancerSourceRanges'])
    .map((v, i) => f.cidr(`spec.loadBalancerSourceRanges[${i}]`, v));
  const proxyName = labels[SERVICE_PROXY_NAME_LABEL];
  const sessionAffinityTimeoutSeconds = affinity === 'ClientIP' ? decodeAffinityTimeout(f, spec) : undefined;
  return {
    namespace: f.namespaceOf(obj),
    name: obj.metadata?.name as string,
    type,
    headless,
    clusterIPs,
    ports,
    externalIPs: orEmpty(externalIPs),
    ...(sessionAffinityTimeoutSeconds !== undefined && { sessionAffinityTimeoutSeconds }),
    // `Global` is the pre-1.14 spelling of Cluster; old manifests still carry it.
    externalTrafficPolicy: externalTrafficPolicy === 'Local' ? 'Local' : 'Cluster',
    internalTrafficPolicy,
    ...(healthCheckNodePort !== undefined && { healthCheckNodePort }),
    loadBalancerSourceRanges: orEmpty(loadBalancerSourceRanges),
    loadBalancerIngress: orEmpty(decodeIngress(f, obj.status)),
    ...(proxyName !== undefined && { proxyName }),
  };
}

// spec.clusterIPs wins over spec.clusterIP (which must then be its first entry); `None` is headless.
function decodeClusterIPs(f: ObjectFields, spec: Record<string, unknown>): { headless: boolean; clusterIPs: readonly Ip[] } {
  const single = f.string('spec.clusterIP', spec['clusterIP']) ?? '';
  const list = f.list('spec.clusterIPs', spec['clusterIPs']).map((v, i) => f.string(`spec.clusterIPs[${i}]`, v) ?? f.fail(`spec.clusterIPs[${i}]`, 'missing'));
  if (list.length > 0 && single !== '' && single !== list[0]) {
    f.fail('spec.clusterIP', `"${single}" is not spec.clusterIPs[0] ("${list[0]}")`);
  }
  const texts = list.length > 0 ? list : single === '' ? [] : [single];
  const field = (i: number): string => (list.length > 0 ? `spec.clusterIPs[${i}]` : 'spec.clusterIP');
  if (texts[0] === 'None') {
    if (texts.length > 1) f.fail('spec.clusterIPs', 'None must be the only entry');
    return { headless: true, clusterIPs: orEmpty([]) };
  }
  if (texts.length > 2) f.fail('spec.clusterIPs', 'more than one address per IP family');
  const clusterIPs = texts.map((t, i) => f.ip(field(i), t));
  if (clusterIPs.length === 2 && clusterIPs[0]?.family === clusterIPs[1]?.family) {
    f.fail('spec.clusterIPs[1]', `"${texts[1]}" is of the same IP family as spec.clusterIPs[0]`);
  }
  return { headless: false, clusterIPs };
}

function decodePorts(f: ObjectFields, spec: Record<string, unknown>, type: ServiceType): ServicePortSpec[] {
  const items = f.list('spec.ports', spec['ports']);
  const byName = new Map<string, number>();
  const byNumber = new Map<string, number>();
  return items.map((item, i): ServicePortSpec => {
    const at = `spec.ports[${i}]`;
    const p = f.record(at, item) ?? f.fail(at, 'missing');
    const name = f.portName(`${at}.name`, p['name']);
    if (name === '' && items.length > 1) f.fail(`${at}.name`, 'missing (every port of a multi-port Service needs one)');
    const sameName = byName.get(name);
    if (sameName !== undefined) f.fail(`${at}.name`, `"${name}" is also the name of spec.ports[${sameName}]`);
    byName.set(name, i);
    const protocol = f.protocol(`${at}.protocol`, p['protocol']);
    const port = f.port(`${at}.port`, p['port']);
    const sameNumber = byNumber.get(`${port}/${protocol}`);
    if (sameNumber !== undefined) f.fail(at, `${port}/${protocol} is also spec.ports[${sameNumber}]`);
    byNumber.set(`${port}/${protocol}`, i);
    const nodePort = f.optionalPort(`${at}.nodePort`, p['nodePort']);
    if (nodePort !== undefined && type !== 'NodePort' && type !== 'LoadBalancer') {
      f.fail(`${at}.nodePort`, `not allowed for type ${type}`);
    }
    return { name, protocol, port, ...(nodePort !== undefined && { nodePort }) };
  });
}

function decodeAffinityTimeout(f: ObjectFields, spec: Record<string, unknown>): number {
  const config = f.record('spec.sessionAffinityConfig', spec['sessionAffinityConfig']);
  const clientIP = f.record('spec.sessionAffinityConfig.clientIP', config?.['clientIP']);
  const timeout = clientIP?.['timeoutSeconds'];
  if (timeout === undefined || timeout === null) return DEFAULT_AFFINITY_TIMEOUT_SECONDS;
  return f.integer('spec.sessionAffinityConfig.clientIP.timeoutSeconds', timeout, 1, MAX_AFFINITY_TIMEOUT_SECONDS, 'a timeout in seconds');
}

function decodeIngress(f: ObjectFields, status: unknown): LoadBalancerIngress[] {
  const loadBalancer = f.record('status.loadBalancer', f.record('status', status)?.['loadBalancer']);
  const out: LoadBalancerIngress[] = [];
  f.list('status.loadBalancer.ingress', loadBalancer?.['ingress']).forEach((item, i) => {
    const at = `status.loadBalancer.ingress[${i}]`;
    const entry = f.record(at, item) ?? f.fail(at, 'missing');
    const ipMode = f.choice(`${at}.ipMode`, entry['ipMode'], ['VIP', 'Proxy'] as const, 'VIP');
    // A hostname-only ingress (some cloud load balancers) has nothing to capture on the node.
    if (entry['ip'] === undefined || entry['ip'] === null || entry['ip'] === '') return;
    out.push({ ip: f.ip(`${at}.ip`, entry['ip']), ipMode });
  });
  return out;
}
