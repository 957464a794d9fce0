// One call to the API server, bounded like every call out of the process: a hung API server costs
// the step that made it, not the loop.
import { defaultCommandTimeoutMs, withTimeout } from '../../host/timeouts.js';
import { ApiFailure } from './api-failure.js';

export function boundedApiCall<T>(work: Promise<T>, what: string): Promise<T> {
  return withTimeout(work, defaultCommandTimeoutMs(), 'kubernetes api', what);
}

/** The HTTP status a call (kube-request.ts) failed with; undefined for failures without one (network, timeout). */
export function apiStatusOf(err: unknown): number | undefined {
  return err instanceof ApiFailure ? err.code : undefined;
}
