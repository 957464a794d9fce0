// One resource kept in memory by LIST then WATCH, the way client-go's reflector does it, with one
// rule above all: unknown is not empty. The store is replaced only by a list that succeeded; a failed
// list, a broken watch, a 410 or a slow answer leave the last known objects in place.
//
// Requests:
// - The first list asks for resourceVersion "0" (served from the API server's watch cache, no etcd
//   read); a later list asks for the last resourceVersion seen, also served from the cache and never
//   older than what the store holds (a lagging HA peer cannot take the store back in time). Only after
//   a list fails with 410 or "resourceVersion too large" (etcd restored, the cache behind) does the
//   next one ask for a consistent read ("").
// - The watch starts from the list's resourceVersion with bookmarks. A watch the server ends is
//   resumed from the last resourceVersion without a list; a failing watch is retried (also without a
//   list: the watch cache replays what was missed, or answers 410); only 410, 404, 403 or "too large"
//   lead to a list.
//
// Backoff (backoff.ts: 0.5 s doubling to 30 s, up to 25 % shorter at random) counts two things:
// - `failures`: consecutive requests that failed (5xx, network, timeouts, 401/403/404). Reset by any
//   successful answer: a list, or a watch the server accepted.
// - `churn`: consecutive watches that were accepted but did nothing: a 410 at once, or a clean end
//   within a second with no event. Reset by a watch that delivered an event or stayed open a second
//   (client-go's "very short watch" rule). The first one costs nothing (one re-list after a 410 is
//   normal), then it backs off, so a server that answers every watch with 410 is re-listed at most
//   every 30 s instead of in a hot loop, although every one of those lists succeeds.
// The wait before a request is the longer of the two delays; none between a list and its watch.
import type { Logger } from '../../observability/logger.js';
import type { SourceMetrics } from '../../observability/metrics.js';
import { holdObject } from '../held-object.js';
import { type KubeObject, nameOf } from '../objects.js';
import type { ReflectedKind, ResourceStatus, ResourceSyncState, SourceObjectKind } from '../source.js';
import { type ApiFailure, messageLine } from './api-failure.js';
import { backoffDelayMs } from './backoff.js';
import type { ListWatch, WatchEnd } from './list-watch.js';

/** A list must be complete within this (a real API server ends a request after 60 s itself). */
export const LIST_TIMEOUT_MS = 60_000;
/** Watches ask the server to end them after 5–10 min (client-go's spread), so they re-balance. */
const WATCH_TIMEOUT_MIN_S = 300;
/** A watch with no byte for this long past its own timeout is taken as dead. */
const WATCH_IDLE_GRACE_MS = 60_000;
/** A watch open this long, or with an event, was worth opening (not churn). */
const PRODUCTIVE_WATCH_MS = 1000;

export interface ReflectorOptions<K extends ReflectedKind> {
  readonly kind: K;
  readonly listWatch: ListWatch;
  /** Its name in metrics and logs when the path's last segment does not tell it apart (two Lease selections). */
  readonly resource?: string;
  readonly log: Logger;
  readonly metrics?: SourceMetrics;
  /** Fires after every change to the store (a watch event, or a re-list that differs). */
  readonly onChange: () => void;
  readonly random?: () => number;
  /** The longest wait between two attempts (default BACKOFF_CAP_MS). */
  readonly maxBackoffMs?: number;
}

export class Reflector<K extends ReflectedKind = SourceObjectKind> {
  private store = new Map<string, KubeObject>();
  /** The store as a list, built on demand: many events may come between two snapshots. */
  private objectList: readonly KubeObject[] | undefined;
  /** The resourceVersion the store is at: of the last list, then of every event and bookmark. */
  private resourceVersion: string | undefined;
  /** A list answered 410 or "too large": the next list is a consistent read. */
  private consistentListNeeded = false;
  private state: ResourceSyncState = 'never-synced';
  private listedOnce = false;
  private lastError: string | undefined;
  private failures = 0;
  private churn = 0;
  /** When the open watch was accepted; undefined between watches. */
  private watchOpenedAt: number | undefined;
  /** When the last list succeeded. */
  private listedAt: number | undefined;
  private readonly stopping = new AbortController();
  private running: Promise<void> | undefined;
  private settle: () => void = () => {};
  private readonly settledPromise = new Promise<void>((resolve) => (this.settle = resolve));
  private readonly random: () => number;

  constructor(private readonly options: ReflectorOptions<K>) {
    this.random = options.random ?? Math.random;
    options.metrics?.setState(this.resource, this.state);
  }

  get kind(): K {
    return this.options.kind;
  }

  /** Resolves once settled: listed successfully, or missing before any list succeeded (or stopped). */
  start(): Promise<void> {
    this.running ??= this.run();
    return this.settledPromise;
  }

  objects(): readonly KubeObject[] {
    this.objectList ??= [...this.store.values()];
    return this.objectList;
  }

  status(): ResourceStatus<K> {
    return {
      kind: this.options.kind,
      state: this.state,
      settled: this.listedOnce || this.state === 'missing',
      ...(this.lastError !== undefined ? { lastError: this.lastError } : {}),
      ...(this.watchOpenedAt !== undefined ? { watchingSince: this.watchOpenedAt } : {}),
      ...(this.listedAt !== undefined ? { lastSynced: this.listedAt } : {}),
    };
  }

  async stop(): Promise<void> {
    this.stopping.abort();
    this.settle();
    await this.running;
  }

  private backoff(failures: number, random: number): number {
    return backoffDelayMs(failures, random, this.options.maxBackoffMs);
  }

  private get resource(): string {
    return this.options.resource ?? this.options.listWatch.path.split('/').at(-1) ?? this.options.kind;
  }

  private get stopped(): boolean {
    return this.stopping.signal.aborted;
  }

  private async run(): Promise<void> {
    let needList = true;
    let listed = false;
    while (!this.stopped) {
      // The watch that follows a successful list starts at once: the store is at the list's version.
      if (!listed) await this.sleep(Math.max(this.backoff(this.failures, this.random()), this.backoff(this.churn - 1, this.random())));
      if (this.stopped) return;
      if (needList) {
        listed = await this.list();
        needList = !listed;
      } else {
        listed = false;
        needList = await this.watch();
      }
    }
  }

  /** One list; returns whether it succeeded (and replaced the store). */
  private async list(): Promise<boolean> {
    const resourceVersion = this.consistentListNeeded ? '' : (this.resourceVersion ?? '0');
    try {
      const result = await this.options.listWatch.list(resourceVersion, LIST_TIMEOUT_MS, this.stopping.signal, (o) => this.keep(o));
      if (this.stopped) return false;
      this.failures = 0;
      this.consistentListNeeded = false;
      this.listedAt = Date.now();
      this.options.metrics?.listSucceeded(this.resource, this.listedAt);
      const changed = this.replace(result.items, result.resourceVersion);
      this.enter('synced', undefined, `listed ${result.items.length} objects`);
      this.listedOnce = true;
      this.settle();
      if (changed) this.options.onChange();
      return true;
    } catch (err) {
      if (this.stopped) return false;
      const failure = err as ApiFailure; // ListWatch.list rejects with ApiFailure only
      this.failures += 1;
      if (failure.reason === 'expired' || failure.reason === 'resource_version_too_large') this.consistentListNeeded = true;
      this.options.metrics?.listFailed(this.resource, failure.reason);
      this.failed('list', failure);
      return false;
    }
  }

  /** One watch, to its end; returns whether the next request must be a list. */
  private async watch(): Promise<boolean> {
    const from = this.resourceVersion ?? '0';
    const timeoutSeconds = WATCH_TIMEOUT_MIN_S + Math.floor(this.random() * WATCH_TIMEOUT_MIN_S);
    const openedAt = Date.now();
    const end: WatchEnd = await this.options.listWatch.watch(
      {
        resourceVersion: from,
        timeoutSeconds,
        idleTimeoutMs: timeoutSeconds * 1000 + WATCH_IDLE_GRACE_MS,
        signal: this.stopping.signal,
        onOpen: () => this.watchAccepted(),
      },
      (type, object) => this.apply(type, object),
    );
    this.watchOpenedAt = undefined;
    if (end.kind === 'aborted' || this.stopped) return false;
    const productive = end.events > 0 || Date.now() - openedAt >= PRODUCTIVE_WATCH_MS;
    this.options.metrics?.watchRestarted(this.resource, end.kind);
    if (end.kind === 'expired') {
      this.churn = productive ? 1 : this.churn + 1;
      this.options.log.info(`${this.describe()}: watch from resourceVersion ${from} expired (410); listing again`);
      return true;
    }
    if (end.kind === 'closed' || end.opened) {
      // Ended by the server (its timeout, a graceful shutdown) or cut after it was accepted: resume
      // from where the store is. Not a failure of the API until the next request fails.
      this.churn = productive ? 0 : this.churn + 1;
      const how = end.kind === 'closed' ? 'ended' : `broke (${messageLine(end.failure.message)})`;
      this.options.log.debug(`${this.describe()}: watch ${how} after ${end.events} events; resuming from ${this.resourceVersion ?? '0'}`);
      return false;
    }
    this.failures += 1;
    const { reason } = end.failure;
    if (reason === 'resource_version_too_large') this.consistentListNeeded = true;
    this.failed('watch', end.failure);
    return reason === 'not_found' || reason === 'forbidden' || reason === 'resource_version_too_large';
  }

  /** The server accepted a watch: it answers again, and the store follows it. */
  private watchAccepted(): void {
    this.failures = 0;
    this.watchOpenedAt = Date.now();
    if (this.listedOnce) this.enter('synced', undefined, 'watching again');
  }

  private apply(type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK', object: KubeObject): void {
    const version = object.metadata?.resourceVersion;
    if (version) this.resourceVersion = version;
    if (type === 'BOOKMARK') return;
    if (type === 'DELETED') this.store.delete(nameOf(object));
    else this.store.set(nameOf(object), holdObject(this.options.kind, object));
    this.objectList = undefined;
    this.options.onChange();
  }

  /**
   * A listed object as the store keeps it: only what consumers read (held-object.ts), for the store
   * holds every object of its kind; or the object the store has when it is at the same version, so
   * it is not decoded again.
   */
  private keep(o: KubeObject): KubeObject {
    const held = this.store.get(nameOf(o));
    const version = o.metadata?.resourceVersion;
    return held !== undefined && version !== undefined && held.metadata?.resourceVersion === version ? held : holdObject(this.options.kind, o);
  }

  /** Replaces the store with a complete list of held objects; returns whether anything differs. */
  private replace(items: readonly KubeObject[], resourceVersion: string): boolean {
    const next = new Map(items.map((o) => [nameOf(o), o]));
    const changed = !sameVersions(this.store, next);
    this.resourceVersion = resourceVersion;
    // Swapped whole, never emptied and refilled: a snapshot sees the old list or the new one.
    this.store = next;
    this.objectList = undefined;
    return changed;
  }

  private failed(request: 'list' | 'watch', failure: ApiFailure): void {
    const state: ResourceSyncState =
      failure.reason === 'not_found' ? 'missing' : failure.reason === 'forbidden' ? 'forbidden' : this.listedOnce ? 'stale' : 'never-synced';
    const delay = this.backoff(this.failures, 0.5);
    this.enter(state, `${request}: ${messageLine(failure.message)}`, `retrying in about ${(delay / 1000).toFixed(1)} s`);
    if (state === 'missing' && !this.listedOnce) this.settle();
  }

  /** Moves to a state; logs one line when the state changes or starts failing (retries log at debug). */
  private enter(state: ResourceSyncState, error: string | undefined, detail: string): void {
    const unchanged = state === this.state && (error === undefined) === (this.lastError === undefined);
    this.state = state;
    this.lastError = error;
    if (unchanged) {
      if (error !== undefined) this.options.log.debug(`${this.describe()}: ${error}; ${detail}`);
      return;
    }
    this.options.metrics?.setState(this.resource, state);
    const held = `${this.store.size} ${this.options.kind} objects`;
    const line = ((): string => {
      switch (state) {
        case 'synced':
          return `${this.describe()}: synced (${detail})`;
        case 'stale':
          return `${this.describe()}: stale: ${error ?? ''}; keeping the last ${held}, ${detail}`;
        case 'never-synced':
          return `${this.describe()}: not synced: ${error ?? ''}; ${detail}`;
        case 'missing':
          return this.listedOnce
            ? `${this.describe()}: missing (404): ${error ?? ''}; keeping the last ${held} until a list succeeds, ${detail}`
            : `${this.describe()}: missing (404): the API does not serve this resource (is its CRD installed?); running with no ${this.options.kind} objects, ${detail}`;
        case 'forbidden':
          return `${this.describe()}: forbidden (403): ${error ?? ''}; ${this.listedOnce ? `keeping the last ${held}` : 'not synced'} (check the RBAC rules), ${detail}`;
      }
    })();
    if (state === 'synced') this.options.log.info(line);
    else if (state === 'forbidden') this.options.log.error(line);
    else this.options.log.warn(line);
  }

  private describe(): string {
    const which = this.options.resource === undefined ? '' : `${this.options.resource}, `;
    return `kubernetes source: ${this.options.kind} (${which}${this.options.listWatch.path})`;
  }

  private sleep(ms: number): Promise<void> {
    if (ms <= 0) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.stopping.signal.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.stopping.signal.addEventListener('abort', done);
    });
  }
}

/** Same keys, each at the same resourceVersion (every change to an object moves it). */
export function sameVersions(a: ReadonlyMap<string, KubeObject>, b: ReadonlyMap<string, KubeObject>): boolean {
  if (a.size !== b.size) return false;
  for (const [key, object] of a) {
    const other = b.get(key);
    if (other === undefined || other.metadata?.resourceVersion !== object.metadata?.resourceVersion) return false;
  }
  return true;
}
