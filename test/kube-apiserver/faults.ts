// Faults a test switches on to see how a client copes: an outage (every request fails with a status,
// for a while or until switched off), 410 Gone on every watch, slow lists, and resources that answer
// 404 (a CRD not installed) or 403 (RBAC). Watch cuts are timers on the server (server.ts).
import type { ResourceName } from './resources.js';
import type { RequestVerb } from './server.js';
import { StatusError, type StatusReason } from './status.js';

export interface OutageOptions {
  /** The HTTP status every request gets; 500 unless given. */
  readonly status?: number;
  /** How long the outage lasts; until stopOutage() when absent. */
  readonly forMs?: number;
  /** Only these verbs fail (all when absent). */
  readonly verbs?: readonly RequestVerb[];
  /** Only requests on these resources fail (all when absent). */
  readonly resources?: readonly ResourceName[];
}

/** How a resource answers: served normally, or as if its CRD were not installed, or forbidden. */
export type ResourceAnswer = 'served' | 'missing' | 'forbidden';

/** How watches answer: normally, or 410 Gone (inside a 200 stream as the watch cache does, or as the HTTP status). */
export type WatchAnswer = 'served' | 'gone-event' | 'gone-status';

export class FaultSwitches {
  private outage: (OutageOptions & { readonly until: number }) | undefined;
  private readonly answers = new Map<ResourceName, ResourceAnswer>();
  private readonly listDelays = new Map<ResourceName | '*', number>();
  watchAnswer: WatchAnswer = 'served';

  constructor(private readonly now: () => number = Date.now) {}

  startOutage(options: OutageOptions): void {
    this.outage = { ...options, until: options.forMs === undefined ? Number.POSITIVE_INFINITY : this.now() + options.forMs };
  }

  stopOutage(): void {
    this.outage = undefined;
  }

  /** True while an outage is switched on and its period has not run out. */
  get inOutage(): boolean {
    return this.outage !== undefined && this.now() < this.outage.until;
  }

  setAnswer(resource: ResourceName, answer: ResourceAnswer): void {
    if (answer === 'served') this.answers.delete(resource);
    else this.answers.set(resource, answer);
  }

  answerOf(resource: ResourceName): ResourceAnswer {
    return this.answers.get(resource) ?? 'served';
  }

  /** Every LIST (of one resource, or of all when none is given) is answered `ms` late; 0 ends it. */
  delayLists(ms: number, resource?: ResourceName): void {
    if (ms > 0) this.listDelays.set(resource ?? '*', ms);
    else this.listDelays.delete(resource ?? '*');
  }

  listDelayOf(resource: ResourceName): number {
    return this.listDelays.get(resource) ?? this.listDelays.get('*') ?? 0;
  }

  clear(): void {
    this.outage = undefined;
    this.answers.clear();
    this.listDelays.clear();
    this.watchAnswer = 'served';
  }

  /** The error a request must get instead of its answer, if a fault applies to it. */
  failureFor(verb: RequestVerb, resource: ResourceName | undefined): StatusError | undefined {
    if (resource !== undefined) {
      const answer = this.answerOf(resource);
      if (answer === 'missing') return new StatusError(404, 'NotFound', 'the server could not find the requested resource');
      if (answer === 'forbidden') {
        return new StatusError(
          403,
          'Forbidden',
          `${resource} is forbidden: User "system:serviceaccount:kube-system:wirelane" cannot ${verb} resource "${resource}" at the cluster scope`,
          { kind: resource },
        );
      }
    }
    const outage = this.outage;
    if (outage === undefined) return undefined;
    if (this.now() >= outage.until) {
      this.outage = undefined;
      return undefined;
    }
    if (outage.verbs && !outage.verbs.includes(verb)) return undefined;
    if (outage.resources && (resource === undefined || !outage.resources.includes(resource))) return undefined;
    const code = outage.status ?? 500;
    return new StatusError(code, reasonOfCode(code), `injected fault: the test API server answers ${code} to every request`);
  }
}

function reasonOfCode(code: number): StatusReason {
  if (code === 429) return 'TooManyRequests';
  if (code === 503) return 'ServiceUnavailable';
  if (code === 504) return 'Timeout';
  return 'InternalError';
}
