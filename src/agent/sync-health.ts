// Whether the agent's reconcile loops keep up: what /healthz answers. kube-proxy's rule: unhealthy
// once a sync became due (an event or the resync timer) and no sync has succeeded since, for longer
// than the bound, 2 × the resync period (kube-proxy's healthz timeout is 2 × its sync period). As
// in kube-proxy, a success answers everything due before it ended, events that came during the run
// included: health says whether the loop makes progress, and the next run applies those events.
// The mesh and the services loop are judged separately; a sync is successful when every step of
// that loop succeeded. Pure: the shell (loop-health.ts) records the times and asks.

export type LoopName = 'mesh' | 'services';

/** What one run of a loop reports: success, or the failed steps' errors. */
export type SyncResult = { readonly ok: true } | { readonly ok: false; readonly error: string };

export interface SyncState {
  /** The oldest moment a sync became due since the last successful one; undefined when none is. */
  readonly dueSince: number | undefined;
  readonly runningSince: number | undefined;
  readonly lastSuccess: number | undefined;
  readonly lastFailure: { readonly at: number; readonly error: string } | undefined;
}

export const NEVER_SYNCED: SyncState = {
  dueSince: undefined,
  runningSince: undefined,
  lastSuccess: undefined,
  lastFailure: undefined,
};

export type SyncEvent =
  | { readonly kind: 'due'; readonly at: number }
  | { readonly kind: 'started'; readonly at: number }
  | { readonly kind: 'succeeded'; readonly at: number }
  | { readonly kind: 'failed'; readonly at: number; readonly error: string };

/** The bound of /healthz: a due sync may go this long without a successful one. */
export function healthBoundMs(resyncPeriodMs: number): number {
  return 2 * resyncPeriodMs;
}

/** A failed run leaves the sync due, so a loop that keeps failing stays due from its first moment. */
export function recordSync(state: SyncState, event: SyncEvent): SyncState {
  switch (event.kind) {
    case 'due':
      return { ...state, dueSince: state.dueSince ?? event.at };
    case 'started':
      return { ...state, runningSince: event.at };
    case 'succeeded':
      return { ...state, dueSince: undefined, runningSince: undefined, lastSuccess: event.at };
    case 'failed':
      return { ...state, runningSince: undefined, lastFailure: { at: event.at, error: event.error } };
  }
}

/** Since when a sync of this loop has been due without a successful one, once that exceeds the bound. */
export function overdueSince(state: SyncState, now: number, boundMs: number): number | undefined {
  return state.dueSince !== undefined && now - state.dueSince > boundMs ? state.dueSince : undefined;
}

export interface HealthVerdict {
  readonly healthy: boolean;
  /** `ok` or `unhealthy: …`, then one line per loop. */
  readonly body: string;
}

export interface LoopSync {
  readonly loop: LoopName;
  readonly state: SyncState;
}

export function judgeHealth(loops: readonly LoopSync[], now: number, boundMs: number): HealthVerdict {
  const overdue = loops.filter((l) => overdueSince(l.state, now, boundMs) !== undefined).map((l) => l.loop);
  const head = overdue.length === 0 ? 'ok' : `unhealthy: ${overdue.join(' and ')} sync overdue (bound ${seconds(boundMs)})`;
  const lines = loops.map((l) => `${l.loop}: ${describeLoop(l.state, now, boundMs)}`);
  return { healthy: overdue.length === 0, body: `${[head, ...lines].join('\n')}\n` };
}

function describeLoop(state: SyncState, now: number, boundMs: number): string {
  const parts: string[] = [];
  const due = overdueSince(state, now, boundMs);
  if (due !== undefined) parts.push(`sync due since ${new Date(due).toISOString()} (${seconds(now - due)} ago)`);
  parts.push(state.lastSuccess === undefined ? 'no successful sync yet' : `last sync ${seconds(now - state.lastSuccess)} ago`);
  if (state.runningSince !== undefined) parts.push(`a sync running for ${seconds(now - state.runningSince)}`);
  const failure = state.lastFailure;
  if (failure !== undefined && !(state.lastSuccess !== undefined && state.lastSuccess > failure.at)) {
    parts.push(`last error ${seconds(now - failure.at)} ago: ${safeLine(failure.error)}`);
  }
  return parts.join(', ');
}

function seconds(ms: number): string {
  return `${(Math.max(0, ms) / 1000).toFixed(1)} s`;
}

// A WireGuard key (base64 of 32 bytes). wg echoes rejected config lines, private keys included.
const KEY_SHAPED = /[A-Za-z0-9+/]{43}=/g;
const MAX_ERROR_LENGTH = 300;

/** The first non-empty line of an error, key-shaped text masked, cut to a readable length. */
export function safeLine(error: string): string {
  const line = (error.split('\n').find((l) => l.trim() !== '') ?? '').trim().replace(KEY_SHAPED, '(key)');
  return line.length > MAX_ERROR_LENGTH ? `${line.slice(0, MAX_ERROR_LENGTH - 1)}…` : line;
}
