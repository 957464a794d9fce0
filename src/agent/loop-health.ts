// The shell of sync-health.ts: records, on a monotonic clock, when each loop's syncs became due,
// started and ended, and answers /healthz from that.
import { performance } from 'node:perf_hooks';
import { type HealthVerdict, type LoopName, type LoopSync, NEVER_SYNCED, type SyncEvent, type SyncResult, type SyncState, judgeHealth, recordSync } from './sync-health.js';

/** Milliseconds that never jump with the wall clock, yet print as a date (timeOrigin is wall time). */
export function monotonicNow(): number {
  return performance.timeOrigin + performance.now();
}

export class LoopHealth {
  private readonly states: Map<LoopName, SyncState>;

  constructor(
    loops: readonly LoopName[],
    private readonly boundMs: number,
    private readonly onResult: (loop: LoopName, result: SyncResult) => void = () => {},
    private readonly now: () => number = monotonicNow,
  ) {
    this.states = new Map(loops.map((loop) => [loop, NEVER_SYNCED]));
  }

  /** A sync of every loop became due. */
  due(): void {
    const at = this.now();
    for (const [loop, state] of this.states) this.states.set(loop, recordSync(state, { kind: 'due', at }));
  }

  /** Runs one sync of `loop`, recording its start and outcome; a throw counts as a failure. */
  async run(loop: LoopName, sync: () => Promise<SyncResult>): Promise<void> {
    this.record(loop, { kind: 'started', at: this.now() });
    let result: SyncResult;
    try {
      result = await sync();
    } catch (err) {
      result = { ok: false, error: (err as Error).message };
    }
    this.record(loop, result.ok ? { kind: 'succeeded', at: this.now() } : { kind: 'failed', at: this.now(), error: result.error });
    this.onResult(loop, result);
  }

  verdict(): HealthVerdict {
    return judgeHealth(this.syncs(), this.now(), this.boundMs);
  }

  /** Each loop's record, for /status. */
  syncs(): LoopSync[] {
    return [...this.states].map(([loop, state]) => ({ loop, state }));
  }

  private record(loop: LoopName, event: SyncEvent): void {
    const state = this.states.get(loop);
    if (state === undefined) throw new Error(`loop health: no loop "${loop}"`);
    this.states.set(loop, recordSync(state, event));
  }
}
