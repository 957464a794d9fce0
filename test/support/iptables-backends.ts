// The iptables backends this machine can run (iptables ≥ 1.8 usually ships both), for tests that
// run once per backend, and a command runner that counts the iptables-save and -restore runs.
import { runCommand } from '../../src/host/command.js';
import { type BackendKind, type CommandRunner, iptablesBackend } from '../../src/dataplane/iptables/backend.js';
import { FULL_SYNC_PERIOD_MS } from '../../src/dataplane/iptables/chains.js';

export async function availableIptablesBackends(): Promise<BackendKind[]> {
  const kinds: BackendKind[] = [];
  for (const kind of ['nft', 'legacy'] as const) {
    const probe = await runCommand(iptablesBackend(kind).save[4], ['--version'], { allowFailure: true }).catch(() => undefined);
    if (probe?.exitCode === 0) kinds.push(kind);
  }
  return kinds;
}

/**
 * The host command runner, counting iptables-save and -restore runs, and a clock the test moves on
 * by whole full-sync periods: what an IptablesChains (or a proxy over one) takes as `run` and `now`.
 */
export function countedIptables(): {
  readonly run: CommandRunner;
  readonly now: () => number;
  periodPasses(): void;
  counting<T>(work: () => Promise<T>): Promise<{ value: T; saves: number; restores: number }>;
} {
  const calls = { save: 0, restore: 0 };
  let clock = 0;
  return {
    run: (file, args, opts) => {
      if (file.endsWith('-save')) calls.save += 1;
      if (file.endsWith('-restore')) calls.restore += 1;
      return runCommand(file, args, opts);
    },
    now: () => clock,
    periodPasses: () => {
      clock += FULL_SYNC_PERIOD_MS;
    },
    counting: async (work) => {
      const before = { ...calls };
      const value = await work();
      return { value, saves: calls.save - before.save, restores: calls.restore - before.restore };
    },
  };
}
