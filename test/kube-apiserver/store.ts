// The in-memory object store: one global, increasing resourceVersion (as etcd's revision is for
// a real server), the current objects per resource, and a bounded history of changes that watches
// replay from.
import { randomUUID } from 'node:crypto';
import { type ResourceName, type ResourceType, apiVersionOf, resourceTypes } from './resources.js';
import { StatusError } from './status.js';

export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  creationTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  [field: string]: unknown;
}

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  [field: string]: unknown;
}

// Either an object (only its metadata name/namespace are read) or a bare name.
export type ObjectRef = string | { readonly metadata: { readonly name: string; readonly namespace?: string } };

export type ChangeType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface Change {
  readonly resourceVersion: number;
  readonly type: ChangeType;
  readonly resource: ResourceName;
  readonly object: KubeObject;
  // The state before a MODIFIED change, so a selector-filtered watch can tell "stopped matching".
  readonly previous?: KubeObject;
}

export type ChangesSince = { readonly expired: false; readonly changes: readonly Change[] } | { readonly expired: true };

export class ObjectStore {
  private revision = 0;
  // Every change with resourceVersion <= compactedRevision is gone from history.
  private compactedRevision = 0;
  private history: Change[] = [];
  private readonly objects = new Map<ResourceName, Map<string, KubeObject>>();
  private readonly listeners = new Set<(change: Change) => void>();
  /**
   * Each stored object's JSON as a list item, made when it is stored (a stored object is replaced,
   * never changed), as the real server answers a list from its watch cache. Encoding every object
   * for every list took a second per 10,000 EndpointSlices, while a benchmark's agent on the same
   * cores waited for it.
   */
  private readonly itemJson = new WeakMap<KubeObject, Buffer>();

  constructor(private readonly historyLimit: number) {
    if (!Number.isInteger(historyLimit) || historyLimit < 1) {
      throw new Error(`historyLimit: ${historyLimit} is not a positive integer`);
    }
  }

  get resourceVersion(): string {
    return String(this.revision);
  }

  get oldestWatchableRevision(): number {
    return this.compactedRevision;
  }

  list(resource: ResourceName, namespace?: string): KubeObject[] {
    return this.stored(resource, namespace).map((o) => structuredClone(o));
  }

  /** The JSON (UTF-8) of each stored object `include` takes, in list() order, as a list's items. */
  listItemsJson(resource: ResourceName, namespace: string | undefined, include: (object: KubeObject) => boolean): Buffer[] {
    return this.stored(resource, namespace)
      .filter(include)
      .map((o) => this.itemJson.get(o) ?? itemJsonOf(resourceTypes[resource], o));
  }

  get(resource: ResourceName, ref: ObjectRef, namespace?: string): KubeObject | undefined {
    const found = this.table(resource).get(this.keyOfRef(resource, ref, namespace));
    return found && structuredClone(found);
  }

  create(resource: ResourceName, input: KubeObject): KubeObject {
    const type = resourceTypes[resource];
    const object = normalise(type, input);
    const key = keyOf(object.metadata.namespace, object.metadata.name);
    if (this.table(resource).has(key)) {
      throw new StatusError(409, 'AlreadyExists', `${type.name} "${object.metadata.name}" already exists`, detailsOf(type, object.metadata.name));
    }
    object.metadata.uid = typeof object.metadata.uid === 'string' ? object.metadata.uid : randomUUID();
    object.metadata.creationTimestamp ??= new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    return this.commit('ADDED', resource, object);
  }

  // Replaces an object. A resourceVersion in the input must match the stored one (optimistic
  // concurrency, as a real PUT); an update that changes nothing is a no-op and emits no event.
  update(resource: ResourceName, input: KubeObject): KubeObject {
    const type = resourceTypes[resource];
    const object = normalise(type, input);
    const current = this.table(resource).get(keyOf(object.metadata.namespace, object.metadata.name));
    if (!current) throw notFound(type, object.metadata.name);
    const wanted = object.metadata.resourceVersion;
    if (wanted !== undefined && wanted !== current.metadata.resourceVersion) {
      throw new StatusError(
        409,
        'Conflict',
        `Operation cannot be fulfilled on ${type.name} "${object.metadata.name}": the object has been modified (resourceVersion ${wanted}, now ${current.metadata.resourceVersion ?? ''})`,
        detailsOf(type, object.metadata.name),
      );
    }
    object.metadata.uid = current.metadata.uid;
    object.metadata.creationTimestamp = current.metadata.creationTimestamp;
    object.metadata.resourceVersion = current.metadata.resourceVersion;
    if (canonicalJson(object) === canonicalJson(current)) return structuredClone(current);
    return this.commit('MODIFIED', resource, object, current);
  }

  delete(resource: ResourceName, ref: ObjectRef, namespace?: string): KubeObject {
    const type = resourceTypes[resource];
    const key = this.keyOfRef(resource, ref, namespace);
    const current = this.table(resource).get(key);
    if (!current) throw notFound(type, nameOfRef(ref));
    // A deletion gets its own resourceVersion, carried by the DELETED event's object.
    return this.commit('DELETED', resource, structuredClone(current));
  }

  changesSince(resourceVersion: number): ChangesSince {
    if (resourceVersion < this.compactedRevision) return { expired: true };
    return { expired: false, changes: this.history.filter((c) => c.resourceVersion > resourceVersion) };
  }

  // Forgets all history and moves the revision on, so every resourceVersion handed out so far is
  // too old to watch from (410 Expired), while a fresh LIST gives one that works.
  expireHistory(): void {
    this.revision += 1;
    this.compactedRevision = this.revision;
    this.history = [];
  }

  subscribe(listener: (change: Change) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private commit(type: ChangeType, resource: ResourceName, object: KubeObject, previous?: KubeObject): KubeObject {
    this.revision += 1;
    object.metadata.resourceVersion = String(this.revision);
    const key = keyOf(object.metadata.namespace, object.metadata.name);
    if (type === 'DELETED') this.table(resource).delete(key);
    else {
      this.table(resource).set(key, object);
      this.itemJson.set(object, itemJsonOf(resourceTypes[resource], object));
    }
    const change: Change = {
      resourceVersion: this.revision,
      type,
      resource,
      object: structuredClone(object),
      ...(previous ? { previous: structuredClone(previous) } : {}),
    };
    this.history.push(change);
    while (this.history.length > this.historyLimit) {
      const dropped = this.history.shift();
      if (dropped) this.compactedRevision = dropped.resourceVersion;
    }
    for (const listener of this.listeners) listener(change);
    return structuredClone(object);
  }

  /** The stored objects themselves, sorted by key: to read, never to change or hand out. */
  private stored(resource: ResourceName, namespace: string | undefined): KubeObject[] {
    return [...this.table(resource).values()]
      .filter((o) => namespace === undefined || o.metadata.namespace === namespace)
      .sort((a, b) => keyOf(a.metadata.namespace, a.metadata.name).localeCompare(keyOf(b.metadata.namespace, b.metadata.name)));
  }

  private table(resource: ResourceName): Map<string, KubeObject> {
    let table = this.objects.get(resource);
    if (!table) {
      table = new Map();
      this.objects.set(resource, table);
    }
    return table;
  }

  private keyOfRef(resource: ResourceName, ref: ObjectRef, namespace: string | undefined): string {
    const ns = typeof ref === 'string' ? namespace : (ref.metadata.namespace ?? namespace);
    return keyOf(resourceTypes[resource].namespaced ? (ns ?? 'default') : undefined, nameOfRef(ref));
  }
}

function keyOf(namespace: string | undefined, name: string): string {
  return namespace === undefined ? name : `${namespace}/${name}`;
}

function nameOfRef(ref: ObjectRef): string {
  return typeof ref === 'string' ? ref : ref.metadata.name;
}

// Fills in what the server owns (apiVersion, kind, scope) and checks what it needs (a name).
function normalise(type: ResourceType, input: KubeObject): KubeObject {
  const object = structuredClone(input);
  if (typeof object.metadata !== 'object' || object.metadata === null) {
    throw new StatusError(400, 'BadRequest', `${type.kind}: metadata is missing`);
  }
  const name = object.metadata.name;
  if (typeof name !== 'string' || name === '') {
    throw new StatusError(422, 'Invalid', `${type.kind}: metadata.name is required`);
  }
  const apiVersion = apiVersionOf(type);
  if (object.apiVersion !== undefined && object.apiVersion !== apiVersion) {
    throw new StatusError(400, 'BadRequest', `${type.kind} "${name}": apiVersion "${object.apiVersion}" is not ${apiVersion}`);
  }
  if (object.kind !== undefined && object.kind !== type.kind) {
    throw new StatusError(400, 'BadRequest', `${type.kind} "${name}": kind "${object.kind}" is not ${type.kind}`);
  }
  object.apiVersion = apiVersion;
  object.kind = type.kind;
  if (type.namespaced) object.metadata.namespace ??= 'default';
  else delete object.metadata.namespace;
  return object;
}

export function notFound(type: ResourceType, name: string): StatusError {
  return new StatusError(404, 'NotFound', `${type.name}${type.group ? `.${type.group}` : ''} "${name}" not found`, detailsOf(type, name));
}

function detailsOf(type: ResourceType, name: string): { name: string; kind: string; group?: string } {
  return { name, kind: type.name, ...(type.group ? { group: type.group } : {}) };
}

// JSON with object keys sorted, so two objects that differ only in key order compare equal.
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );
}

/** A list leaves out a built-in type's apiVersion and kind: the List's say them. */
function itemJsonOf(type: ResourceType, object: KubeObject): Buffer {
  if (!type.builtIn) return Buffer.from(JSON.stringify(object));
  const { apiVersion: _apiVersion, kind: _kind, ...rest } = object;
  return Buffer.from(JSON.stringify(rest));
}
