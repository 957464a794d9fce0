// LIST and WATCH of one resource over plain node:http(s) (kube-request.ts, with the kubeconfig's
// credentials and TLS settings). Not client-node's typed list calls or its Watch:
// the typed calls turn JSON into model classes (timestamps into Dates) while a watch stream stays
// plain JSON, so a re-list could never be compared with what the watch left; and a reflector needs
// the HTTP status and Status body of every failure (403, 404, 410, 504), a deadline on lists and an
// idle deadline on watches, none of which those calls expose.
import type { KubeAccess } from './kube-access.js';
import { type KubeObject, isRecord } from '../objects.js';
import { ApiFailure, failureOfResponse, failureOfWatchError, messageLine } from './api-failure.js';
import { type OpenedRequest, asFailure, openKubeRequest, readBody, readBodyBytes } from './kube-request.js';
import { readListBody } from './list-body.js';

export interface ListResult {
  readonly items: readonly KubeObject[];
  readonly resourceVersion: string;
}

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK';

/** How a watch ended. `events` counts the events it delivered (bookmarks included). */
export type WatchEnd =
  /** The server ended the stream cleanly (its timeout, or a restart that closed it gracefully). */
  | { readonly kind: 'closed'; readonly events: number }
  /** 410: the resourceVersion is older than the server's history; only a new list helps. */
  | { readonly kind: 'expired'; readonly events: number; readonly failure: ApiFailure }
  /** `opened`: the server had accepted the watch (200) and the stream broke later. */
  | { readonly kind: 'failed'; readonly events: number; readonly failure: ApiFailure; readonly opened: boolean }
  | { readonly kind: 'aborted'; readonly events: number };

export interface WatchOptions {
  readonly resourceVersion: string;
  /** Asks the server to end the watch after this long (it does, with a last bookmark). */
  readonly timeoutSeconds: number;
  /** A watch silent for this long is taken as dead (a peer gone without a FIN sends nothing). */
  readonly idleTimeoutMs: number;
  readonly signal: AbortSignal;
  /** Called when the server has accepted the watch (200), before any event. */
  readonly onOpen: () => void;
}

export interface ListWatchOptions {
  /** Narrows every list and watch to the objects it selects (a watch sees an object leave it as DELETED). */
  readonly labelSelector?: string;
  /** Names this client to the API server (its audit log, and the test server's per-client tallies). */
  readonly userAgent?: string;
}

export class ListWatch {
  constructor(
    private readonly access: KubeAccess,
    /** The API path, e.g. `/api/v1/nodes`. */
    readonly path: string,
    private readonly options: ListWatchOptions = {},
  ) {}

  /**
   * One LIST. `resourceVersion` "0" or a known version lets the API server answer from its watch
   * cache (no etcd read, not paginated); "" asks for a consistent read. Each item comes out as
   * `keep` makes it, as soon as it is read (list-body.ts).
   */
  async list(resourceVersion: string, timeoutMs: number, signal: AbortSignal, keep: (object: KubeObject) => KubeObject = (o) => o): Promise<ListResult> {
    const query: Record<string, string> = resourceVersion === '' ? {} : { resourceVersion };
    const deadline = new Deadline(signal, timeoutMs);
    try {
      const { response } = await this.open(query, deadline.signal);
      const body = await readBodyBytes(response);
      if (response.statusCode !== 200) throw failureOfResponse(response.statusCode ?? 0, body.toString('utf8'));
      return parseList(body, keep);
    } catch (err) {
      if (deadline.expired) throw new ApiFailure('timeout', `list: no complete answer within ${timeoutMs} ms`);
      throw asFailure(err);
    } finally {
      deadline.dispose();
    }
  }

  /** One WATCH from a resourceVersion; `onEvent` sees every object event and bookmark in order. */
  async watch(options: WatchOptions, onEvent: (type: WatchEventType, object: KubeObject) => void): Promise<WatchEnd> {
    let events = 0;
    let opened: OpenedRequest;
    // The idle deadline also bounds the wait for the response headers.
    const deadline = new Deadline(options.signal, options.idleTimeoutMs);
    try {
      opened = await this.open(
        {
          watch: 'true',
          resourceVersion: options.resourceVersion,
          allowWatchBookmarks: 'true',
          timeoutSeconds: String(options.timeoutSeconds),
        },
        deadline.signal,
      );
    } catch (err) {
      if (options.signal.aborted) return { kind: 'aborted', events };
      return failed(deadline.expired ? new ApiFailure('timeout', `watch: no answer within ${options.idleTimeoutMs} ms`) : err, events, false);
    } finally {
      deadline.dispose();
    }
    const { response, request } = opened;
    if (response.statusCode !== 200) {
      const failure = failureOfResponse(response.statusCode ?? 0, await readBody(response).catch(() => ''));
      return failure.reason === 'expired' ? { kind: 'expired', events, failure } : { kind: 'failed', events, failure, opened: false };
    }
    options.onOpen();
    return new Promise<WatchEnd>((resolve) => {
      let ended = false;
      let idle: NodeJS.Timeout | undefined;
      const finish = (end: WatchEnd): void => {
        if (ended) return;
        ended = true;
        clearTimeout(idle);
        options.signal.removeEventListener('abort', onAbort);
        request.destroy();
        resolve(end);
      };
      const onAbort = (): void => finish({ kind: 'aborted', events });
      const armIdle = (): void => {
        clearTimeout(idle);
        idle = setTimeout(
          () => finish(failed(new ApiFailure('timeout', `watch silent for ${options.idleTimeoutMs} ms`), events, true)),
          options.idleTimeoutMs,
        );
      };
      options.signal.addEventListener('abort', onAbort);
      armIdle();
      let pending = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => {
        armIdle();
        pending += chunk;
        let newline: number;
        while (!ended && (newline = pending.indexOf('\n')) >= 0) {
          const line = pending.slice(0, newline).trim();
          pending = pending.slice(newline + 1);
          if (line === '') continue;
          const event = parseEvent(line);
          if (event instanceof ApiFailure) {
            finish(event.reason === 'expired' ? { kind: 'expired', events, failure: event } : failed(event, events, true));
            return;
          }
          events += 1;
          onEvent(event.type, event.object);
        }
      });
      response.on('end', () => finish({ kind: 'closed', events }));
      // A stream cut mid-way (the server died, a proxy dropped it) ends in 'error' or a bare 'close'.
      response.on('error', (err) => finish(failed(err, events, true)));
      response.on('close', () => finish(failed(new ApiFailure('network', 'watch stream closed without an end'), events, true)));
    });
  }

  private open(query: Readonly<Record<string, string>>, signal: AbortSignal): Promise<OpenedRequest> {
    const { labelSelector, userAgent } = this.options;
    return openKubeRequest(
      this.access,
      { method: 'GET', path: this.path, query: { ...query, ...(labelSelector !== undefined && { labelSelector }) }, ...(userAgent !== undefined && { userAgent }) },
      signal,
    );
  }
}

/** An abort signal that fires when the parent does or when `ms` have passed, whichever is first. */
class Deadline {
  private readonly controller = new AbortController();
  private readonly timer: NodeJS.Timeout;
  private readonly onParentAbort = (): void => this.controller.abort();
  expired = false;

  constructor(
    private readonly parent: AbortSignal,
    ms: number,
  ) {
    this.timer = setTimeout(() => {
      this.expired = true;
      this.controller.abort();
    }, ms);
    if (parent.aborted) this.controller.abort();
    else parent.addEventListener('abort', this.onParentAbort);
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  dispose(): void {
    clearTimeout(this.timer);
    this.parent.removeEventListener('abort', this.onParentAbort);
  }
}

function parseList(body: Buffer, keep: (object: KubeObject) => KubeObject): ListResult {
  const read = readListBody(body, (item) => (isObject(item) ? keep(item) : undefined));
  if (read !== undefined) {
    const metadata = read.fields.get('metadata');
    const resourceVersion = isRecord(metadata) ? metadata.resourceVersion : undefined;
    if (read.items === undefined || typeof resourceVersion !== 'string') throw noItems();
    return { items: read.items.filter((item) => item !== undefined), resourceVersion };
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw new ApiFailure('bad_response', `list: the body is not JSON: ${(err as Error).message}`);
  }
  const metadata = isRecord(parsed) && isRecord(parsed.metadata) ? parsed.metadata : undefined;
  if (!isRecord(parsed) || !Array.isArray(parsed.items) || typeof metadata?.resourceVersion !== 'string') throw noItems();
  return { items: parsed.items.filter(isObject).map(keep), resourceVersion: metadata.resourceVersion };
}

function noItems(): ApiFailure {
  return new ApiFailure('bad_response', 'list: the body has no items or no metadata.resourceVersion');
}

function parseEvent(line: string): { type: WatchEventType; object: KubeObject } | ApiFailure {
  let parsed: unknown;
  try {
    parsed = JSON.parse(line);
  } catch {
    return new ApiFailure('bad_response', `watch: a line is not JSON: ${messageLine(line).slice(0, 80)}`);
  }
  if (!isRecord(parsed)) return new ApiFailure('bad_response', 'watch: an event is not an object');
  const { type, object } = parsed;
  if (type === 'ERROR') return failureOfWatchError(object);
  if ((type === 'ADDED' || type === 'MODIFIED' || type === 'DELETED' || type === 'BOOKMARK') && isObject(object)) return { type, object };
  return new ApiFailure('bad_response', `watch: an event of type ${String(type)} without an object`);
}

/** Decoded objects are checked field by field later; here only that they are named objects. */
function isObject(value: unknown): value is KubeObject {
  return isRecord(value) && isRecord(value.metadata);
}

function failed(err: unknown, events: number, opened: boolean): WatchEnd {
  return { kind: 'failed', events, failure: asFailure(err), opened };
}
