// The iptables dataplane: programs one owner's chains and jump rules, IPv4 and IPv6, with at most
// one `iptables-restore --noflush` per family per apply, and never touches a chain it does not own
// (see restore-plan.ts for how differences are found without normalising rules).
import { CommandError, type CommandOptions, runCommand } from '../../host/command.js';
import type { Family } from '../../model/ip.js';
import { SerialQueue } from '../serial-queue.js';
import { type CommandRunner, detectIptablesBackend, type IptablesBackend } from './backend.js';
import { type ChainRef, emptyMemory, type FamilyMemory, forgetAbsent, planRestore, rememberRestore } from './restore-plan.js';
import { type ChainOwner, type DesiredRules, type FamilyRules, NO_RULES, validateFamilyRules, WIRELANE_OWNER } from './ruleset.js';
import { parseSavedRules, type SavedRules } from './saved-rules.js';

export interface IptablesChainsOptions {
  /** Which chains and jump comments are this instance's; default WIRELANE-* / "wirelane:". */
  readonly owner?: ChainOwner;
  /** Run every iptables command inside this named network namespace. */
  readonly netns?: string;
  /** Default: whatever the host's `iptables -V` reports, detected on first use. */
  readonly backend?: IptablesBackend;
  readonly run?: CommandRunner;
}

export interface FamilyRestore {
  readonly family: Family;
  readonly input: string;
  readonly writtenChains: readonly ChainRef[];
  readonly deletedChains: readonly ChainRef[];
  readonly rewrittenJumps: readonly ChainRef[];
}

export interface IptablesApplyReport {
  /** iptables-restore calls made: 0 when nothing differed, at most one per family. */
  readonly written: number;
  readonly restores: readonly FamilyRestore[];
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

  constructor(opts: IptablesChainsOptions = {}) {
    this.owner = opts.owner ?? WIRELANE_OWNER;
    this.netns = opts.netns;
    this.run = opts.run ?? runCommand;
    this.backend = opts.backend;
  }

  /** Makes the owner's chains and jumps exactly `desired`, writing only what differs. */
  async apply(desired: DesiredRules): Promise<IptablesApplyReport> {
    for (const family of FAMILIES) validateFamilyRules(family, desired[family] ?? NO_RULES, this.owner);
    return this.queue.run(() => this.reconcile(desired));
  }

  /** Removes every chain and jump rule of the owner, in every table and family. */
  async cleanup(): Promise<IptablesApplyReport> {
    return this.queue.run(() => this.reconcile({}));
  }

  private async reconcile(desired: DesiredRules): Promise<IptablesApplyReport> {
    const backend = await this.resolveBackend();
    const restores: FamilyRestore[] = [];
    for (const family of FAMILIES) {
      const rules = desired[family] ?? NO_RULES;
      const memory = this.memory[family];
      const idle = rules.chains.length === 0 && rules.jumps.length === 0 && memory.chains.size === 0 && memory.jumps.size === 0;
      let saved: SavedRules;
      try {
        saved = await this.readSaved(backend, family);
      } catch (err) {
        // A host without IPv6 (ipv6.disable=1) cannot run ip6tables-save; that only matters if
        // something is wanted there or was written there.
        if (idle && err instanceof CommandError) continue;
        throw err;
      }
      forgetAbsent(rules, saved, memory);
      const plan = planRestore(rules, saved, memory);
      if (plan.input === '') continue;
      await this.restore(backend, family, plan.input);
      rememberRestore(plan, await this.readSaved(backend, family), memory);
      const { input, writtenChains, deletedChains, rewrittenJumps } = plan;
      restores.push({ family, input, writtenChains, deletedChains, rewrittenJumps });
    }
    return { written: restores.length, restores };
  }

  private async resolveBackend(): Promise<IptablesBackend> {
    this.backend ??= await detectIptablesBackend(this.run, this.netns);
    return this.backend;
  }

  private async readSaved(backend: IptablesBackend, family: Family): Promise<SavedRules> {
    const { stdout } = await this.run(backend.save[family], [], this.options());
    return parseSavedRules(stdout, this.owner);
  }

  private async restore(backend: IptablesBackend, family: Family, input: string): Promise<void> {
    try {
      await this.run(backend.restore[family], ['--noflush', '--wait', '10'], this.options(input));
    } catch (err) {
      // Whatever was half-applied (legacy commits table by table) is unknown now: rewrite it all.
      this.memory[family] = emptyMemory();
      throw restoreError(err, input);
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

/** The host's backend, asked once for the removals of every owner. */
let hostBackend: Promise<IptablesBackend> | undefined;

/**
 * Removes every chain and jump of `owner` in both families, on the host's backend, whoever wrote
 * them (a crashed or earlier run): one line per family that had any.
 */
export async function removeOwnedChains(owner: ChainOwner): Promise<string[]> {
  hostBackend ??= detectIptablesBackend();
  const report = await new IptablesChains({ owner, backend: await hostBackend.catch((error: unknown) => {
    hostBackend = undefined;
    throw error;
  }) }).cleanup();
  return report.restores.map(({ family, deletedChains, rewrittenJumps }) => {
    const jumps = rewrittenJumps.map((c) => `${c.table}/${c.chain}`).join(', ');
    return `IPv${family}: ${deletedChains.length} ${owner.chainPrefix}* chains${jumps === '' ? '' : `, jumps from ${jumps}`}`;
  });
}
