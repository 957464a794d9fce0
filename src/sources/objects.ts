// The Kubernetes-shaped objects wirelane reads, as far as it reads them. Both sources (the API and the
// cluster file) hand over plain JSON, so every field is checked at decode time, never trusted.

export interface ObjectMeta {
  readonly name?: string;
  readonly namespace?: string;
  readonly labels?: Readonly<Record<string, string>>;
  readonly annotations?: Readonly<Record<string, string>>;
  readonly resourceVersion?: string;
}

export interface KubeObject {
  readonly apiVersion?: string;
  readonly kind?: string;
  readonly metadata?: ObjectMeta;
  readonly spec?: unknown;
  readonly status?: unknown;
}

/** A namespace or port name: RFC 1123 label (a-z, 0-9 and '-', at most 63). */
export const DNS_LABEL = /^(?=.{1,63}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** An object name such as a Node's or a Service's: RFC 1123 subdomain, also safe as a file name. */
export const DNS_SUBDOMAIN = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A string map such as labels or annotations; undefined when the value has another shape. */
export function stringMap(value: unknown): Record<string, string> | undefined {
  if (!isRecord(value)) return undefined;
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(value)) {
    if (typeof v !== 'string') return undefined;
    out[k] = v;
  }
  return out;
}

export function nameOf(obj: KubeObject): string {
  const name = obj.metadata?.name ?? '';
  const ns = obj.metadata?.namespace;
  return ns ? `${ns}/${name}` : name;
}

const LAST_APPLIED = 'kubectl.kubernetes.io/last-applied-configuration';

/**
 * The object without what no decoder reads and what makes it large: metadata.managedFields and
 * kubectl's last-applied copy of the object (everywhere), a Node's status (images, conditions: the
 * agent reads none of it), a Service's status but its load balancer, and an EndpointSlice
 * endpoint's targetRef. Sources keep objects this way: at 1,000 Nodes and 10,000 slices, holding
 * whole objects costs more than everything the agent computes from them. Everything else is kept as
 * it came, for the decoders to check.
 */
export function trimObject(kind: string | undefined, object: KubeObject): KubeObject {
  const metadata = object.metadata;
  let out: Record<string, unknown> = object as Record<string, unknown>;
  const copy = (): Record<string, unknown> => (out === object ? (out = { ...object }) : out);
  if (isRecord(metadata) && ('managedFields' in metadata || (isRecord(metadata.annotations) && LAST_APPLIED in metadata.annotations))) {
    const { managedFields: _fields, ...rest } = metadata as Record<string, unknown>;
    if (isRecord(rest['annotations']) && LAST_APPLIED in rest['annotations']) {
      const { [LAST_APPLIED]: _applied, ...annotations } = rest['annotations'];
      rest['annotations'] = annotations;
    }
    copy()['metadata'] = rest;
  }
  if (kind === 'Node' && 'status' in object) delete copy()['status'];
  if (kind === 'Service' && isRecord(object.status) && Object.keys(object.status).some((k) => k !== 'loadBalancer')) {
    copy()['status'] = 'loadBalancer' in object.status ? { loadBalancer: object.status['loadBalancer'] } : {};
  }
  const endpoints = (object as Record<string, unknown>)['endpoints'];
  if (kind === 'EndpointSlice' && Array.isArray(endpoints) && endpoints.some((e) => isRecord(e) && 'targetRef' in e)) {
    copy()['endpoints'] = endpoints.map((e: unknown) => {
      if (!isRecord(e) || !('targetRef' in e)) return e;
      const { targetRef: _ref, ...rest } = e;
      return rest;
    });
  }
  return out as KubeObject;
}
