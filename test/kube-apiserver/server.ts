// A test-only Kubernetes API server over node:http: LIST, GET, WATCH, POST, PUT, PATCH and DELETE
// for the resources in resources.ts, enough for @kubernetes/client-node informers to run against it unmodified,
// plus controls a test uses to change objects, to break watches on purpose and to inject faults
// (faults.ts: outages, 410 on watches, slow lists, missing or forbidden resources). It counts what
// its watches deliver, per client (deliveries()): the figure a fan-out is measured by.
import { EventEmitter, once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { FaultSwitches, type OutageOptions, type ResourceAnswer, type WatchAnswer } from './faults.js';
import { defaultTestToken, writeKubeconfig } from './kubeconfig.js';
import { applyPatch, patchTypeOf } from './patch.js';
import { type ResourceName, type ResourceType, apiVersionOf, resourceTypes } from './resources.js';
import { type Route, routeOf } from './routes.js';
import { type ObjectFilter, parseFieldSelector, parseLabelSelector } from './selectors.js';
import { type Change, type KubeObject, ObjectStore, type ObjectRef, notFound } from './store.js';
import { type Status, StatusError } from './status.js';

export interface KubeApiServerOptions {
  // Address to listen on; 127.0.0.1 unless an agent in another network namespace must reach it.
  readonly host?: string;
  readonly port?: number;
  // How many changes (over all resources) watches can replay; older resourceVersions get 410.
  readonly historyLimit?: number;
  // When set, every request must carry `Authorization: Bearer <token>`, or it gets 401.
  readonly token?: string;
}

export type RequestVerb = 'list' | 'watch' | 'get' | 'create' | 'update' | 'patch' | 'delete' | 'other';

export interface RequestRecord {
  readonly method: string;
  readonly path: string;
  readonly query: string;
  readonly verb: RequestVerb;
  readonly resource?: ResourceName;
  readonly contentType?: string;
  // When it arrived (Date.now()).
  readonly at: number;
  // The HTTP status answered; 0 until the response has closed (a watch: until it ends).
  status: number;
}

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';

export interface WatchEvent {
  readonly type: WatchEventType;
  readonly object: KubeObject | Status;
}

/** What the watches of one client (or one watch) were sent: events (bookmarks included) and bytes. */
export interface Delivered {
  events: number;
  bytes: number;
  /** Watch requests that were answered with a stream. */
  watches: number;
  /** Object events (bookmarks aside) per object, `namespace/name` or `name`: who was told of what. */
  readonly objects: Map<string, number>;
}

interface OpenWatch {
  readonly type: ResourceType;
  /** Its client's tally: the User-Agent, else the remote address (see deliveries()). */
  readonly delivered: Delivered;
  readonly filter: ObjectFilter;
  readonly bookmarks: boolean;
  readonly response: ServerResponse;
  timer?: NodeJS.Timeout;
}

const maxBodyBytes = 1 << 20;
const COMMA = Buffer.from(',');

export class KubeApiServer {
  private readonly store: ObjectStore;
  private readonly watches = new Set<OpenWatch>();
  private readonly log: RequestRecord[] = [];
  private readonly requestEvents = new EventEmitter();
  private readonly unsubscribe: () => void;
  private readonly faults = new FaultSwitches();
  private watchCutter: NodeJS.Timeout | undefined;
  private delivered = new Map<string, Delivered>();

  private constructor(
    private readonly server: Server,
    readonly host: string,
    readonly port: number,
    private readonly token: string | undefined,
    historyLimit: number,
  ) {
    this.store = new ObjectStore(historyLimit);
    this.unsubscribe = this.store.subscribe((change) => this.fanOut(change));
    server.on('request', (req: IncomingMessage, res: ServerResponse) => void this.handle(req, res));
  }

  static async start(options: KubeApiServerOptions = {}): Promise<KubeApiServer> {
    const host = options.host ?? '127.0.0.1';
    const server = createServer({ noDelay: true });
    server.listen(options.port ?? 0, host);
    await once(server, 'listening');
    const { port } = server.address() as AddressInfo; // a TCP listener always has an AddressInfo
    return new KubeApiServer(server, host, port, options.token, options.historyLimit ?? 1000);
  }

  get url(): string {
    return `http://${this.host.includes(':') ? `[${this.host}]` : this.host}:${this.port}`;
  }

  // The current (latest) resourceVersion, as a LIST would report it.
  get resourceVersion(): string {
    return this.store.resourceVersion;
  }

  create(resource: ResourceName, object: KubeObject): KubeObject {
    return this.store.create(resource, object);
  }

  update(resource: ResourceName, object: KubeObject): KubeObject {
    return this.store.update(resource, object);
  }

  delete(resource: ResourceName, ref: ObjectRef, namespace?: string): KubeObject {
    return this.store.delete(resource, ref, namespace);
  }

  get(resource: ResourceName, ref: ObjectRef, namespace?: string): KubeObject | undefined {
    return this.store.get(resource, ref, namespace);
  }

  list(resource: ResourceName, namespace?: string): KubeObject[] {
    return this.store.list(resource, namespace);
  }

  // Every resourceVersion handed out so far becomes too old: the next watch from one of them
  // gets an ERROR event with a 410 Expired Status, which makes an informer LIST again.
  expireHistory(): void {
    this.store.expireHistory();
  }

  // Closes every open watch. By default the stream ends cleanly, as when a real server's watch
  // times out (client-node's ListWatch then watches again at once from its last resourceVersion).
  // With abrupt, the socket is destroyed mid-stream, as when a server dies; client-node 1.4.0
  // reports that as an informer 'error' and does not restart by itself.
  dropWatches(options: { readonly abrupt?: boolean } = {}): number {
    const dropped = [...this.watches];
    for (const watch of dropped) this.cutWatch(watch, options.abrupt ?? false);
    return dropped.length;
  }

  // Sends a BOOKMARK at the current resourceVersion to every watch that allowed bookmarks.
  sendBookmarks(): number {
    const targets = [...this.watches].filter((w) => w.bookmarks);
    for (const watch of targets) this.writeEvent(watch, this.bookmarkOf(watch.type));
    return targets.length;
  }

  // --- Faults -------------------------------------------------------------------------------
  // Every request (or only the given verbs/resources) fails with `status` (500 unless given), for
  // `forMs` or until stopFailingRequests(). Open watches are cut abruptly at the start, as when an
  // API server restarts or its etcd goes away, unless keepWatches is set.
  failRequests(options: OutageOptions & { readonly keepWatches?: boolean } = {}): void {
    this.faults.startOutage(options);
    if (!options.keepWatches) {
      const cut = [...this.watches].filter((w) => options.resources === undefined || options.resources.includes(w.type.name));
      for (const watch of cut) this.cutWatch(watch, true);
    }
  }

  stopFailingRequests(): void {
    this.faults.stopOutage();
  }

  // True while a failRequests() outage is on and has not run out.
  get failingRequests(): boolean {
    return this.faults.inOutage;
  }

  // Cuts every open watch every `ms` (cleanly unless abrupt); 0 stops it.
  cutWatchesEvery(ms: number, options: { readonly abrupt?: boolean } = {}): void {
    clearInterval(this.watchCutter);
    this.watchCutter = undefined;
    if (ms <= 0) return;
    this.watchCutter = setInterval(() => this.dropWatches(options), ms);
    this.watchCutter.unref();
  }

  // Every new watch is answered 410 Gone: 'gone-event' as the watch cache does (an ERROR event in a
  // 200 stream), 'gone-status' as an HTTP 410; 'served' switches it off.
  answerWatches(answer: WatchAnswer): void {
    this.faults.watchAnswer = answer;
  }

  // Every LIST (of one resource, or of all) is answered `ms` late, with the state of when it was
  // asked (its resourceVersion too); 0 switches it off.
  delayLists(ms: number, resource?: ResourceName): void {
    this.faults.delayLists(ms, resource);
  }

  // 'missing': every request on the resource gets 404, as when its CRD is not installed (open watches
  // end, as on a CRD's removal); 'forbidden': 403, as RBAC answers; 'served': back to normal.
  setResourceAnswer(resource: ResourceName, answer: ResourceAnswer): void {
    this.faults.setAnswer(resource, answer);
    if (answer === 'missing') for (const watch of [...this.watches].filter((w) => w.type.name === resource)) this.cutWatch(watch, false);
  }

  // Switches every fault off.
  clearFaults(): void {
    this.faults.clear();
    this.cutWatchesEvery(0);
  }

  // What watches sent each client since the start (or resetDeliveries()), keyed by its User-Agent
  // header, or by its remote address when it sends none; a resource narrows it to that resource's watches.
  deliveries(resource?: ResourceName): ReadonlyMap<string, Readonly<Delivered>> {
    const out = new Map<string, Delivered>();
    for (const [key, tally] of this.delivered) {
      const [client = '', name] = splitDeliveryKey(key);
      if (resource !== undefined && name !== resource) continue;
      const sum = out.get(client) ?? { events: 0, bytes: 0, watches: 0, objects: new Map<string, number>() };
      sum.events += tally.events;
      sum.bytes += tally.bytes;
      sum.watches += tally.watches;
      for (const [object, n] of tally.objects) sum.objects.set(object, (sum.objects.get(object) ?? 0) + n);
      out.set(client, sum);
    }
    return out;
  }

  resetDeliveries(): void {
    // Zeroed in place: open watches keep counting into the same tallies.
    for (const tally of this.delivered.values()) {
      Object.assign(tally, { events: 0, bytes: 0, watches: 0 });
      tally.objects.clear();
    }
  }

  openWatches(resource?: ResourceName): number {
    return [...this.watches].filter((w) => resource === undefined || w.type.name === resource).length;
  }

  get requests(): readonly RequestRecord[] {
    return this.log;
  }

  requestCount(verb: RequestVerb, resource?: ResourceName): number {
    return this.requestsOf(verb, resource).length;
  }

  // The requests of one verb (and resource), oldest first.
  requestsOf(verb: RequestVerb, resource?: ResourceName): readonly RequestRecord[] {
    return this.log.filter((r) => r.verb === verb && (resource === undefined || r.resource === resource));
  }

  // Resolves once `count` requests of this verb (and resource) have arrived in total.
  async waitForRequests(verb: RequestVerb, resource: ResourceName | undefined, count: number, timeoutMs = 5000): Promise<void> {
    const reached = (): boolean => this.requestCount(verb, resource) >= count;
    if (reached()) return;
    await new Promise<void>((resolve, reject) => {
      const check = (): void => {
        if (!reached()) return;
        clearTimeout(timer);
        this.requestEvents.off('request', check);
        resolve();
      };
      const timer = setTimeout(() => {
        this.requestEvents.off('request', check);
        reject(
          new Error(`waited ${timeoutMs} ms for ${count} ${verb} requests on ${resource ?? 'any resource'}, saw ${this.requestCount(verb, resource)}`),
        );
      }, timeoutMs);
      this.requestEvents.on('request', check);
    });
  }

  async writeKubeconfig(path: string): Promise<void> {
    await writeKubeconfig(path, this.url, this.token ?? defaultTestToken);
  }

  async close(): Promise<void> {
    this.unsubscribe();
    this.clearFaults();
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.dropWatches();
    this.server.closeAllConnections();
    await closed;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://request.invalid');
    const method = req.method ?? 'GET';
    const query = url.searchParams;
    const watching = isTrue(query.get('watch'));
    let route: Route | undefined;
    let failure: unknown;
    try {
      route = routeOf(url.pathname);
    } catch (err) {
      failure = err;
    }
    const record: RequestRecord = {
      method,
      path: url.pathname,
      query: url.search,
      verb: verbOf(method, watching, route),
      ...(route ? { resource: route.type.name } : {}),
      ...(req.headers['content-type'] ? { contentType: req.headers['content-type'] } : {}),
      at: Date.now(),
      status: 0,
    };
    this.log.push(record);
    res.on('close', () => (record.status = res.statusCode));
    this.requestEvents.emit('request', record);

    try {
      if (this.token !== undefined && req.headers.authorization !== `Bearer ${this.token}`) {
        throw new StatusError(401, 'Unauthorized', 'Unauthorized: missing or wrong bearer token');
      }
      if (!route) throw failure;
      const fault = this.faults.failureFor(record.verb, route.type.name);
      if (fault) throw fault;
      if (method === 'GET' && watching) this.startWatch(route, query, req, res);
      else if (method === 'GET' && route.name !== undefined) sendJson(res, 200, this.getOrThrow(route, route.name));
      else if (method === 'GET') {
        const list = this.listOf(route, query);
        const delay = this.faults.listDelayOf(route.type.name);
        if (delay > 0) await sleep(delay, undefined, { ref: false });
        if (!res.destroyed) sendBody(res, 200, list);
      }
      else if (method === 'PATCH' && route.name !== undefined) sendJson(res, 200, await this.patch(route, route.name, req, query));
      else if (method === 'POST' && route.name === undefined) sendJson(res, 201, await this.createFrom(route, req));
      else if (method === 'PUT' && route.name !== undefined) sendJson(res, 200, await this.replace(route, route.name, req));
      else if (method === 'DELETE' && route.name !== undefined) {
        this.getOrThrow(route, route.name);
        sendJson(res, 200, this.store.delete(route.type.name, route.name, route.namespace));
      } else {
        throw new StatusError(
          405,
          'MethodNotAllowed',
          `${method} ${url.pathname} is not supported by the test API server (it serves GET list/get/watch, POST, and PUT, PATCH and DELETE of one object)`,
        );
      }
    } catch (err) {
      const status =
        err instanceof StatusError ? err : new StatusError(500, 'InternalError', `internal error: ${err instanceof Error ? err.message : String(err)}`);
      if (res.headersSent) res.destroy();
      else sendJson(res, status.code, status.toStatus());
    }
  }

  private getOrThrow(route: Route, name: string): KubeObject {
    const found = this.store.get(route.type.name, name, route.namespace);
    if (!found || (route.namespace === undefined && route.type.namespaced)) throw notFound(route.type, name);
    return found;
  }

  private listOf(route: Route, query: URLSearchParams): Buffer {
    this.checkNotFuture(route, query.get('resourceVersion'));
    const items = this.store.listItemsJson(route.type.name, route.namespace, filterOf(route, query));
    const head = { apiVersion: apiVersionOf(route.type), kind: `${route.type.kind}List`, metadata: { resourceVersion: this.store.resourceVersion } };
    const parts: Buffer[] = [Buffer.from(`${JSON.stringify(head).slice(0, -1)},"items":[`)];
    items.forEach((item, i) => {
      if (i > 0) parts.push(COMMA);
      parts.push(item);
    });
    parts.push(Buffer.from(']}'));
    return Buffer.concat(parts);
  }

  // POST to a collection, as `kubectl create` does: the body is the object (409 when it exists).
  private async createFrom(route: Route, req: IncomingMessage): Promise<KubeObject> {
    let object: unknown;
    try {
      object = JSON.parse(await readBody(req));
    } catch (err) {
      throw new StatusError(400, 'BadRequest', `POST ${route.type.name}: body is not JSON: ${(err as Error).message}`);
    }
    const meta = (object as { metadata?: { name?: unknown; namespace?: unknown } } | null)?.metadata;
    if (typeof object !== 'object' || object === null || Array.isArray(object) || typeof meta?.name !== 'string') {
      throw new StatusError(422, 'Invalid', `POST ${route.type.name}: want an object with metadata.name`);
    }
    if (route.namespace !== undefined && meta.namespace !== undefined && meta.namespace !== route.namespace) {
      throw new StatusError(400, 'BadRequest', `POST ${route.type.name}: metadata.namespace does not match the path`);
    }
    const input = object as KubeObject; // checked just above: a non-array object with metadata.name
    return this.store.create(route.type.name, route.namespace === undefined ? input : { ...input, metadata: { ...input.metadata, namespace: route.namespace } });
  }

  // PUT of one object, as client-go's Update: the whole object, its resourceVersion a precondition
  // (409 when stale). Without one, types that refuse unconditional updates (Leases) answer 422.
  private async replace(route: Route, name: string, req: IncomingMessage): Promise<KubeObject> {
    let object: unknown;
    try {
      object = JSON.parse(await readBody(req));
    } catch (err) {
      throw new StatusError(400, 'BadRequest', `PUT ${route.type.name}/${name}: body is not JSON: ${(err as Error).message}`);
    }
    const meta = (object as { metadata?: { name?: unknown; namespace?: unknown; resourceVersion?: unknown } } | null)?.metadata;
    if (typeof object !== 'object' || object === null || Array.isArray(object) || typeof meta !== 'object' || meta === null) {
      throw new StatusError(422, 'Invalid', `PUT ${route.type.name}/${name}: want an object with metadata`);
    }
    if (meta.name !== name || (meta.namespace !== undefined && meta.namespace !== route.namespace)) {
      throw new StatusError(400, 'BadRequest', `PUT ${route.type.name}/${name}: metadata.name and metadata.namespace must match the path`);
    }
    if (meta.resourceVersion === undefined && !route.type.unconditionalUpdate) {
      throw new StatusError(422, 'Invalid', `${route.type.kind}.${route.type.group} "${name}" is invalid: metadata.resourceVersion: Invalid value: 0x0: must be specified for an update`);
    }
    this.getOrThrow(route, name);
    const input = object as KubeObject; // checked just above: a non-array object with metadata
    return this.store.update(route.type.name, route.namespace === undefined ? input : { ...input, metadata: { ...input.metadata, namespace: route.namespace } });
  }

  private async patch(route: Route, name: string, req: IncomingMessage, query: URLSearchParams): Promise<KubeObject> {
    const patchType = patchTypeOf(req.headers['content-type']);
    const body = await readBody(req);
    let patch: unknown;
    try {
      patch = JSON.parse(body);
    } catch (err) {
      throw new StatusError(400, 'BadRequest', `PATCH ${route.type.name}/${name}: body is not JSON: ${(err as Error).message}`);
    }
    const current = this.getOrThrow(route, name);
    const patched = applyPatch(patchType, current, patch);
    if (typeof patched !== 'object' || patched === null || Array.isArray(patched) || !('metadata' in patched)) {
      throw new StatusError(422, 'Invalid', `PATCH ${route.type.name}/${name}: the result is not an object with metadata`);
    }
    const result = patched as KubeObject; // checked just above: a non-array object with metadata
    if (result.metadata.name !== name || result.metadata.namespace !== current.metadata.namespace) {
      throw new StatusError(400, 'BadRequest', `PATCH ${route.type.name}/${name}: metadata.name and metadata.namespace cannot change`);
    }
    // A resourceVersion set by the patch is a precondition: the store answers 409 when it is stale.
    if (query.get('dryRun') === 'All') return result;
    return this.store.update(route.type.name, result);
  }

  // A resourceVersion newer than any the server has handed out: a real server's watch cache waits
  // up to 3 s for it, then answers 504 with the cause ResourceVersionTooLarge (clients then list
  // with a consistent read). Seen after an etcd restore, or from a client that talked to another
  // server; here, from a client that outlived a restarted test server. This one answers at once.
  private checkNotFuture(route: Route, requested: string | null): void {
    if (requested === null || !/^\d+$/.test(requested) || Number(requested) <= Number(this.store.resourceVersion)) return;
    throw new StatusError(504, 'Timeout', `Too large resource version: ${requested}, current: ${this.store.resourceVersion}`, {
      kind: route.type.name,
      causes: [{ reason: 'ResourceVersionTooLarge', message: 'Too large resource version' }],
    });
  }

  private startWatch(route: Route, query: URLSearchParams, req: IncomingMessage, res: ServerResponse): void {
    const filter = filterOf(route, query);
    const timeoutSeconds = parseTimeoutSeconds(query.get('timeoutSeconds'));
    const requested = query.get('resourceVersion') ?? '';
    const gone = new StatusError(410, 'Expired', `too old resource version: ${requested} (${this.store.oldestWatchableRevision})`);
    if (this.faults.watchAnswer === 'gone-status') throw gone;
    let initial: WatchEvent[];
    let expired: Status | undefined;
    // Unset or "0": start from the current state, sent as synthetic ADDED events.
    if (requested === '' || requested === '0') {
      initial = this.store
        .list(route.type.name, route.namespace)
        .filter(filter)
        .map((object) => ({ type: 'ADDED', object }));
    } else {
      if (!/^\d+$/.test(requested)) {
        throw new StatusError(400, 'BadRequest', `watch ${route.type.name}: resourceVersion "${requested}" is not a number`);
      }
      this.checkNotFuture(route, requested);
      const since = this.store.changesSince(Number(requested));
      initial = since.expired ? [] : since.changes.filter((c) => c.resource === route.type.name).flatMap((c) => eventsFor(c, filter));
      if (since.expired) expired = gone.toStatus();
    }
    if (this.faults.watchAnswer === 'gone-event') expired = gone.toStatus();

    res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private' });
    res.flushHeaders(); // a client's fetch resolves on the headers, before any event exists
    const watch: OpenWatch = {
      type: route.type,
      delivered: this.tallyOf(req, route.type.name),
      filter,
      bookmarks: isTrue(query.get('allowWatchBookmarks')),
      response: res,
    };
    watch.delivered.watches += 1;
    // A real server reports an expired resourceVersion inside a 200 watch stream and then ends it.
    if (expired) {
      this.writeEvent(watch, { type: 'ERROR', object: expired });
      res.end();
      return;
    }
    this.watches.add(watch);
    res.on('close', () => this.forget(watch));
    for (const event of initial) this.writeEvent(watch, event);
    if (timeoutSeconds > 0) {
      watch.timer = setTimeout(() => {
        if (watch.bookmarks) this.writeEvent(watch, this.bookmarkOf(watch.type));
        this.forget(watch);
        res.end();
      }, timeoutSeconds * 1000);
      watch.timer.unref();
    }
  }

  private fanOut(change: Change): void {
    for (const watch of this.watches) {
      if (watch.type.name !== change.resource) continue;
      for (const event of eventsFor(change, watch.filter)) this.writeEvent(watch, event);
    }
  }

  private writeEvent(watch: OpenWatch, event: WatchEvent): void {
    const line = `${JSON.stringify(event)}\n`;
    watch.delivered.events += 1;
    watch.delivered.bytes += Buffer.byteLength(line);
    const meta = 'metadata' in event.object ? event.object.metadata : undefined;
    if (event.type !== 'BOOKMARK' && meta?.name) {
      const key = meta.namespace === undefined ? meta.name : `${meta.namespace}/${meta.name}`;
      watch.delivered.objects.set(key, (watch.delivered.objects.get(key) ?? 0) + 1);
    }
    watch.response.write(line);
  }

  private tallyOf(req: IncomingMessage, resource: ResourceName): Delivered {
    const client = req.headers['user-agent'] ?? req.socket.remoteAddress ?? '';
    const key = `${client}\u0000${resource}`;
    let tally = this.delivered.get(key);
    if (!tally) {
      tally = { events: 0, bytes: 0, watches: 0, objects: new Map() };
      this.delivered.set(key, tally);
    }
    return tally;
  }

  private bookmarkOf(type: ResourceType): WatchEvent {
    return {
      type: 'BOOKMARK',
      object: { apiVersion: apiVersionOf(type), kind: type.kind, metadata: { name: '', resourceVersion: this.store.resourceVersion } },
    };
  }

  private cutWatch(watch: OpenWatch, abrupt: boolean): void {
    this.forget(watch);
    if (abrupt) watch.response.socket?.destroy();
    else watch.response.end();
  }

  private forget(watch: OpenWatch): void {
    clearTimeout(watch.timer);
    this.watches.delete(watch);
  }
}

export function startKubeApiServer(options?: KubeApiServerOptions): Promise<KubeApiServer> {
  return KubeApiServer.start(options);
}

// What a watch with this filter sees of one change: an object modified into or out of the
// filter appears as ADDED or DELETED, as on a real server.
function eventsFor(change: Change, filter: ObjectFilter): WatchEvent[] {
  const matchesNow = filter(change.object);
  if (change.type !== 'MODIFIED') return matchesNow ? [{ type: change.type, object: change.object }] : [];
  const matchedBefore = change.previous ? filter(change.previous) : matchesNow;
  if (matchesNow && matchedBefore) return [{ type: 'MODIFIED', object: change.object }];
  if (matchesNow) return [{ type: 'ADDED', object: change.object }];
  if (matchedBefore) return [{ type: 'DELETED', object: change.object }];
  return [];
}

function filterOf(route: Route, query: URLSearchParams): ObjectFilter {
  const filters: ObjectFilter[] = [];
  if (route.namespace !== undefined) filters.push((o) => o.metadata.namespace === route.namespace);
  if (route.name !== undefined) filters.push((o) => o.metadata.name === route.name);
  const labelSelector = query.get('labelSelector');
  if (labelSelector) filters.push(parseLabelSelector(labelSelector));
  const fieldSelector = query.get('fieldSelector');
  if (fieldSelector) filters.push(parseFieldSelector(fieldSelector));
  return (object) => filters.every((matches) => matches(object));
}

function verbOf(method: string, watching: boolean, route: Route | undefined): RequestVerb {
  if (method === 'GET' && watching) return 'watch';
  if (method === 'GET') return route && route.name === undefined ? 'list' : 'get';
  const verbs: Record<string, RequestVerb> = { PUT: 'update', PATCH: 'patch', POST: 'create', DELETE: 'delete' };
  return verbs[method] ?? 'other';
}

// Go's strconv.ParseBool, which the real server uses for query flags.
function isTrue(value: string | null): boolean {
  return value !== null && ['1', 't', 'T', 'true', 'TRUE', 'True'].includes(value);
}

function parseTimeoutSeconds(value: string | null): number {
  if (value === null || value === '') return 0;
  if (!/^\d+$/.test(value)) throw new StatusError(400, 'BadRequest', `timeoutSeconds "${value}" is not a whole number`);
  return Number(value);
}

function splitDeliveryKey(key: string): [string, string] {
  const at = key.lastIndexOf('\u0000');
  return [key.slice(0, at), key.slice(at + 1)];
}

function sendJson(res: ServerResponse, code: number, body: unknown): void {
  sendBody(res, code, JSON.stringify(body));
}

function sendBody(res: ServerResponse, code: number, json: string | Buffer): void {
  res.writeHead(code, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(json) });
  res.end(json);
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBodyBytes) throw new StatusError(413, 'RequestEntityTooLarge', `request body is larger than ${maxBodyBytes} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}
