// The iptables dataplane: programs one owner's chains and jump rules, IPv4 and IPv6, with at most
// one `iptables-restore --noflush` per family per apply, and never touches a chain it does not own
// (see restore-plan.ts for how differences are found without normalising rules).
//
// Like kube-proxy since KEP-3453 it trusts its own record: an apply plans from what it last wrote
// and runs no iptables-save (reading 10,000 services' rules twice took seconds per change). A full
// read-and-compare runs on the first apply, once per full-sync period, and at once after a restore
// that failed (the record was wrong: someone deleted a chain it references, say).
import { performance } from 'node:perf_hooks';
import { CommandError, type CommandOptions, runCommand } from '../../host/command.js';
import type { Family } from '../../model/ip.js';
import { firstLine } from '../../observability/first-line.js';
import { SerialQueue } from '../serial-queue.js';
import { type CommandRunner, type IptablesBackend, sharedIptablesBackend } from './backend.js';
import { type ChainRef, emptyMemory, type FamilyMemory, forgetAbsent, forgetPlanned, planRestore, rememberRestore, type RestorePlan } from './restore-plan.js';
import { type ChainOwner, type CheckedRules, type DesiredRules, type FamilyRules, NO_RULES, validateFamilyRules, WIRELANE_OWNER } from './ruleset.js';
import { parseSavedRules, type SavedRules } from './saved-rules.js';

export interface IptablesChainsOptions {
  /** Which chains and jump comments are this instance's; default WIRELANE-* / "wirelane:". */
  readonly owner?: ChainOwner;
  /** Run every iptables command inside this named network namespace. */
  readonly netns?: string;
  /** Default: whatever the host's `iptables -V` reports, detected on first use. */
  readonly backend?: IptablesBackend;
  readonly run?: CommandRunner;
  /**
   * How long partial applies may trust the record before a full read-and-compare (which also
   * repairs what others changed): kube-proxy's fixed hour by default; 0 reads on every apply.
   */
  readonly fullSyncPeriodMs?: number;
  /** Milliseconds on a monotonic clock; `performance.now` by default. */
  readonly now?: () => number;
}

/** kube-proxy's period between full syncs (proxyutil.FullSyncPeriod). */
export const FULL_SYNC_PERIOD_MS = 3_600_000;

export interface FamilyRestore {
  readonly family: Family;
  readonly input: string;
  readonly writtenChains: readonly ChainRef[];
  readonly deletedChains: readonly ChainRef[];
  readonly rewrittenJumps: readonly ChainRef[];
}

export interface IptablesApplyReport {
  /** iptables-restore calls made that succeeded: 0 when nothing differed. */
  readonly written: number;
  readonly restores: readonly FamilyRestore[];
  /** `full`: planned from iptables-save; `partial`: from the record alone, nothing read. */
  readonly sync: 'full' | 'partial';
  /** Partial restores that failed, each followed at once by a full sync of its family that succeeded. */
  readonly recovered: readonly { readonly family: Family; readonly error: string }[];
}

const FAMILIES: readonly Family[] = [4, 6];

/**
 * iptables-save and -restore take time in proportion to the rules: a full restore of 10,000
 * services' chains took about 60 s on a loaded 2-core test machine, so they get five times that
 * instead of the default command timeout. `--wait 10` for the xtables lock is inside this bound.
 */
export const IPTABLES_TIMEOUT_MS = 300_000;

export class IptablesChains {
  readonly owner: ChainOwner;
  private readonly netns: string | undefined;
  private readonly run: CommandRunner;
  private backend: IptablesBackend | undefined;
  private readonly memory: Record<Family, FamilyMemory> = { 4: emptyMemory(), 6: emptyMemory() };
  // apply and cleanup read, plan and write; two of them interleaved would plan on stale state.
  private readonly queue = new SerialQueue();
  private readonly checked: CheckedRules = new WeakMap();
  private readonly fullSyncPeriodMs: number;
  private readonly now: () => number;
  /** When the last full sync of both families started. */
  private lastFullSync = Number.NEGATIVE_INFINITY;
  /** Set at the start (the record is empty) and by any failure (the record may be wrong). */
  private fullSyncNeeded = true;
  /** The rules of the last apply that succeeded: handed in again, the record says they are written. */
  private applied: DesiredRules | undefined;

  constructor(opts: IptablesChainsOptions = {}) {
    this.owner = opts.owner ?? WIRELANE_OWNER;
    this.netns = opts.netns;
    this.run = opts.run ?? runCommand;
    this.backend = opts.backend;
    this.fullSyncPeriodMs = opts.fullSyncPeriodMs ?? FULL_SYNC_PERIOD_MS;
    this.now = opts.now ?? (() => performance.now());
  }

  /**
   * Makes the owner's chains and jumps exactly `desired`, writing only what differs from the record
   * (a partial sync) or, when a full sync is due, from what iptables-save shows.
   */
  async apply(desired: DesiredRules): Promise<IptablesApplyReport> {
    if (desired !== this.applied) for (const family of FAMILIES) validateFamilyRules(family, desired[family] ?? NO_RULES, this.owner, this.checked);
    return this.queue.run(() => this.reconcile(desired));
  }

  /** Removes every chain and jump rule of the owner, in every table and family (read first: also a crashed run's). */
  async cleanup(): Promise<IptablesApplyReport> {
    return this.queue.run(() => this.reconcile({}, true));
  }

  private fullSyncDue(): boolean {
    return this.fullSyncNeeded || this.now() - this.lastFullSync >= this.fullSyncPeriodMs;
  }

  private async reconcile(desired: DesiredRules, forceFull = false): Promise<IptablesApplyReport> {
    const backend = await this.resolveBackend();
    const full = forceFull || this.fullSyncDue();
    // A partial sync of the same rules plans nothing (10,000 Services: ~110,000 chains compared).
    if (!full && desired === this.applied) return { written: 0, restores: [], sync: 'partial', recovered: [] };
    this.applied = undefined;
    const started = this.now();
    // The families at once: separate tools, tables and records, and each a save (and a restore) to wait for.
    const outcomes = await Promise.allSettled(
      FAMILIES.map(async (family) => {
        const rules = desired[family] ?? NO_RULES;
        try {
          return { restore: await this.syncFamily(backend, family, rules, full) };
        } catch (err) {
          if (full) throw err;
          // The record was wrong (a chain it references is gone, a rule it deletes is not there):
          // read what is there and repair it now rather than fail until the next period.
          const restore = await this.syncFamily(backend, family, rules, true);
          return { restore, recovered: { family, error: firstLine(err instanceof Error ? err.message : String(err)) } };
        }
      }),
    );
    const failed = outcomes.find((o) => o.status === 'rejected');
    if (failed !== undefined) {
      this.fullSyncNeeded = true;
      throw failed.reason;
    }
    const done = outcomes.flatMap((o) => (o.status === 'fulfilled' ? [o.value] : []));
    const restores = done.flatMap((o) => (o.restore === undefined ? [] : [o.restore]));
    const recovered = done.flatMap((o) => (o.recovered === undefined ? [] : [o.recovered]));
    if (full) {
      this.lastFullSync = started;
      this.fullSyncNeeded = false;
    }
    this.applied = desired;
    return { written: restores.length, restores, sync: full ? 'full' : 'partial', recovered };
  }

  /** One family's plan and restore: from iptables-save when `full`, from the record alone otherwise. */
  private async syncFamily(backend: IptablesBackend, family: Family, rules: FamilyRules, full: boolean): Promise<FamilyRestore | undefined> {
    const memory = this.memory[family];
    let saved: SavedRules | undefined;
    if (full) {
      try {
        saved = await this.readSaved(backend, family);
      } catch (err) {
        // A host without IPv6 (ipv6.disable=1) cannot run ip6tables-save; that only matters if
        // something is wanted there or was written there.
        const idle = rules.chains.length === 0 && rules.jumps.length === 0 && memory.chains.size === 0 && memory.jumps.size === 0;
        if (idle && err instanceof CommandError) return undefined;
        throw err;
      }
      forgetAbsent(rules, saved, memory);
    }
    const plan = planRestore(rules, saved, memory);
    if (plan.input === '') return undefined;
    await this.restore(backend, family, plan);
    rememberRestore(plan, full ? await this.readSaved(backend, family) : undefined, memory);
    const { input, writtenChains, deletedChains, rewrittenJumps } = plan;
    return { family, input, writtenChains, deletedChains, rewrittenJumps };
  }

  private async resolveBackend(): Promise<IptablesBackend> {
    this.backend ??= await sharedIptablesBackend(this.run, this.netns);
    return this.backend;
  }

  private async readSaved(backend: IptablesBackend, family: Family): Promise<SavedRules> {
    const tool = backend.save[family];
    const text = await savedTextReads.read(this.run, `${this.netns ?? ''} ${tool}`, async () => (await this.run(tool, [], this.options())).stdout);
    return parseSavedRules(text, this.owner);
  }

  private async restore(backend: IptablesBackend, family: Family, plan: RestorePlan): Promise<void> {
    savedTextReads.writing();
    try {
      await this.run(backend.restore[family], ['--noflush', '--wait', '10'], this.options(plan.input));
    } catch (err) {
      forgetPlanned(plan, this.memory[family]);
      throw restoreError(err, plan.input);
    } finally {
      savedTextReads.writing();
    }
  }

  private options(input?: string): CommandOptions {
    return { ...(this.netns === undefined ? {} : { netns: this.netns }), ...(input === undefined ? {} : { input }), timeoutMs: IPTABLES_TIMEOUT_MS };
  }
}

/**
 * iptables-restore names the failing input line by number only ("Error occurred at line: 3" for a
 * parse error, "line 3 failed" when the kernel refuses a commit); add the line itself.
 */
function restoreError(err: unknown, input: string): unknown {
  if (!(err instanceof CommandError)) return err;
  const lineNo = /(?:at line: |line )(\d+)/.exec(err.stderr)?.[1];
  const line = lineNo === undefined ? undefined : input.split('\n')[Number(lineNo) - 1];
  return line === undefined ? err : new Error(`${err.message} (line ${lineNo}: ${line})`, { cause: err });
}

/**
 * iptables-save runs shared between owners: a read asked for while the same one (runner, namespace,
 * tool) runs takes its output instead of starting another, unless a restore began or ended since
 * that read started (its output may then predate the restore). Owners that read at the same moment
 * (the removals of two modes' leftovers, one after the other's first apply) read once.
 */
class SavedTextReads {
  /** Moves on at the start and at the end of every restore this process runs. */
  private generation = 0;
  private readonly running = new WeakMap<CommandRunner, Map<string, { readonly generation: number; readonly text: Promise<string> }>>();

  read(run: CommandRunner, key: string, start: () => Promise<string>): Promise<string> {
    let reads = this.running.get(run);
    if (reads === undefined) {
      reads = new Map();
      this.running.set(run, reads);
    }
    const shared = reads.get(key);
    if (shared !== undefined && shared.generation === this.generation) return shared.text;
    const entry = { generation: this.generation, text: start() };
    const byKey = reads;
    byKey.set(key, entry);
    const done = (): void => {
      if (byKey.get(key) === entry) byKey.delete(key);
    };
    entry.text.then(done, done);
    return entry.text;
  }

  writing(): void {
    this.generation += 1;
  }
}

const savedTextReads = new SavedTextReads();

/**
 * Removes every chain and jump of `owner` in both families, on the host's backend, whoever wrote
 * them (a crashed or earlier run): one line per family that had any.
 */
export async function removeOwnedChains(owner: ChainOwner): Promise<string[]> {
  const report = await new IptablesChains({ owner, backend: await sharedIptablesBackend() }).cleanup();
  return report.restores.map(({ family, deletedChains, rewrittenJumps }) => {
    const jumps = rewrittenJumps.map((c) => `${c.table}/${c.chain}`).join(', ');
    return `IPv${family}: ${deletedChains.length} ${owner.chainPrefix}* chains${jumps === '' ? '' : `, jumps from ${jumps}`}`;
  });
}
